/*
 * http.h - what the parts of the file server share.
 *
 *   parse.c   the request parser: pure functions over bytes (no I/O, no
 *             loop), so that tests/fuzz/fuzz_httpd.c can feed it anything
 *   conn.c    one connection: read a head under deadlines, answer it from
 *             ROOT with sendfile, keep alive, log
 *   main.c    options, one loop per core (SO_REUSEPORT), signals, shutdown
 */
#ifndef HTTPD_HTTP_H
#define HTTPD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Limits (nginx's defaults are of the same order). */
#define HTTP_MAX_LINE 8192       /* request line (else 414) or header line (else 431), CRLF included */
#define HTTP_MAX_HEADERS 100     /* header fields per request (else 431) */
#define HTTP_MAX_HEAD 65536      /* request line and fields together (else 431) */
#define HTTP_MAX_BODY 65536      /* a request body we read and drop; larger: 413 */
#define HTTP_MAX_PATH 4096       /* decoded path (else 414) */

enum http_method { HTTP_GET = 1, HTTP_HEAD, HTTP_OTHER };

/* What the server needs from a request head. Values it keeps are copied:
 * the line buffer they came from is reused for the next line. */
typedef struct http_request {
    int method;                 /* enum http_method; 0 until the request line parsed */
    int minor;                  /* HTTP/1.minor: 0 or 1 (1.2 and up are answered as 1.1) */
    char target[HTTP_MAX_LINE]; /* as sent, NUL-terminated */
    size_t line_len;            /* the request line without CRLF, for the log */
    char line[256];             /* its start, for the log (truncated) */
    unsigned n_headers;
    size_t head_bytes;
    int has_host;
    int conn_close, conn_keep_alive; /* Connection: close / keep-alive seen */
    int has_length;
    uint64_t content_length;
    int has_te, te_chunked_last; /* Transfer-Encoding seen; its last coding is chunked */
    int has_range;
    char range[128];            /* Range value (longer ones are ignored as a whole) */
    int range_too_long;
    int has_ims;
    time_t if_modified_since;
    int has_if_range;
    char if_range[64];
} http_request_t;

void http_request_init(http_request_t *r);
/* One line of the head, as read (with its "\r\n" or "\n"; a bare CR inside
 * is an error). 0 when the line was taken, else the status to answer with
 * (400, 414, 431, 505). The request line first, then each field line. */
int http_parse_request_line(http_request_t *r, const char *line, size_t len);
int http_parse_field(http_request_t *r, const char *line, size_t len);
/* After the empty line: checks what needs the whole head (Host, framing).
 * 0, or the status: 400 (no Host in 1.1, two Hosts, Content-Length with
 * Transfer-Encoding, a coding other than chunked last), 413 (a body
 * larger than HTTP_MAX_BODY, or chunked: we take no body of unknown
 * length). */
int http_request_check(const http_request_t *r);
/* Whether the connection stays open after the answer (HTTP/1.1: unless
 * "close"; HTTP/1.0: only with "keep-alive"). */
int http_keep_alive(const http_request_t *r);

/* The request target as a path relative to ROOT: "" for the root, else
 * "a/b.html" (no leading '/', no empty, "." or ".." segment). Percent-
 * escapes are decoded per segment. 0, or the status: 400 (not origin- or
 * absolute-form, a fragment, a bad or NUL escape, control bytes), 403 (a
 * ".." segment, a backslash or an encoded '/' in any form), 414 (longer
 * than cap - 1 or HTTP_MAX_PATH). */
int http_target_path(const char *target, char *out, size_t cap);

/* A single byte range of a resource of `size` bytes (RFC 9110 §14): 206
 * with *first and *count set; 416 when it cannot be satisfied (bad syntax,
 * first > last, first beyond the end, a zero-length suffix); 200 when the
 * header is to be ignored (another unit, several ranges). */
int http_parse_range(const char *value, uint64_t size, uint64_t *first, uint64_t *count);

/* IMF-fixdate, RFC 850 or asctime form: 0 and *t, or -1. */
int http_parse_date(const char *s, time_t *t);
/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), 29 chars + NUL. */
void http_format_date(time_t t, char out[30]);

const char *http_reason(int status);
const char *http_mime_type(const char *path);

#endif

/* ---- the server (conn.c, main.c) */
#include <aloop.h>

typedef struct httpd_options {
    const char *host, *port, *root;
    unsigned loops;          /* one per thread (default: online CPUs) */
    size_t max_conns;        /* per loop; 0 = no limit */
    double header_timeout;   /* a request's head, once its first line is in */
    double idle_timeout;     /* a keep-alive connection waiting for a request */
    double grace;            /* shutdown: how long in-flight responses may take */
    int quiet;               /* no access log */
    const char *tls_cert, *tls_key; /* PEM files: serve HTTPS (main.c) */
} httpd_options_t;

typedef struct httpd_conn httpd_conn_t;

/* One loop's share of the server. */
typedef struct httpd_loop {
    const httpd_options_t *opt;
    aloop_t *loop;
    int root_fd;             /* ROOT, O_PATH: every file is opened beneath it */
    int listen_fd;
    aloop_server_t *server;
    struct aloop_tls_config *tls; /* HTTPS: this loop's server config; NULL: plain */
    int stopping;            /* no new request starts; idle connections end */
    httpd_conn_t *conns;     /* open connections, for the shutdown */
    aloop_event_t *drained;  /* shutdown: set when conns has emptied */
    time_t date_sec;         /* the Date header, formatted once a second */
    char date[30];
    size_t log_len;          /* access log lines not written yet */
    int log_flush_queued;
    char log[16384];
} httpd_loop_t;

/* The aloop_serve handler. */
void httpd_session(aloop_stream_t *s, void *loop_state);
/* Stop accepting, end idle connections, let the others finish their
 * response; returns once every connection is gone (after grace seconds,
 * the stragglers are cancelled). */
void httpd_loop_shutdown(httpd_loop_t *hl);
/* Writes what the access log holds. */
void httpd_log_flush(httpd_loop_t *hl);

/*
 * fetch - download URLs concurrently (the course's aiohttp fetcher, in C):
 * HTTP/1.1 GET over plain TCP or TLS, at most -c N requests in flight, each
 * under a deadline of its own.
 *
 *     ./fetch -c 5 -t 10 http://127.0.0.1:8000/a.bin https://example.org/
 *     ./fetch --cacert test-ca.pem https://localhost:8443/index.html
 *
 * One task per URL. A semaphore keeps at most N of them past the gate; each
 * request runs inside a timeout scope (aloop_timeout_enter/exit, asyncio's
 * `async with asyncio.timeout(t)`): connect, request and the whole body must
 * be done within -t seconds, or the request is abandoned at whatever it was
 * waiting for and reported as timed out. Bodies with Content-Length, chunked
 * bodies, and bodies up to end of file are read with aloop_stream_read /
 * aloop_stream_readuntil and counted, not kept. Redirects are not followed.
 * Interim 1xx responses (100 Continue, 103 Early Hints) before the final
 * one are skipped (RFC 9110 section 15.2). Framing the client cannot trust
 * is an error, never a guess: an empty, signed or conflicting
 * Content-Length, a Transfer-Encoding other than exactly "chunked" (such as
 * "gzip, chunked"), both at once, whitespace before a colon, folded lines.
 *
 * https:// URLs go through aloop-tls (built when OpenSSL 3 is found):
 * aloop_open_tls_connection does the lookup, the connect and the handshake
 * (ALPN "http/1.1", the server's certificate checked against the system's
 * CA store plus --cacert FILE, and against the URL's host) under the same
 * deadline, and hands back an ordinary stream: the HTTP code below does not
 * know which kind it reads. --insecure accepts any certificate. A build
 * without TLS reports https:// URLs as errors and refuses the TLS options
 * (exit status 2).
 *
 * Prints a line per URL when it completes (status, bytes, seconds, MB/s)
 * and a total. Exit status 0 if every URL answered 2xx, 1 otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>
#ifdef EXAMPLE_WITH_TLS
#include <aloop_tls.h>
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADER_MAX (64 * 1024) /* the whole response head, "\r\n\r\n" included */
#define CHUNK_LINE_MAX 1024    /* "1f4;ext=...\r\n" */
#define INTERIM_MAX 16         /* 1xx responses taken before the final one */

typedef struct fetch_options {
    unsigned concurrency;
    double timeout; /* seconds per request; INFINITY = none */
    int quiet;      /* only the total */
    int insecure;   /* https: accept any certificate */
    const char *cacert; /* https: also trust the CAs in this PEM file */
#ifdef EXAMPLE_WITH_TLS
    aloop_tls_config_t *tls; /* shared by every https request; NULL if none */
#endif
} fetch_options_t;

/* What a URL turned into. */
typedef struct fetch_job {
    const char *url;
    const fetch_options_t *opt;
    aloop_semaphore_t *gate;
    int status;        /* HTTP status, 0 if none came */
    int error;         /* 0 or -errno */
    const char *what;  /* a protocol error, or NULL */
    char tls_error[160]; /* aloop_tls_error() of a failed TLS call, or "" */
    size_t bytes;      /* body bytes */
    double started, elapsed;
} fetch_job_t;

/* ------------------------------------------------------------------------ */
/* URLs                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct url {
    int tls;          /* https */
    char host[256];
    char port[8];
    const char *path; /* points into the URL; "/" if it had none */
} url_t;

/* http[s]://host[:port][/path]; [v6]:port too. 0 or -EINVAL. */
static int url_parse(const char *s, url_t *u) {
    if (strncasecmp(s, "http://", 7) == 0) {
        u->tls = 0;
        s += 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = 1;
        s += 8;
    } else {
        return -EINVAL;
    }
    size_t hostlen = strcspn(s, "/?#");
    const char *rest = s + hostlen;
    const char *host = s, *port = NULL;
    size_t hlen = hostlen;
    if (*host == '[') { /* [::1]:8080 */
        const char *close = memchr(host, ']', hostlen);
        if (!close) return -EINVAL;
        host++;
        hlen = (size_t)(close - host);
        if (close + 1 < s + hostlen) {
            if (close[1] != ':') return -EINVAL;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', hostlen);
        if (colon) {
            hlen = (size_t)(colon - host);
            port = colon + 1;
        }
    }
    size_t plen = port ? (size_t)(s + hostlen - port) : 0;
    if (hlen == 0 || hlen >= sizeof u->host || plen >= sizeof u->port || (port && !plen))
        return -EINVAL;
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (port) {
        memcpy(u->port, port, plen);
        u->port[plen] = '\0';
    } else {
        strcpy(u->port, u->tls ? "443" : "80");
    }
    u->path = *rest == '/' ? rest : "/";
    return 0;
}

/* ------------------------------------------------------------------------ */
/* HTTP/1.1                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct response {
    int status;
    int chunked;
    long long length; /* Content-Length, -1 if none */
} response_t;

/* A protocol error: what it was, for the report. */
static int bad(const char **what, const char *why) {
    *what = why;
    return -EPROTO;
}

/* tchar of RFC 9110 section 5.6.2: what a field name is made of. */
static int is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Content-Length's value v (n bytes): one decimal number, or a list of the
 * same number ("42, 42", as a proxy may fold repeated fields), merged into
 * *len (-1: none seen yet). 0, or -1 for anything else: empty, not digits,
 * a sign, two different numbers (the body's end would be a guess). */
static int merge_length(const char *v, size_t n, long long *len) {
    const char *p = v, *end = v + n;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const char *digits = p;
        long long x = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (x > (LLONG_MAX - 9) / 10) return -1;
            x = x * 10 + (*p - '0');
        }
        if (p == digits || (*len >= 0 && *len != x)) return -1;
        *len = x;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p == end) return 0;
        if (*p++ != ',') return -1;
    }
}

/* Transfer-Encoding's value: only exactly "chunked" is understood. Any
 * other coding ("gzip, chunked", "identity") would need decoding, and a
 * body whose end is unknown cannot be measured: 0, or -1. */
static int is_chunked_only(const char *v, size_t n) {
    while (n && (*v == ' ' || *v == '\t')) v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

/* The response head (len bytes and a NUL, as read: it should end in an
 * empty line): status and framing into *r. 0, or -EPROTO with *what saying
 * why: a NUL byte, a malformed status or header line, obsolete line
 * folding, a bad or conflicting Content-Length, a Transfer-Encoding other
 * than chunked, or both. */
static int parse_head(const char *head, size_t len, response_t *r, const char **what) {
    int minor;
    char sp;
    *r = (response_t){.length = -1};
    if (memchr(head, '\0', len)) return bad(what, "NUL byte in the response head");
    const char *eol = strstr(head, "\r\n");
    if (!eol || sscanf(head, "HTTP/1.%1d %3d%c", &minor, &r->status, &sp) != 3 ||
        r->status < 100 || r->status > 599 || (sp != ' ' && sp != '\r') || head[8] != ' ')
        return bad(what, "malformed status line");
    int te_lines = 0, cl_lines = 0;
    for (const char *line = eol + 2; strncmp(line, "\r\n", 2) != 0;) {
        eol = strstr(line, "\r\n");
        if (!eol) return bad(what, "malformed response head");
        if (*line == ' ' || *line == '\t') return bad(what, "obsolete line folding in the head");
        const char *colon = line;
        while (colon < eol && is_tchar(*colon)) colon++;
        if (colon == line || colon == eol || *colon != ':')
            return bad(what, "malformed header line");
        size_t name = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vn = (size_t)(eol - v);
        if (name == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            cl_lines++;
            if (merge_length(v, vn, &r->length) < 0)
                return bad(what, "bad or conflicting Content-Length");
        } else if (name == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            if (++te_lines > 1 || !is_chunked_only(v, vn))
                return bad(what, "unsupported Transfer-Encoding (only chunked is)");
            r->chunked = 1;
        }
        line = eol + 2;
    }
    if (r->chunked && cl_lines) return bad(what, "both Transfer-Encoding and Content-Length");
    return 0;
}

/* Reads and counts up to `limit` body bytes (< 0: until EOF). 0, -EPIPE if
 * EOF came first (with a limit), or -errno. */
static int read_body(aloop_stream_t *s, long long limit, fetch_job_t *job) {
    char buf[64 * 1024];
    while (limit != 0) {
        size_t want = sizeof buf;
        if (limit > 0 && (unsigned long long)limit < want) want = (size_t)limit;
        ssize_t n = aloop_stream_read(s, buf, want);
        if (n < 0) return (int)n;
        if (n == 0) return limit < 0 ? 0 : -EPIPE;
        job->bytes += (size_t)n;
        if (limit > 0) limit -= n;
    }
    return 0;
}

/* Transfer-Encoding: chunked: size line, data, CRLF; a 0 size ends it,
 * then trailers up to an empty line. */
static int read_chunked(aloop_stream_t *s, fetch_job_t *job) {
    char line[CHUNK_LINE_MAX];
    for (;;) {
        ssize_t n = aloop_stream_readuntil(s, "\r\n", 2, line, sizeof line);
        if (n <= 0) return n == 0 ? -EPIPE : (int)n;
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line || errno || (*end != '\r' && *end != ';' && *end != ' ')) {
            job->what = "bad chunk size";
            return -EPROTO;
        }
        if (size == 0) break;
        int rc = read_body(s, (long long)size, job);
        if (rc < 0) return rc;
        n = aloop_stream_readexactly(s, line, 2);
        if (n < 0) return (int)n;
        if (n != 2 || memcmp(line, "\r\n", 2) != 0) {
            job->what = "chunk not followed by CRLF";
            return -EPROTO;
        }
    }
    for (;;) { /* trailers */
        ssize_t n = aloop_stream_readuntil(s, "\r\n", 2, line, sizeof line);
        if (n < 0) return (int)n;
        if (n <= 2) return 0; /* the empty line (or EOF) */
    }
}

/* Reads response heads until the final one (RFC 9110 section 15.2: any
 * number of 1xx interim responses, such as 100 Continue or 103 Early
 * Hints, may come first; they have no body). 0 with *r, or -errno with
 * job->what for a protocol error. */
static int read_final_head(aloop_stream_t *s, char *head, response_t *r, fetch_job_t *job) {
    for (int interim = 0;; interim++) {
        ssize_t n = aloop_stream_readuntil(s, "\r\n\r\n", 4, head, HEADER_MAX + 1);
        if (n == -EMSGSIZE) job->what = "response head too long";
        if (n < 0) return (int)n;
        if (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
            job->what = "connection closed before the response head";
            return -EPROTO;
        }
        int rc = parse_head(head, (size_t)n, r, &job->what);
        if (rc < 0) return rc;
        if (r->status >= 200) return 0;
        if (r->status == 101) return bad(&job->what, "unexpected 101 Switching Protocols");
        if (interim == INTERIM_MAX) return bad(&job->what, "too many interim (1xx) responses");
    }
}

static int send_request(aloop_stream_t *s, const url_t *u) {
    char req[4096];
    int default_port = strcmp(u->port, u->tls ? "443" : "80") == 0;
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: aloop-fetch/1\r\n"
                     "Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
                     u->path, u->host, default_port ? "" : ":", default_port ? "" : u->port);
    if (n < 0 || (size_t)n >= sizeof req) return -E2BIG;
    ssize_t w = aloop_stream_write(s, req, (size_t)n);
    return w < 0 ? (int)w : 0;
}

/* After a TLS failure (a handshake or record that failed, a certificate
 * refused): what OpenSSL said, copied before another task's TLS call on
 * this thread replaces it. Other errors (refused, reset, timed out) keep
 * their errno text: the thread's last TLS text may be another job's. */
static void note_tls_error(fetch_job_t *job, const url_t *u, int rc) {
#ifdef EXAMPLE_WITH_TLS
    const char *e = u->tls && (rc == -EPROTO || rc == -EKEYREJECTED) ? aloop_tls_error() : NULL;
    if (e && *e && !job->tls_error[0])
        snprintf(job->tls_error, sizeof job->tls_error, "TLS: %s", e);
#else
    (void)job, (void)u, (void)rc;
#endif
}

/* A connected stream to u: plain TCP, or TLS (handshake done). */
static int open_stream(fetch_job_t *job, const url_t *u, aloop_stream_t **s) {
    if (!u->tls) return aloop_open_connection(u->host, u->port, -1, s); /* the scope bounds it */
#ifdef EXAMPLE_WITH_TLS
    int rc = aloop_open_tls_connection(u->host, u->port, job->opt->tls, -1, s);
    if (rc < 0) note_tls_error(job, u, rc);
    return rc;
#else
    job->what = "https:// needs fetch built with TLS (OpenSSL 3)";
    return -EPROTONOSUPPORT;
#endif
}

/* The request itself: 0 or -errno (job->status and job->bytes filled). */
static int http_get(fetch_job_t *job) {
    url_t u;
    if (url_parse(job->url, &u) < 0) {
        job->what = "not an http:// or https:// URL";
        return -EINVAL;
    }
    aloop_stream_t *s;
    int rc = open_stream(job, &u, &s);
    if (rc < 0) return rc;
    char *head = malloc(HEADER_MAX + 1);
    rc = head ? send_request(s, &u) : -ENOMEM;
    response_t r = {0};
    if (rc == 0) rc = read_final_head(s, head, &r, job);
    if (rc == 0) {
        job->status = r.status;
        if (r.status == 204 || r.status == 304) rc = 0; /* no body */
        else if (r.chunked) rc = read_chunked(s, job);
        else rc = read_body(s, r.length, job);
    }
    if (rc < 0 && !job->what) note_tls_error(job, &u, rc);
    free(head);
    aloop_stream_close(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

static double mb_per_s(size_t bytes, double secs) {
    return secs > 0 ? (double)bytes / 1e6 / secs : 0;
}

static void report(const fetch_job_t *job) {
    if (job->opt->quiet) return;
    if (job->error == 0) {
        printf("%3d %12zu B %7.2f s %9.2f MB/s  %s\n", job->status, job->bytes, job->elapsed,
               mb_per_s(job->bytes, job->elapsed), job->url);
    } else {
        const char *why = job->error == -ETIMEDOUT ? "timed out"
                          : job->what             ? job->what
                          : job->tls_error[0]     ? job->tls_error
                          : job->error == -ENOENT ? "name not found"
                                                  : aloop_strerror(job->error);
        printf("ERR %s after %.2f s (%zu B)  %s\n", why, job->elapsed, job->bytes, job->url);
    }
    fflush(stdout);
}

static void *fetch_main(void *arg) {
    fetch_job_t *job = arg;
    int rc = aloop_semaphore_acquire(job->gate); /* at most -c N past here */
    if (rc < 0) return aloop_fail(rc);
    job->started = aloop_time(aloop_current());
    aloop_timeout_t deadline;
    rc = aloop_timeout_enter(&deadline, job->opt->timeout);
    if (rc == 0) rc = aloop_timeout_exit(&deadline, http_get(job));
    aloop_semaphore_release(job->gate);
    job->elapsed = aloop_time(aloop_current()) - job->started;
    job->error = rc;
    report(job);
    return NULL;
}

typedef struct fetch_all {
    const fetch_options_t *opt;
    char **urls;
    size_t n;
    fetch_job_t *jobs;
} fetch_all_t;

static void *main_task(void *arg) {
    fetch_all_t *all = arg;
    aloop_t *loop = aloop_current();
    aloop_semaphore_t *gate = aloop_semaphore_new(loop, all->opt->concurrency);
    aloop_task_t **tasks = calloc(all->n, sizeof *tasks);
    if (!gate || !tasks) {
        aloop_semaphore_free(gate);
        free(tasks);
        return aloop_fail(-ENOMEM);
    }
    size_t spawned = 0;
    for (; spawned < all->n; spawned++) {
        fetch_job_t *job = &all->jobs[spawned];
        *job = (fetch_job_t){.url = all->urls[spawned], .opt = all->opt, .gate = gate,
                             .error = -ECANCELED};
        tasks[spawned] = aloop_spawn(loop, fetch_main, job);
        if (!tasks[spawned]) break;
    }
    int rc = aloop_gather(tasks, spawned, NULL, NULL, ALOOP_RETURN_ERRORS);
    for (size_t i = 0; i < spawned; i++) aloop_release(tasks[i]);
    free(tasks);
    aloop_semaphore_free(gate);
    if (spawned < all->n) return aloop_fail(-ENOMEM);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                      */
/* ------------------------------------------------------------------------ */

#ifdef EXAMPLE_WITH_TLS
#define FETCH_TLS_NOTE ""

static int wants_tls(const fetch_all_t *all) {
    for (size_t i = 0; i < all->n; i++)
        if (strncasecmp(all->urls[i], "https://", 8) == 0) return 1;
    return all->opt->cacert != NULL; /* a bad FILE is reported even without https URLs */
}

/* One client config for every https request (the CA store is loaded once
 * and TLS sessions are resumed across requests to the same server). 0, or
 * 2 after saying why on stderr. */
static int tls_setup(fetch_options_t *opt, const fetch_all_t *all) {
    static const char *const alpn[] = {"http/1.1"};
    if (!wants_tls(all)) return 0;
    opt->tls = aloop_tls_client_config_new();
    if (!opt->tls) {
        fprintf(stderr, "fetch: cannot set up TLS: %s\n", aloop_tls_error());
        return 2;
    }
    int rc = aloop_tls_config_set_alpn(opt->tls, alpn, 1);
    if (rc == 0 && opt->insecure) rc = aloop_tls_config_set_verify(opt->tls, 0);
    if (rc < 0) {
        fprintf(stderr, "fetch: cannot set up TLS: %s\n", aloop_strerror(rc));
    } else if (opt->cacert && (rc = aloop_tls_config_set_ca_file(opt->tls, opt->cacert)) < 0) {
        /* OpenSSL's words for a file that is there but holds no certificate */
        const char *e = rc == -ENOENT ? NULL : aloop_tls_error();
        fprintf(stderr, "fetch: --cacert %s: %s\n", opt->cacert,
                e && *e ? e : aloop_strerror(rc));
    }
    if (rc < 0) {
        aloop_tls_config_free(opt->tls);
        opt->tls = NULL;
        return 2;
    }
    return 0;
}

static void tls_teardown(fetch_options_t *opt) {
    aloop_tls_config_free(opt->tls);
}
#else
#define FETCH_TLS_NOTE "  (This build has no TLS: OpenSSL 3 was not found when it was built.)\n"

static int tls_setup(fetch_options_t *opt, const fetch_all_t *all) {
    (void)all;
    if (!opt->cacert && !opt->insecure) return 0;
    fprintf(stderr, "fetch: built without TLS (OpenSSL 3 not found): --cacert and --insecure "
                    "are not available\n");
    return 2;
}

static void tls_teardown(fetch_options_t *opt) {
    (void)opt;
}
#endif

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s [-c N] [-t SECONDS] [-q] [--cacert FILE] [-k] URL...\n"
            "  Downloads every URL (http:// or https://, HTTP/1.1 GET) concurrently\n"
            "  and prints a line per URL as it completes: status, bytes, seconds,\n"
            "  MB/s (or ERR and why), then a total. Bodies are counted, not kept.\n"
            "  -c, --concurrency N  at most N requests in flight (default 10)\n"
            "  -t, --timeout SECS   deadline per request: connect, TLS handshake,\n"
            "                       request and the whole body (default 30; 0 = none)\n"
            "  -q, --quiet          only the total\n"
            "      --cacert FILE    https: trust the CA certificates in FILE (PEM)\n"
            "                       as well as the system's\n"
            "  -k, --insecure       https: accept any server certificate\n"
            "  -h, --help           this text\n"
            "%s"
            "Exit status: 0 if every URL answered 2xx, 1 if not, 2 on bad usage.\n",
            prog, FETCH_TLS_NOTE);
}

static int parse_options(int argc, char **argv, fetch_options_t *opt) {
    static const struct option longopts[] = {
        {"concurrency", required_argument, NULL, 'c'}, {"timeout", required_argument, NULL, 't'},
        {"quiet", no_argument, NULL, 'q'},             {"help", no_argument, NULL, 'h'},
        {"cacert", required_argument, NULL, 'C'},      {"insecure", no_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    *opt = (fetch_options_t){.concurrency = 10, .timeout = 30};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:t:qhk", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'c': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end || *optarg == '-' || v < 1 || v > 100000) return -1;
            opt->concurrency = (unsigned)v;
            break;
        }
        case 't':
            opt->timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(opt->timeout >= 0) || opt->timeout > 1e9) return -1;
            if (opt->timeout == 0) opt->timeout = INFINITY; /* none */
            break;
        case 'q': opt->quiet = 1; break;
        case 'C': opt->cacert = optarg; break;
        case 'k': opt->insecure = 1; break;
        case 'h': return 1;
        default: return -1;
        }
    }
    return optind < argc ? 0 : -1;
}

int main(int argc, char **argv) {
    fetch_options_t opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr, argv[0]);
        return rc > 0 ? 0 : 2;
    }
    fetch_all_t all = {&opt, argv + optind, (size_t)(argc - optind), NULL};
    rc = tls_setup(&opt, &all);
    if (rc != 0) return rc;
    all.jobs = calloc(all.n, sizeof *all.jobs);
    if (!all.jobs) {
        fprintf(stderr, "fetch: out of memory\n");
        tls_teardown(&opt);
        return 1;
    }
    double t0 = 0, t1 = 0;
    aloop_t *loop = aloop_new();
    aloop_task_t *t = loop ? aloop_spawn(loop, main_task, &all) : NULL;
    if (t) {
        t0 = aloop_time(loop);
        rc = aloop_run_until_complete(loop, t);
        t1 = aloop_time(loop);
        aloop_release(t);
    } else {
        rc = -ENOMEM;
    }
    aloop_free(loop);
    if (rc < 0) fprintf(stderr, "fetch: %s\n", aloop_strerror(rc));
    size_t bytes = 0, ok = 0;
    for (size_t i = 0; i < all.n; i++) {
        bytes += all.jobs[i].bytes;
        if (all.jobs[i].error == 0 && all.jobs[i].status / 100 == 2) ok++;
    }
    printf("total: %zu URLs, %zu ok, %zu failed, %zu bytes in %.2f s, %.2f MB/s\n", all.n, ok,
           all.n - ok, bytes, t1 - t0, mb_per_s(bytes, t1 - t0));
    free(all.jobs);
    tls_teardown(&opt);
    return rc == 0 && ok == all.n ? 0 : 1;
}

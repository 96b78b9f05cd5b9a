/*
 * conn.c - one connection: read a request head under deadlines, answer it
 * from ROOT (small files with their head in one write, others with
 * aloop_sendfile), keep alive, log. Pipelined requests simply wait in the
 * stream's buffer for the next turn of the loop in httpd_session. Over TLS
 * the connection is the same kind of stream; only bodies change path: they
 * must be encrypted, so they are read from the file and written through the
 * stream instead of going from the file to the socket with sendfile.
 *
 * Files are opened with openat2(RESOLVE_BENEATH) relative to ROOT, so the
 * kernel refuses any path that leaves ROOT, through ".." or through a
 * symlink, whatever the parser let through; where openat2 does not exist
 * the resolved path is checked against ROOT's with realpath(3).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#endif

#define SMALL_FILE 16384 /* bodies up to this size go out with the head, in one write */
#define LINGER_TIME 2.0  /* after an error: how long we drain what the client still sends */
#define SEND_SLICE (1u << 20) /* a body goes out in slices of this, each moving the deadline on */
#define TLS_PIECE 16384       /* over TLS, file bytes go through the stream this many at a time
                                 (one full TLS record) */

struct httpd_conn {
    httpd_loop_t *hl;
    httpd_conn_t *prev, *next;
    aloop_task_t *task;
    aloop_stream_t *s;
    int fd;
    int idle;            /* between requests: the shutdown may end it */
    aloop_timeout_t *deadline; /* the current request's, moved on as it progresses */
    char peer[INET6_ADDRSTRLEN];
    char line[HTTP_MAX_LINE + 1];
    http_request_t req;
};

/* ------------------------------------------------------------------------ */
/* Access log (Common Log Format), one write per loop step                  */
/* ------------------------------------------------------------------------ */

void httpd_log_flush(httpd_loop_t *hl) {
    size_t off = 0;
    while (off < hl->log_len) {
        ssize_t n = write(STDOUT_FILENO, hl->log + off, hl->log_len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* a log that cannot be written is not worth dying for */
        off += (size_t)n;
    }
    hl->log_len = 0;
}

static void log_flush_cb(void *arg) {
    httpd_loop_t *hl = arg;
    hl->log_flush_queued = 0;
    httpd_log_flush(hl);
}

static void access_log(httpd_conn_t *c, int status, uint64_t bytes) {
    httpd_loop_t *hl = c->hl;
    if (hl->opt->quiet) return;
    if (sizeof hl->log - hl->log_len < 512) httpd_log_flush(hl);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char when[40];
    strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    const char *line = c->req.line[0] ? c->req.line : "-";
    int n = snprintf(hl->log + hl->log_len, sizeof hl->log - hl->log_len,
                     "%s - - [%s] \"%s%s\" %d %" PRIu64 "\n", c->peer, when, line,
                     c->req.line_len >= sizeof c->req.line ? "..." : "", status, bytes);
    if (n > 0) hl->log_len += (size_t)n < sizeof hl->log - hl->log_len ? (size_t)n : 0;
    /* Written after the tasks that are ready now: a burst of requests costs
     * one write(2). */
    if (!hl->log_flush_queued && aloop_call_soon(hl->loop, log_flush_cb, hl))
        hl->log_flush_queued = 1;
    else if (!hl->log_flush_queued)
        httpd_log_flush(hl);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

static const char *date_now(httpd_loop_t *hl) {
    time_t now = time(NULL);
    if (now != hl->date_sec) {
        hl->date_sec = now;
        http_format_date(now, hl->date);
    }
    return hl->date;
}

static int conn_write(httpd_conn_t *c, const void *buf, size_t len) {
    ssize_t n = aloop_stream_write(c->s, buf, len);
    return n < 0 ? (int)n : 0;
}

/* The head of an answer into buf: its length. */
static size_t format_head(httpd_conn_t *c, char *buf, size_t cap, int status, int keep,
                          const char *extra) {
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nServer: aloop-httpd\r\nDate: %s\r\n%s%s", status,
                     http_reason(status), date_now(c->hl), extra,
                     !keep ? "Connection: close\r\n"
                     : c->req.minor == 0 ? "Connection: keep-alive\r\n" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* A short text answer (errors, 304): 0, or < 0 if the client is gone. */
static int send_status(httpd_conn_t *c, int status, int keep, const char *extra_fields) {
    char body[80], extra[256], head[512];
    int blen = status == 304 ? 0 : snprintf(body, sizeof body, "%d %s\n", status, http_reason(status));
    if (status == 304)
        snprintf(extra, sizeof extra, "%s", extra_fields);
    else
        snprintf(extra, sizeof extra, "%sContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %d\r\n", extra_fields, blen);
    size_t hlen = format_head(c, head, sizeof head - 2, status, keep, extra);
    memcpy(head + hlen, "\r\n", 2);
    hlen += 2;
    int with_body = blen > 0 && c->req.method != HTTP_HEAD;
    if (with_body && hlen + (size_t)blen <= sizeof head) {
        memcpy(head + hlen, body, (size_t)blen);
        hlen += (size_t)blen;
    }
    access_log(c, status, with_body ? (uint64_t)blen : 0);
    return conn_write(c, head, hlen);
}

/* After an answer that ends the connection while the client may still be
 * sending (a head too large, a body we refused): half-close, then read and
 * drop for a while, so that our answer is not destroyed by a reset the
 * kernel would send if we closed with unread data. */
static void lingering_close(httpd_conn_t *c) {
    aloop_stream_shutdown(c->s);
    aloop_timeout_t to;
    if (aloop_timeout_enter(&to, LINGER_TIME) < 0) return;
    char buf[4096];
    size_t total = 0;
    ssize_t n;
    while (total < (1u << 20) && (n = aloop_stream_read(c->s, buf, sizeof buf)) > 0) total += (size_t)n;
    aloop_timeout_exit(&to, 0);
}

/* An error that ends the connection. Returns 0 (the session ends). */
static int fail(httpd_conn_t *c, int status) {
    if (send_status(c, status, 0, "") == 0) lingering_close(c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

/* Opens rel (relative to ROOT, "" for ROOT itself) without ever leaving
 * ROOT: the fd, or -errno (-EXDEV / -ELOOP: it would leave). */
static int open_beneath(httpd_loop_t *hl, const char *rel) {
    const char *path = rel[0] ? rel : ".";
#if defined(__linux__) && defined(SYS_openat2)
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, hl->root_fd, path, &how, sizeof how);
    if (fd >= 0) return (int)fd;
    if (errno != ENOSYS) return -errno;
#endif
    /* No openat2: resolve, then check that the result is still ROOT or
     * beneath it, then open exactly that (no symlink in the last step). */
    char root[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
    if (!realpath(hl->opt->root, root)) return -errno;
    if ((size_t)snprintf(full, sizeof full, "%s/%s", root, path) >= sizeof full) return -ENAMETOOLONG;
    if (!realpath(full, real)) return -errno;
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || (real[rl] != '\0' && real[rl] != '/' && rl > 1))
        return -EXDEV;
    int fd2 = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
    return fd2 >= 0 ? fd2 : -errno;
}

static int errno_status(int err) {
    switch (err) {
    case -ENOENT: case -ENOTDIR: return 404;
    case -ENAMETOOLONG: return 414;
    case -EMFILE: case -ENFILE: case -ENOMEM: return 503;
    case -EXDEV: case -ELOOP: case -EACCES: case -EPERM: return 403;
    default: return 500;
    }
}

/* The file for path (a directory's index.html): its fd and stat, or the
 * status to answer with. */
static int open_file(httpd_conn_t *c, char *path, size_t cap, struct stat *st, int *status) {
    int fd = open_beneath(c->hl, path);
    if (fd >= 0 && fstat(fd, st) == 0 && S_ISDIR(st->st_mode)) {
        close(fd);
        size_t len = strlen(path);
        if (len + sizeof "/index.html" > cap) {
            *status = 414;
            return -1;
        }
        snprintf(path + len, cap - len, "%sindex.html", len ? "/" : "");
        fd = open_beneath(c->hl, path);
        if (fd == -ENOENT) fd = -EACCES; /* a directory without an index: no listings */
        if (fd >= 0 && fstat(fd, st) < 0) {
            close(fd);
            fd = -EIO;
        }
    }
    if (fd >= 0 && !S_ISREG(st->st_mode)) { /* devices, FIFOs, sockets: never */
        close(fd);
        fd = -EACCES;
    }
    if (fd < 0) *status = errno_status(fd);
    return fd;
}

/* Moves the request's deadline to `secs` from now. */
static void deadline_in(httpd_conn_t *c, aloop_timeout_t *to, double secs) {
    aloop_timeout_reschedule(to, aloop_time(c->hl->loop) + secs);
}

/* n bytes of file fd from offset through the stream's transport (TLS):
 * sendfile would put them on the socket as they are. Same contract as
 * aloop_sendfile. */
static int send_through_stream(httpd_conn_t *c, int fd, off_t offset, size_t n, size_t *sent) {
    char buf[TLS_PIECE];
    *sent = 0;
    while (*sent < n) {
        size_t want = n - *sent < sizeof buf ? n - *sent : sizeof buf;
        ssize_t got = pread(fd, buf, want, offset + (off_t)*sent);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return got < 0 ? -errno : 0; /* the file shrank: *sent < n */
        int rc = conn_write(c, buf, (size_t)got);
        if (rc < 0) return rc;
        *sent += (size_t)got;
    }
    return 0;
}

/* count bytes of file fd from first to the socket: 0, or -errno; *sent:
 * how many went out. In slices, each moving the deadline on: the limit is
 * on a stalled client, not on a long transfer. */
static int send_body(httpd_conn_t *c, int fd, uint64_t first, uint64_t count, uint64_t *sent) {
    int transport = aloop_stream_transport(c->s) != NULL;
    *sent = 0;
    while (*sent < count) {
        size_t slice = count - *sent > SEND_SLICE ? SEND_SLICE : (size_t)(count - *sent);
        size_t n = 0;
        int rc = transport ? send_through_stream(c, fd, (off_t)(first + *sent), slice, &n)
                           : aloop_sendfile(c->fd, fd, (off_t)(first + *sent), slice, &n);
        *sent += n;
        if (rc < 0) return rc;
        if (n < slice) return -EIO; /* the file shrank under us: the framing is lost */
        if (c->deadline) deadline_in(c, c->deadline, c->hl->opt->idle_timeout);
    }
    return 0;
}

/* 1 when the validator in If-Range matches the file (a date equal to its
 * Last-Modified: we send no ETag). */
static int if_range_matches(const http_request_t *r, time_t mtime) {
    time_t t;
    return http_parse_date(r->if_range, &t) == 0 && t == mtime;
}

/* GET or HEAD of a file: 0, or < 0 when the connection must end. */
static int serve_file(httpd_conn_t *c, int keep) {
    http_request_t *r = &c->req;
    char path[HTTP_MAX_PATH + sizeof "/index.html"];
    int status = http_target_path(r->target, path, HTTP_MAX_PATH + 1);
    if (status == 400 || status == 414) {
        fail(c, status);
        return -1;
    }
    if (status) return send_status(c, status, keep, "");
    struct stat st;
    int fd = open_file(c, path, sizeof path, &st, &status);
    if (fd < 0) return send_status(c, status, keep, "");

    char lm[30], extra[512];
    http_format_date(st.st_mtime, lm);
    uint64_t size = (uint64_t)st.st_size, first = 0, count = size;
    status = 200;
    if (r->has_ims && st.st_mtime <= r->if_modified_since) {
        close(fd);
        snprintf(extra, sizeof extra, "Last-Modified: %s\r\n", lm);
        return send_status(c, 304, keep, extra);
    }
    if (r->has_range && !r->range_too_long && (!r->has_if_range || if_range_matches(r, st.st_mtime)))
        status = http_parse_range(r->range, size, &first, &count);
    if (status == 416) {
        close(fd);
        snprintf(extra, sizeof extra, "Content-Range: bytes */%" PRIu64 "\r\n", size);
        return send_status(c, 416, keep, extra);
    }
    if (status != 206) {
        status = 200;
        first = 0;
        count = size;
    }
    char range[96] = "";
    if (status == 206)
        snprintf(range, sizeof range, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n",
                 first, first + count - 1, size);
    snprintf(extra, sizeof extra,
             "Content-Type: %s\r\nContent-Length: %" PRIu64 "\r\nLast-Modified: %s\r\n"
             "Accept-Ranges: bytes\r\n%s",
             http_mime_type(path), count, lm, range);
    char head[SMALL_FILE + 1024];
    size_t hlen = format_head(c, head, 1024 - 2, status, keep, extra);
    memcpy(head + hlen, "\r\n", 2);
    hlen += 2;
    int body = r->method == HTTP_GET && count > 0;
    uint64_t sent = 0;
    int rc;
    if (body && count <= SMALL_FILE) { /* head and body in one write */
        ssize_t n = pread(fd, head + hlen, (size_t)count, (off_t)first);
        close(fd);
        if (n != (ssize_t)count) {
            fail(c, 500);
            return -1;
        }
        rc = conn_write(c, head, hlen + (size_t)count);
        sent = rc == 0 ? count : 0;
    } else {
        rc = conn_write(c, head, hlen);
        if (rc == 0 && body) rc = send_body(c, fd, first, count, &sent);
        close(fd);
    }
    access_log(c, status, sent); /* bytes of the body that went out */
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading a request                                                        */
/* ------------------------------------------------------------------------ */

/* The request line: its length, 0 when the connection is to end quietly
 * (EOF, idle too long, shutdown), or -status. */
static ssize_t read_request_line(httpd_conn_t *c) {
    c->idle = 1;
    ssize_t n;
    for (int empty = 0;; empty++) {
        if (c->hl->stopping) {
            n = 0;
            break;
        }
        n = aloop_stream_readline(c->s, c->line, sizeof c->line);
        /* RFC 9112 §2.2: empty lines before a request are ignored (a few) */
        if (empty < 4 && (n == 1 || (n == 2 && c->line[0] == '\r')) && c->line[n - 1] == '\n')
            continue;
        break;
    }
    c->idle = 0;
    if (n == -EMSGSIZE) return -414;
    if (n < 0) return 0;
    if (n > 0 && c->line[n - 1] != '\n') return 0; /* EOF in the middle of a line */
    return n;
}

/* The fields and the body (dropped) after the request line: 0, or the
 * status to end with (-1: nothing to answer, the connection just ends). */
static int read_rest(httpd_conn_t *c) {
    http_request_t *r = &c->req;
    int status = 0;
    for (;;) {
        ssize_t n = aloop_stream_readline(c->s, c->line, sizeof c->line);
        if (n == -EMSGSIZE) return 431;
        if (n <= 0 || c->line[n - 1] != '\n') return -1; /* EOF, error, deadline */
        if (n == 1 || (n == 2 && c->line[0] == '\r')) break; /* the end of the head */
        status = http_parse_field(r, c->line, (size_t)n);
        if (status) return status;
    }
    status = http_request_check(r);
    /* A small body on GET or HEAD is read and dropped: the next request
     * starts after it. */
    uint64_t left = status == 0 && r->has_length ? r->content_length : 0;
    while (left > 0) {
        size_t chunk = left < sizeof c->line ? (size_t)left : sizeof c->line;
        if (aloop_stream_readexactly(c->s, c->line, chunk) < (ssize_t)chunk) return -1;
        left -= chunk;
    }
    return status;
}

/* One request and its answer, under one deadline that moves on: the
 * request line within idle_timeout, the rest of the head within
 * header_timeout, then idle_timeout for the answer to make progress
 * (a client that stops reading is let go). 1 to go on with the next
 * request, 0 to end. */
static int serve_one(httpd_conn_t *c) {
    http_request_init(&c->req);
    aloop_timeout_t to;
    if (aloop_timeout_enter(&to, c->hl->opt->idle_timeout) < 0) return 0;
    c->deadline = &to;
    int status = 0, rc = 0, keep = 0;
    ssize_t n = read_request_line(c);
    if (n > 0) status = http_parse_request_line(&c->req, c->line, (size_t)n);
    else if (n < 0) status = (int)-n;
    if (n > 0 && status == 0) {
        deadline_in(c, &to, c->hl->opt->header_timeout);
        status = read_rest(c);
        if (status == -1 && aloop_timeout_expired(&to) == 1) status = 408;
    }
    if (n > 0 && status == 0) {
        deadline_in(c, &to, c->hl->opt->idle_timeout);
        keep = http_keep_alive(&c->req) && !c->hl->stopping;
        if (c->req.method == HTTP_OTHER) rc = send_status(c, 405, keep, "Allow: GET, HEAD\r\n");
        else rc = serve_file(c, keep);
    }
    c->deadline = NULL;
    int ended = aloop_timeout_exit(&to, rc);
    if (status == 408 || (status > 0 && ended == 0)) return fail(c, status);
    return ended == 0 && rc == 0 && status == 0 && n > 0 && keep;
}

/* ------------------------------------------------------------------------ */
/* The connection                                                           */
/* ------------------------------------------------------------------------ */

static void peer_name(httpd_conn_t *c) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    strcpy(c->peer, "-");
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer, sizeof c->peer);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer, sizeof c->peer);
}

void httpd_session(aloop_stream_t *s, void *arg) {
    httpd_loop_t *hl = arg;
    httpd_conn_t *c = malloc(sizeof *c);
    if (!c) return; /* the server closes the connection */
    c->hl = hl;
    c->s = s;
    c->fd = aloop_stream_fd(s);
    c->task = aloop_current_task();
    c->idle = 0;
    c->deadline = NULL;
    c->req.line[0] = '\0';
    c->req.line_len = 0;
    c->req.method = 0;
    peer_name(c);
    c->prev = NULL;
    c->next = hl->conns;
    if (hl->conns) hl->conns->prev = c;
    hl->conns = c;
    while (serve_one(c)) {
    }
    if (c->prev) c->prev->next = c->next;
    else hl->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c);
    if (hl->drained && !hl->conns) aloop_event_set(hl->drained);
}

void httpd_loop_shutdown(httpd_loop_t *hl) {
    hl->stopping = 1;
    aloop_server_close(hl->server);
    for (httpd_conn_t *c = hl->conns; c; c = c->next)
        if (c->idle) aloop_cancel(c->task);
    /* Wait (at most grace) for our connections, not for the server's
     * handlers: over TLS a connection still in its handshake is a handler
     * that never became ours, and would have the whole handshake timeout. */
    hl->drained = hl->conns ? aloop_event_new(hl->loop) : NULL;
    aloop_timeout_t to;
    if (hl->conns && aloop_timeout_enter(&to, hl->opt->grace) == 0) {
        /* (no memory for the event: the server's own wait will do) */
        int rc = hl->drained ? aloop_event_wait(hl->drained) : aloop_server_wait_closed(hl->server);
        aloop_timeout_exit(&to, rc);
    }
    /* What is left: stragglers (a client that does not read its answer)
     * and handshakes in progress. */
    aloop_server_cancel_handlers(hl->server);
    aloop_server_wait_closed(hl->server);
    aloop_event_free(hl->drained);
    hl->drained = NULL;
    httpd_log_flush(hl);
}

/*
 * conn.c - one TLS connection: OpenSSL over the stream's fd, as the
 * stream's transport, and the handshake.
 *
 * OpenSSL talks to the fd through our BIO: reads are recv(2) straight into
 * OpenSSL's buffer (EAGAIN: "retry"); writes go to send(2) at once, and
 * whatever the kernel does not take is kept in `out`, so a write never
 * asks to be retried. That keeps OpenSSL's rule "retry a write with the
 * same arguments" out of the picture (the stream may retry with another
 * buffer, or give up when cancelled): the transport's write encrypts at
 * most WRITE_CHUNK bytes only once `out` is empty, and reports them once
 * `out` is empty again (until then `owed`), so memory is bounded and a
 * write that returned has reached the kernel, as with a plain socket.
 * Reads flush `out` first (a read may produce records too: key updates).
 * When `out` still holds bytes and no call of the stream will send them (a
 * write given up by a cancel or a deadline, or records a read produced), a
 * flusher task sends them once the fd is writable, as a plain socket's
 * kernel would: the peer may be waiting for the rest of a record, and a
 * reader here waits only for the fd to become readable.
 *
 * Bytes OpenSSL already decrypted never wait for the fd: the stream calls
 * the transport's read before it waits, and SSL_read returns them.
 *
 * EOF: the peer's close_notify is SSL_ERROR_ZERO_RETURN, a read of 0 (and
 * this side may still write); the fd's EOF without it is -ECONNRESET
 * (SSL_OP_IGNORE_UNEXPECTED_EOF is never set). A failure is sticky.
 *
 * aloop_stream_close: close_notify is sent if it fits in the kernel now
 * (as Go's Close does), so a handler that returns without a shutdown does
 * not look truncated to its peer; nothing waits.
 */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define WRITE_CHUNK (64u * 1024u)

/* ---- a connection -------------------------------------------------------- */

static void conn_free(tls_conn_t *c) {
    SSL_free(c->ssl); /* and its BIO */
    aloop__tls_config_unref(c->cfg);
    OPENSSL_free(c->key);
    OPENSSL_free(c->alpn);
    OPENSSL_free(c->out);
    OPENSSL_free(c);
}

static tls_conn_t *conn_new(aloop_tls_config_t *cfg, int fd) {
    tls_conn_t *c = OPENSSL_zalloc(sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->cfg = cfg;
    aloop__tls_config_ref(cfg);
    c->ssl = SSL_new(cfg->ctx);
    BIO *bio = c->ssl ? BIO_new(cfg->bio) : NULL;
    if (!bio) {
        conn_free(c);
        return NULL;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_app_data(c->ssl, c);
    return c;
}

/* ---- the flusher: sends `out` when no call of the stream will ---------- */

/* Shared by the flusher task and its connection: c is NULL once the
 * connection stopped it (the task may still be about to run); the record
 * goes with the task's done callback, which also runs when aloop_free
 * cancels a task that never ran. */
typedef struct tls_flusher {
    tls_conn_t *c;
    aloop_task_t *task; /* referenced until the done callback */
} tls_flusher_t;

static void *flusher_main(void *arg) {
    tls_flusher_t *f = arg;
    /* -EBUSY: another task waits for the fd to become writable, a writer
     * of this stream, whose next call sends `out` first */
    while (f->c && aloop_wait_writable(f->c->fd, -1) == 0 && f->c)
        if (aloop__tls_flush_out(f->c) != -EAGAIN) break; /* an error shows at the next call */
    return NULL;
}

static void flusher_done(aloop_future_t *task, void *arg) {
    tls_flusher_t *f = arg;
    if (f->c) f->c->flusher = NULL;
    aloop_release(task);
    OPENSSL_free(f);
}

/* Starts the flusher if `out` holds bytes and none runs. Without memory
 * the bytes wait for the next call, as before. */
static void flusher_start(tls_conn_t *c) {
    aloop_t *loop = aloop_current();
    if (!c->out_len || c->flusher || c->err || !loop) return;
    tls_flusher_t *f = OPENSSL_zalloc(sizeof *f);
    if (!f) return;
    f->c = c;
    f->task = aloop_spawn(loop, flusher_main, f);
    if (!f->task || aloop_future_add_done_callback(f->task, flusher_done, f) < 0) {
        if (f->task) {
            f->c = NULL;
            aloop_cancel(f->task); /* it has not run: its function never will */
            aloop_release(f->task);
        }
        OPENSSL_free(f);
        return;
    }
    c->flusher = f;
}

/* A call of the stream takes over `out` (or the connection goes). */
static void flusher_stop(tls_conn_t *c) {
    tls_flusher_t *f = c->flusher;
    if (!f) return;
    c->flusher = NULL;
    f->c = NULL;
    aloop_cancel(f->task); /* gives up its wait at once: the fd is free */
}

/* The failure of an SSL call: sticky, as -errno. */
static int conn_fail(tls_conn_t *c, int ret) {
    int e = SSL_get_error(c->ssl, ret);
    c->err = aloop__tls_fail(c->ssl, e, c->io_errno);
    return c->err;
}

static ssize_t tls_read(void *ctx, int fd, void *buf, size_t n, int *want) {
    (void)fd;
    tls_conn_t *c = ctx;
    if (c->err) return c->err;
    if (c->rd_closed) return 0;
    if (c->out_len) (void)aloop__tls_flush_out(c); /* errors show at the next write */
    ERR_clear_error();
    size_t got;
    int r = SSL_read_ex(c->ssl, buf, n, &got);
    if (r == 1) {
        flusher_start(c); /* a key update's answer may not have fitted */
        return (ssize_t)got;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        flusher_start(c); /* this reader waits for readable only */
        *want = ALOOP_WANT_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: *want = ALOOP_WANT_WRITE; return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: c->rd_closed = 1; return 0;
    default: return conn_fail(c, r);
    }
}

/* -EAGAIN (want write) while `out` holds bytes, else 0 or the sticky -errno. */
static int tls_flush(tls_conn_t *c, int *want) {
    int rc = aloop__tls_flush_out(c);
    if (rc == -EAGAIN) *want = ALOOP_WANT_WRITE;
    else if (rc < 0) c->err = aloop__tls_fail(c->ssl, SSL_ERROR_SYSCALL, -rc);
    return rc == -EAGAIN ? rc : c->err;
}

static ssize_t tls_write(void *ctx, int fd, const void *buf, size_t n, int *want) {
    (void)fd;
    tls_conn_t *c = ctx;
    if (n == 0) { /* the stream gave up the write that waits: nothing is owed */
        c->owed = 0;
        flusher_start(c); /* but its records must still reach the peer */
        return 0;
    }
    if (c->err) return c->err;
    if (c->wr_closed) return -EPIPE;
    flusher_stop(c); /* this call sends `out` now, and waits for writable itself */
    int rc = tls_flush(c, want);
    if (rc < 0) return rc;
    if (c->owed) {
        size_t owed = c->owed;
        c->owed = 0;
        return (ssize_t)owed;
    }
    size_t w;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, buf, n < WRITE_CHUNK ? n : WRITE_CHUNK, &w);
    if (r != 1) return conn_fail(c, r);
    rc = tls_flush(c, want);
    if (rc == -EAGAIN) c->owed = w;
    return rc < 0 ? rc : (ssize_t)w;
}

static int tls_shutdown(void *ctx, int fd, int *want) {
    tls_conn_t *c = ctx;
    if (c->err) return c->err;
    flusher_stop(c);
    if (!c->wr_closed) {
        ERR_clear_error();
        int r = SSL_shutdown(c->ssl);
        if (r < 0) return conn_fail(c, r);
        c->wr_closed = 1;
    }
    int rc = tls_flush(c, want);
    if (rc < 0) return rc;
    shutdown(fd, SHUT_WR); /* peers that read the socket see the end too */
    return 0;
}

static void tls_close(void *ctx, int fd) {
    (void)fd;
    tls_conn_t *c = ctx;
    flusher_stop(c);
    if (c->handshaken && !c->err && !c->wr_closed) {
        ERR_clear_error();
        if (SSL_shutdown(c->ssl) >= 0) (void)aloop__tls_flush_out(c);
        ERR_clear_error();
    }
    conn_free(c);
}

static const aloop_stream_transport_t tls_transport = {
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

tls_conn_t *aloop__tls_conn_of(const aloop_stream_t *s) {
    return aloop_stream_transport(s) == &tls_transport ? aloop_stream_transport_ctx(s) : NULL;
}

const char *aloop_tls_version(const aloop_stream_t *s) {
    tls_conn_t *c = aloop__tls_conn_of(s);
    return c ? SSL_get_version(c->ssl) : NULL;
}

const char *aloop_tls_alpn(const aloop_stream_t *s) {
    tls_conn_t *c = aloop__tls_conn_of(s);
    if (!c) return NULL;
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(c->ssl, &p, &len);
    if (!len) return NULL;
    /* OpenSSL's copy is not NUL-terminated: keep one of ours */
    if (!c->alpn || strlen(c->alpn) != len || memcmp(c->alpn, p, len) != 0) {
        char *copy = OPENSSL_malloc(len + 1);
        if (!copy) return NULL;
        memcpy(copy, p, len);
        copy[len] = '\0';
        OPENSSL_free(c->alpn);
        c->alpn = copy;
    }
    return c->alpn;
}

int aloop_tls_resumed(const aloop_stream_t *s) {
    tls_conn_t *c = aloop__tls_conn_of(s);
    return c ? SSL_session_reused(c->ssl) : 0;
}

/* ---- the handshake ------------------------------------------------------- */

/* Waits until fd is ready for want, by the deadline (< 0: none). */
static int wait_fd(int fd, int want, double deadline) {
    double left = -1;
    if (deadline >= 0) {
        left = deadline - aloop_time(aloop_current());
        if (left < 0) left = 0;
    }
    int rc = want == ALOOP_WANT_WRITE ? aloop_wait_writable(fd, left)
                                      : aloop_wait_readable(fd, left);
    if (rc == -ETIMEDOUT) aloop__tls_set_error("handshake timed out");
    return rc;
}

/* Everything in `out` reaches the kernel. */
static int drain_out(tls_conn_t *c, double deadline) {
    for (;;) {
        int want = 0;
        int rc = tls_flush(c, &want);
        if (rc != -EAGAIN) return rc;
        if ((rc = wait_fd(c->fd, ALOOP_WANT_WRITE, deadline)) < 0) return rc;
    }
}

static int run_handshake(tls_conn_t *c, double deadline) {
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        int want = ALOOP_WANT_READ;
        if (r == 1) return drain_out(c, deadline);
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ: break;
        case SSL_ERROR_WANT_WRITE: want = ALOOP_WANT_WRITE; break;
        default: return conn_fail(c, r);
        }
        int rc = drain_out(c, deadline); /* our flight first, then the peer's */
        if (rc == 0) rc = wait_fd(c->fd, want, deadline);
        if (rc < 0) return rc;
    }
}

/* The client's session cache key: the peer's name (or address) and port,
 * and the checks the handshake makes (verification on or off, a name or
 * none): a resumed handshake checks no certificate, so a session is
 * offered only to a connection that asks for no more than its own did. */
static char *session_key(int fd, const char *name, int verify) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
    }
    char kind = name ? 'n' : 'a'; /* no name: the address itself, unchecked */
    if (!name) name = host;
    size_t n = strlen(name) + 16;
    char *key = OPENSSL_malloc(n);
    if (key) snprintf(key, n, "%c%c%s|%u", verify ? 'v' : '-', kind, name, port);
    return key;
}

static int is_ip_literal(const char *name) {
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Client settings of c: SNI, the name check, a kept session. */
static int client_setup(tls_conn_t *c, const char *name) {
    if (name) {
        int ip = is_ip_literal(name);
        if (!ip && !SSL_set_tlsext_host_name(c->ssl, name)) return -ENOMEM;
        X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip ? !X509_VERIFY_PARAM_set1_ip_asc(param, name)
               : !X509_VERIFY_PARAM_set1_host(param, name, 0))
            return -ENOMEM;
    }
    if (c->cfg->cache_on) {
        if (!(c->key = session_key(c->fd, name, c->cfg->verify))) return -ENOMEM;
        SSL_SESSION *sess = aloop__tls_session_find(c->cfg, c->key);
        if (sess && !SSL_set_session(c->ssl, sess)) return -ENOMEM;
    }
    SSL_set_connect_state(c->ssl);
    return 0;
}

int aloop__tls_handshake(aloop_stream_t *s, aloop_tls_config_t *cfg, const char *server_name,
                         double deadline, aloop_stream_t **out) {
    tls_conn_t *c = conn_new(cfg, aloop_stream_fd(s));
    int rc = c ? 0 : -ENOMEM;
    if (rc == 0 && cfg->server) SSL_set_accept_state(c->ssl);
    else if (rc == 0) rc = client_setup(c, server_name);
    if (rc == -ENOMEM) aloop__tls_set_error("out of memory");
    if (rc == 0) rc = run_handshake(c, deadline);
    if (rc == 0) rc = aloop_stream_set_transport(s, &tls_transport, c);
    ERR_clear_error();
    if (rc < 0) {
        if (c) conn_free(c);
        aloop_stream_close(s);
        return rc;
    }
    c->handshaken = 1;
    *out = s;
    return 0;
}

/* The checks of connect and accept; then s is the handshake's. */
static int handshake_entry(aloop_stream_t *s, aloop_tls_config_t *c, int server,
                           const char *name, double timeout, aloop_stream_t **out) {
    if (out) *out = NULL;
    int rc = 0;
    size_t name_len = name ? strlen(name) : 1; /* SNI: 1..255 bytes */
    if (!s || !c || !out || c->server != server || aloop_stream_transport(s) ||
        timeout != timeout || name_len == 0 || name_len > 255)
        rc = -EINVAL;
    else if (!aloop_current_task())
        rc = -EPERM;
    else /* no transport yet, so this changes nothing: it only says if s is
          * closed (-EBADF) or in a call (-EBUSY) before a byte goes out */
        rc = aloop_stream_set_transport(s, NULL, NULL);
    if (rc < 0) {
        if (s) aloop_stream_close(s);
        return rc;
    }
    double deadline = timeout < 0 ? -1 : aloop_time(aloop_current()) + timeout;
    return aloop__tls_handshake(s, c, name, deadline, out);
}

int aloop_tls_connect(aloop_stream_t *s, aloop_tls_config_t *c, const char *server_name,
                      double timeout, aloop_stream_t **out) {
    return handshake_entry(s, c, 0, server_name, timeout, out);
}

int aloop_tls_accept(aloop_stream_t *s, aloop_tls_config_t *c, double timeout,
                     aloop_stream_t **out) {
    return handshake_entry(s, c, 1, NULL, timeout, out);
}

/*
 * bio.c - the BIO under each TLS connection: OpenSSL reads the fd with
 * recv(2) (EAGAIN: "retry read"); its writes go to send(2) at once and
 * what the kernel does not take waits in the connection's `out` buffer,
 * so a BIO write never asks to be retried (conn.c says why).
 * MSG_NOSIGNAL: a peer gone is EPIPE, never SIGPIPE.
 */
#include "tls_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t sock_send(int fd, const void *p, size_t n) {
    ssize_t r = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK) r = write(fd, p, n);
    return r;
}

int aloop__tls_flush_out(tls_conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t r = sock_send(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return -EAGAIN;
            if (errno == EINTR) continue;
            c->io_errno = errno;
            return -errno;
        }
        c->out_off += (size_t)r;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int bio_write(BIO *b, const char *data, int len) {
    tls_conn_t *c = BIO_get_data(b);
    size_t n = (size_t)len, done = 0;
    BIO_clear_retry_flags(b);
    while (c->out_len == 0 && done < n) { /* nothing waiting: straight to the kernel */
        ssize_t r = sock_send(c->fd, data + done, n - done);
        if (r >= 0) {
            done += (size_t)r;
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        c->io_errno = errno;
        return -1;
    }
    if (done == n) return len;
    if (c->out_cap - c->out_len < n - done) {
        size_t cap = c->out_len + (n - done);
        char *grown = OPENSSL_realloc(c->out, cap);
        if (!grown) {
            c->io_errno = ENOMEM;
            return -1;
        }
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data + done, n - done);
    c->out_len += n - done;
    return len;
}

static int bio_read(BIO *b, char *buf, int len) {
    tls_conn_t *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = recv(c->fd, buf, (size_t)len, MSG_DONTWAIT);
        if (r < 0 && errno == ENOTSOCK) r = read(c->fd, buf, (size_t)len);
        if (r > 0) return (int)r;
        if (r == 0) {
            c->peer_eof = 1;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
        else c->io_errno = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    tls_conn_t *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return c && c->peer_eof; /* OpenSSL: EOF without close_notify */
    default: return 0;
    }
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

BIO_METHOD *aloop__tls_bio_method_new(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "aloop fd");
    if (!m) return NULL;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}


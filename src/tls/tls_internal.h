/*
 * tls_internal.h - what the files of aloop-tls share: the config, one
 * connection's state, and the error mapping. aloop-tls sees libaloop
 * through its public header only (aloop.h, the stream transport).
 */
#ifndef ALOOP_TLS_INTERNAL_H
#define ALOOP_TLS_INTERNAL_H

#include "aloop_tls.h"

#include <openssl/ssl.h>

/* A client's kept session for one server (name and port). */
typedef struct tls_session {
    char *key;
    SSL_SESSION *sess;
} tls_session_t;

struct aloop_tls_config {
    SSL_CTX *ctx;
    BIO_METHOD *bio; /* our fd BIO (conn.c), one per config: no global state */
    unsigned refs;   /* the user's, plus one per connection and server */
    uint8_t server;
    uint8_t verify;          /* check the peer's certificate */
    uint8_t require_cert;    /* server: a client certificate is required */
    uint8_t cache_on;        /* client: keep sessions for resumption */
    unsigned char *alpn;     /* wire format: length-prefixed names */
    size_t alpn_len;
    tls_session_t *sessions; /* client: oldest first */
    size_t nsessions;
};

/* One TLS connection: the ctx of its stream's transport. */
typedef struct tls_conn {
    SSL *ssl;
    aloop_tls_config_t *cfg; /* referenced */
    int fd;
    char *key;      /* client: the session cache key ("name|port"), or NULL */
    char *alpn;     /* aloop_tls_alpn's NUL-terminated copy, or NULL */
    char *out;      /* ciphertext the kernel did not take yet, [out_off, out_len) */
    size_t out_off, out_len, out_cap;
    size_t owed;    /* plaintext bytes of a write whose records wait in out */
    int err;        /* sticky: the connection failed with this -errno */
    int io_errno;   /* errno of the BIO's last failed system call */
    uint8_t peer_eof;   /* the fd read 0: the peer closed its side */
    uint8_t rd_closed;  /* close_notify received: reads return 0 */
    uint8_t wr_closed;  /* close_notify sent (or being sent) */
    uint8_t handshaken; /* the handshake completed */
    struct tls_flusher *flusher; /* sending `out` for nobody's call, or NULL (conn.c) */
} tls_conn_t;

/* config.c */
void aloop__tls_config_ref(aloop_tls_config_t *c);
void aloop__tls_config_unref(aloop_tls_config_t *c);
/* The kept session for key, or NULL (the caller does not own it). */
SSL_SESSION *aloop__tls_session_find(aloop_tls_config_t *c, const char *key);

/* error.c: the -errno of a failed SSL call (ssl_err from SSL_get_error)
 * and the thread's error text set from the OpenSSL error queue, which is
 * emptied. ssl may be NULL. */
int aloop__tls_fail(SSL *ssl, int ssl_err, int io_errno);
/* Sets the thread's error text (printf-style). */
void aloop__tls_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* bio.c: our BIO over the fd (one method per config: no global state) */
BIO_METHOD *aloop__tls_bio_method_new(void);
/* Sends what c->out holds: 0 once empty, -EAGAIN, or -errno (c->io_errno). */
int aloop__tls_flush_out(tls_conn_t *c);

/* conn.c */
/* The connection of s, or NULL when s is not a TLS stream. */
tls_conn_t *aloop__tls_conn_of(const aloop_stream_t *s);
/* The handshake of either side (a server config: accept) over s, taken
 * over as aloop_tls_connect says; deadline: absolute, on the loop's clock
 * (< 0: none). */
int aloop__tls_handshake(aloop_stream_t *s, aloop_tls_config_t *c, const char *server_name,
                         double deadline, aloop_stream_t **out);

#endif

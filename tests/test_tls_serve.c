/*
 * test_tls_serve.c - aloop_serve_tls (src/tls/serve.c) kept live under the
 * byte arrivals that could strand a handshake or a handler: the client's
 * Finished and its first request in one segment, a whole handshake in
 * small pieces, and bursts of connections at once after others closed.
 * The odd clients are OpenSSL over memory BIOs in a task of the same loop,
 * so the test decides how the bytes reach the socket. Every wait has a
 * deadline far beyond need: a stall fails instead of hanging.
 */
#include "aloop_test.h"

#include "aloop_tls.h"
#include "tls_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define PATIENCE 10.0 /* seconds: only a stall comes near it */

/* The bench's protocol: one request "GET ...\r\n\r\n", an answer, the end. */
static void answer_handler(aloop_stream_t *conn, void *arg) {
    int *handled = arg;
    char req[256];
    ssize_t n = aloop_stream_readuntil(conn, "\r\n\r\n", 4, req, sizeof req);
    if (n <= 0) return;
    if (aloop_stream_write(conn, "OK\n", 3) == 3 && aloop_stream_shutdown(conn) == 0) ++*handled;
}

typedef struct served {
    char port[16];
    aloop_server_t *srv;
    int handled;
} served_t;

static void serve_start(served_t *s) {
    int lfd = listen_any(s->port, sizeof s->port);
    aloop_tls_config_t *cfg = aloop_tls_server_config_new(cert("server.pem"), cert("server.key"));
    assert_non_null(cfg);
    s->srv = aloop_serve_tls(aloop_current(), lfd, cfg, NULL, answer_handler, &s->handled);
    assert_non_null(s->srv);
    aloop_tls_config_free(cfg);
}

static void serve_stop(served_t *s) {
    assert_int_equal(aloop_server_close(s->srv), 0);
    assert_int_equal(aloop_server_wait_closed(s->srv), 0);
    aloop_server_free(s->srv);
}

/* ---- a client over memory BIOs: the test chooses the segments ------------- */

typedef struct raw {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out; /* network bytes: from the server, for the server */
    int fd;
} raw_t;

static void raw_open(raw_t *r, const char *port, int tls12) {
    r->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(r->ctx);
    if (tls12) SSL_CTX_set_max_proto_version(r->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(r->ctx, SSL_VERIFY_NONE, NULL);
    r->ssl = SSL_new(r->ctx);
    r->in = BIO_new(BIO_s_mem());
    r->out = BIO_new(BIO_s_mem());
    assert_true(r->ssl && r->in && r->out);
    SSL_set_bio(r->ssl, r->in, r->out);
    SSL_set_connect_state(r->ssl);
    r->fd = aloop_tcp_connect("127.0.0.1", port, PATIENCE);
    assert_true(r->fd >= 0);
}

static void raw_close(raw_t *r) {
    aloop_close(r->fd);
    SSL_free(r->ssl);
    SSL_CTX_free(r->ctx);
}

/* Sends what OpenSSL produced, `piece` bytes per write (0: one write), a
 * loop iteration apart so the server reads each piece on its own. */
static void raw_send(raw_t *r, size_t piece) {
    char buf[16384];
    int n;
    while ((n = BIO_read(r->out, buf, (int)(piece && piece < sizeof buf ? piece : sizeof buf))) > 0) {
        assert_int_equal(aloop_write_all(r->fd, buf, (size_t)n), n);
        if (piece) assert_int_equal(aloop_sleep(0.001), 0);
    }
}

/* Moves what the server sent into OpenSSL: 0 at EOF, else the bytes. */
static ssize_t raw_recv(raw_t *r) {
    char buf[16384];
    int rc = aloop_wait_readable(r->fd, PATIENCE);
    if (rc < 0) fail_msg("the server stalled (%d)", rc);
    ssize_t n = aloop_read(r->fd, buf, sizeof buf);
    assert_true(n >= 0);
    if (n > 0) assert_int_equal(BIO_write(r->in, buf, (int)n), n);
    return n;
}

/* The handshake up to the client's last flight, which stays unsent. */
static void raw_handshake(raw_t *r, size_t piece) {
    int hs;
    while ((hs = SSL_do_handshake(r->ssl)) != 1) {
        assert_int_equal(SSL_get_error(r->ssl, hs), SSL_ERROR_WANT_READ);
        raw_send(r, piece);
        assert_true(raw_recv(r) > 0);
    }
}

/* The answer to the request, read to the server's close_notify. */
static void raw_expect_answer(raw_t *r) {
    char got[64];
    size_t len = 0;
    for (;;) {
        size_t n;
        int rc = SSL_read_ex(r->ssl, got + len, sizeof got - 1 - len, &n);
        if (rc == 1) {
            len += n;
            continue;
        }
        int e = SSL_get_error(r->ssl, rc);
        if (e == SSL_ERROR_ZERO_RETURN) break;
        assert_int_equal(e, SSL_ERROR_WANT_READ);
        raw_send(r, 0); /* nothing, or a reply to a key update */
        assert_true(raw_recv(r) > 0);
    }
    got[len] = '\0';
    assert_string_equal(got, "OK\n");
}

static const char request[] = "GET /small HTTP/1.0\r\n\r\n";

typedef struct raw_case {
    size_t piece; /* 0: the last flight and the request in one write */
    int tls12;
} raw_case_t;

static void *raw_case_main(void *arg) {
    raw_case_t *c = arg;
    served_t s = {0};
    serve_start(&s);
    raw_t r;
    raw_open(&r, s.port, c->tls12);
    raw_handshake(&r, c->piece);
    size_t w;
    assert_int_equal(SSL_write_ex(r.ssl, request, sizeof request - 1, &w), 1);
    raw_send(&r, c->piece); /* TLS 1.3: Finished and the request together */
    raw_expect_answer(&r);
    raw_close(&r);
    serve_stop(&s);
    assert_int_equal(s.handled, 1);
    return NULL;
}

static void run_case(size_t piece, int tls12) {
    raw_case_t c = {piece, tls12};
    assert_int_equal(aloop_main_with(NULL, raw_case_main, &c, NULL), 0);
}

/* TLS 1.3: the server finishes its handshake on a segment that also
 * carries the request, so the request is already here (in OpenSSL's buffer
 * with read-ahead, else in the kernel's) when the handler first reads: a
 * read that waited on the fd before asking OpenSSL would wait for ever. */
static void tls_serve_finished_and_request_in_one_segment(void **state) {
    (void)state;
    run_case(0, 0);
}

/* Every flight of the client, and the request, 7 bytes at a time: each
 * partial record is a "want read" the server must wait out on the fd. */
static void tls_serve_handshake_in_small_pieces(void **state) {
    (void)state;
    run_case(7, 0);
}

static void tls_serve_handshake_in_small_pieces_tls12(void **state) {
    (void)state;
    run_case(7, 1);
}

/* ---- bursts: the accept task meets 8 connections at once ------------------ */

#define BURST 8
#define ROUNDS 4

typedef struct burst {
    const char *port;
    aloop_tls_config_t *ccfg;
    int ok;
} burst_t;

static void *burst_client(void *arg) {
    burst_t *b = arg;
    aloop_stream_t *s;
    int rc = aloop_open_tls_connection("127.0.0.1", b->port, b->ccfg, PATIENCE, &s);
    if (rc < 0) return NULL;
    char got[16];
    if (aloop_stream_write(s, request, sizeof request - 1) == (ssize_t)sizeof request - 1 &&
        aloop_stream_readexactly(s, got, 3) == 3 && memcmp(got, "OK\n", 3) == 0 &&
        aloop_stream_read(s, got, sizeof got) == 0)
        b->ok = 1;
    aloop_stream_close(s);
    return NULL;
}

static void *burst_main(void *arg) {
    (void)arg;
    served_t s = {0};
    serve_start(&s);
    aloop_tls_config_t *ccfg = aloop_tls_client_config_new();
    assert_non_null(ccfg);
    assert_int_equal(aloop_tls_config_set_verify(ccfg, 0), 0);
    assert_int_equal(aloop_tls_config_set_session_cache(ccfg, 0), 0); /* full handshakes */
    for (int round = 0; round < ROUNDS; round++) {
        burst_t b[BURST];
        aloop_task_t *t[BURST];
        for (int i = 0; i < BURST; i++) {
            b[i] = (burst_t){.port = s.port, .ccfg = ccfg};
            t[i] = aloop_spawn(aloop_current(), burst_client, &b[i]);
            assert_non_null(t[i]);
        }
        for (int i = 0; i < BURST; i++) {
            assert_int_equal(aloop_await(t[i], NULL), 0);
            aloop_release(t[i]);
            assert_true(b[i].ok);
        }
        /* every handler of the round has returned before the next burst */
        while (aloop_server_connections(s.srv) > 0) assert_int_equal(aloop_sleep(0.001), 0);
    }
    serve_stop(&s);
    assert_int_equal(s.handled, BURST * ROUNDS);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_serve_bursts_after_closes(void **state) {
    (void)state;
    assert_int_equal(aloop_main_with(NULL, burst_main, NULL, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_serve_finished_and_request_in_one_segment),
        cmocka_unit_test(tls_serve_handshake_in_small_pieces),
        cmocka_unit_test(tls_serve_handshake_in_small_pieces_tls12),
        cmocka_unit_test(tls_serve_bursts_after_closes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_tls.c - aloop-tls (src/tls/): TLS streams through the public API
 * only. Both ends run in one loop, over a socketpair or loopback TCP; the
 * certificates come from tests/tls/gen-certs.sh (the ctest fixture
 * tls_certs) in the directory $ALOOP_TLS_CERTS. OpenSSL itself is named
 * only to route its allocations through the test allocator (the sweep).
 */
#include "aloop_test.h"

#include "aloop_tls.h"
#include "tls_test.h"

#include <openssl/crypto.h>

#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------- */

/* A connected pair with the test server certificate and CA, checked. */
typedef struct conn_pair {
    aloop_tls_config_t *scfg, *ccfg;
    aloop_stream_t *srv, *cli;
} conn_pair_t;

static void open_pair(conn_pair_t *p) {
    p->scfg = server_config("server");
    p->ccfg = client_config();
    side_t srv = {.cfg = p->scfg}, cli = {.cfg = p->ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    p->srv = srv.out;
    p->cli = cli.out;
}

static void close_pair(conn_pair_t *p) {
    if (p->srv) aloop_stream_close(p->srv);
    if (p->cli) aloop_stream_close(p->cli);
    aloop_tls_config_free(p->scfg);
    aloop_tls_config_free(p->ccfg);
}

/* ---- round trips ------------------------------------------------------------ */

static void *round_trip_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    assert_string_equal(aloop_tls_version(p.cli), "TLSv1.3");
    assert_string_equal(aloop_tls_version(p.srv), "TLSv1.3");
    assert_int_equal(aloop_tls_resumed(p.cli), 0);
    assert_null(aloop_tls_alpn(p.cli));
    assert_int_equal(aloop_stream_write(p.cli, "hello\nworld\n", 12), 12);
    char line[64];
    assert_int_equal(aloop_stream_readline(p.srv, line, sizeof line), 6);
    assert_string_equal(line, "hello\n");
    assert_int_equal(aloop_stream_readline(p.srv, line, sizeof line), 6);
    assert_string_equal(line, "world\n");
    assert_int_equal(aloop_stream_write(p.srv, "a::b::", 6), 6);
    assert_int_equal(aloop_stream_readuntil(p.cli, "::", 2, line, sizeof line), 3);
    assert_string_equal(line, "a::");
    assert_int_equal(aloop_stream_readexactly(p.cli, line, 3), 3);
    assert_memory_equal(line, "b::", 3);
    close_pair(&p);
    return NULL;
}

static void tls_round_trip(void **state) {
    (void)state;
    run(round_trip_main, NULL);
}

/* Not a TLS stream: the queries say so. */
static void *plain_queries_main(void *arg) {
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), sv[0], 0);
    assert_null(aloop_tls_version(s));
    assert_null(aloop_tls_alpn(s));
    assert_int_equal(aloop_tls_resumed(s), 0);
    assert_null(aloop_tls_version(NULL));
    aloop_stream_close(s);
    close(sv[1]);
    return NULL;
}

static void tls_queries_on_plain_stream(void **state) {
    (void)state;
    run(plain_queries_main, NULL);
}

/* ---- echo with copy, big transfers -------------------------------------------- */

static void *echo_main(void *arg) {
    aloop_stream_t *s = arg;
    size_t copied = 0;
    int rc = aloop_stream_copy(s, s, 0, &copied);
    assert_int_equal(rc, 0);
    assert_int_equal(aloop_stream_shutdown(s), 0);
    return (void *)copied;
}

typedef struct bulk {
    aloop_stream_t *s;
    size_t n;
    unsigned seed;
} bulk_t;

static unsigned char pattern(size_t i, unsigned seed) {
    return (unsigned char)((i * 2654435761u) >> 13 ^ seed);
}

static void *bulk_writer(void *arg) {
    bulk_t *b = arg;
    unsigned char *buf = malloc(b->n);
    assert_non_null(buf);
    for (size_t i = 0; i < b->n; i++) buf[i] = pattern(i, b->seed);
    /* in uneven pieces, so records and writes do not line up */
    size_t off = 0, piece = 1;
    while (off < b->n) {
        size_t len = b->n - off < piece ? b->n - off : piece;
        assert_int_equal(aloop_stream_write(b->s, buf + off, len), (ssize_t)len);
        off += len;
        piece = piece * 3 + 7;
        if (piece > 300000) piece = 1;
    }
    free(buf);
    assert_int_equal(aloop_stream_shutdown(b->s), 0);
    return NULL;
}

static void *bulk_reader(void *arg) {
    bulk_t *b = arg;
    unsigned char *buf = malloc(b->n + 1);
    assert_non_null(buf);
    assert_int_equal(aloop_stream_readexactly(b->s, buf, b->n), (ssize_t)b->n);
    for (size_t i = 0; i < b->n; i++)
        if (buf[i] != pattern(i, b->seed)) fail_msg("byte %zu differs", i);
    assert_int_equal(aloop_stream_read(b->s, buf, 1), 0); /* close_notify */
    free(buf);
    return NULL;
}

static void *echo_copy_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    aloop_task_t *echo = spawn(aloop_current(), echo_main, p.srv);
    bulk_t w = {.s = p.cli, .n = 300000, .seed = 7}, r = w;
    aloop_task_t *t[2] = {spawn(aloop_current(), bulk_writer, &w),
                          spawn(aloop_current(), bulk_reader, &r)};
    assert_int_equal(aloop_gather(t, 2, NULL, NULL, 0), 0);
    void *copied;
    assert_int_equal(aloop_await(echo, &copied), 0);
    assert_int_equal((size_t)copied, 300000);
    aloop_release(echo);
    aloop_release(t[0]);
    aloop_release(t[1]);
    close_pair(&p);
    return NULL;
}

static void tls_echo_with_copy(void **state) {
    (void)state;
    run(echo_copy_main, NULL);
}

/* 4 MiB each way at once, byte-exact: four tasks, one reader and one
 * writer per side. */
static void *four_mib_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    size_t n = 4u << 20;
    bulk_t cw = {.s = p.cli, .n = n, .seed = 1}, sr = cw;
    bulk_t sw = {.s = p.srv, .n = n, .seed = 2}, cr = sw;
    sr.s = p.srv;
    cr.s = p.cli;
    aloop_task_t *t[4] = {spawn(aloop_current(), bulk_writer, &cw),
                          spawn(aloop_current(), bulk_reader, &sr),
                          spawn(aloop_current(), bulk_writer, &sw),
                          spawn(aloop_current(), bulk_reader, &cr)};
    assert_int_equal(aloop_gather(t, 4, NULL, NULL, 0), 0);
    for (int i = 0; i < 4; i++) aloop_release(t[i]);
    close_pair(&p);
    return NULL;
}

static void tls_four_mib_both_ways(void **state) {
    (void)state;
    run(four_mib_main, NULL);
}

/* ---- EOF: close_notify, half-close, truncation --------------------------------- */

static void *half_close_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    char buf[16];
    assert_int_equal(aloop_stream_write(p.cli, "last", 4), 4);
    assert_int_equal(aloop_stream_shutdown(p.cli), 0);
    assert_int_equal(aloop_stream_shutdown(p.cli), 0); /* again: nothing */
    assert_int_equal(aloop_stream_write(p.cli, "x", 1), -EPIPE);
    assert_int_equal(aloop_stream_readexactly(p.srv, buf, 4), 4);
    assert_int_equal(aloop_stream_read(p.srv, buf, sizeof buf), 0);
    assert_int_equal(aloop_stream_read(p.srv, buf, sizeof buf), 0); /* stays 0 */
    /* the side that got close_notify may still write (TLS 1.3 half-close) */
    assert_int_equal(aloop_stream_write(p.srv, "reply", 5), 5);
    assert_int_equal(aloop_stream_shutdown(p.srv), 0);
    assert_int_equal(aloop_stream_readexactly(p.cli, buf, 5), 5);
    assert_memory_equal(buf, "reply", 5);
    assert_int_equal(aloop_stream_read(p.cli, buf, sizeof buf), 0);
    close_pair(&p);
    return NULL;
}

static void tls_shutdown_half_close(void **state) {
    (void)state;
    run(half_close_main, NULL);
}

/* The peer's socket ends without close_notify: -ECONNRESET, sticky. */
static void *truncation_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    assert_int_equal(aloop_stream_write(p.cli, "part", 4), 4);
    /* no close_notify can get out: the socket is shut first */
    shutdown(aloop_stream_fd(p.cli), SHUT_RDWR);
    aloop_stream_close(p.cli);
    p.cli = NULL;
    char buf[16];
    assert_int_equal(aloop_stream_read(p.srv, buf, sizeof buf), 4);
    assert_int_equal(aloop_stream_read(p.srv, buf, sizeof buf), -ECONNRESET);
    assert_true(strlen(aloop_tls_error()) > 0);
    assert_int_equal(aloop_stream_read(p.srv, buf, sizeof buf), -ECONNRESET);
    close_pair(&p);
    return NULL;
}

static void tls_close_without_close_notify_is_reset(void **state) {
    (void)state;
    run(truncation_main, NULL);
}

/* aloop_stream_close sends close_notify when it can: the peer reads EOF. */
static void *close_sends_notify_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    assert_int_equal(aloop_stream_write(p.srv, "bye", 3), 3);
    aloop_stream_close(p.srv);
    p.srv = NULL;
    char buf[16];
    assert_int_equal(aloop_stream_readexactly(p.cli, buf, 3), 3);
    assert_int_equal(aloop_stream_read(p.cli, buf, sizeof buf), 0);
    close_pair(&p);
    return NULL;
}

static void tls_close_sends_close_notify(void **state) {
    (void)state;
    run(close_sends_notify_main, NULL);
}

/* ---- verification ------------------------------------------------------------ */

typedef struct verify_case {
    const char *server_cert; /* base name in the certs dir */
    const char *name;        /* the name the client checks */
    int verify;              /* client's set_verify */
    int want_cli;            /* the client's result */
    const char *words;       /* in aloop_tls_error() after the client's failure */
} verify_case_t;

static void *verify_main(void *arg) {
    verify_case_t *v = arg;
    aloop_tls_config_t *scfg = server_config(v->server_cert), *ccfg = client_config();
    assert_int_equal(aloop_tls_config_set_verify(ccfg, v->verify), 0);
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = v->name};
    handshake_pair(&srv, &cli);
    assert_int_equal(cli.rc, v->want_cli);
    if (v->want_cli == 0) {
        assert_int_equal(srv.rc, 0);
        assert_non_null(cli.out);
        aloop_stream_close(cli.out);
        aloop_stream_close(srv.out);
    } else {
        assert_null(cli.out);
        assert_null(srv.out);
        /* the client told the server why: a refused certificate there too */
        assert_int_equal(srv.rc, -EKEYREJECTED);
    }
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

/* The client's failure words, checked in the client task itself (the
 * text is per thread: the server's failure comes after it). */
static void *verify_words_main(void *arg) {
    verify_case_t *v = arg;
    aloop_tls_config_t *scfg = server_config(v->server_cert), *ccfg = client_config();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    side_t srv = {.cfg = scfg, .timeout = 10};
    srv.s = aloop_stream_new(aloop_current(), sv[0], 0);
    aloop_task_t *t = spawn(aloop_current(), accept_main, &srv);
    aloop_stream_t *out = NULL;
    int rc = aloop_tls_connect(aloop_stream_new(aloop_current(), sv[1], 0), ccfg, v->name, 10,
                               &out);
    assert_int_equal(rc, v->want_cli);
    if (!strstr(aloop_tls_error(), v->words))
        fail_msg("aloop_tls_error() is \"%s\", wanted \"%s\" in it", aloop_tls_error(), v->words);
    assert_int_equal(aloop_await(t, NULL), 0);
    aloop_release(t);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void check_verify(verify_case_t v) {
    run(verify_main, &v);
    if (v.words) run(verify_words_main, &v);
}

static void tls_verify_expired(void **state) {
    (void)state;
    check_verify((verify_case_t){"expired", "localhost", 1, -EKEYREJECTED, "expired"});
}

static void tls_verify_wrong_name(void **state) {
    (void)state;
    check_verify((verify_case_t){"wrongname", "localhost", 1, -EKEYREJECTED, "mismatch"});
    /* a name the certificate has, but the client asked for another one */
    check_verify((verify_case_t){"server", "other.example", 1, -EKEYREJECTED, "mismatch"});
}

static void tls_verify_untrusted(void **state) {
    (void)state;
    check_verify((verify_case_t){"untrusted", "localhost", 1, -EKEYREJECTED, "self-signed"});
}

static void tls_verify_ip_address(void **state) {
    (void)state;
    /* IP-address names are checked against the IP SANs */
    check_verify((verify_case_t){"server", "127.0.0.1", 1, 0, NULL});
    check_verify((verify_case_t){"server", "::1", 1, 0, NULL});
    check_verify((verify_case_t){"server", "127.0.0.2", 1, -EKEYREJECTED, "mismatch"});
    check_verify((verify_case_t){"wrongname", "127.0.0.1", 1, -EKEYREJECTED, "mismatch"});
}

static void tls_verify_off_accepts_any(void **state) {
    (void)state;
    check_verify((verify_case_t){"untrusted", "localhost", 0, 0, NULL});
    check_verify((verify_case_t){"expired", "nobody.example", 0, 0, NULL});
}

/* The system store of a client given no CA file: the one SSL_CERT_FILE
 * names (SSL_CERT_DIR away from the machine's own). */
typedef struct store_case {
    const char *ca_file;
    int want_cli;
} store_case_t;

static void *system_store_main(void *arg) {
    store_case_t *v = arg;
    assert_int_equal(setenv("SSL_CERT_FILE", v->ca_file, 1), 0);
    assert_int_equal(setenv("SSL_CERT_DIR", "/nonexistent", 1), 0);
    aloop_tls_config_t *ccfg = aloop_tls_client_config_new();
    unsetenv("SSL_CERT_FILE");
    unsetenv("SSL_CERT_DIR");
    assert_non_null(ccfg);
    aloop_tls_config_t *scfg = server_config("server");
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(cli.rc, v->want_cli);
    if (srv.out) aloop_stream_close(srv.out);
    if (cli.out) aloop_stream_close(cli.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_verify_system_store(void **state) {
    (void)state;
    store_case_t trusted = {cert("ca.pem"), 0}, other = {cert("other-ca.pem"), -EKEYREJECTED};
    run(system_store_main, &trusted);
    run(system_store_main, &other);
}

/* ---- handshake failures: not TLS, timeouts, cancels ----------------------------- */

typedef struct raw_peer {
    int fd;
    const char *send; /* NULL: send nothing */
    int shut;         /* then end its side (SHUT_WR) */
} raw_peer_t;

static void *raw_peer_main(void *arg) {
    raw_peer_t *r = arg;
    if (r->send) aloop_write_all(r->fd, r->send, strlen(r->send));
    if (r->shut) shutdown(r->fd, SHUT_WR);
    char buf[4096];
    while (aloop_read(r->fd, buf, sizeof buf) > 0) continue; /* until the server closes */
    return NULL;
}

typedef struct raw_case {
    const char *send;
    double timeout;
    int want;
    double took; /* virtual seconds until the failure */
    int shut;    /* the peer ends its side after sending */
} raw_case_t;

static void *raw_main(void *arg) {
    raw_case_t *c = arg;
    aloop_tls_config_t *scfg = server_config("server");
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    raw_peer_t peer = {.fd = sv[1], .send = c->send, .shut = c->shut};
    aloop_task_t *t = spawn(aloop_current(), raw_peer_main, &peer);
    aloop_stream_t *out = (aloop_stream_t *)&out;
    double t0 = now();
    int rc = aloop_tls_accept(aloop_stream_new(aloop_current(), sv[0], 0), scfg, c->timeout, &out);
    c->took = now() - t0;
    assert_int_equal(rc, c->want);
    assert_null(out);
    assert_true(strlen(aloop_tls_error()) > 0);
    /* the stream was closed: the peer sees EOF and ends */
    assert_int_equal(aloop_await(t, NULL), 0);
    aloop_release(t);
    close(sv[1]);
    aloop_tls_config_free(scfg);
    return NULL;
}

static void tls_garbage_is_eproto(void **state) {
    (void)state;
    raw_case_t c = {"GET / HTTP/1.0\r\n\r\n", 10, -EPROTO, 0, 0};
    run_virtual(raw_main, &c);
    assert_true(c.took < 10);
}

static void tls_handshake_timeout(void **state) {
    (void)state;
    raw_case_t c = {NULL, 2.5, -ETIMEDOUT, 0, 0};
    run_virtual(raw_main, &c);
    assert_true(c.took >= 2.5 && c.took < 2.6);
}

/* Cancelled while waiting for the peer's flight: -ECANCELED, the stream
 * closed (the peer sees EOF), nothing leaks (ASan). */
static void *cancelled_accept(void *arg) {
    side_t *h = arg;
    h->rc = aloop_tls_accept(h->s, h->cfg, -1, &h->out);
    return NULL;
}

static void *cancel_handshake_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server");
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    side_t h = {.s = aloop_stream_new(aloop_current(), sv[0], 0), .cfg = scfg};
    aloop_task_t *t = spawn(aloop_current(), cancelled_accept, &h);
    assert_int_equal(aloop_sleep(1), 0);
    assert_int_equal(aloop_cancel(t), 1);
    aloop_await(t, NULL);
    aloop_release(t);
    assert_int_equal(h.rc, -ECANCELED);
    assert_null(h.out);
    char c;
    assert_int_equal(read(sv[1], &c, 1), 0); /* closed */
    close(sv[1]);
    aloop_tls_config_free(scfg);
    return NULL;
}

static void tls_cancel_handshake(void **state) {
    (void)state;
    run_virtual(cancel_handshake_main, NULL);
}

/* ---- closing and cancelling while others wait ----------------------------------- */

static void *readline_main(void *arg) {
    aloop_stream_t *s = arg;
    char line[64];
    return (void *)(intptr_t)aloop_stream_readline(s, line, sizeof line);
}

/* A TLS stream closed while a reader waits in it: the reader gets -EBADF,
 * the connection's state goes once (ASan: no use after free). */
static void *close_while_reading_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    assert_int_equal(aloop_stream_write(p.srv, "no newline yet", 14), 14);
    aloop_task_t *t = spawn(aloop_current(), readline_main, p.cli);
    assert_int_equal(aloop_sleep(0.01), 0);
    assert_int_equal(aloop_stream_close(p.cli), 0);
    p.cli = NULL;
    void *res;
    assert_int_equal(aloop_await(t, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    aloop_release(t);
    close_pair(&p);
    return NULL;
}

static void tls_close_while_reading(void **state) {
    (void)state;
    run_virtual(close_while_reading_main, NULL);
}

/* The client's handshake cancelled while it waits for the server's
 * flight (the server never answers). */
static void *cancel_connect_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *ccfg = client_config();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    side_t h = {.s = aloop_stream_new(aloop_current(), sv[0], 0), .cfg = ccfg,
                .name = "localhost", .timeout = -1};
    aloop_task_t *t = spawn(aloop_current(), connect_main, &h);
    assert_int_equal(aloop_sleep(1), 0);
    char hello[5];
    assert_int_equal(read(sv[1], hello, sizeof hello), 5); /* its ClientHello began */
    assert_int_equal(hello[0], 0x16);                      /* a handshake record */
    assert_int_equal(aloop_cancel(t), 1);
    aloop_await(t, NULL);
    aloop_release(t);
    assert_int_equal(h.rc, -ECANCELED);
    assert_null(h.out);
    char buf[4096];
    ssize_t n;
    while ((n = read(sv[1], buf, sizeof buf)) > 0) continue;
    assert_int_equal(n, 0); /* closed */
    close(sv[1]);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_cancel_connect(void **state) {
    (void)state;
    run_virtual(cancel_connect_main, NULL);
}

/* A peer that closes half-way through the handshake: -ECONNRESET, at once. */
static void tls_handshake_cut_short(void **state) {
    (void)state;
    /* the first bytes of a handshake record's header, then the end */
    raw_case_t c = {"\x16\x03\x01", 10, -ECONNRESET, 0, 1};
    run_virtual(raw_main, &c);
    assert_true(c.took < 10);
}

/* ---- reads: cancelled reads keep their bytes; the budget ----------------------- */

static void *read_20(void *arg) {
    aloop_stream_t *s = arg;
    char buf[20];
    ssize_t n = aloop_stream_readexactly(s, buf, sizeof buf);
    return (void *)(intptr_t)n;
}

static void *cancelled_read_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    assert_int_equal(aloop_stream_write(p.srv, "0123456789", 10), 10);
    aloop_task_t *t = spawn(aloop_current(), read_20, p.cli);
    assert_int_equal(aloop_sleep(0.01), 0); /* it has the 10 bytes and waits */
    assert_int_equal(aloop_cancel(t), 1);
    void *res;
    assert_int_equal(aloop_await(t, &res), -ECANCELED);
    aloop_release(t);
    assert_int_equal(aloop_stream_write(p.srv, "abcdefghij", 10), 10);
    char buf[21] = {0};
    assert_int_equal(aloop_stream_readexactly(p.cli, buf, 20), 20);
    assert_string_equal(buf, "0123456789abcdefghij");
    close_pair(&p);
    return NULL;
}

static void tls_cancelled_read_keeps_bytes(void **state) {
    (void)state;
    run_virtual(cancelled_read_main, NULL);
}

/* A reader whose socket always has data (records already sent and
 * waiting) still lets the other tasks run: the cooperative budget. */
typedef struct fair {
    aloop_stream_t *s;
    int reading, done;
    long ticks, ticks_while_reading;
} fair_t;

static void *fair_reader(void *arg) {
    fair_t *f = arg;
    char buf[8192];
    size_t total = 0;
    f->reading = 1;
    while (total < 1000u * 100u) {
        ssize_t n = aloop_stream_read(f->s, buf, sizeof buf);
        assert_true(n > 0);
        total += (size_t)n;
    }
    f->ticks_while_reading = f->ticks;
    f->done = 1;
    return NULL;
}

static void *ticker(void *arg) {
    fair_t *f = arg;
    while (!f->done) {
        if (f->reading) f->ticks++;
        if (aloop_yield() < 0) break;
    }
    return NULL;
}

static void *fairness_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    /* big socket buffers: every record is in the kernel before reading */
    open_pair(&p);
    int big = 4 << 20;
    setsockopt(aloop_stream_fd(p.srv), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(aloop_stream_fd(p.cli), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    char rec[100];
    memset(rec, 'x', sizeof rec);
    for (int i = 0; i < 1000; i++) /* 1000 records of 100 bytes */
        assert_int_equal(aloop_stream_write(p.srv, rec, sizeof rec), 100);
    fair_t f = {.s = p.cli};
    aloop_task_t *t[2] = {spawn(aloop_current(), fair_reader, &f),
                          spawn(aloop_current(), ticker, &f)};
    assert_int_equal(aloop_gather(t, 2, NULL, NULL, 0), 0);
    aloop_release(t[0]);
    aloop_release(t[1]);
    assert_true(f.ticks_while_reading > 0);
    close_pair(&p);
    return NULL;
}

static void tls_fairness_budget(void **state) {
    (void)state;
    run(fairness_main, NULL);
}

/* ---- writes: a cancelled write, then a new one --------------------------------- */

typedef struct big_write {
    aloop_stream_t *s;
    size_t n;
    ssize_t rc;
} big_write_t;

static void *big_write_main(void *arg) {
    big_write_t *w = arg;
    unsigned char *buf = malloc(w->n);
    assert_non_null(buf);
    for (size_t i = 0; i < w->n; i++) buf[i] = pattern(i, 3);
    w->rc = aloop_stream_write(w->s, buf, w->n);
    free(buf);
    return NULL;
}

typedef struct drain {
    aloop_stream_t *s;
    size_t cap, got;
    unsigned char *buf;
    ssize_t rc;
} drain_t;

/* Reads s to its end into a buffer of d->cap bytes. */
static void *drain_main(void *arg) {
    drain_t *d = arg;
    d->buf = malloc(d->cap);
    assert_non_null(d->buf);
    while ((d->rc = aloop_stream_read(d->s, d->buf + d->got, d->cap - d->got)) > 0)
        d->got += (size_t)d->rc;
    return NULL;
}

/* A write cancelled while it waits for the peer to read: what it sent is a
 * prefix of its bytes, in whole records, and the next write's bytes follow
 * it exactly (nothing of the abandoned write is counted as theirs). */
static void *cancelled_write_main(void *arg) {
    (void)arg;
    conn_pair_t p = {0};
    open_pair(&p);
    big_write_t w = {.s = p.cli, .n = 8u << 20};
    aloop_task_t *t = spawn(aloop_current(), big_write_main, &w);
    assert_int_equal(aloop_sleep(0.05), 0); /* the socket is full: it waits */
    assert_int_equal(aloop_cancel(t), 1);
    aloop_await(t, NULL); /* the task saw the cancel in its write */
    aloop_release(t);
    assert_int_equal(w.rc, -ECANCELED);
    /* the socket is still full: the reader runs beside the next write */
    drain_t d = {.s = p.srv, .cap = w.n + 16};
    aloop_task_t *r = spawn(aloop_current(), drain_main, &d);
    assert_int_equal(aloop_stream_write(p.cli, "END", 3), 3);
    assert_int_equal(aloop_stream_shutdown(p.cli), 0);
    assert_int_equal(aloop_await(r, NULL), 0);
    aloop_release(r);
    assert_int_equal(d.rc, 0);
    size_t got = d.got;
    assert_true(got >= 3 && got < w.n + 3);
    for (size_t i = 0; i < got - 3; i++)
        if (d.buf[i] != pattern(i, 3)) fail_msg("byte %zu of %zu differs", i, got);
    assert_memory_equal(d.buf + got - 3, "END", 3);
    free(d.buf);
    close_pair(&p);
    return NULL;
}

static void tls_cancelled_write_then_new_write(void **state) {
    (void)state;
    run(cancelled_write_main, NULL);
}

/* ---- ALPN, client certificates ------------------------------------------------ */

typedef struct alpn_case {
    const char *const *cli;
    size_t ncli;
    const char *const *srv;
    size_t nsrv;
    const char *want; /* NULL: none negotiated */
} alpn_case_t;

static void *alpn_main(void *arg) {
    alpn_case_t *a = arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    assert_int_equal(aloop_tls_config_set_alpn(ccfg, a->cli, a->ncli), 0);
    assert_int_equal(aloop_tls_config_set_alpn(scfg, a->srv, a->nsrv), 0);
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    if (a->want) {
        assert_string_equal(aloop_tls_alpn(cli.out), a->want);
        assert_string_equal(aloop_tls_alpn(srv.out), a->want);
    } else {
        assert_null(aloop_tls_alpn(cli.out));
        assert_null(aloop_tls_alpn(srv.out));
    }
    aloop_stream_close(cli.out);
    aloop_stream_close(srv.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_alpn(void **state) {
    (void)state;
    const char *both[] = {"h2", "http/1.1"}, *h11[] = {"http/1.1"}, *other[] = {"spdy/1"};
    alpn_case_t cases[] = {
        {both, 2, h11, 1, "http/1.1"},
        {h11, 1, both, 2, "http/1.1"},
        {both, 2, both, 2, "h2"},
        {both, 2, other, 1, NULL}, /* nothing in common: no ALPN, still connected */
        {NULL, 0, both, 2, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(alpn_main, &cases[i]);
}

typedef struct cc_case {
    const char *client_cert; /* NULL: none */
    int want_srv;
    int want_cli_read; /* the client's first read (TLS 1.3: the refusal comes after) */
} cc_case_t;

static void *client_cert_main(void *arg) {
    cc_case_t *k = arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    assert_int_equal(aloop_tls_config_set_ca_file(scfg, cert("ca.pem")), 0);
    assert_int_equal(aloop_tls_config_require_client_cert(scfg, 1), 0);
    if (k->client_cert) {
        char c[64], kf[64];
        snprintf(c, sizeof c, "%s.pem", k->client_cert);
        snprintf(kf, sizeof kf, "%s.key", k->client_cert);
        assert_int_equal(aloop_tls_config_set_client_cert(ccfg, cert(c), cert(kf)), 0);
    }
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(srv.rc, k->want_srv);
    assert_int_equal(cli.rc, 0);
    char buf[8];
    if (srv.out) assert_int_equal(aloop_stream_write(srv.out, "ok", 2), 2);
    assert_int_equal(aloop_stream_read(cli.out, buf, sizeof buf), k->want_cli_read);
    if (k->want_cli_read < 0) assert_true(strlen(aloop_tls_error()) > 0);
    aloop_stream_close(cli.out);
    if (srv.out) aloop_stream_close(srv.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_client_cert_required(void **state) {
    (void)state;
    cc_case_t cases[] = {
        {"client", 0, 2},
        {NULL, -EKEYREJECTED, -EKEYREJECTED},
        {"other-client", -EKEYREJECTED, -EKEYREJECTED}, /* signed by a CA not trusted */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(client_cert_main, &cases[i]);
}

/* ---- servers and connections over loopback ------------------------------------ */

typedef struct srv_state {
    int handled;
    char version[16];
} srv_state_t;

/* Greets, then echoes one line. */
static void greet_handler(aloop_stream_t *conn, void *arg) {
    srv_state_t *st = arg;
    st->handled++;
    snprintf(st->version, sizeof st->version, "%s", aloop_tls_version(conn));
    if (aloop_stream_write(conn, "hi\n", 3) != 3) return;
    char line[64];
    ssize_t n = aloop_stream_readline(conn, line, sizeof line);
    if (n > 0) aloop_stream_write(conn, line, (size_t)n);
    aloop_stream_shutdown(conn);
}

/* One client exchange: greeting, echo, EOF. Returns resumed. */
static int talk(const char *host, const char *port, aloop_tls_config_t *ccfg) {
    aloop_stream_t *s;
    int rc = aloop_open_tls_connection(host, port, ccfg, 10, &s);
    if (rc < 0) fail_msg("open_tls_connection: %d %s", rc, aloop_tls_error());
    char line[64];
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 3);
    assert_string_equal(line, "hi\n");
    assert_int_equal(aloop_stream_write(s, "ping\n", 5), 5);
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 5);
    assert_int_equal(aloop_stream_read(s, line, sizeof line), 0);
    int resumed = aloop_tls_resumed(s);
    aloop_stream_close(s);
    return resumed;
}

static void *serve_main(void *arg) {
    (void)arg;
    char port[16];
    int lfd = listen_any(port, sizeof port);
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    srv_state_t st = {0};
    aloop_server_t *srv = aloop_serve_tls(aloop_current(), lfd, scfg, NULL, greet_handler, &st);
    assert_non_null(srv);
    aloop_tls_config_free(scfg); /* the server keeps its reference */
    /* garbage: the handshake fails, the handler never runs, the server goes on */
    int fd = aloop_tcp_connect("127.0.0.1", port, 10);
    assert_true(fd >= 0);
    assert_int_equal(aloop_write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
    char buf[512];
    ssize_t n;
    while ((n = aloop_read(fd, buf, sizeof buf)) > 0) continue; /* an alert, then EOF */
    assert_true(n == 0 || n == -ECONNRESET);
    aloop_close(fd);
    assert_int_equal(st.handled, 0);
    /* a real client, by name and by address; then the session is resumed */
    assert_int_equal(talk("localhost", port, ccfg), 0);
    assert_int_equal(talk("localhost", port, ccfg), 1);
    assert_int_equal(talk("127.0.0.1", port, ccfg), 0); /* another name: its own session */
    assert_int_equal(talk("127.0.0.1", port, ccfg), 1);
    assert_int_equal(st.handled, 4);
    assert_string_equal(st.version, "TLSv1.3");
    /* with the cache off, every handshake is a full one */
    assert_int_equal(aloop_tls_config_set_session_cache(ccfg, 0), 0);
    assert_int_equal(talk("localhost", port, ccfg), 0);
    assert_int_equal(talk("localhost", port, ccfg), 0);
    aloop_server_close(srv);
    assert_int_equal(aloop_server_wait_closed(srv), 0);
    aloop_server_free(srv);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_serve_and_resume(void **state) {
    (void)state;
    run(serve_main, NULL);
}

/* A client that connects and says nothing is closed at the handshake
 * deadline (opts.handshake_timeout); the handler never runs. */
static void *serve_timeout_main(void *arg) {
    (void)arg;
    char port[16];
    int lfd = listen_any(port, sizeof port);
    aloop_tls_config_t *scfg = server_config("server");
    srv_state_t st = {0};
    aloop_serve_opts_t opts = {.handshake_timeout = 1.5};
    aloop_server_t *srv = aloop_serve_tls(aloop_current(), lfd, scfg, &opts, greet_handler, &st);
    assert_non_null(srv);
    int fd = aloop_tcp_connect("127.0.0.1", port, 10);
    assert_true(fd >= 0);
    double t0 = now();
    char buf[64];
    ssize_t n = aloop_read(fd, buf, sizeof buf);
    assert_true(n == 0 || n == -ECONNRESET);
    double took = now() - t0;
    assert_true(took >= 1.5 && took < 1.6);
    aloop_close(fd);
    assert_int_equal(st.handled, 0);
    aloop_server_free(srv);
    aloop_tls_config_free(scfg);
    return NULL;
}

static void tls_serve_handshake_timeout(void **state) {
    (void)state;
    run_virtual(serve_timeout_main, NULL);
}

/* open_tls_connection: one deadline over connect and handshake. The
 * listener never answers (nobody accepts: the kernel completes the
 * connection, the ClientHello goes unanswered). */
static void *open_timeout_main(void *arg) {
    (void)arg;
    char port[16];
    int lfd = listen_any(port, sizeof port);
    aloop_tls_config_t *ccfg = client_config();
    aloop_stream_t *s = (aloop_stream_t *)&s;
    double t0 = now();
    assert_int_equal(aloop_open_tls_connection("127.0.0.1", port, ccfg, 2.0, &s), -ETIMEDOUT);
    double took = now() - t0;
    assert_true(took >= 2.0 && took < 2.1);
    assert_null(s);
    /* refused: the connect's error */
    aloop_close(lfd);
    assert_int_equal(aloop_open_tls_connection("127.0.0.1", port, ccfg, 2.0, &s),
                     -ECONNREFUSED);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_open_connection_deadline(void **state) {
    (void)state;
    run_virtual(open_timeout_main, NULL);
}

/* ---- allocation failure ------------------------------------------------------ */

/* OpenSSL's allocations (and aloop-tls's, which are OpenSSL's) go through
 * the test allocator too, so one sweep fails every allocation of a
 * handshake and an exchange in turn, ours and the library's. */
static void *ossl_malloc(size_t n, const char *file, int line) {
    (void)file;
    (void)line;
    return test_malloc_(n);
}
static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
    (void)file;
    (void)line;
    return test_realloc_(p, n);
}
static void ossl_free(void *p, const char *file, int line) {
    (void)file;
    (void)line;
    test_free_(p);
}

static int allowed_failure(int rc) {
    return rc == 0 || rc == -ENOMEM || rc == -EPROTO || rc == -ECONNRESET ||
           rc == -EKEYREJECTED || rc == -ECANCELED; /* cancelled: the other could not start */
}

typedef struct sweep {
    aloop_tls_config_t *scfg, *ccfg;
    int rc_srv, rc_cli, rc_io;
} sweep_t;

/* A handshake and an exchange each way; the results in *w. */
static void *sweep_main(void *arg) {
    sweep_t *w = arg;
    int sv[2];
    side_t srv = {.cfg = w->scfg, .timeout = 10};
    side_t cli = {.cfg = w->ccfg, .name = "localhost", .timeout = 10};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    srv.s = aloop_stream_new(aloop_current(), sv[0], 0);
    cli.s = aloop_stream_new(aloop_current(), sv[1], 0);
    aloop_task_t *t[2] = {NULL, NULL};
    if (srv.s && cli.s) {
        t[0] = aloop_spawn(aloop_current(), accept_main, &srv);
        t[1] = t[0] ? aloop_spawn(aloop_current(), connect_main, &cli) : NULL;
    }
    if (!t[1]) { /* no handshake started: everything is still ours */
        if (t[0]) {
            aloop_cancel(t[0]);
            aloop_await(t[0], NULL);
            aloop_release(t[0]);
        }
        if (srv.s) aloop_stream_close(srv.s);
        else close(sv[0]);
        if (cli.s) aloop_stream_close(cli.s);
        else close(sv[1]);
        w->rc_srv = w->rc_cli = -ENOMEM;
        return NULL;
    }
    srv.rc = cli.rc = 1; /* stays 1 in a task that could not start (its stack) */
    if (aloop_gather(t, 2, NULL, NULL, 0) < 0) { /* and the other one would wait */
        for (int i = 0; i < 2; i++) {
            aloop_cancel(t[i]);
            aloop_await(t[i], NULL);
        }
    }
    aloop_release(t[0]);
    aloop_release(t[1]);
    if (srv.rc == 1) aloop_stream_close(srv.s), srv.rc = -ENOMEM;
    if (cli.rc == 1) aloop_stream_close(cli.s), cli.rc = -ENOMEM;
    w->rc_srv = srv.rc;
    w->rc_cli = cli.rc;
    if (srv.rc == 0 && cli.rc == 0) {
        char buf[8];
        ssize_t n = aloop_stream_write(cli.out, "ping", 4);
        if (n == 4) n = aloop_stream_readexactly(srv.out, buf, 4);
        if (n == 4) n = aloop_stream_write(srv.out, "pong", 4);
        if (n == 4) n = aloop_stream_readexactly(cli.out, buf, 4);
        w->rc_io = n == 4 ? 0 : (int)n;
    }
    if (srv.out) aloop_stream_close(srv.out);
    if (cli.out) aloop_stream_close(cli.out);
    return NULL;
}

/* Every allocation of a loop, a handshake and an exchange fails in turn
 * (every third: the run stays short): each failure is a clear error on
 * either side, nothing crashes or leaks (ASan). The configs are made
 * before (OpenSSL's contexts cost a quarter of a million allocations). */
static void tls_allocation_failure_sweep(void **state) {
    (void)state;
    sweep_t w = {.scfg = server_config("server"), .ccfg = client_config()};
    assert_int_equal(aloop_tls_config_set_session_cache(w.ccfg, 0), 0);
    run(sweep_main, &w); /* OpenSSL's one-time set-up happens here, unfailed */
    assert_int_equal(w.rc_srv + w.rc_cli + w.rc_io, 0);
    long hits = 0;
    const char *from = getenv("TLS_SWEEP_FROM"); /* to replay one */
    for (long nth = from ? atol(from) : 1;; nth += 3) {
        w.rc_srv = w.rc_cli = w.rc_io = 0;
        test_fail_alloc(nth, 1);
        int rc = aloop_main_with(NULL, sweep_main, &w, NULL);
        unsigned long count = test_alloc_count();
        test_fail_alloc(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (!allowed_failure(w.rc_srv) || !allowed_failure(w.rc_cli) || !allowed_failure(w.rc_io))
            fail_msg("allocation %ld failed: server %d, client %d, exchange %d", nth, w.rc_srv,
                     w.rc_cli, w.rc_io);
        if ((unsigned long)nth > count) break; /* nothing failed: every allocation was tried */
        hits++;
    }
    assert_true(hits > 30);
    aloop_tls_config_free(w.scfg);
    aloop_tls_config_free(w.ccfg);
}

/* ---- misuse -------------------------------------------------------------- */

static void *misuse_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    aloop_stream_t *out = (aloop_stream_t *)&out;
    assert_int_equal(aloop_tls_connect(NULL, ccfg, "x", 1, &out), -EINVAL);
    assert_null(out);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* a server config to connect: -EINVAL, and the stream is closed */
    assert_int_equal(aloop_tls_connect(aloop_stream_new(aloop_current(), sv[0], 0), scfg, "x", 1,
                                       &out),
                     -EINVAL);
    char c;
    assert_int_equal(read(sv[1], &c, 1), 0);
    close(sv[1]);
    assert_int_equal(aloop_tls_config_require_client_cert(ccfg, 1), -EINVAL);
    const char *bad[] = {""};
    assert_int_equal(aloop_tls_config_set_alpn(ccfg, bad, 1), -EINVAL);
    assert_int_equal(aloop_tls_config_set_ca_file(ccfg, "/nonexistent/ca.pem"), -ENOENT);
    assert_int_equal(aloop_tls_config_set_ca_file(ccfg, cert("server.key")), -EINVAL);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    aloop_tls_config_free(NULL);
    return NULL;
}

static void tls_misuse(void **state) {
    (void)state;
    run(misuse_main, NULL);
    errno = 0;
    assert_null(aloop_tls_server_config_new(cert("nope.pem"), cert("server.key")));
    assert_int_equal(errno, ENOENT);
    assert_null(aloop_tls_server_config_new(cert("server.pem"), cert("client.key")));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_tls_server_config_new(NULL, cert("server.key")));
    assert_int_equal(errno, EINVAL);
    /* outside a task */
    aloop_tls_config_t *ccfg = client_config();
    aloop_stream_t *out;
    assert_int_equal(aloop_open_tls_connection("localhost", "1", ccfg, 1, &out), -EPERM);
    aloop_tls_config_free(ccfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_round_trip),
        cmocka_unit_test(tls_queries_on_plain_stream),
        cmocka_unit_test(tls_echo_with_copy),
        cmocka_unit_test(tls_four_mib_both_ways),
        cmocka_unit_test(tls_shutdown_half_close),
        cmocka_unit_test(tls_close_without_close_notify_is_reset),
        cmocka_unit_test(tls_close_sends_close_notify),
        cmocka_unit_test(tls_verify_expired),
        cmocka_unit_test(tls_verify_wrong_name),
        cmocka_unit_test(tls_verify_untrusted),
        cmocka_unit_test(tls_verify_ip_address),
        cmocka_unit_test(tls_verify_off_accepts_any),
        cmocka_unit_test(tls_verify_system_store),
        cmocka_unit_test(tls_garbage_is_eproto),
        cmocka_unit_test(tls_handshake_timeout),
        cmocka_unit_test(tls_cancel_handshake),
        cmocka_unit_test(tls_cancel_connect),
        cmocka_unit_test(tls_handshake_cut_short),
        cmocka_unit_test(tls_close_while_reading),
        cmocka_unit_test(tls_cancelled_read_keeps_bytes),
        cmocka_unit_test(tls_fairness_budget),
        cmocka_unit_test(tls_cancelled_write_then_new_write),
        cmocka_unit_test(tls_alpn),
        cmocka_unit_test(tls_client_cert_required),
        cmocka_unit_test(tls_serve_and_resume),
        cmocka_unit_test(tls_serve_handshake_timeout),
        cmocka_unit_test(tls_open_connection_deadline),
        cmocka_unit_test(tls_misuse),
        cmocka_unit_test(tls_allocation_failure_sweep),
    };
    /* before OpenSSL allocates anything (the sweep's allocator) */
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_tls_red.c - aloop-tls (src/tls/) attacked as a hostile peer and a
 * careless user would: session resumption across changed settings,
 * configs in bad states, records cut into tiny segments, key updates,
 * closes and frees while tasks are inside calls, cancels at every step,
 * and a server flooded with silent connections. API tests (aloop.h,
 * aloop_tls.h); OpenSSL itself is used only to play the peer.
 */
#include "aloop_test.h"

#include "aloop_tls.h"
#include "tls_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---- helpers -------------------------------------------------------------- */

/* A loopback TCP listener on an ephemeral port. */
static int tcp_listener(unsigned short *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A server that accepts TLS on a listener, writes "hi" (so that the
 * client reads the TLS 1.3 tickets), and reads until the client is gone. */
typedef struct hi_server {
    int lfd;
    aloop_tls_config_t *cfg;
    int n;       /* connections to take */
    int rc[8];   /* each handshake's result */
} hi_server_t;

static void *hi_server_main(void *arg) {
    hi_server_t *h = arg;
    for (int i = 0; i < h->n; i++) {
        int fd = aloop_accept(h->lfd, NULL, NULL);
        assert_true(fd >= 0);
        aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0), *tls = NULL;
        h->rc[i] = aloop_tls_accept(s, h->cfg, 10, &tls);
        if (h->rc[i] < 0) continue;
        assert_int_equal(aloop_stream_write(tls, "hi", 2), 2);
        char buf[64];
        while (aloop_stream_read(tls, buf, sizeof buf) > 0) continue;
        aloop_stream_close(tls);
    }
    return NULL;
}

/* One client connection to 127.0.0.1:port checking name: its handshake's
 * result; on success reads "hi" and says whether it resumed. */
static int hi_client(unsigned short port, aloop_tls_config_t *cfg, const char *name,
                     int *resumed) {
    char p[16];
    snprintf(p, sizeof p, "%u", port);
    aloop_stream_t *s, *tls;
    assert_int_equal(aloop_open_connection("127.0.0.1", p, 10, &s), 0);
    int rc = aloop_tls_connect(s, cfg, name, 10, &tls);
    if (rc < 0) return rc;
    char buf[2];
    ssize_t n = aloop_stream_readexactly(tls, buf, 2);
    if (n != 2) { /* TLS 1.3: a server's refusal comes after our handshake */
        aloop_stream_close(tls);
        return n < 0 ? (int)n : -EPROTO;
    }
    if (resumed) *resumed = aloop_tls_resumed(tls);
    assert_int_equal(aloop_stream_shutdown(tls), 0);
    aloop_stream_close(tls);
    return 0;
}

/* ---- session resumption must not skip a check the new handshake asks for ---- */

/* A resumption case: a hi_server with the certificate `name` taking n
 * connections on a loopback port, and a client config trusting the CA. */
typedef struct resume {
    unsigned short port;
    hi_server_t h;
    aloop_task_t *t;
    aloop_tls_config_t *ccfg;
} resume_t;

static void resume_start(resume_t *r, const char *name, int n) {
    r->h = (hi_server_t){.lfd = tcp_listener(&r->port), .cfg = server_config(name), .n = n};
    r->t = aloop_spawn(aloop_current(), hi_server_main, &r->h);
    r->ccfg = client_config();
}

/* Waits for the server to take all its connections and frees the case;
 * r->h.rc stays readable. */
static void resume_finish(resume_t *r) {
    assert_int_equal(aloop_await(r->t, NULL), 0);
    aloop_release(r->t);
    close(r->h.lfd);
    aloop_tls_config_free(r->h.cfg);
    aloop_tls_config_free(r->ccfg);
}

/* A client session made with verification off (any certificate) must not
 * be offered once verification is on: the resumed handshake checks no
 * certificate, so the untrusted server would pass. */
static void *resume_verify_off_main(void *arg) {
    (void)arg;
    resume_t r;
    resume_start(&r, "untrusted", 3);
    assert_int_equal(aloop_tls_config_set_verify(r.ccfg, 0), 0);
    int resumed = -1;
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 0);
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 1); /* the cache works while the setting stays */
    assert_int_equal(aloop_tls_config_set_verify(r.ccfg, 1), 0);
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", NULL), -EKEYREJECTED);
    resume_finish(&r);
    return NULL;
}

ALOOP_TEST_CASE(tls_red_resume_after_verify_turned_on, run(resume_verify_off_main, NULL))

/* A session from a connection that checked no name (server_name NULL) must
 * not be resumed by one that checks a name: the certificate (valid, for
 * wrong.example only) would never be matched against 127.0.0.1. */
static void *resume_no_name_main(void *arg) {
    (void)arg;
    resume_t r;
    resume_start(&r, "wrongname", 2);
    assert_int_equal(hi_client(r.port, r.ccfg, NULL, NULL), 0);
    assert_int_equal(hi_client(r.port, r.ccfg, "127.0.0.1", NULL), -EKEYREJECTED);
    resume_finish(&r);
    return NULL;
}

ALOOP_TEST_CASE(tls_red_resume_without_name_then_with, run(resume_no_name_main, NULL))

/* A server that starts requiring client certificates must not resume the
 * sessions of clients that never showed one. */
static void *resume_require_cert_main(void *arg) {
    (void)arg;
    resume_t r;
    resume_start(&r, "server", 3);
    int resumed = -1;
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", &resumed), 0);
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 1);
    assert_int_equal(aloop_tls_config_set_ca_file(r.h.cfg, cert("ca.pem")), 0);
    assert_int_equal(aloop_tls_config_require_client_cert(r.h.cfg, 1), 0);
    assert_int_equal(hi_client(r.port, r.ccfg, "localhost", NULL), -EKEYREJECTED);
    resume_finish(&r);
    assert_int_equal(r.h.rc[2], -EKEYREJECTED);
    return NULL;
}

ALOOP_TEST_CASE(tls_red_resume_after_require_cert, run(resume_require_cert_main, NULL))

/* ---- configs in bad states ------------------------------------------------ */

/* A handshake with scfg, checking localhost: both results, streams closed. */
static void try_handshake(aloop_tls_config_t *scfg, aloop_tls_config_t *ccfg, int *srv_rc,
                          int *cli_rc) {
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    if (srv.out) aloop_stream_close(srv.out);
    if (cli.out) aloop_stream_close(cli.out);
    *srv_rc = srv.rc;
    *cli_rc = cli.rc;
}

/* A replacement chain and key that are refused leave the server's own in
 * place: it goes on serving. */
static void *bad_cert_replace_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    assert_int_equal(
        aloop_tls_config_set_client_cert(scfg, cert("wrongname.pem"), cert("server.key")),
        -EINVAL);
    assert_int_equal(aloop_tls_config_set_client_cert(scfg, cert("server.pem"), cert("ca.pem")),
                     -EINVAL);
    int s, c;
    try_handshake(scfg, ccfg, &s, &c);
    assert_int_equal(s, 0);
    assert_int_equal(c, 0);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_refused_cert_keeps_the_old(void **state) {
    (void)state;
    run(bad_cert_replace_main, NULL);
}

/* ---- records cut into tiny segments; key updates while a writer waits ------ */

/* Moves bytes from one fd to another one at a time, yielding between them,
 * so the TLS reader on the far side sees every record arrive in pieces. */
typedef struct relay {
    int from, to;
} relay_t;

static void *relay_main(void *arg) {
    relay_t *r = arg;
    char c;
    while (aloop_read(r->from, &c, 1) == 1) {
        if (aloop_write_all(r->to, &c, 1) < 0) break;
        aloop_yield();
    }
    shutdown(r->to, SHUT_WR);
    return NULL;
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
    assert_int_equal(aloop_stream_write(b->s, buf, b->n), (ssize_t)b->n);
    free(buf);
    return NULL;
}

static void *bulk_reader(void *arg) {
    bulk_t *b = arg;
    unsigned char *buf = malloc(b->n);
    assert_non_null(buf);
    assert_int_equal(aloop_stream_readexactly(b->s, buf, b->n), (ssize_t)b->n);
    for (size_t i = 0; i < b->n; i++)
        if (buf[i] != pattern(i, b->seed)) fail_msg("byte %zu differs", i);
    free(buf);
    return NULL;
}

/* The handshake and a 40 KiB message each way (records of 16 KiB), every
 * byte its own segment. */
static void *tiny_segments_main(void *arg) {
    (void)arg;
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    relay_t up = {a[1], b[0]}, down = {b[0], a[1]};
    aloop_task_t *r[2] = {aloop_spawn(aloop_current(), relay_main, &up),
                          aloop_spawn(aloop_current(), relay_main, &down)};
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.s = aloop_stream_new(aloop_current(), a[0], 0), .cfg = scfg, .timeout = 30};
    side_t cli = {.s = aloop_stream_new(aloop_current(), b[1], 0), .cfg = ccfg,
                  .name = "localhost", .timeout = 30};
    aloop_task_t *h[2] = {aloop_spawn(aloop_current(), accept_main, &srv),
                          aloop_spawn(aloop_current(), connect_main, &cli)};
    assert_int_equal(aloop_gather(h, 2, NULL, NULL, 0), 0);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    size_t n = 40 * 1024;
    bulk_t w1 = {srv.out, n, 3}, r1 = {cli.out, n, 3}, w2 = {cli.out, n, 4}, r2 = {srv.out, n, 4};
    aloop_task_t *t[4] = {aloop_spawn(aloop_current(), bulk_writer, &w1),
                          aloop_spawn(aloop_current(), bulk_reader, &r1),
                          aloop_spawn(aloop_current(), bulk_writer, &w2),
                          aloop_spawn(aloop_current(), bulk_reader, &r2)};
    assert_int_equal(aloop_gather(t, 4, NULL, NULL, 0), 0);
    for (int i = 0; i < 4; i++) aloop_release(t[i]);
    aloop_stream_close(srv.out);
    aloop_stream_close(cli.out);
    for (int i = 0; i < 2; i++) {
        aloop_cancel(r[i]);
        aloop_await(r[i], NULL);
        aloop_release(r[i]);
        aloop_release(h[i]);
    }
    close(a[1]);
    close(b[0]);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_records_in_one_byte_segments(void **state) {
    (void)state;
    run(tiny_segments_main, NULL);
}

/* OpenSSL as a blocking peer on its own thread: it sends n bytes with a
 * KeyUpdate that asks for ours before every 1000, and only then reads m
 * bytes, so our writer waits (the socket full) while our reader takes the
 * key updates; then it checks every byte and sends close_notify. */
typedef struct ku_peer {
    int fd;
    size_t n, m;
    int ok;
} ku_peer_t;

static void *ku_peer_thread(void *arg) {
    ku_peer_t *p = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert("server.pem")), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, cert("server.key"), SSL_FILETYPE_PEM), 1);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, p->fd);
    int ok = SSL_accept(ssl) == 1;
    unsigned char *buf = malloc(p->n > p->m ? p->n : p->m);
    for (size_t i = 0; i < p->n; i++) buf[i] = pattern(i, 5);
    for (size_t off = 0; ok && off < p->n; off += 1000) {
        size_t len = p->n - off < 1000 ? p->n - off : 1000;
        ok = SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1 &&
             SSL_write(ssl, buf + off, (int)len) == (int)len;
    }
    size_t got = 0;
    while (ok && got < p->m) {
        int r = SSL_read(ssl, buf + got, (int)(p->m - got));
        if (r <= 0) ok = 0;
        else got += (size_t)r;
    }
    for (size_t i = 0; ok && i < p->m; i++) ok = buf[i] == pattern(i, 6);
    if (ok) SSL_shutdown(ssl);
    p->ok = ok;
    free(buf);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(p->fd);
    return NULL;
}

static void *key_update_main(void *arg) {
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ku_peer_t peer = {.fd = sv[1], .n = 200000, .m = 300000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ku_peer_thread, &peer), 0);
    aloop_tls_config_t *ccfg = client_config();
    aloop_stream_t *s;
    assert_int_equal(
        aloop_tls_connect(aloop_stream_new(aloop_current(), sv[0], 0), ccfg, "localhost", 30, &s),
        0);
    bulk_t w = {s, peer.m, 6}, r = {s, peer.n, 5};
    aloop_task_t *t[2] = {aloop_spawn(aloop_current(), bulk_writer, &w),
                          aloop_spawn(aloop_current(), bulk_reader, &r)};
    assert_int_equal(aloop_gather(t, 2, NULL, NULL, 0), 0);
    aloop_release(t[0]);
    aloop_release(t[1]);
    char c;
    assert_int_equal(aloop_stream_read(s, &c, 1), 0); /* its close_notify */
    aloop_stream_close(s);
    pthread_join(th, NULL);
    assert_true(peer.ok);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_key_updates_while_writing(void **state) {
    (void)state;
    run(key_update_main, NULL);
}

/* ---- closes and frees while tasks are inside calls ----------------------- */

static void *read_forever(void *arg) {
    char buf[64];
    ssize_t n;
    while ((n = aloop_stream_read(arg, buf, sizeof buf)) > 0) continue;
    return (void *)(intptr_t)n;
}

static void *write_4mib(void *arg) {
    size_t n = 4u << 20;
    char *buf = calloc(1, n);
    ssize_t rc = aloop_stream_write(arg, buf, n);
    free(buf);
    return (void *)(intptr_t)rc;
}

static void *close_under_calls_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(cli.rc, 0);
    aloop_task_t *r = aloop_spawn(aloop_current(), read_forever, cli.out);
    aloop_task_t *w = aloop_spawn(aloop_current(), write_4mib, cli.out);
    assert_int_equal(aloop_sleep(0.01), 0); /* both wait: nobody reads the server */
    assert_int_equal(aloop_stream_close(cli.out), 0);
    void *res;
    assert_int_equal(aloop_await(r, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    assert_int_equal(aloop_await(w, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    aloop_release(r);
    aloop_release(w);
    /* the server reads what arrived, then the end (no close_notify could
     * follow a half-sent record: a reset, never a clean EOF) */
    char buf[65536];
    ssize_t n;
    while ((n = aloop_stream_read(srv.out, buf, sizeof buf)) > 0) continue;
    assert_true(n == -ECONNRESET || n == -EPROTO);
    aloop_stream_close(srv.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_close_while_reading_and_writing(void **state) {
    (void)state;
    run(close_under_calls_main, NULL);
}

/* aloop_free on a loop with one handshake waiting for a silent peer, one
 * connection with a reader inside a read, and one with a writer that
 * waits: everything is freed (ASan), the streams can be closed after. */
typedef struct busy {
    int silent[2], a[2];
    aloop_tls_config_t *scfg, *ccfg;
    side_t hs, srv, cli;
    int ready;
    aloop_task_t *t[3];
} busy_t;

static void *busy_main(void *arg) {
    busy_t *b = arg;
    b->hs.s = aloop_stream_new(aloop_current(), b->silent[0], 0);
    b->hs.cfg = b->scfg;
    b->hs.timeout = -1;
    b->t[0] = aloop_spawn(aloop_current(), accept_main, &b->hs);
    b->srv.cfg = b->scfg;
    b->cli.cfg = b->ccfg;
    b->cli.name = "localhost";
    handshake_pair(&b->srv, &b->cli);
    assert_int_equal(b->cli.rc, 0);
    b->t[1] = aloop_spawn(aloop_current(), read_forever, b->cli.out);
    b->t[2] = aloop_spawn(aloop_current(), write_4mib, b->cli.out);
    b->ready = 1;
    return NULL;
}

static void tls_red_free_loop_mid_handshake_and_io(void **state) {
    (void)state;
    busy_t b = {0};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b.silent), 0);
    b.scfg = server_config("server");
    b.ccfg = client_config();
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    aloop_task_t *m = aloop_spawn(loop, busy_main, &b);
    for (int i = 0; i < 1000 && !b.ready; i++) aloop_run_once(loop, 0.01);
    assert_true(b.ready);
    for (int i = 0; i < 10; i++) aloop_run_once(loop, 0);
    aloop_release(m);
    for (int i = 0; i < 3; i++) aloop_release(b.t[i]);
    aloop_free(loop);
    assert_int_equal(b.hs.rc, -ECANCELED);
    assert_null(b.hs.out);
    aloop_stream_close(b.cli.out);
    aloop_stream_close(b.srv.out);
    close(b.silent[1]);
    aloop_tls_config_free(b.scfg);
    aloop_tls_config_free(b.ccfg);
}

/* ---- decrypted bytes OpenSSL holds; a shutdown while a read waits -------- */

static void *read_in_small_pieces(void *arg) {
    aloop_stream_t *s = arg;
    char buf[100];
    size_t got = 0;
    while (got < 16384) {
        ssize_t n = aloop_stream_read(s, buf, sizeof buf);
        if (n <= 0) return (void *)(intptr_t)(n ? n : -EPIPE);
        got += (size_t)n;
    }
    return (void *)(intptr_t)got;
}

/* One 16 KiB record, then silence (the peer stays connected): every byte
 * of it is read in 100-byte reads without waiting for the fd, though the
 * stream's buffer takes only 4 KiB of it at a time. */
static void *pending_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    aloop_tls_config_free(scfg); /* the connections hold them */
    aloop_tls_config_free(ccfg);
    char *rec = calloc(1, 16384);
    assert_int_equal(aloop_stream_write(srv.out, rec, 16384), 16384);
    free(rec);
    aloop_task_t *t = aloop_spawn(aloop_current(), read_in_small_pieces, cli.out);
    void *res;
    assert_int_equal(aloop_wait_for(t, 5, &res), 0); /* virtual: a wait would time out */
    assert_int_equal((intptr_t)res, 16384);
    aloop_release(t);
    aloop_stream_close(cli.out);
    aloop_stream_close(srv.out);
    return NULL;
}

static void tls_red_pending_record_needs_no_fd(void **state) {
    (void)state;
    run_virtual(pending_main, NULL);
}

static void *read_all_main(void *arg) {
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = aloop_stream_read(arg, buf + got, sizeof buf - got)) > 0) got += (size_t)n;
    return n < 0 ? (void *)(intptr_t)n : (void *)(intptr_t)got;
}

/* close_notify sent while this side's reader waits: the reader goes on
 * and gets the peer's last bytes, then 0. */
static void *shutdown_during_read_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    aloop_task_t *r = aloop_spawn(aloop_current(), read_all_main, cli.out);
    assert_int_equal(aloop_sleep(0.01), 0);
    assert_int_equal(aloop_stream_shutdown(cli.out), 0);
    assert_int_equal(aloop_stream_shutdown(cli.out), 0);
    char c;
    assert_int_equal(aloop_stream_read(srv.out, &c, 1), 0);
    assert_int_equal(aloop_stream_write(srv.out, "late", 4), 4);
    assert_int_equal(aloop_stream_shutdown(srv.out), 0);
    void *res;
    assert_int_equal(aloop_await(r, &res), 0);
    assert_int_equal((intptr_t)res, 4);
    aloop_release(r);
    aloop_stream_close(cli.out);
    aloop_stream_close(srv.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_shutdown_while_reading(void **state) {
    (void)state;
    run(shutdown_during_read_main, NULL);
}

/* ---- a cancel at every step of both handshakes --------------------------- */

typedef struct sweep {
    aloop_task_t *victim;
    int steps;
} sweep_t;

static void *canceller(void *arg) {
    sweep_t *w = arg;
    for (int i = 0; i < w->steps; i++) aloop_yield();
    aloop_cancel(w->victim);
    return NULL;
}

/* Cancels the client (which 0) or the server (1) after `steps` yields:
 * the cancelled side is -ECANCELED with nothing out, or finished first;
 * the other side fails or finishes, and nothing leaks (ASan). 1 if the
 * cancel landed in the handshake. */
static int cancel_at(int which, int steps) {
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    side_t srv = {.s = aloop_stream_new(aloop_current(), sv[0], 0), .cfg = scfg, .timeout = 5};
    side_t cli = {.s = aloop_stream_new(aloop_current(), sv[1], 0), .cfg = ccfg,
                  .name = "localhost", .timeout = 5};
    aloop_task_t *t[2] = {aloop_spawn(aloop_current(), accept_main, &srv),
                          aloop_spawn(aloop_current(), connect_main, &cli)};
    sweep_t w = {.victim = t[which ? 0 : 1], .steps = steps};
    aloop_task_t *c = aloop_spawn(aloop_current(), canceller, &w);
    aloop_await(t[0], NULL);
    aloop_await(t[1], NULL);
    aloop_await(c, NULL);
    side_t *v = which ? &srv : &cli, *o = which ? &cli : &srv;
    int landed = v->rc == -ECANCELED;
    if (landed) assert_null(v->out);
    else if (v->rc != 0) fail_msg("which %d steps %d: victim %d other %d", which, steps, v->rc, o->rc);
    if (o->rc < 0) assert_null(o->out);
    if (v->out) aloop_stream_close(v->out);
    if (o->out) {
        char b;
        /* the victim's end closed without close_notify or finished */
        ssize_t n = aloop_stream_read(o->out, &b, 1);
        assert_true(n <= 0);
        aloop_stream_close(o->out);
    }
    for (int i = 0; i < 2; i++) aloop_release(t[i]);
    aloop_release(c);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return landed;
}

static void *cancel_sweep_main(void *arg) {
    (void)arg;
    for (int which = 0; which < 2; which++) {
        int landed = 0, finished = 0;
        for (int steps = 0; steps < 180; steps += 3) {
            if (cancel_at(which, steps)) landed++;
            else finished++;
        }
        assert_true(landed > 0);
        assert_true(finished > 0);
    }
    return NULL;
}

static void tls_red_cancel_at_every_step(void **state) {
    (void)state;
    run(cancel_sweep_main, NULL);
}

/* ---- the server: a flood of silent connections, shutdown mid-handshake ---- */

static void echo_line(aloop_stream_t *conn, void *arg) {
    int *served = arg;
    char line[64];
    ssize_t n = aloop_stream_readline(conn, line, sizeof line);
    if (n > 0 && aloop_stream_write(conn, line, (size_t)n) == n) ++*served;
}

static int tcp_connect_raw(unsigned short port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Two slots, a 5 s handshake deadline, four connections that never say
 * anything: each holds a slot for 5 s, then a real client is served. While
 * two more silent ones hold the slots, the server is freed: their
 * handshakes end, their sockets close, the config goes with the last
 * reference (ASan). */
static void *flood_main(void *arg) {
    (void)arg;
    unsigned short port;
    int lfd = tcp_listener(&port);
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    int served = 0;
    aloop_serve_opts_t opts = {.max_connections = 2, .handshake_timeout = 5};
    aloop_server_t *srv = aloop_serve_tls(aloop_current(), lfd, scfg, &opts, echo_line, &served);
    assert_non_null(srv);
    aloop_tls_config_free(scfg); /* the server holds it */
    int silent[6];
    for (int i = 0; i < 4; i++) silent[i] = tcp_connect_raw(port);
    double t0 = aloop_time(aloop_current());
    char p[16];
    snprintf(p, sizeof p, "%u", port);
    aloop_stream_t *s;
    assert_int_equal(aloop_open_tls_connection("localhost", p, ccfg, 60, &s), 0);
    double took = aloop_time(aloop_current()) - t0;
    assert_true(took >= 10 && took < 11);
    assert_int_equal(aloop_stream_write(s, "ping\n", 5), 5);
    char line[16];
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 5);
    aloop_stream_close(s);
    for (int i = 0; i < 4; i++) { /* closed by the server at their deadline */
        char c;
        assert_int_equal(aloop_read(silent[i], &c, 1), 0);
        close(silent[i]);
    }
    silent[4] = tcp_connect_raw(port);
    silent[5] = tcp_connect_raw(port);
    assert_int_equal(aloop_sleep(1), 0);
    assert_int_equal(aloop_server_connections(srv), 2);
    assert_int_equal(aloop_server_close(srv), 0);
    assert_int_equal(aloop_server_cancel_handlers(srv), 2);
    assert_int_equal(aloop_server_wait_closed(srv), 0);
    aloop_server_free(srv);
    for (int i = 4; i < 6; i++) {
        char c;
        assert_int_equal(aloop_read(silent[i], &c, 1), 0);
        close(silent[i]);
    }
    assert_int_equal(served, 1);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_server_flood_and_shutdown(void **state) {
    (void)state;
    /* Its subject is the server's slots and deadlines, timed to the virtual
     * second; under simulated hard faults (ALOOP_SIM=...:enomem or :reset)
     * a connection that fails leaves its raw peers waiting with no
     * deadline, and the failed assertion's jump out of the task leaves the
     * process unable to exit: it does not take part in the hard sweep. */
    const char *sim = getenv("ALOOP_SIM");
    if (sim && (strstr(sim, "enomem") || strstr(sim, "reset") || strstr(sim, "all"))) skip();
    run_virtual(flood_main, NULL);
}

/* ---- OpenSSL's allocations, counted and failed on demand ---------------- */

/* Installed in main() before OpenSSL allocates anything: live blocks (a
 * leak check that does not need ASan) and a failure of the nth allocation
 * from now (0: none), for every later one while fail_all. */
static long ossl_live, ossl_count, ossl_fail_nth;
static int ossl_fail_all;

static int ossl_fails(void) {
    long n = __atomic_add_fetch(&ossl_count, 1, __ATOMIC_RELAXED);
    return ossl_fail_nth && (n == ossl_fail_nth || (ossl_fail_all && n > ossl_fail_nth));
}

static void *ossl_malloc(size_t n, const char *file, int line) {
    (void)file;
    (void)line;
    if (ossl_fails()) return NULL;
    void *p = malloc(n);
    if (p) __atomic_add_fetch(&ossl_live, 1, __ATOMIC_RELAXED);
    return p;
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
    (void)file;
    (void)line;
    if (!p) return ossl_malloc(n, file, line);
    if (ossl_fails()) return NULL;
    return realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line) {
    (void)file;
    (void)line;
    if (p) __atomic_sub_fetch(&ossl_live, 1, __ATOMIC_RELAXED);
    free(p);
}

static void ossl_fail_from(long nth, int all) {
    __atomic_store_n(&ossl_count, 0, __ATOMIC_RELAXED);
    ossl_fail_all = all;
    __atomic_store_n(&ossl_fail_nth, nth, __ATOMIC_RELAXED);
}

static void echo_line(aloop_stream_t *conn, void *arg);

/* aloop_serve_tls, then aloop_free before the loop ever ran: the server's
 * record and its reference on the config go too. */
static void serve_unrun(void) {
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    unsigned short port;
    int lfd = tcp_listener(&port), served = 0;
    aloop_tls_config_t *scfg = server_config("server");
    aloop_server_t *srv = aloop_serve_tls(loop, lfd, scfg, NULL, echo_line, &served);
    assert_non_null(srv);
    aloop_free(loop);
    aloop_server_free(srv);
    aloop_tls_config_free(scfg);
}

static void tls_red_serve_then_free_unrun_loop(void **state) {
    (void)state;
    serve_unrun(); /* OpenSSL's one-time set-up happens here */
    long live = ossl_live;
    serve_unrun();
    assert_int_equal(ossl_live, live);
}

/* One handshake and a round trip with OpenSSL's nth allocation from the
 * start failing (0: none): every call returns 0 or a negative errno of the
 * header's list, both tasks end, nothing crashes (ASan). */
static int known_error(long rc) {
    return rc == 0 || rc == -ENOMEM || rc == -EPROTO || rc == -ECONNRESET ||
           rc == -EKEYREJECTED || rc == -ETIMEDOUT || rc == -EPIPE;
}

static void *enomem_main(void *arg) {
    long nth = *(long *)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    ossl_fail_from(nth, 0);
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    if (!known_error(srv.rc) || !known_error(cli.rc))
        fail_msg("nth %ld: handshakes %d %d", nth, srv.rc, cli.rc);
    if (srv.rc == 0 && cli.rc == 0) {
        char buf[4];
        ssize_t w = aloop_stream_write(cli.out, "ping", 4);
        ssize_t r = w == 4 ? aloop_stream_readexactly(srv.out, buf, 4) : 0;
        if (!known_error(w < 0 ? w : 0) || !known_error(r < 0 ? r : 0))
            fail_msg("nth %ld: write %zd read %zd", nth, w, r);
    }
    __atomic_store_n(&ossl_fail_nth, 0, __ATOMIC_RELAXED); /* ossl_count: this run's */
    if (srv.out) aloop_stream_close(srv.out);
    if (cli.out) aloop_stream_close(cli.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_openssl_enomem_sweep(void **state) {
    (void)state;
    long nth = 0;
    run_virtual(enomem_main, &nth); /* OpenSSL's one-time set-up */
    long live = ossl_live;
    run_virtual(enomem_main, &nth);
    long total = ossl_count; /* allocations of a whole run */
    assert_int_equal(ossl_live, live);
    assert_true(total > 100);
    long stride = total / 100 + 1;

    for (nth = 1; nth <= total; nth += stride) run_virtual(enomem_main, &nth);
    /* no live-block check after the sweep: OpenSSL 3.0 itself keeps a few
     * blocks when an allocation fails inside its certificate decoder */
}

/* ---- misuse ---------------------------------------------------------------- */

static void *reader_main(void *arg) {
    char c;
    return (void *)(intptr_t)aloop_stream_read(arg, &c, 1);
}

static void *misuse_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    aloop_stream_t *out = (aloop_stream_t *)&out;
    int sv[2];
    /* names no certificate can carry: -EINVAL, not -ENOMEM */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *bad_names[] = {"", longname};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(aloop_tls_connect(aloop_stream_new(aloop_current(), sv[0], 0), ccfg,
                                           bad_names[i], 1, &out),
                         -EINVAL);
        assert_null(out);
        close(sv[1]);
    }
    /* a stream another task is reading: -EBUSY before a byte is sent, and
     * (taken over) it is closed: the reader sees -EBADF */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), sv[0], 0);
    aloop_task_t *r = aloop_spawn(aloop_current(), reader_main, s);
    assert_int_equal(aloop_sleep(0.01), 0);
    assert_int_equal(aloop_tls_connect(s, ccfg, "localhost", 1, &out), -EBUSY);
    void *res;
    assert_int_equal(aloop_await(r, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    aloop_release(r);
    char c;
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0); /* no ClientHello: EOF */
    close(sv[1]);
    /* a TLS stream: -EINVAL (and it is closed, as the header says) */
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    assert_int_equal(cli.rc, 0);
    assert_int_equal(aloop_tls_connect(cli.out, ccfg, "localhost", 1, &out), -EINVAL);
    assert_int_equal(aloop_stream_read(srv.out, &c, 1), 0); /* closed with close_notify */
    aloop_stream_close(srv.out);
    /* queries and setters on NULL */
    assert_null(aloop_tls_alpn(NULL));
    assert_int_equal(aloop_tls_resumed(NULL), 0);
    assert_int_equal(aloop_tls_config_set_verify(NULL, 1), -EINVAL);
    assert_int_equal(aloop_tls_config_set_alpn(NULL, NULL, 0), -EINVAL);
    assert_int_equal(aloop_tls_config_set_ca_file(ccfg, NULL), -EINVAL);
    assert_int_equal(aloop_tls_config_set_client_cert(ccfg, NULL, cert("client.key")), -EINVAL);
    assert_int_equal(aloop_tls_config_set_session_cache(NULL, 1), -EINVAL);
    assert_int_equal(aloop_tls_config_require_client_cert(NULL, 1), -EINVAL);
    assert_int_equal(aloop_tls_accept(NULL, scfg, 1, &out), -EINVAL);
    assert_int_equal(aloop_open_tls_connection("localhost", "1", scfg, 1, &out), -EINVAL);
    assert_int_equal(aloop_open_tls_connection(NULL, "1", ccfg, 1, &out), -EINVAL);
    /* a client config to serve with: NULL + EINVAL, the listener stays ours */
    unsigned short port;
    int lfd = tcp_listener(&port);
    errno = 0;
    assert_null(aloop_serve_tls(aloop_current(), lfd, ccfg, NULL, echo_line, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(close(lfd), 0);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_misuse(void **state) {
    (void)state;
    run_virtual(misuse_main, NULL);
    /* outside a task: -EPERM, and the stream is closed */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    aloop_t *loop = aloop_new();
    aloop_tls_config_t *scfg = server_config("server");
    aloop_stream_t *out;
    assert_int_equal(aloop_tls_accept(aloop_stream_new(loop, sv[0], 0), scfg, 1, &out), -EPERM);
    char c;
    assert_int_equal(read(sv[1], &c, 1), 0);
    close(sv[1]);
    aloop_tls_config_free(scfg);
    aloop_free(loop);
}

/* ---- the error text and OpenSSL's error queue, per thread ---------------- */

static pthread_barrier_t both_failed;

typedef struct words_case {
    const char *server_cert, *name, *words;
    int ok;
} words_case_t;

static void *words_main(void *arg) {
    words_case_t *w = arg;
    aloop_tls_config_t *scfg = server_config(w->server_cert), *ccfg = client_config();
    side_t srv = {.cfg = scfg};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    srv.s = aloop_stream_new(aloop_current(), sv[0], 0);
    srv.timeout = 10;
    aloop_task_t *t = aloop_spawn(aloop_current(), accept_main, &srv);
    aloop_stream_t *out;
    int rc = aloop_tls_connect(aloop_stream_new(aloop_current(), sv[1], 0), ccfg, w->name, 10,
                               &out);
    aloop_await(t, NULL);
    aloop_release(t);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    w->ok = rc == -EKEYREJECTED && ERR_peek_error() == 0;
    return NULL;
}

static void *words_thread(void *arg) {
    words_case_t *w = arg;
    assert_int_equal(aloop_main_with(NULL, words_main, w, NULL), 0);
    pthread_barrier_wait(&both_failed); /* the other thread failed too */
    /* the last failure of this thread was its server's: a refused
     * certificate alert, with this thread's reason */
    if (!strstr(aloop_tls_error(), w->words)) w->ok = 0;
    return NULL;
}

static void tls_red_error_words_per_thread(void **state) {
    (void)state;
    words_case_t a = {"expired", "localhost", "expired", 0};
    words_case_t b = {"untrusted", "localhost", "unknown ca", 0};
    assert_int_equal(pthread_barrier_init(&both_failed, NULL, 2), 0);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, words_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, words_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&both_failed);
    assert_true(a.ok);
    assert_true(b.ok);
}

/* ---- TLS 1.2 peer: half-close after its close_notify, resumption --------- */

typedef struct v12_peer {
    int fd[2];
    int ok, resumed;
} v12_peer_t;

static void *v12_peer_thread(void *arg) {
    v12_peer_t *p = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"v12", 3);
    SSL_CTX_use_certificate_chain_file(ctx, cert("server.pem"));
    SSL_CTX_use_PrivateKey_file(ctx, cert("server.key"), SSL_FILETYPE_PEM);
    p->ok = 1;
    for (int i = 0; i < 2; i++) {
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, p->fd[i]);
        char buf[16];
        int ok = SSL_accept(ssl) == 1 && SSL_write(ssl, "x", 1) == 1 && SSL_shutdown(ssl) == 0 &&
                 SSL_read(ssl, buf, sizeof buf) == 5 && memcmp(buf, "reply", 5) == 0 &&
                 SSL_read(ssl, buf, sizeof buf) == 0 &&
                 SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
        if (i == 1) p->resumed = SSL_session_reused(ssl);
        if (!ok) p->ok = 0;
        SSL_free(ssl);
        close(p->fd[i]);
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static void *v12_main(void *arg) {
    (void)arg;
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    v12_peer_t peer = {.fd = {a[1], b[1]}};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, v12_peer_thread, &peer), 0);
    aloop_tls_config_t *ccfg = client_config();
    int fds[2] = {a[0], b[0]};
    for (int i = 0; i < 2; i++) {
        aloop_stream_t *s;
        assert_int_equal(aloop_tls_connect(aloop_stream_new(aloop_current(), fds[i], 0), ccfg,
                                           "localhost", 10, &s),
                         0);
        assert_string_equal(aloop_tls_version(s), "TLSv1.2");
        assert_int_equal(aloop_tls_resumed(s), i == 1);
        char c;
        assert_int_equal(aloop_stream_read(s, &c, 1), 1);
        assert_int_equal(aloop_stream_read(s, &c, 1), 0);
        assert_int_equal(aloop_stream_write(s, "reply", 5), 5);
        assert_int_equal(aloop_stream_shutdown(s), 0);
        aloop_stream_close(s);
    }
    pthread_join(th, NULL);
    assert_true(peer.ok);
    assert_true(peer.resumed);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_tls12_half_close_and_resume(void **state) {
    (void)state;
    run(v12_main, NULL);
}

/* ---- a write given up with records left in aloop-tls's own buffer -------- */

static void *write_64k(void *arg) {
    static char buf[65536];
    return (void *)(intptr_t)aloop_stream_write(arg, buf, sizeof buf);
}

/* A write given up (here: timed out while the peer read nothing) leaves
 * the tail of its records in the transport's own buffer, where a plain
 * socket's bytes would be in the kernel. A reader here waits only for the
 * fd to become readable, so unless something sends that tail once the fd
 * is writable (conn.c's flusher), the peer, waiting for the rest of a
 * record, and this side, waiting for the peer, never move. */
static void *stuck_tail_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    int small = 4096; /* the kernel takes a part of the records only */
    setsockopt(aloop_stream_fd(cli.out), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    aloop_task_t *w = aloop_spawn(aloop_current(), write_64k, cli.out);
    assert_int_equal(aloop_wait_for(w, 1, NULL), -ETIMEDOUT); /* nobody read */
    aloop_release(w);
    aloop_task_t *r = aloop_spawn(aloop_current(), read_all_main, cli.out); /* only reads */
    assert_int_equal(aloop_sleep(0.01), 0);
    aloop_task_t *t = aloop_spawn(aloop_current(), read_in_small_pieces, srv.out);
    void *res;
    /* the four records the write had made (the first 16 KiB of them) */
    assert_int_equal(aloop_wait_for(t, 10, &res), 0);
    aloop_release(t);
    aloop_stream_close(srv.out);
    assert_int_equal(aloop_await(r, NULL), 0);
    aloop_release(r);
    aloop_stream_close(cli.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_given_up_write_tail_reaches_peer(void **state) {
    (void)state;
    run_virtual(stuck_tail_main, NULL);
}

/* Reads until EOF: the stream must be some 'A's (what the given-up write
 * had encrypted), then exactly 64 KiB of 'B's; returns the number of 'A's,
 * or -EILSEQ for anything else (a byte lost, doubled or out of order). */
static void *read_a_then_b_main(void *arg) {
    char buf[4096];
    size_t as = 0, bs = 0;
    ssize_t n;
    while ((n = aloop_stream_read(arg, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'A' && !bs) as++;
            else if (buf[i] == 'B') bs++;
            else return (void *)(intptr_t)-EILSEQ;
        }
    if (n < 0) return (void *)(intptr_t)n;
    return bs == 65536 ? (void *)(intptr_t)as : (void *)(intptr_t)-EILSEQ;
}

typedef struct fill_write {
    aloop_stream_t *s;
    char c;
} fill_write_t;

/* 64 KiB of one letter. */
static void *write_fill_main(void *arg) {
    fill_write_t *w = arg;
    char *buf = malloc(65536);
    assert_non_null(buf);
    memset(buf, w->c, 65536);
    ssize_t n = aloop_stream_write(w->s, buf, 65536);
    free(buf);
    return (void *)(intptr_t)n;
}

/* A write given up with its tail in the flusher's hands, then a new write
 * on the same stream: the writer takes the tail over, and the peer gets
 * every byte both writes delivered, in order, once. */
static void *given_up_then_write_main(void *arg) {
    (void)arg;
    aloop_tls_config_t *scfg = server_config("server"), *ccfg = client_config();
    side_t srv = {.cfg = scfg}, cli = {.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    int small = 4096;
    setsockopt(aloop_stream_fd(cli.out), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    fill_write_t wa = {cli.out, 'A'}, wb = {cli.out, 'B'};
    aloop_task_t *w = aloop_spawn(aloop_current(), write_fill_main, &wa);
    assert_int_equal(aloop_wait_for(w, 1, NULL), -ETIMEDOUT); /* the flusher holds the tail */
    aloop_release(w);
    aloop_task_t *r = aloop_spawn(aloop_current(), read_a_then_b_main, srv.out);
    w = aloop_spawn(aloop_current(), write_fill_main, &wb);
    void *wrote;
    assert_int_equal(aloop_await(w, &wrote), 0);
    assert_int_equal((intptr_t)wrote, 65536);
    aloop_release(w);
    assert_int_equal(aloop_stream_shutdown(cli.out), 0);
    void *got;
    assert_int_equal(aloop_wait_for(r, 10, &got), 0);
    assert_true((intptr_t)got >= 4096); /* the 'A's that had reached the kernel, at least */
    aloop_release(r);
    aloop_stream_close(srv.out);
    aloop_stream_close(cli.out);
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_given_up_write_then_new_write(void **state) {
    (void)state;
    run_virtual(given_up_then_write_main, NULL);
}

/* The stream closed, or its loop freed, while the flusher waits for the
 * fd (the peer reads nothing): nothing is used after it is freed (ASan),
 * nothing leaks, and nothing waits for ever. */
static void *flusher_pending_main(void *arg) {
    int close_first = *(int *)arg;
    static side_t srv, cli;
    static aloop_tls_config_t *scfg, *ccfg;
    scfg = server_config("server");
    ccfg = client_config();
    srv = (side_t){.cfg = scfg};
    cli = (side_t){.cfg = ccfg, .name = "localhost"};
    handshake_pair(&srv, &cli);
    int small = 4096;
    setsockopt(aloop_stream_fd(cli.out), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    aloop_task_t *w = aloop_spawn(aloop_current(), write_64k, cli.out);
    assert_int_equal(aloop_wait_for(w, 1, NULL), -ETIMEDOUT);
    aloop_release(w);
    if (close_first) {
        aloop_stream_close(cli.out);
        aloop_stream_close(srv.out);
        assert_int_equal(aloop_sleep(1), 0); /* the cancelled flusher ends */
    }
    aloop_tls_config_free(scfg);
    aloop_tls_config_free(ccfg);
    if (!close_first) aloop_stop(aloop_current()); /* the flusher is still waiting */
    return NULL;
}

static void tls_red_flusher_pending_at_close(void **state) {
    (void)state;
    int close_first = 1;
    run_virtual(flusher_pending_main, &close_first);
}

static void tls_red_flusher_pending_at_loop_free(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    int close_first = 0;
    aloop_task_t *t = aloop_spawn(loop, flusher_pending_main, &close_first);
    assert_non_null(t);
    (void)aloop_run(loop);
    aloop_release(t);
    aloop_free(loop); /* cancels the flusher; the streams are closed after */
}

int main(void) {
    /* before OpenSSL's first allocation */
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_red_resume_after_verify_turned_on),
        cmocka_unit_test(tls_red_resume_without_name_then_with),
        cmocka_unit_test(tls_red_resume_after_require_cert),
        cmocka_unit_test(tls_red_refused_cert_keeps_the_old),
        cmocka_unit_test(tls_red_records_in_one_byte_segments),
        cmocka_unit_test(tls_red_key_updates_while_writing),
        cmocka_unit_test(tls_red_close_while_reading_and_writing),
        cmocka_unit_test(tls_red_free_loop_mid_handshake_and_io),
        cmocka_unit_test(tls_red_pending_record_needs_no_fd),
        cmocka_unit_test(tls_red_shutdown_while_reading),
        cmocka_unit_test(tls_red_cancel_at_every_step),
        cmocka_unit_test(tls_red_server_flood_and_shutdown),
        cmocka_unit_test(tls_red_serve_then_free_unrun_loop),
        cmocka_unit_test(tls_red_openssl_enomem_sweep),
        cmocka_unit_test(tls_red_misuse),
        cmocka_unit_test(tls_red_error_words_per_thread),
        cmocka_unit_test(tls_red_tls12_half_close_and_resume),
        cmocka_unit_test(tls_red_given_up_write_tail_reaches_peer),
        cmocka_unit_test(tls_red_given_up_write_then_new_write),
        cmocka_unit_test(tls_red_flusher_pending_at_close),
        cmocka_unit_test(tls_red_flusher_pending_at_loop_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

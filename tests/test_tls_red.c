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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---- helpers -------------------------------------------------------------- */

static const char *cert(const char *name) {
    static char bufs[4][512];
    static int next;
    const char *dir = getenv("ALOOP_TLS_CERTS");
    assert_non_null(dir);
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static aloop_tls_config_t *server_config(const char *name) {
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", name);
    snprintf(k, sizeof k, "%s.key", name);
    aloop_tls_config_t *cfg = aloop_tls_server_config_new(cert(c), cert(k));
    assert_non_null(cfg);
    return cfg;
}

static aloop_tls_config_t *client_config(void) {
    aloop_tls_config_t *cfg = aloop_tls_client_config_new();
    assert_non_null(cfg);
    assert_int_equal(aloop_tls_config_set_ca_file(cfg, cert("ca.pem")), 0);
    return cfg;
}

static void run(void *(*fn)(void *), void *arg) {
    assert_int_equal(aloop_main_with(NULL, fn, arg, NULL), 0);
}

static __attribute__((unused)) void run_virtual(void *(*fn)(void *), void *arg) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    assert_int_equal(aloop_main_with(&cfg, fn, arg, NULL), 0);
}

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

/* A client session made with verification off (any certificate) must not
 * be offered once verification is on: the resumed handshake checks no
 * certificate, so the untrusted server would pass. */
static void *resume_verify_off_main(void *arg) {
    (void)arg;
    unsigned short port;
    hi_server_t h = {.lfd = tcp_listener(&port), .cfg = server_config("untrusted"), .n = 3};
    aloop_task_t *t = aloop_spawn(aloop_current(), hi_server_main, &h);
    aloop_tls_config_t *ccfg = client_config();
    assert_int_equal(aloop_tls_config_set_verify(ccfg, 0), 0);
    int resumed = -1;
    assert_int_equal(hi_client(port, ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 0);
    assert_int_equal(hi_client(port, ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 1); /* the cache works while the setting stays */
    assert_int_equal(aloop_tls_config_set_verify(ccfg, 1), 0);
    assert_int_equal(hi_client(port, ccfg, "localhost", NULL), -EKEYREJECTED);
    assert_int_equal(aloop_await(t, NULL), 0);
    aloop_release(t);
    close(h.lfd);
    aloop_tls_config_free(h.cfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_resume_after_verify_turned_on(void **state) {
    (void)state;
    run(resume_verify_off_main, NULL);
}

/* A session from a connection that checked no name (server_name NULL) must
 * not be resumed by one that checks a name: the certificate (valid, for
 * wrong.example only) would never be matched against 127.0.0.1. */
static void *resume_no_name_main(void *arg) {
    (void)arg;
    unsigned short port;
    hi_server_t h = {.lfd = tcp_listener(&port), .cfg = server_config("wrongname"), .n = 2};
    aloop_task_t *t = aloop_spawn(aloop_current(), hi_server_main, &h);
    aloop_tls_config_t *ccfg = client_config();
    assert_int_equal(hi_client(port, ccfg, NULL, NULL), 0);
    assert_int_equal(hi_client(port, ccfg, "127.0.0.1", NULL), -EKEYREJECTED);
    assert_int_equal(aloop_await(t, NULL), 0);
    aloop_release(t);
    close(h.lfd);
    aloop_tls_config_free(h.cfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_resume_without_name_then_with(void **state) {
    (void)state;
    run(resume_no_name_main, NULL);
}

/* A server that starts requiring client certificates must not resume the
 * sessions of clients that never showed one. */
static void *resume_require_cert_main(void *arg) {
    (void)arg;
    unsigned short port;
    hi_server_t h = {.lfd = tcp_listener(&port), .cfg = server_config("server"), .n = 3};
    aloop_task_t *t = aloop_spawn(aloop_current(), hi_server_main, &h);
    aloop_tls_config_t *ccfg = client_config();
    int resumed = -1;
    assert_int_equal(hi_client(port, ccfg, "localhost", &resumed), 0);
    assert_int_equal(hi_client(port, ccfg, "localhost", &resumed), 0);
    assert_int_equal(resumed, 1);
    assert_int_equal(aloop_tls_config_set_ca_file(h.cfg, cert("ca.pem")), 0);
    assert_int_equal(aloop_tls_config_require_client_cert(h.cfg, 1), 0);
    assert_int_equal(hi_client(port, ccfg, "localhost", NULL), -EKEYREJECTED);
    assert_int_equal(aloop_await(t, NULL), 0);
    assert_int_equal(h.rc[2], -EKEYREJECTED);
    aloop_release(t);
    close(h.lfd);
    aloop_tls_config_free(h.cfg);
    aloop_tls_config_free(ccfg);
    return NULL;
}

static void tls_red_resume_after_require_cert(void **state) {
    (void)state;
    run(resume_require_cert_main, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_red_resume_after_verify_turned_on),
        cmocka_unit_test(tls_red_resume_without_name_then_with),
        cmocka_unit_test(tls_red_resume_after_require_cert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * tls_test.h - what the TLS test programs (tests/test_tls*.c) share: the
 * certificates of tests/tls/gen-certs.sh (the ctest fixture tls_certs) in
 * the directory $ALOOP_TLS_CERTS, the configs made from them, loops to run
 * a test's main task in, both handshakes over a socketpair, and a loopback
 * listener. Include it after aloop_test.h; every helper is static inline,
 * so a program pays only for what it calls.
 */
#ifndef ALOOP_TLS_TEST_H
#define ALOOP_TLS_TEST_H

#include "aloop_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* $ALOOP_TLS_CERTS/name (one of a few static buffers, so several fit in a
 * call's arguments). */
static inline const char *cert(const char *name) {
    static char bufs[16][512];
    static unsigned next;
    const char *dir = getenv("ALOOP_TLS_CERTS");
    assert_non_null(dir);
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* A server config from name.pem and name.key. */
static inline aloop_tls_config_t *server_config(const char *name) {
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", name);
    snprintf(k, sizeof k, "%s.key", name);
    aloop_tls_config_t *cfg = aloop_tls_server_config_new(cert(c), cert(k));
    assert_non_null(cfg);
    return cfg;
}

/* A client that trusts the test CA. */
static inline aloop_tls_config_t *client_config(void) {
    aloop_tls_config_t *cfg = aloop_tls_client_config_new();
    assert_non_null(cfg);
    assert_int_equal(aloop_tls_config_set_ca_file(cfg, cert("ca.pem")), 0);
    return cfg;
}

static inline void run(void *(*fn)(void *), void *arg) {
    assert_int_equal(aloop_main_with(NULL, fn, arg, NULL), 0);
}

static inline void run_virtual(void *(*fn)(void *), void *arg) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    assert_int_equal(aloop_main_with(&cfg, fn, arg, NULL), 0);
}

/* One side's handshake, in a task of its own. */
typedef struct side {
    aloop_stream_t *s;
    aloop_tls_config_t *cfg;
    const char *name; /* client: the name checked */
    double timeout;
    int rc;
    aloop_stream_t *out;
} side_t;

static inline void *accept_main(void *arg) {
    side_t *h = arg;
    h->rc = aloop_tls_accept(h->s, h->cfg, h->timeout, &h->out);
    return NULL;
}

static inline void *connect_main(void *arg) {
    side_t *h = arg;
    h->rc = aloop_tls_connect(h->s, h->cfg, h->name, h->timeout, &h->out);
    return NULL;
}

/* Both handshakes over a new socketpair, from inside a task: srv->out and
 * cli->out on success, rc otherwise. */
static inline void handshake_pair(side_t *srv, side_t *cli) {
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    srv->s = aloop_stream_new(aloop_current(), sv[0], 0);
    cli->s = aloop_stream_new(aloop_current(), sv[1], 0);
    assert_non_null(srv->s);
    assert_non_null(cli->s);
    if (!srv->timeout) srv->timeout = 10;
    if (!cli->timeout) cli->timeout = 10;
    aloop_task_t *t[2] = {aloop_spawn(aloop_current(), accept_main, srv),
                          aloop_spawn(aloop_current(), connect_main, cli)};
    assert_int_equal(aloop_gather(t, 2, NULL, NULL, 0), 0);
    aloop_release(t[0]);
    aloop_release(t[1]);
}

/* A listener on 127.0.0.1 at a port the kernel picks, written to port. */
static inline int listen_any(char *port, size_t cap) {
    int fd = aloop_tcp_listen("127.0.0.1", "0", 64);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, cap, "%u", (unsigned)ntohs(sin.sin_port));
    return fd;
}

#endif

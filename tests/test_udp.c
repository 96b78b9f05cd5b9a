/*
 * test_udp.c - datagram sockets (src/udp.c): bind, connect, one datagram
 * per call, truncation, cancellation, errors.
 *
 * Every peer is a socket of this process on loopback, port 0.
 */
#include "aloop_test.h"


#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int run_task(void *(*fn)(void *), void *arg) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    return aloop_main_with(&cfg, fn, arg, NULL);
}

static int local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void port_str(int fd, char *buf, size_t cap) { snprintf(buf, cap, "%d", local_port(fd)); }

/* ---- arguments, -EPERM, names ------------------------------------------- */

static void test_outside_task(void **state) {
    (void)state;
    char b[4];
    assert_int_equal(aloop_recvfrom(0, b, sizeof b, NULL, NULL), -EPERM);
    assert_int_equal(aloop_sendto(0, b, sizeof b, NULL, 0), -EPERM);
    assert_int_equal(aloop_recvfrom(-1, b, sizeof b, NULL, NULL), -EBADF);
    assert_int_equal(aloop_sendto(-1, b, sizeof b, NULL, 0), -EBADF);
    assert_int_equal(aloop_udp_bind("127.0.0.1", NULL), -EINVAL);
    assert_int_equal(aloop_udp_connect(NULL, "9"), -EINVAL);
    assert_int_equal(aloop_udp_connect("127.0.0.1", NULL), -EINVAL);
    /* numeric hosts and localhost work anywhere; names need a task */
    int fd = aloop_udp_bind("127.0.0.1", "0");
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char port[16];
    port_str(fd, port, sizeof port);
    assert_int_equal(aloop_udp_bind("127.0.0.1", port), -EADDRINUSE);
    int c = aloop_udp_connect("127.0.0.1", port);
    assert_true(c >= 0);
    aloop_close(c);
    aloop_close(fd);
    fd = aloop_udp_bind("localhost", "0");
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET); /* 127.0.0.1 */
    port_str(fd, port, sizeof port);
    c = aloop_udp_connect("localhost", port); /* the same address: reachable */
    assert_true(c >= 0);
    len = sizeof ss;
    assert_int_equal(getpeername(c, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    aloop_close(c);
    aloop_close(fd);
    assert_int_equal(aloop_udp_bind("example.com", "0"), -EPERM);
    assert_int_equal(aloop_udp_connect("example.com", "9"), -EPERM);
    assert_int_equal(aloop_udp_connect("x.invalid", "9"), -ENOENT);
}

static void *bad_args_task(void *arg) {
    (void)arg;
    int fd = aloop_udp_bind("127.0.0.1", "0");
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    assert_int_equal(aloop_recvfrom(fd, NULL, 4, NULL, NULL), -EINVAL);
    assert_int_equal(aloop_recvfrom(fd, &sin, 4, (struct sockaddr *)&sin, NULL), -EINVAL);
    assert_int_equal(aloop_sendto(fd, NULL, 4, NULL, 0), -EINVAL);
    /* unconnected, no address */
    assert_int_equal(aloop_sendto(fd, "x", 1, NULL, 0), -EDESTADDRREQ);
    assert_int_equal(aloop_udp_connect("no-such-host.invalid", "9"), -ENOENT);
    assert_int_equal(aloop_udp_bind("no-such-host.invalid", "0"), -ENOENT);
    /* not a socket */
    int p[2];
    assert_int_equal(pipe(p), 0);
    char b[4];
    assert_int_equal(aloop_recvfrom(p[0], b, sizeof b, NULL, NULL), -ENOTSOCK);
    assert_int_equal(aloop_sendto(p[1], "x", 1, NULL, 0), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    aloop_close(fd);
    return NULL;
}

static void test_bad_args(void **state) {
    (void)state;
    assert_int_equal(run_task(bad_args_task, NULL), 0);
}

/* ---- echo over loopback ------------------------------------------------- */

typedef struct echo_ctx {
    const char *host;
    int sfd;
    char port[16];
    int rc[4];
    char got[64];
} echo_ctx_t;

/* Echoes datagrams to their sender until it gets "quit". */
static void *udp_echo_server(void *arg) {
    echo_ctx_t *c = arg;
    for (;;) {
        char buf[64];
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = aloop_recvfrom(c->sfd, buf, sizeof buf, (struct sockaddr *)&from, &flen);
        if (n < 0) return aloop_fail((int)n);
        assert_true(flen > 0 && flen <= sizeof from);
        assert_int_equal(aloop_sendto(c->sfd, buf, (size_t)n, (struct sockaddr *)&from, flen), n);
        if (n == 4 && memcmp(buf, "quit", 4) == 0) return NULL;
    }
}

static void *udp_echo_client(void *arg) {
    echo_ctx_t *c = arg;
    int fd = aloop_udp_connect(c->host, c->port);
    c->rc[0] = fd < 0 ? fd : 0;
    if (fd < 0) return NULL;
    /* one datagram per call, boundaries kept */
    const char *msgs[] = {"a", "bb", "ccc", "", "quit"};
    for (size_t i = 0; i < 5; i++) {
        size_t len = strlen(msgs[i]);
        assert_int_equal(aloop_sendto(fd, msgs[i], len, NULL, 0), (ssize_t)len);
        char buf[64];
        ssize_t n = aloop_recvfrom(fd, buf, sizeof buf, NULL, NULL);
        assert_int_equal(n, (ssize_t)len);
        assert_memory_equal(buf, msgs[i], len);
    }
    c->rc[1] = 1;
    aloop_close(fd);
    return NULL;
}

static void udp_echo(const char *host) {
    echo_ctx_t c = {.host = host};
    c.sfd = aloop_udp_bind(host, "0");
    if (c.sfd == -EADDRNOTAVAIL || c.sfd == -EAFNOSUPPORT) {
        print_message("no %s here; skipped\n", host);
        return;
    }
    assert_true(c.sfd >= 0);
    port_str(c.sfd, c.port, sizeof c.port);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, udp_echo_server, &c), spawn(loop, udp_echo_client, &c)};
    run_and_release(loop, ts, 2);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 1);
    aloop_close(c.sfd);
    aloop_free(loop);
}

static void test_echo_ipv4(void **state) {
    (void)state;
    udp_echo("127.0.0.1");
}

static void test_echo_ipv6(void **state) {
    (void)state;
    udp_echo("::1");
}

/* ---- truncation, sizes -------------------------------------------------- */

static void *trunc_task(void *arg) {
    (void)arg;
    int s = aloop_udp_bind("127.0.0.1", "0");
    char port[16];
    port_str(s, port, sizeof port);
    int c = aloop_udp_connect("127.0.0.1", port);
    assert_true(s >= 0 && c >= 0);
    char big[100];
    for (int i = 0; i < 100; i++) big[i] = (char)i;
    assert_int_equal(aloop_sendto(c, big, sizeof big, NULL, 0), 100);
    assert_int_equal(aloop_sendto(c, "next", 4, NULL, 0), 4);
    char buf[10];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    /* the first 10 bytes, and the truncation reported */
    assert_int_equal(aloop_recvfrom(s, buf, sizeof buf, (struct sockaddr *)&from, &flen), -EMSGSIZE);
    assert_memory_equal(buf, big, sizeof buf);
    assert_int_equal(flen, sizeof from);
    assert_int_equal(ntohs(from.sin_port), local_port(c));
    /* the rest is gone; the next datagram is whole */
    assert_int_equal(aloop_recvfrom(s, buf, sizeof buf, NULL, NULL), 4);
    assert_memory_equal(buf, "next", 4);
    /* a zero-length read of a non-empty datagram is a truncation too */
    assert_int_equal(aloop_sendto(c, "xy", 2, NULL, 0), 2);
    assert_int_equal(aloop_recvfrom(s, NULL, 0, NULL, NULL), -EMSGSIZE);
    /* above the protocol's limit */
    size_t huge = 70000;
    char *h = calloc(1, huge);
    assert_int_equal(aloop_sendto(c, h, huge, NULL, 0), -EMSGSIZE);
    free(h);
    aloop_close(c);
    aloop_close(s);
    return NULL;
}

static void test_truncation(void **state) {
    (void)state;
    assert_int_equal(run_task(trunc_task, NULL), 0);
}

/* ---- cancellation and timeouts leave the datagram ----------------------- */

typedef struct cancel_ctx {
    int s, c;
    int rc[4];
    aloop_task_t *receiver;
} cancel_ctx_t;

static void *blocked_receiver(void *arg) {
    cancel_ctx_t *x = arg;
    char buf[16];
    x->rc[0] = (int)aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL);
    return NULL;
}

static void *canceller_then_sender(void *arg) {
    cancel_ctx_t *x = arg;
    assert_int_equal(aloop_sleep(1), 0); /* the receiver waits by now */
    aloop_cancel(x->receiver);
    assert_int_equal(aloop_sleep(0.1), 0);
    assert_int_equal(x->rc[0], -ECANCELED);
    /* its watch is gone: a new wait is not -EBUSY (nothing has arrived) */
    assert_int_equal(aloop_wait_readable(x->s, 0), -ETIMEDOUT);
    assert_int_equal(aloop_sendto(x->c, "kept", 4, NULL, 0), 4);
    /* a pending cancel: -ECANCELED at once, the datagram stays queued */
    aloop_cancel(aloop_current_task());
    char buf[16];
    assert_int_equal(aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL), -ECANCELED);
    aloop_task_uncancel(aloop_current_task());
    /* a timeout scope around a receive */
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 0.5), 0);
    ssize_t n = aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL);
    assert_int_equal(aloop_timeout_exit(&to, (int)n), 4); /* it was there */
    assert_memory_equal(buf, "kept", 4);
    double t0 = aloop_time(aloop_current());
    assert_int_equal(aloop_timeout_enter(&to, 0.5), 0);
    n = aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL);
    assert_int_equal(n, -ECANCELED);
    assert_int_equal(aloop_timeout_exit(&to, (int)n), -ETIMEDOUT);
    assert_true(aloop_time(aloop_current()) - t0 >= 0.5);
    /* and nothing was lost meanwhile */
    assert_int_equal(aloop_sendto(x->c, "after", 5, NULL, 0), 5);
    assert_int_equal(aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL), 5);
    /* a send with a cancel pending sends nothing */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_sendto(x->c, "never", 5, NULL, 0), -ECANCELED);
    aloop_task_uncancel(aloop_current_task());
    assert_int_equal(aloop_timeout_enter(&to, 0.5), 0);
    n = aloop_recvfrom(x->s, buf, sizeof buf, NULL, NULL);
    assert_int_equal(aloop_timeout_exit(&to, (int)n), -ETIMEDOUT);
    return NULL;
}

static void test_cancel_keeps_datagram(void **state) {
    (void)state;
    cancel_ctx_t x = {0};
    x.s = aloop_udp_bind("127.0.0.1", "0");
    char port[16];
    port_str(x.s, port, sizeof port);
    x.c = aloop_udp_connect("127.0.0.1", port);
    assert_true(x.s >= 0 && x.c >= 0);
    aloop_t *loop = vloop();
    x.receiver = spawn(loop, blocked_receiver, &x);
    aloop_task_t *ts[] = {x.receiver, spawn(loop, canceller_then_sender, &x)};
    run_and_release(loop, ts, 2);
    aloop_close(x.s);
    aloop_close(x.c);
    aloop_free(loop);
}

/* A freed loop cancels a task waiting in recvfrom; nothing is left. */
static void test_free_while_receiving(void **state) {
    (void)state;
    cancel_ctx_t x = {0};
    x.s = aloop_udp_bind("127.0.0.1", "0");
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, blocked_receiver, &x);
    aloop_stop(loop);
    aloop_run(loop);
    aloop_free(loop);
    assert_int_equal(x.rc[0], -ECANCELED);
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_close(x.s);
}

/* ---- a connected socket hears of a refused datagram ------------------- */

static void *refused_task(void *arg) {
    (void)arg;
    int gone = aloop_udp_bind("127.0.0.1", "0");
    char port[16];
    port_str(gone, port, sizeof port);
    aloop_close(gone); /* nobody listens there now */
    int c = aloop_udp_connect("127.0.0.1", port);
    assert_true(c >= 0);
    assert_int_equal(aloop_sendto(c, "x", 1, NULL, 0), 1);
    char buf[4];
    assert_int_equal(aloop_recvfrom(c, buf, sizeof buf, NULL, NULL), -ECONNREFUSED);
    aloop_close(c);
    return NULL;
}

static void test_connected_refused(void **state) {
    (void)state;
    assert_int_equal(run_task(refused_task, NULL), 0);
}

/* ---- many datagrams, two senders ------------------------------------------ */

typedef struct flood_ctx {
    int s;
    char port[16];
    int received[2];
} flood_ctx_t;

enum { FLOOD = 500 };

static void *flood_sender(void *arg) {
    flood_ctx_t *f = *(flood_ctx_t **)arg;
    int id = (int)(((flood_ctx_t **)arg)[1] != NULL);
    int c = aloop_udp_connect("127.0.0.1", f->port);
    assert_true(c >= 0);
    for (int i = 0; i < FLOOD; i++) {
        char msg[8] = {(char)id};
        memcpy(msg + 1, &i, sizeof i);
        assert_int_equal(aloop_sendto(c, msg, sizeof msg, NULL, 0), 8);
        if (i % 50 == 49) aloop_sleep(0.001); /* let the receiver drain: UDP drops */
    }
    aloop_close(c);
    return NULL;
}

static void *flood_receiver(void *arg) {
    flood_ctx_t *f = arg;
    int next[2] = {0, 0};
    while (f->received[0] + f->received[1] < 2 * FLOOD) {
        char msg[16];
        assert_int_equal(aloop_recvfrom(f->s, msg, sizeof msg, NULL, NULL), 8);
        int id = msg[0], i;
        memcpy(&i, msg + 1, sizeof i);
        assert_int_equal(i, next[id]); /* loopback keeps each sender's order */
        next[id]++;
        f->received[id]++;
    }
    return NULL;
}

static void test_two_senders(void **state) {
    (void)state;
    flood_ctx_t f = {0};
    f.s = aloop_udp_bind("127.0.0.1", "0");
    int big = 1 << 20;
    setsockopt(f.s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    port_str(f.s, f.port, sizeof f.port);
    void *a0[2] = {&f, NULL}, *a1[2] = {&f, &f};
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, flood_receiver, &f), spawn(loop, flood_sender, a0),
                          spawn(loop, flood_sender, a1)};
    run_and_release(loop, ts, 3);
    assert_int_equal(f.received[0], FLOOD);
    assert_int_equal(f.received[1], FLOOD);
    aloop_close(f.s);
    aloop_free(loop);
}

/* ---- an always-ready socket does not keep the loop ------------------------ */

typedef struct ready_ctx {
    int s;
    long ticks;
    long ticks_during;
    int stop;
} ready_ctx_t;

static void *ready_ticker(void *arg) {
    ready_ctx_t *r = arg;
    while (!r->stop) {
        r->ticks++;
        if (aloop_yield() < 0) break;
    }
    return NULL;
}

enum { QUEUED = 1000 };

/* Every receive completes at once (the datagrams are queued already), yet
 * the ticker runs meanwhile: each call spends the task's cooperative
 * budget, and a spent budget yields a loop step. */
static void *ready_receiver(void *arg) {
    ready_ctx_t *r = arg;
    long before = r->ticks;
    for (int i = 0; i < QUEUED; i++) {
        char b[8];
        assert_int_equal(aloop_recvfrom(r->s, b, sizeof b, NULL, NULL), 4);
    }
    r->ticks_during = r->ticks - before;
    r->stop = 1;
    return NULL;
}

static void test_ready_socket_yields(void **state) {
    (void)state;
    ready_ctx_t r = {0};
    r.s = aloop_udp_bind("127.0.0.1", "0");
    int big = 1 << 20;
    setsockopt(r.s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in to;
    socklen_t len = sizeof to;
    assert_int_equal(getsockname(r.s, (struct sockaddr *)&to, &len), 0);
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    for (int i = 0; i < QUEUED; i++)
        assert_int_equal(sendto(c, "ping", 4, 0, (struct sockaddr *)&to, len), 4);
    close(c);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, ready_receiver, &r), spawn(loop, ready_ticker, &r)};
    run_and_release(loop, ts, 2);
    print_message("%d receives without waiting, %ld ticks meanwhile\n", QUEUED, r.ticks_during);
    assert_true(r.ticks_during >= QUEUED / 128); /* the cooperative budget: 128 calls */
    aloop_close(r.s);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_task),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_echo_ipv4),
        cmocka_unit_test(test_echo_ipv6),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_cancel_keeps_datagram),
        cmocka_unit_test(test_free_while_receiving),
        cmocka_unit_test(test_connected_refused),
        cmocka_unit_test(test_two_senders),
        cmocka_unit_test(test_ready_socket_yields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

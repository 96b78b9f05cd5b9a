/*
 * test_net.c - accept, connect, TCP listeners and connections, name
 * lookups (src/net.c).
 *
 * Peers are started here on port 0 over loopback; names are "localhost"
 * (from /etc/hosts, no network) and names in ".invalid" (never exist).
 */
#include "aloop_test.h"

#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn(arg) as a task on a fresh virtual-clock loop; returns its status. */
static int run_task(void *(*fn)(void *), void *arg, void **result) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    return aloop_main_with(&cfg, fn, arg, result);
}

/* ---- argument checks and -EPERM --------------------------------------- */

static void test_outside_task(void **state) {
    (void)state;
    assert_int_equal(aloop_accept(0, NULL, NULL), -EPERM);
    assert_int_equal(aloop_connect(0, NULL, 0), -EINVAL);
    assert_int_equal(aloop_tcp_connect("127.0.0.1", "1", 1), -EPERM);
    assert_int_equal(aloop_tcp_listen("127.0.0.1", NULL, 1), -EINVAL);
    assert_int_equal(aloop_tcp_listen_with("127.0.0.1", "0", 1, 1u << 7), -EINVAL);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    assert_int_equal(aloop_connect(0, (struct sockaddr *)&sin, sizeof sin), -EPERM);
}

static void *bad_args_task(void *arg) {
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(aloop_connect(sv[0], NULL, 0), -EINVAL);
    assert_int_equal(aloop_accept(sv[0], (struct sockaddr *)&sv, NULL), -EINVAL);
    assert_int_equal(aloop_tcp_connect(NULL, "1", 1), -EINVAL);
    assert_int_equal(aloop_tcp_connect("127.0.0.1", "1", 0.0 / 0.0), -EINVAL);
    aloop_close(sv[0]);
    aloop_close(sv[1]);
    return NULL;
}

ALOOP_TEST_CASE(test_bad_args, assert_int_equal(run_task(bad_args_task, NULL, NULL), 0))

/* ---- sockets ---------------------------------------------------------- */

static int local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

typedef struct tcp_ctx {
    const char *host;
    int lfd;
    int port;
    int rc[4];
    char got[32];
} tcp_ctx_t;

static void *echo_server(void *arg) {
    tcp_ctx_t *c = arg;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int fd = aloop_accept(c->lfd, (struct sockaddr *)&peer, &plen);
    c->rc[0] = fd < 0 ? fd : 0;
    if (fd < 0) return NULL;
    assert_true(plen > 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[64];
    ssize_t n;
    while ((n = aloop_read(fd, buf, sizeof buf)) > 0) aloop_write_all(fd, buf, (size_t)n);
    aloop_close(fd);
    return NULL;
}

static void *echo_client(void *arg) {
    tcp_ctx_t *c = arg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int fd = aloop_tcp_connect(c->host, port, 5);
    c->rc[1] = fd < 0 ? fd : 0;
    if (fd < 0) return NULL;
    c->rc[2] = (int)aloop_write_all(fd, "ping\n", 5);
    size_t got = 0;
    while (got < 5) {
        ssize_t n = aloop_read(fd, c->got + got, sizeof c->got - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    c->rc[3] = (int)got;
    aloop_close(fd);
    return NULL;
}

static void tcp_echo(const char *host) {
    tcp_ctx_t c = {.host = host};
    c.lfd = aloop_tcp_listen(host, "0", 16);
    if (c.lfd == -EADDRNOTAVAIL || c.lfd == -EAFNOSUPPORT || c.lfd == -EHOSTUNREACH) {
        print_message("no %s here; skipped\n", host);
        return;
    }
    assert_true(c.lfd >= 0);
    c.port = local_port(c.lfd);
    assert_true(c.port > 0);
    aloop_t *loop = vloop();
    aloop_release(aloop_spawn(loop, echo_server, &c));
    aloop_release(aloop_spawn(loop, echo_client, &c));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 5);
    assert_int_equal(c.rc[3], 5);
    assert_string_equal(c.got, "ping\n");
    aloop_close(c.lfd);
    aloop_free(loop);
}

ALOOP_TEST_CASE(test_tcp_ipv4, tcp_echo("127.0.0.1"))

ALOOP_TEST_CASE(test_tcp_ipv6, tcp_echo("::1"))

ALOOP_TEST_CASE(test_tcp_localhost, tcp_echo("localhost"))

/* SO_REUSEADDR: a port can be listened on again right after a connection
 * through it was closed (TIME_WAIT). */
static void test_tcp_reuseaddr(void **state) {
    (void)state;
    tcp_ctx_t c = {.host = "127.0.0.1"};
    c.lfd = aloop_tcp_listen("127.0.0.1", "0", 16);
    assert_true(c.lfd >= 0);
    int one = 0;
    socklen_t len = sizeof one;
    assert_int_equal(getsockopt(c.lfd, SOL_SOCKET, SO_REUSEADDR, &one, &len), 0);
    assert_true(one != 0);
    c.port = local_port(c.lfd);
    aloop_t *loop = vloop();
    aloop_release(aloop_spawn(loop, echo_server, &c));
    aloop_release(aloop_spawn(loop, echo_client, &c));
    assert_int_equal(aloop_run(loop), 0);
    aloop_close(c.lfd);
    char port[16];
    snprintf(port, sizeof port, "%d", c.port);
    int again = aloop_tcp_listen("127.0.0.1", port, 16);
    assert_true(again >= 0);
    aloop_close(again);
    aloop_free(loop);
}

static void *refused_task(void *arg) {
    tcp_ctx_t *c = arg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    c->rc[0] = aloop_tcp_connect("127.0.0.1", port, 5);
    /* raw aloop_connect reports it too */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->rc[1] = aloop_connect(fd, (struct sockaddr *)&sin, sizeof sin);
    aloop_close(fd);
    c->rc[2] = aloop_tcp_connect("no-such-host.invalid", port, 5);
    c->rc[3] = aloop_tcp_connect("127.0.0.1", "not-a-port-name", 5);
    return NULL;
}

static void test_connect_refused(void **state) {
    (void)state;
    tcp_ctx_t c = {0};
    int fd = aloop_tcp_listen("127.0.0.1", "0", 1);
    assert_true(fd >= 0);
    c.port = local_port(fd);
    aloop_close(fd); /* now nobody listens there */
    assert_int_equal(run_task(refused_task, &c, NULL), 0);
    assert_int_equal(c.rc[0], -ECONNREFUSED);
    assert_int_equal(c.rc[1], -ECONNREFUSED);
    assert_int_equal(c.rc[2], -ENOENT); /* no such name */
    assert_int_equal(c.rc[3], -ENOENT); /* no such service */
}

/* A port is a number 0..65535 or a service name, everywhere one is taken;
 * anything else is -EINVAL (getaddrinfo alone wraps "99999" to 34463 and
 * reads " 80" as 80). */
static const char *const bad_ports[] = {"99999", "65536", "4294967376", "-1", "+80", " 80",
                                        "80 ", "8 0", "", "\t", "p\xc3\xa9"};

static void *bad_port_task(void *arg) {
    int *rc = arg;
    *rc = 0;
    for (size_t i = 0; i < sizeof bad_ports / sizeof *bad_ports; i++) {
        const char *p = bad_ports[i];
        struct addrinfo *ai = (struct addrinfo *)&ai;
        int fd;
        if (aloop_getaddrinfo("127.0.0.1", p, NULL, &ai) != -EINVAL || ai) (*rc)++;
        if (aloop_getaddrinfo(NULL, p, NULL, &ai) != -EINVAL) (*rc)++;
        if (aloop_getaddrinfo("localhost", p, NULL, &ai) != -EINVAL) (*rc)++; /* a name too */
        if ((fd = aloop_tcp_listen("127.0.0.1", p, 1)) != -EINVAL) (*rc)++;
        if ((fd = aloop_tcp_listen_with(NULL, p, 1, 0)) != -EINVAL) (*rc)++;
        if ((fd = aloop_tcp_connect("127.0.0.1", p, 1)) != -EINVAL) (*rc)++;
        if ((fd = aloop_tcp_connect("localhost", p, 1)) != -EINVAL) (*rc)++;
        if ((fd = aloop_udp_bind("127.0.0.1", p)) != -EINVAL) (*rc)++;
        if ((fd = aloop_udp_connect("127.0.0.1", p)) != -EINVAL) (*rc)++;
        aloop_stream_t *s = NULL;
        if (aloop_open_connection("127.0.0.1", p, 1, &s) != -EINVAL || s) (*rc)++;
        if (*rc) {
            print_message("port \"%s\" accepted\n", p);
            return NULL;
        }
    }
    return NULL;
}

static int port_of(const char *port) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = aloop_getaddrinfo("127.0.0.1", port, &hints, &ai);
    if (rc < 0) return rc;
    int p = ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
    freeaddrinfo(ai);
    return p;
}

static void test_bad_ports(void **state) {
    (void)state;
    int bad = -1;
    assert_int_equal(run_task(bad_port_task, &bad, NULL), 0);
    assert_int_equal(bad, 0);
    /* numeric hosts are answered outside a task too */
    assert_int_equal(aloop_tcp_listen("127.0.0.1", "99999", 1), -EINVAL);
    /* the edges that are ports */
    assert_int_equal(port_of("0"), 0);
    assert_int_equal(port_of("65535"), 65535);
    assert_int_equal(port_of("00080"), 80);
    assert_int_equal(port_of("000000000065535"), 65535);
    if (getservbyname("http", "tcp")) assert_int_equal(port_of("http"), 80);
}

static void *raw_connect_task(void *arg) {
    tcp_ctx_t *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* blocking: made non-blocking */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->rc[1] = aloop_connect(fd, (struct sockaddr *)&sin, sizeof sin);
    c->rc[2] = (int)aloop_write_all(fd, "ping\n", 5);
    ssize_t k = 1; /* the echo may come in pieces (short reads) */
    for (c->rc[3] = 0; c->rc[3] < 5 && k > 0; c->rc[3] += (int)k)
        k = aloop_read(fd, c->got + c->rc[3], sizeof c->got - 1 - (size_t)c->rc[3]);
    aloop_close(fd);
    return NULL;
}

static void test_raw_connect(void **state) {
    (void)state;
    tcp_ctx_t c = {0};
    c.lfd = aloop_tcp_listen("127.0.0.1", "0", 4);
    assert_true(c.lfd >= 0);
    c.port = local_port(c.lfd);
    aloop_t *loop = vloop();
    aloop_release(aloop_spawn(loop, echo_server, &c));
    aloop_release(aloop_spawn(loop, raw_connect_task, &c));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 5);
    assert_int_equal(c.rc[3], 5);
    aloop_close(c.lfd);
    aloop_free(loop);
}

/* ---- EMFILE on accept does not spin --------------------------------------- */

typedef struct emfile_ctx {
    int lfd;
    int spare;
    int accepted;
    int emfiles; /* -EMFILE results before the accept succeeded */
    double when;
} emfile_ctx_t;

/* The naive server loop: try again on every error. */
static void *emfile_acceptor(void *arg) {
    emfile_ctx_t *c = arg;
    for (;;) {
        int fd = aloop_accept(c->lfd, NULL, NULL);
        if (fd >= 0 || fd != -EMFILE) {
            c->accepted = fd;
            break;
        }
        c->emfiles++;
    }
    c->when = aloop_time(aloop_current());
    return NULL;
}

static void *emfile_freer(void *arg) {
    emfile_ctx_t *c = arg;
    aloop_sleep(0.6);
    close(c->spare); /* one fd free again */
    return NULL;
}

/* In a child (it lowers its fd limit): with a connection waiting and no fd
 * left, aloop_accept pauses before each -EMFILE, so even a caller that
 * retries at once does not spin; it succeeds once an fd is free. Exit
 * status: 0 ok, else which check failed. */
static int emfile_child(void) {
    aloop_t *loop = aloop_new(); /* monotonic clock: the back-off is real time */
    if (!loop) return 10;
    emfile_ctx_t c = {0};
    c.lfd = aloop_tcp_listen("127.0.0.1", "0", 4);
    if (c.lfd < 0) return 11;
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    getsockname(c.lfd, (struct sockaddr *)&sin, &sl);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cl, (struct sockaddr *)&sin, sl) < 0) return 12; /* lands in the backlog */
    struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return 13;
    int last = -1;
    for (;;) {
        int fd = dup(c.lfd);
        if (fd < 0) break;
        last = fd;
    }
    if (last < 0 || errno != EMFILE) return 14;
    c.spare = last;
    /* spawning needs no fd: the loop's epoll fd and eventfd exist already */
    aloop_release(aloop_spawn(loop, emfile_acceptor, &c));
    aloop_release(aloop_spawn(loop, emfile_freer, &c));
    double cpu0 = cpu_seconds();
    if (aloop_run(loop) != 0) return 15;
    double cpu = cpu_seconds() - cpu0;
    if (c.accepted < 0) return 16;
    if (c.when < 0.6) return 17;
    /* a spinning accept would burn ~all of the 0.6+ s */
    if (cpu > 0.2) return 18;
    /* reported (the caller may log it), but paced: ~one per 100 ms */
    if (c.emfiles < 2 || c.emfiles > 10) return 19;
    aloop_free(loop);
    return 0;
}

static void test_accept_emfile_backoff(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(emfile_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* tcp_connect's timeout: a listener whose accept queue is full drops SYNs,
 * so further connects stay in progress until the (virtual) deadline. */
static void *connect_timeout_task(void *arg) {
    tcp_ctx_t *c = arg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int fds[8], n = 0;
    c->rc[0] = 0;
    for (; n < 8; n++) {
        fds[n] = aloop_tcp_connect("127.0.0.1", port, 1.0);
        if (fds[n] < 0) break;
    }
    c->rc[0] = n < 8 ? fds[n] : 0;
    c->rc[1] = (int)(aloop_time(aloop_current()) * 1000);
    for (int i = 0; i < n; i++) aloop_close(fds[i]);
    return NULL;
}

static void test_connect_timeout(void **state) {
    (void)state;
    tcp_ctx_t c = {0};
    c.lfd = aloop_tcp_listen("127.0.0.1", "0", 1);
    assert_true(c.lfd >= 0);
    c.port = local_port(c.lfd);
    assert_int_equal(run_task(connect_timeout_task, &c, NULL), 0);
    if (c.rc[0] == 0) {
        print_message("the kernel accepted every connect; timeout not exercised\n");
    } else {
        assert_int_equal(c.rc[0], -ETIMEDOUT);
        assert_int_equal(c.rc[1], 1000);
    }
    aloop_close(c.lfd);
}

/* The same under spurious readiness (simulation): a connect woken before
 * its outcome must wait on, not report a connection that is not there.
 * Every fd tcp_connect returns is connected (it has a peer); the rest time
 * out. The failure this catches: a spurious wake-up of a pending connect
 * reading SO_ERROR 0 and returning an unconnected socket. */
static void *connect_spurious_task(void *arg) {
    tcp_ctx_t *c = arg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int fds[8], n = 0;
    for (; n < 8; n++) {
        fds[n] = aloop_tcp_connect("127.0.0.1", port, 1.0);
        if (fds[n] < 0) break;
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (getpeername(fds[n], (struct sockaddr *)&peer, &pl) < 0) c->rc[2]++;
    }
    c->rc[0] = n < 8 ? fds[n] : 0;
    for (int i = 0; i < n; i++) aloop_close(fds[i]);
    return NULL;
}

static void test_connect_spurious_wakeup(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        tcp_ctx_t c = {0};
        c.lfd = aloop_tcp_listen("127.0.0.1", "0", 1);
        assert_true(c.lfd >= 0);
        c.port = local_port(c.lfd);
        aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .sim_seed = seed,
                              .sim_faults = ALOOP_SIM_SPURIOUS, .sim_rate = 0.5};
        assert_int_equal(aloop_main_with(&cfg, connect_spurious_task, &c, NULL), 0);
        assert_int_equal(c.rc[2], 0); /* no unconnected fd came back */
        assert_true(c.rc[0] == 0 || c.rc[0] == -ETIMEDOUT);
        aloop_close(c.lfd);
    }
}

/* ---- SO_REUSEPORT: one listener per loop ------------------------------ */

typedef struct reuse_ctx {
    int lfd[2];
    int accepted[2];
    int port;
    int nconn;
    aloop_task_t *acceptors[2];
} reuse_ctx_t;

typedef struct acceptor_arg {
    reuse_ctx_t *c;
    int i;
} acceptor_arg_t;

static void *reuse_acceptor(void *arg) {
    acceptor_arg_t *a = arg;
    int fd;
    while ((fd = aloop_accept(a->c->lfd[a->i], NULL, NULL)) >= 0) {
        a->c->accepted[a->i]++;
        aloop_close(fd);
    }
    return NULL;
}

static void *reuse_connector(void *arg) {
    reuse_ctx_t *c = arg;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    for (int i = 0; i < c->nconn; i++) {
        int fd = aloop_tcp_connect("127.0.0.1", port, 5);
        assert_true(fd >= 0);
        aloop_close(fd);
    }
    while (c->accepted[0] + c->accepted[1] < c->nconn) assert_int_equal(aloop_sleep(0.001), 0);
    aloop_cancel(c->acceptors[0]);
    aloop_cancel(c->acceptors[1]);
    return NULL;
}

/* Two listeners on one port, both with REUSEPORT: the kernel hands new
 * connections to either (by a hash of the 4-tuple: with 64 connections the
 * chance that one listener gets none is 2^-63), and each accepts. */
static void test_listen_reuseport(void **state) {
    (void)state;
    reuse_ctx_t c = {.nconn = 64};
    c.lfd[0] = aloop_tcp_listen_with("127.0.0.1", "0", 128, ALOOP_LISTEN_REUSEPORT);
    assert_true(c.lfd[0] >= 0);
    int one = 0;
    socklen_t len = sizeof one;
    assert_int_equal(getsockopt(c.lfd[0], SOL_SOCKET, SO_REUSEPORT, &one, &len), 0);
    assert_true(one != 0);
    c.port = local_port(c.lfd[0]);
    char port[16];
    snprintf(port, sizeof port, "%d", c.port);
    /* without the flag on both sides the port is taken */
    assert_int_equal(aloop_tcp_listen("127.0.0.1", port, 16), -EADDRINUSE);
    c.lfd[1] = aloop_tcp_listen_with("127.0.0.1", port, 128, ALOOP_LISTEN_REUSEPORT);
    assert_true(c.lfd[1] >= 0);

    aloop_t *loop = vloop();
    acceptor_arg_t a0 = {&c, 0}, a1 = {&c, 1};
    c.acceptors[0] = spawn(loop, reuse_acceptor, &a0);
    c.acceptors[1] = spawn(loop, reuse_acceptor, &a1);
    aloop_task_t *conn = spawn(loop, reuse_connector, &c);
    aloop_task_t *ts[] = {c.acceptors[0], c.acceptors[1], conn};
    run_and_release(loop, ts, 3);
    print_message("accepted %d + %d\n", c.accepted[0], c.accepted[1]);
    assert_int_equal(c.accepted[0] + c.accepted[1], c.nconn);
    assert_true(c.accepted[0] > 0);
    assert_true(c.accepted[1] > 0);
    aloop_close(c.lfd[0]);
    aloop_close(c.lfd[1]);
    aloop_free(loop);
}

/* ---- names --------------------------------------------------------------- */

/* 1 if the list holds the IPv4 or IPv6 loopback address. */
static int has_loopback(const struct addrinfo *ai) {
    for (; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET &&
            ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            return 1;
        if (ai->ai_family == AF_INET6 &&
            IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr))
            return 1;
    }
    return 0;
}

/* A host name from /etc/hosts other than localhost (answered from the file,
 * no network), into buf; 0 if there is none. */
static int hosts_file_name(char *buf, size_t cap) {
    FILE *f = fopen("/etc/hosts", "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *save = NULL, *addr = strtok_r(line, " \t\n", &save);
        if (!addr || addr[0] == '#') continue;
        for (char *n = strtok_r(NULL, " \t\n", &save); n; n = strtok_r(NULL, " \t\n", &save)) {
            if (n[0] == '#') break;
            if (strstr(n, "localhost") || strlen(n) >= cap) continue;
            snprintf(buf, cap, "%s", n);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static void *names_task(void *arg) {
    (void)arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    /* a name: on the pool, from /etc/hosts */
    assert_int_equal(aloop_getaddrinfo("localhost", "80", &hints, &res), 0);
    assert_true(has_loopback(res));
    freeaddrinfo(res);
    /* NULL hints are getaddrinfo's defaults */
    assert_int_equal(aloop_getaddrinfo("localhost", NULL, NULL, &res), 0);
    freeaddrinfo(res);
    /* no such name */
    res = (struct addrinfo *)&hints;
    assert_int_equal(aloop_getaddrinfo("no-such-host.invalid", "80", &hints, &res), -ENOENT);
    assert_null(res);
    assert_int_equal(aloop_getaddrinfo("INVALID.", "80", &hints, &res), -ENOENT);
    /* AI_NUMERICHOST and a name */
    struct addrinfo num = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    assert_int_equal(aloop_getaddrinfo("localhost", "80", &num, &res), -ENOENT);
    assert_int_equal(aloop_getaddrinfo("127.0.0.1", "80", &num, &res), 0);
    freeaddrinfo(res);
    /* an unknown service, a bad family */
    assert_int_equal(aloop_getaddrinfo("127.0.0.1", "no-such-service", &hints, &res), -ENOENT);
    struct addrinfo badfam = {.ai_family = 12345};
    assert_int_equal(aloop_getaddrinfo("127.0.0.1", "80", &badfam, &res), -EAFNOSUPPORT);
    assert_int_equal(aloop_getaddrinfo(NULL, NULL, &hints, &res), -EINVAL);
    assert_int_equal(aloop_getaddrinfo("localhost", "80", &hints, NULL), -EINVAL);
    /* every helper: names from the pool, -ENOENT */
    assert_int_equal(aloop_tcp_listen("no-such-host.invalid", "0", 1), -ENOENT);
    assert_int_equal(aloop_tcp_connect("no-such-host.invalid", "80", 1), -ENOENT);
    char name[256];
    if (hosts_file_name(name, sizeof name)) {
        int fd = aloop_tcp_listen(name, "0", 1); /* looked up on the pool */
        print_message("%s from /etc/hosts: %d\n", name, fd);
        assert_true(fd >= 0 || fd == -EADDRNOTAVAIL);
        if (fd >= 0) aloop_close(fd);
    }
    /* a pending cancel: a lookup is a cancellation point */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_getaddrinfo("localhost", "80", &hints, &res), -ECANCELED);
    /* numeric hosts are not suspending calls */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_getaddrinfo("::1", "80", &hints, &res), 0);
    freeaddrinfo(res);
    aloop_task_uncancel(aloop_current_task()); /* both cancels, or the task */
    assert_int_equal(aloop_task_uncancel(aloop_current_task()), 0); /* ends cancelled */
    assert_int_equal(aloop_sleep(0), 0); /* and the pending one is gone */
    return NULL;
}

ALOOP_TEST_CASE(test_names, assert_int_equal(run_task(names_task, NULL, NULL), 0))

/* Outside a task: numeric hosts work, names that need a lookup are -EPERM,
 * "localhost" means loopback for the helpers, ".invalid" is -ENOENT. */
static void test_names_outside_task(void **state) {
    (void)state;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    assert_int_equal(aloop_getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
    assert_true(has_loopback(res));
    freeaddrinfo(res);
    assert_int_equal(aloop_getaddrinfo(NULL, "80", &hints, &res), 0);
    assert_true(has_loopback(res)); /* not passive: the loopback addresses */
    freeaddrinfo(res);
    assert_int_equal(aloop_getaddrinfo("localhost", "80", &hints, &res), -EPERM);
    assert_null(res);
    assert_int_equal(aloop_getaddrinfo("x.invalid", "80", &hints, &res), -ENOENT);
    assert_int_equal(aloop_tcp_listen("example.com", "0", 1), -EPERM);
    assert_int_equal(aloop_tcp_listen("x.invalid", "0", 1), -ENOENT);
    int fd = aloop_tcp_listen("127.0.0.1", "0", 1);
    assert_true(fd >= 0);
    close(fd);
    fd = aloop_tcp_listen("localhost", "0", 1);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    struct addrinfo one = {.ai_family = ss.ss_family, .ai_addr = (struct sockaddr *)&ss};
    assert_true(has_loopback(&one));
    assert_int_equal(ss.ss_family, AF_INET); /* 127.0.0.1: every client's localhost */
    close(fd);
}

/* getaddrinfo's codes as errno values (aloop.h documents the table). */
static void test_gai_errno_table(void **state) {
    (void)state;
    assert_int_equal(aloop__gai_errno(0, 0), 0);
    assert_int_equal(aloop__gai_errno(EAI_NONAME, 0), -ENOENT);
    assert_int_equal(aloop__gai_errno(EAI_FAIL, 0), -ENOENT);
    assert_int_equal(aloop__gai_errno(EAI_SERVICE, 0), -ENOENT);
#ifdef EAI_NODATA
    assert_int_equal(aloop__gai_errno(EAI_NODATA, 0), -ENOENT);
#endif
#ifdef EAI_ADDRFAMILY
    assert_int_equal(aloop__gai_errno(EAI_ADDRFAMILY, 0), -ENOENT);
#endif
    assert_int_equal(aloop__gai_errno(EAI_AGAIN, 0), -EAGAIN);
    assert_int_equal(aloop__gai_errno(EAI_MEMORY, 0), -ENOMEM);
    assert_int_equal(aloop__gai_errno(EAI_FAMILY, 0), -EAFNOSUPPORT);
    assert_int_equal(aloop__gai_errno(EAI_BADFLAGS, 0), -EINVAL);
    assert_int_equal(aloop__gai_errno(EAI_SOCKTYPE, 0), -EINVAL);
    assert_int_equal(aloop__gai_errno(EAI_SYSTEM, EMFILE), -EMFILE);
    assert_int_equal(aloop__gai_errno(EAI_SYSTEM, 0), -EIO);
}

/* A name lookup runs on the worker pool; cancelling the caller leaves the
 * lookup to finish on its own and free itself and its result list (ASan:
 * no leak). */
static void *lookup_task(void *arg) {
    int *rc = arg;
    struct addrinfo *res = NULL;
    *rc = aloop_getaddrinfo("localhost", "9", NULL, &res);
    if (res) freeaddrinfo(res);
    return NULL;
}

static void test_cancel_during_lookup(void **state) {
    (void)state;
    for (int free_first = 0; free_first < 2; free_first++) {
        aloop_t *loop = vloop();
        int rc = 1;
        aloop_task_t *t = aloop_spawn(loop, lookup_task, &rc);
        aloop_stop(loop);
        aloop_run(loop); /* the task is now waiting for the pool */
        assert_int_equal(rc, 1);
        if (!free_first) {
            aloop_cancel(t);
            aloop_run(loop); /* returns once the abandoned lookup came back */
            assert_int_equal(rc, -ECANCELED);
        }
        aloop_free(loop); /* cancels the task if still waiting; joins the worker */
        assert_int_equal(rc, -ECANCELED);
        aloop_release(t);
    }
}

/* Every allocation of a lookup fails in turn: -ENOMEM or success, no leak. */
static void *lookup_oom(void *arg) {
    (void)arg;
    struct addrinfo *res = NULL;
    int rc = aloop_getaddrinfo("localhost", "9", NULL, &res);
    if (res) freeaddrinfo(res);
    return rc == -ENOMEM ? aloop_fail(rc) : NULL;
}

static void test_lookup_enomem(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    int failures = 0;
    for (long nth = 1; nth < 200; nth++) {
        aloop__test_fail_alloc(nth, 1);
        int rc = aloop_main_with(&cfg, lookup_oom, NULL, NULL);
        unsigned long count = aloop__test_alloc_count();
        aloop__test_fail_alloc(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (rc) failures++;
        if ((unsigned long)nth > count) break;
    }
    assert_true(failures > 0);
}

/* ---- tcp_connect: one deadline, Happy Eyeballs (RFC 8305) -------------- */

/* The resolver test hook answers names with these addresses (or blocks
 * until released, as a resolver waiting for a silent DNS server does). */
typedef struct fake_node {
    struct addrinfo ai;
    struct sockaddr_storage ss;
} fake_node_t;

static struct sockaddr_storage fake_addr[8];
static socklen_t fake_len[8];
static size_t nfake;
static atomic_int fake_answered;
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_cv = PTHREAD_COND_INITIALIZER;
static int fake_blocked;

static int fake_resolver(const char *host, const char *port, const struct addrinfo *hints,
                         struct addrinfo **res) {
    (void)host, (void)port, (void)hints;
    pthread_mutex_lock(&fake_mu);
    while (fake_blocked) pthread_cond_wait(&fake_cv, &fake_mu);
    pthread_mutex_unlock(&fake_mu);
    struct addrinfo *head = NULL, **tail = &head;
    for (size_t i = 0; i < nfake; i++) {
        fake_node_t *n = calloc(1, sizeof *n);
        assert_non_null(n);
        n->ss = fake_addr[i];
        n->ai.ai_family = fake_addr[i].ss_family;
        n->ai.ai_socktype = SOCK_STREAM;
        n->ai.ai_addrlen = fake_len[i];
        n->ai.ai_addr = (struct sockaddr *)&n->ss;
        *tail = &n->ai;
        tail = &n->ai.ai_next;
    }
    *res = head;
    atomic_store(&fake_answered, 1);
    return head ? 0 : EAI_NONAME;
}

static void fake_free(struct addrinfo *ai) {
    while (ai) {
        struct addrinfo *next = ai->ai_next;
        free(ai); /* ai is the node's first member */
        ai = next;
    }
}

static void fake_release(void *arg) {
    (void)arg;
    pthread_mutex_lock(&fake_mu);
    fake_blocked = 0;
    pthread_cond_broadcast(&fake_cv);
    pthread_mutex_unlock(&fake_mu);
}

static void fake_add(const void *sa, socklen_t len) {
    memcpy(&fake_addr[nfake], sa, len);
    fake_len[nfake++] = len;
}

/* A loopback TCP address that never answers: its listener's accept queue
 * is full (backlog 0, one connection queued and never accepted), so the
 * kernel drops every further SYN. Nothing leaves the machine. */
typedef struct blackhole {
    int lfd, filler, probe;
    struct sockaddr_in sin;
} blackhole_t;

static void blackhole_open(blackhole_t *b) {
    b->lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&b->sin, 0, sizeof b->sin);
    b->sin.sin_family = AF_INET;
    b->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof b->sin;
    assert_int_equal(bind(b->lfd, (struct sockaddr *)&b->sin, sizeof b->sin), 0);
    assert_int_equal(listen(b->lfd, 0), 0);
    assert_int_equal(getsockname(b->lfd, (struct sockaddr *)&b->sin, &sl), 0);
    b->filler = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(b->filler, (struct sockaddr *)&b->sin, sizeof b->sin), 0);
    /* one more, in case the kernel counted the filler late: afterwards the
     * queue is full whichever way this one went */
    b->probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(b->probe, (struct sockaddr *)&b->sin, sizeof b->sin);
    struct pollfd p = {.fd = b->probe, .events = POLLOUT};
    poll(&p, 1, 100);
}

static void blackhole_close(blackhole_t *b) {
    close(b->probe);
    close(b->filler);
    close(b->lfd);
}

/* Unix-domain stream addresses: a listener (connect completes inside
 * connect(2), so its win is at a known instant) and a refusing one (bound,
 * not listening: ECONNREFUSED at once). */
static char he_dir[64];
static int unix_sock(const char *name, int do_listen, struct sockaddr_un *sun) {
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof sun->sun_path, "%s/%s", he_dir, name);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)sun, sizeof *sun), 0);
    if (do_listen) assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

typedef struct he_case {
    const char *host, *port; /* port NULL: "80" */
    double timeout, cancel_at;
    int rc, family;
    double elapsed;
} he_case_t;

static atomic_int he_done; /* the connect returned */
static long he_fail_nth;   /* > 0: that allocation of the connect fails */
static unsigned long he_allocs;

static void *he_connector(void *arg) {
    he_case_t *c = arg;
    if (he_fail_nth) aloop__test_fail_alloc(he_fail_nth, 1);
    double t0 = now();
    int fd = aloop_tcp_connect(c->host, c->port ? c->port : "80", c->timeout);
    if (he_fail_nth) {
        he_allocs = aloop__test_alloc_count();
        aloop__test_fail_alloc(0, 0);
    }
    atomic_store(&he_done, 1);
    c->elapsed = now() - t0;
    c->rc = fd < 0 ? fd : 0;
    if (fd >= 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getpeername(fd, (struct sockaddr *)&ss, &sl);
        c->family = ss.ss_family;
        aloop_close(fd);
    }
    return NULL;
}

/* Keeps the virtual clock still while the (fast) fake resolver runs on a
 * worker, until its answer has reached the loop: the clock never jumps
 * while a task is ready. */
static void *clock_keeper(void *arg) {
    (void)arg;
    while (!atomic_load(&he_done) &&
           (!atomic_load(&fake_answered) || aloop__xthread_pending(aloop_current())))
        aloop_yield();
    return NULL;
}

/* Runs c on a virtual-clock loop; the fds open before and after match. */
static void he_run(he_case_t *c, double release_at) {
    int fds_before = count_fds();
    atomic_store(&fake_answered, 0);
    atomic_store(&he_done, 0);
    aloop__test_set_resolver(fake_resolver, fake_free);
    aloop_t *loop = vloop();
    aloop_task_t *keeper = fake_blocked ? NULL : spawn(loop, clock_keeper, NULL);
    aloop_task_t *t = spawn(loop, he_connector, c);
    if (c->cancel_at > 0) assert_non_null(aloop_call_later(loop, c->cancel_at, cancel_cb, t));
    if (release_at > 0) assert_non_null(aloop_call_later(loop, release_at, fake_release, NULL));
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    if (keeper) aloop_release(keeper);
    aloop_free(loop);
    aloop__test_set_resolver(NULL, NULL);
    assert_int_equal(count_fds(), fds_before);
}

/* The addresses of a Happy Eyeballs case: a blackhole and, if `answers`
 * names it, a live unix listener; `answers` is what the fake lookup
 * returns, in order ('b' the blackhole, 'l' the live one). */
typedef struct he_cast {
    blackhole_t bh;
    struct sockaddr_un live;
    int lfd;
} he_cast_t;

static void he_cast_open(he_cast_t *h, const char *answers) {
    blackhole_open(&h->bh);
    h->lfd = strchr(answers, 'l') ? unix_sock("live", 1, &h->live) : -1;
    for (const char *a = answers; *a; a++) {
        if (*a == 'b')
            fake_add(&h->bh.sin, sizeof h->bh.sin);
        else
            fake_add(&h->live, sizeof h->live);
    }
}

static void he_cast_close(he_cast_t *h) {
    if (h->lfd >= 0) close(h->lfd);
    blackhole_close(&h->bh);
}

/* Connects to "he.example" within timeout: the case, once it has checked
 * the result and (exactly, on the virtual clock) when it came. */
static he_case_t he_expect(double timeout, int rc, double elapsed) {
    he_case_t c = {.host = "he.example", .timeout = timeout};
    he_run(&c, 0);
    assert_int_equal(c.rc, rc);
    assert_true(c.elapsed == elapsed);
    return c;
}

static int he_setup(void **state) {
    (void)state;
    snprintf(he_dir, sizeof he_dir, "/tmp/aloop-he-XXXXXX");
    assert_non_null(mkdtemp(he_dir));
    nfake = 0;
    fake_blocked = 0;
    return 0;
}

static int he_teardown(void **state) {
    (void)state;
    char path[128];
    const char *names[] = {"live", "refuse"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", he_dir, names[i]);
        unlink(path);
    }
    rmdir(he_dir);
    return 0;
}

/* A resolver that takes 3 s, a 0.5 s timeout: -ETIMEDOUT at 0.5 s, for
 * tcp_connect and open_connection alike. */
static void test_connect_deadline_covers_lookup(void **state) {
    (void)state;
    struct sockaddr_un live;
    int lfd = unix_sock("live", 1, &live);
    fake_add(&live, sizeof live);
    fake_blocked = 1;
    he_case_t c = {.host = "slow.example", .timeout = 0.5};
    he_run(&c, 3.0);
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_true(c.elapsed == 0.5);
    /* a timeout of 0 and a name: the lookup alone would wait */
    fake_blocked = 1;
    c = (he_case_t){.host = "slow.example", .timeout = 0};
    he_run(&c, 1.0);
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_true(c.elapsed == 0);
    /* without the hold-up, the same name connects */
    c = (he_case_t){.host = "fast.example", .timeout = 0.5};
    he_run(&c, 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.family, AF_UNIX);
    close(lfd);
}

/* The first address never answers, the second does: it wins once the
 * attempt delay (250 ms) has passed, not after the whole timeout; the
 * blackhole attempt is closed. */
static void test_happy_eyeballs_next_after_delay(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "bl");
    assert_int_equal(he_expect(30, 0, 0.25).family, AF_UNIX);
    he_expect(-1, 0, 0.25); /* no timeout at all: the same */
    he_cast_close(&h);
}

/* Addresses are interleaved by family: two dead IPv4 addresses before a
 * live address of another family cost one delay, not two. */
static void test_happy_eyeballs_interleaves_families(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "bbl");
    assert_int_equal(he_expect(30, 0, 0.25).family, AF_UNIX);
    he_cast_close(&h);
}

/* An attempt that fails starts the next one at once; when all fail, the
 * error is the last attempt's. */
static void test_happy_eyeballs_failure_starts_next_at_once(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "");
    struct sockaddr_un live, refuse;
    int lfd = unix_sock("live", 1, &live);
    int rfd = unix_sock("refuse", 0, &refuse);
    fake_add(&refuse, sizeof refuse);
    fake_add(&live, sizeof live);
    he_expect(30, 0, 0);
    nfake = 0;
    fake_add(&h.bh.sin, sizeof h.bh.sin);
    fake_add(&refuse, sizeof refuse);
    fake_add(&live, sizeof live);
    he_expect(30, 0, 0.25);
    nfake = 0;
    fake_add(&refuse, sizeof refuse);
    fake_add(&refuse, sizeof refuse);
    he_expect(30, -ECONNREFUSED, 0);
    close(rfd);
    close(lfd);
    he_cast_close(&h);
}

/* The deadline covers every attempt: -ETIMEDOUT at the deadline with
 * nothing left open; a timeout of 0 tries once without waiting. */
static void test_happy_eyeballs_deadline(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "bbb");
    he_expect(2, -ETIMEDOUT, 2);
    he_case_t c = {.host = "he.example", .timeout = 0.3}; /* between two starts */
    he_run(&c, 0);
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_true(fabs(c.elapsed - 0.3) < 1e-9);
    /* numeric: no lookup, one look at the attempt */
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(h.bh.sin.sin_port));
    c = (he_case_t){.host = "127.0.0.1", .port = port, .timeout = 0};
    int fds_before = count_fds();
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, he_connector, &c);
    run_and_release(loop, &t, 1);
    aloop_free(loop);
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_true(c.elapsed == 0);
    assert_int_equal(count_fds(), fds_before);
    he_cast_close(&h);
}

/* A cancel at each suspension point (the lookup, one, two or three attempts
 * in flight) returns -ECANCELED then and leaks no fd. */
static void test_happy_eyeballs_cancel_leaks_nothing(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "bbb");
    fake_blocked = 1; /* in the lookup */
    he_case_t c = {.host = "he.example", .timeout = 30, .cancel_at = 0.1};
    he_run(&c, 0.2);
    assert_int_equal(c.rc, -ECANCELED);
    assert_true(c.elapsed == 0.1);
    const double at[] = {0.1, 0.3, 0.6, 5};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        c = (he_case_t){.host = "he.example", .timeout = 30, .cancel_at = at[i]};
        he_run(&c, 0);
        assert_int_equal(c.rc, -ECANCELED);
        assert_true(fabs(c.elapsed - at[i]) < 1e-9);
    }
    /* aloop_free with the connect in flight */
    int fds_before = count_fds();
    atomic_store(&fake_answered, 0);
    aloop__test_set_resolver(fake_resolver, fake_free);
    aloop_t *loop = vloop();
    c = (he_case_t){.host = "he.example", .timeout = 30};
    aloop_task_t *ts[2] = {spawn(loop, clock_keeper, NULL), spawn(loop, he_connector, &c)};
    assert_non_null(aloop_call_later(loop, 0.4, (void (*)(void *))aloop_stop, loop));
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(ts[0]);
    aloop_release(ts[1]);
    aloop_free(loop);
    aloop__test_set_resolver(NULL, NULL);
    assert_int_equal(c.rc, -ECANCELED);
    assert_int_equal(count_fds(), fds_before);
    he_cast_close(&h);
}

/* Every allocation of a Happy Eyeballs connect fails in turn (the scope,
 * the lookup, the address list, the attempts, the watches, the timer):
 * -ENOMEM or a connection, never a leaked fd (he_run counts them). */
static void test_happy_eyeballs_enomem(void **state) {
    (void)state;
    he_cast_t h;
    he_cast_open(&h, "bl");
    int lfd = h.lfd;
    fcntl(lfd, F_SETFL, O_NONBLOCK); /* drained after each run */
    int failures = 0, successes = 0;
    for (he_fail_nth = 1; he_fail_nth < 200; he_fail_nth++) {
        he_case_t c = {.host = "he.example", .timeout = 30};
        he_run(&c, 0);
        /* the failed allocation may be the live address's watch (under
         * simulation the order differs): then only the dead one is left,
         * and the deadline ends it */
        assert_true(c.rc == 0 || c.rc == -ENOMEM || c.rc == -ETIMEDOUT);
        failures += c.rc == -ENOMEM;
        successes += c.rc == 0;
        int a;
        while ((a = accept(lfd, NULL, NULL)) >= 0) close(a);
        if ((unsigned long)he_fail_nth > he_allocs) break;
    }
    he_fail_nth = 0;
    assert_true(failures > 0 && successes > 0);
    he_cast_close(&h);
}

/* ---- lanes: name lookups cannot take every worker ---------------------- */

/* A worker-pool job for the lanes test. */
static void *lane_square(void *arg) {
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

/* A resolver (the net.c test hook) that blocks until released, as one
 * waiting for a DNS server that does not answer would. */
static pthread_mutex_t res_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t res_cv = PTHREAD_COND_INITIALIZER;
static int res_released, res_running, res_max_running;

static int blocking_resolver(const char *host, const char *port, const struct addrinfo *hints,
                             struct addrinfo **res) {
    (void)host, (void)port, (void)hints;
    *res = NULL;
    pthread_mutex_lock(&res_mu);
    if (++res_running > res_max_running) res_max_running = res_running;
    while (!res_released) pthread_cond_wait(&res_cv, &res_mu);
    res_running--;
    pthread_mutex_unlock(&res_mu);
    return EAI_NONAME;
}

static void release_resolver(void) {
    pthread_mutex_lock(&res_mu);
    res_released = 1;
    pthread_cond_broadcast(&res_cv);
    pthread_mutex_unlock(&res_mu);
}

#define SLOW_LOOKUPS 6
static int lookup_rc[SLOW_LOOKUPS];
static void *slow_lookup(void *arg) {
    struct addrinfo *ai;
    lookup_rc[(intptr_t)arg] = aloop_getaddrinfo("slow.example", "80", NULL, &ai);
    return NULL;
}

static char lane_file[64];
static int jobs_rc, file_rc;
static void *jobs_beside_lookups(void *arg) {
    (void)arg;
    aloop_sleep(0.01); /* the lookups are queued first */
    /* A bound no honest pool reaches; a starved one never returns at all. */
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 30), 0);
    void *res = NULL;
    jobs_rc = aloop_run_in_thread(lane_square, (void *)(intptr_t)7, &res);
    if (jobs_rc == 0) jobs_rc = (int)(intptr_t)res;
    void *buf = NULL;
    size_t len = 0;
    file_rc = jobs_rc == 49 ? aloop_read_file(lane_file, &buf, &len) : -1;
    if (file_rc == 0) file_rc = (int)len;
    free(buf);
    aloop_timeout_exit(&to, 0);
    release_resolver();
    return NULL;
}

static void test_lookups_do_not_starve_jobs(void **state) {
    (void)state;
    snprintf(lane_file, sizeof lane_file, "/tmp/aloop-lane-XXXXXX");
    int fd = mkstemp(lane_file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello", 5), 5);
    close(fd);
    res_released = res_running = res_max_running = 0;
    aloop__test_set_resolver(blocking_resolver, freeaddrinfo);
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    assert_int_equal(aloop_set_thread_pool_size(loop, 2), 0);
    aloop_task_t *ts[SLOW_LOOKUPS + 1];
    for (intptr_t i = 0; i < SLOW_LOOKUPS; i++) ts[i] = spawn(loop, slow_lookup, (void *)i);
    ts[SLOW_LOOKUPS] = spawn(loop, jobs_beside_lookups, NULL);
    run_and_release(loop, ts, SLOW_LOOKUPS + 1);
    aloop_free(loop);
    aloop__test_set_resolver(NULL, NULL);
    unlink(lane_file);
    assert_int_equal(jobs_rc, 49);
    assert_int_equal(file_rc, 5);
    for (int i = 0; i < SLOW_LOOKUPS; i++) assert_int_equal(lookup_rc[i], -ENOENT);
    assert_true(res_max_running >= 1 && res_max_running <= 2); /* the lane's bound */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_task),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_tcp_ipv4),
        cmocka_unit_test(test_tcp_ipv6),
        cmocka_unit_test(test_tcp_localhost),
        cmocka_unit_test(test_tcp_reuseaddr),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_bad_ports),
        cmocka_unit_test_setup_teardown(test_connect_deadline_covers_lookup, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_next_after_delay, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_interleaves_families, he_setup,
                                        he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_failure_starts_next_at_once, he_setup,
                                        he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_deadline, he_setup, he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_cancel_leaks_nothing, he_setup,
                                        he_teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_enomem, he_setup, he_teardown),
        cmocka_unit_test(test_raw_connect),
        cmocka_unit_test(test_accept_emfile_backoff),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_spurious_wakeup),
        cmocka_unit_test(test_listen_reuseport),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_names_outside_task),
        cmocka_unit_test(test_gai_errno_table),
        cmocka_unit_test(test_cancel_during_lookup),
        cmocka_unit_test(test_lookup_enomem),
        cmocka_unit_test(test_lookups_do_not_starve_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

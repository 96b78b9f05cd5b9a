/*
 * test_fibserver.c - drives the real examples/fibserver over loopback:
 * exact answers, bad input, a big request on the worker pool that does not
 * hold up small ones (--threads), the blocking behaviour without it, and a
 * clean SIGTERM while a worker thread is busy. Client sockets are blocking
 * with timeouts, so nothing can hang.
 */
#include "aloop_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifndef FIBSERVER_BIN /* built without the examples: main() skips everything */
#define FIBSERVER_BIN ""
#define FIBSERVER_BIN_MISSING 1
#endif

#define BIG_N 100000
#define BIG_DIGITS 20899 /* digits of fib(100000) */
/* A request no honest machine finishes during a test (fib(10^7) takes
 * minutes even on a machine ten times faster than ours): a loop or worker
 * computing it is busy for the rest of the test, which then kills the
 * server instead of waiting. Used wherever a test needs "still busy". */
#define HUGE_N "10000000"

static pid_t server_pid = -1;
static int server_out = -1;
static int server_port;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How many loops the next server_start asks for: one, unless a test says
 * otherwise (the tests of one loop's behaviour need exactly one; "" = the
 * default, one per online CPU). */
static const char *loops_opt = "--loops=1";

/* FIBSERVER_BIN --port 0 --loops=.. --log [extra]; waits for "listening on
 * 127.0.0.1:PORT". With --log the server prints "fib(N)" as each request
 * starts, which wait_started() reads: the tests synchronise on that, never
 * on how long a computation takes. */
static void server_start3(const char *extra1, const char *extra2, const char *extra3) {
    const char *argv[] = {FIBSERVER_BIN, "--port", "0", "--log", loops_opt,
                          extra1, extra2, extra3, NULL};
    if (!*loops_opt) memmove(&argv[4], &argv[5], 4 * sizeof argv[0]);
    int out[2];
    assert_int_equal(pipe(out), 0);
    server_pid = fork();
    assert_true(server_pid >= 0);
    if (server_pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execv(FIBSERVER_BIN, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    server_out = out[0];
    char buf[256];
    size_t len = 0;
    while (!memchr(buf, '\n', len)) {
        struct pollfd p = {.fd = server_out, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(server_out, buf + len, sizeof buf - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
    }
    buf[len] = '\0';
    assert_int_equal(sscanf(buf, "listening on 127.0.0.1:%d", &server_port), 1);
}

static void server_start(const char *extra1, const char *extra2) {
    server_start3(extra1, extra2, NULL);
}

/* Reads the server's log until the line `want`. */
static void wait_log(const char *want) {
    char line[128];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = server_out, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 60000), 1);
        char ch;
        assert_int_equal(read(server_out, &ch, 1), 1);
        if (ch != '\n') {
            if (len < sizeof line - 1) line[len++] = ch;
            continue;
        }
        line[len] = '\0';
        len = 0;
        if (strcmp(line, want) == 0) return;
    }
}

/* Reads the server's log until the line "fib(N)": request N has started
 * (the server prints it just before computing or queueing the job). */
static void wait_started(const char *n) {
    char want[64];
    snprintf(want, sizeof want, "fib(%s)", n);
    wait_log(want);
}

static void server_stop(void) {
    assert_int_equal(kill(server_pid, SIGTERM), 0);
    int status = 0;
    double deadline = now_s() + 30;
    pid_t r;
    while ((r = waitpid(server_pid, &status, WNOHANG)) == 0 && now_s() < deadline) usleep(10000);
    assert_int_equal(r, server_pid);
    server_pid = -1;
    close(server_out);
    server_out = -1;
    if (WIFSIGNALED(status)) fail_msg("server killed by signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int teardown_server(void **state) {
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
    if (server_out >= 0) close(server_out);
    server_out = -1;
    return 0;
}

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {30, 0}; /* a big answer takes a while in a sanitizer build */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_str(int fd, const char *s) {
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* One reply line (without '\n'), malloc'd; the reply is read byte-exact up
 * to its newline so several replies on one connection stay apart. */
static char *recv_line(int fd) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (;;) {
        char ch;
        ssize_t n = recv(fd, &ch, 1, 0);
        if (n <= 0) fail_msg("no reply (EOF or timeout)");
        if (ch == '\n') break;
        if (len + 1 == cap) {
            s = realloc(s, cap *= 2);
            assert_non_null(s);
        }
        s[len++] = ch;
    }
    s[len] = '\0';
    return s;
}

static void expect_reply(int fd, const char *request, const char *want) {
    send_str(fd, request);
    char *got = recv_line(fd);
    assert_string_equal(got, want);
    free(got);
}

/* fib(n) in decimal, by schoolbook addition on digit strings (the test's
 * own reference, independent of the server's limb arithmetic). */
static char *reference_fib(unsigned n) {
    size_t cap = n / 4 + 2;
    unsigned char *a = calloc(cap, 1), *b = calloc(cap, 1); /* little-endian digits */
    assert_true(a && b);
    size_t len = 1;
    b[0] = 1;
    for (unsigned i = 0; i < n; i++) {
        int carry = 0;
        for (size_t k = 0; k < len; k++) {
            int d = a[k] + b[k] + carry;
            carry = d >= 10;
            a[k] = (unsigned char)(d - 10 * carry);
        }
        if (carry) a[len++] = 1;
        unsigned char *t = a;
        a = b;
        b = t;
    }
    while (len > 1 && a[len - 1] == 0) len--;
    char *s = malloc(len + 1);
    for (size_t k = 0; k < len; k++) s[k] = (char)('0' + a[len - 1 - k]);
    s[len] = '\0';
    free(a);
    free(b);
    return s;
}

/* Last nine digits of fib(n). */
static unsigned long fib_mod_1e9(unsigned long n) {
    unsigned long a = 0, b = 1;
    for (unsigned long i = 0; i < n; i++) {
        unsigned long t = (a + b) % 1000000000ul;
        a = b;
        b = t;
    }
    return a;
}

static void test_answers_and_errors(void **state) {
    (void)state;
    server_start("--threads", NULL);
    int fd = connect_server();
    expect_reply(fd, "0\n", "0");
    expect_reply(fd, "1\n", "1");
    expect_reply(fd, "2\n", "1");
    expect_reply(fd, "10\n", "55");
    expect_reply(fd, "  7 \r\n", "13");
    expect_reply(fd, "93\n", "12200160415121876738");
    expect_reply(fd, "100\n", "354224848179261915075");
    for (unsigned n = 999; n <= 6000; n += 5001 / 2) { /* inline and on the pool */
        char req[32], *want = reference_fib(n);
        snprintf(req, sizeof req, "%u\n", n);
        expect_reply(fd, req, want);
        free(want);
    }
    const char *err = "error: send a whole number from 0 to 200000";
    expect_reply(fd, "abc\n", err);
    expect_reply(fd, "-1\n", err);
    expect_reply(fd, "12x\n", err);
    expect_reply(fd, "200001\n", err);
    expect_reply(fd, "\n", err);
    char longline[200];
    memset(longline, '1', 150);
    strcpy(longline + 150, "\n");
    expect_reply(fd, longline, "error: line too long");
    expect_reply(fd, "20\n", "6765"); /* still usable */
    close(fd);
    server_stop();
}

/* With --threads a big request runs on the pool: a small request sent
 * after it is answered while the big one is still being computed (a huge
 * one, so "still" holds on any machine; the teardown kills the server). */
static void test_threads_keep_small_requests_fast(void **state) {
    (void)state;
    server_start("--threads", "--max-n=" HUGE_N);
    int big = connect_server(), small = connect_server();
    send_str(big, HUGE_N "\n");
    wait_started(HUGE_N);
    expect_reply(small, "10\n", "55");
    struct pollfd p = {.fd = big, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0); /* the big answer is not there */
    close(big);
    close(small);
}

/* The big answer of --threads is exact (a later small request on the same
 * connection is answered after it, in order). */
static void test_threads_big_answer_exact(void **state) {
    (void)state;
    server_start("--threads", NULL);
    int fd = connect_server();
    char req[32];
    snprintf(req, sizeof req, "%d\n10\n", BIG_N);
    send_str(fd, req);
    char *answer = recv_line(fd);
    assert_int_equal(strlen(answer), BIG_DIGITS);
    assert_int_equal(strtoul(answer + BIG_DIGITS - 9, NULL, 10), fib_mod_1e9(BIG_N));
    free(answer);
    answer = recv_line(fd);
    assert_string_equal(answer, "55");
    free(answer);
    close(fd);
    server_stop();
}

/* Without --threads the loop computes everything itself: the small request
 * waits until the big answer has been sent (the course's point). */
static void test_without_threads_big_blocks_small(void **state) {
    (void)state;
    server_start(NULL, NULL);
    int big = connect_server(), small = connect_server();
    char req[32];
    snprintf(req, sizeof req, "%d\n", BIG_N);
    send_str(big, req);
    wait_started("100000"); /* the loop computes it now, and nothing else */
    expect_reply(small, "10\n", "55");
    struct pollfd p = {.fd = big, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 1); /* the big answer came first */
    char *answer = recv_line(big);
    assert_int_equal(strlen(answer), BIG_DIGITS);
    free(answer);
    close(big);
    close(small);
    server_stop();
}

/* --loops 2: two loops, each with its own listener on the port. Without
 * --threads a huge request blocks only its own loop: of 32 connections
 * (spread over the two listeners by the kernel's hash; all 32 on one
 * listener has odds of 2^-31) some land on the other loop and get their
 * small answers while the huge one is computed. The teardown kills the
 * server (its busy loop would not stop for minutes); test_default_loops
 * stops several loops cleanly. */
static void test_two_loops_serve_in_parallel(void **state) {
    (void)state;
    loops_opt = "--loops=2";
    server_start("--max-n=" HUGE_N, NULL);
    loops_opt = "--loops=1";
    enum { CONNS = 32 };
    int big = connect_server(), small[CONNS];
    for (int i = 0; i < CONNS; i++) small[i] = connect_server();
    send_str(big, HUGE_N "\n");
    wait_started(HUGE_N); /* one loop is busy from now on */
    for (int i = 0; i < CONNS; i++) send_str(small[i], "10\n");
    struct pollfd p[CONNS];
    for (int i = 0; i < CONNS; i++) p[i] = (struct pollfd){.fd = small[i], .events = POLLIN};
    int ready = poll(p, CONNS, 60000);
    assert_true(ready > 0);
    for (int i = 0; i < CONNS; i++) {
        if (!(p[i].revents & POLLIN)) continue;
        char *r = recv_line(small[i]);
        assert_string_equal(r, "55");
        free(r);
    }
    struct pollfd pb = {.fd = big, .events = POLLIN};
    assert_int_equal(poll(&pb, 1, 0), 0); /* still computing */
    for (int i = 0; i < CONNS; i++) close(small[i]);
    close(big);
}

/* The default is one loop per online CPU: it serves, and stops cleanly. */
static void test_default_loops(void **state) {
    (void)state;
    loops_opt = "";
    server_start(NULL, NULL);
    loops_opt = "--loops=1";
    int fd = connect_server();
    expect_reply(fd, "30\n", "832040");
    close(fd);
    server_stop();
}

/* SIGTERM while a worker thread computes: the request is cancelled and the
 * client disconnected at once, without its answer. (The exit then waits
 * for the job, minutes of work here, so the teardown kills the server;
 * the clean exit 0 is tested where no job runs, in test_default_loops.) */
static void test_sigterm_during_thread_job(void **state) {
    (void)state;
    server_start("--threads", "--max-n=" HUGE_N);
    int fd = connect_server();
    expect_reply(fd, "30\n", "832040");
    send_str(fd, HUGE_N "\n");
    wait_started(HUGE_N);
    assert_int_equal(kill(server_pid, SIGTERM), 0);
    char buf[64];
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 0); /* EOF, no answer */
    close(fd);
}


/* A line with a NUL byte or trailing junk is not a number ("3\0junk" is
 * not 3), and the connection stays usable. */
static void test_nul_and_junk_rejected(void **state) {
    (void)state;
    server_start(NULL, NULL);
    int fd = connect_server();
    const char *err = "error: send a whole number from 0 to 200000";
    static const char nul_line[] = "3\0junk\n";
    assert_int_equal(send(fd, nul_line, sizeof nul_line - 1, MSG_NOSIGNAL), (ssize_t)sizeof nul_line - 1);
    char *reply = recv_line(fd);
    assert_string_equal(reply, err);
    free(reply);
    static const char nul_end[] = "3\0\n";
    assert_int_equal(send(fd, nul_end, sizeof nul_end - 1, MSG_NOSIGNAL), (ssize_t)sizeof nul_end - 1);
    reply = recv_line(fd);
    assert_string_equal(reply, err);
    free(reply);
    expect_reply(fd, "3 junk\n", err);
    expect_reply(fd, "3\n", "2");
    close(fd);
    server_stop();
}

/* A server with one worker, client *a's request for fib(n) on it and
 * client *b's (the same n) queued behind it: each step waits for the
 * server's log, so the order holds on any machine. */
static void start_with_one_busy_worker(const char *n, int *a, int *b) {
    char maxn[32], req[32];
    snprintf(maxn, sizeof maxn, "--max-n=%s", n);
    snprintf(req, sizeof req, "%s\n", n);
    server_start3("--threads", "--pool=1", maxn);
    *a = connect_server();
    *b = connect_server();
    send_str(*a, req);
    wait_started(n); /* a's job holds the only worker */
    send_str(*b, req);
    wait_started(n); /* b's waits for it */
}

/* A client that hangs up (a reset: the connection is gone) while its
 * request waits for a worker cancels it: the server says so at once while
 * the request ahead of it is still being computed, and goes on serving. */
static void test_hangup_cancels_queued_request(void **state) {
    (void)state;
    int a, b;
    start_with_one_busy_worker(HUGE_N, &a, &b);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(close(b), 0); /* b hangs up: RST */
    wait_log("hung up: fib(" HUGE_N ")");
    struct pollfd p = {.fd = a, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0); /* a's answer is still being computed */
    int c = connect_server(); /* small requests are computed on the loop */
    expect_reply(c, "10\n", "55");
    close(a);
    close(c);
}

/* A client that half-closes after its request (nc -N) still gets the
 * answer, computed on the pool, then end of file: end of file after a
 * request is not a hang-up. */
static void test_half_close_gets_answer(void **state) {
    (void)state;
    server_start3("--threads", "--thread-min=0", "--pool=1");
    int fd = connect_server();
    char req[32];
    snprintf(req, sizeof req, "%d\n", BIG_N);
    send_str(fd, req);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    char *answer = recv_line(fd);
    assert_int_equal(strlen(answer), BIG_DIGITS);
    free(answer);
    char buf[8];
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 0); /* then the server closes */
    close(fd);
    server_stop();
}

/* A second signal during the shutdown is not lost: with a job still running
 * on the pool (and one queued, which is dropped), SIGINT after SIGTERM ends
 * the server at once, by SIGINT, instead of after the job. */
static void test_second_signal_during_shutdown(void **state) {
    (void)state;
    int a, b;
    start_with_one_busy_worker(HUGE_N, &a, &b);
    assert_int_equal(kill(server_pid, SIGTERM), 0);
    char buf[64];
    assert_int_equal(recv(a, buf, sizeof buf, 0), 0); /* shutting down: a is dropped */
    assert_int_equal(recv(b, buf, sizeof buf, 0), 0);
    assert_int_equal(kill(server_pid, SIGINT), 0);
    int status = 0;
    double deadline = now_s() + 30;
    pid_t r;
    while ((r = waitpid(server_pid, &status, WNOHANG)) == 0 && now_s() < deadline) usleep(1000);
    assert_int_equal(r, server_pid);
    server_pid = -1;
    /* By SIGINT at once. Or, on a machine slow enough that the SIGINT came
     * after aloop_free had left the stuck job behind (its 1 s grace), the
     * shutdown had already ended with 0: either way not after the job. */
    if (WIFSIGNALED(status)) {
        assert_int_equal(WTERMSIG(status), SIGINT);
    } else {
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    close(a);
    close(b);
}

int main(void) {
#ifdef FIBSERVER_BIN_MISSING
    puts("test_fibserver: built without the fibserver example; skipped");
    return 0;
#else
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_answers_and_errors, teardown_server),
        cmocka_unit_test_teardown(test_threads_keep_small_requests_fast, teardown_server),
        cmocka_unit_test_teardown(test_threads_big_answer_exact, teardown_server),
        cmocka_unit_test_teardown(test_without_threads_big_blocks_small, teardown_server),
        cmocka_unit_test_teardown(test_sigterm_during_thread_job, teardown_server),
        cmocka_unit_test_teardown(test_nul_and_junk_rejected, teardown_server),
        cmocka_unit_test_teardown(test_two_loops_serve_in_parallel, teardown_server),
        cmocka_unit_test_teardown(test_default_loops, teardown_server),
        cmocka_unit_test_teardown(test_hangup_cancels_queued_request, teardown_server),
        cmocka_unit_test_teardown(test_half_close_gets_answer, teardown_server),
        cmocka_unit_test_teardown(test_second_signal_during_shutdown, teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}

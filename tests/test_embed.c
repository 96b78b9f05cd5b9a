/* Tests for src/embed.c: aloop_run_once, aloop_backend_fd and
 * aloop_backend_timeout, and a loop driven from a plain poll() host loop
 * that also serves an fd of its own. */
#include "aloop_test.h"

#include <math.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>

static char trace[256];
static void note(const char *s) { strcat(trace, s); }
static void cb_note(void *arg) { note(arg); }

/* Does fd poll readable right now? */
static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* The wall clock's monotonic seconds (not the loop's). */
static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_no_work_returns_0_at_once(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    /* would block for ever if it waited: it must not, whatever the timeout */
    assert_int_equal(aloop_run_once(loop, -1), 0);
    assert_int_equal(aloop_run_once(loop, 3600), 0);
    assert_int_equal(aloop_run_once(loop, 0), 0);
    assert_true(aloop_backend_timeout(loop) == -1.0);
    assert_int_equal(aloop_run_once(NULL, 0), -EINVAL);
    assert_int_equal(aloop_run_once(loop, NAN), -EINVAL);
    assert_true(aloop_backend_timeout(NULL) == -1.0);
    assert_int_equal(aloop_backend_fd(NULL), -EINVAL);
    aloop_free(loop);
}

static void test_returns_1_while_work_remains(void **state) {
    (void)state;
    trace[0] = 0;
    aloop_t *loop = vloop();
    aloop_call_soon(loop, cb_note, "a");
    assert_true(aloop_backend_timeout(loop) == 0.0);
    assert_int_equal(aloop_run_once(loop, 0), 0); /* ran a, nothing left */
    assert_string_equal(trace, "a");
    aloop_call_later(loop, 10, cb_note, "t");
    assert_true(aloop_backend_timeout(loop) == 10.0);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* timeout 0: the clock stays */
    assert_true(aloop_time(loop) == 0.0);
    assert_string_equal(trace, "a");
    aloop_free(loop);
}

/* Virtual clock: min(t, next deadline) for t > 0, the deadline for t < 0. */
static void test_virtual_clock_rules(void **state) {
    (void)state;
    trace[0] = 0;
    aloop_t *loop = vloop();
    aloop_call_later(loop, 10, cb_note, "t");
    assert_int_equal(aloop_run_once(loop, 3), 1);
    assert_true(aloop_time(loop) == 3.0);
    assert_string_equal(trace, "");
    assert_true(aloop_backend_timeout(loop) == 7.0);
    assert_int_equal(aloop_run_once(loop, 100), 0); /* only as far as the deadline */
    assert_true(aloop_time(loop) == 10.0);
    assert_string_equal(trace, "t");
    aloop_call_later(loop, 5, cb_note, "u");
    aloop_call_later(loop, 6, cb_note, "v");
    assert_int_equal(aloop_run_once(loop, -1), 1);
    assert_true(aloop_time(loop) == 15.0);
    assert_string_equal(trace, "tu");
    assert_int_equal(aloop_run_once(loop, -1), 0);
    assert_true(aloop_time(loop) == 16.0);
    assert_string_equal(trace, "tuv");
    aloop_free(loop);
}

/* What is ready when the call starts runs in it; so does a task a timer
 * wakes, up to its next suspension; what those make ready waits. */
static void *sleeper(void *arg) {
    note("1");
    aloop_sleep(1);
    note("2");
    aloop_call_soon(aloop_current(), cb_note, arg);
    aloop_sleep(1);
    note("3");
    return NULL;
}

static void test_one_iteration_runs_what_was_ready(void **state) {
    (void)state;
    trace[0] = 0;
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, sleeper, "c");
    assert_int_equal(aloop_run_once(loop, -1), 1);
    assert_string_equal(trace, "1");
    assert_true(aloop_time(loop) == 0.0); /* something was ready: no jump */
    assert_int_equal(aloop_run_once(loop, -1), 1);
    assert_string_equal(trace, "12"); /* the callback it scheduled waits */
    assert_true(aloop_time(loop) == 1.0);
    assert_int_equal(aloop_run_once(loop, -1), 1);
    assert_string_equal(trace, "12c");
    assert_true(aloop_time(loop) == 1.0);
    assert_int_equal(aloop_run_once(loop, -1), 0);
    assert_string_equal(trace, "12c3");
    assert_true(aloop_future_done(t));
    aloop_release(t);
    aloop_free(loop);
}

/* A timeout of 0 never blocks, even with only far timers and fd waits. */
static void *wait_fd(void *arg) {
    int *fds = arg;
    return (void *)(intptr_t)aloop_wait_readable(fds[0], -1);
}

static void test_timeout_0_never_blocks(void **state) {
    (void)state;
    aloop_t *loop = aloop_new(); /* the real clock */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    aloop_task_t *t = spawn(loop, wait_fd, fds);
    aloop_call_later(loop, 3600, cb_note, "x");
    double t0 = monotonic();
    for (int i = 0; i < 100; i++) assert_int_equal(aloop_run_once(loop, 0), 1);
    assert_true(monotonic() - t0 < 60); /* 100 polls, not an hour */
    double left = aloop_backend_timeout(loop);
    assert_true(left > 3000 && left <= 3600);
    aloop_cancel(t);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* the timer remains */
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_free(loop);
    close(fds[0]);
    close(fds[1]);
}

/* -EPERM from inside the loop: a task or a callback. */
static int inner_rc;
static void *run_once_inside(void *arg) {
    inner_rc = aloop_run_once(arg, 0);
    return NULL;
}
static void cb_run_once_inside(void *arg) { inner_rc = aloop_run_once(arg, 0) * 10; }

static void test_eperm_inside_the_loop(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, run_once_inside, loop);
    inner_rc = 0;
    assert_int_equal(aloop_run_once(loop, 0), 0);
    assert_int_equal(inner_rc, -EPERM);
    aloop_call_soon(loop, cb_run_once_inside, loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(inner_rc, -EPERM * 10);
    /* and from a task of another loop */
    aloop_t *other = vloop();
    aloop_task_t *t2 = spawn(other, run_once_inside, loop);
    aloop_call_soon(loop, cb_note, "");
    assert_int_equal(aloop_run(other), 0);
    assert_int_equal(inner_rc, -EPERM);
    assert_int_equal(aloop_run_once(loop, 0), 0); /* still fine from outside */
    aloop_release(t);
    aloop_release(t2);
    aloop_free(other);
    aloop_free(loop);
}

/* Tasks that nothing can wake, in a process with no other thread. */
static void *await_arg(void *arg) { return (void *)(intptr_t)aloop_await(arg, NULL); }

static void test_deadlock(void **state) {
    (void)state;
    if (!deadlocks_detectable()) skip();
    aloop_t *loop = vloop();
    aloop_future_t *never = aloop_future_new(loop);
    aloop_task_t *t = spawn(loop, await_arg, never);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* t runs and suspends */
    assert_int_equal(aloop_run_once(loop, 0), 1); /* timeout 0: nothing to report */
    assert_int_equal(aloop_run_once(loop, -1), -EDEADLK);
    aloop_future_set_result(never, NULL);
    assert_int_equal(aloop_run_once(loop, -1), 0);
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
}

static void consume_cb(int fd, void *arg) {
    char buf[16];
    if (read(fd, buf, sizeof buf) > 0) ++*(int *)arg;
}

/* The backend fd polls readable exactly when there is I/O to process. */
static void test_backend_fd_readable_when_io_ready(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    int bfd = aloop_backend_fd(loop);
    if (bfd == -ENOTSUP) { /* the poll(2) backend */
        aloop_free(loop);
        skip();
    }
    assert_true(bfd >= 0);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    aloop_task_t *t = spawn(loop, wait_fd, fds);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* t waits for fds[0] */
    assert_false(readable(bfd)); /* writable, but nobody asked for that */
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(readable(bfd));
    assert_true(aloop_backend_timeout(loop) == -1.0); /* no timer: only I/O */
    assert_int_equal(aloop_run_once(loop, 0), 0);
    assert_true(aloop_future_done(t));
    assert_int_equal(aloop_future_result(t, NULL), 0);
    /* the data is still unread, but nobody waits for it any more */
    assert_false(readable(bfd));
    aloop_release(t);
    /* the same with a callback read watch: a writable socket does not wake
     * the host; data does, until the callback has consumed it */
    int calls = 0;
    assert_int_equal(aloop_add_reader(loop, fds[0], consume_cb, &calls), 0);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* the unread byte: one call */
    assert_int_equal(calls, 1);
    assert_false(readable(bfd));
    assert_int_equal(write(fds[1], "y", 1), 1);
    assert_true(readable(bfd));
    assert_int_equal(aloop_run_once(loop, 0), 1); /* the watch remains */
    assert_int_equal(calls, 2);
    assert_false(readable(bfd));
    assert_int_equal(aloop_remove_reader(loop, fds[0]), 1);
    assert_int_equal(aloop_run_once(loop, 0), 0);
    aloop_free(loop);
    close(fds[0]);
    close(fds[1]);
}

/* ---- a host that owns main(): plain poll() on its own fd + the loop ---- */

typedef struct host_ctx {
    int echo_fd;     /* loop side of the socketpair */
    int ticks;       /* countdown steps done (loop side) */
    char log[128];   /* events in order, both sides */
} host_ctx_t;

static void *countdown(void *arg) {
    host_ctx_t *h = arg;
    for (int i = 3; i > 0; i--) {
        if (aloop_sleep(0.002) < 0) return NULL;
        h->ticks++;
        strcat(h->log, "T");
    }
    return NULL;
}

static void *echo(void *arg) {
    host_ctx_t *h = arg;
    char buf[16];
    for (;;) {
        ssize_t n = aloop_read(h->echo_fd, buf, sizeof buf);
        if (n <= 0) return (void *)(intptr_t)n;
        strcat(h->log, "e");
        if (aloop_write_all(h->echo_fd, buf, (size_t)n) < 0) return NULL;
    }
}

static void test_driven_from_a_poll_host_loop(void **state) {
    (void)state;
    host_ctx_t h = {0};
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    h.echo_fd = sp[0];
    aloop_t *loop = aloop_new();
    aloop_task_t *tc = spawn(loop, countdown, &h);
    aloop_task_t *te = spawn(loop, echo, &h);
    int bfd = aloop_backend_fd(loop); /* -ENOTSUP: poll the timeout only */
    int pings = 0, replies = 0, iterations = 0;
    assert_int_equal(write(sp[1], "p", 1), 1);
    pings++;
    while (replies < 5 || h.ticks < 3) {
        struct pollfd p[2] = {{.fd = sp[1], .events = POLLIN}, {.fd = bfd, .events = POLLIN}};
        double t = aloop_backend_timeout(loop);
        int ms = t < 0 ? -1 : (int)ceil(t * 1000);
        if (bfd < 0 && (ms < 0 || ms > 1)) ms = 1; /* no fd to wake us for the loop's I/O */
        int n = poll(p, bfd >= 0 ? 2 : 1, ms);
        assert_true(n >= 0);
        if (p[0].revents & POLLIN) { /* the host's own fd: a reply */
            char c;
            assert_int_equal(read(sp[1], &c, 1), 1);
            assert_int_equal(c, 'p');
            replies++;
            strcat(h.log, "r");
            if (pings < 5) {
                assert_int_equal(write(sp[1], "p", 1), 1);
                pings++;
            }
        }
        assert_true(aloop_run_once(loop, 0) >= 0);
        assert_true(++iterations < 100000);
    }
    /* each reply follows its echo; the countdown ran in between */
    assert_int_equal(h.ticks, 3);
    const char *e = h.log;
    int open = 0;
    for (; *e; e++) {
        if (*e == 'e') open++;
        if (*e == 'r') assert_true(open-- > 0);
    }
    close(sp[1]); /* EOF ends the echo task */
    while (!aloop_future_done(te)) assert_true(aloop_run_once(loop, -1) >= 0);
    assert_int_equal(aloop_run_once(loop, -1), 0); /* both tasks are done: nothing left */
    aloop_release(tc);
    aloop_release(te);
    aloop_free(loop);
    close(sp[0]);
}

/* close(2) behind the loop's back on an fd a task waits on (misuse, guide
 * §15): an iteration with the host's timeout polls as aloop_run does, so
 * epoll's forgotten fd is found by the one-second sweep and the waiter
 * wakes with -EBADF within the call, not after the host's timeout with
 * the waiter still asleep. */
static void *wait_readable_fd(void *arg) {
    return (void *)(intptr_t)aloop_wait_readable(*(int *)arg, -1);
}

static void test_iteration_finds_fds_closed_behind_its_back(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    aloop_t *loop = aloop_new();
    aloop_task_t *t = spawn(loop, wait_readable_fd, &sv[0]);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* it waits */
    close(sv[0]);
    assert_int_equal(aloop_run_once(loop, 30), 0);
    assert_true(aloop_future_done(t));
    void *r;
    assert_int_equal(aloop_future_result(t, &r), 0);
    assert_int_equal((intptr_t)r, -EBADF);
    aloop_release(t);
    aloop_free(loop);
    close(sv[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_work_returns_0_at_once),
        cmocka_unit_test(test_returns_1_while_work_remains),
        cmocka_unit_test(test_virtual_clock_rules),
        cmocka_unit_test(test_one_iteration_runs_what_was_ready),
        cmocka_unit_test(test_timeout_0_never_blocks),
        cmocka_unit_test(test_eperm_inside_the_loop),
        cmocka_unit_test(test_deadlock),
        cmocka_unit_test(test_backend_fd_readable_when_io_ready),
        cmocka_unit_test(test_driven_from_a_poll_host_loop),
        cmocka_unit_test(test_iteration_finds_fds_closed_behind_its_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

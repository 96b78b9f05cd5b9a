/*
 * test_io.c - fd waits, reads and writes (src/io.c); sockets are test_net.c.
 *
 * Most tests run on the virtual clock: fds still work (the loop polls
 * without blocking before jumping the clock), and timeouts are exact.
 */
#include "aloop_test.h"

#include "internal.h"
#include "io_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void make_pair(int sv[2]) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); }

/* Runs fn(arg) as a task on a fresh virtual-clock loop; returns its status. */
static int run_task(void *(*fn)(void *), void *arg, void **result) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    return aloop_main_with(&cfg, fn, arg, result);
}

/* ---- argument checks and -EPERM --------------------------------------- */

static void test_outside_task(void **state) {
    (void)state;
    char c;
    assert_int_equal(aloop_wait_readable(0, -1), -EPERM);
    assert_int_equal(aloop_wait_writable(0, -1), -EPERM);
    assert_int_equal(aloop_read(0, &c, 1), -EPERM);
    assert_int_equal(aloop_write_all(1, "x", 1), -EPERM);
    assert_int_equal(aloop_wait_readable(-1, -1), -EBADF);
    assert_int_equal(aloop_read(-1, &c, 1), -EBADF);
    assert_int_equal(aloop_close(-1), -EBADF);
}

static void *bad_args_task(void *arg) {
    (void)arg;
    int sv[2];
    make_pair(sv);
    assert_int_equal(aloop_wait_readable(sv[0], 0.0 / 0.0), -EINVAL);
    assert_int_equal(aloop_read(sv[0], NULL, 4), -EINVAL);
    /* a closed fd: -EBADF at once, nothing left registered */
    int fd = dup(sv[0]);
    close(fd);
    assert_int_equal(aloop_wait_readable(fd, 1), -EBADF);
    assert_int_equal(aloop_current()->io->waits, 0);
    aloop_close(sv[0]);
    aloop_close(sv[1]);
    return NULL;
}

static void test_bad_args(void **state) {
    (void)state;
    assert_int_equal(run_task(bad_args_task, NULL, NULL), 0);
}

/* ---- readiness, timeouts, cancel, close -------------------------------- */

typedef struct pair_ctx {
    int sv[2];
    int rc[4];
    double when[4];
    int steps;
} pair_ctx_t;

static void *reader_waits(void *arg) {
    pair_ctx_t *c = arg;
    c->rc[0] = aloop_wait_readable(c->sv[0], -1);
    c->when[0] = aloop_time(aloop_current());
    char buf[8];
    ssize_t got = 0, n = 1; /* a read may be short: all 5 bytes */
    while (got < 5 && (n = aloop_read(c->sv[0], buf + got, sizeof buf - (size_t)got)) > 0) got += n;
    c->rc[1] = (int)(n < 0 ? n : got);
    return NULL;
}

static void *writer_later(void *arg) {
    pair_ctx_t *c = arg;
    aloop_sleep(1.5);
    c->rc[2] = (int)aloop_write_all(c->sv[1], "hello", 5);
    return NULL;
}

static void test_wait_readable_wakes(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pair_ctx_t c = {0};
    make_pair(c.sv);
    aloop_release(aloop_spawn(loop, reader_waits, &c));
    aloop_release(aloop_spawn(loop, writer_later, &c));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc[0], 0);
    assert_true(c.when[0] >= 1.5 && c.when[0] < 1.6);
    assert_int_equal(c.rc[1], 5);
    assert_int_equal(c.rc[2], 5);
    assert_int_equal(aloop__io_pending(loop), 0);
    aloop_close(c.sv[0]);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

static void *timeout_task(void *arg) {
    pair_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    c->rc[0] = aloop_wait_readable(c->sv[0], 2.5);
    c->when[0] = aloop_time(loop);
    /* the wait is gone: nothing waits on the fd any more */
    c->rc[1] = (int)loop->io->waits + loop->io->watches[c->sv[0]].wanted;
    /* and the fd can be waited on again */
    write(c->sv[1], "x", 1);
    c->rc[2] = aloop_wait_readable(c->sv[0], 2.5);
    c->when[1] = aloop_time(loop);
    return NULL;
}

static void test_wait_timeout(void **state) {
    (void)state;
    pair_ctx_t c = {0};
    make_pair(c.sv);
    assert_int_equal(run_task(timeout_task, &c, NULL), 0);
    assert_int_equal(c.rc[0], -ETIMEDOUT);
    assert_true(c.when[0] == 2.5);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 0);
    assert_true(c.when[1] == 2.5);
    close(c.sv[0]);
    close(c.sv[1]);
}

static void *waits_read(void *arg) {
    pair_ctx_t *c = arg;
    return (void *)(intptr_t)aloop_wait_readable(c->sv[0], -1);
}

static void *waits_write_full(void *arg) {
    pair_ctx_t *c = arg;
    /* fill the socket buffer, then wait for room */
    char buf[4096];
    memset(buf, 'w', sizeof buf);
    while (send(c->sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    return (void *)(intptr_t)aloop_wait_writable(c->sv[0], -1);
}

static void *second_reader(void *arg) {
    pair_ctx_t *c = arg;
    c->rc[3] = aloop_wait_readable(c->sv[0], -1);
    return NULL;
}

static void *drain_and_feed(void *arg) {
    pair_ctx_t *c = arg;
    aloop_sleep(1);
    char buf[65536];
    /* read everything the writer queued (makes sv[0] writable), then give
     * the reader something */
    while (recv(c->sv[1], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    write(c->sv[1], "r", 1);
    return NULL;
}

/* One fd, a reader and a writer task at once; a second reader is -EBUSY. */
static void test_reader_and_writer_on_one_fd(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pair_ctx_t c = {0};
    make_pair(c.sv);
    aloop_task_t *r = aloop_spawn(loop, waits_read, &c);
    aloop_task_t *w = aloop_spawn(loop, waits_write_full, &c);
    aloop_release(aloop_spawn(loop, second_reader, &c));
    aloop_release(aloop_spawn(loop, drain_and_feed, &c));
    assert_int_equal(aloop_run(loop), 0);
    void *res;
    assert_int_equal(aloop_future_result(r, &res), 0);
    assert_int_equal((intptr_t)res, 0);
    assert_int_equal(aloop_future_result(w, &res), 0);
    assert_int_equal((intptr_t)res, 0);
    assert_int_equal(c.rc[3], -EBUSY);
    aloop_release(r);
    aloop_release(w);
    aloop_close(c.sv[0]);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

static void test_cancel_removes_wait(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pair_ctx_t c = {0};
    make_pair(c.sv);
    aloop_task_t *r = aloop_spawn(loop, waits_read, &c);
    aloop_task_t *stopper = aloop_spawn(loop, waits_read, &c); /* -EBUSY at once */
    for (int i = 0; i < 3; i++) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    assert_int_equal(aloop__io_pending(loop), 1);
    assert_int_equal(aloop_cancel(r), 1);
    assert_int_equal(aloop_run(loop), 0);
    void *res;
    assert_int_equal(aloop_future_result(r, &res), -ECANCELED);
    assert_true(aloop_future_cancelled(r));
    assert_int_equal(aloop_future_result(stopper, &res), 0);
    assert_int_equal((intptr_t)res, -EBUSY);
    assert_int_equal(aloop__io_pending(loop), 0);
    aloop_release(r);
    aloop_release(stopper);
    aloop_close(c.sv[0]);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

static void *closer(void *arg) {
    pair_ctx_t *c = arg;
    aloop_sleep(1);
    c->rc[2] = aloop_close(c->sv[0]);
    return NULL;
}

static void test_close_wakes_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pair_ctx_t c = {0};
    make_pair(c.sv);
    aloop_task_t *r = aloop_spawn(loop, waits_read, &c);
    aloop_task_t *w = aloop_spawn(loop, waits_write_full, &c);
    aloop_release(aloop_spawn(loop, closer, &c));
    assert_int_equal(aloop_run(loop), 0);
    void *res;
    assert_int_equal(aloop_future_result(r, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    assert_int_equal(aloop_future_result(w, &res), 0);
    assert_int_equal((intptr_t)res, -EBADF);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(aloop__io_pending(loop), 0);
    aloop_release(r);
    aloop_release(w);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

/* aloop_free cancels a task waiting on an fd; the wait unregisters. */
static void test_free_with_waiter(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pair_ctx_t c = {0};
    make_pair(c.sv);
    aloop_task_t *r = aloop_spawn(loop, waits_read, &c);
    aloop_stop(loop);
    aloop_run(loop);
    assert_int_equal(aloop__io_pending(loop), 1);
    aloop_free(loop);
    assert_true(aloop_future_cancelled(r));
    aloop_release(r);
    close(c.sv[0]);
    close(c.sv[1]);
}

/* A regular file is always ready (epoll refuses it; we do not hang). */
static void *regular_file_task(void *arg) {
    (void)arg;
    char path[] = "/tmp/aloop_io_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "abc", 3), 3);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(aloop_wait_readable(fd, 1), 0);
    char buf[8];
    assert_int_equal(aloop_read(fd, buf, sizeof buf), 3);
    assert_int_equal(aloop_read(fd, buf, sizeof buf), 0);
    aloop_close(fd);
    return NULL;
}

static void test_regular_file(void **state) {
    (void)state;
    assert_int_equal(run_task(regular_file_task, NULL, NULL), 0);
}

/* ---- reading and writing ---------------------------------------------- */

static int ticks;
static void *ticker(void *arg) {
    (void)arg;
    for (;;) {
        ticks++;
        if (aloop_yield() < 0) return NULL;
    }
}

/* Data already there: aloop_read returns it without suspending (the ticker
 * spawned just before never gets a turn). */
static void *read_first_task(void *arg) {
    pair_ctx_t *c = arg;
    aloop_task_t *tk = aloop_spawn(aloop_current(), ticker, NULL);
    ticks = 0;
    write(c->sv[1], "abc", 3);
    char buf[8];
    /* a read may return fewer bytes than are there (simulation's short
     * reads): every read finds data, so none suspends either way */
    ssize_t k = 1;
    for (c->rc[0] = 0; c->rc[0] < 3 && k > 0; c->rc[0] += (int)k)
        k = aloop_read(c->sv[0], buf + c->rc[0], sizeof buf - (size_t)c->rc[0]);
    c->rc[1] = ticks;
    aloop_cancel(tk);
    aloop_release(tk);
    /* EOF after the peer closes */
    close(c->sv[1]);
    c->rc[2] = (int)aloop_read(c->sv[0], buf, sizeof buf);
    /* len 0 is 0 at once */
    c->rc[3] = (int)aloop_read(c->sv[0], buf, 0);
    return NULL;
}

static void test_read_tries_first_and_eof(void **state) {
    (void)state;
    pair_ctx_t c = {0};
    make_pair(c.sv);
    assert_int_equal(run_task(read_first_task, &c, NULL), 0);
    assert_int_equal(c.rc[0], 3);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.rc[3], 0);
    aloop_close(c.sv[0]);
}

#define BIG (8u * 1024u * 1024u)

typedef struct big_ctx {
    int sv[2];
    unsigned char *out, *in;
    ssize_t wrote, got;
} big_ctx_t;

static void *big_writer(void *arg) {
    big_ctx_t *c = arg;
    c->wrote = aloop_write_all(c->sv[0], c->out, BIG);
    shutdown(c->sv[0], SHUT_WR);
    return NULL;
}

static void *big_reader(void *arg) {
    big_ctx_t *c = arg;
    size_t got = 0;
    for (;;) {
        ssize_t n = aloop_read(c->sv[1], c->in + got, BIG + 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    c->got = (ssize_t)got;
    return NULL;
}

/* 8 MiB through a socketpair: partial writes, suspending while full. */
static void test_write_all_8mib(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    big_ctx_t c = {0};
    make_pair(c.sv);
    c.out = malloc(BIG);
    c.in = malloc(BIG + 1);
    for (size_t i = 0; i < BIG; i++) c.out[i] = (unsigned char)(i * 131u + (i >> 13));
    aloop_release(aloop_spawn(loop, big_writer, &c));
    aloop_release(aloop_spawn(loop, big_reader, &c));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.wrote, BIG);
    assert_int_equal(c.got, BIG);
    assert_memory_equal(c.out, c.in, BIG);
    free(c.out);
    free(c.in);
    aloop_close(c.sv[0]);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

/* Same through a pipe (read/write rather than recv/send). */
static void test_write_all_pipe(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    big_ctx_t c = {0};
    int p[2];
    assert_int_equal(pipe(p), 0);
    c.sv[0] = p[1];
    c.sv[1] = p[0];
    c.out = malloc(BIG);
    c.in = malloc(BIG + 1);
    for (size_t i = 0; i < BIG; i++) c.out[i] = (unsigned char)(i * 7u);
    aloop_release(aloop_spawn(loop, big_writer, &c)); /* shutdown fails on a pipe: fine */
    aloop_task_t *r = aloop_spawn(loop, big_reader, &c);
    /* close the write end once the writer is done, so the reader sees EOF */
    while (c.wrote == 0) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    aloop_close(p[1]);
    assert_int_equal(aloop_run_until_complete(loop, r), 0);
    assert_int_equal(c.wrote, BIG);
    assert_int_equal(c.got, BIG);
    assert_memory_equal(c.out, c.in, BIG);
    free(c.out);
    free(c.in);
    aloop_release(r);
    aloop_close(p[0]);
    aloop_free(loop);
}

static void *epipe_task(void *arg) {
    (void)arg;
    int sv[2], p[2];
    make_pair(sv);
    close(sv[1]);
    static char buf[1 << 16];
    ssize_t rc = aloop_write_all(sv[0], buf, sizeof buf);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    aloop_close(sv[0]);
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    assert_int_equal(aloop_write_all(p[1], "x", 1), -EPIPE);
    aloop_close(p[1]);
    return NULL;
}

/* A broken pipe is -EPIPE, and the process survives (no SIGPIPE). */
static void test_epipe_no_sigpipe(void **state) {
    (void)state;
    assert_int_equal(run_task(epipe_task, NULL, NULL), 0);
}

/* An fd number closed with aloop_close and reused by a new socket must not
 * inherit the old registration. */
static void *reuse_task(void *arg) {
    (void)arg;
    for (int round = 0; round < 3; round++) {
        int sv[2];
        make_pair(sv);
        write(sv[1], "x", 1);
        assert_int_equal(aloop_wait_readable(sv[0], 1), 0);
        char b;
        assert_int_equal(aloop_read(sv[0], &b, 1), 1);
        /* registration is cached now; close through the library */
        aloop_close(sv[0]);
        aloop_close(sv[1]);
    }
    /* plain close(2), then a poll happens (sleep), then reuse: still fine */
    for (int round = 0; round < 3; round++) {
        int sv[2];
        make_pair(sv);
        write(sv[1], "y", 1);
        assert_int_equal(aloop_wait_readable(sv[0], 1), 0);
        close(sv[0]);
        close(sv[1]);
        aloop_sleep(0.01);
    }
    int sv[2];
    make_pair(sv);
    aloop_sleep(0.5);
    write(sv[1], "z", 1);
    assert_int_equal(aloop_wait_readable(sv[0], 1), 0);
    aloop_close(sv[0]);
    aloop_close(sv[1]);
    return NULL;
}

static void test_fd_reuse(void **state) {
    (void)state;
    assert_int_equal(run_task(reuse_task, NULL, NULL), 0);
}

/* A wait ended, so close(2) is allowed; the number is reused by a new pipe
 * before the loop polls again, and a new wait on it must see the new file
 * (the registration kept from the first wait was dropped by the kernel). */
static void *reuse_after_wait_task(void *arg) {
    (void)arg;
    int p[2], q[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(aloop_wait_readable(p[0], 5), 0);
    int old = p[0];
    close(p[0]);
    close(p[1]);
    assert_int_equal(pipe(q), 0);
    assert_int_equal(q[0], old);
    assert_int_equal(write(q[1], "y", 1), 1);
    int rc = aloop_wait_readable(q[0], 5);
    char c = 0;
    if (rc == 0) assert_int_equal(aloop_read(q[0], &c, 1), 1);
    aloop_close(q[0]);
    aloop_close(q[1]);
    assert_int_equal(rc, 0);
    assert_int_equal(c, 'y');
    return NULL;
}

static void test_wait_on_reused_number_after_close2(void **state) {
    (void)state;
    assert_int_equal(run_task(reuse_after_wait_task, NULL, NULL), 0);
}

/* Fds the library made are closed only through it, so tasks idling on
 * them need no close(2) check: the loop sleeps as long as it is asked to,
 * not a second at a time (10,000 idle connections were 10,000 epoll_ctl a
 * second). The bound is a lower one: no machine is too fast for it. */
static void *idle_reader(void *arg) {
    char c;
    return (void *)(intptr_t)aloop_read(*(int *)arg, &c, 1);
}

static void *idle_setup(void *arg) {
    int *fds = arg;
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    char port[16];
    snprintf(port, sizeof port, "%u", ntohs(sa.sin_port));
    fds[0] = aloop_tcp_connect("127.0.0.1", port, 5);
    assert_true(fds[0] >= 0);
    fds[1] = aloop_accept(lfd, NULL, NULL);
    assert_true(fds[1] >= 0);
    aloop_close(lfd);
    return NULL;
}

static void test_idle_library_fds_cost_no_wakeups(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    int fds[2];
    aloop_task_t *s = spawn(loop, idle_setup, fds);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(s);
    aloop_task_t *r0 = spawn(loop, idle_reader, &fds[0]);
    aloop_task_t *r1 = spawn(loop, idle_reader, &fds[1]);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* both wait now */
    /* the loop's own poll step, as aloop_run makes it with nothing due */
    double t0 = aloop__monotonic();
    assert_int_equal(aloop__io_poll(loop, 1.5), 0);
    assert_true(aloop__monotonic() - t0 >= 1.5);
    assert_int_equal(aloop_close(fds[0]), 0);
    assert_int_equal(aloop_close(fds[1]), 0);
    assert_int_equal(aloop_run(loop), 0);
    void *r;
    assert_int_equal(aloop_future_result(r0, &r), 0);
    assert_int_equal((intptr_t)r, -EBADF);
    aloop_release(r0);
    aloop_release(r1);
    aloop_free(loop);
}

/* ---- blocking modes are put back ---------------------------------------- */

/* A dup of a pipe's read end shares its file description (as dup(0) shares
 * stdin's with the shell's next command): the mode is checked on the
 * original, which the library never saw. */
static int nonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

typedef struct mode_ctx {
    int p[2];
    int d;      /* dup(p[0]): what the library reads */
    int close;  /* 1: aloop_close, 2: close(2) and reuse, 3: a stream */
    int q[2];
} mode_ctx_t;

static void *mode_task(void *arg) {
    mode_ctx_t *c = arg;
    char ch;
    assert_int_equal(write(c->p[1], "ab\n", 3), 3);
    if (c->close == 3) {
        aloop_stream_t *s = aloop_stream_new(aloop_current(), c->d, 0);
        assert_non_null(s);
        char line[8];
        assert_int_equal(aloop_stream_readline(s, line, sizeof line), 3);
        assert_true(nonblocking(c->p[0]));
        assert_int_equal(aloop_stream_close(s), 0);
        assert_false(nonblocking(c->p[0]));
        return NULL;
    }
    assert_int_equal(aloop_read(c->d, &ch, 1), 1);
    assert_true(nonblocking(c->p[0])); /* the library's doing, shared */
    if (c->close == 1) {
        assert_int_equal(aloop_close(c->d), 0);
        assert_false(nonblocking(c->p[0]));
    } else if (c->close == 2) {
        int old = c->d;
        close(c->d); /* allowed: nobody waits on it */
        assert_int_equal(pipe(c->q), 0);
        assert_int_equal(c->q[0], old);
        assert_int_equal(fcntl(c->q[0], F_SETFL, O_NONBLOCK), 0); /* the program's choice */
    }
    return NULL;
}

static void run_mode_case(int how) {
    mode_ctx_t c = {.close = how};
    assert_int_equal(pipe(c.p), 0);
    c.d = dup(c.p[0]);
    assert_true(c.d >= 0);
    assert_int_equal(run_task(mode_task, &c, NULL), 0);
    /* aloop_free let every fd go: the pipe is blocking again (unless the
     * program closed the library's fd itself: it has nothing to put back
     * then), and a new file under the number is left alone */
    if (how != 2) assert_false(nonblocking(c.p[0]));
    if (how == 0) close(c.d);
    if (how == 2) {
        assert_true(nonblocking(c.q[0]));
        close(c.q[0]);
        close(c.q[1]);
    }
    close(c.p[0]);
    close(c.p[1]);
}

static void test_mode_back_after_free(void **state) {
    (void)state;
    run_mode_case(0);
}

static void test_mode_back_after_aloop_close(void **state) {
    (void)state;
    run_mode_case(1);
}

static void test_mode_restore_spares_a_reused_number(void **state) {
    (void)state;
    run_mode_case(2);
}

static void test_mode_back_after_stream_close(void **state) {
    (void)state;
    run_mode_case(3);
}

/* Two dups of one pipe end share its mode: letting one go leaves the mode
 * alone while the library still reads the other (it would block the loop),
 * and the last one puts it back. */
static void *twin_task(void *arg) {
    int *d = arg;
    char ch;
    assert_int_equal(aloop_read(d[0], &ch, 1), 1);
    assert_int_equal(aloop_read(d[1], &ch, 1), 1);
    assert_int_equal(aloop_close(d[0]), 0);
    assert_true(nonblocking(d[1]));
    assert_int_equal(aloop_close(d[1]), 0);
    assert_false(nonblocking(d[2]));
    return NULL;
}

static void test_mode_kept_while_a_dup_is_used(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int d[3] = {dup(p[0]), dup(p[0]), p[0]};
    assert_int_equal(write(p[1], "ab", 2), 2);
    assert_int_equal(run_task(twin_task, d, NULL), 0);
    close(p[0]);
    close(p[1]);
}

/* An fd that was non-blocking before stays so. */
static void *already_nb_task(void *arg) {
    int *p = arg;
    char ch;
    assert_int_equal(aloop_read(p[0], &ch, 1), 1);
    assert_int_equal(aloop_close(p[0]), 0);
    return NULL;
}

static void test_mode_untouched_when_already_nonblocking(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    int d = dup(p[0]);
    assert_int_equal(write(p[1], "x", 1), 1);
    int q[2] = {d, -1};
    assert_int_equal(run_task(already_nb_task, q, NULL), 0);
    assert_true(nonblocking(p[0]));
    close(p[0]);
    close(p[1]);
}

/* ---- allocation failures ------------------------------------------------ */

typedef struct oom_ctx {
    int hi;  /* a high fd number: the watch table must grow */
    int peer;
} oom_ctx_t;

static void *oom_scenario(void *arg) {
    oom_ctx_t *c = arg;
    int rc = aloop_wait_readable(c->hi, 0.5);
    if (rc == -ENOMEM) return aloop_fail(rc);
    assert_int_equal(rc, -ETIMEDOUT);
    write(c->peer, "ab", 2);
    char buf[4];
    ssize_t n = aloop_read(c->hi, buf, sizeof buf);
    if (n == -ENOMEM) return aloop_fail(-ENOMEM);
    if (n == 1) n += aloop_read(c->hi, buf + 1, sizeof buf - 1); /* a short read */
    assert_int_equal(n, 2);
    return NULL;
}

/* Every allocation in turn fails once: each run either works or reports
 * -ENOMEM, and nothing leaks (ASan). */
static void test_enomem_sweep(void **state) {
    (void)state;
    int sv[2];
    make_pair(sv);
    oom_ctx_t c = {.hi = dup2(sv[0], 700), .peer = sv[1]};
    assert_int_equal(c.hi, 700);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    int failures = 0;
    for (long nth = 1; nth < 200; nth++) {
        aloop__test_fail_alloc(nth, 1);
        int rc = aloop_main_with(&cfg, oom_scenario, &c, NULL);
        unsigned long count = aloop__test_alloc_count();
        aloop__test_fail_alloc(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (rc) failures++;
        if ((unsigned long)nth > count) break; /* no allocation failed: done */
    }
    assert_true(failures > 0);
    close(c.hi);
    close(sv[0]);
    close(sv[1]);
}

/* ---- a budget yield inside aloop_write_all ------------------------------ */

/* write_all sends part of a big buffer without suspending and its budget,
 * spent, yields; meanwhile another task closes the fd (aloop_close, or the
 * stream's close) and the number goes to another file. The writer must
 * stop with -EBADF and never write to that number again. */
typedef struct yield_close {
    int fd;            /* the writer's end of a socket pair */
    aloop_stream_t *s; /* its stream, or NULL: plain aloop_write_all */
    int other;         /* a regular file that takes fd's number */
} yield_close_t;

static void *close_and_reuse(void *arg) {
    yield_close_t *y = arg;
    if (y->s)
        assert_int_equal(aloop_stream_close(y->s), 0);
    else
        assert_int_equal(aloop_close(y->fd), 0);
    assert_int_equal(dup2(y->other, y->fd), y->fd); /* the number is another file now */
    return NULL;
}

static void *write_through_budget_yield(void *arg) {
    yield_close_t *y = arg;
    size_t len = 16u << 20; /* more than the socket buffer: the first send is partial */
    char *buf = calloc(1, len);
    assert_non_null(buf);
    aloop_task_t *closer = aloop_spawn(aloop_current(), close_and_reuse, y); /* runs at our yield */
    assert_non_null(closer);
    /* the entry check spends one unit, the spend after the first send the
     * last one: that one yields */
    aloop__current_task()->coop_used = ALOOP_COOP_BUDGET - 2;
    ssize_t n = y->s ? aloop_stream_write(y->s, buf, len) : aloop_write_all(y->fd, buf, len);
    assert_int_equal(n, -EBADF);
    assert_int_equal(aloop_await(closer, NULL), 0);
    aloop_release(closer);
    free(buf);
    return NULL;
}

static void write_all_budget_yield_case(int stream) {
    int sv[2];
    make_pair(sv);
    char path[] = "/tmp/aloop-test-io-XXXXXX";
    int other = mkstemp(path);
    assert_true(other >= 0);
    unlink(path);
    yield_close_t y = {.fd = sv[0], .other = other};
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    if (stream) {
        y.s = aloop_stream_new(loop, sv[0], 0);
        assert_non_null(y.s);
    }
    aloop_task_t *t = aloop_spawn(loop, write_through_budget_yield, &y);
    assert_non_null(t);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    struct stat st;
    assert_int_equal(fstat(sv[0], &st), 0);
    assert_int_equal(st.st_size, 0); /* not a byte went to the file that took the number */
    close(sv[0]);
    close(sv[1]);
    close(other);
}

static void test_write_all_stops_when_closed_during_budget_yield(void **state) {
    (void)state;
    write_all_budget_yield_case(0);
}

static void test_stream_write_stops_when_closed_during_budget_yield(void **state) {
    (void)state;
    write_all_budget_yield_case(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_task),
        cmocka_unit_test(test_write_all_stops_when_closed_during_budget_yield),
        cmocka_unit_test(test_stream_write_stops_when_closed_during_budget_yield),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_wait_readable_wakes),
        cmocka_unit_test(test_wait_timeout),
        cmocka_unit_test(test_reader_and_writer_on_one_fd),
        cmocka_unit_test(test_cancel_removes_wait),
        cmocka_unit_test(test_close_wakes_waiters),
        cmocka_unit_test(test_free_with_waiter),
        cmocka_unit_test(test_regular_file),
        cmocka_unit_test(test_read_tries_first_and_eof),
        cmocka_unit_test(test_write_all_8mib),
        cmocka_unit_test(test_write_all_pipe),
        cmocka_unit_test(test_epipe_no_sigpipe),
        cmocka_unit_test(test_fd_reuse),
        cmocka_unit_test(test_wait_on_reused_number_after_close2),
        cmocka_unit_test(test_idle_library_fds_cost_no_wakeups),
        cmocka_unit_test(test_mode_back_after_free),
        cmocka_unit_test(test_mode_back_after_aloop_close),
        cmocka_unit_test(test_mode_restore_spares_a_reused_number),
        cmocka_unit_test(test_mode_back_after_stream_close),
        cmocka_unit_test(test_mode_untouched_when_already_nonblocking),
        cmocka_unit_test(test_mode_kept_while_a_dup_is_used),
        cmocka_unit_test(test_enomem_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_poll.c - the poller backend compiled into this build (backend_epoll.c,
 * backend_poll.c or backend_kqueue.c) and the registration cache in front of it:
 * the loop's timeout rule, many fds, hang-ups, internal hooks, and that
 * repeated waits keep their registration while idle fds lose theirs.
 */
#include "aloop_test.h"

#include "internal.h"
#include "io_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* Nothing registered: polling with timeout 0 just looks; the loop with
 * nothing to do returns at once; a bad fd is refused. */
static void test_empty_poll(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    assert_int_equal(aloop__io_pending(loop), 0);
    assert_int_equal(aloop__io_poll(loop, 0), 0);
    /* a short real timeout with nothing to wait for returns 0 events */
    assert_int_equal(aloop__io_poll(loop, 0.001), 0);
    assert_int_equal(aloop_run(loop), 0);
    assert_non_null(aloop__io_watch(loop, 1000)); /* the table grows on demand */
    int fd = dup(2);
    close(fd);
    assert_int_equal(aloop__backend_set(loop->io->backend, fd, 0, ALOOP__IO_READ), -EBADF);
    aloop_free(loop);
}

typedef struct rep_ctx {
    int sv[2];
    int registered_between;
    int registered_after_idle;
    int rounds;
} rep_ctx_t;

/* Echo-style: read, wait, read again. Between the wake-up and the next wait
 * the registration stays (no syscall); after an idle poll it is dropped. */
static void *repeated_waits(void *arg) {
    rep_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    char b;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(aloop_wait_readable(c->sv[0], 1), 0);
        assert_int_equal(aloop_read(c->sv[0], &b, 1), 1);
        c->registered_between += loop->io->watches[c->sv[0]].registered == ALOOP__IO_READ;
        c->rounds++;
    }
    aloop_sleep(0.5); /* idle: at least one poll happens */
    c->registered_after_idle = loop->io->watches[c->sv[0]].registered;
    return NULL;
}

static void *feed_bytes(void *arg) {
    rep_ctx_t *c = arg;
    for (int i = 0; i < 5; i++) {
        aloop_sleep(0.01);
        write(c->sv[1], "x", 1);
    }
    return NULL;
}

static void test_registration_cache(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    rep_ctx_t c = {0};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c.sv), 0);
    aloop_release(aloop_spawn(loop, repeated_waits, &c));
    aloop_release(aloop_spawn(loop, feed_bytes, &c));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rounds, 5);
    assert_int_equal(c.registered_between, 5);
    assert_int_equal(c.registered_after_idle, 0);
    aloop_close(c.sv[0]);
    aloop_close(c.sv[1]);
    aloop_free(loop);
}

/* Many fds (the table grows well past its first size), all waited on at
 * once, all woken. */
#define NPAIRS 300
typedef struct many_ctx {
    int sv[NPAIRS][2];
    int woke;
} many_ctx_t;

typedef struct one_reader {
    many_ctx_t *m;
    int i;
} one_reader_t;

static void *many_reader(void *arg) {
    one_reader_t *r = arg;
    char b;
    if (aloop_read(r->m->sv[r->i][0], &b, 1) == 1 && b == (char)r->i) r->m->woke++;
    return NULL;
}

static void *many_writer(void *arg) {
    many_ctx_t *m = arg;
    aloop_sleep(1);
    for (int i = NPAIRS - 1; i >= 0; i--) {
        char b = (char)i;
        aloop_write_all(m->sv[i][1], &b, 1);
    }
    return NULL;
}

static void test_many_fds(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    static many_ctx_t m;
    static one_reader_t r[NPAIRS];
    m.woke = 0;
    for (int i = 0; i < NPAIRS; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, m.sv[i]), 0);
        r[i] = (one_reader_t){&m, i};
        aloop_release(aloop_spawn(loop, many_reader, &r[i]));
    }
    aloop_release(aloop_spawn(loop, many_writer, &m));
    for (int i = 0; i * ALOOP_STEPS_PER_TICK <= NPAIRS; i++) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    assert_int_equal(aloop__io_pending(loop), NPAIRS);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(m.woke, NPAIRS);
    for (int i = 0; i < NPAIRS; i++) {
        aloop_close(m.sv[i][0]);
        aloop_close(m.sv[i][1]);
    }
    aloop_free(loop);
}

/* The peer hangs up: a reader wakes (then reads EOF), a writer on the other
 * direction wakes too and gets the error from its write. */
static void *hup_reader(void *arg) {
    int *sv = arg;
    char b;
    return (void *)(intptr_t)aloop_read(sv[0], &b, 1);
}

static void *hup_writer(void *arg) {
    int *sv = arg;
    static char buf[1 << 16];
    ssize_t rc;
    do rc = aloop_write_all(sv[0], buf, sizeof buf);
    while (rc > 0);
    return (void *)(intptr_t)rc;
}

static void *hup_closer(void *arg) {
    int *sv = arg;
    aloop_sleep(1);
    close(sv[1]);
    return NULL;
}

static void test_hangup(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    aloop_task_t *r = aloop_spawn(loop, hup_reader, sv);
    aloop_task_t *w = aloop_spawn(loop, hup_writer, sv);
    aloop_release(aloop_spawn(loop, hup_closer, sv));
    assert_int_equal(aloop_run(loop), 0);
    void *res;
    assert_int_equal(aloop_future_result(r, &res), 0);
    /* EOF, or a reset because the writer's bytes were never read */
    assert_true((intptr_t)res == 0 || (intptr_t)res == -ECONNRESET);
    assert_int_equal(aloop_future_result(w, &res), 0);
    assert_true((intptr_t)res == -EPIPE || (intptr_t)res == -ECONNRESET);
    aloop_release(r);
    aloop_release(w);
    aloop_close(sv[0]);
    aloop_free(loop);
}

/* The loop blocks in the poller (no timer, timeout -1) until another thread
 * makes the fd readable. */
static void *late_writer(void *arg) {
    int fd = *(int *)arg;
    usleep(20000);
    write(fd, "t", 1);
    return NULL;
}

static void *blocking_reader(void *arg) {
    int fd = *(int *)arg;
    char b = 0;
    aloop_read(fd, &b, 1);
    return (void *)(intptr_t)b;
}

static void test_blocks_until_ready(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    aloop_task_t *t = aloop_spawn(loop, blocking_reader, &sv[0]);
    pthread_t th;
    pthread_create(&th, NULL, late_writer, &sv[1]);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    void *res;
    aloop_future_result(t, &res);
    assert_int_equal((intptr_t)res, 't');
    pthread_join(th, NULL);
    aloop_release(t);
    aloop_close(sv[0]);
    aloop_close(sv[1]);
    aloop_free(loop);
}

/* Internal hooks: called from the poll while registered, not counted as
 * pending work; unhooking drops the registration at the next poll. */
static int hook_calls;
static void test_hook_fn(aloop_t *loop, int fd) {
    (void)loop;
    char buf[16];
    hook_calls++;
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

static void test_internal_hook(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    hook_calls = 0;
    assert_int_equal(aloop__io_hook(loop, p[0], test_hook_fn), 0);
    assert_int_equal(aloop__io_pending(loop), 0);
    write(p[1], "abc", 3);
    assert_int_equal(aloop__io_poll(loop, 0), 1);
    assert_int_equal(hook_calls, 1);
    assert_int_equal(aloop__io_poll(loop, 0), 0); /* drained: level back to low */
    aloop__io_unhook(loop, p[0]);
    write(p[1], "d", 1);
    aloop__io_poll(loop, 0);
    assert_int_equal(hook_calls, 1);
    assert_int_equal(loop->io->watches[p[0]].registered, 0);
    aloop_close(p[0]);
    aloop_close(p[1]);
    aloop_free(loop);
}

/* The timeout rule on the real clock: with a task waiting on an idle fd,
 * the poll still wakes for the next timer (not -1 = for ever), and does not
 * block at all while tasks are ready. A wrong rule hangs this test. */
static void *idle_reader(void *arg) {
    int fd = *(int *)arg;
    return (void *)(intptr_t)aloop_wait_readable(fd, -1);
}

static void *yielder(void *arg) {
    int *n = arg;
    for (; *n < 1000; (*n)++) aloop_yield();
    return NULL;
}

static void test_timeout_rule(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    aloop_task_t *t = aloop_spawn(loop, idle_reader, &sv[0]);
    int n = 0;
    aloop_task_t *y = aloop_spawn(loop, yielder, &n);
    assert_int_equal(aloop_run_until_complete(loop, y), 0); /* never blocked */
    assert_int_equal(n, 1000);
    assert_non_null(aloop_call_later(loop, 0.02, cancel_cb, t));
    assert_int_equal(aloop_run(loop), 0); /* woke for the timer */
    assert_true(aloop_future_cancelled(t));
    assert_true(aloop_time(loop) >= 0.02);
    aloop_release(t);
    aloop_release(y);
    aloop_close(sv[0]);
    aloop_close(sv[1]);
    aloop_free(loop);
}

/* Open fds in this process (0..4095 probed with fcntl: portable). */
static int open_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0) n++;
    return n;
}

static void *square_job(void *arg) { return arg; }

static void *use_everything(void *arg) {
    int *sv = arg;
    aloop_run_in_thread(square_job, NULL, NULL); /* wake-up fd in use */
    aloop_wait_readable(sv[0], -1);              /* cancelled by aloop_free */
    return NULL;
}

static void *wait_signal(void *arg) {
    (void)arg;
    aloop_signal_wait(SIGUSR2); /* a signalfd (Linux) */
    return NULL;
}

/* aloop_free with tasks waiting on an fd and a signal: they are cancelled,
 * and the backend's own fds (epoll / wake-up / signalfd) are all closed. */
static void test_free_closes_backend_fds(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* warm-up: the portable signal path keeps one process-wide self-pipe */
    aloop_t *loop = aloop_new();
    aloop_release(aloop_spawn(loop, wait_signal, NULL));
    aloop_stop(loop);
    aloop_run(loop);
    aloop_free(loop);
    int before = open_fds();
    loop = aloop_new();
    aloop_task_t *a = aloop_spawn(loop, use_everything, sv);
    aloop_task_t *b = aloop_spawn(loop, wait_signal, NULL);
    for (int i = 0; i < 100 && aloop__io_pending(loop) < 2; i++) {
        aloop_stop(loop);
        aloop_run(loop);
        usleep(1000);
    }
    assert_int_equal(loop->io->waits, 1);
    assert_int_equal(loop->io->holds, 1);
    assert_true(open_fds() > before);
    aloop_free(loop);
    assert_true(aloop_future_cancelled(a));
    assert_true(aloop_future_cancelled(b));
    assert_int_equal(open_fds(), before);
    aloop_release(a);
    aloop_release(b);
    close(sv[0]);
    close(sv[1]);
}

/* A registration the kernel may or may not hold any more: fd registered,
 * closed with close(2) and its number taken by another socket. The backend
 * reports what it finds (epoll: -ENOENT for a stale MOD or DEL, -EEXIST for
 * an ADD of a registered fd; poll(2) and kqueue take both), and io.c's one
 * rule makes the registration anew: waits on the new socket work. */
typedef struct stale_ctx {
    int old_fd;   /* registered, then closed behind the loop's back */
    int fresh[2]; /* the pair whose first end takes old_fd's number */
} stale_ctx_t;

static void *stale_registration_task(void *arg) {
    stale_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_backend_t *b = loop->io->backend;
    assert_int_equal(aloop_wait_writable(c->old_fd, 1.0), 0); /* registered for writing */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* closes the old file behind the loop's back (allowed once nobody
     * waits) and gives its number to the new socket */
    assert_int_equal(dup2(sv[0], c->old_fd), c->old_fd);
    close(sv[0]);
    c->fresh[0] = c->old_fd;
    c->fresh[1] = sv[1];
#if defined(__linux__)
    if (aloop__backend_fd(b) >= 0) { /* epoll: what it reports for stale beliefs */
        assert_int_equal(aloop__backend_set(b, c->fresh[0], ALOOP__IO_WRITE, ALOOP__IO_READ), -ENOENT);
        assert_int_equal(aloop__backend_set(b, c->fresh[1], 0, ALOOP__IO_READ), 0);
        assert_int_equal(aloop__backend_set(b, c->fresh[1], 0, ALOOP__IO_READ), -EEXIST);
        assert_int_equal(aloop__backend_set(b, c->fresh[1], ALOOP__IO_READ, 0), 0);
        assert_int_equal(aloop__backend_set(b, c->fresh[1], ALOOP__IO_READ, 0), -ENOENT);
    }
#else
    (void)b;
#endif
    /* io.c still believes fd registered (unsure): the waits must work */
    assert_int_equal(write(c->fresh[1], "x", 1), 1);
    assert_int_equal(aloop_wait_readable(c->fresh[0], 1.0), 0);
    assert_int_equal(aloop_wait_writable(c->fresh[0], 1.0), 0);
    return NULL;
}

static void test_stale_registration_is_made_anew(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    stale_ctx_t c = {.old_fd = sv[0]};
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    aloop_task_t *t = aloop_spawn(loop, stale_registration_task, &c);
    assert_non_null(t);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    close(c.fresh[0]);
    close(c.fresh[1]);
    close(sv[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_poll),
        cmocka_unit_test(test_registration_cache),
        cmocka_unit_test(test_stale_registration_is_made_anew),
        cmocka_unit_test(test_many_fds),
        cmocka_unit_test(test_hangup),
        cmocka_unit_test(test_blocks_until_ready),
        cmocka_unit_test(test_internal_hook),
        cmocka_unit_test(test_timeout_rule),
        cmocka_unit_test(test_free_closes_backend_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

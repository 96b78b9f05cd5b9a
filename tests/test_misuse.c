/*
 * test_misuse.c - every documented misuse gets its documented answer, and a
 * rejected call changes nothing (in particular it does not consume a pending
 * cancel):
 *   suspending calls outside a task        -EPERM
 *   a loop used from another thread        -EPERM (debug mode: abort + message)
 *   awaiting a future of another loop      -EINVAL
 *   completing a done future               -EINVAL
 *   negative or NaN timeouts and delays    -EINVAL
 *   freeing a queue or sync object with waiters   the waiters wake with -EPIPE
 *   re-entering or freeing a running loop  -EPERM / ignored
 *   an object of another (or a freed) loop -EINVAL
 * Debug mode turns every misuse (the list in src/base/error.c) into an abort with a
 * message naming the call: one test per rule, each in a child process.
 * (Releasing too often is caught by debug mode: see test_debug.c.)
 */
#include "aloop_test.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>


static void *nothing(void *arg) {
    (void)arg;
    return NULL;
}

static aloop_t *vloop_with(unsigned flags) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .flags = flags};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    return loop;
}

/* Runs body in a child process whose stderr we read: it must die of
 * SIGABRT after printing a message that contains expect. */
static void expect_abort(void (*body)(void), const char *expect) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        body();
        _exit(0); /* not reached */
    }
    close(fds[1]);
    char buf[1024] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    if (!strstr(buf, expect)) fail_msg("expected \"%s\" on stderr, got \"%s\"", expect, buf);
}

/* ---- suspending calls outside a task */

static void test_suspending_calls_outside_a_task(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    aloop_future_t *f = aloop_future_new(loop);
    aloop_lock_t *l = aloop_lock_new(loop);
    aloop_event_t *e = aloop_event_new(loop);
    aloop_semaphore_t *s = aloop_semaphore_new(loop, 0);
    aloop_cond_t *c = aloop_cond_new(loop, NULL);
    void *out = (void *)1;

    assert_int_equal(aloop_sleep(1), -EPERM);
    assert_int_equal(aloop_sleep(0), -EPERM);
    assert_int_equal(aloop_yield(), -EPERM);
    assert_int_equal(aloop_await(f, &out), -EPERM);
    assert_ptr_equal(out, (void *)1); /* untouched */
    assert_int_equal(aloop_lock_acquire(l), -EPERM);
    assert_int_equal(aloop_event_wait(e), -EPERM);
    assert_int_equal(aloop_semaphore_acquire(s), -EPERM);
    assert_int_equal(aloop_cond_wait(c), -EPERM);
    assert_null(aloop_current_task());
    assert_null(aloop_current());
    aloop_fail(-EIO); /* no task: nothing happens */

    /* Nothing was registered: the loop has nothing to do. */
    assert_int_equal(aloop_future_done(f), 0);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_lock_locked(l), 0);

    aloop_cond_free(c);
    aloop_semaphore_free(s);
    aloop_event_free(e);
    aloop_lock_free(l);
    aloop_release(f);
    aloop_free(loop);
}

/* ---- bad arguments leave a pending cancel in place */

/* NaN timeouts (a negative one means "no limit" for these calls). */
static void *nan_timeouts(void *arg) {
    int *rc = arg;
    aloop_future_t *f = aloop_future_new(aloop_current());
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) return NULL;
    aloop_cancel(aloop_current_task()); /* and none of them consumes this */
    rc[0] = aloop_wait(&f, 1, ALOOP_ALL_COMPLETED, NAN, NULL);
    rc[1] = aloop_wait_for(f, NAN, NULL);
    rc[2] = aloop_wait_readable(sv[0], NAN);
    rc[3] = aloop_wait_writable(sv[0], NAN);
    rc[4] = aloop_tcp_connect("127.0.0.1", "9", NAN);
    rc[5] = aloop_sleep(0);
    close(sv[0]);
    close(sv[1]);
    aloop_release(f);
    return NULL;
}

static void test_nan_timeouts(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    int rc[6] = {1, 1, 1, 1, 1, 1};
    aloop_task_t *t = aloop_spawn(loop, nan_timeouts, rc);
    assert_int_equal(aloop_run(loop), 0);
    for (int i = 0; i < 5; i++) assert_int_equal(rc[i], -EINVAL);
    assert_int_equal(rc[5], -ECANCELED);
    aloop_release(t);
    aloop_free(loop);
}


static void *bad_then_cancelled(void *arg) {
    int *rc = arg;
    aloop_cancel(aloop_current_task()); /* pending until the next suspension */
    rc[0] = aloop_sleep(-1);
    rc[1] = aloop_sleep(NAN);
    rc[2] = aloop_await(NULL, NULL);
    rc[3] = aloop_sleep(0); /* the cancel is still there */
    return NULL;
}

static void test_bad_arguments_do_not_consume_a_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    int rc[4] = {1, 1, 1, 1};
    aloop_task_t *t = aloop_spawn(loop, bad_then_cancelled, rc);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc[0], -EINVAL);
    assert_int_equal(rc[1], -EINVAL);
    assert_int_equal(rc[2], -EINVAL);
    assert_int_equal(rc[3], -ECANCELED);
    assert_int_equal(aloop_future_cancelled(t), 1);
    aloop_release(t);
    aloop_free(loop);
}

/* ---- negative and NaN times */

static void noop(void *arg) { (void)arg; }

static void test_negative_and_nan_times(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    errno = 0;
    assert_null(aloop_call_later(loop, -0.5, noop, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_later(loop, NAN, noop, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_at(loop, NAN, noop, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_later(loop, -INFINITY, noop, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(aloop_run(loop), 0); /* nothing was scheduled */
    aloop_free(loop);
}

/* ---- completing a done future */

static void test_completing_a_done_future(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    aloop_future_t *f = aloop_future_new(loop);
    void *v = NULL;
    assert_int_equal(aloop_future_set_result(f, (void *)7), 0);
    assert_int_equal(aloop_future_set_result(f, (void *)8), -EINVAL);
    assert_int_equal(aloop_future_set_error(f, -EIO), -EINVAL);
    assert_int_equal(aloop_cancel(f), 0);
    assert_int_equal(aloop_future_result(f, &v), 0);
    assert_ptr_equal(v, (void *)7); /* the first completion stands */

    aloop_future_t *g = aloop_future_new(loop);
    assert_int_equal(aloop_cancel(g), 1);
    assert_int_equal(aloop_future_set_result(g, NULL), -EINVAL);
    assert_int_equal(aloop_future_set_error(g, -EIO), -EINVAL);
    assert_int_equal(aloop_future_cancelled(g), 1);

    aloop_future_t *h = aloop_future_new(loop);
    assert_int_equal(aloop_future_set_error(h, 0), -EINVAL);  /* not an error */
    assert_int_equal(aloop_future_set_error(h, EIO), -EINVAL); /* must be negative */
    assert_int_equal(aloop_future_done(h), 0);
    aloop_release(h);

    /* A task completes itself: its future cannot be set from outside. */
    aloop_task_t *t = aloop_spawn(loop, nothing, NULL);
    assert_int_equal(aloop_future_set_result(t, NULL), -EINVAL);
    assert_int_equal(aloop_future_set_error(t, -EIO), -EINVAL);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);

    aloop_release(f);
    aloop_release(g);
    aloop_free(loop);
    /* Detached futures (their loop is gone) cannot be completed either. */
}

static void test_completing_a_detached_future(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    aloop_future_t *f = aloop_future_new(loop);
    aloop_free(loop);
    assert_int_equal(aloop_future_set_result(f, NULL), -EINVAL);
    assert_int_equal(aloop_cancel(f), 0);
    assert_true(aloop_future_cancelled(f)); /* aloop_free cancelled it */
    aloop_release(f);
}

/* ---- awaiting a future of another loop */

typedef struct cross {
    aloop_future_t *foreign_future;
    aloop_lock_t *foreign_lock;
    int await_rc, lock_rc;
} cross_t;

static void *await_foreign(void *arg) {
    cross_t *c = arg;
    c->await_rc = aloop_await(c->foreign_future, NULL);
    c->lock_rc = aloop_lock_acquire(c->foreign_lock);
    return NULL;
}

static void test_awaiting_another_loops_future(void **state) {
    (void)state;
    skip_in_debug_env();
    aloop_t *a = vloop_with(0), *b = vloop_with(0);
    cross_t c = {.foreign_future = aloop_future_new(b), .foreign_lock = aloop_lock_new(b)};
    aloop_task_t *t = aloop_spawn(a, await_foreign, &c);
    assert_int_equal(aloop_run(a), 0);
    assert_int_equal(c.await_rc, -EINVAL);
    assert_int_equal(c.lock_rc, -EINVAL);
    /* and the synchronous API refuses it too */
    assert_int_equal(aloop_run_until_complete(a, c.foreign_future), -EINVAL);
    assert_int_equal(aloop_future_done(c.foreign_future), 0);
    aloop_release(t);
    aloop_release(c.foreign_future);
    aloop_lock_free(c.foreign_lock);
    aloop_free(a);
    aloop_free(b);
}

static void *await_self(void *arg) {
    int *rc = arg;
    *rc = aloop_await(aloop_current_task(), NULL);
    return NULL;
}

static void test_awaiting_itself(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    int rc = 0;
    aloop_task_t *t = aloop_spawn(loop, await_self, &rc);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc, -EDEADLK);
    aloop_release(t);
    aloop_free(loop);
}

/* ---- re-entering and freeing a running loop */

static void *reenter(void *arg) {
    int *rc = arg;
    aloop_t *loop = aloop_current();
    rc[0] = aloop_run(loop);
    aloop_free(loop); /* ignored, says so on stderr */
    rc[1] = aloop_sleep(0.1); /* the loop is alive and well */
    return NULL;
}

static void test_reentering_the_loop(void **state) {
    (void)state;
    skip_in_debug_env();
    aloop_t *loop = vloop_with(0);
    int rc[2] = {1, 1};
    aloop_task_t *t = aloop_spawn(loop, reenter, rc);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc[0], -EPERM);
    assert_int_equal(rc[1], 0);
    aloop_release(t);
    aloop_free(loop);
}

static void test_null_and_bad_arguments(void **state) {
    (void)state;
    aloop_config_t bad_clock = {.clock = 7};
    aloop_config_t bad_flag = {.flags = 1u << 20};
    aloop_config_t tiny_stack = {.stack_size = 1024};
    errno = 0;
    assert_null(aloop_new_with(&bad_clock));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_new_with(&bad_flag));
    assert_null(aloop_new_with(&tiny_stack));
    errno = 0;
    assert_null(aloop_spawn(NULL, nothing, NULL));
    assert_int_equal(errno, EINVAL);
    aloop_t *loop = vloop_with(0);
    errno = 0;
    assert_null(aloop_spawn(loop, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_future_new(NULL));
    assert_int_equal(aloop_run(NULL), -EINVAL);
    assert_int_equal(aloop_run_until_complete(loop, NULL), -EINVAL);
    assert_int_equal(aloop_cancel(NULL), -EINVAL);
    assert_int_equal(aloop_future_set_result(NULL, NULL), -EINVAL);
    assert_int_equal(aloop_future_result(NULL, NULL), -EINVAL);
    assert_int_equal(aloop_task_set_name(NULL, "x"), -EINVAL);
    assert_null(aloop_task_name(NULL));
    assert_int_equal(aloop_main(NULL, NULL, NULL), -EINVAL);
    aloop_future_t *f = aloop_future_new(loop);
    assert_null(aloop_task_name(f)); /* not a task */
    assert_int_equal(aloop_task_uncancel(f), -EINVAL);
    assert_int_equal(aloop_future_add_done_callback(f, NULL, NULL), -EINVAL);
    aloop_release(f);
    aloop_release(NULL);
    aloop_stop(NULL);
    aloop_free(NULL);
    aloop_free(loop);
}

/* ---- a loop used from another thread */

typedef struct thread_probe {
    aloop_t *loop;
    int run_rc, spawn_errno, future_errno;
    int spawned, made;
} thread_probe_t;

static void *probe_from_thread(void *arg) {
    thread_probe_t *p = arg;
    p->run_rc = aloop_run(p->loop);
    errno = 0;
    aloop_task_t *t = aloop_spawn(p->loop, probe_from_thread, NULL);
    p->spawned = t != NULL;
    p->spawn_errno = errno;
    errno = 0;
    aloop_future_t *f = aloop_future_new(p->loop);
    p->made = f != NULL;
    p->future_errno = errno;
    return NULL;
}

static void *start_probe(void *arg) {
    thread_probe_t *p = arg;
    pthread_t th;
    /* The loop is running (we are in its task) while the thread pokes it;
     * joining blocks the loop, which is what we want here. */
    assert_int_equal(pthread_create(&th, NULL, probe_from_thread, p), 0);
    pthread_join(th, NULL);
    return NULL;
}

static void test_loop_from_another_thread(void **state) {
    (void)state;
    thread_probe_t p = {.loop = vloop_with(0)};
    if (debug_env()) { /* ALOOP_DEBUG=1 in the environment: it aborts */
        aloop_free(p.loop);
        skip();
    }
    aloop_task_t *t = aloop_spawn(p.loop, start_probe, &p);
    assert_int_equal(aloop_run(p.loop), 0);
    assert_int_equal(p.run_rc, -EPERM);
    assert_false(p.spawned);
    assert_int_equal(p.spawn_errno, EPERM);
    assert_false(p.made);
    assert_int_equal(p.future_errno, EPERM);
    assert_int_equal(aloop_all_tasks(p.loop, NULL, 0), 0); /* nothing leaked into the loop */
    aloop_release(t);
    aloop_free(p.loop);
}

/* Not running, a loop may move between threads: made here, run there. */
static void *run_elsewhere(void *arg) {
    aloop_t *loop = arg;
    aloop_release(aloop_spawn(loop, nothing, NULL));
    return (void *)(intptr_t)aloop_run(loop);
}

static void test_idle_loop_may_change_threads(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    pthread_t th;
    void *rc = (void *)1;
    assert_int_equal(pthread_create(&th, NULL, run_elsewhere, loop), 0);
    pthread_join(th, &rc);
    assert_int_equal((int)(intptr_t)rc, 0);
    aloop_free(loop);
}

/* Debug mode turns the same mistake into an abort with a clear message. */
static void another_thread_in_debug_mode(void) {
    thread_probe_t p = {.loop = vloop_with(ALOOP_DEBUG)};
    aloop_release(aloop_spawn(p.loop, start_probe, &p));
    aloop_run(p.loop);
}

static void test_loop_from_another_thread_aborts_in_debug_mode(void **state) {
    (void)state;
    expect_abort(another_thread_in_debug_mode, "aloop_run: loop");
    expect_abort(another_thread_in_debug_mode, "is running on another thread");
}

/* ---- objects of another loop, in every module that takes one */

typedef struct other_loop {
    aloop_t *other;
    aloop_future_t *f, *detached;
    aloop_queue_t *q;
    aloop_lock_t *l;
    aloop_event_t *e;
    aloop_semaphore_t *s;
    aloop_cond_t *c;
    int rc[12];
} other_loop_t;

static void *use_other_loop(void *arg) {
    other_loop_t *o = arg;
    void *item = NULL;
    int i = 0;
    o->rc[i++] = aloop_gather(&o->f, 1, NULL, NULL, 0);
    o->rc[i++] = aloop_wait(&o->f, 1, ALOOP_ALL_COMPLETED, -1, NULL);
    o->rc[i++] = aloop_wait_for(o->f, 1, NULL);
    o->rc[i++] = aloop_wait_for(o->detached, 1, NULL);
    o->rc[i++] = aloop_queue_put_nowait(o->q, &item);
    o->rc[i++] = aloop_queue_get(o->q, &item);
    o->rc[i++] = aloop_lock_try_acquire(o->l);
    o->rc[i++] = aloop_event_wait(o->e);
    o->rc[i++] = aloop_semaphore_release(o->s);
    o->rc[i++] = aloop_cond_notify(o->c, 1);
    o->rc[i++] = aloop_run_until_complete(aloop_current(), o->f);
    o->rc[i++] = aloop_await(o->f, NULL);
    return NULL;
}

static void test_objects_of_another_loop(void **state) {
    (void)state;
    skip_in_debug_env();
    aloop_t *loop = vloop_with(0), *dead = vloop_with(0);
    other_loop_t o = {.other = vloop_with(0)};
    o.f = aloop_future_new(o.other);
    o.detached = aloop_future_new(dead);
    aloop_free(dead); /* o.detached has no loop now */
    o.q = aloop_queue_new(o.other, 0);
    o.l = aloop_lock_new(o.other);
    o.e = aloop_event_new(o.other);
    o.s = aloop_semaphore_new(o.other, 0);
    o.c = aloop_cond_new(o.other, NULL);
    aloop_task_t *t = aloop_spawn(loop, use_other_loop, &o);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_future_result(t, NULL), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(o.rc[i], -EINVAL);
    assert_int_equal(o.rc[10], -EPERM); /* the loop runs already: re-entering */
    assert_int_equal(o.rc[11], -EINVAL);
    /* and nothing of the other loop changed */
    assert_int_equal(aloop_queue_size(o.q), 0);
    assert_int_equal(aloop_lock_locked(o.l), 0);
    assert_int_equal(aloop_future_done(o.f), 0);
    assert_int_equal(aloop_semaphore_locked(o.s), 1);
    aloop_release(t);
    aloop_cond_free(o.c);
    aloop_semaphore_free(o.s);
    aloop_event_free(o.e);
    aloop_lock_free(o.l);
    aloop_queue_free(o.q);
    aloop_release(o.f);
    aloop_release(o.detached);
    aloop_free(o.other);
    aloop_free(loop);
}

/* ---- the misuse table: every object type x (an object of another loop,
 * an object whose loop was freed, a suspending call outside any task).
 * Each row makes an object of a given loop, uses it with a suspending call
 * and destroys it; the answer is -EINVAL for another loop's object or a
 * freed loop's (rows whose objects outlive their loop), -EPERM outside a
 * task, and the object is left unchanged (its destroy still works). */

typedef struct kind {
    const char *name;
    void *(*make)(aloop_t *loop);
    int (*use)(void *obj);     /* a suspending call on obj */
    void (*destroy)(void *obj);
    int outlives_loop;         /* the object stays usable after aloop_free */
} kind_t;

static void *make_future(aloop_t *loop) { return aloop_future_new(loop); }
static int use_future(void *o) { return aloop_await(o, NULL); }
static void destroy_future(void *o) { aloop_release(o); }
static void *make_queue(aloop_t *loop) { return aloop_queue_new(loop, 0); }
static int use_queue(void *o) { void *item; return aloop_queue_get(o, &item); }
static void destroy_queue(void *o) { aloop_queue_free(o); }
static void *make_lock(aloop_t *loop) {
    aloop_lock_t *l = aloop_lock_new(loop);
    assert_int_equal(aloop_lock_try_acquire(l), 0); /* an acquire would wait */
    return l;
}
static int use_lock(void *o) { return aloop_lock_acquire(o); }
static void destroy_lock(void *o) { aloop_lock_free(o); }
static void *make_event(aloop_t *loop) { return aloop_event_new(loop); }
static int use_event(void *o) { return aloop_event_wait(o); }
static void destroy_event(void *o) { aloop_event_free(o); }
static void *make_sem(aloop_t *loop) { return aloop_semaphore_new(loop, 0); }
static int use_sem(void *o) { return aloop_semaphore_acquire(o); }
static void destroy_sem(void *o) { aloop_semaphore_free(o); }
static void *make_barrier(aloop_t *loop) { return aloop_barrier_new(loop, 2); }
static int use_barrier(void *o) { return aloop_barrier_wait(o); }
static void destroy_barrier(void *o) { aloop_barrier_free(o); }
static void *make_group(aloop_t *loop) { return aloop_group_new(loop); }
static int use_group(void *o) { return aloop_group_wait(o); }
static void destroy_group(void *o) { aloop_group_free(o); }
static void *make_stream(aloop_t *loop) {
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    close(fds[1]); /* a read would see EOF: 0, not an error */
    return aloop_stream_new(loop, fds[0], 0);
}
static int use_stream(void *o) { char c; return (int)aloop_stream_read(o, &c, 1); }
static void destroy_stream(void *o) { aloop_stream_close(o); }
static void no_handler(aloop_stream_t *conn, void *arg) { (void)conn; (void)arg; }
static void *make_server(aloop_t *loop) {
    int fd = aloop_tcp_listen("127.0.0.1", "0", 0);
    assert_true(fd >= 0);
    return aloop_serve(loop, fd, no_handler, NULL);
}
static int use_server(void *o) { return aloop_server_wait_closed(o); }
static void destroy_server(void *o) { aloop_server_free(o); }
static void *make_process(aloop_t *loop) {
    char *argv[] = {"true", NULL};
    return aloop_process_spawn(loop, argv, NULL);
}
static int use_process(void *o) { return aloop_process_wait(o, NULL); }
static void destroy_process(void *o) { aloop_process_free(o); }

static const kind_t kinds[] = {
    {"future", make_future, use_future, destroy_future, 1},
    {"queue", make_queue, use_queue, destroy_queue, 0},
    {"lock", make_lock, use_lock, destroy_lock, 0},
    {"event", make_event, use_event, destroy_event, 0},
    {"semaphore", make_sem, use_sem, destroy_sem, 0},
    {"barrier", make_barrier, use_barrier, destroy_barrier, 0},
    {"group", make_group, use_group, destroy_group, 0},
    {"stream", make_stream, use_stream, destroy_stream, 1},
    {"server", make_server, use_server, destroy_server, 0},
    {"process", make_process, use_process, destroy_process, 1},
};

typedef struct use_arg {
    const kind_t *kind;
    void *obj;
} use_arg_t;

static void *use_in_task(void *arg) {
    use_arg_t *u = arg;
    return (void *)(intptr_t)u->kind->use(u->obj);
}

/* u->kind->use(u->obj) from a task of loop: its result. */
static int use_from(aloop_t *loop, use_arg_t *u) {
    void *rc = NULL;
    aloop_task_t *t = aloop_spawn(loop, use_in_task, u);
    assert_non_null(t);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    assert_int_equal(aloop_future_result(t, &rc), 0);
    aloop_release(t);
    return (int)(intptr_t)rc;
}

static void test_misuse_table(void **state) {
    (void)state;
    skip_in_debug_env();
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const kind_t *k = &kinds[i];
        aloop_t *here = vloop_with(0), *other = vloop_with(0);
        use_arg_t u = {k, k->make(other)};
        if (!u.obj) fail_msg("%s: make failed", k->name);
        int rc = use_from(here, &u);
        if (rc != -EINVAL) fail_msg("%s of another loop: %d, not -EINVAL", k->name, rc);
        rc = k->use(u.obj); /* no loop runs: outside a task */
        if (rc != -EPERM) fail_msg("%s outside a task: %d, not -EPERM", k->name, rc);
        if (k->outlives_loop) {
            aloop_free(other);
            other = NULL;
            rc = use_from(here, &u);
            if (rc != -EINVAL) fail_msg("%s of a freed loop: %d, not -EINVAL", k->name, rc);
        }
        k->destroy(u.obj);
        aloop_free(other);
        aloop_free(here);
    }
}

/* ---- debug mode: each rule of the policy aborts with a message */

/* A callback runs on the loop but outside any task. */
static int callback_sleep_rc = 1;
static void sleep_in_callback(void *arg) {
    (void)arg;
    callback_sleep_rc = aloop_sleep(1);
}

static void sleep_outside_a_task(void) {
    aloop_t *loop = vloop_with(ALOOP_DEBUG);
    aloop_call_soon(loop, sleep_in_callback, NULL);
    aloop_run(loop);
}

/* Without a loop there is no debug mode to ask: -EPERM even with
 * ALOOP_DEBUG=1 in the environment. */
static void test_suspending_without_any_loop_is_eperm_always(void **state) {
    (void)state;
    assert_int_equal(aloop_sleep(1), -EPERM);
    assert_int_equal(aloop_yield(), -EPERM);
    aloop_t *loop = vloop_with(0);
    callback_sleep_rc = 1;
    aloop_call_soon(loop, sleep_in_callback, NULL);
    if (!debug_env()) { /* else it would abort (tested below) */
        assert_int_equal(aloop_run(loop), 0);
        assert_int_equal(callback_sleep_rc, -EPERM);
    }
    aloop_free(loop);
}

static void *reenter_quietly(void *arg) {
    (void)arg;
    aloop_run(aloop_current());
    return NULL;
}

static void *free_own_loop(void *arg) {
    (void)arg;
    aloop_free(aloop_current());
    return NULL;
}

static aloop_lock_t *other_lock;
static void *take_other_lock(void *arg) {
    (void)arg;
    aloop_lock_acquire(other_lock);
    return NULL;
}

static void run_debug_task(aloop_task_fn fn) {
    aloop_t *loop = vloop_with(ALOOP_DEBUG);
    aloop_release(aloop_spawn(loop, fn, NULL));
    aloop_run(loop);
}

static void reenter_in_debug_mode(void) { run_debug_task(reenter_quietly); }
static void free_in_debug_mode(void) { run_debug_task(free_own_loop); }
static void other_lock_in_debug_mode(void) {
    other_lock = aloop_lock_new(vloop_with(ALOOP_DEBUG));
    run_debug_task(take_other_lock);
}

static void test_misuse_aborts_in_debug_mode(void **state) {
    (void)state;
    expect_abort(sleep_outside_a_task, "suspending call: called outside a task");
    expect_abort(reenter_in_debug_mode, "aloop_run: called from inside a running loop");
    expect_abort(free_in_debug_mode, "aloop_free: called from inside the running loop");
    expect_abort(other_lock_in_debug_mode, "aloop_lock_acquire: the object belongs to loop");
}

/* Without debug mode a void call that cannot report misuse says so. */
static void free_own_loop_quietly(void) {
    unsetenv("ALOOP_DEBUG");
    aloop_t *loop = vloop_with(0);
    aloop_release(aloop_spawn(loop, free_own_loop, NULL));
    aloop_run(loop);
    aloop_free(loop);
    abort(); /* reached: the message was printed and the loop lived on */
}

static void test_void_misuse_is_reported(void **state) {
    (void)state;
    expect_abort(free_own_loop_quietly, "aloop_free: called from inside the running loop; ignored");
}

/* ---- freeing sync objects with waiters */

typedef struct freed {
    aloop_lock_t *lock;
    aloop_event_t *event;
    aloop_semaphore_t *sem;
    aloop_cond_t *cond;
    int rc[4];
} freed_t;

static void *wait_lock(void *arg) { freed_t *f = arg; f->rc[0] = aloop_lock_acquire(f->lock); return NULL; }
static void *wait_event(void *arg) { freed_t *f = arg; f->rc[1] = aloop_event_wait(f->event); return NULL; }
static void *wait_sem(void *arg) { freed_t *f = arg; f->rc[2] = aloop_semaphore_acquire(f->sem); return NULL; }
static void *wait_cond(void *arg) {
    freed_t *f = arg;
    if (aloop_lock_acquire(aloop_cond_lock(f->cond)) < 0) return NULL;
    f->rc[3] = aloop_cond_wait(f->cond);
    return NULL;
}

static void *free_them(void *arg) {
    freed_t *f = arg;
    aloop_sleep(1); /* everyone is waiting now */
    aloop_lock_free(f->lock);
    aloop_event_free(f->event);
    aloop_semaphore_free(f->sem);
    return NULL;
}

static void test_freeing_sync_objects_with_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    freed_t f = {.lock = aloop_lock_new(loop), .event = aloop_event_new(loop),
                 .sem = aloop_semaphore_new(loop, 0), .rc = {1, 1, 1, 1}};
    assert_int_equal(aloop_lock_try_acquire(f.lock), 0); /* held: waiters queue */
    aloop_task_t *ts[4] = {aloop_spawn(loop, wait_lock, &f), aloop_spawn(loop, wait_event, &f),
                           aloop_spawn(loop, wait_sem, &f), aloop_spawn(loop, free_them, &f)};
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(f.rc[0], -EPIPE);
    assert_int_equal(f.rc[1], -EPIPE);
    assert_int_equal(f.rc[2], -EPIPE);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(aloop_future_result(ts[i], NULL), 0);
        aloop_release(ts[i]);
    }
    aloop_free(loop);
}

typedef struct queue_waiters {
    aloop_queue_t *empty, *full;
    int get_rc, put_rc;
} queue_waiters_t;

static void *wait_get(void *arg) {
    queue_waiters_t *q = arg;
    void *item;
    q->get_rc = aloop_queue_get(q->empty, &item);
    return NULL;
}

static void *wait_put(void *arg) {
    queue_waiters_t *q = arg;
    q->put_rc = aloop_queue_put(q->full, NULL);
    return NULL;
}

static void *free_queues(void *arg) {
    queue_waiters_t *q = arg;
    aloop_sleep(1);
    aloop_queue_free(q->empty);
    aloop_queue_free(q->full);
    return NULL;
}

static void test_freeing_queues_with_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    queue_waiters_t q = {.empty = aloop_queue_new(loop, 0), .full = aloop_queue_new(loop, 1),
                         .get_rc = 1, .put_rc = 1};
    assert_int_equal(aloop_queue_put_nowait(q.full, NULL), 0);
    aloop_task_t *ts[3] = {aloop_spawn(loop, wait_get, &q), aloop_spawn(loop, wait_put, &q),
                           aloop_spawn(loop, free_queues, &q)};
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(q.get_rc, -EPIPE);
    assert_int_equal(q.put_rc, -EPIPE);
    for (int i = 0; i < 3; i++) aloop_release(ts[i]);
    aloop_free(loop);
}

static void *free_cond(void *arg) {
    freed_t *f = arg;
    aloop_sleep(1);
    aloop_cond_free(f->cond);
    return NULL;
}

static void test_freeing_a_condition_with_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0);
    freed_t f = {.cond = aloop_cond_new(loop, NULL), .rc = {1, 1, 1, 1}};
    aloop_task_t *w = aloop_spawn(loop, wait_cond, &f);
    aloop_task_t *k = aloop_spawn(loop, free_cond, &f);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(f.rc[3], -EPIPE);
    aloop_release(w);
    aloop_release(k);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suspending_calls_outside_a_task),
        cmocka_unit_test(test_bad_arguments_do_not_consume_a_cancel),
        cmocka_unit_test(test_negative_and_nan_times),
        cmocka_unit_test(test_completing_a_done_future),
        cmocka_unit_test(test_completing_a_detached_future),
        cmocka_unit_test(test_awaiting_another_loops_future),
        cmocka_unit_test(test_awaiting_itself),
        cmocka_unit_test(test_reentering_the_loop),
        cmocka_unit_test(test_null_and_bad_arguments),
        cmocka_unit_test(test_loop_from_another_thread),
        cmocka_unit_test(test_idle_loop_may_change_threads),
        cmocka_unit_test(test_loop_from_another_thread_aborts_in_debug_mode),
        cmocka_unit_test(test_objects_of_another_loop),
        cmocka_unit_test(test_misuse_table),
        cmocka_unit_test(test_misuse_aborts_in_debug_mode),
        cmocka_unit_test(test_suspending_without_any_loop_is_eperm_always),
        cmocka_unit_test(test_void_misuse_is_reported),
        cmocka_unit_test(test_freeing_sync_objects_with_waiters),
        cmocka_unit_test(test_freeing_a_condition_with_waiters),
        cmocka_unit_test(test_freeing_queues_with_waiters),
        cmocka_unit_test(test_nan_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

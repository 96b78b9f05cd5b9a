/* Tests for src/sched.c and src/loop.c: the run loop, stop, deadlock
 * detection, the virtual clock, fairness, and freeing a busy loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>

#include "internal.h"
#include "aloop_test.h"

static void test_config_validation(void **state) {
    (void)state;
    aloop_config_t bad_clock = {.clock = 7};
    aloop_config_t bad_flags = {.flags = 1u << 9};
    aloop_config_t tiny_stack = {.stack_size = 1024};
    errno = 0;
    assert_null(aloop_new_with(&bad_clock));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_new_with(&bad_flags));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_new_with(&tiny_stack));
    assert_int_equal(errno, EINVAL);
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    assert_null(aloop_current());
    assert_int_equal(aloop_run(loop), 0); /* nothing to do */
    aloop_free(loop);
    aloop_free(NULL);
    assert_int_equal(aloop_run(NULL), -EINVAL);
    assert_true(aloop_time(NULL) == 0.0);
}

static void *return_42(void *arg) {
    (void)arg;
    assert_non_null(aloop_current());
    return (void *)(intptr_t)42;
}

static void test_main_returns_result(void **state) {
    (void)state;
    void *r = NULL;
    assert_int_equal(aloop_main(return_42, NULL, &r), 0);
    assert_int_equal((intptr_t)r, 42);
    assert_int_equal(aloop_main(NULL, NULL, NULL), -EINVAL);
    assert_null(aloop_current());
}

static void *wait_forever(void *arg) {
    return (void *)(intptr_t)aloop_await(arg, NULL);
}

static void test_deadlock_is_reported(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *never = aloop_future_new(loop);
    aloop_task_t *t = aloop_spawn(loop, wait_forever, never);
    assert_int_equal(aloop_run(loop), -EDEADLK);
    assert_int_equal(aloop_run_until_complete(loop, never), -EDEADLK);
    /* the task is still there; completing the future lets it finish */
    aloop_future_set_result(never, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
}

/* Issue 9 section 4: a future completed by call_soon_threadsafe callbacks
 * from other threads. The loop has nothing of its own that could complete
 * it, but other threads exist, so it must sleep until they post instead of
 * reporting -EDEADLK (which it did at once, before the threads had run). */
#define FEED_THREADS 8
#define FEED_CALLS 5000
typedef struct feed {
    aloop_t *loop;
    aloop_future_t *done;
    long calls; /* loop thread only */
    pthread_barrier_t go;
} feed_t;

static void feed_cb(void *arg) {
    feed_t *f = arg;
    if (++f->calls == (long)FEED_THREADS * FEED_CALLS) aloop_future_set_result(f->done, NULL);
}

static void *feeder(void *arg) {
    feed_t *f = arg;
    pthread_barrier_wait(&f->go); /* the loop is (about to be) asleep */
    for (int i = 0; i < FEED_CALLS; i++)
        while (aloop_call_soon_threadsafe(f->loop, feed_cb, f) != 0) sched_yield();
    return NULL;
}

static void test_loop_fed_by_threads_is_not_deadlocked(void **state) {
    (void)state;
    feed_t f = {.loop = aloop_new()};
    assert_non_null(f.loop);
    f.done = aloop_future_new(f.loop);
    pthread_barrier_init(&f.go, NULL, FEED_THREADS + 1);
    pthread_t th[FEED_THREADS];
    for (int i = 0; i < FEED_THREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, feeder, &f), 0);
    pthread_barrier_wait(&f.go);
    assert_int_equal(aloop_run_until_complete(f.loop, f.done), 0);
    assert_int_equal(f.calls, (long)FEED_THREADS * FEED_CALLS);
    for (int i = 0; i < FEED_THREADS; i++) pthread_join(th[i], NULL);
    /* the feeders are gone: the same wait is a deadlock again */
    aloop_future_t *never = aloop_future_new(f.loop);
    assert_int_equal(aloop_run_until_complete(f.loop, never), -EDEADLK);
    aloop_release(never);
    aloop_release(f.done);
    aloop_free(f.loop);
    pthread_barrier_destroy(&f.go);
}

/* A thread that posts nothing keeps the loop asleep; aloop_stop from that
 * thread ends the sleep (run_until_complete: -EAGAIN, f still pending). */
static void *stop_later(void *arg) {
    aloop_t *loop = arg;
    /* stop only once the loop sleeps: until then a stop would be taken by
     * the next run instead (still correct, but not what is tested here) */
    while (!__atomic_load_n(&loop->running, __ATOMIC_ACQUIRE)) sched_yield();
    aloop_stop(loop);
    return NULL;
}

static void test_sleeping_loop_stopped_from_another_thread(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    aloop_future_t *never = aloop_future_new(loop);
    aloop_task_t *t = spawn(loop, wait_forever, never);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
    assert_int_equal(aloop_run_until_complete(loop, never), -EAGAIN);
    pthread_join(th, NULL);
    assert_false(aloop_future_done(t));
    assert_int_equal(aloop_run(loop), -EDEADLK); /* alone again */
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
}

/* The loop's own worker threads cannot post to it on their own: they do
 * not count as "other threads". */
static void *noop_job(void *arg) { return arg; }
static void *job_then_wait(void *arg) {
    aloop_run_in_thread(noop_job, NULL, NULL); /* starts a worker, which stays */
    return (void *)(intptr_t)aloop_await(arg, NULL);
}

static void test_own_workers_do_not_hide_a_deadlock(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    aloop_future_t *never = aloop_future_new(loop);
    aloop_task_t *t = spawn(loop, job_then_wait, never);
    assert_int_equal(aloop_run(loop), -EDEADLK);
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
}

static int steps;
static void *step_then_stop(void *arg) {
    aloop_t *loop = arg;
    for (;;) {
        steps++;
        if (steps % 3 == 0) aloop_stop(loop);
        if (aloop_sleep(1) < 0) break;
    }
    return NULL;
}

static void test_stop_and_resume(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    steps = 0;
    aloop_task_t *t = aloop_spawn(loop, step_then_stop, loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(steps, 3);
    assert_int_equal(aloop_run_until_complete(loop, t), -EAGAIN); /* stopped again, t pending */
    assert_int_equal(steps, 6);
    aloop_free(loop); /* cancels the task: it leaves its loop */
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
}

static void test_stop_before_run_does_one_pass(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    steps = 100; /* first step makes it 101: no stop of its own */
    aloop_task_t *t = aloop_spawn(loop, step_then_stop, loop);
    aloop_stop(loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(steps, 101); /* ran its first step, then the loop returned */
    aloop_release(t);
    aloop_free(loop);
}

static void *nested_run(void *arg) {
    aloop_t *other = arg;
    assert_int_equal(aloop_run(aloop_current()), -EPERM);
    assert_int_equal(aloop_run(other), -EPERM);
    aloop_free(aloop_current()); /* refused: prints a message, does nothing */
    return NULL;
}

static void test_no_reentrant_run(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *loop = vloop(), *other = vloop();
    aloop_task_t *t = aloop_spawn(loop, nested_run, other);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    aloop_free(other);
}

/* ---- freeing a busy loop */

static int cleanups, cleanup_sleep_rc;
static void *sleep_then_cleanup(void *arg) {
    (void)arg;
    int rc = aloop_sleep(1000);
    assert_int_equal(rc, -ECANCELED);
    cleanup_sleep_rc = aloop_sleep(1); /* cleanup cannot block */
    cleanups++;
    return NULL;
}

static void stop_cb(void *arg) { aloop_stop(arg); }

static void test_free_busy_loop_cancels_and_finishes(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    cleanups = 0;
    aloop_task_t *held = aloop_spawn(loop, sleep_then_cleanup, NULL);
    for (int i = 0; i < 9; i++) aloop_release(aloop_spawn(loop, sleep_then_cleanup, NULL));
    aloop_call_later(loop, 1, stop_cb, loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(cleanups, 0); /* all ten are suspended in their sleep */
    aloop_free(loop);
    assert_int_equal(cleanups, 10);
    assert_int_equal(cleanup_sleep_rc, -ECANCELED);
    assert_true(aloop_future_cancelled(held));
    aloop_release(held);
}

/* ---- fairness */

static volatile int sleeper_woke;
static void *short_sleeper(void *arg) {
    (void)arg;
    aloop_sleep(0.002);
    sleeper_woke = 1;
    return NULL;
}

static void *spinner(void *arg) {
    (void)arg;
    for (long i = 0; i < 100000000 && !sleeper_woke; i++) aloop_yield();
    return (void *)(intptr_t)sleeper_woke;
}

/* A task that yields in a loop must not starve timers (real clock here:
 * under the virtual clock time only moves when nothing is ready). */
static void test_yielding_task_does_not_starve_timers(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    sleeper_woke = 0;
    aloop_task_t *s = aloop_spawn(loop, short_sleeper, NULL);
    aloop_task_t *y = aloop_spawn(loop, spinner, NULL);
    aloop_run(loop);
    void *r;
    aloop_future_result(y, &r);
    assert_int_equal((intptr_t)r, 1);
    aloop_release(s);
    aloop_release(y);
    aloop_free(loop);
}

static char trace[64];
static void append_char(char c) {
    size_t n = strlen(trace);
    if (n + 1 < sizeof trace) {
        trace[n] = c;
        trace[n + 1] = 0;
    }
}
static void *yield_trace(void *arg) {
    for (int i = 0; i < 2; i++) {
        append_char(*(const char *)(arg));
        aloop_yield();
    }
    return NULL;
}
static void cb_trace(void *arg) { append_char(*(const char *)(arg)); }

/* Tasks and callbacks share one FIFO: a yield goes behind everything ready. */
static void test_tasks_and_callbacks_share_fifo(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_task_t *a = aloop_spawn(loop, yield_trace, "a");
    aloop_call_soon(loop, cb_trace, "1");
    aloop_task_t *b = aloop_spawn(loop, yield_trace, "b");
    aloop_call_soon(loop, cb_trace, "2");
    aloop_run(loop);
    assert_string_equal(trace, "a1b2ab");
    aloop_release(a);
    aloop_release(b);
    aloop_free(loop);
}

static void test_virtual_clock_jumps_exactly(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    assert_true(aloop_time(loop) == 0.0);
    aloop_call_later(loop, 3600, cb_trace, "x");
    double t0 = aloop__monotonic();
    aloop_run(loop);
    assert_true(fabs(aloop_time(loop) - 3600) < 1e-9);
    assert_true(aloop__monotonic() - t0 < 5.0); /* an hour of loop time, no real wait */
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_main_returns_result),
        cmocka_unit_test(test_deadlock_is_reported),
        cmocka_unit_test(test_loop_fed_by_threads_is_not_deadlocked),
        cmocka_unit_test(test_sleeping_loop_stopped_from_another_thread),
        cmocka_unit_test(test_own_workers_do_not_hide_a_deadlock),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_stop_before_run_does_one_pass),
        cmocka_unit_test(test_no_reentrant_run),
        cmocka_unit_test(test_free_busy_loop_cancels_and_finishes),
        cmocka_unit_test(test_yielding_task_does_not_starve_timers),
        cmocka_unit_test(test_tasks_and_callbacks_share_fifo),
        cmocka_unit_test(test_virtual_clock_jumps_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/sched.c and src/loop.c: the run loop, stop, deadlock
 * detection, the virtual clock, fairness, and freeing a busy loop. */
#include "aloop_test.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

/* The cooperative budget of the default build (guide §8). */
#define COOP_BUDGET 128u

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
    if (!deadlocks_detectable()) skip();
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

/* A future completed by call_soon_threadsafe callbacks from other
 * threads. The loop has nothing of its own that could complete it, but
 * other threads exist, so it must sleep until they post instead of
 * reporting -EDEADLK before the threads have run. */
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
    int detectable = deadlocks_detectable();
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
    if (detectable) assert_int_equal(aloop_run_until_complete(f.loop, never), -EDEADLK);
    aloop_release(never);
    aloop_release(f.done);
    aloop_free(f.loop);
    pthread_barrier_destroy(&f.go);
}

/* A thread that posts nothing keeps the loop asleep; aloop_stop from that
 * thread ends the sleep (run_until_complete: -EAGAIN, f still pending). */
typedef struct stop_ctx {
    aloop_t *loop;
    aloop_future_t *never;
    int running; /* set by the loop's task: the run has begun */
} stop_ctx_t;

static void *flag_then_wait(void *arg) {
    stop_ctx_t *c = arg;
    __atomic_store_n(&c->running, 1, __ATOMIC_RELEASE);
    return (void *)(intptr_t)aloop_await(c->never, NULL);
}

static void *stop_later(void *arg) {
    stop_ctx_t *c = arg;
    /* stop only once the loop runs: until then a stop would be taken by
     * the next run instead (still correct, but not what is tested here) */
    while (!__atomic_load_n(&c->running, __ATOMIC_ACQUIRE)) sched_yield();
    aloop_stop(c->loop);
    return NULL;
}

static void test_sleeping_loop_stopped_from_another_thread(void **state) {
    (void)state;
    int detectable = deadlocks_detectable();
    aloop_t *loop = aloop_new();
    aloop_future_t *never = aloop_future_new(loop);
    stop_ctx_t c = {.loop = loop, .never = never};
    aloop_task_t *t = spawn(loop, flag_then_wait, &c);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, &c), 0);
    assert_int_equal(aloop_run_until_complete(loop, never), -EAGAIN);
    pthread_join(th, NULL);
    assert_false(aloop_future_done(t));
    if (detectable) assert_int_equal(aloop_run(loop), -EDEADLK); /* alone again */
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
}

/* aloop_stop before the run, tasks that only another thread could wake,
 * and such a thread exists: the run does its one pass and returns instead
 * of sleeping. */
static void *park(void *arg) {
    pthread_barrier_wait(arg); /* exists until released */
    return NULL;
}

static void test_stop_before_run_does_not_sleep(void **state) {
    (void)state;
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, park, &b), 0);
    aloop_t *loop = aloop_new();
    aloop_future_t *never = aloop_future_new(loop);
    aloop_task_t *t = spawn(loop, wait_forever, never);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* t waits */
    aloop_stop(loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_false(aloop_future_done(t));
    pthread_barrier_wait(&b);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&b);
    aloop_future_set_result(never, NULL);
    assert_int_equal(aloop_run(loop), 0);
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
    if (!deadlocks_detectable()) skip();
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
    double t0 = wall_now();
    aloop_run(loop);
    assert_true(fabs(aloop_time(loop) - 3600) < 1e-9);
    assert_true(wall_now() - t0 < 5.0); /* an hour of loop time, no real wait */
    aloop_free(loop);
}

/* ---- the cooperative budget: calls that never suspend still yield */

#include <fcntl.h>
#include <unistd.h>

/* What a hog needs for its never-suspending calls. */
typedef struct hog_env {
    int zero, null;          /* /dev/zero (always readable), /dev/null */
    aloop_queue_t *q;        /* never empty */
    aloop_lock_t *lock;
    aloop_event_t *ev;       /* set */
    aloop_semaphore_t *sem;
    aloop_future_t *done;    /* completed */
    aloop_stream_t *stream;  /* over /dev/zero */
} hog_env_t;

typedef int (*hog_op_fn)(hog_env_t *e);

static int op_read(hog_env_t *e) {
    char buf[64];
    ssize_t n = aloop_read(e->zero, buf, sizeof buf);
    return n < 0 ? (int)n : n == (ssize_t)sizeof buf ? 0 : -EIO;
}
static int op_write(hog_env_t *e) {
    static const char buf[64];
    ssize_t n = aloop_write_all(e->null, buf, sizeof buf);
    return n < 0 ? (int)n : n == (ssize_t)sizeof buf ? 0 : -EIO;
}
static int op_queue(hog_env_t *e) {
    void *item;
    int rc = aloop_queue_get(e->q, &item);
    return rc < 0 ? rc : aloop_queue_put(e->q, item);
}
static int op_lock(hog_env_t *e) {
    int rc = aloop_lock_acquire(e->lock);
    return rc < 0 ? rc : aloop_lock_release(e->lock);
}
static int op_event(hog_env_t *e) { return aloop_event_wait(e->ev); }
static int op_semaphore(hog_env_t *e) {
    int rc = aloop_semaphore_acquire(e->sem);
    return rc < 0 ? rc : aloop_semaphore_release(e->sem);
}
static int op_await(hog_env_t *e) { return aloop_await(e->done, NULL); }
static int op_stream(hog_env_t *e) {
    char buf[64];
    ssize_t n = aloop_stream_readexactly(e->stream, buf, sizeof buf);
    return n < 0 ? (int)n : n == (ssize_t)sizeof buf ? 0 : -EIO;
}

#define HOG_MAX 20000

typedef struct hog {
    hog_op_fn op;
    hog_env_t env;
    volatile int stop; /* set by the other task */
    long ops;          /* calls made before it saw stop */
    int rc;            /* the call that ended the loop */
} hog_t;

static void hog_env_open(aloop_t *loop, hog_env_t *e) {
    e->zero = open("/dev/zero", O_RDONLY);
    e->null = open("/dev/null", O_WRONLY);
    assert_true(e->zero >= 0 && e->null >= 0);
    assert_non_null(e->q = aloop_queue_new(loop, 0));
    assert_int_equal(aloop_queue_put_nowait(e->q, e), 0);
    assert_non_null(e->lock = aloop_lock_new(loop));
    assert_non_null(e->ev = aloop_event_new(loop));
    aloop_event_set(e->ev);
    assert_non_null(e->sem = aloop_semaphore_new(loop, 1));
    assert_non_null(e->done = aloop_future_new(loop));
    aloop_future_set_result(e->done, NULL);
    int zero2 = open("/dev/zero", O_RDONLY);
    assert_true(zero2 >= 0);
    assert_non_null(e->stream = aloop_stream_new(loop, zero2, 16));
}

static void hog_env_close(hog_env_t *e) {
    close(e->zero);
    close(e->null);
    aloop_queue_free(e->q);
    aloop_lock_free(e->lock);
    aloop_event_free(e->ev);
    aloop_semaphore_free(e->sem);
    aloop_release(e->done);
    aloop_stream_close(e->stream);
}

static void *hog_task(void *arg) {
    hog_t *h = arg;
    for (h->ops = 0; !h->stop && h->ops < HOG_MAX; h->ops++) {
        h->rc = h->op(&h->env);
        if (h->rc < 0) break;
    }
    return NULL;
}

static void set_stop(void *arg) { ((hog_t *)arg)->stop = 1; }

/* Runs while the hog is paused by its budget: arms a timer due now, which
 * the loop must fire before it resumes the hog. */
static void *stopper_task(void *arg) {
    assert_non_null(aloop_call_later(aloop_current(), 0, set_stop, arg));
    return NULL;
}

static const struct {
    const char *name;
    hog_op_fn op;
} hog_ops[] = {
    {"aloop_read", op_read},           {"aloop_write_all", op_write},
    {"aloop_queue_get/put", op_queue}, {"aloop_lock_acquire", op_lock},
    {"aloop_event_wait", op_event},    {"aloop_semaphore_acquire", op_semaphore},
    {"aloop_await", op_await},         {"aloop_stream_readexactly", op_stream},
};

/* Every suspending call that completes without suspending spends one unit
 * of the task's budget; once spent, the call yields a full loop step, so a
 * due timer (and the task it wakes) gets to run after at most a budget's
 * worth of calls. Counted, not timed: on the virtual clock no time passes
 * while the hog is busy, so the timer is due at once. Without the budget the
 * hog would make all HOG_MAX calls. */
static void test_budget_every_call_yields(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof hog_ops / sizeof hog_ops[0]; i++) {
        aloop_t *loop = vloop();
        hog_t h = {.op = hog_ops[i].op};
        hog_env_open(loop, &h.env);
        aloop_task_t *ts[2] = {spawn(loop, hog_task, &h), spawn(loop, stopper_task, &h)};
        run_and_release(loop, ts, 2);
        print_message("%s: %ld calls before the timer ran\n", hog_ops[i].name, h.ops);
        assert_int_equal(h.rc, 0);
        assert_true(h.stop);
        assert_true(h.ops <= (long)COOP_BUDGET && h.ops < HOG_MAX);
        hog_env_close(&h.env);
        aloop_free(loop);
    }
}

/* A reader of an fd that is always ready, under aloop_wait_for(5 ms) on
 * the real clock (the virtual one does not move while the reader is busy):
 * the deadline is delivered at a budget yield (the read returns -ECANCELED
 * and reads nothing), and wait_for reports -ETIMEDOUT. The reader never
 * stops by itself, so however fast the machine, only the deadline can end
 * it (without the budget, wait_for would never return). */
static void *endless_hog(void *arg) {
    hog_t *h = arg;
    for (h->ops = 0;; h->ops++) {
        h->rc = h->op(&h->env);
        if (h->rc < 0) break;
    }
    return NULL;
}

static void *waited_reader(void *arg) {
    hog_t *h = arg;
    aloop_task_t *r = aloop_spawn(aloop_current(), endless_hog, h);
    assert_non_null(r);
    int rc = aloop_wait_for(r, 0.005, NULL);
    aloop_release(r);
    return (void *)(intptr_t)rc;
}

static void test_budget_delivers_wait_for_deadline(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    hog_t h = {.op = op_read};
    hog_env_open(loop, &h.env);
    aloop_task_t *t = spawn(loop, waited_reader, &h);
    assert_int_equal(aloop_run(loop), 0);
    void *r;
    assert_int_equal(aloop_future_result(t, &r), 0);
    assert_int_equal((intptr_t)r, -ETIMEDOUT);
    assert_int_equal(h.rc, -ECANCELED);
    assert_true(h.ops > 0);
    assert_true(aloop_time(loop) >= 0.005);
    aloop_release(t);
    hog_env_close(&h.env);
    aloop_free(loop);
}

/* A cancel of a task that is paused by its budget is delivered when it
 * resumes: the call returns -ECANCELED and does nothing. */
static void *cancel_hog(void *arg) {
    hog_t *h = arg;
    aloop_task_t *r = aloop_spawn(aloop_current(), hog_task, h);
    assert_non_null(r);
    aloop_yield(); /* the hog runs until its budget is spent */
    assert_true(h->ops > 0 && h->ops < HOG_MAX);
    long before = h->ops;
    aloop_cancel(r);
    assert_int_equal(aloop_await(r, NULL), -ECANCELED);
    assert_int_equal(h->ops, before); /* no call completed after the cancel */
    aloop_release(r);
    return NULL;
}

static void test_budget_delivers_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    hog_t h = {.op = op_queue};
    hog_env_open(loop, &h.env);
    aloop_task_t *t = spawn(loop, cancel_hog, &h);
    run_and_release(loop, &t, 1);
    assert_int_equal(h.rc, -ECANCELED);
    hog_env_close(&h.env);
    aloop_free(loop);
}

/* The budget refills when the task really suspends: a task that sleeps
 * now and then never pays a budget yield. Each round spends three quarters
 * of the budget, so two rounds without a refill would pay one. */
static void *sleepy_counter(void *arg) {
    uint64_t *yields = arg;
    aloop_metrics_t m;
    aloop_event_t *ev = aloop_event_new(aloop_current());
    aloop_event_set(ev);
    for (int round = 0; round < 10; round++) {
        for (unsigned i = 0; i < COOP_BUDGET * 3 / 4; i++) aloop_event_wait(ev);
        aloop_sleep(0.01);
    }
    aloop_event_free(ev);
    assert_int_equal(aloop_metrics(aloop_current(), &m), 0);
    *yields = m.budget_yields;
    return NULL;
}

static void test_budget_refills_on_suspend(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    uint64_t yields = 99;
    aloop_task_t *t = spawn(loop, sleepy_counter, &yields);
    run_and_release(loop, &t, 1);
    assert_int_equal(yields, 0);
    aloop_free(loop);
}

/* A busy socket writer under aloop_wait_for(60) on the virtual clock: its
 * calls never suspend (the socket buffer takes every byte), so it pays
 * budget yields, and a task paused by its budget is ready: the clock must
 * not jump to the deadline meanwhile (else the first budget pause moves
 * the clock to 60 s and the writer is cancelled after ~128 bytes). */
#define BUSY_WRITES 2000
static void *busy_writer(void *arg) {
    int fd = *(int *)arg;
    for (int i = 0; i < BUSY_WRITES; i++)
        if (aloop_write_all(fd, "x", 1) != 1) return (void *)(intptr_t)i;
    return (void *)(intptr_t)BUSY_WRITES;
}

static void *wait_for_writer(void *arg) {
    aloop_task_t *w = aloop_spawn(aloop_current(), busy_writer, arg);
    assert_non_null(w);
    void *r = NULL;
    int rc = aloop_wait_for(w, 60, &r);
    aloop_release(w);
    assert_int_equal(rc, 0);
    assert_int_equal((intptr_t)r, BUSY_WRITES);
    return NULL;
}

static void test_virtual_clock_waits_for_budget_paused_task(void **state) {
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, wait_for_writer, &sv[0]);
    run_and_release(loop, &t, 1);
    assert_true(aloop_time(loop) == 0.0); /* nothing ever waited: no time passed */
    aloop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_main_returns_result),
        cmocka_unit_test(test_deadlock_is_reported),
        cmocka_unit_test(test_loop_fed_by_threads_is_not_deadlocked),
        cmocka_unit_test(test_sleeping_loop_stopped_from_another_thread),
        cmocka_unit_test(test_own_workers_do_not_hide_a_deadlock),
        cmocka_unit_test(test_stop_before_run_does_not_sleep),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_stop_before_run_does_one_pass),
        cmocka_unit_test(test_no_reentrant_run),
        cmocka_unit_test(test_free_busy_loop_cancels_and_finishes),
        cmocka_unit_test(test_yielding_task_does_not_starve_timers),
        cmocka_unit_test(test_tasks_and_callbacks_share_fifo),
        cmocka_unit_test(test_virtual_clock_jumps_exactly),
        cmocka_unit_test(test_budget_every_call_yields),
        cmocka_unit_test(test_budget_delivers_wait_for_deadline),
        cmocka_unit_test(test_budget_delivers_cancel),
        cmocka_unit_test(test_budget_refills_on_suspend),
        cmocka_unit_test(test_virtual_clock_waits_for_budget_paused_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

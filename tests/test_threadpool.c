/*
 * test_threadpool.c - the worker pool, call_soon_threadsafe and the wake-up
 * fd (src/threadpool.c). Cross-thread hand-offs are made deterministic with
 * pthread primitives, not with timing.
 */
#include "aloop_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* The pool's jobs now (the metrics' pool_* gauges), from the loop's thread. */
static void expect_pool(aloop_t *loop, size_t queued, size_t running) {
    aloop_metrics_t m;
    assert_int_equal(aloop_metrics(loop, &m), 0);
    assert_int_equal(m.pool_queued, queued);
    assert_int_equal(m.pool_running, running);
}

static void *square(void *arg) {
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

static void *use_pool(void *arg) {
    (void)arg;
    void *res = NULL;
    int rc = aloop_run_in_thread(square, (void *)(intptr_t)12, &res);
    if (rc) return aloop_fail(rc);
    assert_int_equal((intptr_t)res, 144);
    assert_int_equal(aloop_run_in_thread(square, (void *)(intptr_t)3, NULL), 0);
    assert_int_equal(aloop_run_in_thread(NULL, NULL, NULL), -EINVAL);
    return res;
}

static void test_run_in_thread(void **state) {
    (void)state;
    void *res;
    assert_int_equal(aloop_main(use_pool, NULL, &res), 0);
    assert_int_equal((intptr_t)res, 144);
    assert_int_equal(aloop_run_in_thread(square, NULL, NULL), -EPERM);
}

/* The loop runs other tasks while a job runs: the job blocks until a task
 * on the loop lets it go, which is only possible if the loop is not blocked. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int job_started;
    int job_done;
} gate_t;

static gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void gate_reset(void) {
    gate.open = gate.job_started = gate.job_done = 0;
}

static void *gated_job(void *arg) {
    pthread_mutex_lock(&gate.mu);
    gate.job_started = 1;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open) pthread_cond_wait(&gate.cv, &gate.mu);
    gate.job_done = 1;
    pthread_mutex_unlock(&gate.mu);
    return arg;
}

static int job_started(void) {
    pthread_mutex_lock(&gate.mu);
    int s = gate.job_started;
    pthread_mutex_unlock(&gate.mu);
    return s;
}

static void gate_open(void) {
    pthread_mutex_lock(&gate.mu);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void *submitter(void *arg) {
    void *res = NULL;
    int rc = aloop_run_in_thread(gated_job, arg, &res);
    assert_int_equal(rc, 0);
    return res;
}

static void *opener(void *arg) {
    int *steps = arg;
    /* keep running (yielding) until the job is in its thread, then open */
    while (!job_started()) {
        (*steps)++;
        aloop_sleep(0.001);
    }
    (*steps)++;
    gate_open();
    return NULL;
}

static void test_loop_runs_while_job_runs(void **state) {
    (void)state;
    gate_reset();
    aloop_t *loop = aloop_new();
    int steps = 0;
    aloop_task_t *t = aloop_spawn(loop, submitter, (void *)(intptr_t)77);
    aloop_release(aloop_spawn(loop, opener, &steps));
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    void *res;
    assert_int_equal(aloop_future_result(t, &res), 0);
    assert_int_equal((intptr_t)res, 77);
    assert_true(steps >= 1);
    aloop_release(t);
    aloop_free(loop);
}

/* Cancelled while the job runs: -ECANCELED at once, the job finishes later
 * on its own and its record is freed by the loop (ASan: no leak, no
 * use-after-free of the task's stack). */
static void *cancel_submitter(void *arg) {
    int *rc = arg;
    *rc = aloop_run_in_thread(gated_job, NULL, NULL);
    return NULL;
}

static void test_cancel_returns_at_once(void **state) {
    (void)state;
    gate_reset();
    aloop_t *loop = aloop_new();
    int rc = 1;
    aloop_task_t *t = aloop_spawn(loop, cancel_submitter, &rc);
    while (!job_started()) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    expect_pool(loop, 0, 1);
    aloop_cancel(t);
    assert_int_equal(aloop_run_until_complete(loop, t), -ECANCELED);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(gate.job_done, 0); /* the thread is still inside the job */
    /* the abandoned job is still out, and keeps the loop alive until it
     * comes back: aloop_run returns only after the job is done */
    expect_pool(loop, 0, 1);
    gate_open();
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(gate.job_done, 1);
    expect_pool(loop, 0, 0);
    aloop_release(t);
    aloop_free(loop);
}

/* aloop_free with a job still running: the task is cancelled, the thread
 * is joined after the job finishes. */
static void *open_later(void *arg) {
    (void)arg;
    usleep(20000);
    gate_open();
    return NULL;
}

static void test_free_joins_running_job(void **state) {
    (void)state;
    gate_reset();
    aloop_t *loop = aloop_new();
    int rc = 1;
    aloop_task_t *t = aloop_spawn(loop, cancel_submitter, &rc);
    while (!job_started()) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    pthread_t th;
    pthread_create(&th, NULL, open_later, NULL);
    aloop_free(loop);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(gate.job_done, 1); /* joined: the job had finished */
    pthread_join(th, NULL);
    aloop_release(t);
}

/* Many jobs on a pool of 2: all results come back, in any order. */
#define NJOBS 64

/* Threads in this process (Linux /proc; elsewhere 0: the check is moot). */
static int thread_count(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}
static void *many_one(void *arg) {
    void *res = NULL;
    assert_int_equal(aloop_run_in_thread(square, arg, &res), 0);
    return res;
}

static void test_many_jobs_small_pool(void **state) {
    (void)state;
    int threads_before = thread_count(); /* sanitizers may run threads of their own */
    aloop_t *loop = aloop_new();
    assert_int_equal(aloop_set_thread_pool_size(loop, 0), -EINVAL);
    assert_int_equal(aloop_set_thread_pool_size(NULL, 2), -EINVAL);
    assert_int_equal(aloop_set_thread_pool_size(loop, 2), 0);
    aloop_task_t *ts[NJOBS];
    for (intptr_t i = 0; i < NJOBS; i++) ts[i] = aloop_spawn(loop, many_one, (void *)i);
    assert_int_equal(aloop_run(loop), 0);
    for (intptr_t i = 0; i < NJOBS; i++) {
        void *res;
        assert_int_equal(aloop_future_result(ts[i], &res), 0);
        assert_int_equal((intptr_t)res, i * i);
        aloop_release(ts[i]);
    }
    assert_true(thread_count() - threads_before <= 2 + ALOOP_TEST_TSAN); /* a pool of 2 */
    assert_int_equal(aloop_set_thread_pool_size(loop, 4), -EBUSY); /* started */
    aloop_free(loop);
}

/* ---- call_soon_threadsafe --------------------------------------------- */

typedef struct ts_ctx {
    aloop_t *loop;
    aloop_future_t *fut;
    atomic_int calls;
    pthread_t self;
    int on_loop_thread;
} ts_ctx_t;

static void ts_cb(void *arg) {
    ts_ctx_t *c = arg;
    c->on_loop_thread = pthread_equal(pthread_self(), c->self);
    if (atomic_fetch_add(&c->calls, 1) + 1 == 100) aloop_future_set_result(c->fut, (void *)c);
}

static void *ts_thread(void *arg) {
    ts_ctx_t *c = arg;
    for (int i = 0; i < 50; i++) assert_int_equal(aloop_call_soon_threadsafe(c->loop, ts_cb, c), 0);
    return NULL;
}

/* Two threads post 50 callbacks each while the loop waits on a future:
 * the wake-up fd gets the loop out of its (blocking) poll. */
static void test_call_soon_threadsafe(void **state) {
    (void)state;
    ts_ctx_t c = {0};
    c.loop = aloop_new();
    c.fut = aloop_future_new(c.loop);
    c.self = pthread_self();
    atomic_init(&c.calls, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, ts_thread, &c);
    /* run until the future is done; no timer keeps the loop awake, so it
     * blocks in epoll/poll until the threads write the wake-up fd */
    int rc;
    for (;;) {
        rc = aloop_run_until_complete(c.loop, c.fut);
        if (rc != -EDEADLK) break;
        usleep(1000); /* threads not started yet: nothing pending */
    }
    assert_int_equal(rc, 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&c.calls), 100);
    assert_int_equal(c.on_loop_thread, 1);
    /* from the loop's own thread too, before the loop runs */
    assert_int_equal(aloop_call_soon_threadsafe(c.loop, ts_cb, &c), 0);
    assert_int_equal(atomic_load(&c.calls), 100); /* posted, not run inline */
    assert_int_equal(aloop_run(c.loop), 0);       /* the post keeps it running */
    assert_int_equal(atomic_load(&c.calls), 101);
    assert_int_equal(aloop_call_soon_threadsafe(NULL, ts_cb, &c), -EINVAL);
    assert_int_equal(aloop_call_soon_threadsafe(c.loop, NULL, &c), -EINVAL);
    /* accepted, the loop never ran again: it runs when aloop_free begins */
    assert_int_equal(aloop_call_soon_threadsafe(c.loop, ts_cb, &c), 0);
    aloop_release(c.fut);
    aloop_free(c.loop);
    assert_int_equal(atomic_load(&c.calls), 102);
}

/* -ENOMEM from the job allocation comes back cleanly. */
static void *oom_task(void *arg) {
    (void)arg;
    test_fail_alloc(1, 1);
    int rc = aloop_run_in_thread(square, NULL, NULL);
    test_fail_alloc(0, 0);
    assert_int_equal(rc, -ENOMEM);
    return NULL;
}

static void test_run_in_thread_enomem(void **state) {
    (void)state;
    assert_int_equal(aloop_main(oom_task, NULL, NULL), 0);
}


static void cancel_cb_ts(void *t) { aloop_cancel(t); }

/* ---- jobs that outlive their caller (aloop_run_in_thread_with) ---------- */

#define NQ 4
static atomic_int runs[NQ], discards[NQ];
static int caller_rc[NQ];
static pthread_t discard_thread;
static int ids[NQ] = {0, 1, 2, 3};

/* Job i: counts its run; job 0 holds the only worker until the gate opens.
 * Its result owns memory, so a lost result would leak (ASan). */
static void *owning_job(void *arg) {
    int id = *(int *)arg;
    atomic_fetch_add(&runs[id], 1);
    if (id == 0) gated_job(NULL);
    int *r = malloc(sizeof *r);
    *r = id;
    return r;
}

/* Called with NULL for a job that never ran. */
static void discard_result(void *result, void *arg) {
    int id = *(int *)arg;
    assert_true(result == NULL || *(int *)result == id);
    assert_true((result != NULL) == (atomic_load(&runs[id]) == 1));
    free(result);
    atomic_fetch_add(&discards[id], 1);
    discard_thread = pthread_self();
}

static void *owning_caller(void *arg) {
    int id = *(int *)arg;
    void *res = (void *)1;
    caller_rc[id] = aloop_run_in_thread_with(owning_job, arg, discard_result, &res);
    if (caller_rc[id] == 0) {
        assert_int_equal(*(int *)res, id);
        free(res);
    } else {
        assert_null(res);
    }
    return NULL;
}

static void reset_jobs(void) {
    gate_reset();
    for (int i = 0; i < NQ; i++) {
        atomic_store(&runs[i], 0);
        atomic_store(&discards[i], 0);
        caller_rc[i] = 1;
    }
}

/* Pool of 1, four jobs: job 0 runs (gated), 1-3 wait in the queue. */
static aloop_t *start_four(aloop_task_t **ts) {
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    assert_int_equal(aloop_set_thread_pool_size(loop, 1), 0);
    for (int i = 0; i < NQ; i++) ts[i] = aloop_spawn(loop, owning_caller, &ids[i]);
    while (!job_started()) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    expect_pool(loop, NQ - 1, 1);
    return loop;
}

static void test_cancelled_before_start_never_runs(void **state) {
    (void)state;
    reset_jobs();
    aloop_task_t *ts[NQ];
    aloop_t *loop = start_four(ts);
    for (int i = 0; i < NQ; i++) aloop_cancel(ts[i]);
    for (int i = 0; i < NQ; i++) {
        assert_int_equal(aloop_run_until_complete(loop, ts[i]), -ECANCELED);
        assert_int_equal(caller_rc[i], -ECANCELED);
    }
    /* only the running job is still out; the queued ones are gone, and
     * their args went to discard (with no result) */
    expect_pool(loop, 0, 1);
    assert_int_equal(atomic_load(&discards[0]), 0);
    for (int i = 1; i < NQ; i++) assert_int_equal(atomic_load(&discards[i]), 1);
    gate_open();
    assert_int_equal(aloop_run(loop), 0); /* until job 0 is back */
    assert_int_equal(atomic_load(&runs[0]), 1);
    assert_int_equal(atomic_load(&discards[0]), 1); /* its result, exactly once */
    assert_true(pthread_equal(discard_thread, pthread_self()));
    for (int i = 1; i < NQ; i++) {
        assert_int_equal(atomic_load(&runs[i]), 0);
        assert_int_equal(atomic_load(&discards[i]), 1);
    }
    for (int i = 0; i < NQ; i++) aloop_release(ts[i]);
    aloop_free(loop);
    for (int i = 1; i < NQ; i++) assert_int_equal(atomic_load(&runs[i]), 0);
}

/* aloop_free with one job running and three queued: the queued ones never
 * run, the free waits for the running one only and hands its result to
 * discard on this (the freeing) thread before it returns. */
static void test_free_waits_only_for_running_jobs(void **state) {
    (void)state;
    reset_jobs();
    aloop_task_t *ts[NQ];
    aloop_t *loop = start_four(ts);
    pthread_t th;
    pthread_create(&th, NULL, open_later, NULL);
    discard_thread = th; /* anything but us */
    aloop_free(loop);
    assert_int_equal(atomic_load(&runs[0]), 1);
    assert_int_equal(atomic_load(&discards[0]), 1);
    assert_true(pthread_equal(discard_thread, pthread_self()));
    for (int i = 0; i < NQ; i++) assert_int_equal(caller_rc[i], -ECANCELED);
    for (int i = 1; i < NQ; i++) {
        assert_int_equal(atomic_load(&runs[i]), 0);
        assert_int_equal(atomic_load(&discards[i]), 1); /* discard(NULL, arg) */
    }
    pthread_join(th, NULL);
    for (int i = 0; i < NQ; i++) aloop_release(ts[i]);
}

/* The job finished and woke its caller, which is cancelled before it runs
 * again: the result goes to discard (once), the caller sees -ECANCELED.
 * Pool of 1: job B runs only once job A is on the done list, and posts the
 * cancel; meanwhile a task holds the loop's thread until B has posted, so
 * A's wake-up and the cancel are collected in the same drain. */
static aloop_t *late_loop;
static aloop_task_t *late_task;
static gate_t posted = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *job_b_posts_cancel(void *arg) {
    (void)arg;
    assert_int_equal(aloop_call_soon_threadsafe(late_loop, cancel_cb_ts, late_task), 0);
    pthread_mutex_lock(&posted.mu);
    posted.open = 1;
    pthread_cond_broadcast(&posted.cv);
    pthread_mutex_unlock(&posted.mu);
    return NULL;
}

static void *late_caller(void *arg) {
    int id = *(int *)arg;
    void *res = NULL;
    caller_rc[id] = aloop_run_in_thread_with(owning_job, arg, discard_result, &res);
    assert_null(res);
    return NULL;
}

static void *job_b_caller(void *arg) {
    (void)arg;
    assert_int_equal(aloop_run_in_thread(job_b_posts_cancel, NULL, NULL), 0);
    return NULL;
}

static void *hold_loop_until_posted(void *arg) {
    (void)arg;
    pthread_mutex_lock(&posted.mu);
    while (!posted.open) pthread_cond_wait(&posted.cv, &posted.mu);
    pthread_mutex_unlock(&posted.mu);
    return NULL;
}

static void test_done_then_cancelled_goes_to_discard(void **state) {
    (void)state;
    reset_jobs();
    posted.open = 0;
    late_loop = aloop_new();
    assert_int_equal(aloop_set_thread_pool_size(late_loop, 1), 0);
    late_task = aloop_spawn(late_loop, late_caller, &ids[1]);
    aloop_task_t *b = aloop_spawn(late_loop, job_b_caller, NULL);
    aloop_task_t *h = aloop_spawn(late_loop, hold_loop_until_posted, NULL);
    assert_int_equal(aloop_run_until_complete(late_loop, late_task), -ECANCELED);
    assert_int_equal(caller_rc[1], -ECANCELED);
    assert_int_equal(atomic_load(&runs[1]), 1);
    assert_int_equal(atomic_load(&discards[1]), 1);
    assert_int_equal(aloop_run(late_loop), 0);
    aloop_release(late_task);
    aloop_release(b);
    aloop_release(h);
    aloop_free(late_loop);
    assert_int_equal(atomic_load(&discards[1]), 1);
}

/* A result the caller receives is never discarded; NULL discard is fine;
 * a pending cancel means the job is never even queued. */
static void *with_caller(void *arg) {
    (void)arg;
    void *res = NULL;
    assert_int_equal(aloop_run_in_thread_with(owning_job, &ids[2], discard_result, &res), 0);
    assert_int_equal(*(int *)res, 2);
    free(res);
    assert_int_equal(aloop_run_in_thread_with(square, (void *)(intptr_t)5, NULL, &res), 0);
    assert_int_equal((intptr_t)res, 25);
    assert_int_equal(aloop_run_in_thread_with(NULL, NULL, discard_result, &res), -EINVAL);
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_run_in_thread_with(owning_job, &ids[3], discard_result, &res), -ECANCELED);
    assert_null(res);
    assert_int_equal(atomic_load(&discards[3]), 1); /* pending cancel: arg is discard's too */
    aloop_task_uncancel(aloop_current_task());
    return NULL;
}

static void test_received_result_not_discarded(void **state) {
    (void)state;
    reset_jobs();
    assert_int_equal(aloop_main(with_caller, NULL, NULL), 0);
    assert_int_equal(atomic_load(&runs[2]), 1);
    assert_int_equal(atomic_load(&discards[2]), 0);
    assert_int_equal(atomic_load(&runs[3]), 0);
    assert_int_equal(atomic_load(&discards[3]), 1);
    assert_int_equal(aloop_run_in_thread_with(square, NULL, NULL, NULL), -EPERM);
}

/* A thread keeps posting while the loop is freed: every call either is
 * accepted and its callback runs (it frees the argument), or returns
 * -EPIPE and the argument is still the caller's (it frees it); ASan sees a
 * vanished callback as a leak. After aloop_free, -EPIPE without touching
 * the freed loop. */
typedef struct poster {
    aloop_t *loop;
    atomic_int started;
    atomic_long accepted, ran;
} poster_t;

static void posted_cb(void *arg) {
    poster_t *p = *(poster_t **)arg;
    atomic_fetch_add(&p->ran, 1);
    free(arg);
}

static void *poster_main(void *arg) {
    poster_t *p = arg;
    for (;;) {
        poster_t **box = malloc(sizeof *box);
        *box = p;
        int rc = aloop_call_soon_threadsafe(p->loop, posted_cb, box);
        if (rc == 0) {
            if (atomic_fetch_add(&p->accepted, 1) == 0) atomic_store(&p->started, 1);
            continue;
        }
        free(box);
        assert_int_equal(rc, -EPIPE);
        return NULL;
    }
}

static void test_call_soon_threadsafe_racing_free(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) {
        poster_t p = {.loop = aloop_new()};
        assert_non_null(p.loop);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, poster_main, &p), 0);
        while (!atomic_load(&p.started)) sched_yield();
        aloop_run_once(p.loop, 0); /* some run on the loop, the rest at aloop_free */
        aloop_free(p.loop);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(atomic_load(&p.accepted), atomic_load(&p.ran));
        /* already freed: still -EPIPE, the callback never runs */
        int dummy;
        assert_int_equal(aloop_call_soon_threadsafe(p.loop, posted_cb, &dummy), -EPIPE);
    }
}

/* A job stuck in a blocking system call (a read nobody will answer until
 * the loop is gone) does not hold aloop_free: it is left to its worker,
 * which hands its result to discard on its own thread when it ends. */
typedef struct stuck {
    int in[2];     /* the job blocks reading in[0] */
    int out[2];    /* its discard reports on out[1] */
    pthread_t discard_thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} stuck_t;

static void *stuck_job(void *arg) {
    stuck_t *s = arg;
    pthread_mutex_lock(&s->mu);
    s->started = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    char c;
    ssize_t n = read(s->in[0], &c, 1);
    return (void *)(intptr_t)n;
}

static void stuck_discard(void *result, void *arg) {
    stuck_t *s = arg;
    assert_int_equal((intptr_t)result, 1);
    pthread_mutex_lock(&s->mu);
    s->discard_thread = pthread_self();
    pthread_mutex_unlock(&s->mu);
    char c = 'd';
    assert_int_equal(write(s->out[1], &c, 1), 1);
}

static void *stuck_caller(void *arg) {
    return (void *)(intptr_t)aloop_run_in_thread_with(stuck_job, arg, stuck_discard, NULL);
}

static void test_free_leaves_a_stuck_job_behind(void **state) {
    (void)state;
    stuck_t s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(pipe(s.in), 0);
    assert_int_equal(pipe(s.out), 0);
    aloop_t *loop = aloop_new();
    aloop_task_t *t = aloop_spawn(loop, stuck_caller, &s);
    assert_int_equal(aloop_run_once(loop, 0), 1);
    pthread_mutex_lock(&s.mu);
    while (!s.started) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    aloop_free(loop); /* returns although the job still blocks */
    void *r;
    assert_int_equal(aloop_future_result(t, &r), -ECANCELED);
    aloop_release(t);
    char c = 'x';
    assert_int_equal(write(s.in[1], &c, 1), 1); /* now the job ends */
    assert_int_equal(read(s.out[0], &c, 1), 1);  /* and its discard ran */
    assert_int_equal(c, 'd');
    pthread_mutex_lock(&s.mu);
    assert_false(pthread_equal(s.discard_thread, pthread_self()));
    pthread_mutex_unlock(&s.mu);
    for (int i = 0; i < 2; i++) {
        close(s.in[i]);
        close(s.out[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_in_thread),
        cmocka_unit_test(test_loop_runs_while_job_runs),
        cmocka_unit_test(test_cancel_returns_at_once),
        cmocka_unit_test(test_free_joins_running_job),
        cmocka_unit_test(test_many_jobs_small_pool),
        cmocka_unit_test(test_call_soon_threadsafe),
        cmocka_unit_test(test_run_in_thread_enomem),
        cmocka_unit_test(test_cancelled_before_start_never_runs),
        cmocka_unit_test(test_free_waits_only_for_running_jobs),
        cmocka_unit_test(test_done_then_cancelled_goes_to_discard),
        cmocka_unit_test(test_received_result_not_discarded),
        cmocka_unit_test(test_call_soon_threadsafe_racing_free),
        cmocka_unit_test(test_free_leaves_a_stuck_job_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

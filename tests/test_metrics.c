/*
 * test_metrics.c - aloop_metrics and aloop_set_hooks (src/loop/metrics.c):
 * the counters move as the loop works, the gauges show what is there now,
 * and the hooks come in a consistent order.
 */
#include "aloop_test.h"

#include <errno.h>
#include <unistd.h>

static aloop_metrics_t metrics_of(aloop_t *loop) {
    aloop_metrics_t m;
    memset(&m, 0xff, sizeof m); /* every member must be written */
    assert_int_equal(aloop_metrics(loop, &m), 0);
    return m;
}

/* ---- counters */

static void *sleep_then_yield(void *arg) {
    (void)arg;
    aloop_sleep(0.5);
    aloop_yield();
    return NULL;
}

static void test_counters_move_as_the_loop_works(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_metrics_t m = metrics_of(loop);
    assert_int_equal(m.tasks_spawned, 0);
    assert_int_equal(m.switches, 0);
    assert_int_equal(m.tasks_live, 0);
    assert_int_equal(m.timers_fired, 0);
    aloop_task_t *t[3];
    for (int i = 0; i < 3; i++) t[i] = aloop_spawn(loop, sleep_then_yield, NULL);
    m = metrics_of(loop);
    assert_int_equal(m.tasks_spawned, 3);
    assert_int_equal(m.tasks_live, 3);
    assert_int_equal(m.ready, 3);
    assert_int_equal(aloop_run(loop), 0);
    m = metrics_of(loop);
    assert_int_equal(m.tasks_spawned, 3);
    assert_int_equal(m.tasks_done, 3);
    assert_int_equal(m.tasks_live, 0);
    assert_int_equal(m.ready, 0);
    assert_int_equal(m.timers, 0);
    /* each task: its first step, after the sleep, after the yield */
    assert_int_equal(m.switches, 9);
    assert_int_equal(m.timers_fired, 3);
    assert_true(m.lag == 0 && m.lag_max == 0); /* virtual clock: never late */
    assert_int_equal(m.budget_yields, 0);
    for (int i = 0; i < 3; i++) aloop_release(t[i]);
    aloop_free(loop);
}

static void *spend_budget(void *arg) {
    aloop_event_t *ev = arg;
    for (int i = 0; i < 300; i++) aloop_event_wait(ev); /* set: never suspends */
    return NULL;
}

static void test_budget_yields_are_counted(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_event_t *ev = aloop_event_new(loop);
    aloop_event_set(ev);
    aloop_task_t *t = aloop_spawn(loop, spend_budget, ev);
    assert_int_equal(aloop_run(loop), 0);
    aloop_metrics_t m = metrics_of(loop);
    assert_int_equal(m.budget_yields, 2); /* 300 calls, a budget of 128 */
    assert_int_equal(m.switches, 3);
    aloop_release(t);
    aloop_event_free(ev);
    aloop_free(loop);
}

/* ---- gauges, seen from a task while others wait */

typedef struct gauge_ctx {
    int pipe_fd[2];
    aloop_queue_t *q;
    aloop_metrics_t seen;
} gauge_ctx_t;

static void *read_pipe(void *arg) {
    gauge_ctx_t *c = arg;
    char b;
    return (void *)(intptr_t)aloop_read(c->pipe_fd[0], &b, 1);
}

static void *get_queue(void *arg) {
    gauge_ctx_t *c = arg;
    void *item;
    return (void *)(intptr_t)aloop_queue_get(c->q, &item);
}

static void *long_nap(void *arg) {
    (void)arg;
    return (void *)(intptr_t)aloop_sleep(100);
}

static void *observer(void *arg) {
    gauge_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_task_t *kids[3] = {aloop_spawn(loop, read_pipe, c), aloop_spawn(loop, get_queue, c),
                             aloop_spawn(loop, long_nap, c)};
    aloop_yield(); /* they run and wait */
    assert_int_equal(aloop_metrics(loop, &c->seen), 0);
    char b = 'x';
    assert_int_equal(write(c->pipe_fd[1], &b, 1), 1);
    aloop_queue_put_nowait(c->q, c);
    aloop_cancel(kids[2]);
    for (int i = 0; i < 3; i++) {
        aloop_await(kids[i], NULL);
        aloop_release(kids[i]);
    }
    return NULL;
}

static void test_gauges_show_what_waits_now(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    gauge_ctx_t c;
    assert_int_equal(pipe(c.pipe_fd), 0);
    c.q = aloop_queue_new(loop, 0);
    aloop_task_t *t = aloop_spawn(loop, observer, &c);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.seen.tasks_live, 4);
    assert_int_equal(c.seen.ready, 0); /* the observer itself is running */
    assert_int_equal(c.seen.fds, 1);   /* the pipe's reader */
    assert_int_equal(c.seen.timers, 1); /* the nap */
    aloop_metrics_t m = metrics_of(loop);
    assert_int_equal(m.fds, 0);
    assert_int_equal(m.timers, 0);
    assert_true(m.events >= 1); /* the pipe became readable */
    assert_true(m.iterations >= 1);
    aloop_release(t);
    aloop_queue_free(c.q);
    close(c.pipe_fd[0]);
    close(c.pipe_fd[1]);
    aloop_free(loop);
}

/* A poll that blocked is timed; a timer on the real clock fires late by
 * some amount >= 0. */
static void *real_sleep(void *arg) {
    (void)arg;
    return (void *)(intptr_t)aloop_sleep(0.02);
}

static void test_poll_time_and_lag_on_the_real_clock(void **state) {
    (void)state;
    aloop_t *loop = aloop_new();
    aloop_task_t *t = aloop_spawn(loop, real_sleep, NULL);
    double t0 = aloop_time(loop);
    assert_int_equal(aloop_run(loop), 0);
    double took = aloop_time(loop) - t0;
    aloop_metrics_t m = metrics_of(loop);
    assert_true(m.poll_time > 0);
    assert_true(m.poll_time <= took);
    assert_int_equal(m.timers_fired, 1);
    assert_true(m.lag >= 0);
    assert_true(m.lag_max == m.lag);
    aloop_release(t);
    aloop_free(loop);
}

/* Pool jobs: queued and running, seen while one runs. */
typedef struct pool_ctx {
    int started[2], release[2];
    aloop_metrics_t seen;
} pool_ctx_t;

static void *blocking_job(void *arg) {
    pool_ctx_t *c = arg;
    char b = 1;
    if (write(c->started[1], &b, 1) != 1) return NULL;
    if (read(c->release[0], &b, 1) != 1) return NULL;
    return c;
}

static void *run_job(void *arg) {
    void *result = NULL;
    aloop_run_in_thread(blocking_job, arg, &result);
    return result;
}

static void *watch_pool(void *arg) {
    pool_ctx_t *c = arg;
    char b;
    assert_int_equal(aloop_read(c->started[0], &b, 1), 1); /* the job runs */
    assert_int_equal(aloop_metrics(aloop_current(), &c->seen), 0);
    assert_int_equal(write(c->release[1], &b, 1), 1);
    return NULL;
}

static void test_pool_jobs_are_counted(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    pool_ctx_t c;
    assert_int_equal(pipe(c.started), 0);
    assert_int_equal(pipe(c.release), 0);
    aloop_task_t *a = aloop_spawn(loop, run_job, &c);
    aloop_task_t *b = aloop_spawn(loop, watch_pool, &c);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.seen.pool_running, 1);
    assert_int_equal(c.seen.pool_queued, 0);
    aloop_metrics_t m = metrics_of(loop);
    assert_int_equal(m.pool_running, 0);
    assert_ptr_equal(aloop_future_result(a, NULL) == 0 ? &c : NULL, &c);
    aloop_release(a);
    aloop_release(b);
    for (int i = 0; i < 2; i++) {
        close(c.started[i]);
        close(c.release[i]);
    }
    aloop_free(loop);
}

static void test_bad_arguments(void **state) {
    (void)state;
    aloop_metrics_t m;
    aloop_t *loop = vloop();
    assert_int_equal(aloop_metrics(NULL, &m), -EINVAL);
    assert_int_equal(aloop_metrics(loop, NULL), -EINVAL);
    assert_int_equal(aloop_set_hooks(NULL, NULL), -EINVAL);
    assert_int_equal(aloop_set_hooks(loop, NULL), 0);
    aloop_free(loop);
}

/* ---- hooks */

enum { EV_SPAWN, EV_RESUME, EV_SUSPEND, EV_DONE };
#define MAX_EVENTS 4096

typedef struct trace {
    int kind[MAX_EVENTS];
    aloop_task_t *task[MAX_EVENTS];
    int n;
    int done_seen_done; /* done hooks that saw aloop_future_done */
} trace_t;

static void note(trace_t *tr, int kind, aloop_task_t *t) {
    assert_true(tr->n < MAX_EVENTS);
    tr->kind[tr->n] = kind;
    tr->task[tr->n] = t;
    tr->n++;
}
static void on_spawn(aloop_task_t *t, void *arg) { note(arg, EV_SPAWN, t); }
static void on_resume(aloop_task_t *t, void *arg) {
    assert_ptr_equal(aloop_current_task(), t);
    note(arg, EV_RESUME, t);
}
static void on_suspend(aloop_task_t *t, void *arg) {
    assert_ptr_equal(aloop_current_task(), t);
    note(arg, EV_SUSPEND, t);
}
static void on_done(aloop_task_t *t, void *arg) {
    trace_t *tr = arg;
    tr->done_seen_done += aloop_future_done(t);
    note(tr, EV_DONE, t);
}

/* Every task: spawn, (resume suspend)*, done; and one task at most
 * between a resume and its suspend. Returns the number of resumes. */
static int check_order(const trace_t *tr, aloop_task_t **tasks, int ntasks) {
    aloop_task_t *in = NULL;
    int resumes = 0;
    for (int i = 0; i < tr->n; i++) {
        switch (tr->kind[i]) {
        case EV_RESUME:
            assert_null(in);
            in = tr->task[i];
            resumes++;
            break;
        case EV_SUSPEND:
            assert_ptr_equal(in, tr->task[i]);
            in = NULL;
            break;
        default:
            break;
        }
    }
    assert_null(in);
    for (int k = 0; k < ntasks; k++) {
        int phase = 0; /* 0 before spawn, 1 spawned/suspended, 2 running, 3 done */
        for (int i = 0; i < tr->n; i++) {
            if (tr->task[i] != tasks[k]) continue;
            int e = tr->kind[i];
            if (e == EV_SPAWN) assert_int_equal(phase, 0), phase = 1;
            else if (e == EV_RESUME) assert_int_equal(phase, 1), phase = 2;
            else if (e == EV_SUSPEND) assert_int_equal(phase, 2), phase = 1;
            else assert_int_equal(phase, 1), phase = 3;
        }
        assert_int_equal(phase, 3);
    }
    return resumes;
}

static void *hooked_worker(void *arg) {
    aloop_queue_t *q = arg;
    void *item;
    aloop_sleep(0.1);
    aloop_yield();
    aloop_queue_get(q, &item);
    return item;
}

static void *hooked_feeder(void *arg) {
    aloop_queue_t *q = arg;
    for (int i = 0; i < 3; i++) {
        aloop_sleep(0.2);
        aloop_queue_put(q, q);
    }
    return NULL;
}

static void test_hooks_come_in_order(void **state) {
    (void)state;
    static trace_t tr;
    memset(&tr, 0, sizeof tr);
    aloop_t *loop = vloop();
    aloop_hooks_t h = {on_spawn, on_resume, on_suspend, on_done, &tr};
    assert_int_equal(aloop_set_hooks(loop, &h), 0);
    aloop_queue_t *q = aloop_queue_new(loop, 1);
    aloop_task_t *tasks[5];
    for (int i = 0; i < 3; i++) tasks[i] = aloop_spawn(loop, hooked_worker, q);
    tasks[3] = aloop_spawn(loop, hooked_feeder, q);
    tasks[4] = aloop_spawn(loop, hooked_worker, q);
    aloop_cancel(tasks[4]); /* before it ever ran: spawn and done only */
    assert_int_equal(aloop_run(loop), 0);
    int resumes = check_order(&tr, tasks, 5);
    aloop_metrics_t m = metrics_of(loop);
    assert_int_equal((uint64_t)resumes, m.switches);
    assert_int_equal(tr.done_seen_done, 5);
    for (int i = 0; i < tr.n; i++)
        if (tr.task[i] == tasks[4]) assert_true(tr.kind[i] == EV_SPAWN || tr.kind[i] == EV_DONE);
    /* removed: nothing more is reported */
    assert_int_equal(aloop_set_hooks(loop, NULL), 0);
    int before = tr.n;
    aloop_task_t *late = aloop_spawn(loop, sleep_then_yield, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(tr.n, before);
    aloop_release(late);
    for (int i = 0; i < 5; i++) aloop_release(tasks[i]);
    aloop_queue_free(q);
    aloop_free(loop);
}

/* Only some hooks, and tasks that aloop_free cancels still report. */
static void test_partial_hooks_and_free_of_a_busy_loop(void **state) {
    (void)state;
    static trace_t tr;
    memset(&tr, 0, sizeof tr);
    aloop_t *loop = vloop();
    aloop_hooks_t h = {.spawn = on_spawn, .done = on_done, .arg = &tr};
    assert_int_equal(aloop_set_hooks(loop, &h), 0);
    aloop_task_t *t = aloop_spawn(loop, long_nap, NULL);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* it naps */
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(tr.n, 2);
    assert_int_equal(tr.kind[0], EV_SPAWN);
    assert_int_equal(tr.kind[1], EV_DONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_move_as_the_loop_works),
        cmocka_unit_test(test_budget_yields_are_counted),
        cmocka_unit_test(test_gauges_show_what_waits_now),
        cmocka_unit_test(test_poll_time_and_lag_on_the_real_clock),
        cmocka_unit_test(test_pool_jobs_are_counted),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_hooks_come_in_order),
        cmocka_unit_test(test_partial_hooks_and_free_of_a_busy_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

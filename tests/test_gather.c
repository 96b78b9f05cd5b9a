/* Tests for src/gather.c: gather, wait, wait_for, shield (virtual clock). */
#include "aloop_test.h"


#include <math.h>

/* ---- children: "sleep then return / fail", described by a job */
typedef struct job {
    double delay;
    int error;         /* 0: return value; < 0: fail with it */
    double cleanup;    /* seconds of cleanup after being cancelled */
    int uncancel;      /* swallow the cancel and return value */
    void *value;
    int cancelled_seen;
    double finished_at;
} job_t;

static void *child(void *arg) {
    job_t *j = arg;
    int rc = aloop_sleep(j->delay);
    j->finished_at = now();
    if (rc == -ECANCELED) {
        j->cancelled_seen = 1;
        if (j->cleanup > 0) assert_int_equal(aloop_sleep(j->cleanup), 0);
        j->finished_at = now();
        if (j->uncancel) {
            aloop_task_uncancel(aloop_current_task());
            return j->value;
        }
        return NULL;
    }
    if (j->error) return aloop_fail(j->error);
    return j->value;
}

static aloop_task_t *spawn_job(job_t *j) {
    aloop_task_t *t = aloop_spawn(aloop_current(), child, j);
    assert_non_null(t);
    return t;
}

static void release_all(aloop_future_t **fs, size_t n) {
    for (size_t i = 0; i < n; i++) aloop_release(fs[i]);
}

/* Runs body as a task on a fresh virtual loop to the end. */
static void run_in_task(aloop_task_fn body) {
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, body, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
}

static void set_result_cb(void *f) { aloop_future_set_result(f, (void *)"late"); }
/* ------------------------------------------------------------------------ */
/* gather                                                                   */
/* ------------------------------------------------------------------------ */

static void *gather_in_order(void *arg) {
    (void)arg;
    job_t a = {.delay = 3, .value = "a"}, b = {.delay = 1, .value = "b"};
    aloop_future_t *f = aloop_future_new(aloop_current());
    aloop_call_later(aloop_current(), 2, set_result_cb, f);
    aloop_future_t *fs[] = {spawn_job(&a), f, spawn_job(&b)};
    void *results[3];
    int errors[3];
    assert_int_equal(aloop_gather(fs, 3, results, errors, 0), 0);
    assert_true(now() == 3.0);
    assert_string_equal(results[0], "a");
    assert_string_equal(results[1], "late");
    assert_string_equal(results[2], "b");
    for (int i = 0; i < 3; i++) assert_int_equal(errors[i], 0);
    release_all(fs, 3);
    return NULL;
}

static void test_gather_results_in_input_order(void **state) {
    (void)state;
    run_in_task(gather_in_order);
}

static void *gather_first_error(void *arg) {
    (void)arg;
    job_t a = {.delay = 3, .value = "a"}, b = {.delay = 1, .error = -EIO}, c = {.delay = 2};
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b), spawn_job(&c)};
    int errors[3];
    assert_int_equal(aloop_gather(fs, 3, NULL, errors, 0), -EIO);
    assert_true(now() == 1.0); /* at once */
    assert_int_equal(errors[1], -EIO);
    assert_int_equal(errors[0], -EAGAIN); /* still running */
    /* The others keep running: they are not cancelled. */
    assert_int_equal(aloop_await(fs[0], NULL), 0);
    assert_int_equal(aloop_await(fs[2], NULL), 0);
    assert_false(a.cancelled_seen || c.cancelled_seen);
    assert_true(now() == 3.0);
    release_all(fs, 3);
    return NULL;
}

static void test_gather_first_error_returns_at_once(void **state) {
    (void)state;
    run_in_task(gather_first_error);
}

static void *gather_return_errors(void *arg) {
    (void)arg;
    job_t a = {.delay = 3, .value = "a"}, b = {.delay = 1, .error = -EIO}, c = {.delay = 5};
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b), spawn_job(&c)};
    aloop_call_later(aloop_current(), 2, cancel_cb, fs[2]);
    void *results[3] = {0, (void *)1, (void *)1};
    int errors[3];
    assert_int_equal(aloop_gather(fs, 3, results, errors, ALOOP_RETURN_ERRORS), 0);
    assert_true(now() == 3.0);
    assert_string_equal(results[0], "a");
    assert_null(results[1]);
    assert_null(results[2]);
    assert_int_equal(errors[0], 0);
    assert_int_equal(errors[1], -EIO);
    assert_int_equal(errors[2], -ECANCELED);
    release_all(fs, 3);
    return NULL;
}

static void test_gather_return_errors_fills_every_slot(void **state) {
    (void)state;
    run_in_task(gather_return_errors);
}

static void *gather_cancelled_child(void *arg) {
    (void)arg;
    job_t a = {.delay = 3}, b = {.delay = 5};
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b)};
    aloop_call_later(aloop_current(), 1, cancel_cb, fs[1]);
    assert_int_equal(aloop_gather(fs, 2, NULL, NULL, 0), -ECANCELED);
    assert_true(now() == 1.0);
    assert_false(aloop_future_done(fs[0]));
    assert_int_equal(aloop_await(fs[0], NULL), 0);
    release_all(fs, 2);
    return NULL;
}

static void test_gather_cancelled_child_without_flag(void **state) {
    (void)state;
    run_in_task(gather_cancelled_child);
}

/* The gathering task is cancelled: every pending child is cancelled and
 * gather returns only once they have all finished (b cleans up for 2 s). */
static job_t ga, gb;
static aloop_future_t *gather_children[3];
static void *gatherer(void *arg) {
    (void)arg;
    aloop_future_t *f = aloop_future_new(aloop_current());
    gather_children[0] = spawn_job(&ga);
    gather_children[1] = spawn_job(&gb);
    gather_children[2] = f;
    int rc = aloop_gather(gather_children, 3, NULL, NULL, 0);
    assert_int_equal(rc, -ECANCELED);
    assert_true(now() == 3.0);
    for (int i = 0; i < 3; i++) assert_true(aloop_future_done(gather_children[i]));
    assert_true(aloop_future_cancelled(f));
    release_all(gather_children, 3);
    return NULL;
}

static void test_gather_cancel_cancels_every_child(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    ga = (job_t){.delay = 10};
    gb = (job_t){.delay = 10, .cleanup = 2};
    aloop_task_t *t = aloop_spawn(loop, gatherer, NULL);
    aloop_call_later(loop, 1, cancel_cb, t);
    assert_int_equal(aloop_run_until_complete(loop, t), -ECANCELED);
    assert_true(ga.cancelled_seen && gb.cancelled_seen);
    assert_true(ga.finished_at == 1.0 && gb.finished_at == 3.0);
    aloop_release(t);
    aloop_free(loop);
}

static void *gather_edge_cases(void *arg) {
    aloop_future_t *foreign_future = arg;
    aloop_future_t *fs[1] = {NULL};
    assert_int_equal(aloop_gather(NULL, 0, NULL, NULL, 0), 0); /* n = 0: at once */
    assert_int_equal(aloop_gather(NULL, 1, NULL, NULL, 0), -EINVAL);
    assert_int_equal(aloop_gather(fs, 1, NULL, NULL, 0), -EINVAL);
    fs[0] = foreign_future;
    assert_int_equal(aloop_gather(fs, 1, NULL, NULL, 0), -EINVAL);
    assert_int_equal(aloop_wait(fs, 1, ALOOP_ALL_COMPLETED, -1, NULL), -EINVAL);
    assert_int_equal(aloop_wait_for(foreign_future, 1, NULL), -EINVAL);
    fs[0] = aloop_current_task();
    assert_int_equal(aloop_gather(fs, 1, NULL, NULL, 0), -EDEADLK);
    assert_int_equal(aloop_gather(fs, 0, NULL, NULL, 42), -EINVAL);
    /* Already-done inputs: no suspension; the first error in input order. */
    aloop_future_t *d[3] = {aloop_future_new(aloop_current()), aloop_future_new(aloop_current()),
                            aloop_future_new(aloop_current())};
    aloop_future_set_result(d[0], "x");
    aloop_future_set_error(d[1], -EIO);
    aloop_future_set_error(d[2], -ENOENT);
    void *results[3];
    assert_int_equal(aloop_gather(d, 3, results, NULL, 0), -EIO);
    assert_string_equal(results[0], "x");
    /* A pending cancel wins. */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_gather(d, 3, NULL, NULL, ALOOP_RETURN_ERRORS), -ECANCELED);
    aloop_task_uncancel(aloop_current_task());
    release_all(d, 3);
    return NULL;
}

static void test_gather_edge_cases(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *other = vloop();
    aloop_future_t *ff = aloop_future_new(other);
    aloop_future_t *fs[1] = {ff};
    /* Outside a task. */
    assert_int_equal(aloop_gather(fs, 1, NULL, NULL, 0), -EPERM);
    assert_int_equal(aloop_wait(fs, 1, ALOOP_ALL_COMPLETED, -1, NULL), -EPERM);
    assert_int_equal(aloop_wait_for(ff, 1, NULL), -EPERM);
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, gather_edge_cases, ff);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    aloop_release(ff);
    aloop_free(other);
}

/* More children than fit on the stack, two of them the same future. */
static void *gather_many(void *arg) {
    (void)arg;
    enum { N = 40 };
    job_t jobs[N];
    aloop_future_t *fs[N + 1];
    for (int i = 0; i < N; i++) {
        jobs[i] = (job_t){.delay = (double)(N - i), .value = (void *)(uintptr_t)(i + 1)};
        fs[i] = spawn_job(&jobs[i]);
    }
    fs[N] = aloop_retain(fs[0]);
    void *results[N + 1];
    assert_int_equal(aloop_gather(fs, N + 1, results, NULL, 0), 0);
    for (int i = 0; i < N; i++) assert_true((uintptr_t)results[i] == (uintptr_t)(i + 1));
    assert_true((uintptr_t)results[N] == 1);
    assert_true(now() == N);
    release_all(fs, N + 1);
    return NULL;
}

static void test_gather_many_children(void **state) {
    (void)state;
    run_in_task(gather_many);
}

/* ------------------------------------------------------------------------ */
/* wait                                                                     */
/* ------------------------------------------------------------------------ */

static void *wait_modes(void *arg) {
    (void)arg;
    job_t a = {.delay = 1}, b = {.delay = 2, .error = -EIO}, c = {.delay = 4};
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b), spawn_job(&c)};
    size_t ndone = 99;
    assert_int_equal(aloop_wait(fs, 3, ALOOP_FIRST_COMPLETED, -1, &ndone), 0);
    assert_true(now() == 1.0);
    assert_int_equal(ndone, 1);
    /* Already satisfied: returns at once. */
    assert_int_equal(aloop_wait(fs, 3, ALOOP_FIRST_COMPLETED, -1, &ndone), 0);
    assert_true(now() == 1.0);
    assert_int_equal(aloop_wait(fs, 3, ALOOP_FIRST_ERROR, -1, &ndone), 0);
    assert_true(now() == 2.0);
    assert_int_equal(ndone, 2);
    assert_int_equal(aloop_future_result(fs[1], NULL), -EIO);
    assert_int_equal(aloop_wait(fs, 3, ALOOP_ALL_COMPLETED, -1, &ndone), 0);
    assert_true(now() == 4.0);
    assert_int_equal(ndone, 3);
    release_all(fs, 3);
    return NULL;
}

static void test_wait_modes(void **state) {
    (void)state;
    run_in_task(wait_modes);
}

static void *wait_first_error_without_errors(void *arg) {
    (void)arg;
    job_t a = {.delay = 1}, b = {.delay = 2};
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b)};
    aloop_call_later(aloop_current(), 0.5, cancel_cb, fs[1]);
    size_t ndone;
    /* A cancelled input is not an error: FIRST_ERROR waits for all. */
    assert_int_equal(aloop_wait(fs, 2, ALOOP_FIRST_ERROR, -1, &ndone), 0);
    assert_true(now() == 1.0);
    assert_int_equal(ndone, 2);
    release_all(fs, 2);
    return NULL;
}

static void test_wait_first_error_waits_for_all_without_errors(void **state) {
    (void)state;
    run_in_task(wait_first_error_without_errors);
}

static void *wait_timeout(void *arg) {
    (void)arg;
    job_t a = {.delay = 1}, b = {.delay = 5};
    aloop_future_t *f = aloop_future_new(aloop_current());
    aloop_future_t *fs[] = {spawn_job(&a), spawn_job(&b), f};
    size_t ndone = 99;
    assert_int_equal(aloop_wait(fs, 3, ALOOP_ALL_COMPLETED, 2, &ndone), -ETIMEDOUT);
    assert_true(now() == 2.0);
    assert_int_equal(ndone, 1);
    assert_false(aloop_future_done(fs[1]) || aloop_future_done(f)); /* nothing cancelled */
    assert_int_equal(aloop_wait(fs, 3, ALOOP_ALL_COMPLETED, 0, &ndone), -ETIMEDOUT);
    assert_true(now() == 2.0);
    /* The futures complete after the waits returned: no slot is left on them. */
    aloop_future_set_result(f, NULL);
    assert_int_equal(aloop_await(fs[1], NULL), 0);
    assert_int_equal(aloop_wait(fs, 3, ALOOP_ALL_COMPLETED, 0, &ndone), 0);
    assert_int_equal(ndone, 3);
    release_all(fs, 3);
    return NULL;
}

static void test_wait_timeout_cancels_nothing(void **state) {
    (void)state;
    run_in_task(wait_timeout);
}

static aloop_future_t *waited;
static void *waiter_task(void *arg) {
    (void)arg;
    size_t ndone = 99;
    assert_int_equal(aloop_wait(&waited, 1, ALOOP_ALL_COMPLETED, 10, &ndone), -ECANCELED);
    assert_int_equal(ndone, 0);
    return NULL;
}

static void test_wait_cancelled_caller_cancels_nothing(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    waited = aloop_future_new(loop);
    aloop_task_t *t = aloop_spawn(loop, waiter_task, NULL);
    aloop_call_later(loop, 1, cancel_cb, t);
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_cancelled(t));
    assert_false(aloop_future_done(waited));
    assert_true(aloop_time(loop) == 1.0); /* the timeout timer was removed */
    assert_int_equal(aloop_future_set_result(waited, NULL), 0);
    aloop_release(waited);
    aloop_release(t);
    aloop_free(loop);
}

static void *wait_bad_args(void *arg) {
    (void)arg;
    aloop_future_t *f = aloop_future_new(aloop_current());
    size_t ndone = 7;
    assert_int_equal(aloop_wait(&f, 0, ALOOP_ALL_COMPLETED, -1, &ndone), -EINVAL);
    assert_int_equal(ndone, 0);
    assert_int_equal(aloop_wait(&f, 1, 42, -1, NULL), -EINVAL);
    assert_int_equal(aloop_wait(&f, 1, ALOOP_ALL_COMPLETED, NAN, NULL), -EINVAL);
    assert_int_equal(aloop_wait(NULL, 1, ALOOP_ALL_COMPLETED, -1, NULL), -EINVAL);
    aloop_release(f);
    return NULL;
}

static void test_wait_bad_arguments(void **state) {
    (void)state;
    run_in_task(wait_bad_args);
}

/* ------------------------------------------------------------------------ */
/* wait_for                                                                 */
/* ------------------------------------------------------------------------ */

static void *wait_for_in_time(void *arg) {
    (void)arg;
    job_t a = {.delay = 1, .value = "a"}, b = {.delay = 1, .error = -EIO};
    aloop_task_t *ta = spawn_job(&a), *tb = spawn_job(&b);
    void *r = NULL;
    assert_int_equal(aloop_wait_for(ta, 5, &r), 0);
    assert_string_equal(r, "a");
    assert_true(now() == 1.0);
    assert_int_equal(aloop_wait_for(tb, 5, &r), -EIO);
    assert_null(r);
    /* timeout 0 on a done future: its result. */
    assert_int_equal(aloop_wait_for(ta, 0, &r), 0);
    assert_string_equal(r, "a");
    /* no limit */
    job_t c = {.delay = 100, .value = "c"};
    aloop_task_t *tc = spawn_job(&c);
    assert_int_equal(aloop_wait_for(tc, -1, &r), 0);
    assert_string_equal(r, "c");
    assert_true(now() == 101.0);
    assert_int_equal(aloop_wait_for(tc, NAN, &r), -EINVAL);
    assert_int_equal(aloop_wait_for(NULL, 1, &r), -EINVAL);
    aloop_release(ta);
    aloop_release(tb);
    aloop_release(tc);
    return NULL;
}

static void test_wait_for_result_in_time(void **state) {
    (void)state;
    run_in_task(wait_for_in_time);
}

static void *wait_for_timeout(void *arg) {
    (void)arg;
    /* The inner task needs 2 s to clean up after its cancel: wait_for
     * returns only once it has finished. */
    job_t a = {.delay = 10, .cleanup = 2};
    aloop_task_t *ta = spawn_job(&a);
    void *r = (void *)1;
    assert_int_equal(aloop_wait_for(ta, 1, &r), -ETIMEDOUT);
    assert_null(r);
    assert_true(now() == 3.0);
    assert_true(aloop_future_done(ta) && aloop_future_cancelled(ta));
    assert_true(a.cancelled_seen);
    /* timeout 0 on a pending plain future: cancelled, -ETIMEDOUT. */
    aloop_future_t *f = aloop_future_new(aloop_current());
    assert_int_equal(aloop_wait_for(f, 0, &r), -ETIMEDOUT);
    assert_true(aloop_future_cancelled(f));
    /* An inner task that swallows the cancel keeps its result. */
    job_t b = {.delay = 10, .cleanup = 1, .uncancel = 1, .value = "kept"};
    aloop_task_t *tb = spawn_job(&b);
    assert_int_equal(aloop_wait_for(tb, 1, &r), 0);
    assert_string_equal(r, "kept");
    assert_true(now() == 5.0);
    aloop_release(ta);
    aloop_release(tb);
    aloop_release(f);
    return NULL;
}

static void test_wait_for_timeout_waits_for_inner(void **state) {
    (void)state;
    run_in_task(wait_for_timeout);
}

static job_t inner_job;
static aloop_task_t *inner_task;
static void *wait_for_caller(void *arg) {
    (void)arg;
    inner_task = spawn_job(&inner_job);
    assert_int_equal(aloop_wait_for(inner_task, 10, NULL), -ECANCELED);
    assert_true(aloop_future_cancelled(inner_task));
    assert_true(now() == 2.0); /* after the inner task's 1 s of cleanup */
    return NULL;
}

static void test_wait_for_caller_cancelled_cancels_inner(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    inner_job = (job_t){.delay = 5, .cleanup = 1};
    aloop_task_t *t = aloop_spawn(loop, wait_for_caller, NULL);
    aloop_call_later(loop, 1, cancel_cb, t);
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_cancelled(t));
    assert_true(inner_job.cancelled_seen);
    aloop_release(inner_task);
    aloop_release(t);
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* shield                                                                   */
/* ------------------------------------------------------------------------ */

static aloop_future_t *shielded;
static void *await_shield(void *arg) {
    (void)arg;
    aloop_future_t *s = aloop_shield(shielded);
    assert_non_null(s);
    int rc = aloop_await(s, NULL);
    aloop_release(s); /* before the inner task has finished */
    assert_int_equal(rc, -ECANCELED);
    return NULL;
}

static void test_shield_cancel_waiter_keeps_inner_running(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    job_t j = {.delay = 3, .value = "done"};
    aloop_task_t *inner = aloop_spawn(loop, child, &j);
    shielded = inner;
    aloop_task_t *t = aloop_spawn(loop, await_shield, NULL);
    aloop_call_later(loop, 1, cancel_cb, t);
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_cancelled(t));
    assert_false(j.cancelled_seen);
    void *r;
    assert_int_equal(aloop_future_result(inner, &r), 0);
    assert_string_equal(r, "done");
    assert_true(aloop_time(loop) == 3.0);
    aloop_release(inner);
    aloop_release(t);
    aloop_free(loop);
}

static void *shield_follows(void *arg) {
    (void)arg;
    job_t a = {.delay = 1, .value = "a"}, b = {.delay = 1, .error = -EIO}, c = {.delay = 2};
    aloop_task_t *ta = spawn_job(&a), *tb = spawn_job(&b), *tc = spawn_job(&c);
    aloop_future_t *sa = aloop_shield(ta), *sb = aloop_shield(tb), *sc = aloop_shield(tc);
    void *r;
    assert_int_equal(aloop_await(sa, &r), 0);
    assert_string_equal(r, "a");
    assert_int_equal(aloop_await(sb, &r), -EIO);
    /* Cancelling the shield itself does not cancel the inner task. */
    assert_int_equal(aloop_cancel(sc), 1);
    assert_true(aloop_future_cancelled(sc));
    assert_int_equal(aloop_await(tc, NULL), 0);
    assert_false(c.cancelled_seen);
    /* The inner one cancelled: the shield shows cancelled. */
    job_t d = {.delay = 5};
    aloop_task_t *td = spawn_job(&d);
    aloop_future_t *sd = aloop_shield(td);
    aloop_cancel(td);
    assert_int_equal(aloop_await(sd, NULL), -ECANCELED);
    assert_true(aloop_future_cancelled(sd));
    /* A shield of a done future is done at once. */
    aloop_future_t *se = aloop_shield(ta);
    assert_int_equal(aloop_future_result(se, &r), 0);
    assert_string_equal(r, "a");
    /* A shield released at once: freed when the inner one completes. */
    aloop_future_t *f = aloop_future_new(aloop_current());
    aloop_release(aloop_shield(f));
    aloop_future_set_result(f, NULL);
    assert_null(aloop_shield(NULL));
    aloop_future_t *all[] = {ta, tb, tc, td, sa, sb, sc, sd, se, f};
    release_all(all, 10);
    return NULL;
}

static void test_shield_follows_inner(void **state) {
    (void)state;
    run_in_task(shield_follows);
}


/* ------------------------------------------------------------------------ */
/* Allocation failures                                                      */
/* ------------------------------------------------------------------------ */

static void *allocation_failures(void *arg) {
    (void)arg;
    enum { N = 9 }; /* more than fit on the stack: the slots are allocated */
    aloop_future_t *fs[N];
    for (int i = 0; i < N; i++) fs[i] = aloop_future_new(aloop_current());
    test_fail_alloc(1, 1);
    assert_int_equal(aloop_gather(fs, N, NULL, NULL, 0), -ENOMEM);
    test_fail_alloc(1, 1);
    assert_int_equal(aloop_wait(fs, N, ALOOP_ALL_COMPLETED, 1, NULL), -ENOMEM);
    test_fail_alloc(1, 1);
    assert_null(aloop_shield(fs[0]));
    test_fail_alloc(0, 0);
    assert_int_equal(errno, ENOMEM);
    /* Nothing was left registered on the futures (a record left behind
     * would be reached on the stack of a returned call: ASan), and no
     * reference was kept (the futures would leak). */
    for (int i = 0; i < N; i++) assert_int_equal(aloop_future_set_result(fs[i], NULL), 0);
    release_all(fs, N);
    return NULL;
}

static void test_allocation_failures(void **state) {
    (void)state;
    run_in_task(allocation_failures);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_results_in_input_order),
        cmocka_unit_test(test_gather_first_error_returns_at_once),
        cmocka_unit_test(test_gather_return_errors_fills_every_slot),
        cmocka_unit_test(test_gather_cancelled_child_without_flag),
        cmocka_unit_test(test_gather_cancel_cancels_every_child),
        cmocka_unit_test(test_gather_edge_cases),
        cmocka_unit_test(test_gather_many_children),
        cmocka_unit_test(test_wait_modes),
        cmocka_unit_test(test_wait_first_error_waits_for_all_without_errors),
        cmocka_unit_test(test_wait_timeout_cancels_nothing),
        cmocka_unit_test(test_wait_cancelled_caller_cancels_nothing),
        cmocka_unit_test(test_wait_bad_arguments),
        cmocka_unit_test(test_wait_for_result_in_time),
        cmocka_unit_test(test_wait_for_timeout_waits_for_inner),
        cmocka_unit_test(test_wait_for_caller_cancelled_cancels_inner),
        cmocka_unit_test(test_shield_cancel_waiter_keeps_inner_running),
        cmocka_unit_test(test_shield_follows_inner),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

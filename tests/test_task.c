/* Tests for src/task.c: spawning, names, cancellation, uncancel, fail. */
#include "aloop_test.h"

#include <limits.h>

#include "internal.h"

/* ---- a trace of what ran, shared by the task functions below */
static char trace[256];
static void note(const char *s) { strncat(trace, s, sizeof trace - strlen(trace) - 1); }

static void *return_arg(void *arg) { return arg; }

static void *note_steps(void *arg) {
    const char *name = arg;
    for (int i = 0; i < 3; i++) {
        note(name);
        assert_int_equal(aloop_yield(), 0);
    }
    return NULL;
}

static void test_spawn_runs_in_fifo_order(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_task_t *a = aloop_spawn(loop, note_steps, "a");
    aloop_task_t *b = aloop_spawn(loop, note_steps, "b");
    aloop_task_t *c = aloop_spawn(loop, note_steps, "c");
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "abcabcabc");
    aloop_release(a);
    aloop_release(b);
    aloop_release(c);
    aloop_free(loop);
}

static void test_result_and_names(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t1 = aloop_spawn(loop, return_arg, (void *)"hello");
    aloop_task_t *t2 = aloop_spawn(loop, return_arg, NULL);
    assert_true(aloop_is_task(t1));
    assert_string_equal(aloop_task_name(t1), "Task-1");
    assert_string_equal(aloop_task_name(t2), "Task-2");
    assert_int_equal(aloop_task_set_name(t2, "worker"), 0);
    assert_string_equal(aloop_task_name(t2), "worker");
    assert_int_equal(aloop_task_set_name(t2, NULL), -EINVAL);
    void *v = NULL;
    assert_int_equal(aloop_future_result(t1, &v), -EAGAIN);
    assert_int_equal(aloop_run_until_complete(loop, t1), 0);
    assert_int_equal(aloop_future_result(t1, &v), 0);
    assert_string_equal(v, "hello");
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_done(t2));
    aloop_release(t1);
    aloop_release(t2);
    aloop_free(loop);
}

static void test_bad_arguments(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    errno = 0;
    assert_null(aloop_spawn(NULL, return_arg, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_spawn(loop, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(aloop_cancel(NULL), -EINVAL);
    assert_int_equal(aloop_task_uncancel(NULL), -EINVAL);
    assert_null(aloop_task_name(NULL));
    assert_null(aloop_current_task());
    aloop_free(loop);
}

static int body_ran;
static void *mark_ran(void *arg) {
    (void)arg;
    body_ran = 1;
    return NULL;
}

static void test_cancel_before_first_step(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    body_ran = 0;
    aloop_task_t *t = aloop_spawn(loop, mark_ran, NULL);
    assert_int_equal(aloop_cancel(t), 1);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(body_ran, 0);
    assert_true(aloop_future_cancelled(t));
    assert_int_equal(aloop_future_result(t, NULL), -ECANCELED);
    assert_int_equal(aloop_cancel(t), 0); /* already done */
    aloop_release(t);
    aloop_free(loop);
}

/* A spawned task is only its task struct until it first runs: cancelled
 * before that, it never gets a coroutine, so no stack is ever mapped (and
 * nothing at all is allocated while the loop runs it to its end). */
static void test_cancel_before_first_step_maps_no_stack(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    body_ran = 0;
    aloop_task_t *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = spawn(loop, mark_ran, NULL);
        assert_int_equal(aloop_cancel(t[i]), 1);
    }
    aloop__test_fail_alloc(LONG_MAX, 0); /* count allocations (stack maps included) */
    assert_int_equal(aloop_run(loop), 0);
    unsigned long allocations = aloop__test_alloc_count();
    aloop__test_fail_alloc(0, 0);
    assert_int_equal(allocations, 0);
    assert_int_equal(body_ran, 0);
    assert_null(loop->coros.idle); /* no coroutine was ever made */
    assert_true(!loop->coros.stack_chunks.next || aloop__list_empty(&loop->coros.stack_chunks));
    for (int i = 0; i < 3; i++) {
        assert_true(aloop_future_cancelled(t[i]));
        aloop_release(t[i]);
    }
    aloop_free(loop);
}

/* ---- spawn many, then gather: the pattern of the course's asyncio
 * examples. The default run spawns 10,000; `test_task --stress` (ctest
 * test_task_stress, label "stress") spawns 1,000,000. */
static size_t gather_n = 10000;

static void *index_plus_one(void *arg) { return (void *)((uintptr_t)arg + 1); }

static void *spawn_then_gather(void *arg) {
    size_t n = *(size_t *)arg;
    aloop_task_t **ts = malloc(n * sizeof *ts);
    void **results = malloc(n * sizeof *results);
    assert_non_null(ts);
    assert_non_null(results);
    for (size_t i = 0; i < n; i++) ts[i] = spawn(aloop_current(), index_plus_one, (void *)i);
    /* None has started: pending tasks have no coroutine yet. */
    assert_false(aloop__task(ts[n - 1])->started);
    assert_int_equal(aloop_gather(ts, n, results, NULL, 0), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if ((uintptr_t)results[i] != i + 1) bad++;
        aloop_release(ts[i]);
    }
    free(ts);
    free(results);
    return (void *)bad;
}

/* What a pending task costs: its struct (128 bytes on LP64). */
static void test_pending_task_is_small(void **state) {
    (void)state;
    if (sizeof(void *) == 8) assert_true(sizeof(aloop_task_impl_t) <= 128);
}

/* Task structs come from 2 MiB slabs (task.c; from malloc under ASan): more
 * tasks than one slab holds map more slabs, and giving them all back
 * unmaps every slab but one. */
static void test_slabs_are_given_back(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    enum { N = 40000 }; /* > 2 slabs of 16,383 tasks */
    aloop_task_t **ts = malloc(N * sizeof *ts);
    assert_non_null(ts);
    for (size_t i = 0; i < N; i++) ts[i] = spawn(loop, index_plus_one, (void *)i);
#if !defined(ALOOP_ASAN)
    assert_int_equal(loop->slabs.count, 3);
#endif
    assert_int_equal(aloop_run(loop), 0);
    for (size_t i = 0; i < N; i++) {
        void *r = NULL;
        assert_int_equal(aloop_future_result(ts[i], &r), 0);
        assert_ptr_equal(r, (void *)(i + 1));
        aloop_release(ts[i]);
    }
#if !defined(ALOOP_ASAN)
    assert_int_equal(loop->slabs.count, 1);
#endif
    free(ts);
    aloop_free(loop);
}

/* Tasks still referenced when their loop is freed outlive it (their slab
 * is orphaned, and unmapped by the last release). */
static void test_tasks_outlive_their_loop(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *a = spawn(loop, index_plus_one, (void *)41);
    aloop_task_t *b = spawn(loop, index_plus_one, (void *)1);
    assert_int_equal(aloop_task_set_name(b, "bee"), 0);
    assert_int_equal(aloop_run(loop), 0);
    aloop_free(loop);
    void *r = NULL;
    assert_int_equal(aloop_future_result(a, &r), 0);
    assert_ptr_equal(r, (void *)42);
    assert_string_equal(aloop_task_name(a), "Task-1");
    assert_string_equal(aloop_task_name(b), "bee");
    aloop_release(a);
    aloop_release(b);
}

static void test_spawn_many_then_gather(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *m = spawn(loop, spawn_then_gather, &gather_n);
    assert_int_equal(aloop_run_until_complete(loop, m), 0);
    void *bad = NULL;
    assert_int_equal(aloop_future_result(m, &bad), 0);
    assert_null(bad);
    /* Never-suspending tasks handed one coroutine on, one to the next: the
     * whole run made two (the gatherer's, and the one all children ran on). */
    assert_true(loop->coros.idle_count <= 2);
    assert_int_equal(loop->task_count, 0);
    aloop_release(m);
    aloop_free(loop);
}

static int sleeps_cancelled, sleeps_ok;
static void *sleep_twice(void *arg) {
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int rc = aloop_sleep(10);
        if (rc == -ECANCELED) sleeps_cancelled++;
        else if (rc == 0) sleeps_ok++;
    }
    return NULL;
}

/* A task cancelled in its first sleep gets -ECANCELED once; its second
 * sleep runs in full. It still completes as cancelled (it never uncancelled). */
static void test_cancel_once_then_sleep_again(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sleeps_cancelled = sleeps_ok = 0;
    aloop_task_t *t = aloop_spawn(loop, sleep_twice, NULL);
    assert_non_null(aloop_call_later(loop, 1.0, cancel_cb, t));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(sleeps_cancelled, 1);
    assert_int_equal(sleeps_ok, 1);
    assert_true(aloop_time(loop) >= 11.0 - 1e-9);
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_free(loop);
}

static void *sleep_uncancel(void *arg) {
    (void)arg;
    int rc = aloop_sleep(5);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(aloop_task_cancelling(aloop_current_task()), 1);
    assert_int_equal(aloop_task_uncancel(aloop_current_task()), 0);
    return (void *)"recovered";
}

static void test_uncancel_completes_normally(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, sleep_uncancel, NULL);
    aloop_call_later(loop, 1.0, cancel_cb, t);
    assert_int_equal(aloop_run(loop), 0);
    void *v;
    assert_false(aloop_future_cancelled(t));
    assert_int_equal(aloop_future_result(t, &v), 0);
    assert_string_equal(v, "recovered");
    aloop_release(t);
    aloop_free(loop);
}

static void *cancel_self_then_sleep(void *arg) {
    (void)arg;
    assert_int_equal(aloop_cancel(aloop_current_task()), 1);
    /* pending cancel: the next suspending call fails at once */
    double t0 = aloop_time(aloop_current());
    assert_int_equal(aloop_sleep(100), -ECANCELED);
    assert_true(aloop_time(aloop_current()) == t0);
    /* delivered once: the next one works */
    assert_int_equal(aloop_sleep(1), 0);
    return NULL;
}

static void test_pending_cancel_fails_next_call_at_once(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, cancel_self_then_sleep, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_cancelled(t));
    assert_true(aloop_time(loop) >= 1.0);
    aloop_release(t);
    aloop_free(loop);
}

static void *fail_with_eio(void *arg) {
    (void)arg;
    return aloop_fail(-EIO);
}
static void *fail_positive(void *arg) {
    (void)arg;
    return aloop_fail(5);
}
static void *fail_with_read_result(void *arg) {
    (void)arg;
    ssize_t n = aloop_read(-1, NULL, 0); /* -EBADF, an ssize_t: no cast */
    return aloop_fail(n);
}
static void *fail_beyond_int(void *arg) {
    (void)arg;
    return aloop_fail((ssize_t)INT_MIN - 5); /* no errno: -EINVAL, not truncated */
}

static void test_fail_sets_error(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, fail_with_eio, NULL);
    aloop_task_t *u = aloop_spawn(loop, fail_positive, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), -EIO);
    assert_int_equal(aloop_run_until_complete(loop, u), -EINVAL);
    assert_false(aloop_future_cancelled(t));
    assert_null(aloop_fail(-EIO)); /* outside a task: nothing happens */
    aloop_task_t *r = aloop_spawn(loop, fail_with_read_result, NULL);
    aloop_task_t *b = aloop_spawn(loop, fail_beyond_int, NULL);
    assert_int_equal(aloop_run_until_complete(loop, r), -EBADF);
    assert_int_equal(aloop_run_until_complete(loop, b), -EINVAL);
    assert_string_equal(aloop_strerror((ssize_t)INT_MIN - 5), "unknown error");
    aloop_release(r);
    aloop_release(b);
    aloop_release(t);
    aloop_release(u);
    aloop_free(loop);
}

static int detached_done;
static void *detached_body(void *arg) {
    (void)arg;
    aloop_sleep(1);
    detached_done = 1;
    return NULL;
}

static void test_release_while_running_detaches(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    detached_done = 0;
    aloop_task_t *t = aloop_spawn(loop, detached_body, NULL);
    aloop_release(t); /* the loop keeps it alive until it finishes */
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(detached_done, 1);
    assert_true(aloop__list_empty(&loop->futures)); /* and then it was freed */
    aloop_free(loop);
}

static void *sleeper(void *arg) {
    (void)arg;
    aloop_sleep(3);
    return NULL;
}

static void test_all_tasks(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t[3], *out[8];
    for (int i = 0; i < 3; i++) t[i] = aloop_spawn(loop, sleeper, NULL);
    assert_int_equal(aloop_all_tasks(loop, out, 8), 3);
    assert_ptr_equal(out[0], t[0]);
    assert_ptr_equal(out[2], t[2]);
    assert_int_equal(aloop_all_tasks(loop, out, 1), 3); /* count beyond cap */
    aloop_run_until_complete(loop, t[0]);
    assert_int_equal(aloop_all_tasks(loop, out, 8), 0);
    for (int i = 0; i < 3; i++) aloop_release(t[i]);
    aloop_free(loop);
}

static void *current_is_self(void *arg) {
    aloop_task_t **slot = arg;
    *slot = aloop_current_task();
    return NULL;
}

static void test_current_task(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *seen = NULL;
    aloop_task_t *t = aloop_spawn(loop, current_is_self, &seen);
    aloop_run(loop);
    assert_ptr_equal(seen, t);
    assert_null(aloop_current_task());
    aloop_release(t);
    aloop_free(loop);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--stress") == 0) {
        gather_n = 1000000;
        const struct CMUnitTest stress[] = {
            cmocka_unit_test(test_spawn_many_then_gather),
        };
        return cmocka_run_group_tests(stress, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_task_is_small),
        cmocka_unit_test(test_spawn_many_then_gather),
        cmocka_unit_test(test_slabs_are_given_back),
        cmocka_unit_test(test_tasks_outlive_their_loop),
        cmocka_unit_test(test_spawn_runs_in_fifo_order),
        cmocka_unit_test(test_result_and_names),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_cancel_before_first_step),
        cmocka_unit_test(test_cancel_before_first_step_maps_no_stack),
        cmocka_unit_test(test_cancel_once_then_sleep_again),
        cmocka_unit_test(test_uncancel_completes_normally),
        cmocka_unit_test(test_pending_cancel_fails_next_call_at_once),
        cmocka_unit_test(test_fail_sets_error),
        cmocka_unit_test(test_release_while_running_detaches),
        cmocka_unit_test(test_all_tasks),
        cmocka_unit_test(test_current_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

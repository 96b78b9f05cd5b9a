/* Tests for src/group.c: task groups (virtual clock). */
#define ALOOP_TEST_TRACE
#include "aloop_test.h"



/* A child: sleeps, then returns or fails; on cancel it notes it and may
 * spend some time cleaning up. */
typedef struct job {
    const char *name;
    double delay;
    int error;
    double cleanup;
} job_t;

static void *child(void *arg) {
    job_t *j = arg;
    int rc = aloop_sleep(j->delay);
    if (rc == -ECANCELED) {
        if (j->cleanup > 0) aloop_sleep(j->cleanup);
        note("%s:cancelled@%g ", j->name, now());
        return NULL;
    }
    note("%s:%d@%g ", j->name, j->error, now());
    return j->error ? aloop_fail(j->error) : (void *)j->name;
}

static aloop_group_t *group;
/* Runs body as the main task of a fresh virtual loop; returns its status. */
static int run_main(aloop_task_fn body, void *arg) {
    aloop_t *loop = vloop();
    group = aloop_group_new(loop);
    assert_non_null(group);
    aloop_task_t *t = aloop_spawn(loop, body, arg);
    int rc = aloop_run_until_complete(loop, t);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_group_free(group);
    aloop_free(loop);
    return rc;
}

static void *spawn_jobs_and_wait(void *arg) {
    job_t *jobs = arg;
    for (job_t *j = jobs; j->name; j++) assert_non_null(aloop_group_spawn(group, child, j));
    int rc = aloop_group_wait(group);
    note("wait=%d@%g", rc, now());
    return NULL;
}

static void test_every_child_awaited(void **state) {
    (void)state;
    job_t jobs[] = {{"a", 3, 0, 0}, {"b", 1, 0, 0}, {"c", 2, 0, 0}, {0}};
    trace_reset();
    assert_int_equal(run_main(spawn_jobs_and_wait, jobs), 0);
    assert_string_equal(trace, "b:0@1 c:0@2 a:0@3 wait=0@3");
}

static void test_first_error_cancels_siblings(void **state) {
    (void)state;
    /* b fails at 1: a and c are cancelled; a cleans up for 2 s, so the wait
     * ends at 3 with b's error; c's later failure never happens. */
    job_t jobs[] = {{"a", 10, 0, 2}, {"b", 1, -EIO, 0}, {"c", 2, -ENOENT, 0}, {0}};
    trace_reset();
    assert_int_equal(run_main(spawn_jobs_and_wait, jobs), 0);
    assert_string_equal(trace, "b:-5@1 c:cancelled@1 a:cancelled@3 wait=-5@3");
}

static void *fail_before_wait(void *arg) {
    job_t *jobs = arg;
    for (job_t *j = jobs; j->name; j++) assert_non_null(aloop_group_spawn(group, child, j));
    aloop_sleep(5); /* the failure happens meanwhile */
    /* The group has failed: no more children. */
    errno = 0;
    assert_null(aloop_group_spawn(group, child, jobs));
    assert_int_equal(errno, EPERM);
    int rc = aloop_group_wait(group);
    note("wait=%d@%g", rc, now());
    return NULL;
}

static void test_error_before_wait(void **state) {
    (void)state;
    job_t jobs[] = {{"a", 10, 0, 0}, {"b", 1, -EIO, 0}, {0}};
    trace_reset();
    assert_int_equal(run_main(fail_before_wait, jobs), 0);
    assert_string_equal(trace, "b:-5@1 a:cancelled@1 wait=-5@5");
}

static void test_cancelled_child_is_not_an_error(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    group = aloop_group_new(loop);
    job_t jobs[] = {{"a", 3, 0, 0}, {"b", 5, 0, 0}, {0}};
    trace_reset();
    aloop_task_t *b = aloop_group_spawn(group, child, &jobs[1]);
    assert_non_null(aloop_group_spawn(group, child, &jobs[0]));
    /* The main task spawns nothing more (empty job list) and waits. */
    aloop_task_t *t = aloop_spawn(loop, spawn_jobs_and_wait, &jobs[2]);
    aloop_call_later(loop, 1, cancel_cb, b);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    assert_string_equal(trace, "b:cancelled@1 a:0@3 wait=0@3");
    aloop_release(t);
    aloop_group_free(group);
    aloop_free(loop);
}

static void test_cancelling_the_waiter_cancels_the_group(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    group = aloop_group_new(loop);
    job_t jobs[] = {{"a", 10, 0, 1}, {"b", 10, 0, 2}, {0}};
    trace_reset();
    aloop_task_t *t = aloop_spawn(loop, spawn_jobs_and_wait, jobs);
    aloop_call_later(loop, 1, cancel_cb, t);
    /* The waiter returns -ECANCELED only after both children finished
     * (and the main task ends cancelled). */
    assert_int_equal(aloop_run_until_complete(loop, t), -ECANCELED);
    assert_string_equal(trace, "a:cancelled@2 b:cancelled@3 wait=-125@3");
    errno = 0;
    assert_null(aloop_group_spawn(group, child, jobs));
    assert_int_equal(errno, EPERM);
    aloop_release(t);
    aloop_group_free(group);
    aloop_free(loop);
}

/* A child spawns a sibling while the parent already waits: it is awaited
 * too. After the wait, spawning is refused. */
static job_t late_job = {"late", 2, 0, 0};
static void *spawning_child(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_non_null(aloop_group_spawn(group, child, &late_job));
    note("spawned@%g ", now());
    return NULL;
}

static void *wait_then_spawn(void *arg) {
    (void)arg;
    assert_non_null(aloop_group_spawn(group, spawning_child, NULL));
    int rc = aloop_group_wait(group);
    note("wait=%d@%g ", rc, now());
    errno = 0;
    assert_null(aloop_group_spawn(group, child, &late_job));
    assert_int_equal(errno, EPERM);
    /* Waiting again: nothing left, same result. */
    assert_int_equal(aloop_group_wait(group), 0);
    return NULL;
}

static void test_spawn_while_waiting_and_after(void **state) {
    (void)state;
    trace_reset();
    assert_int_equal(run_main(wait_then_spawn, NULL), 0);
    assert_string_equal(trace, "spawned@1 late:0@3 wait=0@3 ");
}

static void *free_group_later(void *arg) {
    (void)arg;
    aloop_sleep(2);
    aloop_group_free(group);
    group = NULL;
    note("freed@%g ", now());
    return NULL;
}

static void test_free_cancels_running_children(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    group = aloop_group_new(loop);
    job_t jobs[] = {{"a", 10, 0, 1}, {"b", 1, 0, 0}};
    trace_reset();
    aloop_task_t *a = aloop_retain(aloop_group_spawn(group, child, &jobs[0]));
    assert_non_null(aloop_group_spawn(group, child, &jobs[1]));
    aloop_task_t *t = aloop_spawn(loop, free_group_later, NULL);
    assert_int_equal(aloop_run(loop), 0);
    /* a was cancelled by the free and finished on its own, detached. */
    assert_string_equal(trace, "b:0@1 freed@2 a:cancelled@3 ");
    assert_true(aloop_future_cancelled(a));
    aloop_release(a);
    aloop_release(t);
    aloop_free(loop);
}

static void test_misuse(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    assert_null(aloop_group_new(NULL));
    assert_int_equal(errno, EINVAL);
    aloop_group_t *g = aloop_group_new(loop);
    assert_null(aloop_group_spawn(NULL, child, NULL));
    assert_null(aloop_group_spawn(g, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(aloop_group_wait(NULL), -EINVAL);
    assert_int_equal(aloop_group_wait(g), -EPERM); /* outside a task */
    aloop_group_free(g);
    aloop_group_free(NULL);
    aloop_free(loop);
}

/* A group of one loop waited on from a task of another: -EINVAL. */
static void *wait_foreign_group(void *arg) {
    assert_int_equal(aloop_group_wait(arg), -EINVAL);
    return NULL;
}

static void test_foreign_loop(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse: debug mode aborts */
    aloop_t *loop = vloop(), *other = vloop();
    aloop_group_t *g = aloop_group_new(other);
    aloop_task_t *t = aloop_spawn(loop, wait_foreign_group, g);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_group_free(g);
    aloop_free(loop);
    aloop_free(other);
}

/* Allocation failures in spawn: NULL + ENOMEM and nothing leaked (ASan). */
static void test_spawn_allocation_failures(void **state) {
    (void)state;
    job_t j = {"x", 1, 0, 0};
    for (long nth = 1; nth <= 4; nth++) {
        aloop_t *loop = vloop();
        aloop_group_t *g = aloop_group_new(loop);
        test_fail_alloc(nth, 1);
        aloop_task_t *t = aloop_group_spawn(g, child, &j);
        test_fail_alloc(0, 0);
        if (!t) assert_int_equal(errno, ENOMEM);
        aloop_group_free(g);
        aloop_free(loop);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_child_awaited),
        cmocka_unit_test(test_first_error_cancels_siblings),
        cmocka_unit_test(test_error_before_wait),
        cmocka_unit_test(test_cancelled_child_is_not_an_error),
        cmocka_unit_test(test_cancelling_the_waiter_cancels_the_group),
        cmocka_unit_test(test_spawn_while_waiting_and_after),
        cmocka_unit_test(test_free_cancels_running_children),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_foreign_loop),
        cmocka_unit_test(test_spawn_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

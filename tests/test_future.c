/* Tests for src/future.c: results, errors, done callbacks, refcounts, await. */
#include "aloop_test.h"


static void test_set_result_once(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    void *v = (void *)1;
    assert_false(aloop_future_done(f));
    assert_int_equal(aloop_future_result(f, &v), -EAGAIN);
    assert_int_equal(aloop_future_set_result(f, (void *)"x"), 0);
    assert_int_equal(aloop_future_set_result(f, (void *)"y"), -EINVAL);
    assert_int_equal(aloop_future_set_error(f, -EIO), -EINVAL);
    assert_int_equal(aloop_cancel(f), 0);
    assert_true(aloop_future_done(f));
    assert_int_equal(aloop_future_result(f, &v), 0);
    assert_string_equal(v, "x");
    aloop_release(f);
    aloop_free(loop);
}

static void test_set_error_and_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop), *g = aloop_future_new(loop);
    assert_int_equal(aloop_future_set_error(f, 5), -EINVAL);
    assert_int_equal(aloop_future_set_error(f, 0), -EINVAL);
    assert_int_equal(aloop_future_set_error(f, -EIO), 0);
    assert_int_equal(aloop_future_result(f, NULL), -EIO);
    assert_false(aloop_future_cancelled(f));
    assert_int_equal(aloop_cancel(g), 1);
    assert_true(aloop_future_cancelled(g));
    assert_int_equal(aloop_future_result(g, NULL), -ECANCELED);
    assert_int_equal(aloop_future_set_result(NULL, NULL), -EINVAL);
    errno = 0;
    assert_null(aloop_future_new(NULL));
    assert_int_equal(errno, EINVAL);
    aloop_release(f);
    aloop_release(g);
    aloop_free(loop);
}

static char order[64];
static void record_cb(aloop_future_t *f, void *arg) {
    assert_true(aloop_future_done(f));
    strncat(order, arg, sizeof order - strlen(order) - 1);
}

static void test_done_callbacks_scheduled_in_order_once(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    order[0] = 0;
    assert_int_equal(aloop_future_add_done_callback(f, record_cb, "1"), 0);
    assert_int_equal(aloop_future_add_done_callback(f, record_cb, "2"), 0);
    assert_int_equal(aloop_future_add_done_callback(f, record_cb, "3"), 0);
    assert_int_equal(aloop_future_remove_done_callback(f, record_cb, "2"), 1);
    assert_int_equal(aloop_future_add_done_callback(f, NULL, "x"), -EINVAL);
    aloop_future_set_result(f, NULL);
    assert_string_equal(order, ""); /* not run inside set_result */
    aloop_release(f);               /* callbacks keep f alive */
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(order, "13");
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(order, "13"); /* once */
    aloop_free(loop);
}

static void test_callback_on_done_future_runs_soon(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    order[0] = 0;
    aloop_cancel(f);
    assert_int_equal(aloop_future_add_done_callback(f, record_cb, "c"), 0);
    assert_string_equal(order, "");
    aloop_run(loop);
    assert_string_equal(order, "c");
    aloop_release(f);
    aloop_free(loop);
}

static void test_retain_release(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    assert_ptr_equal(aloop_retain(f), f);
    test_fail_alloc(0, 0); /* counts frees from here */
    aloop_release(f);
    assert_int_equal(test_free_count(), 0); /* one reference left */
    aloop_release(f);
    assert_int_equal(test_free_count(), 1); /* the last one frees it */
    aloop_release(NULL);
    aloop_free(loop);
}

/* ---- await */

static void set_later(void *arg) { aloop_future_set_result(arg, (void *)"later"); }

static void *await_future(void *arg) {
    void *v = NULL;
    int rc = aloop_await(arg, &v);
    assert_int_equal(rc, 0);
    assert_string_equal(v, "later");
    return (void *)"ok";
}

static void test_await_future(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    aloop_task_t *t = aloop_spawn(loop, await_future, f);
    aloop_call_later(loop, 2.0, set_later, f);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    assert_true(aloop_time(loop) >= 2.0);
    aloop_release(t);
    aloop_release(f);
    aloop_free(loop);
}

static void *await_done_no_suspend(void *arg) {
    aloop_future_t *f = aloop_future_new(aloop_current());
    aloop_future_set_error(f, -ENOENT);
    int *order_ok = arg;
    assert_int_equal(aloop_await(f, NULL), -ENOENT);
    *order_ok = 1;
    aloop_release(f);
    return NULL;
}

static void test_await_done_future(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int ok = 0;
    aloop_task_t *t = aloop_spawn(loop, await_done_no_suspend, &ok);
    aloop_run(loop);
    assert_int_equal(ok, 1);
    aloop_release(t);
    aloop_free(loop);
}

static void *child_sleeps(void *arg) {
    int *child_saw = arg;
    *child_saw = aloop_sleep(100);
    return NULL;
}

static void *parent_awaits(void *arg) {
    aloop_task_t *child = aloop_spawn(aloop_current(), child_sleeps, arg);
    int rc = aloop_await(child, NULL);
    assert_int_equal(rc, -ECANCELED);
    assert_true(aloop_future_cancelled(child)); /* propagated, and finished */
    aloop_release(child);
    return NULL;
}

static void cancel_task(void *arg) { aloop_cancel(arg); }

static void test_cancel_propagates_through_await(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int child_saw = 1;
    aloop_task_t *t = aloop_spawn(loop, parent_awaits, &child_saw);
    aloop_call_later(loop, 1.0, cancel_task, t);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(child_saw, -ECANCELED);
    assert_true(aloop_future_cancelled(t));
    assert_true(aloop_time(loop) < 2.0);
    aloop_release(t);
    aloop_free(loop);
}

static void *await_self(void *arg) {
    (void)arg;
    assert_int_equal(aloop_await(aloop_current_task(), NULL), -EDEADLK);
    return NULL;
}

static void *await_foreign(void *arg) {
    assert_int_equal(aloop_await(arg, NULL), -EINVAL);
    assert_int_equal(aloop_await(NULL, NULL), -EINVAL);
    return NULL;
}

static void test_await_misuse(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *loop = vloop(), *other = vloop();
    aloop_future_t *foreign = aloop_future_new(other);
    aloop_task_t *a = aloop_spawn(loop, await_self, NULL);
    aloop_task_t *b = aloop_spawn(loop, await_foreign, foreign);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_future_result(a, NULL), 0);
    assert_int_equal(aloop_future_result(b, NULL), 0);
    assert_int_equal(aloop_await(foreign, NULL), -EPERM); /* outside a task */
    aloop_release(a);
    aloop_release(b);
    aloop_release(foreign);
    aloop_free(loop);
    aloop_free(other);
}

static void test_future_outlives_loop(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    order[0] = 0;
    aloop_future_add_done_callback(f, record_cb, "c");
    aloop_free(loop);
    /* nothing could complete it any more: cancelled, its callback told */
    assert_true(aloop_future_cancelled(f));
    assert_string_equal(order, "c");
    /* detached: completing it is refused, releasing it is fine */
    assert_int_equal(aloop_future_set_result(f, NULL), -EINVAL);
    assert_int_equal(aloop_cancel(f), 0);
    aloop_release(f);
}

/* A shield over a future nobody completes holds a reference to itself
 * until the inner future is done; freeing the loop must still free it. */
static void test_free_releases_pending_shield(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_future_t *inner = aloop_future_new(loop);
    aloop_future_t *outer = aloop_shield(inner);
    assert_non_null(outer);
    aloop_release(outer); /* only the shield's own link holds it now */
    aloop_free(loop);     /* LeakSanitizer checks the rest */
    assert_true(aloop_future_cancelled(inner));
    aloop_release(inner);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_result_once),
        cmocka_unit_test(test_set_error_and_cancel),
        cmocka_unit_test(test_done_callbacks_scheduled_in_order_once),
        cmocka_unit_test(test_callback_on_done_future_runs_soon),
        cmocka_unit_test(test_retain_release),
        cmocka_unit_test(test_await_future),
        cmocka_unit_test(test_await_done_future),
        cmocka_unit_test(test_cancel_propagates_through_await),
        cmocka_unit_test(test_await_misuse),
        cmocka_unit_test(test_future_outlives_loop),
        cmocka_unit_test(test_free_releases_pending_shield),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

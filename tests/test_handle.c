/* Tests for src/handle.c: call_soon, call_later, call_at, cancel. */
#include "aloop_test.h"

#include <math.h>


static char trace[64];
static void append_char(char c) {
    size_t n = strlen(trace);
    if (n + 1 < sizeof trace) {
        trace[n] = c;
        trace[n + 1] = 0;
    }
}
static double seen_at[8];
static void note_cb(void *arg) {
    const char *s = arg;
    seen_at[s[0] - 'a'] = aloop_time(aloop_current());
    append_char(*(const char *)(s));
}

static void test_call_soon_fifo(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_call_soon(loop, note_cb, "a");
    aloop_call_soon(loop, note_cb, "b");
    aloop_call_soon(loop, note_cb, "c");
    assert_string_equal(trace, "");
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "abc");
    aloop_free(loop);
}

static void test_call_later_and_at(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_handle_t *h = aloop_call_later(loop, 2.5, note_cb, "a");
    assert_true(fabs(aloop_handle_when(h) - 2.5) < 1e-12);
    aloop_call_at(loop, 1.0, note_cb, "b");
    aloop_call_soon(loop, note_cb, "c");
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "cba");
    assert_true(fabs(seen_at[0] - 2.5) < 1e-12);
    assert_true(fabs(seen_at[1] - 1.0) < 1e-12);
    aloop_free(loop);
}

static void test_cancel_handles(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_handle_t *soon = aloop_call_soon(loop, note_cb, "a");
    aloop_handle_t *later = aloop_call_later(loop, 5, note_cb, "b");
    aloop_call_later(loop, 1, note_cb, "c");
    aloop_handle_cancel(soon);
    aloop_handle_cancel(later);
    aloop_handle_cancel(later); /* twice is harmless */
    aloop_handle_cancel(NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "c");
    assert_true(aloop_time(loop) < 2.0); /* the cancelled timer is gone */
    aloop_free(loop);
}

static void test_bad_arguments(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    errno = 0;
    assert_null(aloop_call_soon(NULL, note_cb, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_soon(loop, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_later(loop, -1, note_cb, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_later(loop, NAN, note_cb, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aloop_call_at(loop, NAN, note_cb, NULL));
    assert_int_equal(errno, EINVAL);
    aloop_free(loop);
}

static aloop_handle_t *self_handle;
static int self_runs;
static void cancel_self_cb(void *arg) {
    (void)arg;
    self_runs++;
    aloop_handle_cancel(self_handle); /* no-op while running */
}

static void test_cancel_from_own_callback(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    self_runs = 0;
    self_handle = aloop_call_soon(loop, cancel_self_cb, NULL);
    aloop_run(loop);
    assert_int_equal(self_runs, 1);
    aloop_free(loop);
}

static void test_free_with_pending_callbacks(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_call_soon(loop, note_cb, "a");
    aloop_call_later(loop, 10, note_cb, "b");
    aloop_free(loop); /* frees them unrun, nothing leaks (ASan) */
    assert_string_equal(trace, "");
}

static void test_callback_scheduled_from_callback_runs_after(void **state);
static void chain_cb(void *arg) {
    append_char('x');
    if (arg) aloop_call_soon(aloop_current(), note_cb, "a");
}

static void test_callback_scheduled_from_callback_runs_after(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_call_soon(loop, chain_cb, loop);
    aloop_call_soon(loop, note_cb, "b");
    aloop_run(loop);
    assert_string_equal(trace, "xba");
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_soon_fifo),
        cmocka_unit_test(test_call_later_and_at),
        cmocka_unit_test(test_cancel_handles),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_cancel_from_own_callback),
        cmocka_unit_test(test_free_with_pending_callbacks),
        cmocka_unit_test(test_callback_scheduled_from_callback_runs_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

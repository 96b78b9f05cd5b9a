/* Tests for src/timer.c, the heap alone, and for the sleeps the scheduler
 * builds on it (sched.c): equal deadlines, many sleepers. */
#include "aloop_test.h"

#include <math.h>

#include "internal.h"

/* ---- the heap alone, against a brute-force model */

static double fired[2048];
static size_t nfired;
static void record_fire(aloop_timer_t *t) { fired[nfired++] = t->when; }

static void test_heap_orders_and_removes(void **state) {
    (void)state;
    aloop_timers_t heap = {0}; /* the heap alone: no loop */
    enum { N = 1000 };
    static aloop_timer_t timers[N];
    srand(42);
    for (int i = 0; i < N; i++) {
        aloop__timer_init(&timers[i], record_fire);
        assert_int_equal(aloop__timers_insert(&heap, &timers[i], (double)(rand() % 100)), 0);
    }
    /* remove every third one, some twice (idempotent) */
    for (int i = 0; i < N; i += 3) {
        aloop__timers_remove(&heap, &timers[i]);
        aloop__timers_remove(&heap, &timers[i]);
        assert_false(aloop__timer_armed(&timers[i]));
    }
    nfired = 0;
    assert_null(aloop__timers_pop_due(&heap, -1)); /* nothing due yet */
    aloop_timer_t *t;
    while ((t = aloop__timers_pop_due(&heap, 1e9)) != NULL) {
        assert_false(aloop__timer_armed(t));
        t->fire(t);
    }
    assert_int_equal(nfired, N - (N + 2) / 3);
    for (size_t i = 1; i < nfired; i++) assert_true(fired[i - 1] <= fired[i]);
    assert_int_equal(aloop__timers_count(&heap), 0);
    assert_true(aloop__timers_next(&heap) < 0);
    aloop__timers_free(&heap);
}

/* ---- sleeps */

static char trace[128];
static void append_char(char c) {
    size_t n = strlen(trace);
    if (n + 1 < sizeof trace) {
        trace[n] = c;
        trace[n + 1] = 0;
    }
}
static void *sleep_then_note(void *arg) {
    const char *s = arg;
    aloop_sleep((double)(s[1] - '0'));
    append_char(*(const char *)(s));
    return NULL;
}

static void test_sleeps_wake_in_deadline_order(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    const char *specs[] = {"a3", "b1", "c2", "d1", "e0"};
    aloop_task_t *t[5];
    for (int i = 0; i < 5; i++) t[i] = aloop_spawn(loop, sleep_then_note, (void *)specs[i]);
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "ebdca"); /* equal deadlines (b, d) in the order set */
    assert_true(fabs(aloop_time(loop) - 3.0) < 1e-9);
    for (int i = 0; i < 5; i++) aloop_release(t[i]);
    aloop_free(loop);
}

static void note_cb(void *arg) { append_char(*(const char *)(arg)); }
static void *sleep_note_at_2(void *arg) {
    aloop_sleep(2.0);
    append_char(*(const char *)(arg));
    return NULL;
}

/* Sleeps, call_later and call_at share one sequence: equal deadlines fire
 * in the order they were set, whatever set them. */
static void test_equal_deadlines_fifo_across_kinds(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    trace[0] = 0;
    aloop_call_later(loop, 2.0, note_cb, "1");
    /* the sleeps arm their timers when the tasks first run, after the call_later */
    aloop_task_t *t = aloop_spawn(loop, sleep_note_at_2, "2");
    aloop_task_t *u = aloop_spawn(loop, sleep_note_at_2, "x");
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_release(u);
    /* call_later (set first), then the two sleeps in the order they ran */
    assert_string_equal(trace, "12x");
    trace[0] = 0;
    double base = aloop_time(loop);
    aloop_call_at(loop, base + 1, note_cb, "a");
    aloop_call_later(loop, 1, note_cb, "b");
    aloop_call_at(loop, base + 1, note_cb, "c");
    aloop_run(loop);
    assert_string_equal(trace, "abc");
    aloop_free(loop);
}

static void *sleep_long(void *arg) {
    (void)arg;
    return (void *)(intptr_t)aloop_sleep(1000);
}

static void test_cancelled_sleep_leaves_no_timer(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, sleep_long, NULL);
    aloop_call_later(loop, 1.0, cancel_cb, t);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop__timers_count(&loop->timers), 0);
    assert_true(aloop_time(loop) < 2.0); /* the 1000 s timer did not keep the loop alive */
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_free(loop);
}

static void *sleep_bad(void *arg) {
    (void)arg;
    assert_int_equal(aloop_sleep(-1), -EINVAL);
    assert_int_equal(aloop_sleep(NAN), -EINVAL);
    return NULL;
}

static void test_sleep_misuse(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    assert_int_equal(aloop_sleep(1), -EPERM);
    assert_int_equal(aloop_yield(), -EPERM);
    aloop_task_t *t = aloop_spawn(loop, sleep_bad, NULL);
    aloop_run(loop);
    assert_int_equal(aloop_future_result(t, NULL), 0);
    aloop_release(t);
    aloop_free(loop);
}

/* ---- 100,000 concurrent sleepers */

static size_t woke;
static double last_wake;
static void *sleep_i(void *arg) {
    double d = (double)(uintptr_t)arg / 1000.0;
    if (aloop_sleep(d) == 0) {
        double now = aloop_time(aloop_current());
        assert_true(now >= d);
        assert_true(now >= last_wake); /* deadlines in order */
        last_wake = now;
        woke++;
    }
    return NULL;
}

static void test_hundred_thousand_sleepers(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 16 * 1024};
    aloop_t *loop = aloop_new_with(&cfg);
    enum { N = 100000 };
    woke = 0;
    last_wake = 0;
    srand(7);
    for (size_t i = 0; i < N; i++) {
        aloop_task_t *t = aloop_spawn(loop, sleep_i, (void *)(uintptr_t)(rand() % 1000));
        assert_non_null(t);
        aloop_release(t);
    }
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(woke, N);
    assert_int_equal(loop->task_count, 0);
    assert_true(aloop_time(loop) <= 1.0);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_orders_and_removes),
        cmocka_unit_test(test_sleeps_wake_in_deadline_order),
        cmocka_unit_test(test_equal_deadlines_fifo_across_kinds),
        cmocka_unit_test(test_cancelled_sleep_leaves_no_timer),
        cmocka_unit_test(test_sleep_misuse),
        cmocka_unit_test(test_hundred_thousand_sleepers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

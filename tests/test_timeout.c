/* Tests for src/timeout.c: timeout scopes (asyncio.timeout), on the virtual
 * clock. Each test's task records what it saw; the test checks it after the
 * loop has run. */
#include "aloop_test.h"

#include <math.h>


/* What a scenario saw, filled in by its task. */
typedef struct seen {
    int block, exit, after, expired, cancelling;
    double t_block, t_end, when;
} seen_t;

static seen_t seen;
static aloop_timeout_t *shared_scope; /* for tests that poke a scope from elsewhere */

static void *run_scenario(aloop_t *loop, aloop_task_fn fn, int *state_out) {
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, fn, NULL);
    int rc = aloop_run(loop);
    assert_int_equal(rc, 0);
    if (state_out) *state_out = aloop_future_cancelled(t);
    aloop_release(t);
    return NULL;
}

/* ---- the basic rule: the deadline cancels, exit reports -ETIMEDOUT ------ */

static void *basic_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 1.0), 0);
    seen.when = to.when;
    seen.block = aloop_sleep(10);
    seen.t_block = now();
    seen.expired = aloop_timeout_expired(&to);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    seen.after = aloop_sleep(1); /* the scope's cancel was consumed */
    seen.t_end = now();
    return NULL;
}

static void test_deadline_cancels_and_exit_reports_timeout(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int cancelled = -1;
    run_scenario(loop, basic_task, &cancelled);
    assert_true(seen.when == 1.0);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 1.0);
    assert_int_equal(seen.expired, 1);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 0);
    assert_int_equal(seen.after, 0);
    assert_true(seen.t_end == 2.0);
    assert_int_equal(cancelled, 0); /* the task completed normally */
    aloop_free(loop);
}

static void *not_fired_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    aloop_sleep(0.5);
    assert_int_equal(aloop_timeout_enter(&to, 10), 0);
    seen.when = to.when;
    seen.block = aloop_sleep(1);
    seen.exit = aloop_timeout_exit(&to, 42);
    seen.expired = aloop_timeout_expired(&to);
    seen.t_end = now();
    return NULL;
}

static void test_deadline_not_reached_returns_rc(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, not_fired_task, NULL);
    assert_true(seen.when == 10.5);
    assert_int_equal(seen.block, 0);
    assert_int_equal(seen.exit, 42);
    assert_int_equal(seen.expired, 0);
    assert_true(seen.t_end == 1.5); /* the stopped timer did not keep the loop busy */
    aloop_free(loop);
}

static void *no_deadline_task(void *arg) {
    (void)arg;
    aloop_timeout_t a, b;
    assert_int_equal(aloop_timeout_enter(&a, INFINITY), 0);
    assert_true(a.when == INFINITY);
    assert_int_equal(aloop_timeout_enter_at(&b, INFINITY), 0);
    assert_true(b.when == INFINITY);
    seen.block = aloop_sleep(100);
    assert_int_equal(aloop_timeout_exit(&b, 0), 0);
    seen.exit = aloop_timeout_exit(&a, seen.block);
    seen.expired = aloop_timeout_expired(&a) + aloop_timeout_expired(&b);
    seen.t_end = now();
    return NULL;
}

static void test_no_deadline(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, no_deadline_task, NULL);
    assert_int_equal(seen.block, 0);
    assert_int_equal(seen.exit, 0);
    assert_int_equal(seen.expired, 0);
    assert_true(seen.t_end == 100);
    aloop_free(loop);
}

/* A deadline in the past is a deadline (asyncio): it fires at the next
 * suspension, also one before the loop's clock started (a negative time
 * is not "none"). */
static double past_when;
static void *past_task(void *arg) {
    int how = (int)(intptr_t)arg;
    aloop_timeout_t to;
    if (how == 0) assert_int_equal(aloop_timeout_enter(&to, -1), 0);
    if (how == 1) assert_int_equal(aloop_timeout_enter_at(&to, now() - 5), 0);
    if (how == 2) {
        assert_int_equal(aloop_timeout_enter(&to, INFINITY), 0);
        assert_int_equal(aloop_timeout_reschedule(&to, now() - 5), 0);
    }
    if (how == 3) assert_int_equal(aloop_timeout_enter_at(&to, -INFINITY), 0);
    past_when = to.when;
    seen.block = aloop_sleep(10);
    seen.t_block = now();
    seen.expired = aloop_timeout_expired(&to);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void test_past_deadline_fires_at_once(void **state) {
    (void)state;
    for (int how = 0; how < 4; how++) {
        aloop_t *loop = vloop();
        memset(&seen, 0, sizeof seen);
        aloop_task_t *t = spawn(loop, past_task, (void *)(intptr_t)how);
        run_and_release(loop, &t, 1);
        assert_true(past_when < 0);
        assert_int_equal(seen.block, -ECANCELED);
        assert_true(seen.t_block == 0);
        assert_int_equal(seen.expired, 1);
        assert_int_equal(seen.exit, -ETIMEDOUT);
        aloop_free(loop);
    }
}

static void *enter_at_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter_at(&to, 3.25), 0);
    seen.when = to.when;
    seen.block = aloop_sleep(10);
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void test_enter_at(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, enter_at_task, NULL);
    assert_true(seen.when == 3.25);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 3.25);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    aloop_free(loop);
}

/* The block swallows the -ECANCELED and keeps going: exit still reports the
 * timeout, and the cancel was delivered once only. */
static void *swallow_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 1), 0);
    int rc = aloop_sleep(5);
    assert_int_equal(rc, -ECANCELED);
    seen.block = aloop_sleep(1); /* proceeds: the cancel was delivered */
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&to, 0);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    return NULL;
}

static void test_swallowed_cancel_still_times_out(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int cancelled = -1;
    run_scenario(loop, swallow_task, &cancelled);
    assert_int_equal(seen.block, 0);
    assert_true(seen.t_block == 2.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 0);
    assert_int_equal(cancelled, 0);
    aloop_free(loop);
}

/* ---- deadlines at or before now --------------------------------------- */

static void *zero_yield_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    double t0 = now();
    assert_int_equal(aloop_timeout_enter(&to, 0), 0);
    assert_true(to.when == t0);
    assert_int_equal(aloop_timeout_expired(&to), 0); /* takes effect at the next step */
    seen.block = aloop_yield();
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.t_end = now();
    return NULL;
}

static void test_zero_deadline_fires_at_next_suspension(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, zero_yield_task, NULL);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_true(seen.t_end == 0);
    aloop_free(loop);
}

/* A deadline that passed while the task computed (modelled by a deadline
 * already in the past) is delivered at the next suspending call, without
 * the clock moving. */
static void *past_deadline_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    aloop_sleep(2);
    assert_int_equal(aloop_timeout_enter_at(&to, 1), 0);
    /* work without suspending: the deadline has passed, but no cancel yet */
    assert_int_equal(aloop_task_cancelling(aloop_current_task()), 0);
    seen.block = aloop_sleep(5);
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void test_expiry_delivered_at_next_suspension(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, past_deadline_task, NULL);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 2.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    aloop_free(loop);
}

/* A block that never suspends is never interrupted (asyncio: the timeout
 * callback had no chance to run), and the scope leaves nothing behind. */
static void *no_suspension_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 0), 0);
    seen.exit = aloop_timeout_exit(&to, 7);
    seen.expired = aloop_timeout_expired(&to);
    seen.after = aloop_sleep(1);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    return NULL;
}

static void test_exit_without_suspension(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, no_suspension_task, NULL);
    assert_int_equal(seen.exit, 7);
    assert_int_equal(seen.expired, 0);
    assert_int_equal(seen.after, 0);
    assert_int_equal(seen.cancelling, 0);
    aloop_free(loop);
}

/* Woken but not yet run when the deadline fires: the sleep's own timer
 * (armed first) wakes the task, then the scope's (re-armed later, same
 * deadline) cancels it before it runs. The sleep reports the cancel. */
static void *woken_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    shared_scope = &to;
    assert_int_equal(aloop_timeout_enter(&to, 5), 0);
    seen.block = aloop_sleep(1);
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void *move_deadline_to_1(void *arg) {
    (void)arg;
    aloop_sleep(0.5);
    assert_int_equal(aloop_timeout_reschedule(shared_scope, 1.0), 0);
    return NULL;
}

static void test_expiry_while_woken_but_not_run(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *ts[2] = {spawn(loop, woken_task, NULL), spawn(loop, move_deadline_to_1, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 1.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    aloop_free(loop);
}

/* ---- outside cancels ---------------------------------------------------- */

static void *outside_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 10), 0);
    seen.block = aloop_sleep(20);
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.expired = aloop_timeout_expired(&to);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    return NULL;
}

static void test_outside_cancel_stays_a_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, outside_task, NULL);
    assert_non_null(aloop_call_later(loop, 0.5, cancel_cb, t));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 0.5);
    assert_int_equal(seen.exit, -ECANCELED);
    assert_int_equal(seen.expired, 0);
    assert_int_equal(seen.cancelling, 1);
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_free(loop);
}

/* The deadline and an outside cancel land in the same step: the outside
 * cancel wins, the scope still counts as expired, and its own request is
 * withdrawn (one request left: the outside one). */
static void *both_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 1), 0);
    seen.block = aloop_sleep(20);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.expired = aloop_timeout_expired(&to);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    return NULL;
}

static void test_outside_cancel_and_deadline_together(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, both_task, NULL);
    /* armed before the scope's timer: both run before the task's next step */
    assert_non_null(aloop_call_later(loop, 1, cancel_cb, t));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ECANCELED);
    assert_int_equal(seen.expired, 1);
    assert_int_equal(seen.cancelling, 1);
    assert_true(aloop_future_cancelled(t));
    aloop_release(t);
    aloop_free(loop);
}

/* A task cancelled (and having swallowed it) before the scope: the old
 * request does not make the scope's own timeout look like an outside
 * cancel (asyncio's test_timeout_after_cancellation). */
static void *after_cancel_task(void *arg) {
    (void)arg;
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_sleep(1), -ECANCELED);
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 0.5), 0);
    seen.block = aloop_sleep(1);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    aloop_task_uncancel(aloop_current_task());
    return NULL;
}

static void test_timeout_after_swallowed_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, after_cancel_task, NULL);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 1);
    aloop_free(loop);
}

/* ---- nesting ------------------------------------------------------------ */

/* The outer deadline fires first: the inner scope did not expire and hands
 * the cancel on; the outer reports the timeout. */
static void *outer_first_task(void *arg) {
    (void)arg;
    aloop_timeout_t outer, inner;
    assert_int_equal(aloop_timeout_enter(&outer, 1), 0);
    assert_int_equal(aloop_timeout_enter(&inner, 2), 0);
    int rc = aloop_sleep(10);
    seen.block = aloop_timeout_exit(&inner, rc);
    seen.expired = aloop_timeout_expired(&inner) * 10 + aloop_timeout_expired(&outer);
    seen.exit = aloop_timeout_exit(&outer, seen.block);
    seen.t_end = now();
    seen.after = aloop_sleep(1);
    return NULL;
}

static void test_nested_outer_fires_first(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, outer_first_task, NULL);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.expired, 1); /* inner 0, outer 1 */
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_true(seen.t_end == 1.0);
    assert_int_equal(seen.after, 0);
    aloop_free(loop);
}

/* The inner deadline fires first: it reports; the outer block continues
 * undisturbed until its own deadline. */
static void *inner_first_task(void *arg) {
    (void)arg;
    aloop_timeout_t outer, inner;
    assert_int_equal(aloop_timeout_enter(&outer, 3), 0);
    assert_int_equal(aloop_timeout_enter(&inner, 1), 0);
    seen.block = aloop_timeout_exit(&inner, aloop_sleep(10));
    seen.after = aloop_sleep(1); /* the outer block goes on */
    seen.t_block = now();
    int rc = aloop_sleep(10);
    seen.t_end = now();
    seen.exit = aloop_timeout_exit(&outer, rc);
    return NULL;
}

static void test_nested_inner_fires_first(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, inner_first_task, NULL);
    assert_int_equal(seen.block, -ETIMEDOUT);
    assert_int_equal(seen.after, 0);
    assert_true(seen.t_block == 2.0);
    assert_true(seen.t_end == 3.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    aloop_free(loop);
}

/* Both deadlines fire in the same step (one -ECANCELED reaches the block):
 * the inner-most expired scope reports the timeout, and the outer block is
 * still interrupted at its next suspending call (asyncio's
 * test_nested_timeouts_loop_busy). */
static void *both_fire_task(void *arg) {
    (void)arg;
    aloop_timeout_t outer, inner;
    assert_int_equal(aloop_timeout_enter(&outer, 1), 0);
    assert_int_equal(aloop_timeout_enter(&inner, 1), 0);
    seen.block = aloop_timeout_exit(&inner, aloop_sleep(10));
    seen.after = aloop_sleep(10); /* interrupted by the outer deadline */
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&outer, seen.after);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    seen.expired = aloop_sleep(1); /* and nothing is left pending */
    seen.t_end = now();
    return NULL;
}

static void test_nested_both_fire_together(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int cancelled = -1;
    run_scenario(loop, both_fire_task, &cancelled);
    assert_int_equal(seen.block, -ETIMEDOUT);
    assert_int_equal(seen.after, -ECANCELED);
    assert_true(seen.t_block == 1.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 0);
    assert_int_equal(seen.expired, 0);
    assert_true(seen.t_end == 2.0);
    assert_int_equal(cancelled, 0);
    aloop_free(loop);
}

/* A scope entered in the cleanup of an expired one (asyncio's
 * test_nested_timeout_in_finally). */
static void *cleanup_scope_task(void *arg) {
    (void)arg;
    aloop_timeout_t outer, cleanup;
    assert_int_equal(aloop_timeout_enter(&outer, 1), 0);
    int rc = aloop_sleep(5);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(aloop_timeout_enter(&cleanup, 1), 0);
    seen.block = aloop_timeout_exit(&cleanup, aloop_sleep(5));
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&outer, rc);
    seen.cancelling = aloop_task_cancelling(aloop_current_task());
    return NULL;
}

static void test_scope_in_cleanup_of_expired_scope(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, cleanup_scope_task, NULL);
    assert_int_equal(seen.block, -ETIMEDOUT);
    assert_true(seen.t_block == 2.0);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 0);
    aloop_free(loop);
}

/* ---- reschedule --------------------------------------------------------- */

static void *resched_victim(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    shared_scope = &to;
    assert_int_equal(aloop_timeout_enter(&to, 10), 0);
    seen.block = aloop_sleep(50);
    seen.t_block = now();
    seen.when = to.when;
    seen.exit = aloop_timeout_exit(&to, seen.block);
    shared_scope = NULL;
    return NULL;
}

static double resched_to;
static void *rescheduler(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_timeout_reschedule(shared_scope, resched_to), 0);
    assert_true(shared_scope->when == resched_to);
    return NULL;
}

static void resched_case(double to, int want_block, double want_t, int want_exit) {
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    resched_to = to;
    aloop_task_t *ts[2] = {spawn(loop, resched_victim, NULL), spawn(loop, rescheduler, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.block, want_block);
    assert_true(seen.t_block == want_t);
    assert_int_equal(seen.exit, want_exit);
    aloop_free(loop);
}

static void test_reschedule_later_earlier_none(void **state) {
    (void)state;
    resched_case(30, -ECANCELED, 30, -ETIMEDOUT); /* later */
    resched_case(4, -ECANCELED, 4, -ETIMEDOUT);   /* earlier */
    resched_case(0.5, -ECANCELED, 1, -ETIMEDOUT); /* already past: fires at once */
    resched_case(-4, -ECANCELED, 1, -ETIMEDOUT);  /* before the clock started */
    resched_case(INFINITY, 0, 50, 0);              /* none */
}

static void *resched_misuse_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, INFINITY), 0);
    assert_int_equal(aloop_timeout_reschedule(&to, NAN), -EINVAL);
    assert_int_equal(aloop_timeout_reschedule(&to, 2), 0); /* from none to a deadline */
    assert_true(to.when == 2);
    assert_int_equal(aloop_sleep(5), -ECANCELED);
    assert_int_equal(aloop_timeout_reschedule(&to, 10), -EALREADY);
    assert_int_equal(aloop_timeout_exit(&to, 0), -ETIMEDOUT);
    assert_int_equal(aloop_timeout_reschedule(&to, 10), -EINVAL); /* exited */
    assert_int_equal(aloop_timeout_reschedule(NULL, 10), -EINVAL);
    seen.t_end = now();
    return NULL;
}

static void test_reschedule_misuse(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, resched_misuse_task, NULL);
    assert_true(seen.t_end == 2);
    aloop_free(loop);
}

/* ---- misuse ------------------------------------------------------------- */

static aloop_timeout_t *other_scope;
static void *scope_owner(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 10), 0);
    other_scope = &to;
    aloop_sleep(1);
    assert_int_equal(aloop_timeout_exit(&to, 0), 0);
    other_scope = NULL;
    return NULL;
}

static void *misuse_task(void *arg) {
    (void)arg;
    aloop_timeout_t outer, inner;
    assert_int_equal(aloop_timeout_enter(NULL, 1), -EINVAL);
    assert_int_equal(aloop_timeout_enter(&outer, NAN), -EINVAL);
    assert_int_equal(aloop_timeout_enter_at(&outer, NAN), -EINVAL);
    assert_int_equal(aloop_timeout_exit(NULL, 0), -EINVAL);
    assert_int_equal(aloop_timeout_expired(NULL), -EINVAL);
    assert_int_equal(aloop_timeout_enter(&outer, 5), 0);
    assert_int_equal(aloop_timeout_enter(&inner, 5), 0);
    assert_int_equal(aloop_timeout_exit(&outer, 0), -EBUSY); /* inner still open */
    assert_int_equal(aloop_timeout_exit(&inner, 1), 1);
    assert_int_equal(aloop_timeout_exit(&inner, 1), -EINVAL); /* twice */
    /* another task's scope */
    aloop_sleep(0.5);
    assert_non_null(other_scope);
    assert_int_equal(aloop_timeout_exit(other_scope, 0), -EINVAL);
    /* a copy of an open scope is not the scope */
    aloop_timeout_t copy = outer;
    assert_int_equal(aloop_timeout_exit(&copy, 0), -EINVAL);
    assert_int_equal(aloop_timeout_reschedule(&copy, 1), -EINVAL);
    assert_int_equal(aloop_timeout_exit(&outer, 2), 2);
    seen.exit = 1;
    return NULL;
}

static void test_misuse(void **state) {
    (void)state;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 1), -EPERM);     /* outside a task */
    assert_int_equal(aloop_timeout_enter_at(&to, 1), -EPERM);
    assert_int_equal(aloop_timeout_exit(&to, 0), -EPERM);
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *ts[2] = {spawn(loop, scope_owner, NULL), spawn(loop, misuse_task, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.exit, 1);
    aloop_free(loop);
}

/* ---- lifetime ----------------------------------------------------------- */

static void *forgetful_inner(void) {
    aloop_timeout_t to; /* dies with this frame: the loop must never touch it */
    assert_int_equal(aloop_timeout_enter(&to, 1), 0);
    return NULL;
}

static void *forgetful_task(void *arg) {
    (void)arg;
    /* on the heap and freed at once: ASan sees any later touch */
    aloop_timeout_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    assert_int_equal(aloop_timeout_enter(a, 1), 0);
    assert_int_equal(aloop_timeout_enter(b, 2), 0);
    free(a);
    free(b);
    return NULL; /* finishes with two scopes open */
}

static void *bystander(void *arg) {
    (void)arg;
    char junk[256];
    memset(junk, 0x5a, sizeof junk); /* reuse stack memory meanwhile */
    seen.block = aloop_sleep(3);
    return NULL;
}

static void test_task_finishing_inside_a_scope(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *ts[2] = {spawn(loop, forgetful_task, NULL), spawn(loop, bystander, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.block, 0);
    assert_true(aloop_time(loop) == 3); /* no timer left behind fired or waited */
    aloop_free(loop);
}

/* A scope whose task returned without exit is not open any more: its struct
 * (here one that outlives the task) reads as -EINVAL everywhere, never as
 * the freed record, and can be entered again. */
static aloop_timeout_t kept;
static void *enter_and_return(void *arg) {
    (void)arg;
    assert_int_equal(aloop_timeout_enter(&kept, 1), 0);
    return NULL;
}

static void *use_kept_later(void *arg) {
    (void)arg;
    aloop_sleep(0.5); /* the first task has returned */
    assert_int_equal(aloop_timeout_expired(&kept), -EINVAL);
    assert_int_equal(aloop_timeout_reschedule(&kept, 5), -EINVAL);
    assert_int_equal(aloop_timeout_exit(&kept, 0), -EINVAL);
    /* entering it again is a fresh scope */
    assert_int_equal(aloop_timeout_enter(&kept, 1), 0);
    assert_int_equal(aloop_timeout_expired(&kept), 0);
    seen.block = aloop_sleep(5);
    seen.exit = aloop_timeout_exit(&kept, seen.block);
    seen.t_end = now();
    return NULL;
}

static void test_scope_of_returned_task_is_not_open(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    memset(&kept, 0, sizeof kept);
    aloop_task_t *ts[2] = {spawn(loop, enter_and_return, NULL), spawn(loop, use_kept_later, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_true(seen.t_end == 1.5);
    assert_int_equal(aloop_timeout_expired(&kept), 1);
    aloop_free(loop);
}

/* Entering a struct that is open (in this task or another) is -EBUSY and
 * changes nothing: the open scope keeps its deadline, and no orphan is left
 * to cancel later code. */
static aloop_timeout_t busy_scope;
static void *enter_twice(void *arg) {
    (void)arg;
    assert_int_equal(aloop_timeout_enter(&busy_scope, 2), 0);
    assert_int_equal(aloop_timeout_enter(&busy_scope, 1), -EBUSY);
    assert_int_equal(aloop_timeout_enter_at(&busy_scope, 100), -EBUSY);
    assert_true(busy_scope.when == 2);
    seen.block = aloop_sleep(10);
    seen.t_block = now();
    seen.exit = aloop_timeout_exit(&busy_scope, seen.block);
    seen.after = aloop_sleep(10); /* nothing left to cancel this */
    seen.t_end = now();
    return NULL;
}

static void *enter_others(void *arg) {
    (void)arg;
    aloop_sleep(1);
    seen.cancelling = aloop_timeout_enter(&busy_scope, 1); /* open in enter_twice */
    return NULL;
}

static void test_enter_open_scope_is_busy(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *ts[2] = {spawn(loop, enter_twice, NULL), spawn(loop, enter_others, NULL)};
    run_and_release(loop, ts, 2);
    assert_int_equal(seen.cancelling, -EBUSY);
    assert_int_equal(seen.block, -ECANCELED);
    assert_true(seen.t_block == 2);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.after, 0);
    assert_true(seen.t_end == 12);
    aloop_free(loop);
}

/* Debug mode names a task that returned with a scope still open. */
static char warned[256];
static void collect_warning(aloop_t *loop, const char *msg, void *arg) {
    (void)loop;
    (void)arg;
    snprintf(warned, sizeof warned, "%s", msg);
}

static void *forgetful_named(void *arg) {
    (void)arg;
    aloop_task_set_name(aloop_current_task(), "forgetful");
    return forgetful_inner();
}

static void test_debug_warns_about_skipped_exit(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .flags = ALOOP_DEBUG};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    aloop_set_warning_handler(loop, collect_warning, NULL);
    warned[0] = 0;
    aloop_task_t *t = spawn(loop, forgetful_named, NULL);
    run_and_release(loop, &t, 1);
    assert_non_null(strstr(warned, "forgetful finished inside a timeout scope"));
    aloop_free(loop);
}

static void *scoped_sleeper(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 100), 0);
    seen.block = aloop_sleep(1000);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void test_loop_free_inside_a_scope(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, scoped_sleeper, NULL);
    assert_non_null(aloop_call_later(loop, 1, (void (*)(void *))aloop_stop, loop));
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ECANCELED);
}

/* aloop_free while the due-deadline callback is still queued: the task
 * exits its scope during the drain, after the callback was dropped. */
static void *due_then_block(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 0), 0);
    aloop_stop(aloop_current());
    seen.block = aloop_yield(); /* the loop stops before the callback runs */
    seen.exit = aloop_timeout_exit(&to, seen.block);
    return NULL;
}

static void test_loop_free_with_due_deadline_queued(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, due_then_block, NULL);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ECANCELED);
}

/* A scope that fails to allocate leaves nothing behind. */
static void *enomem_task(void *arg) {
    (void)arg;
    aloop_timeout_t to;
    test_fail_alloc(1, 1);
    seen.exit = aloop_timeout_enter(&to, 1);
    test_fail_alloc(0, 0);
    seen.block = aloop_sleep(2);
    return NULL;
}

static void test_enter_enomem(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    run_scenario(loop, enomem_task, NULL);
    assert_int_equal(seen.exit, -ENOMEM);
    assert_int_equal(seen.block, 0);
    aloop_free(loop);
}

/* A timed aloop_await inside a scope: the deadline cancels the awaited task
 * too (await semantics), and the scope reports the timeout. */
static void *slow_child(void *arg) {
    (void)arg;
    seen.after = aloop_sleep(10);
    return NULL;
}

static void *await_task(void *arg) {
    aloop_t *loop = arg;
    aloop_task_t *child = aloop_spawn(loop, slow_child, NULL);
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, 2), 0);
    seen.block = aloop_await(child, NULL);
    seen.exit = aloop_timeout_exit(&to, seen.block);
    seen.cancelling = aloop_future_cancelled(child);
    aloop_release(child);
    return NULL;
}

static void test_await_inside_scope(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    memset(&seen, 0, sizeof seen);
    aloop_task_t *t = spawn(loop, await_task, loop);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(seen.after, -ECANCELED);
    assert_int_equal(seen.block, -ECANCELED);
    assert_int_equal(seen.exit, -ETIMEDOUT);
    assert_int_equal(seen.cancelling, 1);
    assert_true(aloop_time(loop) == 2);
    aloop_release(t);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_cancels_and_exit_reports_timeout),
        cmocka_unit_test(test_deadline_not_reached_returns_rc),
        cmocka_unit_test(test_no_deadline),
        cmocka_unit_test(test_past_deadline_fires_at_once),
        cmocka_unit_test(test_enter_at),
        cmocka_unit_test(test_swallowed_cancel_still_times_out),
        cmocka_unit_test(test_zero_deadline_fires_at_next_suspension),
        cmocka_unit_test(test_expiry_delivered_at_next_suspension),
        cmocka_unit_test(test_exit_without_suspension),
        cmocka_unit_test(test_expiry_while_woken_but_not_run),
        cmocka_unit_test(test_outside_cancel_stays_a_cancel),
        cmocka_unit_test(test_outside_cancel_and_deadline_together),
        cmocka_unit_test(test_timeout_after_swallowed_cancel),
        cmocka_unit_test(test_nested_outer_fires_first),
        cmocka_unit_test(test_nested_inner_fires_first),
        cmocka_unit_test(test_nested_both_fire_together),
        cmocka_unit_test(test_scope_in_cleanup_of_expired_scope),
        cmocka_unit_test(test_reschedule_later_earlier_none),
        cmocka_unit_test(test_reschedule_misuse),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_task_finishing_inside_a_scope),
        cmocka_unit_test(test_scope_of_returned_task_is_not_open),
        cmocka_unit_test(test_enter_open_scope_is_busy),
        cmocka_unit_test(test_debug_warns_about_skipped_exit),
        cmocka_unit_test(test_loop_free_inside_a_scope),
        cmocka_unit_test(test_loop_free_with_due_deadline_queued),
        cmocka_unit_test(test_enter_enomem),
        cmocka_unit_test(test_await_inside_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

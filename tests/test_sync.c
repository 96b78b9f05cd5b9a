/* Tests for src/sync.c: Lock, Event, Semaphore, BoundedSemaphore, Condition. */
#define ALOOP_TEST_TRACE
#include "aloop_test.h"


/* A trace of what happened, shared by the task functions below. */

/* Shared objects of one test. */
static aloop_lock_t *lock;
static aloop_event_t *event;
static aloop_semaphore_t *sem;
static aloop_cond_t *cond;
static int active, max_active;

static void set_cb(void *e) { aloop_event_set(e); }

/* ------------------------------------------------------------------------ */
/* Lock                                                                     */
/* ------------------------------------------------------------------------ */

/* Takes the lock, notes its name, holds it across a sleep, releases. */
static void *locker(void *arg) {
    int rc = aloop_lock_acquire(lock);
    note("%s%d ", (char *)arg, rc == 0 ? 1 : rc);
    if (rc < 0) return NULL;
    aloop_sleep(1);
    assert_int_equal(aloop_lock_release(lock), 0);
    return NULL;
}

static void test_lock_fifo_fairness(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    trace_reset();
    aloop_task_t *ts[4];
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) ts[i] = spawn(loop, locker, names[i]);
    expect_trace(loop, ts, 4, "a1 b1 c1 d1 ");
    assert_false(aloop_lock_locked(lock));
    /* Each held it for 1 s, one after the other. */
    assert_true(aloop_time(loop) == 4.0);
    aloop_lock_free(lock);
    aloop_free(loop);
}

/* The holder releases (handing the lock to b) and cancels b in the same
 * step: b must not keep the lock, c must get it. */
static aloop_task_t *victim;
static void *release_and_cancel(void *arg) {
    (void)arg;
    assert_int_equal(aloop_lock_acquire(lock), 0);
    note("h ");
    assert_int_equal(aloop_sleep(1), 0);
    assert_int_equal(aloop_lock_release(lock), 0);
    assert_true(aloop_lock_locked(lock)); /* handed over, not free */
    assert_int_equal(aloop_cancel(victim), 1);
    return NULL;
}

static void test_lock_no_lost_wakeup_when_woken_waiter_is_cancelled(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    trace_reset();
    aloop_task_t *h = spawn(loop, release_and_cancel, "h");
    aloop_task_t *b = spawn(loop, locker, "b");
    aloop_task_t *c = spawn(loop, locker, "c");
    victim = b;
    aloop_task_t *ts[] = {h, b, c};
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "h b-125 c1 ");
    assert_int_equal(aloop_future_cancelled(b), 1);
    assert_false(aloop_lock_locked(lock));
    run_and_release(loop, ts, 3);
    aloop_lock_free(lock);
    aloop_free(loop);
}

static void test_lock_cancel_queued_waiter(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, locker, "a"), spawn(loop, locker, "b"),
                          spawn(loop, locker, "c")};
    /* Run the first step of each: a holds, b and c wait. */
    aloop_handle_t *h = aloop_call_later(loop, 0.5, cancel_cb, ts[1]);
    assert_non_null(h);
    expect_trace(loop, ts, 3, "a1 b-125 c1 ");
    assert_true(aloop_time(loop) == 2.0);
    aloop_lock_free(lock);
    aloop_free(loop);
}

static aloop_t *other_loop;
static void *misuse_in_task(void *arg) {
    aloop_lock_t *other = arg; /* belongs to another loop */
    aloop_event_t *oe = aloop_event_new(other_loop);
    aloop_semaphore_t *os = aloop_semaphore_new(other_loop, 1);
    aloop_cond_t *oc = aloop_cond_new(other_loop, other);
    assert_int_equal(aloop_event_wait(oe), -EINVAL);
    assert_int_equal(aloop_semaphore_acquire(os), -EINVAL);
    assert_int_equal(aloop_semaphore_release(os), -EINVAL);
    assert_int_equal(aloop_cond_wait(oc), -EINVAL);
    assert_int_equal(aloop_cond_notify(oc, 1), -EINVAL);
    aloop_cond_free(oc);
    aloop_semaphore_free(os);
    aloop_event_free(oe);
    assert_int_equal(aloop_lock_acquire(NULL), -EINVAL);
    assert_int_equal(aloop_lock_acquire(other), -EINVAL);
    assert_int_equal(aloop_lock_release(other), -EINVAL);
    assert_int_equal(aloop_lock_release(lock), -EPERM);
    assert_int_equal(aloop_lock_try_acquire(lock), 0);
    assert_int_equal(aloop_lock_try_acquire(lock), -EAGAIN);
    assert_int_equal(aloop_lock_release(lock), 0);
    /* A pending cancel wins even though the lock is free. */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_lock_acquire(lock), -ECANCELED);
    assert_false(aloop_lock_locked(lock));
    aloop_task_uncancel(aloop_current_task());
    return NULL;
}

static void test_lock_misuse(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *loop = vloop(), *loop2 = vloop();
    lock = aloop_lock_new(loop);
    aloop_lock_t *other = aloop_lock_new(loop2);
    other_loop = loop2;
    assert_null(aloop_lock_new(NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(aloop_lock_acquire(lock), -EPERM); /* outside a task */
    assert_int_equal(aloop_lock_release(NULL), -EINVAL);
    aloop_task_t *t = aloop_spawn(loop, misuse_in_task, other);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_lock_free(lock);
    aloop_lock_free(other);
    aloop_lock_free(NULL);
    aloop_free(loop);
    aloop_free(loop2);
}

/* ------------------------------------------------------------------------ */
/* Event                                                                    */
/* ------------------------------------------------------------------------ */

static void *event_waiter(void *arg) {
    int rc = aloop_event_wait(event);
    note("%s%d@%g ", (char *)arg, rc, aloop_time(aloop_current()));
    return NULL;
}

static void *event_setter(void *arg) {
    (void)arg;
    aloop_sleep(2);
    aloop_event_set(event);
    note("set ");
    return NULL;
}

static void test_event_set_wakes_every_waiter(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    event = aloop_event_new(loop);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, event_waiter, "a"), spawn(loop, event_waiter, "b"),
                          spawn(loop, event_setter, "s")};
    expect_trace(loop, ts, 3, "set a0@2 b0@2 ");
    assert_true(aloop_event_is_set(event));
    /* Set: waiting returns at once; cleared: it waits again. */
    trace_reset();
    ts[0] = spawn(loop, event_waiter, "c");
    expect_trace(loop, ts, 1, "c0@2 ");
    aloop_event_clear(event);
    assert_false(aloop_event_is_set(event));
    trace_reset();
    ts[0] = spawn(loop, event_waiter, "d");
    ts[1] = spawn(loop, event_setter, "s");
    expect_trace(loop, ts, 2, "set d0@4 ");
    aloop_event_free(event);
    aloop_free(loop);
}

static void test_event_wait_cancelled(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    event = aloop_event_new(loop);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, event_waiter, "a"), spawn(loop, event_waiter, "b")};
    aloop_call_later(loop, 1, cancel_cb, ts[0]);
    aloop_call_later(loop, 3, set_cb, event);
    expect_trace(loop, ts, 2, "a-125@1 b0@3 ");
    assert_int_equal(aloop_event_wait(event), -EPERM);
    assert_int_equal(aloop_event_wait(NULL), -EINVAL);
    aloop_event_free(event);
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                */
/* ------------------------------------------------------------------------ */

static void *sem_worker(void *arg) {
    int rc = aloop_semaphore_acquire(sem);
    if (rc < 0) {
        note("%s%d ", (char *)arg, rc);
        return NULL;
    }
    note("%s ", (char *)arg);
    if (++active > max_active) max_active = active;
    aloop_sleep(1);
    active--;
    assert_int_equal(aloop_semaphore_release(sem), 0);
    return NULL;
}

static void test_semaphore_limits_concurrency_in_fifo_order(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sem = aloop_semaphore_new(loop, 2);
    trace_reset();
    active = max_active = 0;
    const char *names[] = {"a", "b", "c", "d", "e"};
    aloop_task_t *ts[5];
    for (int i = 0; i < 5; i++) ts[i] = spawn(loop, sem_worker, names[i]);
    expect_trace(loop, ts, 5, "a b c d e ");
    assert_int_equal(max_active, 2);
    assert_true(aloop_time(loop) == 3.0);
    assert_false(aloop_semaphore_locked(sem));
    aloop_semaphore_free(sem);
    aloop_free(loop);
}

static void *sem_release_and_cancel(void *arg) {
    (void)arg;
    assert_int_equal(aloop_semaphore_acquire(sem), 0);
    assert_true(aloop_semaphore_locked(sem));
    aloop_sleep(1);
    assert_int_equal(aloop_semaphore_release(sem), 0); /* handed to b */
    aloop_cancel(victim);
    return NULL;
}

static void test_semaphore_woken_then_cancelled_passes_unit_on(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sem = aloop_semaphore_new(loop, 1);
    trace_reset();
    active = max_active = 0;
    aloop_task_t *ts[] = {spawn(loop, sem_release_and_cancel, "h"), spawn(loop, sem_worker, "b"),
                          spawn(loop, sem_worker, "c")};
    victim = ts[1];
    expect_trace(loop, ts, 3, "b-125 c ");
    assert_false(aloop_semaphore_locked(sem));
    aloop_semaphore_free(sem);
    aloop_free(loop);
}

static void test_semaphore_release_rules(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_semaphore_t *s = aloop_semaphore_new(loop, 1);
    aloop_semaphore_t *b = aloop_bounded_semaphore_new(loop, 1);
    assert_null(aloop_semaphore_new(NULL, 1));
    /* A plain semaphore may go above its initial value. */
    assert_int_equal(aloop_semaphore_release(s), 0);
    assert_int_equal(aloop_semaphore_release(b), -EINVAL);
    assert_int_equal(aloop_semaphore_release(NULL), -EINVAL);
    assert_int_equal(aloop_semaphore_acquire(s), -EPERM);
    aloop_semaphore_t *zero = aloop_semaphore_new(loop, 0);
    assert_true(aloop_semaphore_locked(zero));
    assert_false(aloop_semaphore_locked(s));
    aloop_semaphore_free(zero);
    aloop_semaphore_free(s);
    aloop_semaphore_free(b);
    aloop_free(loop);
}

static void *bounded_user(void *arg) {
    (void)arg;
    assert_int_equal(aloop_semaphore_acquire(sem), 0);
    assert_int_equal(aloop_semaphore_acquire(sem), 0);
    assert_true(aloop_semaphore_locked(sem));
    assert_int_equal(aloop_semaphore_release(sem), 0);
    assert_int_equal(aloop_semaphore_release(sem), 0);
    assert_int_equal(aloop_semaphore_release(sem), -EINVAL);
    return NULL;
}

static void test_bounded_semaphore_over_release(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sem = aloop_bounded_semaphore_new(loop, 2);
    aloop_task_t *t = spawn(loop, bounded_user, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_semaphore_free(sem);
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Condition                                                                */
/* ------------------------------------------------------------------------ */

static int items;

static void *consumer(void *arg) {
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    int rc = 0;
    while (items == 0 && rc == 0) rc = aloop_cond_wait(cond);
    /* Returns with the lock held, whatever happened. */
    assert_true(aloop_lock_locked(aloop_cond_lock(cond)));
    if (rc == 0) items--;
    note("%s%d@%g ", (char *)arg, rc, aloop_time(aloop_current()));
    assert_int_equal(aloop_lock_release(aloop_cond_lock(cond)), 0);
    return NULL;
}

/* arg = how many items; they come at t = 1 (2 items) or t = 3 (1 item). */
static void *producer(void *arg) {
    size_t n = (size_t)(uintptr_t)arg;
    aloop_sleep(n == 2 ? 1 : 3);
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    items += (int)n;
    note("p%zu ", n);
    assert_int_equal(aloop_cond_notify(cond, n), (int)n);
    aloop_sleep(1); /* hold the lock: the woken ones wait for it */
    assert_int_equal(aloop_lock_release(aloop_cond_lock(cond)), 0);
    return NULL;
}

static void test_cond_wait_releases_and_reacquires(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    cond = aloop_cond_new(loop, NULL);
    assert_non_null(cond);
    trace_reset();
    items = 0;
    aloop_task_t *ts[] = {spawn(loop, consumer, "a"), spawn(loop, consumer, "b"),
                          spawn(loop, consumer, "c"),
                          aloop_spawn(loop, producer, (void *)(uintptr_t)2),
                          aloop_spawn(loop, producer, (void *)(uintptr_t)1)};
    run_and_release(loop, ts, 5);
    /* notify(2) woke a and b (FIFO); both got the lock once the producer
     * let go of it at t = 2; c waited for the second producer. */
    assert_string_equal(trace, "p2 a0@2 b0@2 p1 c0@4 ");
    aloop_cond_free(cond);
    aloop_free(loop);
}

/* Cancel a waiter while the lock is held by someone else: it must wait for
 * the lock and return -ECANCELED holding it. */
static void *hold_lock_then_cancel(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    aloop_cancel(victim);
    assert_int_equal(aloop_sleep(2), 0);
    note("r ");
    assert_int_equal(aloop_lock_release(aloop_cond_lock(cond)), 0);
    return NULL;
}

static void test_cond_cancelled_wait_returns_with_lock(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_lock_t *l = aloop_lock_new(loop);
    cond = aloop_cond_new(loop, l);
    trace_reset();
    items = 0;
    aloop_task_t *ts[] = {spawn(loop, consumer, "a"), spawn(loop, hold_lock_then_cancel, "h")};
    victim = ts[0];
    expect_trace(loop, ts, 2, "r a-125@3 ");
    assert_false(aloop_lock_locked(l));
    aloop_cond_free(cond);
    aloop_lock_free(l);
    aloop_free(loop);
}

/* A notified waiter cancelled before it runs passes the notification on. */
static void *notify_one_then_cancel(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    items = 1;
    assert_int_equal(aloop_cond_notify(cond, 1), 1);
    aloop_cancel(victim);
    assert_int_equal(aloop_lock_release(aloop_cond_lock(cond)), 0);
    return NULL;
}

static void test_cond_notification_not_lost(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    cond = aloop_cond_new(loop, NULL);
    trace_reset();
    items = 0;
    aloop_task_t *ts[] = {spawn(loop, consumer, "a"), spawn(loop, consumer, "b"),
                          spawn(loop, notify_one_then_cancel, "n")};
    victim = ts[0];
    expect_trace(loop, ts, 3, "a-125@1 b0@1 ");
    aloop_cond_free(cond);
    aloop_free(loop);
}

static void *cond_misuse(void *arg) {
    (void)arg;
    assert_int_equal(aloop_cond_wait(cond), -EPERM);
    assert_int_equal(aloop_cond_notify(cond, 1), -EPERM);
    assert_int_equal(aloop_cond_notify_all(cond), -EPERM);
    assert_int_equal(aloop_cond_wait(NULL), -EINVAL);
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    assert_int_equal(aloop_cond_notify_all(cond), 0);
    assert_int_equal(aloop_lock_release(aloop_cond_lock(cond)), 0);
    return NULL;
}

static void test_cond_misuse(void **state) {
    (void)state;
    aloop_t *loop = vloop(), *loop2 = vloop();
    aloop_lock_t *other = aloop_lock_new(loop2);
    assert_null(aloop_cond_new(loop, other));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_cond_new(NULL, NULL));
    cond = aloop_cond_new(loop, NULL);
    aloop_task_t *t = spawn(loop, cond_misuse, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_cond_free(cond);
    aloop_lock_free(other);
    aloop_free(loop);
    aloop_free(loop2);
}

/* ------------------------------------------------------------------------ */
/* Freeing objects with waiters                                             */
/* ------------------------------------------------------------------------ */

static void *free_everything(void *arg) {
    (void)arg;
    aloop_sleep(1);
    aloop_lock_free(lock);
    aloop_event_free(event);
    aloop_semaphore_free(sem);
    aloop_cond_free(cond);
    return NULL;
}

static void *lock_waiter(void *arg) {
    note("%s%d ", (char *)arg, aloop_lock_acquire(lock));
    return NULL;
}
static void *sem_waiter(void *arg) {
    note("%s%d ", (char *)arg, aloop_semaphore_acquire(sem));
    return NULL;
}
static void *cond_waiter(void *arg) {
    /* The condition has a lock of its own: freeing the condition frees it,
     * so the waiter must not touch it after -EPIPE. */
    assert_int_equal(aloop_lock_acquire(aloop_cond_lock(cond)), 0);
    note("%s%d ", (char *)arg, aloop_cond_wait(cond));
    return NULL;
}

static void test_free_with_waiters_wakes_them_with_epipe(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    event = aloop_event_new(loop);
    sem = aloop_semaphore_new(loop, 0);
    cond = aloop_cond_new(loop, NULL);
    assert_int_equal(aloop_lock_try_acquire(lock), 0);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, lock_waiter, "l"), spawn(loop, event_waiter, "e"),
                          spawn(loop, sem_waiter, "s"), spawn(loop, cond_waiter, "c"),
                          spawn(loop, free_everything, NULL)};
    expect_trace(loop, ts, 5, "l-32 e-32@1 s-32 c-32 ");
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Waiting allocates nothing                                                */
/* ------------------------------------------------------------------------ */

static int rounds;

static void *ping(void *arg) {
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        if (aloop_lock_acquire(lock) < 0) return NULL;
        aloop_yield();
        aloop_lock_release(lock);
        aloop_semaphore_release(sem);
    }
    return NULL;
}

static void *pong(void *arg) {
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        if (aloop_semaphore_acquire(sem) < 0) return NULL;
        if (aloop_lock_acquire(lock) < 0) return NULL;
        aloop_lock_release(lock);
    }
    return NULL;
}

/* Allocations of a loop whose two tasks ping-pong n rounds. */
static unsigned long pingpong_allocations(int n) {
    rounds = n;
    test_fail_alloc(0, 0); /* counts from 0 */
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    sem = aloop_semaphore_new(loop, 0);
    aloop_task_t *ts[] = {spawn(loop, ping, NULL), spawn(loop, pong, NULL)};
    run_and_release(loop, ts, 2);
    aloop_lock_free(lock);
    aloop_semaphore_free(sem);
    aloop_free(loop);
    return test_alloc_count();
}

/* Starting the tasks allocates; waiting does not: 100 rounds cost what one
 * round costs. */
static void test_waiting_allocates_nothing(void **state) {
    (void)state;
    unsigned long one = pingpong_allocations(1);
    assert_true(one > 0); /* the counter works */
    assert_int_equal(pingpong_allocations(100), one);
}


/* ------------------------------------------------------------------------ */
/* Loop teardown and allocation failures                                    */
/* ------------------------------------------------------------------------ */

static void *hold_lock_long(void *arg) {
    (void)arg;
    assert_int_equal(aloop_lock_acquire(lock), 0);
    int rc = aloop_sleep(100);
    note("holder%d ", rc);
    assert_int_equal(aloop_lock_release(lock), 0);
    return NULL;
}

static void *cond_waiter_shared_lock(void *arg) {
    (void)arg;
    aloop_sleep(1); /* after the holder: the lock is taken */
    int rc = aloop_lock_acquire(lock);
    note("cw-acquire%d ", rc);
    return NULL;
}

static void *wait_on_cond(void *arg) {
    (void)arg;
    assert_int_equal(aloop_lock_acquire(lock), 0);
    int rc = aloop_cond_wait(cond); /* releases the lock to the holder */
    assert_true(aloop_lock_locked(lock));
    note("cond%d ", rc);
    assert_int_equal(aloop_lock_release(lock), 0);
    return NULL;
}

static void *sleep_two(void *arg) {
    (void)arg;
    return aloop_sleep(2) == 0 ? NULL : aloop_fail(-EIO);
}

/* aloop_free cancels every task; a task in aloop_cond_wait must still get
 * the lock back (from a holder that is being cancelled too) and the free
 * must not hang. */
static void test_loop_free_with_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    lock = aloop_lock_new(loop);
    cond = aloop_cond_new(loop, lock);
    event = aloop_event_new(loop);
    sem = aloop_semaphore_new(loop, 0);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, wait_on_cond, NULL), spawn(loop, hold_lock_long, NULL),
                          spawn(loop, cond_waiter_shared_lock, NULL),
                          spawn(loop, event_waiter, "e"), spawn(loop, sem_waiter, "s")};
    aloop_task_t *tick = spawn(loop, sleep_two, NULL);
    assert_int_equal(aloop_run_until_complete(loop, tick), 0);
    aloop_free(loop);
    for (size_t i = 0; i < 5; i++) assert_true(aloop_future_done(ts[i]));
    assert_non_null(strstr(trace, "holder-125 "));
    assert_non_null(strstr(trace, "cond-125 "));
    for (size_t i = 0; i < 5; i++) aloop_release(ts[i]);
    aloop_release(tick);
    aloop_event_free(event);
    aloop_semaphore_free(sem);
    aloop_cond_free(cond);
    aloop_lock_free(lock);
}

static void test_constructors_fail_cleanly(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    for (long nth = 1; nth <= 2; nth++) {
        test_fail_alloc(nth, 1);
        aloop_cond_t *c = aloop_cond_new(loop, NULL);
        test_fail_alloc(0, 0);
        assert_null(c);
        assert_int_equal(errno, ENOMEM);
    }
    test_fail_alloc(1, -1);
    assert_null(aloop_lock_new(loop));
    assert_null(aloop_event_new(loop));
    assert_null(aloop_semaphore_new(loop, 1));
    test_fail_alloc(0, 0);
    assert_int_equal(errno, ENOMEM);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_fifo_fairness),
        cmocka_unit_test(test_lock_no_lost_wakeup_when_woken_waiter_is_cancelled),
        cmocka_unit_test(test_lock_cancel_queued_waiter),
        cmocka_unit_test(test_lock_misuse),
        cmocka_unit_test(test_event_set_wakes_every_waiter),
        cmocka_unit_test(test_event_wait_cancelled),
        cmocka_unit_test(test_semaphore_limits_concurrency_in_fifo_order),
        cmocka_unit_test(test_semaphore_woken_then_cancelled_passes_unit_on),
        cmocka_unit_test(test_semaphore_release_rules),
        cmocka_unit_test(test_bounded_semaphore_over_release),
        cmocka_unit_test(test_cond_wait_releases_and_reacquires),
        cmocka_unit_test(test_cond_cancelled_wait_returns_with_lock),
        cmocka_unit_test(test_cond_notification_not_lost),
        cmocka_unit_test(test_cond_misuse),
        cmocka_unit_test(test_free_with_waiters_wakes_them_with_epipe),
        cmocka_unit_test(test_waiting_allocates_nothing),
        cmocka_unit_test(test_loop_free_with_waiters),
        cmocka_unit_test(test_constructors_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

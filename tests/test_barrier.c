/* Tests for src/barrier.c: asyncio.Barrier, on the virtual clock. */
#include "aloop_test.h"


static aloop_barrier_t *bar;
static int got[8];
static double at[8];

/* Party i arrives after sleeping i seconds; records its result and time. */
static void *party(void *arg) {
    int i = (int)(intptr_t)arg;
    aloop_sleep(i);
    got[i] = aloop_barrier_wait(bar);
    at[i] = now();
    return NULL;
}

static void spawn_parties(aloop_t *loop, aloop_task_t **ts, int n) {
    for (int i = 0; i < n; i++) ts[i] = spawn(loop, party, (void *)(intptr_t)i);
}

static void test_all_go_on_when_the_last_arrives(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    assert_non_null(bar);
    assert_int_equal(aloop_barrier_parties(bar), 3);
    aloop_task_t *ts[3];
    spawn_parties(loop, ts, 3);
    run_and_release(loop, ts, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(got[i], i); /* arrival index */
        assert_true(at[i] == 2.0);   /* nobody left before the last arrived */
    }
    assert_int_equal(aloop_barrier_n_waiting(bar), 0);
    assert_int_equal(aloop_barrier_broken(bar), 0);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

/* Rounds: two parties meet three times; neither gets a round ahead. */
static char trace[64];
static void *rounds_party(void *arg) {
    const char *name = arg;
    for (int r = 0; r < 3; r++) {
        aloop_sleep(name[0] == 'a' ? 1 : 2);
        int rc = aloop_barrier_wait(bar);
        assert_true(rc == 0 || rc == 1);
        size_t len = strlen(trace);
        snprintf(trace + len, sizeof trace - len, "%s%d ", name, r);
    }
    return NULL;
}

static void test_rounds(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 2);
    trace[0] = 0;
    aloop_task_t *ts[2] = {spawn(loop, rounds_party, "a"), spawn(loop, rounds_party, "b")};
    run_and_release(loop, ts, 2);
    /* b arrives last each round (2 s vs 1 s), so it passes first */
    assert_string_equal(trace, "b0 a0 b1 a1 b2 a2 ");
    assert_true(aloop_time(loop) == 6.0);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

static void test_one_party_never_waits(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 1);
    aloop_task_t *ts[1];
    spawn_parties(loop, ts, 1);
    run_and_release(loop, ts, 1);
    assert_int_equal(got[0], 0);
    assert_true(at[0] == 0.0);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

/* A waiter cancelled while the round fills no longer counts: the round
 * needs another arrival, and indices stay distinct. */
static void test_cancel_while_filling_removes_the_waiter(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[4];
    spawn_parties(loop, ts, 4); /* arrive at 0, 1, 2, 3 */
    assert_non_null(aloop_call_later(loop, 0.5, cancel_cb, ts[0]));
    run_and_release(loop, ts, 4);
    assert_int_equal(got[0], -ECANCELED);
    assert_true(at[0] == 0.5);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 2);
    for (int i = 1; i < 4; i++) assert_true(at[i] == 3.0);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

static void *n_waiting_probe(void *arg) {
    (void)arg;
    aloop_sleep(0.5);
    got[7] = (int)aloop_barrier_n_waiting(bar);
    return NULL;
}

static void test_n_waiting(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[4];
    spawn_parties(loop, ts, 2);
    ts[2] = spawn(loop, n_waiting_probe, NULL); /* at 0.5: party 0 waits */
    ts[3] = spawn(loop, party, (void *)(intptr_t)2);
    run_and_release(loop, ts, 4);
    assert_int_equal(got[7], 1);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

/* Released, then cancelled before it ran: that waiter sees -ECANCELED, the
 * others still go on. */
static void *cancel_at_1(void *arg) {
    aloop_sleep(1); /* armed after party 1's sleep: runs right after it */
    aloop_cancel(arg);
    return NULL;
}

static void test_cancel_after_release(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 2);
    aloop_task_t *ts[3];
    spawn_parties(loop, ts, 2);
    ts[2] = spawn(loop, cancel_at_1, ts[0]);
    run_and_release(loop, ts, 3);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[0], -ECANCELED);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

static void *aborter(void *arg) {
    (void)arg;
    aloop_sleep(0.5);
    assert_int_equal(aloop_barrier_abort(bar), 0);
    assert_int_equal(aloop_barrier_broken(bar), 1);
    got[6] = aloop_barrier_wait(bar); /* broken: at once */
    assert_int_equal(aloop_barrier_reset(bar), 0);
    assert_int_equal(aloop_barrier_broken(bar), 0);
    return NULL;
}

static void test_abort_breaks_until_reset(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 2);
    memset(got, 0, sizeof got);
    aloop_task_t *ts[3];
    spawn_parties(loop, ts, 1); /* waits at 0 */
    ts[1] = spawn(loop, aborter, NULL);
    ts[2] = spawn(loop, party, (void *)(intptr_t)3); /* after reset: waits */
    /* a fourth party completes the round with party 3 */
    aloop_task_t *p4 = spawn(loop, party, (void *)(intptr_t)4);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(got[0], -EPIPE);
    assert_true(at[0] == 0.5);
    assert_int_equal(got[6], -EPIPE);
    assert_int_equal(got[3], 0);
    assert_int_equal(got[4], 1);
    for (int i = 0; i < 3; i++) aloop_release(ts[i]);
    aloop_release(p4);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

static void *resetter(void *arg) {
    (void)arg;
    aloop_sleep(1.5);
    assert_int_equal(aloop_barrier_reset(bar), 0);
    return NULL;
}

static void test_reset_breaks_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[5];
    spawn_parties(loop, ts, 2);         /* 0 and 1 wait, broken at 1.5 */
    ts[2] = spawn(loop, resetter, NULL);
    ts[3] = spawn(loop, party, (void *)(intptr_t)2);
    ts[4] = spawn(loop, party, (void *)(intptr_t)3);
    aloop_task_t *p5 = spawn(loop, party, (void *)(intptr_t)5);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(got[0], -EPIPE);
    assert_int_equal(got[1], -EPIPE);
    assert_true(at[0] == 1.5 && at[1] == 1.5);
    /* the next round (2, 3, 5) works */
    assert_int_equal(got[2], 0);
    assert_int_equal(got[3], 1);
    assert_int_equal(got[5], 2);
    for (int i = 0; i < 5; i++) aloop_release(ts[i]);
    aloop_release(p5);
    aloop_barrier_free(bar);
    aloop_free(loop);
}

static void *freer(void *arg) {
    (void)arg;
    aloop_sleep(1.5);
    aloop_barrier_free(bar);
    bar = NULL;
    return NULL;
}

static void test_free_wakes_waiters_with_epipe(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[3];
    spawn_parties(loop, ts, 2);
    ts[2] = spawn(loop, freer, NULL);
    run_and_release(loop, ts, 3);
    assert_int_equal(got[0], -EPIPE);
    assert_int_equal(got[1], -EPIPE);
    aloop_free(loop);
}

/* The last party frees the barrier as soon as it passes: the others were
 * woken but have not run yet, and must not touch it (ASan). */
static void *last_and_free(void *arg) {
    (void)arg;
    aloop_sleep(2);
    got[2] = aloop_barrier_wait(bar);
    aloop_barrier_free(bar);
    bar = NULL;
    return NULL;
}

static void test_free_right_after_release(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[3];
    spawn_parties(loop, ts, 2);
    ts[2] = spawn(loop, last_and_free, NULL);
    run_and_release(loop, ts, 3);
    assert_int_equal(got[0], 0);
    assert_int_equal(got[1], 1);
    assert_int_equal(got[2], 2);
    aloop_free(loop);
}

static void test_loop_free_with_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    bar = aloop_barrier_new(loop, 3);
    aloop_task_t *ts[2];
    spawn_parties(loop, ts, 2);
    assert_non_null(aloop_call_later(loop, 5, (void (*)(void *))aloop_stop, loop));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_barrier_n_waiting(bar), 2);
    aloop_release(ts[0]);
    aloop_release(ts[1]);
    aloop_free(loop); /* cancels them: they leave the barrier */
    assert_int_equal(got[0], -ECANCELED);
    assert_int_equal(got[1], -ECANCELED);
    assert_int_equal(aloop_barrier_n_waiting(bar), 0);
    aloop_barrier_free(bar);
}

static aloop_barrier_t *other_bar;
static void *misuse_task(void *arg) {
    (void)arg;
    assert_int_equal(aloop_barrier_wait(NULL), -EINVAL);
    assert_int_equal(aloop_barrier_wait(other_bar), -EINVAL); /* another loop's */
    assert_int_equal(aloop_barrier_abort(other_bar), -EINVAL);
    assert_int_equal(aloop_barrier_reset(other_bar), -EINVAL);
    aloop_cancel(aloop_current_task());
    got[0] = aloop_barrier_wait(bar); /* a pending cancel wins, even for the last party */
    aloop_task_uncancel(aloop_current_task());
    return NULL;
}

static void test_misuse(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    errno = 0;
    assert_null(aloop_barrier_new(NULL, 2));
    assert_int_equal(errno, EINVAL);
    aloop_t *loop = vloop();
    errno = 0;
    assert_null(aloop_barrier_new(loop, 0));
    assert_int_equal(errno, EINVAL);
    bar = aloop_barrier_new(loop, 1);
    assert_int_equal(aloop_barrier_wait(bar), -EPERM); /* outside a task */
    assert_int_equal(aloop_barrier_abort(NULL), -EINVAL);
    assert_int_equal(aloop_barrier_reset(NULL), -EINVAL);
    assert_int_equal(aloop_barrier_broken(NULL), 0);
    assert_int_equal(aloop_barrier_n_waiting(NULL), 0);
    aloop_barrier_free(NULL);
    aloop_t *other = vloop();
    other_bar = aloop_barrier_new(other, 2);
    aloop_task_t *t = spawn(loop, misuse_task, NULL);
    run_and_release(loop, &t, 1);
    assert_int_equal(got[0], -ECANCELED);
    aloop_barrier_free(other_bar);
    aloop_barrier_free(bar);
    aloop_free(other);
    aloop_free(loop);
}

static void test_new_enomem(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    test_fail_alloc(1, 1);
    errno = 0;
    assert_null(aloop_barrier_new(loop, 2));
    assert_int_equal(errno, ENOMEM);
    test_fail_alloc(0, 0);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_go_on_when_the_last_arrives),
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_one_party_never_waits),
        cmocka_unit_test(test_cancel_while_filling_removes_the_waiter),
        cmocka_unit_test(test_n_waiting),
        cmocka_unit_test(test_cancel_after_release),
        cmocka_unit_test(test_abort_breaks_until_reset),
        cmocka_unit_test(test_reset_breaks_waiters),
        cmocka_unit_test(test_free_wakes_waiters_with_epipe),
        cmocka_unit_test(test_free_right_after_release),
        cmocka_unit_test(test_loop_free_with_waiters),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_new_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

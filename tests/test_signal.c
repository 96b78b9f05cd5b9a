/*
 * test_signal.c - aloop_signal_wait (src/signal.c). Signals are raised from
 * loop callbacks while tasks wait, so the order of events is fixed.
 */
#include "aloop_test.h"


#include <pthread.h>
#include <signal.h>
#include <unistd.h>

typedef struct sig_ctx {
    int rc[4];
    double when[4];
} sig_ctx_t;

static void raise_usr1(void *arg) {
    (void)arg;
    raise(SIGUSR1);
}

static void kill_usr2(void *arg) {
    (void)arg;
    kill(getpid(), SIGUSR2);
}

static void *wait_usr1(void *arg) {
    int *rc = arg;
    *rc = aloop_signal_wait(SIGUSR1);
    return NULL;
}

static void *wait_usr2(void *arg) {
    int *rc = arg;
    *rc = aloop_signal_wait(SIGUSR2);
    return NULL;
}

/* raise() from a callback while a task waits: the task wakes, the process
 * lives (the signal was blocked and read from the signalfd). */
static void test_raise_wakes_waiter(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int rc = 1;
    aloop_release(aloop_spawn(loop, wait_usr1, &rc));
    aloop_call_later(loop, 2.0, raise_usr1, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc, 0);
    assert_true(aloop_time(loop) >= 2.0);
    aloop_free(loop);
}

/* Several tasks on the same signal all wake; a task on another signal
 * only wakes for that one (kill(getpid()) this time). */
static void test_several_waiters(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int a = 1, b = 1, c = 1;
    aloop_release(aloop_spawn(loop, wait_usr1, &a));
    aloop_release(aloop_spawn(loop, wait_usr1, &b));
    aloop_release(aloop_spawn(loop, wait_usr2, &c));
    aloop_call_later(loop, 1.0, raise_usr1, NULL);
    /* after the first signal, USR2's waiter is still there */
    aloop_call_later(loop, 3.0, kill_usr2, NULL);
    aloop_run(loop);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    assert_int_equal(c, 0);
    aloop_free(loop);
}

static void *wait_then_check(void *arg) {
    sig_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    c->rc[0] = aloop_signal_wait(SIGUSR1);
    c->when[0] = aloop_time(loop);
    aloop_sleep(1.0); /* the second signal comes while nobody waits */
    c->rc[1] = aloop_signal_wait(SIGUSR1);
    c->when[1] = aloop_time(loop);
    return NULL;
}

/* A signal that arrives while nobody waits stays pending and wakes the next
 * waiter at once. */
static void test_pending_signal_kept(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sig_ctx_t c = {0};
    aloop_release(aloop_spawn(loop, wait_then_check, &c));
    aloop_call_later(loop, 1.0, raise_usr1, NULL);
    aloop_call_later(loop, 1.5, raise_usr1, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 0);
    assert_true(c.when[0] == 1.0);
    assert_true(c.when[1] == 2.0);
    aloop_free(loop);
}

/* Cancelling a signal wait removes it: nothing keeps the loop alive. */
static void test_cancel_removes_wait(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int rc = 1;
    aloop_task_t *t = aloop_spawn(loop, wait_usr1, &rc);
    aloop_stop(loop);
    aloop_run(loop);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* the wait is work left */
    aloop_cancel(t);
    assert_int_equal(aloop_run(loop), 0); /* nothing keeps the loop any more */
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(aloop_run_once(loop, 0), 0);
    aloop_release(t);
    /* and aloop_free cancels a waiting one */
    rc = 1;
    aloop_release(aloop_spawn(loop, wait_usr2, &rc));
    aloop_stop(loop);
    aloop_run(loop);
    aloop_free(loop);
    assert_int_equal(rc, -ECANCELED);
}


/* A signal that arrives after the last wait for it is not lost at
 * aloop_free: it is raised again once unblocked, so the process's own
 * disposition (here a counting handler) gets it. */
static volatile sig_atomic_t usr1_handled;
static void count_usr1(int signo) {
    (void)signo;
    usr1_handled++;
}

static void *wait_once_then_raise(void *arg) {
    (void)arg;
    assert_int_equal(aloop_signal_wait(SIGUSR1), 0);
    raise(SIGUSR1); /* nobody waits any more: stays pending (blocked) */
    return NULL;
}

static void test_pending_signal_delivered_at_free(void **state) {
    (void)state;
#if !defined(__linux__) || defined(ALOOP_NO_SIGNALFD)
    skip(); /* the self-pipe drops a signal nobody waits for (signal.c) */
#endif
    struct sigaction sa = {.sa_handler = count_usr1}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    usr1_handled = 0;
    aloop_t *loop = vloop();
    aloop_release(aloop_spawn(loop, wait_once_then_raise, NULL));
    aloop_call_later(loop, 1.0, raise_usr1, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(usr1_handled, 0); /* the loop had it blocked */
    aloop_free(loop);
    assert_int_equal(usr1_handled, 1);
    sigaction(SIGUSR1, &old, NULL);
}

/* After aloop_free the signal is unblocked again (we blocked it). */
static void test_mask_restored(void **state) {
    (void)state;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    assert_false(sigismember(&cur, SIGUSR1));
    assert_false(sigismember(&cur, SIGUSR2));
}

static void *invalid_task(void *arg) {
    (void)arg;
    assert_int_equal(aloop_signal_wait(0), -EINVAL);
    assert_int_equal(aloop_signal_wait(-3), -EINVAL);
    assert_int_equal(aloop_signal_wait(SIGKILL), -EINVAL);
    assert_int_equal(aloop_signal_wait(SIGSTOP), -EINVAL);
    assert_int_equal(aloop_signal_wait(100000), -EINVAL);
    return NULL;
}

static void test_invalid(void **state) {
    (void)state;
    assert_int_equal(aloop_main(invalid_task, NULL, NULL), 0);
    assert_int_equal(aloop_signal_wait(SIGUSR1), -EPERM);
}

/* ---- aloop_signal_wait_any ------------------------------------------------ */

static sigset_t usr_set(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    return s;
}

static void *wait_any_usr(void *arg) {
    int *rc = arg;
    sigset_t s = usr_set();
    *rc = aloop_signal_wait_any(&s);
    return NULL;
}

#if defined(__linux__) && !defined(ALOOP_NO_SIGNALFD)
static void raise_both(void *arg) {
    (void)arg;
    raise(SIGUSR2);
    raise(SIGUSR1);
}
#endif

/* The number of the signal that came; a plain wait on the same signal
 * wakes too; two pending at once come out one per wait, none lost. */
static void test_wait_any(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int any = 0, plain = 1;
    aloop_release(aloop_spawn(loop, wait_any_usr, &any));
    aloop_release(aloop_spawn(loop, wait_usr2, &plain));
    aloop_call_later(loop, 1.0, kill_usr2, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(any, SIGUSR2);
    assert_int_equal(plain, 0);
    any = 0;
    aloop_release(aloop_spawn(loop, wait_any_usr, &any));
    aloop_call_later(loop, 1.0, raise_usr1, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(any, SIGUSR1);
#if defined(__linux__) && !defined(ALOOP_NO_SIGNALFD) /* the self-pipe drops them */
    aloop_call_soon(loop, raise_both, NULL); /* nobody waits: both stay pending */
    assert_int_equal(aloop_run(loop), 0);
    int first = 0, second = 0;
    aloop_release(aloop_spawn(loop, wait_any_usr, &first));
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(aloop_spawn(loop, wait_any_usr, &second));
    assert_int_equal(aloop_run(loop), 0);
    assert_true((first == SIGUSR1 && second == SIGUSR2) || (first == SIGUSR2 && second == SIGUSR1));
#endif
    assert_int_equal(aloop_run_once(loop, 0), 0); /* no wait holds the loop */
    aloop_free(loop);
}

/* Cancelled: -ECANCELED, nothing keeps the loop alive, and a signal that
 * comes afterwards stays pending for the next wait. */
static void test_wait_any_cancel(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    int rc = 1;
    aloop_task_t *t = aloop_spawn(loop, wait_any_usr, &rc);
    aloop_stop(loop);
    aloop_run(loop);
    aloop_cancel(t);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(aloop_run_once(loop, 0), 0); /* no wait holds the loop */
    aloop_release(t);
    raise(SIGUSR1);
    rc = 1;
    aloop_release(aloop_spawn(loop, wait_any_usr, &rc));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(rc, SIGUSR1);
    aloop_free(loop);
}

static void *wait_any_invalid_task(void *arg) {
    (void)arg;
    sigset_t s;
    assert_int_equal(aloop_signal_wait_any(NULL), -EINVAL);
    sigemptyset(&s);
    assert_int_equal(aloop_signal_wait_any(&s), -EINVAL);
    const int bad[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = usr_set();
        sigaddset(&s, bad[i]);
        assert_int_equal(aloop_signal_wait_any(&s), -EINVAL);
    }
    sigfillset(&s);
    assert_int_equal(aloop_signal_wait_any(&s), -EINVAL);
    return NULL;
}

static void test_wait_any_invalid(void **state) {
    (void)state;
    assert_int_equal(aloop_main(wait_any_invalid_task, NULL, NULL), 0);
    sigset_t s = usr_set();
    assert_int_equal(aloop_signal_wait_any(&s), -EPERM);
}

/* Two loops on two threads waiting for different sets: each signal wakes
 * the loop that waits for it (the process-directed signal stays pending
 * until that loop's signalfd reads it). */
typedef struct any_thread {
    pthread_t th;
    int signos[2];
    int got;
} any_thread_t;

static void *any_thread_task(void *arg) {
    any_thread_t *a = arg;
    sigset_t s;
    sigemptyset(&s);
    for (int i = 0; i < 2; i++)
        if (a->signos[i]) sigaddset(&s, a->signos[i]);
    a->got = aloop_signal_wait_any(&s);
    return NULL;
}

static void *any_thread_main(void *arg) {
    aloop_main(any_thread_task, arg, NULL);
    return NULL;
}

static void test_wait_any_two_loops(void **state) {
    (void)state;
#if !defined(__linux__) || defined(ALOOP_NO_SIGNALFD)
    skip(); /* the self-pipe reaches one loop per signal */
#endif
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGWINCH);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
    any_thread_t a = {.signos = {SIGUSR1, 0}}, b = {.signos = {SIGUSR2, SIGWINCH}};
    assert_int_equal(pthread_create(&a.th, NULL, any_thread_main, &a), 0);
    assert_int_equal(pthread_create(&b.th, NULL, any_thread_main, &b), 0);
    kill(getpid(), SIGUSR2);
    assert_int_equal(pthread_join(b.th, NULL), 0);
    assert_int_equal(b.got, SIGUSR2);
    kill(getpid(), SIGUSR1);
    assert_int_equal(pthread_join(a.th, NULL), 0);
    assert_int_equal(a.got, SIGUSR1);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raise_wakes_waiter),
        cmocka_unit_test(test_pending_signal_delivered_at_free),
        cmocka_unit_test(test_several_waiters),
        cmocka_unit_test(test_pending_signal_kept),
        cmocka_unit_test(test_cancel_removes_wait),
        cmocka_unit_test(test_mask_restored),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_wait_any),
        cmocka_unit_test(test_wait_any_cancel),
        cmocka_unit_test(test_wait_any_invalid),
        cmocka_unit_test(test_wait_any_two_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

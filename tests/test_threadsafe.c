/* Tests for src/threadsafe.c: aloop_run_threadsafe from a plain thread and
 * from a task of another loop (results, errors, cancellation, -EPIPE), and
 * two loops in two threads exchanging 100,000 calls each way. */
#include "aloop_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>


/* ---- a loop served by its own thread until told to quit ---------------- */

typedef struct server {
    aloop_t *loop;
    aloop_future_t *quit;
    pthread_t th;
    int rc;
} server_t;

static void *server_main(void *arg) {
    server_t *s = arg;
    /* no task of its own: it sleeps until other threads post work */
    s->rc = aloop_run_until_complete(s->loop, s->quit);
    return NULL;
}

static void server_quit_cb(void *arg) { aloop_future_set_result(arg, NULL); }

static void server_start(server_t *s) {
    s->loop = aloop_new();
    assert_non_null(s->loop);
    s->quit = aloop_future_new(s->loop);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(server_t *s) {
    assert_int_equal(aloop_call_soon_threadsafe(s->loop, server_quit_cb, s->quit), 0);
    pthread_join(s->th, NULL);
    assert_int_equal(s->rc, 0);
    aloop_release(s->quit);
    aloop_free(s->loop);
}

/* ---- remote functions ---------------------------------------------------- */

static _Atomic(aloop_t *) remote_loop_seen;

static void *times_two(void *arg) {
    atomic_store(&remote_loop_seen, aloop_current());
    aloop_sleep(0.001); /* it is a real task: it may suspend */
    return (void *)((intptr_t)arg * 2);
}

static void *fails(void *arg) {
    (void)arg;
    return aloop_fail(-EIO);
}

/* ---- from a plain thread ------------------------------------------------- */

static void test_from_a_plain_thread(void **state) {
    (void)state;
    server_t s;
    server_start(&s);
    void *r = (void *)1;
    assert_int_equal(aloop_run_threadsafe(s.loop, times_two, (void *)21, &r), 0);
    assert_int_equal((intptr_t)r, 42);
    assert_ptr_equal(atomic_load(&remote_loop_seen), s.loop);
    assert_int_equal(aloop_run_threadsafe(s.loop, times_two, (void *)1, NULL), 0);
    assert_int_equal(aloop_run_threadsafe(s.loop, fails, NULL, &r), -EIO);
    assert_null(r);
    assert_int_equal(aloop_run_threadsafe(NULL, times_two, NULL, NULL), -EINVAL);
    assert_int_equal(aloop_run_threadsafe(s.loop, NULL, NULL, NULL), -EINVAL);
    server_stop(&s);
}

/* ---- from a task of another loop ----------------------------------------- */

typedef struct caller_ctx {
    aloop_t *remote;
    int rc;
    void *result;
    int ticks;       /* the caller's loop went on meanwhile */
    int done;
    aloop_event_t *remote_started;
    atomic_int cleanup_done; /* the remote task finished its cleanup */
    int cleanup_seen_by_caller;
} caller_ctx_t;

static void *call_remote(void *arg) {
    caller_ctx_t *c = arg;
    c->rc = aloop_run_threadsafe(c->remote, times_two, (void *)50, &c->result);
    c->done = 1;
    return NULL;
}

static void *ticker(void *arg) {
    caller_ctx_t *c = arg;
    while (!c->done) {
        c->ticks++;
        if (aloop_sleep(0.0005) < 0) break;
    }
    return NULL;
}

static void *self_call(void *arg) {
    (void)arg;
    return (void *)(intptr_t)aloop_run_threadsafe(aloop_current(), times_two, NULL, NULL);
}

static void test_from_a_task_of_another_loop(void **state) {
    (void)state;
    server_t s;
    server_start(&s);
    caller_ctx_t c = {.remote = s.loop};
    aloop_t *loop = aloop_new();
    aloop_task_t *t = spawn(loop, call_remote, &c);
    aloop_task_t *tk = spawn(loop, ticker, &c);
    aloop_task_t *ts = spawn(loop, self_call, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal((intptr_t)c.result, 100);
    assert_true(c.ticks >= 1); /* only the caller task waited, not its loop */
    void *r;
    assert_int_equal(aloop_future_result(ts, &r), 0);
    assert_int_equal((intptr_t)r, -EPERM); /* its own loop */
    aloop_release(t);
    aloop_release(tk);
    aloop_release(ts);
    aloop_free(loop);
    server_stop(&s);
}

/* Cancelling the caller cancels the remote task and waits for it. */
static void set_event_cb(void *arg) { aloop_event_set(arg); }

static void *remote_waits(void *arg) {
    caller_ctx_t *c = arg;
    aloop_t *caller_loop = c->result; /* passed through */
    aloop_call_soon_threadsafe(caller_loop, set_event_cb, c->remote_started);
    int rc = aloop_sleep(3600);
    usleep(2000); /* cleanup that takes a while, on the remote thread */
    atomic_store(&c->cleanup_done, 1);
    return (void *)(intptr_t)rc;
}

static void *call_remote_waits(void *arg) {
    caller_ctx_t *c = arg;
    c->rc = aloop_run_threadsafe(c->remote, remote_waits, c, NULL);
    c->cleanup_seen_by_caller = atomic_load(&c->cleanup_done);
    return NULL;
}

static void test_cancel_reaches_the_remote_task(void **state) {
    (void)state;
    server_t s;
    server_start(&s);
    aloop_t *loop = aloop_new();
    caller_ctx_t c = {.remote = s.loop, .result = loop};
    c.remote_started = aloop_event_new(loop);
    aloop_task_t *t = spawn(loop, call_remote_waits, &c);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* posted; t waits */
    /* wait (in this loop) until the remote task runs, then cancel the caller */
    while (!aloop_event_is_set(c.remote_started)) assert_true(aloop_run_once(loop, -1) >= 0);
    aloop_cancel(t);
    assert_int_equal(aloop_run_until_complete(loop, t), -ECANCELED);
    assert_int_equal(c.rc, -ECANCELED);
    assert_int_equal(c.cleanup_seen_by_caller, 1); /* it waited for the remote end */
    aloop_release(t);

    /* a cancel pending before the call: nothing is posted at all */
    atomic_store(&remote_loop_seen, NULL);
    c.done = 0;
    t = spawn(loop, call_remote, &c);
    aloop_cancel(t);
    assert_int_equal(aloop_run_until_complete(loop, t), -ECANCELED);
    aloop_release(t);
    aloop_event_free(c.remote_started);
    aloop_free(loop);
    server_stop(&s);
    assert_null(atomic_load(&remote_loop_seen));
}

/* The caller's own loop is freed while it waits: the remote task is
 * cancelled all the same, and nobody touches the freed loop afterwards. */
static atomic_int orphan_started, orphan_rc;

static void *orphan_remote(void *arg) {
    (void)arg;
    atomic_store(&orphan_started, 1);
    atomic_store(&orphan_rc, aloop_sleep(3600));
    return NULL;
}

static void *orphan_caller(void *arg) {
    return (void *)(intptr_t)aloop_run_threadsafe(arg, orphan_remote, NULL, NULL);
}

static void test_caller_loop_freed_while_waiting(void **state) {
    (void)state;
    server_t s;
    server_start(&s);
    atomic_store(&orphan_rc, 1);
    aloop_t *loop = aloop_new();
    aloop_task_t *t = spawn(loop, orphan_caller, s.loop);
    while (!atomic_load(&orphan_started)) assert_true(aloop_run_once(loop, 0.01) >= 0);
    aloop_free(loop); /* cancels t, which cannot wait for the remote end */
    void *r = NULL;
    assert_int_equal(aloop_future_result(t, &r), -ECANCELED);
    aloop_release(t);
    while (atomic_load(&orphan_rc) == 1) sched_yield(); /* the cancel reaches it */
    assert_int_equal(atomic_load(&orphan_rc), -ECANCELED);
    server_stop(&s);
}

/* -EPIPE: the target loop is freed before the task ran. */
typedef struct pipe_ctx {
    aloop_t *target;
    int rc;
} pipe_ctx_t;

static void *blocked_caller(void *arg) {
    pipe_ctx_t *p = arg;
    p->rc = aloop_run_threadsafe(p->target, times_two, NULL, NULL);
    return NULL;
}

static void *task_caller(void *arg) {
    pipe_ctx_t *p = arg;
    p->rc = aloop_run_threadsafe(p->target, times_two, NULL, NULL);
    return NULL;
}

static void free_target_cb(void *arg) {
    pipe_ctx_t *p = arg;
    aloop_free(p->target);
}

static void test_epipe_when_the_target_is_freed(void **state) {
    (void)state;
    /* a plain thread, blocked */
    pipe_ctx_t p = {.target = aloop_new(), .rc = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_caller, &p), 0);
    /* the start is posted: the idle target then has something to do now */
    while (aloop_backend_timeout(p.target) != 0.0) sched_yield();
    aloop_free(p.target);
    pthread_join(th, NULL);
    assert_int_equal(p.rc, -EPIPE);

    /* a task of another loop: the target is freed from a callback of it */
    pipe_ctx_t q = {.target = aloop_new(), .rc = 1};
    aloop_t *loop = aloop_new();
    aloop_task_t *t = spawn(loop, task_caller, &q);
    assert_int_equal(aloop_run_once(loop, 0), 1);
    assert_non_null(aloop_call_soon(loop, free_target_cb, &q));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(q.rc, -EPIPE);
    aloop_release(t);
    aloop_free(loop);
}

/* ---- two loops, two threads, 100,000 calls each way ---------------------- */

#define XCALLS 100000
#define XTASKS 10
#define XTS_PER_TASK 50

typedef struct side {
    aloop_t *loop;
    struct side *peer;
    unsigned char *hits;   /* hits[i]: times call i from the peer ran here */
    long received;         /* loop thread only */
    int tasks_done;        /* run_threadsafe callers finished (loop thread) */
    int ts_ok;             /* run_threadsafe results that were right */
    _Atomic(unsigned char) *ts_hits; /* run here for the peer, per call */
    int finished;
    struct exchange *x;
    aloop_future_t *quit;
    pthread_t th;
} side_t;

typedef struct exchange {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sides_done;
} exchange_t;

typedef struct xcall {
    side_t *to;
    long i;
} xcall_t;

static void side_check(side_t *s) {
    if (s->finished || s->received != XCALLS || s->tasks_done != XTASKS + 1) return;
    s->finished = 1;
    pthread_mutex_lock(&s->x->mu);
    s->x->sides_done++;
    pthread_cond_broadcast(&s->x->cv);
    pthread_mutex_unlock(&s->x->mu);
}

static void recv_cb(void *arg) {
    xcall_t *c = arg;
    side_t *s = c->to;
    assert_ptr_equal(aloop_current(), s->loop);
    s->hits[c->i]++;
    s->received++;
    side_check(s);
}

static void *sender(void *arg) {
    side_t *s = arg;
    static xcall_t calls[2][XCALLS];
    xcall_t *mine = calls[s->peer < s ? 1 : 0];
    for (long i = 0; i < XCALLS; i++) {
        mine[i] = (xcall_t){.to = s->peer, .i = i};
        assert_int_equal(aloop_call_soon_threadsafe(s->peer->loop, recv_cb, &mine[i]), 0);
        if (i % 1000 == 0) aloop_yield(); /* let the peer's calls in meanwhile */
    }
    s->tasks_done++;
    side_check(s);
    return NULL;
}

typedef struct ts_arg {
    side_t *target;
    long i;
} ts_arg_t;

static void *ts_remote(void *arg) {
    ts_arg_t *a = arg;
    assert_ptr_equal(aloop_current(), a->target->loop);
    atomic_fetch_add(&a->target->ts_hits[a->i], 1);
    return (void *)(a->i + 1);
}

static void *ts_caller(void *arg) {
    ts_arg_t *first = arg; /* XTS_PER_TASK consecutive slots */
    side_t *s = first->target->peer;
    for (int k = 0; k < XTS_PER_TASK; k++) {
        void *r = NULL;
        int rc = aloop_run_threadsafe(first[k].target->loop, ts_remote, &first[k], &r);
        if (rc == 0 && (intptr_t)r == first[k].i + 1) s->ts_ok++;
    }
    s->tasks_done++;
    side_check(s);
    return NULL;
}

static void *side_main(void *arg) {
    side_t *s = arg;
    ts_arg_t *args = calloc(XTASKS * XTS_PER_TASK, sizeof *args);
    aloop_task_t *ts[XTASKS + 1];
    ts[0] = aloop_spawn(s->loop, sender, s);
    for (int k = 0; k < XTASKS * XTS_PER_TASK; k++) args[k] = (ts_arg_t){.target = s->peer, .i = k};
    for (int j = 0; j < XTASKS; j++) ts[j + 1] = aloop_spawn(s->loop, ts_caller, &args[j * XTS_PER_TASK]);
    /* runs until the main thread says both sides are done: the peer may
     * still be calling us after our own work is over */
    int rc = aloop_run_until_complete(s->loop, s->quit);
    assert_int_equal(rc, 0);
    for (int j = 0; j <= XTASKS; j++) aloop_release(ts[j]);
    free(args);
    return NULL;
}

static void test_two_loops_exchange_calls(void **state) {
    (void)state;
    exchange_t x = {.sides_done = 0};
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    side_t sides[2];
    memset(sides, 0, sizeof sides);
    for (int i = 0; i < 2; i++) {
        sides[i].loop = aloop_new();
        sides[i].peer = &sides[1 - i];
        sides[i].hits = calloc(XCALLS, 1);
        sides[i].ts_hits = calloc(XTASKS * XTS_PER_TASK, sizeof *sides[i].ts_hits);
        sides[i].x = &x;
        sides[i].quit = aloop_future_new(sides[i].loop);
    }
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&sides[i].th, NULL, side_main, &sides[i]), 0);
    pthread_mutex_lock(&x.mu);
    while (x.sides_done < 2) pthread_cond_wait(&x.cv, &x.mu);
    pthread_mutex_unlock(&x.mu);
    for (int i = 0; i < 2; i++) aloop_call_soon_threadsafe(sides[i].loop, server_quit_cb, sides[i].quit);
    for (int i = 0; i < 2; i++) pthread_join(sides[i].th, NULL);
    for (int i = 0; i < 2; i++) {
        side_t *s = &sides[i];
        assert_int_equal(s->received, XCALLS);
        for (long k = 0; k < XCALLS; k++)
            if (s->hits[k] != 1) fail_msg("side %d: call %ld ran %d times", i, k, s->hits[k]);
        assert_int_equal(s->ts_ok, XTASKS * XTS_PER_TASK);
        for (long k = 0; k < XTASKS * XTS_PER_TASK; k++) assert_int_equal(atomic_load(&s->ts_hits[k]), 1);
    }
    for (int i = 0; i < 2; i++) {
        aloop_release(sides[i].quit);
        aloop_free(sides[i].loop);
        free(sides[i].hits);
        free((void *)sides[i].ts_hits);
    }
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&x.mu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_a_plain_thread),
        cmocka_unit_test(test_from_a_task_of_another_loop),
        cmocka_unit_test(test_cancel_reaches_the_remote_task),
        cmocka_unit_test(test_caller_loop_freed_while_waiting),
        cmocka_unit_test(test_epipe_when_the_target_is_freed),
        cmocka_unit_test(test_two_loops_exchange_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

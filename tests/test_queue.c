/* Tests for src/queue.c: FIFO, LIFO and priority queues (virtual clock). */
#define ALOOP_TEST_TRACE
#include "aloop_test.h"


#define ITEM(n) ((void *)(uintptr_t)(n))
#define NUM(p) ((int)(uintptr_t)(p))


static aloop_queue_t *q;

/* The shape of most tests: a virtual-clock loop, the shared queue q on it
 * (maxsize), an empty trace; and the end of it. */
static aloop_t *queue_loop(size_t maxsize) {
    aloop_t *loop = vloop();
    q = aloop_queue_new(loop, maxsize);
    trace_reset();
    return loop;
}

static void queue_loop_free(aloop_t *loop) {
    aloop_queue_free(q);
    aloop_free(loop);
}
/* Gets one item and notes "<name>=<item>@<time>" or the error. */
static void *getter(void *arg) {
    void *item = NULL;
    int rc = aloop_queue_get(q, &item);
    if (rc == 0)
        note("%s=%d@%g ", (char *)arg, NUM(item), now());
    else
        note("%s%d@%g ", (char *)arg, rc, now());
    return NULL;
}

/* Puts the item encoded in arg (name = "p<item>"). */
static void *putter(void *arg) {
    int rc = aloop_queue_put(q, arg);
    note("p%d:%d@%g ", NUM(arg), rc, now());
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Order                                                                    */
/* ------------------------------------------------------------------------ */

static void drain_nowait(aloop_queue_t *queue, char *out, size_t cap) {
    void *item;
    out[0] = 0;
    while (aloop_queue_get_nowait(queue, &item) == 0)
        snprintf(out + strlen(out), cap - strlen(out), "%d ", NUM(item));
}

typedef struct job {
    int prio;
    int id;
} job_t;

static int by_prio(const void *a, const void *b) {
    const job_t *x = a, *y = b;
    return (x->prio > y->prio) - (x->prio < y->prio);
}

static void test_fifo_lifo_priority_order(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    char out[128];
    aloop_queue_t *fifo = aloop_queue_new(loop, 0), *lifo = aloop_queue_new_lifo(loop, 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(aloop_queue_put_nowait(fifo, ITEM(i)), 0);
        assert_int_equal(aloop_queue_put_nowait(lifo, ITEM(i)), 0);
    }
    assert_int_equal(aloop_queue_size(fifo), 5);
    drain_nowait(fifo, out, sizeof out);
    assert_string_equal(out, "1 2 3 4 5 ");
    drain_nowait(lifo, out, sizeof out);
    assert_string_equal(out, "5 4 3 2 1 ");
    assert_true(aloop_queue_empty(fifo));

    /* Priority: smallest first, equal priorities in the order put. */
    job_t jobs[] = {{3, 1}, {1, 2}, {2, 3}, {1, 4}, {3, 5}, {1, 6}, {2, 7}};
    aloop_queue_t *pq = aloop_queue_new_priority(loop, 0, by_prio);
    for (size_t i = 0; i < 7; i++) assert_int_equal(aloop_queue_put_nowait(pq, &jobs[i]), 0);
    out[0] = 0;
    void *item;
    while (aloop_queue_get_nowait(pq, &item) == 0)
        snprintf(out + strlen(out), sizeof out - strlen(out), "%d ", ((job_t *)item)->id);
    assert_string_equal(out, "2 4 6 3 7 1 5 ");
    assert_null(aloop_queue_new_priority(loop, 0, NULL));
    assert_int_equal(errno, EINVAL);
    aloop_queue_free(fifo);
    aloop_queue_free(lifo);
    aloop_queue_free(pq);
    aloop_free(loop);
}

/* A FIFO ring that wraps around many times keeps its order. */
static void test_fifo_ring_wraps(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_queue_t *fifo = aloop_queue_new(loop, 3);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        while (aloop_queue_put_nowait(fifo, ITEM(next_in)) == 0) next_in++;
        assert_true(aloop_queue_full(fifo));
        assert_int_equal(aloop_queue_put_nowait(fifo, ITEM(0)), -EAGAIN);
        int take = 1 + round % 3;
        for (int i = 0; i < take; i++) {
            void *item;
            assert_int_equal(aloop_queue_get_nowait(fifo, &item), 0);
            assert_int_equal(NUM(item), next_out++);
        }
    }
    aloop_queue_free(fifo);
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Suspending put and get                                                   */
/* ------------------------------------------------------------------------ */

static void *slow_consumer(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) {
        aloop_sleep(1);
        void *item;
        assert_int_equal(aloop_queue_get(q, &item), 0);
        note("g%d@%g ", NUM(item), now());
    }
    return NULL;
}

static void *fast_producer(void *arg) {
    (void)arg;
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(aloop_queue_put(q, ITEM(i)), 0);
        note("p%d@%g ", i, now());
        assert_true(aloop_queue_size(q) <= 2);
    }
    return NULL;
}

static void test_bounded_put_suspends_while_full(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(2);
    aloop_task_t *ts[] = {spawn(loop, fast_producer, NULL), spawn(loop, slow_consumer, NULL)};
    expect_trace(loop, ts, 2, "p1@0 p2@0 g1@1 p3@1 g2@2 p4@2 g3@3 p5@3 g4@4 g5@5 ");
    queue_loop_free(loop);
}

static void *nowait_checks(void *arg) {
    (void)arg;
    void *item = ITEM(7);
    assert_int_equal(aloop_queue_get_nowait(q, &item), -EAGAIN);
    assert_true(item == ITEM(7)); /* untouched */
    assert_int_equal(aloop_queue_put_nowait(q, NULL), 0); /* NULL items allowed */
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(2)), -EAGAIN);
    assert_true(aloop_queue_full(q));
    assert_int_equal(aloop_queue_get(q, &item), 0);
    assert_null(item);
    /* A pending cancel wins even when no wait is needed. */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_queue_put(q, ITEM(1)), -ECANCELED);
    assert_true(aloop_queue_empty(q));
    aloop_task_uncancel(aloop_current_task());
    return NULL;
}

static void test_nowait_variants(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    q = aloop_queue_new(loop, 1);
    aloop_task_t *t = spawn(loop, nowait_checks, NULL);
    run_and_release(loop, &t, 1);
    queue_loop_free(loop);
}

static void *put_three_later(void *arg) {
    (void)arg;
    aloop_sleep(1);
    for (int i = 1; i <= 3; i++) assert_int_equal(aloop_queue_put(q, ITEM(i)), 0);
    note("put ");
    return NULL;
}

static void test_getters_woken_in_fifo_order(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, getter, "b"),
                          spawn(loop, getter, "c"), spawn(loop, put_three_later, NULL)};
    expect_trace(loop, ts, 4, "put a=1@1 b=2@1 c=3@1 ");
    queue_loop_free(loop);
}

static void *get_three_later(void *arg) {
    (void)arg;
    aloop_sleep(1);
    for (int i = 0; i < 4; i++) {
        void *item;
        assert_int_equal(aloop_queue_get(q, &item), 0);
        note("g%d ", NUM(item));
    }
    return NULL;
}

static void test_putters_woken_in_fifo_order(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    q = aloop_queue_new(loop, 1);
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(0)), 0);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, putter, ITEM(1)), spawn(loop, putter, ITEM(2)),
                          spawn(loop, putter, ITEM(3)), spawn(loop, get_three_later, NULL)};
    run_and_release(loop, ts, 4);
    /* The consumer runs on after each get: it takes the next item only once
     * the woken putter has put it. */
    assert_string_equal(trace, "g0 p1:0@1 g1 p2:0@1 g2 p3:0@1 g3 ");
    queue_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                             */
/* ------------------------------------------------------------------------ */

static aloop_task_t *victim;

static void *put_then_cancel(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_queue_put(q, ITEM(42)), 0); /* handed to the victim */
    assert_int_equal(aloop_queue_size(q), 1);
    aloop_cancel(victim);
    return NULL;
}

static void test_woken_getter_cancelled_does_not_lose_item(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, getter, "b"),
                          spawn(loop, put_then_cancel, NULL)};
    victim = ts[0];
    expect_trace(loop, ts, 3, "a-125@1 b=42@1 ");
    assert_true(aloop_queue_empty(q));

    /* No other getter: the item goes back to the front of the queue. */
    trace_reset();
    ts[0] = spawn(loop, getter, "c");
    ts[1] = spawn(loop, put_then_cancel, NULL);
    victim = ts[0];
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(43)), 0);
    void *item;
    assert_int_equal(aloop_queue_get_nowait(q, &item), 0);
    assert_int_equal(NUM(item), 42);
    assert_int_equal(aloop_queue_get_nowait(q, &item), 0);
    assert_int_equal(NUM(item), 43);
    run_and_release(loop, ts, 2);
    queue_loop_free(loop);
}

/* In a LIFO queue the given-back item is the oldest: it comes out last. */
static void test_woken_getter_cancelled_lifo_gives_back_oldest(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    q = aloop_queue_new_lifo(loop, 0);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, getter, "c"), spawn(loop, put_then_cancel, NULL)};
    victim = ts[0];
    expect_trace(loop, ts, 2, "c-125@1 ");
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(43)), 0);
    void *item;
    assert_int_equal(aloop_queue_get_nowait(q, &item), 0);
    assert_int_equal(NUM(item), 43);
    assert_int_equal(aloop_queue_get_nowait(q, &item), 0);
    assert_int_equal(NUM(item), 42);
    queue_loop_free(loop);
}

static void *get_then_cancel(void *arg) {
    (void)arg;
    aloop_sleep(1);
    void *item;
    assert_int_equal(aloop_queue_get(q, &item), 0); /* frees a slot for the victim */
    assert_true(aloop_queue_full(q));               /* reserved for it */
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(9)), -EAGAIN);
    aloop_cancel(victim);
    return NULL;
}

static void test_woken_putter_cancelled_passes_slot_on(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    q = aloop_queue_new(loop, 1);
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(0)), 0);
    trace_reset();
    aloop_task_t *ts[] = {spawn(loop, putter, ITEM(1)), spawn(loop, putter, ITEM(2)),
                          spawn(loop, get_then_cancel, NULL)};
    victim = ts[0];
    expect_trace(loop, ts, 3, "p1:-125@1 p2:0@1 ");
    void *item;
    assert_int_equal(aloop_queue_get_nowait(q, &item), 0);
    assert_int_equal(NUM(item), 2);
    assert_true(aloop_queue_empty(q));
    queue_loop_free(loop);
}

static void test_cancel_waiting_getter_and_putter(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(1);
    aloop_task_t *g = spawn(loop, getter, "g");
    aloop_call_later(loop, 1, cancel_cb, g);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(5)), 0);
    aloop_task_t *p = spawn(loop, putter, ITEM(6));
    aloop_call_later(loop, 1, cancel_cb, p);
    assert_int_equal(aloop_run(loop), 0);
    assert_string_equal(trace, "g-125@1 p6:-125@2 ");
    assert_int_equal(aloop_queue_size(q), 1);
    aloop_release(g);
    aloop_release(p);
    queue_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* task_done / join                                                         */
/* ------------------------------------------------------------------------ */

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        void *item;
        if (aloop_queue_get(q, &item) < 0) return NULL;
        aloop_sleep((double)NUM(item));
        note("w%d@%g ", NUM(item), now());
        aloop_queue_task_done(q);
    }
}

static void *joiner(void *arg) {
    (void)arg;
    int rc = aloop_queue_join(q);
    note("j%d@%g ", rc, now());
    return NULL;
}

static void test_task_done_and_join(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    for (int i = 1; i <= 3; i++) aloop_queue_put_nowait(q, ITEM(i));
    aloop_task_t *ts[] = {spawn(loop, worker, NULL), spawn(loop, joiner, NULL),
                          spawn(loop, joiner, NULL)};
    assert_int_equal(aloop_run_until_complete(loop, ts[2]), 0);
    assert_string_equal(trace, "w1@1 w2@3 w3@6 j0@6 j0@6 ");
    /* Nothing unfinished: join returns at once. */
    aloop_task_t *j = spawn(loop, joiner, NULL);
    assert_int_equal(aloop_run_until_complete(loop, j), 0);
    assert_string_equal(trace, "w1@1 w2@3 w3@6 j0@6 j0@6 j0@6 ");
    aloop_queue_task_done(q); /* one too many: ignored */
    aloop_cancel(ts[0]);
    aloop_task_t *all[] = {ts[0], ts[1], ts[2], j};
    run_and_release(loop, all, 4);
    queue_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* shutdown                                                                 */
/* ------------------------------------------------------------------------ */

static void *shutdown_later(void *arg) {
    aloop_sleep(1);
    aloop_queue_shutdown(q, (int)(uintptr_t)arg);
    note("shut ");
    return NULL;
}

static void test_shutdown_drains_then_epipe(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(2);
    /* Two items queued, one putter waiting. */
    aloop_queue_put_nowait(q, ITEM(1));
    aloop_queue_put_nowait(q, ITEM(2));
    aloop_task_t *ts[] = {spawn(loop, putter, ITEM(3)), spawn(loop, shutdown_later, ITEM(0))};
    expect_trace(loop, ts, 2, "shut p3:-32@1 ");
    assert_int_equal(aloop_queue_put_nowait(q, ITEM(4)), -EPIPE);
    /* Items put before the shutdown still come out, then -EPIPE. */
    trace_reset();
    aloop_task_t *gs[] = {spawn(loop, getter, "a"), spawn(loop, getter, "b"),
                          spawn(loop, getter, "c")};
    expect_trace(loop, gs, 3, "a=1@1 b=2@1 c-32@1 ");
    void *item;
    assert_int_equal(aloop_queue_get_nowait(q, &item), -EPIPE);
    queue_loop_free(loop);
}

static void test_shutdown_wakes_waiting_getters(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, getter, "b"),
                          spawn(loop, shutdown_later, ITEM(0))};
    expect_trace(loop, ts, 3, "shut a-32@1 b-32@1 ");
    queue_loop_free(loop);
}

static void *take_one_then_finish_later(void *arg) {
    (void)arg;
    void *item;
    assert_int_equal(aloop_queue_get(q, &item), 0);
    aloop_sleep(5);
    note("done ");
    aloop_queue_task_done(q);
    return NULL;
}

static void test_shutdown_immediate_drops_items_and_releases_join(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    for (int i = 1; i <= 3; i++) aloop_queue_put_nowait(q, ITEM(i));
    /* One item taken and being processed, two dropped by the shutdown: join
     * waits for the one in progress only. */
    aloop_task_t *ts[] = {spawn(loop, take_one_then_finish_later, NULL), spawn(loop, joiner, NULL),
                          spawn(loop, shutdown_later, ITEM(1))};
    expect_trace(loop, ts, 3, "shut done j0@5 ");
    assert_int_equal(aloop_queue_size(q), 0);
    void *item;
    assert_int_equal(aloop_queue_get_nowait(q, &item), -EPIPE);

    /* Nothing in progress: join waiters wake at the shutdown itself. */
    aloop_queue_t *q2 = aloop_queue_new(loop, 0);
    aloop_queue_free(q);
    q = q2;
    trace_reset();
    aloop_queue_put_nowait(q, ITEM(1));
    aloop_task_t *ts2[] = {spawn(loop, joiner, NULL), spawn(loop, shutdown_later, ITEM(1))};
    expect_trace(loop, ts2, 2, "shut j0@6 ");
    queue_loop_free(loop);
}

/* An item handed to a getter that has not run yet is dropped by an
 * immediate shutdown, as it would be in asyncio (and no longer counts for
 * join). */
static void *put_then_shutdown(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_queue_put(q, ITEM(2)), 0); /* handed to a */
    aloop_queue_shutdown(q, 1);
    note("shut ");
    aloop_queue_task_done(q); /* item 1, taken before the run */
    return NULL;
}

static void test_shutdown_immediate_revokes_handed_item(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    void *item;
    aloop_queue_put_nowait(q, ITEM(1));
    aloop_queue_get_nowait(q, &item);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, put_then_shutdown, NULL),
                          spawn(loop, joiner, NULL)};
    expect_trace(loop, ts, 3, "shut a-32@1 j0@1 ");
    queue_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Freeing with waiters                                                     */
/* ------------------------------------------------------------------------ */

static void *free_later(void *arg) {
    (void)arg;
    aloop_sleep(1);
    aloop_queue_free(q);
    q = NULL;
    return NULL;
}

static aloop_queue_t *full_q;
static void *put_full(void *arg) {
    (void)arg;
    int rc = aloop_queue_put(full_q, ITEM(1));
    note("p%d@%g ", rc, now());
    return NULL;
}

static void test_free_wakes_waiters_with_epipe(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    aloop_queue_put_nowait(q, ITEM(1)); /* unfinished: a joiner waits */
    void *item;
    aloop_queue_get_nowait(q, &item);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, joiner, NULL),
                          spawn(loop, free_later, NULL)};
    expect_trace(loop, ts, 3, "a-32@1 j-32@1 ");

    full_q = aloop_queue_new(loop, 1);
    aloop_queue_put_nowait(full_q, ITEM(0));
    q = full_q;
    trace_reset();
    aloop_task_t *ts2[] = {spawn(loop, put_full, NULL), spawn(loop, free_later, NULL)};
    expect_trace(loop, ts2, 2, "p-32@2 ");
    aloop_free(loop);
}

/* The queue is freed after an item was handed to a getter that has not
 * run yet: the getter still gets its item and touches no freed memory. */
static void *put_then_free(void *arg) {
    (void)arg;
    aloop_sleep(1);
    assert_int_equal(aloop_queue_put(q, ITEM(8)), 0);
    aloop_queue_free(q);
    q = NULL;
    return NULL;
}

static void test_free_after_hand_off(void **state) {
    (void)state;
    aloop_t *loop = queue_loop(0);
    aloop_task_t *ts[] = {spawn(loop, getter, "a"), spawn(loop, put_then_free, NULL)};
    expect_trace(loop, ts, 2, "a=8@1 ");
    aloop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Misuse and allocation                                                    */
/* ------------------------------------------------------------------------ */

static void *misuse(void *arg) {
    aloop_queue_t *other = arg;
    void *item;
    assert_int_equal(aloop_queue_put(NULL, NULL), -EINVAL);
    assert_int_equal(aloop_queue_get(NULL, &item), -EINVAL);
    assert_int_equal(aloop_queue_get(q, NULL), -EINVAL);
    assert_int_equal(aloop_queue_join(NULL), -EINVAL);
    assert_int_equal(aloop_queue_put(other, NULL), -EINVAL);
    assert_int_equal(aloop_queue_get(other, &item), -EINVAL);
    assert_int_equal(aloop_queue_put_nowait(other, NULL), -EINVAL);
    assert_int_equal(aloop_queue_get_nowait(other, &item), -EINVAL);
    return NULL;
}

static void test_misuse(void **state) {
    (void)state;
    skip_in_debug_env(); /* misuse aborts then */
    aloop_t *loop = vloop(), *loop2 = vloop();
    q = aloop_queue_new(loop, 0);
    aloop_queue_t *other = aloop_queue_new(loop2, 0);
    void *item;
    assert_int_equal(aloop_queue_put(q, NULL), -EPERM); /* outside a task */
    assert_int_equal(aloop_queue_get(q, &item), -EPERM);
    assert_int_equal(aloop_queue_join(q), -EPERM);
    assert_null(aloop_queue_new(NULL, 0));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(aloop_queue_size(NULL), 0);
    assert_int_equal(aloop_queue_empty(NULL), 0); /* a predicate answers 0 for NULL */
    aloop_queue_shutdown(NULL, 0);
    aloop_queue_task_done(NULL);
    aloop_queue_free(NULL);
    aloop_task_t *t = spawn(loop, misuse, other);
    run_and_release(loop, &t, 1);
    aloop_queue_free(q);
    aloop_queue_free(other);
    aloop_free(loop);
    aloop_free(loop2);
}

static int n_items;

static void *produce_many(void *arg) {
    for (int i = 0; i < n_items; i++) assert_int_equal(aloop_queue_put(q, ITEM(i)), 0);
    (void)arg;
    return NULL;
}

static void *consume_many(void *arg) {
    (void)arg;
    for (int i = 0; i < n_items; i++) {
        void *item;
        assert_int_equal(aloop_queue_get(q, &item), 0);
        assert_int_equal(NUM(item), i);
    }
    return NULL;
}

/* Allocations of a loop whose producer and consumer pass n items through
 * a bounded queue. */
static unsigned long bounded_queue_allocations(int n) {
    n_items = n;
    test_fail_alloc(0, 0); /* counts from 0 */
    aloop_t *loop = vloop();
    q = aloop_queue_new(loop, 64);
    aloop_task_t *ts[] = {spawn(loop, produce_many, NULL), spawn(loop, consume_many, NULL)};
    run_and_release(loop, ts, 2);
    aloop_queue_free(q);
    aloop_free(loop);
    return test_alloc_count();
}

static void test_steady_state_allocates_nothing(void **state) {
    (void)state;
    /* Starting the tasks allocates (and so may the first round trip
     * through a full queue); passing more items does not. */
    unsigned long one = bounded_queue_allocations(100);
    assert_true(one > 0); /* the counter works */
    assert_int_equal(bounded_queue_allocations(10000), one);

    aloop_t *loop = vloop();

    /* Unbounded: grows by doubling, so 10000 items take a handful of
     * allocations; a failed growth is -ENOMEM and loses nothing. */
    aloop_queue_t *u = aloop_queue_new(loop, 0);
    unsigned long before = test_alloc_count();
    for (int i = 0; i < 10000; i++) assert_int_equal(aloop_queue_put_nowait(u, ITEM(i)), 0);
    assert_true(test_alloc_count() - before <= 12);
    test_fail_alloc(1, 1);
    int rc = 0;
    int n = 10000;
    while (rc == 0) rc = aloop_queue_put_nowait(u, ITEM(n++));
    test_fail_alloc(0, 0);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(aloop_queue_size(u), (size_t)n - 1);
    void *item;
    for (int i = 0; i < n - 1; i++) {
        assert_int_equal(aloop_queue_get_nowait(u, &item), 0);
        assert_int_equal(NUM(item), i);
    }
    aloop_queue_free(u);

    /* Constructors: the queue, then its storage. */
    for (long nth = 1; nth <= 2; nth++) {
        test_fail_alloc(nth, 1);
        aloop_queue_t *fq = aloop_queue_new(loop, 8);
        test_fail_alloc(0, 0);
        assert_null(fq);
        assert_int_equal(errno, ENOMEM);
    }
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_lifo_priority_order),
        cmocka_unit_test(test_fifo_ring_wraps),
        cmocka_unit_test(test_bounded_put_suspends_while_full),
        cmocka_unit_test(test_nowait_variants),
        cmocka_unit_test(test_getters_woken_in_fifo_order),
        cmocka_unit_test(test_putters_woken_in_fifo_order),
        cmocka_unit_test(test_woken_getter_cancelled_does_not_lose_item),
        cmocka_unit_test(test_woken_getter_cancelled_lifo_gives_back_oldest),
        cmocka_unit_test(test_woken_putter_cancelled_passes_slot_on),
        cmocka_unit_test(test_cancel_waiting_getter_and_putter),
        cmocka_unit_test(test_task_done_and_join),
        cmocka_unit_test(test_shutdown_drains_then_epipe),
        cmocka_unit_test(test_shutdown_wakes_waiting_getters),
        cmocka_unit_test(test_shutdown_immediate_drops_items_and_releases_join),
        cmocka_unit_test(test_shutdown_immediate_revokes_handed_item),
        cmocka_unit_test(test_free_wakes_waiters_with_epipe),
        cmocka_unit_test(test_free_after_hand_off),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * timer.c - the timer heap: a 4-ary min-heap of timers ordered by
 * (deadline, sequence number). The sequence number makes timers with equal
 * deadlines fire in the order they were armed, which sleeps, call_later and
 * call_at all share. Each timer knows its heap index, so stopping one (a
 * cancelled sleep) is O(log n) and leaves nothing behind.
 */
#include "internal.h"

/* The heap compares keys kept in loop->heap_keys, parallel to loop->heap,
 * not in the timers: a sleep's timer lives on its task's stack, so with
 * many sleepers every timer is on a page of its own and reading keys
 * through the pointers cost a cache and TLB miss per comparison (27% of
 * the CPU time of 100,000 sleeping tasks went to popping the heap). */
/* Four children per node: half the levels of a binary heap. What a sift
 * costs is mostly the store of each moved timer's new index (a timer on a
 * page of its own, again), one per level; the extra comparisons only read
 * the contiguous key array. */
#define HEAP_ARITY 4

static int key_before(const aloop_timer_key_t *a, const aloop_timer_key_t *b) {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(aloop_t *loop, size_t i, aloop_timer_t *t, aloop_timer_key_t key) {
    loop->heap[i] = t;
    loop->heap_keys[i] = key;
    t->index = i;
}

static void sift_up(aloop_t *loop, size_t i) {
    aloop_timer_t *t = loop->heap[i];
    aloop_timer_key_t key = loop->heap_keys[i];
    while (i > 0) {
        size_t parent = (i - 1) / HEAP_ARITY;
        if (!key_before(&key, &loop->heap_keys[parent])) break;
        heap_set(loop, i, loop->heap[parent], loop->heap_keys[parent]);
        i = parent;
    }
    heap_set(loop, i, t, key);
}

static void sift_down(aloop_t *loop, size_t i) {
    aloop_timer_t *t = loop->heap[i];
    aloop_timer_key_t key = loop->heap_keys[i];
    const aloop_timer_key_t *keys = loop->heap_keys;
    size_t n = loop->heap_len;
    for (;;) {
        size_t first = HEAP_ARITY * i + 1, child = first;
        if (first >= n) break;
        size_t end = first + HEAP_ARITY < n ? first + HEAP_ARITY : n;
        for (size_t c = first + 1; c < end; c++)
            if (key_before(&keys[c], &keys[child])) child = c;
        if (!key_before(&keys[child], &key)) break;
        heap_set(loop, i, loop->heap[child], keys[child]);
        i = child;
    }
    heap_set(loop, i, t, key);
}

void aloop__timer_init(aloop_timer_t *t, void (*fire)(aloop_timer_t *)) {
    t->when = 0;
    t->seq = 0;
    t->index = SIZE_MAX;
    t->fire = fire;
}

/* Grows both heap arrays. The keys go first: if the second realloc fails,
 * the bigger keys array is harmless (heap_cap stays the smaller size). */
static int heap_grow(aloop_t *loop) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    aloop_timer_key_t *keys = aloop__realloc(loop->heap_keys, cap * sizeof *keys);
    if (!keys) return -ENOMEM;
    loop->heap_keys = keys;
    aloop_timer_t **heap = aloop__realloc(loop->heap, cap * sizeof *heap);
    if (!heap) return -ENOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
    return 0;
}

int aloop__timer_start(aloop_t *loop, aloop_timer_t *t, double when) {
    if (loop->heap_len == loop->heap_cap && heap_grow(loop) < 0) return -ENOMEM;
    t->when = when;
    t->seq = loop->timer_seq++;
    aloop_timer_key_t key = {when, t->seq};
    heap_set(loop, loop->heap_len++, t, key);
    sift_up(loop, t->index);
    return 0;
}

void aloop__timer_stop(aloop_t *loop, aloop_timer_t *t) {
    size_t i = t->index;
    if (i == SIZE_MAX) return;
    t->index = SIZE_MAX;
    size_t last = --loop->heap_len;
    if (i == last) return;
    aloop_timer_key_t key = loop->heap_keys[last];
    heap_set(loop, i, loop->heap[last], key);
    if (i > 0 && key_before(&key, &loop->heap_keys[(i - 1) / HEAP_ARITY]))
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

double aloop__timers_next(const aloop_t *loop) {
    return loop->heap_len ? loop->heap_keys[0].when : -1.0;
}

void aloop__timers_run(aloop_t *loop, double now) {
    while (loop->heap_len && loop->heap_keys[0].when <= now) {
        aloop_timer_t *t = loop->heap[0];
        aloop__timer_stop(loop, t);
        t->fire(t);
    }
}

void aloop__timers_free(aloop_t *loop) {
    aloop__free(loop->heap);
    aloop__free(loop->heap_keys);
    loop->heap = NULL;
    loop->heap_keys = NULL;
    loop->heap_len = loop->heap_cap = 0;
}

/* ---- aloop_sleep: the timer lives in the wait record on the task's stack */

typedef struct sleep_wait {
    aloop_wait_t wait;
    aloop_timer_t timer;
    aloop_task_impl_t *task;
} sleep_wait_t;

static void sleep_fire(aloop_timer_t *timer) {
    aloop__wake(ALOOP_CONTAINER_OF(timer, sleep_wait_t, timer)->task, 0);
}

static void sleep_cancel(aloop_wait_t *w) {
    sleep_wait_t *sw = ALOOP_CONTAINER_OF(w, sleep_wait_t, wait);
    aloop__timer_stop(sw->task->fut.loop, &sw->timer);
}

int aloop_sleep(double seconds) {
    int err;
    if (!(seconds >= 0)) return -EINVAL; /* negative or NaN */
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (seconds == 0) return aloop__yield(t);
    aloop_t *loop = t->fut.loop;
    sleep_wait_t sw = {.wait = {.cancel = sleep_cancel, .what = "aloop_sleep"}, .task = t};
    aloop__timer_init(&sw.timer, sleep_fire);
    if (aloop__timer_start(loop, &sw.timer, aloop__now(loop) + seconds) < 0) return -ENOMEM;
    return aloop__suspend(t, &sw.wait);
}

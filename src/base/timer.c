/*
 * timer.c - the timer heap: a 4-ary min-heap of timers ordered by
 * (deadline, sequence number). The sequence number makes timers with equal
 * deadlines fire in the order they were armed, which sleeps, call_later and
 * call_at all share. Each timer knows its heap index, so stopping one (a
 * cancelled sleep) is O(log n) and leaves nothing behind.
 *
 * A pure data structure: insert, remove, pop the due ones. It knows nothing
 * of loops or tasks; the scheduler (sched.c) fires what it pops.
 */
#include "timer_internal.h"

#include "alloc_internal.h"

#include <errno.h>

/* The heap compares keys kept in h->keys, parallel to h->heap,
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

static void heap_set(aloop_timers_t *h, size_t i, aloop_timer_t *t, aloop_timer_key_t key) {
    h->heap[i] = t;
    h->keys[i] = key;
    t->index = i;
}

static void sift_up(aloop_timers_t *h, size_t i) {
    aloop_timer_t *t = h->heap[i];
    aloop_timer_key_t key = h->keys[i];
    while (i > 0) {
        size_t parent = (i - 1) / HEAP_ARITY;
        if (!key_before(&key, &h->keys[parent])) break;
        heap_set(h, i, h->heap[parent], h->keys[parent]);
        i = parent;
    }
    heap_set(h, i, t, key);
}

static void sift_down(aloop_timers_t *h, size_t i) {
    aloop_timer_t *t = h->heap[i];
    aloop_timer_key_t key = h->keys[i];
    const aloop_timer_key_t *keys = h->keys;
    size_t n = h->len;
    for (;;) {
        size_t first = HEAP_ARITY * i + 1, child = first;
        if (first >= n) break;
        size_t end = first + HEAP_ARITY < n ? first + HEAP_ARITY : n;
        for (size_t c = first + 1; c < end; c++)
            if (key_before(&keys[c], &keys[child])) child = c;
        if (!key_before(&keys[child], &key)) break;
        heap_set(h, i, h->heap[child], keys[child]);
        i = child;
    }
    heap_set(h, i, t, key);
}

void aloop__timer_init(aloop_timer_t *t, void (*fire)(aloop_timer_t *)) {
    t->when = 0;
    t->seq = 0;
    t->index = SIZE_MAX;
    t->fire = fire;
}

/* Grows both heap arrays. The keys go first: if the second realloc fails,
 * the bigger keys array is harmless (h->cap stays the smaller size). */
static int heap_grow(aloop_timers_t *h) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    aloop_timer_key_t *keys = aloop__realloc(h->keys, cap * sizeof *keys);
    if (!keys) return -ENOMEM;
    h->keys = keys;
    aloop_timer_t **heap = aloop__realloc(h->heap, cap * sizeof *heap);
    if (!heap) return -ENOMEM;
    h->heap = heap;
    h->cap = cap;
    return 0;
}

int aloop__timers_insert(aloop_timers_t *h, aloop_timer_t *t, double when) {
    if (h->len == h->cap && heap_grow(h) < 0) return -ENOMEM;
    t->when = when;
    t->seq = h->seq++;
    aloop_timer_key_t key = {when, t->seq};
    heap_set(h, h->len++, t, key);
    sift_up(h, t->index);
    return 0;
}

void aloop__timers_remove(aloop_timers_t *h, aloop_timer_t *t) {
    size_t i = t->index;
    if (i == SIZE_MAX) return;
    t->index = SIZE_MAX;
    size_t last = --h->len;
    if (i == last) return;
    aloop_timer_key_t key = h->keys[last];
    heap_set(h, i, h->heap[last], key);
    if (i > 0 && key_before(&key, &h->keys[(i - 1) / HEAP_ARITY]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

aloop_timer_t *aloop__timers_pop_due(aloop_timers_t *h, double now) {
    if (!h->len || h->keys[0].when > now) return NULL;
    aloop_timer_t *t = h->heap[0];
    aloop__timers_remove(h, t);
    return t;
}

void aloop__timers_free(aloop_timers_t *h) {
    aloop__free(h->heap);
    aloop__free(h->keys);
    h->heap = NULL;
    h->keys = NULL;
    h->len = h->cap = 0;
}

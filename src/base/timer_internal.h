/*
 * timer_internal.h - the timer heap (timer.c): a pure data structure that
 * knows nothing of loops, tasks or clocks. The scheduler owns one
 * (loop->timers), arms and disarms timers in it and pops the due ones.
 */
#ifndef ALOOP_TIMER_INTERNAL_H
#define ALOOP_TIMER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* A timer is embedded in its owner (a wait record, a handle), so arming one
 * never allocates unless the heap array must grow. */
typedef struct aloop_timer {
    double when;
    uint64_t seq;
    size_t index; /* position in the heap; SIZE_MAX when not armed */
    void (*fire)(struct aloop_timer *t); /* called by the scheduler when due */
} aloop_timer_t;

/* A timer's heap key, kept in an array parallel to the heap (timer.c). */
typedef struct aloop_timer_key {
    double when;
    uint64_t seq;
} aloop_timer_key_t;

/* A 4-ary min-heap on (when, seq); seq makes equal deadlines come out in
 * the order they were inserted. All zero is an empty heap. */
typedef struct aloop_timers {
    aloop_timer_t **heap;
    aloop_timer_key_t *keys; /* heap[i]'s (when, seq), for cache-friendly sifting */
    size_t len, cap;
    uint64_t seq;
} aloop_timers_t;

void aloop__timer_init(aloop_timer_t *t, void (*fire)(aloop_timer_t *));
static inline int aloop__timer_armed(const aloop_timer_t *t) { return t->index != SIZE_MAX; }

/* Arms t to be due at `when`: 0, or -ENOMEM (t stays unarmed). */
int aloop__timers_insert(aloop_timers_t *h, aloop_timer_t *t, double when);
/* Disarms t; idempotent. */
void aloop__timers_remove(aloop_timers_t *h, aloop_timer_t *t);
/* Removes and returns the earliest timer if it is due at or before now
 * (then it is unarmed), else NULL. */
aloop_timer_t *aloop__timers_pop_due(aloop_timers_t *h, double now);
/* Deadline of the earliest timer, or -1 if none. */
static inline double aloop__timers_next(const aloop_timers_t *h) {
    return h->len ? h->keys[0].when : -1.0;
}
static inline size_t aloop__timers_count(const aloop_timers_t *h) { return h->len; }
/* Frees the arrays (the timers belong to their owners); leaves h empty. */
void aloop__timers_free(aloop_timers_t *h);

#endif /* ALOOP_TIMER_INTERNAL_H */

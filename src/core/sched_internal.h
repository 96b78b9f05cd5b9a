/*
 * sched_internal.h - the scheduler's part of the loop (loop->sched, sched.c):
 * the ready ring, the cooperative-budget bookkeeping and the wait for other
 * threads. A leaf: it names the runnable and task types (internal.h) by
 * their struct tags only; the ring's inline helpers are in internal.h.
 */
#ifndef ALOOP_SCHED_INTERNAL_H
#define ALOOP_SCHED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct aloop_runnable; /* aloop_runnable_t, internal.h */
struct aloop_task;     /* aloop_task_impl_t, internal.h */

typedef struct aloop_sched {
    /* ready ring: FIFO of runnables; cap is a power of two and always
     * exceeds the number of runnables in existence, so pushes never fail */
    struct aloop_runnable **ring;
    size_t ring_head, ring_count, ring_cap;
    size_t runnables;     /* runnables in existence (tasks, handles, callbacks) */
    unsigned budget;      /* steps left before the next tick */
    /* tasks that spent their cooperative budget: FIFO, made ready after the
     * next poll and timers (tail valid only when head != NULL) */
    struct aloop_task *deferred_head, *deferred_tail;
    /* waiting for other threads (nothing else can wake the loop) */
    uint8_t foreign_warned;      /* this wait for other threads was reported */
    double foreign_slice;        /* sleep slice while waiting; 0 = not waiting */
    double foreign_since;        /* monotonic time that wait began */
} aloop_sched_t;

#endif /* ALOOP_SCHED_INTERNAL_H */

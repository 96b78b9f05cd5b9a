/*
 * sched.c - the ready ring, suspending and waking tasks, and the run loop.
 *
 * The loop alternates two phases:
 *   tick:  read the clock, poll fds (without blocking if anything is ready),
 *          fire due timers; each of these appends runnables to the ring;
 *   steps: run up to ALOOP_STEPS_PER_TICK runnables in FIFO order.
 * A task that suspends does not return to the loop's own context when the
 * next runnable is also a task: it switches to it directly (one context
 * switch per hand-over instead of two). The step budget bounds how long this
 * can go on, so a task that keeps yielding cannot starve timers or I/O.
 */
#include "internal.h"

#include <math.h>
#include <time.h>

/* initial-exec: a plain %fs-relative load even in the shared library,
 * where the default model would call __tls_get_addr on every access (every
 * suspending call reads it). */
#if defined(__GNUC__) && !defined(__APPLE__)
static _Thread_local aloop_t *tls_loop __attribute__((tls_model("initial-exec")));
#else
static _Thread_local aloop_t *tls_loop;
#endif

aloop_t *aloop__tls_loop(void) { return tls_loop; }
void aloop__set_tls_loop(aloop_t *loop) { tls_loop = loop; }

aloop_t *aloop_current(void) { return tls_loop; }

aloop_task_impl_t *aloop__current_task(void) {
    aloop_t *loop = tls_loop;
    return loop ? loop->current : NULL;
}

aloop_task_t *aloop_current_task(void) {
    aloop_task_impl_t *t = aloop__current_task();
    return t ? &t->fut : NULL;
}

/* ------------------------------------------------------------------------ */
/* Clock                                                                    */
/* ------------------------------------------------------------------------ */

double aloop__monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double aloop__now(aloop_t *loop) {
    if (loop->clock == ALOOP_CLOCK_VIRTUAL) return loop->vnow;
    return aloop__monotonic() - loop->mono_base;
}

double aloop_time(aloop_t *loop) {
    if (!loop) return 0.0;
    return aloop__now(loop);
}

/* ------------------------------------------------------------------------ */
/* The ready ring                                                           */
/* ------------------------------------------------------------------------ */

int aloop__ring_grow(aloop_t *loop) {
    size_t cap = loop->ring_cap ? loop->ring_cap * 2 : 64;
    aloop_runnable_t **ring = aloop__malloc(cap * sizeof *ring);
    if (!ring) return -ENOMEM;
    for (size_t i = 0; i < loop->ring_count; i++)
        ring[i] = loop->ring[(loop->ring_head + i) & (loop->ring_cap - 1)];
    aloop__free(loop->ring);
    loop->ring = ring;
    loop->ring_head = 0;
    loop->ring_cap = cap;
    return 0;
}

static aloop_runnable_t *ring_pop(aloop_t *loop) {
    aloop_runnable_t *r = loop->ring[loop->ring_head];
    loop->ring_head = (loop->ring_head + 1) & (loop->ring_cap - 1);
    loop->ring_count--;
    return r;
}

static aloop_runnable_t *ring_peek(const aloop_t *loop) {
    return loop->ring[loop->ring_head];
}

/* ------------------------------------------------------------------------ */
/* Switching between tasks                                                  */
/* ------------------------------------------------------------------------ */

/* Leaves the running coroutine `self`: straight into the next ready task if
 * the budget allows, else back to the loop's context. Returns when someone
 * switches back to self. */
static void switch_away(aloop_t *loop, aloop_coro_t *self) {
    if (loop->budget && loop->ring_count && ring_peek(loop)->kind == ALOOP_RUN_TASK) {
        aloop_task_impl_t *next = (aloop_task_impl_t *)(void *)ring_pop(loop);
        loop->budget--;
        next->queued = 0;
        loop->current = next;
        if (next->coro == self) return; /* it was our own wake-up */
        aloop__coro_switch(loop, self, next->coro);
        return;
    }
    loop->current = NULL;
    aloop__coro_switch(loop, self, NULL);
}

/* aloop__enter's slow half: a cancel to deliver, a closing loop, or a spent
 * budget. Out of line and reached by a tail call, so the fast path needs no
 * stack frame. */
static ALOOP_NOINLINE aloop_task_impl_t *enter_slow(aloop_t *loop, aloop_task_impl_t *t, int *err) {
    if (t->must_cancel || loop->closing) {
        t->must_cancel = 0;
        *err = -ECANCELED;
        return NULL;
    }
    if (aloop__coop_yield(t) < 0) {
        *err = -ECANCELED;
        return NULL;
    }
    return t;
}

aloop_task_impl_t *aloop__enter(int *err) {
    aloop_t *loop = tls_loop;
    aloop_task_impl_t *t = loop ? loop->current : NULL;
    if (ALOOP_UNLIKELY(!t)) {
        *err = -EPERM;
        return NULL;
    }
    if (ALOOP_UNLIKELY(t->must_cancel || loop->closing)) return enter_slow(loop, t, err);
    if (ALOOP_UNLIKELY(++t->coop_used >= ALOOP_COOP_BUDGET)) return enter_slow(loop, t, err);
    return t;
}

/* ------------------------------------------------------------------------ */
/* The cooperative budget                                                   */
/* ------------------------------------------------------------------------ */

/* Why: a task whose calls never suspend (a socket that always has data, a
 * pipe from /dev/zero, a queue that is never empty) would otherwise keep
 * the loop for ever, and a ready ring alone cannot help: the task never
 * returns to it. So every suspending call spends a unit, and the call that
 * spends the last one first yields. The task is not pushed on the ready ring
 * (it could then run again before the loop polls) but on loop->deferred,
 * which tick() appends to the ring after the poll and the timers: every fd
 * that became ready, every timer due and every task already ready runs
 * before it does. Under the virtual clock a deferred task is busy, not
 * ready: time may jump to the next deadline meanwhile, so a wait_for around
 * such a task expires as it would on the real clock. */
static void defer(aloop_t *loop, aloop_task_impl_t *t) {
    t->next_deferred = NULL;
    if (loop->deferred_head)
        loop->deferred_tail->next_deferred = t;
    else
        loop->deferred_head = t;
    loop->deferred_tail = t;
}

/* Moves every deferred task to the ready ring (FIFO kept). */
static void undefer(aloop_t *loop) {
    aloop_task_impl_t *t = loop->deferred_head;
    loop->deferred_head = loop->deferred_tail = NULL;
    while (t) {
        aloop_task_impl_t *next = t->next_deferred;
        t->next_deferred = NULL;
        aloop__make_ready(loop, &t->fut.run);
        t = next;
    }
}

static void switch_away(aloop_t *loop, aloop_coro_t *self);

ALOOP_NOINLINE int aloop__coop_yield(aloop_task_impl_t *t) {
    aloop_t *loop = t->fut.loop;
    t->coop_used = 0;
    if (loop->closing) return 0; /* aloop_free: every call fails at once anyway */
    t->queued = 1;
    defer(loop, t);
    if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_coop_yield(loop, t);
    switch_away(loop, t->coro);
    if (ALOOP_UNLIKELY(t->must_cancel)) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return 0;
}

int aloop__suspend(aloop_task_impl_t *t, aloop_wait_t *w) {
    aloop_t *loop = t->fut.loop;
    t->wait = w;
    t->coop_used = 0;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_step_end(loop, t);
    switch_away(loop, t->coro);
    if (ALOOP_UNLIKELY(t->must_cancel)) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return w->result;
}

void aloop__wake(aloop_task_impl_t *t, int result) {
    aloop_wait_t *w = t->wait;
    w->result = result;
    t->wait = NULL;
    t->queued = 1;
    aloop__make_ready(t->fut.loop, &t->fut.run);
}

/* Every coroutine runs this for ever: one task after another, parking in
 * the idle pool in between, so a spawn reuses a live context instead of
 * bootstrapping a new one. */
void aloop__coro_body(aloop_t *loop, aloop_coro_t *co) {
    for (;;) {
        aloop_task_impl_t *t = aloop__task(co->task);
        void *result = NULL;
        t->started = 1;
        if (!t->must_cancel) {
            result = t->fn(t->arg);
            if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_step_end(loop, t);
        }
        aloop__task_finish(t, result); /* may free t */
        co->task = NULL;
        if (loop->idle_count < ALOOP_IDLE_CORO_MAX && !loop->closing) {
            co->next_idle = loop->idle;
            loop->idle = co;
            loop->idle_count++;
            switch_away(loop, co);
        } else {
            /* Cannot unmap the stack we stand on: the loop context does it. */
            loop->zombie = co;
            loop->current = NULL;
            aloop__coro_switch(loop, co, NULL);
            abort(); /* a zombie is never resumed */
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */
/* ------------------------------------------------------------------------ */

static void run_task(aloop_t *loop, aloop_task_impl_t *t) {
    t->queued = 0;
    loop->current = t;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_step_begin(loop);
    aloop__coro_switch(loop, NULL, t->coro);
    loop->current = NULL;
    if (loop->zombie) {
        aloop__coro_free(loop->zombie);
        loop->zombie = NULL;
    }
}

static void run_steps(aloop_t *loop) {
    loop->budget = ALOOP_STEPS_PER_TICK;
    while (loop->budget && loop->ring_count) {
        aloop_runnable_t *r = ring_pop(loop);
        loop->budget--;
        switch (r->kind) {
        case ALOOP_RUN_TASK: run_task(loop, (aloop_task_impl_t *)(void *)r); break;
        case ALOOP_RUN_HANDLE:
            /* aloop_free discards call_soon/call_later callbacks unrun */
            if (ALOOP_UNLIKELY(loop->closing))
                aloop__handle_drop((aloop_handle_t *)(void *)r);
            else
                aloop__handle_run((aloop_handle_t *)(void *)r);
            break;
        default: aloop__future_run_callback(r); break;
        }
    }
}

/* Something other than a ready runnable could still happen. */
static int has_pending_sources(const aloop_t *loop) {
    return loop->heap_len || aloop__poller_pending(loop) || aloop__async_pending(loop);
}

/* Polls, then fires due timers. Blocks only when nothing is ready, and then
 * only until the next deadline (the timeout rule of the course's scheduler:
 * 0 if anything is ready, until the next deadline, or for ever). Under the
 * virtual clock it never blocks for a timer: it jumps the clock instead. */
static void tick(aloop_t *loop) {
    double next = aloop__timers_next(loop);
    double timeout = -1;
    if (loop->ring_count || loop->deferred_head || loop->stopping) {
        timeout = 0;
    } else if (next >= 0) {
        timeout = loop->clock == ALOOP_CLOCK_VIRTUAL ? 0 : next - aloop__now(loop);
        if (timeout < 0) timeout = 0;
    }
    if (timeout != 0 || aloop__poller_pending(loop) || aloop__async_pending(loop))
        aloop__poller_poll(loop, timeout);
    aloop__async_drain(loop);
    if (loop->clock == ALOOP_CLOCK_VIRTUAL && !loop->ring_count && next > loop->vnow)
        loop->vnow = next;
    if (loop->heap_len) aloop__timers_run(loop, aloop__now(loop));
    if (loop->deferred_head) undefer(loop);
}

/* The one run loop behind aloop_run and aloop_run_until_complete. */
static int run_loop(aloop_t *loop, aloop_future_t *until) {
    if (!loop) return -EINVAL;
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_run");
    if (loop->running || (tls_loop && tls_loop != loop)) return -EPERM;
    if (until && until->loop != loop) return -EINVAL;
    int rc = 0;
    tls_loop = loop;
    loop->running = 1;
    for (;;) {
        if (until && until->state != ALOOP_PENDING) break;
        if (loop->ring_count == 0 && !loop->deferred_head && !has_pending_sources(loop)) {
            rc = (until || loop->task_count) ? -EDEADLK : 0;
            break;
        }
        tick(loop);
        run_steps(loop);
        if (loop->stopping) {
            rc = until && until->state == ALOOP_PENDING ? -EAGAIN : 0;
            break;
        }
    }
    loop->running = 0;
    loop->stopping = 0;
    tls_loop = NULL;
    if (until && until->state != ALOOP_PENDING) {
        until->error_retrieved = 1;
        rc = until->error;
    }
    return rc;
}

int aloop_run(aloop_t *loop) { return run_loop(loop, NULL); }

int aloop_run_until_complete(aloop_t *loop, aloop_future_t *f) {
    if (!f) return -EINVAL;
    return run_loop(loop, f);
}

void aloop_stop(aloop_t *loop) {
    if (!loop) return;
    loop->stopping = 1;
    loop->budget = 0;
}

/* Used by aloop_free: cancels every unfinished task and runs until they are
 * all gone. While closing, suspending calls fail at once (aloop__enter), so
 * every task can only run towards its end. */
void aloop__drain_tasks(aloop_t *loop) {
    loop->closing = 1;
    for (int pass = 0; (loop->task_count || loop->ring_count) && pass < 1000; pass++) {
        if (loop->deferred_head) undefer(loop);
        for (aloop_list_t *n = loop->tasks.next; n != &loop->tasks;) {
            aloop_task_impl_t *t = ALOOP_CONTAINER_OF(n, aloop_task_impl_t, tasks);
            n = n->next;
            aloop__task_cancel(t);
        }
        tls_loop = loop;
        loop->running = 1;
        while (loop->ring_count) run_steps(loop);
        loop->running = 0;
        tls_loop = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Yielding and sleeping                                                    */
/* ------------------------------------------------------------------------ */

/* The yield itself. The loop comes from the caller, who already has it:
 * loading it from t would make the ring update wait for the chain
 * tls -> loop -> current task -> task's loop, on the hottest path there is. */
static int yield_in(aloop_t *loop, aloop_task_impl_t *t) {
    t->queued = 1;
    t->coop_used = 0;
    aloop__make_ready(loop, &t->fut.run);
    if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_step_end(loop, t);
    switch_away(loop, t->coro);
    if (ALOOP_UNLIKELY(t->must_cancel)) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return 0;
}

int aloop__yield(aloop_task_impl_t *t) { return yield_in(t->fut.loop, t); }

int aloop_yield(void) {
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    return t ? yield_in(tls_loop, t) : err;
}

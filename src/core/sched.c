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

/* The per-thread current loop is coro.c's aloop__tls_coros (struct aloop
 * starts with its coroutine state): coro_entry and the overflow report find
 * the running coroutine through it without knowing of loops. */
static void enter_thread(aloop_t *loop);

/* Making a loop current on a thread is where it starts running there (also
 * aloop_run_once's way in): the thread gets the overflow report too. */
void aloop__set_tls_loop(aloop_t *loop) {
    if (loop) enter_thread(loop);
    aloop__tls_coros = loop ? &loop->coros : NULL;
}

aloop_t *aloop_current(void) { return aloop__tls_loop(); }

aloop_task_impl_t *aloop__current_task(void) {
    aloop_t *loop = aloop__tls_loop();
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

int aloop__sched_init(aloop_t *loop) {
    loop->mono_base = aloop__monotonic();
    return aloop__ring_grow(loop);
}

void aloop__sched_free(aloop_t *loop) {
    aloop__free_big(loop->sched.ring, loop->sched.ring_cap * sizeof *loop->sched.ring);
    loop->sched.ring = NULL;
    loop->sched.ring_cap = loop->sched.ring_count = 0;
}

int aloop__ring_grow(aloop_t *loop) {
    size_t cap = loop->sched.ring_cap ? loop->sched.ring_cap * 2 : 64;
    aloop_runnable_t **ring = aloop__malloc_big(cap * sizeof *ring);
    if (!ring) return -ENOMEM;
    for (size_t i = 0; i < loop->sched.ring_count; i++)
        ring[i] = loop->sched.ring[(loop->sched.ring_head + i) & (loop->sched.ring_cap - 1)];
    aloop__free_big(loop->sched.ring, loop->sched.ring_cap * sizeof *loop->sched.ring);
    loop->sched.ring = ring;
    loop->sched.ring_head = 0;
    loop->sched.ring_cap = cap;
    return 0;
}

static aloop_runnable_t *ring_peek(const aloop_t *loop) {
    return loop->sched.ring[loop->sched.ring_head];
}

/* ------------------------------------------------------------------------ */
/* Switching between tasks                                                  */
/* ------------------------------------------------------------------------ */

/* ---- the first-run path. A spawned task is only its task struct on the
 * ready ring; it gets a coroutine (stack + context) when it first runs: the
 * most recently parked one (LIFO: its stack is hot in cache and its top page
 * already touched), or a new one. A task cancelled before its first step
 * never gets one. A coroutine whose task finished starts the next
 * not-yet-started task itself, with no context switch at all (coro_main). */

static aloop_coro_t *idle_pop(aloop_t *loop) {
    aloop_coro_t *co = loop->coros.idle;
    loop->coros.idle = co->next_idle;
    loop->coros.idle_count--;
    return co;
}

static void coro_label(const void *user, char *buf, size_t n) {
    aloop__task_label(user, buf, n);
}

static void coro_main(aloop_coros_t *coros, aloop_coro_t *co);

/* A coroutine for t's first step: 0, or -ENOMEM. */
static int coro_take(aloop_t *loop, aloop_coro_t **out) {
    if (loop->coros.idle) {
        *out = idle_pop(loop);
        return 0;
    }
    return aloop__coro_new(&loop->coros, coro_main, coro_label, out);
}

/* Completes a task that never ran: cancelled before its first step (err 0:
 * it completes as cancelled) or without a stack (-ENOMEM). */
static void finish_unstarted(aloop_task_impl_t *t, int err) {
    if (err) t->fut.error = err; /* as aloop_fail(err) would */
    aloop__task_finish(t, NULL);
}

/* Whether the next runnable is a task that has not started yet. */
static int next_is_unstarted(const aloop_t *loop) {
    const aloop_runnable_t *r = loop->sched.ring[loop->sched.ring_head];
    return r->kind == ALOOP__RUN_TASK && !((const aloop_task_impl_t *)(const void *)r)->started;
}

/* Gives t (which has not started) the coroutine co, so that switching to
 * co runs it. t is the current task from here on. t->coro shares its place
 * with t->fn: co sets it when it starts t (run_to_end). */
static void attach(aloop_t *loop, aloop_task_impl_t *t, aloop_coro_t *co) {
    co->user = t;
    loop->current = t;
}

/* Leaves the running coroutine `self`: straight into the next ready task if
 * the budget allows (a task that has not started yet gets a parked
 * coroutine, if there is one), else back to the loop's context. Returns
 * when someone switches back to self. */
/* Out of line, to keep the hand-over between started tasks short: next has
 * not started; it gets the most recently parked coroutine, or NULL (the
 * loop's context then handles it: a cancelled one, or a new stack). */
static ALOOP_NOINLINE aloop_coro_t *start_on_parked(aloop_t *loop, aloop_task_impl_t *next) {
    if (!loop->coros.idle || next->must_cancel) return NULL;
    aloop_coro_t *to = idle_pop(loop);
    attach(loop, next, to);
    return to;
}

static inline void switch_away(aloop_t *loop, aloop_coro_t *self) {
    if (loop->sched.budget && loop->sched.ring_count && ring_peek(loop)->kind == ALOOP__RUN_TASK) {
        aloop_task_impl_t *next = (aloop_task_impl_t *)(void *)ring_peek(loop);
        aloop_coro_t *to = ALOOP_LIKELY(next->started) ? next->coro : start_on_parked(loop, next);
        if (ALOOP_UNLIKELY(!to)) goto to_loop;
        aloop__ring_pop(loop);
        loop->sched.budget--;
        next->queued = 0;
        loop->current = next;
        if (to == self) return; /* it was our own wake-up (or our next task) */
        aloop__coro_switch(&loop->coros, self, to);
        return;
    }
to_loop:
    loop->current = NULL;
    aloop__coro_switch(&loop->coros, self, NULL);
}

/* t ends a step by switching out: debug mode's step accounting, the
 * suspend hook. Out of line: the common case tests one flag word. */
static ALOOP_NOINLINE void switch_out_slow(aloop_t *loop, aloop_task_impl_t *t) {
    if (loop->flags & ALOOP_DEBUG) aloop__debug_step_end(loop, t);
    if (loop->flags & ALOOP__HOOKED) aloop__hook_suspend(loop, t);
}

/* t runs again (on its own stack, after a switch_away returned, or at its
 * first step): counted, and the resume hook. */
static inline void switched_in(aloop_t *loop, aloop_task_impl_t *t) {
    loop->stats.switches++;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP__HOOKED)) aloop__hook_resume(loop, t);
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
    aloop_t *loop = aloop__tls_loop();
    aloop_task_impl_t *t = loop ? loop->current : NULL;
    if (ALOOP_UNLIKELY(!t)) {
        *err = aloop__misuse(loop, -EPERM, "suspending call", "called outside a task");
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
 * which aloop__tick appends to the ring after the poll and the timers: every fd
 * that became ready, every timer due and every task already ready runs
 * before it does. A deferred task is ready: under the virtual clock time
 * does not move while one exists (it jumps only when nothing at all can
 * run), so a wait_for around a busy task does not expire early. */
static void defer(aloop_t *loop, aloop_task_impl_t *t) {
    t->next_deferred = NULL;
    if (loop->sched.deferred_head)
        loop->sched.deferred_tail->next_deferred = t;
    else
        loop->sched.deferred_head = t;
    loop->sched.deferred_tail = t;
}

void aloop__undefer(aloop_t *loop) {
    aloop_task_impl_t *t = loop->sched.deferred_head;
    loop->sched.deferred_head = loop->sched.deferred_tail = NULL;
    while (t) {
        aloop_task_impl_t *next = t->next_deferred;
        t->next_deferred = NULL;
        aloop__make_ready(loop, &t->fut.run);
        t = next;
    }
}


ALOOP_NOINLINE int aloop__coop_yield(aloop_task_impl_t *t) {
    aloop_t *loop = t->fut.loop;
    t->coop_used = 0;
    if (loop->closing) return 0; /* aloop_free: every call fails at once anyway */
    t->queued = 1;
    defer(loop, t);
    loop->stats.budget_yields++;
    if (ALOOP_UNLIKELY(loop->flags & (ALOOP_DEBUG | ALOOP__HOOKED))) {
        if (loop->flags & ALOOP_DEBUG) aloop__debug_coop_yield(loop, t);
        if (loop->flags & ALOOP__HOOKED) aloop__hook_suspend(loop, t);
    }
    switch_away(loop, t->coro);
    switched_in(loop, t);
    if (ALOOP_UNLIKELY(t->must_cancel)) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return 0;
}

int aloop__suspend(aloop_task_impl_t *t, aloop_wait_t *w) {
    aloop_t *loop = t->fut.loop;
    w->task = t;
    t->wait = w;
    t->coop_used = 0;
    if (ALOOP_UNLIKELY(loop->flags & (ALOOP_DEBUG | ALOOP__HOOKED))) switch_out_slow(loop, t);
    switch_away(loop, t->coro);
    switched_in(loop, t);
    if (ALOOP_UNLIKELY(t->must_cancel)) {
        t->must_cancel = 0;
        return -ECANCELED;
    }
    return w->result;
}

void aloop__wake(aloop_wait_t *w, int result) {
    aloop_task_impl_t *t = w->task;
    w->result = result;
    t->wait = NULL;
    t->queued = 1;
    aloop__make_ready(t->fut.loop, &t->fut.run);
}

/* ------------------------------------------------------------------------ */
/* Wait lists: one wake-up protocol for every primitive                     */
/* ------------------------------------------------------------------------ */

/* Cancelled while waiting: off the waiter list, onto the woken list (the
 * object may be freed before the task runs, and must still reach it). */
static void wait_list_cancel(aloop_wait_t *w) {
    aloop__list_remove(&w->link);
    if (w->woken) aloop__list_push_back(w->woken, &w->link);
    if (w->withdraw) w->withdraw(w);
}

/* The task runs again after waiting on w: w leaves the object's woken
 * list. Still on it, the object is alive and the grant (result >= 0)
 * stands: a cancel that came after the grant gives it back here, so that
 * no wake-up is lost. */
static void wait_leave(aloop_wait_t *w, int rc) {
    int held = w->link.next != &w->link;
    aloop__list_remove(&w->link);
    if (rc == -ECANCELED && held && w->result >= 0 && w->undo) w->undo(w);
}

int aloop__wait_in(aloop_task_impl_t *t, aloop_wait_t *w, aloop_list_t *waiters,
                   aloop_list_t *woken) {
    w->cancel = wait_list_cancel;
    w->woken = woken;
    aloop__list_push_back(waiters, &w->link);
    int rc = aloop__suspend(t, w);
    wait_leave(w, rc);
    return rc;
}

/* ---- one wait on several lists: a ring of entries around the record the
 * task suspends on (t->wait while it waits). */

/* Every entry of w's ring except keep leaves its waiter list. */
static void any_withdraw(aloop_wait_t *w, aloop_wait_t *keep) {
    for (aloop_wait_t *e = w->any_next; e != w; e = e->any_next) {
        if (e == keep) continue;
        aloop__list_remove(&e->link);
        if (e->withdraw) e->withdraw(e);
    }
}

static void any_cancel(aloop_wait_t *w) { any_withdraw(w, NULL); }

void aloop__wait_add(aloop_task_impl_t *t, aloop_wait_t *w, aloop_wait_t *e,
                     aloop_list_t *waiters, aloop_list_t *woken) {
    if (!w->any_next) w->any_next = w;
    e->task = t;
    e->woken = woken;
    e->result = INT_MIN; /* not woken */
    e->any_next = w->any_next;
    w->any_next = e;
    aloop__list_push_back(waiters, &e->link);
}

void aloop__wait_any_drop(aloop_wait_t *w) {
    if (w->any_next) any_withdraw(w, NULL);
}

int aloop__wait_any(aloop_task_impl_t *t, aloop_wait_t *w) {
    w->cancel = any_cancel;
    int rc = aloop__suspend(t, w);
    for (aloop_wait_t *e = w->any_next; e != w; e = e->any_next) {
        /* the winner's object may have been freed since (its result) */
        if (rc >= 0 && e->result != INT_MIN) rc = e->result;
        wait_leave(e, rc);
    }
    return rc;
}

/* Entry e of a wait on several lists was woken first: it wins. */
static ALOOP_NOINLINE void wake_any(aloop_wait_t *e, int result) {
    aloop_wait_t *w = e->task->wait;
    e->result = result;
    any_withdraw(w, e);
    aloop__wake(w, result);
}

/* w, just taken off its waiter list, is woken. */
static inline void wake_waiter(aloop_wait_t *w, int result) {
    if (ALOOP_UNLIKELY(w->any_next)) {
        wake_any(w, result);
        return;
    }
    aloop__wake(w, result);
}

aloop_wait_t *aloop__wake_first(aloop_list_t *waiters, int result) {
    aloop_list_t *n = aloop__list_pop_front(waiters);
    if (!n) return NULL;
    aloop_wait_t *w = ALOOP_CONTAINER_OF(n, aloop_wait_t, link);
    if (w->woken) aloop__list_push_back(w->woken, n);
    wake_waiter(w, result);
    return w;
}

size_t aloop__wake_all(aloop_list_t *waiters, int result) {
    size_t n = 0;
    while (aloop__wake_first(waiters, result)) n++;
    return n;
}

void aloop__waits_free(aloop_list_t *waiters, aloop_list_t *woken, int result) {
    aloop_list_t *n;
    while ((n = aloop__list_pop_front(waiters)) != NULL)
        wake_waiter(ALOOP_CONTAINER_OF(n, aloop_wait_t, link), result);
    if (!woken) return;
    while ((n = aloop__list_pop_front(woken)) != NULL)
        ALOOP_CONTAINER_OF(n, aloop_wait_t, link)->result = result;
}

/* One task's life on co, from its first step to its end. */
static void run_to_end(aloop_t *loop, aloop_task_impl_t *t, aloop_coro_t *co) {
    void *result = NULL;
    aloop_task_fn fn = t->fn;
    t->coro = co; /* (in fn's place) */
    t->started = 1;
    if (!t->must_cancel) {
        switched_in(loop, t);
        result = fn(t->arg);
        if (ALOOP_UNLIKELY(loop->flags & (ALOOP_DEBUG | ALOOP__HOOKED))) switch_out_slow(loop, t);
    }
    aloop__task_finish(t, result); /* may free t */
}

/* After a task finished on co: the next runnable, if it is a task that has
 * not started and the budget allows, runs on co at once (no switch, the
 * stack is hot). A cancelled one is finished without running. Returns the
 * task to run, or NULL. */
static aloop_task_impl_t *next_on_same_coro(aloop_t *loop, aloop_coro_t *co) {
    while (loop->sched.budget && loop->sched.ring_count && next_is_unstarted(loop)) {
        aloop_task_impl_t *t = (aloop_task_impl_t *)(void *)aloop__ring_pop(loop);
        loop->sched.budget--;
        t->queued = 0;
        if (ALOOP_UNLIKELY(t->must_cancel)) {
            finish_unstarted(t, 0);
            continue;
        }
        attach(loop, t, co);
        return t;
    }
    return NULL;
}

/* Every coroutine runs this for ever: one task after another. In between,
 * it either goes on with the next task that has not started yet, or parks
 * in the idle pool (LIFO) until a first step needs it. */
static void coro_main(aloop_coros_t *coros, aloop_coro_t *co) {
    aloop_t *loop = ALOOP_CONTAINER_OF(coros, aloop_t, coros);
    for (;;) {
        aloop_task_impl_t *t = co->user;
        run_to_end(loop, t, co);
        co->user = NULL;
        if ((t = next_on_same_coro(loop, co)) != NULL) {
            co->user = t;
            continue;
        }
        if (loop->coros.idle_count < ALOOP_IDLE_CORO_MAX && !loop->closing) {
            aloop__coro_park(&loop->coros, co, loop->coros.idle_count);
            co->next_idle = loop->coros.idle;
            loop->coros.idle = co;
            loop->coros.idle_count++;
            switch_away(loop, co); /* back with co->user set (attach) */
        } else {
            /* Cannot unmap the stack we stand on: the loop context does it. */
            loop->coros.zombie = co;
            loop->current = NULL;
            aloop__coro_switch(&loop->coros, co, NULL);
            abort(); /* a zombie is never resumed */
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */
/* ------------------------------------------------------------------------ */

/* First step from the loop's context: the coroutine to switch to for t,
 * or NULL when t completed without one. */
static aloop_coro_t *first_step(aloop_t *loop, aloop_task_impl_t *t) {
    aloop_coro_t *co;
    if (t->must_cancel) {
        finish_unstarted(t, 0); /* cancelled before its first step: no stack */
        return NULL;
    }
    if (coro_take(loop, &co) < 0) {
        finish_unstarted(t, -ENOMEM);
        return NULL;
    }
    attach(loop, t, co);
    return co;
}

static void run_task(aloop_t *loop, aloop_task_impl_t *t) {
    aloop_coro_t *co;
    t->queued = 0;
    if (ALOOP_LIKELY(t->started))
        co = t->coro;
    else if (!(co = first_step(loop, t)))
        return;
    loop->current = t;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP_DEBUG)) aloop__debug_step_begin(loop);
    aloop__coro_switch(&loop->coros, NULL, co);
    loop->current = NULL;
    if (loop->coros.zombie) {
        aloop__coro_free(loop->coros.zombie);
        loop->coros.zombie = NULL;
    }
}

void aloop__run_steps(aloop_t *loop, unsigned budget) {
    loop->sched.budget = budget;
    while (loop->sched.budget && loop->sched.ring_count) {
        aloop_runnable_t *r = aloop__ring_pop(loop);
        loop->sched.budget--;
        switch (r->kind) {
        case ALOOP__RUN_TASK: run_task(loop, (aloop_task_impl_t *)(void *)r); break;
        case ALOOP__RUN_HANDLE:
            /* aloop_free discards call_soon/call_later callbacks unrun */
            if (ALOOP_UNLIKELY(loop->closing))
                aloop__handle_drop((aloop_handle_t *)(void *)r);
            else
                aloop__handle_run((aloop_handle_t *)(void *)r);
            break;
        case ALOOP__RUN_FD_CALLBACK: aloop__fd_callback_run(r); break;
        default: aloop__future_run_callback(r); break;
        }
    }
}

/* The loop's lag (aloop_metrics): how late a timer fires. */
static void note_lag(aloop_t *loop, double late) {
    loop->stats.timers_fired++;
    loop->stats.lag = late;
    if (late > loop->stats.lag_max) loop->stats.lag_max = late;
}

/* Fires every timer due at or before now, in (when, seq) order. A timer's
 * fire only makes something ready (a task, a handle); no user code runs. */
void aloop__run_timers(aloop_t *loop, double now) {
    aloop_timer_t *t;
    while ((t = aloop__timers_pop_due(&loop->timers, now)) != NULL) {
        note_lag(loop, now - t->when);
        t->fire(t);
    }
}

static void run_steps(aloop_t *loop) { aloop__run_steps(loop, ALOOP_STEPS_PER_TICK); }

/* Something other than a ready runnable could still happen. */
int aloop__has_sources(const aloop_t *loop) {
    return loop->sched.deferred_head || aloop__timers_count(&loop->timers) || aloop__io_pending(loop) || aloop__xthread_pending(loop);
}

/* How long the poll of a tick may block (real seconds, < 0: for ever):
 * 0 if anything is ready, else until the next deadline, but at most
 * host_timeout (< 0: no limit of the host's). Under the virtual clock it
 * never blocks for a timer: the clock jumps instead (advance_virtual). */
static double poll_timeout(aloop_t *loop, double host_timeout, double next) {
    if (loop->sched.ring_count || loop->sched.deferred_head || loop->stopping || host_timeout == 0)
        return 0;
    if (next < 0) return host_timeout;
    if (loop->clock == ALOOP_CLOCK_VIRTUAL) return 0;
    double until_next = next - aloop__now(loop);
    if (until_next < 0) until_next = 0;
    return host_timeout < 0 || until_next < host_timeout ? until_next : host_timeout;
}

/* The virtual clock moves only when nothing is ready (a task paused by its
 * budget is ready): to the next deadline, but by at most host_timeout
 * (< 0: no limit; without a deadline, by exactly host_timeout); never for
 * host_timeout == 0. */
static void advance_virtual(aloop_t *loop, double host_timeout, double next) {
    if (loop->clock != ALOOP_CLOCK_VIRTUAL || loop->sched.ring_count ||
        loop->sched.deferred_head || host_timeout == 0)
        return;
    if (next < 0) {
        if (host_timeout > 0) loop->vnow += host_timeout;
        return;
    }
    if (next <= loop->vnow) return;
    loop->vnow = host_timeout < 0 || next < loop->vnow + host_timeout ? next : loop->vnow + host_timeout;
}

/* One tick, for aloop_run (host_timeout -1) and aloop_run_once (the
 * host's timeout): polls, drains what other threads posted, moves the
 * virtual clock, fires due timers, and appends the tasks paused by their
 * budget. With nothing ready and nothing of the loop's own that could
 * wake a task, it sleeps for other threads instead: -EDEADLK if none
 * exists; else 0. */
int aloop__tick(aloop_t *loop, double host_timeout) {
    double next = aloop__timers_next(&loop->timers);
    double wait = poll_timeout(loop, host_timeout, next);
    if (wait != 0 && !loop->sched.ring_count && !aloop__has_sources(loop)) {
        if (aloop__wait_for_other_threads(loop, wait)) return -EDEADLK;
    } else {
        if (wait != 0 || aloop__io_pending(loop) || aloop__xthread_pending(loop))
            aloop__io_poll(loop, wait);
        aloop__xthread_drain(loop);
    }
    advance_virtual(loop, host_timeout, next);
    if (aloop__timers_count(&loop->timers)) aloop__run_timers(loop, aloop__now(loop));
    aloop__undefer(loop);
    return 0;
}

/* Unfinished tasks, and nothing of the loop's own that could wake them.
 * Another thread may still post work (aloop_call_soon_threadsafe,
 * aloop_run_threadsafe): sleep until it does, unless no other thread
 * exists (then it is a deadlock: 1). The sleep is cut into growing slices
 * (1 ms doubling to 1 s) after which the threads are counted again: a
 * thread that has just exited (joined) can still be listed in
 * /proc/self/task for a moment, and the last one leaving must not leave
 * the loop asleep for ever. Debug mode warns once per wait of 10 s.
 * limit (>= 0) bounds the sleep (aloop_run_once's timeout). */
int aloop__wait_for_other_threads(aloop_t *loop, double limit) {
    if (aloop__xthread_alone(loop)) {
        /* The last other thread may have posted just before it exited:
         * counted after that, its work is visible now. */
        if (!aloop__xthread_pending(loop)) return 1;
        aloop__xthread_drain(loop);
        return 0;
    }
    if (loop->stopping) return 0; /* aloop_stop before the run: one pass, no sleep */
    double now = aloop__monotonic();
    if (loop->sched.foreign_slice == 0) { /* a new wait begins */
        loop->sched.foreign_slice = ALOOP_FOREIGN_SLICE_MIN;
        loop->sched.foreign_since = now;
        loop->sched.foreign_warned = 0;
    }
    double slice = limit >= 0 && limit < loop->sched.foreign_slice ? limit : loop->sched.foreign_slice;
    aloop__io_sleep(loop, slice);
    if (aloop__xthread_pending(loop)) { /* none before the sleep: something was posted */
        loop->sched.foreign_slice = 0; /* work came: the next wait starts afresh */
    } else {
        loop->sched.foreign_slice = loop->sched.foreign_slice * 2 > ALOOP_FOREIGN_SLICE_MAX
                                  ? ALOOP_FOREIGN_SLICE_MAX : loop->sched.foreign_slice * 2;
        if ((loop->flags & ALOOP_DEBUG) && !loop->sched.foreign_warned &&
            aloop__monotonic() - loop->sched.foreign_since >= ALOOP_FOREIGN_WAIT_WARN) {
            loop->sched.foreign_warned = 1;
            aloop__warn(loop, "%zu task(s) waited %.0f s for work from other threads "
                        "(aloop_call_soon_threadsafe / aloop_run_threadsafe) and none came",
                        loop->task_count, ALOOP_FOREIGN_WAIT_WARN);
        }
    }
    aloop__xthread_drain(loop);
    return 0;
}

/* Every thread that runs a loop gets the stack-overflow report: the
 * handler needs an alternate signal stack on the thread that overflows, and
 * a loop may run on a thread other than the one that created it. */
static void enter_thread(aloop_t *loop) {
    if (!(loop->flags & ALOOP_NO_GUARD_PAGES)) aloop__thread_altstack();
}

/* The one run loop behind aloop_run and aloop_run_until_complete. */
static int run_loop(aloop_t *loop, aloop_future_t *until) {
    if (!loop) return -EINVAL;
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_run");
    if (loop->running || (aloop__tls_loop() && aloop__tls_loop() != loop))
        return aloop__misuse(loop, -EPERM, "aloop_run", "called from inside a running loop");
    if (until && until->loop != loop) return aloop__foreign_loop(until->loop, loop, "aloop_run_until_complete");
    int rc = 0;
    enter_thread(loop);
    aloop__tls_coros = &loop->coros;
    aloop__set_running(loop, 1);
    for (;;) {
        if (until && until->state != ALOOP__PENDING) break;
        if (loop->sched.ring_count == 0 && !aloop__has_sources(loop)) {
            if (!until && !loop->task_count) break;
            if (aloop__wait_for_other_threads(loop, -1)) {
                rc = -EDEADLK;
                break;
            }
        } else {
            aloop__tick(loop, -1);
        }
        run_steps(loop);
        if (loop->stopping) {
            rc = until && until->state == ALOOP__PENDING ? -EAGAIN : 0;
            break;
        }
    }
    aloop__set_running(loop, 0);
    loop->stopping = 0;
    aloop__tls_coros = NULL;
    if (until && until->state != ALOOP__PENDING) {
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
    /* From another thread (the loop may be asleep waiting for one): through
     * the wake-up fd; the loop's thread applies it at its next drain. */
    if (aloop__tls_loop() != loop && __atomic_load_n(&loop->running, __ATOMIC_ACQUIRE)) {
        aloop__xthread_stop(loop);
        return;
    }
    loop->stopping = 1;
    loop->sched.budget = 0;
}

/* Used by aloop_free: cancels every unfinished task and runs until they are
 * all gone. While closing, suspending calls fail at once (aloop__enter), so
 * every task can only run towards its end. */
void aloop__drain_tasks(aloop_t *loop) {
    loop->closing = 1;
    for (int pass = 0; (loop->task_count || loop->sched.ring_count) && pass < 1000; pass++) {
        aloop__undefer(loop);
        for (aloop_list_t *n = loop->tasks.next; n != &loop->tasks;) {
            aloop_task_impl_t *t = ALOOP_CONTAINER_OF(n, aloop_task_impl_t, fut.live);
            n = n->next;
            aloop__task_cancel(t);
        }
        enter_thread(loop);
        aloop__tls_coros = &loop->coros;
        aloop__set_running(loop, 1);
        while (loop->sched.ring_count) run_steps(loop);
        aloop__set_running(loop, 0);
        aloop__tls_coros = NULL;
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
    if (ALOOP_UNLIKELY(loop->flags & (ALOOP_DEBUG | ALOOP__HOOKED))) switch_out_slow(loop, t);
    switch_away(loop, t->coro);
    switched_in(loop, t);
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
    return t ? yield_in(aloop__tls_loop(), t) : err;
}

/* aloop_sleep: the timer lives in the wait record on the task's stack, so
 * sleeping allocates nothing unless the heap must grow. */
typedef struct sleep_wait {
    aloop_wait_t wait;
    aloop_timer_t timer;
} sleep_wait_t;

static void sleep_fire(aloop_timer_t *timer) {
    aloop__wake(&ALOOP_CONTAINER_OF(timer, sleep_wait_t, timer)->wait, 0);
}

static void sleep_cancel(aloop_wait_t *w) {
    aloop__timer_stop(w->task->fut.loop, &ALOOP_CONTAINER_OF(w, sleep_wait_t, wait)->timer);
}

int aloop_sleep(double seconds) {
    int err;
    if (!(seconds >= 0)) return -EINVAL; /* negative or NaN */
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (seconds == 0) return aloop__yield(t);
    return aloop__sleep(t, seconds);
}

int aloop__sleep(aloop_task_impl_t *t, double seconds) {
    aloop_t *loop = t->fut.loop;
    sleep_wait_t sw = {.wait = {.cancel = sleep_cancel, .what = "aloop_sleep"}};
    aloop__timer_init(&sw.timer, sleep_fire);
    if (aloop__timer_start(loop, &sw.timer, aloop__now(loop) + seconds) < 0) return -ENOMEM;
    return aloop__suspend(t, &sw.wait);
}

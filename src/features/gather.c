/*
 * gather.c - waiting for several futures at once: aloop_gather, aloop_wait,
 * aloop_wait_for, and aloop_shield.
 *
 * gather and wait register one future waiter (a "slot") per input future.
 * Slots live on the caller's stack for small n and in one allocation
 * otherwise; whatever happens, every slot is unlinked from its future before
 * the call returns, so no future is ever left pointing into a dead frame.
 * A slot's fire() only counts and, when the caller's condition is met,
 * wakes the caller; it wakes only while the caller is actually suspended on
 * this call's wait record (aloop__wait_pending), so completions that happen
 * while the caller is running (e.g. a plain future cancelled by the caller
 * itself) never cause a second wake-up.
 */
#include "internal.h"

#include <math.h>

#define STACK_SLOTS 8

/* Shared by gather and wait: the caller's wait record and its slots. */
typedef struct multi_wait multi_wait_t;

typedef struct slot {
    aloop_fut_waiter_t waiter;
    multi_wait_t *mw;
} slot_t;

struct multi_wait {
    aloop_wait_t wait;   /* wait.task: the caller */
    aloop_future_t *const *fs;
    size_t n;
    size_t pending;      /* inputs not done yet */
    int first_error;     /* error of the first input seen failing (gather) */
    int mode;            /* what satisfies the caller (see satisfied()) */
    uint8_t draining;    /* cancelled: only "all done" counts now */
    uint8_t quiet;       /* cancelling children: their completions must not wake */
    slot_t *slots;
    aloop_timer_t timer; /* aloop_wait's timeout */
};

/* gather's own two modes, next to aloop_wait's ALOOP_* modes. */
enum { GATHER_ALL = 100, GATHER_STOP_ON_ERROR };

static int failed(const aloop_future_t *f) {
    return f->state != ALOOP__PENDING && f->error != 0;
}

/* Whether the caller may go on, given that future f just completed (f may
 * be NULL when checking the initial state). */
static int satisfied(const multi_wait_t *mw, const aloop_future_t *f) {
    if (mw->pending == 0) return 1;
    if (mw->draining) return 0;
    switch (mw->mode) {
    case ALOOP_FIRST_COMPLETED: return mw->pending < mw->n;
    case ALOOP_FIRST_ERROR: return f && f->state == ALOOP__DONE && f->error;
    case GATHER_STOP_ON_ERROR: return f && failed(f);
    default: return 0;
    }
}

static void slot_fire(aloop_fut_waiter_t *w, aloop_future_t *f) {
    multi_wait_t *mw = ALOOP_CONTAINER_OF(w, slot_t, waiter)->mw;
    mw->pending--;
    if (failed(f) && !mw->first_error) mw->first_error = f->error;
    if (!aloop__wait_pending(&mw->wait) || mw->quiet || !satisfied(mw, f)) return;
    aloop__timer_stop(mw->wait.task->fut.loop, &mw->timer);
    aloop__wake(&mw->wait, 0);
}

/* Checks the inputs of gather / wait before anything else happens. */
static int check_inputs(aloop_future_t *const *fs, size_t n) {
    if (n && !fs) return -EINVAL;
    aloop_task_impl_t *self = aloop__current_task();
    for (size_t i = 0; i < n; i++) {
        if (!fs[i] || aloop__check_loop(fs[i]->loop, "aloop_gather/aloop_wait") < 0)
            return -EINVAL;
        if (self && fs[i] == &self->fut) return -EDEADLK;
    }
    return 0;
}

/* Registers a slot on every pending input; counts the pending ones and
 * notes the first error (in input order) among those already done. The
 * slots come from stack_slots when n is small. -ENOMEM, else 0. */
static int multi_wait_start(multi_wait_t *mw, slot_t *stack_slots) {
    mw->slots = mw->n <= STACK_SLOTS ? stack_slots
                                         : aloop__malloc_big(mw->n * sizeof *mw->slots);
    if (!mw->slots) return -ENOMEM;
    for (size_t i = 0; i < mw->n; i++) {
        aloop_future_t *f = mw->fs[i];
        mw->slots[i].mw = mw;
        mw->slots[i].waiter.fire = slot_fire;
        aloop__list_init(&mw->slots[i].waiter.link);
        aloop_retain(f);
        if (f->state == ALOOP__PENDING) {
            mw->pending++;
            aloop__future_add_waiter(f, &mw->slots[i].waiter);
        } else if (failed(f) && !mw->first_error) {
            mw->first_error = f->error;
        }
    }
    return 0;
}

/* Unlinks every slot (harmless for fired ones), drops the references. */
static void multi_wait_end(multi_wait_t *mw, slot_t *stack_slots) {
    for (size_t i = 0; i < mw->n; i++) {
        aloop__future_remove_waiter(&mw->slots[i].waiter);
        aloop_release(mw->fs[i]);
    }
    if (mw->slots != stack_slots) aloop__free_big(mw->slots, mw->n * sizeof *mw->slots);
}

/* Cancels every input still pending. Cancelling a plain future completes
 * it on the spot; `quiet` keeps those completions from waking the caller,
 * who is either running or about to be woken by the core. */
static void cancel_pending(multi_wait_t *mw) {
    mw->draining = 1;
    mw->quiet = 1;
    for (size_t i = 0; i < mw->n; i++)
        if (mw->fs[i]->state == ALOOP__PENDING) aloop_cancel(mw->fs[i]);
    mw->quiet = 0;
}

/* ------------------------------------------------------------------------ */
/* gather                                                                   */
/* ------------------------------------------------------------------------ */

/* The caller was cancelled while suspended: cancel every pending child
 * (their completions do not wake us: we are not suspended right now, the
 * core wakes us with -ECANCELED after this returns). */
static void gather_cancel(aloop_wait_t *w) {
    cancel_pending(ALOOP_CONTAINER_OF(w, multi_wait_t, wait));
}

static void gather_fill(const multi_wait_t *mw, void **results, int *errors) {
    for (size_t i = 0; i < mw->n; i++) {
        aloop_future_t *f = mw->fs[i];
        int done = f->state != ALOOP__PENDING;
        if (done && f->error) f->error_retrieved = 1;
        if (results) results[i] = done && !f->error ? f->result : NULL;
        if (errors) errors[i] = done ? f->error : -EAGAIN;
    }
}

int aloop_gather(aloop_future_t *const *fs, size_t n, void **results, int *errors,
                 unsigned flags) {
    int err = check_inputs(fs, n);
    if (err) return err;
    if (flags & ~ALOOP_RETURN_ERRORS) return -EINVAL;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;

    slot_t stack_slots[STACK_SLOTS];
    multi_wait_t mw = {.wait = {.cancel = gather_cancel, .what = "aloop_gather", .task = t},
                       .fs = fs, .n = n};
    aloop__timer_init(&mw.timer, NULL); /* unused: never armed */
    mw.mode = (flags & ALOOP_RETURN_ERRORS) ? GATHER_ALL : GATHER_STOP_ON_ERROR;
    if (multi_wait_start(&mw, stack_slots) < 0) return -ENOMEM;

    /* Without ALOOP_RETURN_ERRORS the first error ends the wait (unless we
     * are cancelled: then every child is waited for). */
    int stop_on_error = mw.mode == GATHER_STOP_ON_ERROR, cancelled = 0;
    while (mw.pending && !(stop_on_error && mw.first_error && !cancelled)) {
        if (aloop__suspend(t, &mw.wait) == -ECANCELED) {
            /* Cancelled: the children are cancelled (by gather_cancel, or
             * here when the cancel came right after a wake-up) and waited
             * for until each has finished, as asyncio's gather future does. */
            cancelled = 1;
            if (!mw.draining) cancel_pending(&mw);
        }
    }
    gather_fill(&mw, results, errors);
    int rc = cancelled ? -ECANCELED : (mw.mode == GATHER_STOP_ON_ERROR ? mw.first_error : 0);
    multi_wait_end(&mw, stack_slots);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* wait                                                                     */
/* ------------------------------------------------------------------------ */

static void wait_timeout_fire(aloop_timer_t *timer) {
    multi_wait_t *mw = ALOOP_CONTAINER_OF(timer, multi_wait_t, timer);
    if (aloop__wait_pending(&mw->wait)) aloop__wake(&mw->wait, -ETIMEDOUT);
}

/* Cancelled while suspended: aloop_wait cancels nothing, it only stops
 * its timer (the slots are unlinked on the way out). */
static void wait_cancel(aloop_wait_t *w) {
    multi_wait_t *mw = ALOOP_CONTAINER_OF(w, multi_wait_t, wait);
    aloop__timer_stop(w->task->fut.loop, &mw->timer);
}

static size_t count_done(aloop_future_t *const *fs, size_t n) {
    size_t done = 0;
    for (size_t i = 0; i < n; i++) done += fs[i]->state != ALOOP__PENDING;
    return done;
}

/* FIRST_ERROR is also met by an input that had already failed. */
static int any_error_done(aloop_future_t *const *fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fs[i]->state == ALOOP__DONE && fs[i]->error) return 1;
    return 0;
}

int aloop_wait(aloop_future_t *const *fs, size_t n, int mode, double timeout, size_t *ndone) {
    if (ndone) *ndone = 0;
    int err = check_inputs(fs, n);
    if (err) return err;
    if (n == 0 || isnan(timeout)) return -EINVAL;
    if (mode != ALOOP_ALL_COMPLETED && mode != ALOOP_FIRST_COMPLETED && mode != ALOOP_FIRST_ERROR)
        return -EINVAL;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    aloop_t *loop = t->fut.loop;

    slot_t stack_slots[STACK_SLOTS];
    multi_wait_t mw = {.wait = {.cancel = wait_cancel, .what = "aloop_wait", .task = t},
                       .fs = fs, .n = n, .mode = mode};
    aloop__timer_init(&mw.timer, wait_timeout_fire);
    if (multi_wait_start(&mw, stack_slots) < 0) return -ENOMEM;

    int rc = 0;
    int ready = satisfied(&mw, NULL) || (mode == ALOOP_FIRST_ERROR && any_error_done(fs, n));
    if (!ready && timeout == 0) {
        rc = -ETIMEDOUT;
    } else if (!ready) {
        if (timeout > 0) rc = aloop__timer_start(loop, &mw.timer, aloop__now(loop) + timeout);
        if (rc == 0) rc = aloop__suspend(t, &mw.wait);
        aloop__timer_stop(loop, &mw.timer);
    }
    multi_wait_end(&mw, stack_slots);
    if (ndone) *ndone = count_done(fs, n);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* wait_for                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct wait_for_state {
    aloop_wait_t wait; /* .awaiting = f: a cancel of the caller cancels f */
    aloop_fut_waiter_t waiter;
    aloop_timer_t timer;
    aloop_future_t *f;
    uint8_t timed_out;
} wait_for_state_t;

static void wait_for_done(aloop_fut_waiter_t *w, aloop_future_t *f) {
    ALOOP_UNUSED(f);
    wait_for_state_t *s = ALOOP_CONTAINER_OF(w, wait_for_state_t, waiter);
    aloop__timer_stop(s->wait.task->fut.loop, &s->timer);
    aloop__wake(&s->wait, 0);
}

/* The deadline passed: cancel f and keep waiting until it has finished.
 * Cancelling may complete a plain future at once (and wake us). */
static void wait_for_expire(aloop_timer_t *timer) {
    wait_for_state_t *s = ALOOP_CONTAINER_OF(timer, wait_for_state_t, timer);
    s->timed_out = 1;
    aloop_cancel(s->f);
}

int aloop_wait_for(aloop_future_t *f, double timeout, void **result) {
    int err;
    if (result) *result = NULL;
    if (!f || isnan(timeout) || aloop__check_loop(f->loop, "aloop_wait_for") < 0)
        return -EINVAL;
    aloop_task_impl_t *self = aloop__current_task();
    if (self && f == &self->fut) return -EDEADLK;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    aloop_t *loop = t->fut.loop;
    aloop_retain(f);

    wait_for_state_t s = {.wait = {.awaiting = f, .what = "aloop_wait_for", .task = t}, .f = f};
    s.waiter.fire = wait_for_done;
    aloop__list_init(&s.waiter.link);
    aloop__timer_init(&s.timer, wait_for_expire);
    int rc = 0;
    if (f->state == ALOOP__PENDING && timeout == 0) {
        s.timed_out = 1;
        aloop_cancel(f);
    }
    if (f->state == ALOOP__PENDING) {
        if (timeout > 0) rc = aloop__timer_start(loop, &s.timer, aloop__now(loop) + timeout);
        if (rc == 0) {
            aloop__future_add_waiter(f, &s.waiter);
            rc = aloop__suspend(t, &s.wait);
        }
        aloop__timer_stop(loop, &s.timer);
        aloop__future_remove_waiter(&s.waiter);
    }
    if (rc == 0) {
        /* A timeout shows as -ETIMEDOUT only if f did end cancelled: an
         * inner task that caught the cancel and finished keeps its result. */
        if (s.timed_out && f->state == ALOOP__CANCELLED) {
            rc = -ETIMEDOUT;
        } else {
            rc = aloop_future_result(f, result);
        }
    }
    aloop_release(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* shield                                                                   */
/* ------------------------------------------------------------------------ */

/* The outer future and the link to the inner one in one block: the block
 * starts with the future, so the future's own destroy frees all of it. The
 * link holds a reference to the outer future while the inner one is
 * pending, so the caller may release the outer future at any time. */
typedef struct shield {
    aloop_future_t outer;
    aloop_fut_waiter_t on_inner;
} shield_t;

static void copy_outcome(aloop_future_t *to, aloop_future_t *from) {
    from->error_retrieved = 1;
    if (from->state == ALOOP__CANCELLED)
        aloop__future_complete(to, ALOOP__CANCELLED, -ECANCELED, NULL);
    else
        aloop__future_complete(to, ALOOP__DONE, from->error, from->error ? NULL : from->result);
}

static void shield_inner_done(aloop_fut_waiter_t *w, aloop_future_t *inner) {
    shield_t *s = ALOOP_CONTAINER_OF(w, shield_t, on_inner);
    if (s->outer.state == ALOOP__PENDING) copy_outcome(&s->outer, inner);
    aloop_release(&s->outer); /* the link's reference; may free s */
}

aloop_future_t *aloop_shield(aloop_future_t *f) {
    if (!f || !f->loop) return aloop__null_errno(-EINVAL);
    shield_t *s = aloop__calloc(1, sizeof *s);
    if (!s) return aloop__null_errno(-ENOMEM);
    aloop__future_init(&s->outer, f->loop);
    s->on_inner.fire = shield_inner_done;
    aloop__list_init(&s->on_inner.link);
    if (f->state != ALOOP__PENDING) {
        copy_outcome(&s->outer, f);
    } else {
        s->outer.refs++; /* the link's */
        aloop__future_add_waiter(f, &s->on_inner);
    }
    return &s->outer;
}

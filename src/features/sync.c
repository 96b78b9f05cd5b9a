/*
 * sync.c - asyncio's Lock, Event, Semaphore (and BoundedSemaphore) and
 * Condition.
 *
 * Every object keeps a FIFO list of waiters. A waiter is a sync_waiter_t on
 * the waiting task's own stack, so waiting never allocates.
 *
 * Ownership is handed over, not re-raced: releasing a lock (or a semaphore
 * unit) with waiters leaves it taken and wakes the first waiter with 0, which
 * now owns it. That gives FIFO fairness without the "woken waiter finds it
 * taken again" loop of asyncio. The price is that a waiter woken with the
 * object and cancelled before it ran must pass it on: the core's wake-up
 * protocol (aloop__wait_in, see struct aloop_wait) calls the wait's undo
 * hook then, so no wake-up is ever lost.
 *
 * Freeing an object wakes each waiter with -EPIPE, and cuts loose the
 * records of waiters woken but not yet run (aloop__waits_free): a waiter
 * that sees -EPIPE never touches the object again. That includes a
 * condition freed right after a notify: its waiter does not reacquire the
 * (freed) lock but returns -EPIPE.
 */
#include "internal.h"

#include <limits.h>

/* A waiter: the core's wait record and the object it waits on (for undo). */
typedef struct sync_waiter {
    aloop_wait_t wait;
    void *obj;
} sync_waiter_t;

struct aloop_lock {
    aloop_t *loop;
    uint8_t locked;
    aloop_list_t waiters; /* non-empty only while locked */
    aloop_list_t woken;   /* woken waiters that have not run yet */
};

struct aloop_event {
    aloop_t *loop;
    uint8_t set;
    aloop_list_t waiters;
};

struct aloop_semaphore {
    aloop_t *loop;
    unsigned value; /* > 0 only while nobody waits */
    unsigned bound; /* initial value of a bounded semaphore */
    uint8_t bounded;
    aloop_list_t waiters;
    aloop_list_t woken;
};

struct aloop_cond {
    aloop_t *loop;
    aloop_lock_t *lock;
    uint8_t owns_lock;
    aloop_list_t waiters;
    aloop_list_t woken;
};

/* Suspends the running task on obj's lists (undo gives a grant back; see
 * aloop__wait_in). 0 = granted; -EPIPE = obj was freed; -ECANCELED. *gone
 * (may be NULL) is set when obj was freed, also if the call was cancelled. */
static int wait_on(aloop_task_impl_t *t, void *obj, aloop_list_t *waiters, aloop_list_t *woken,
                   void (*undo)(aloop_wait_t *), int *gone) {
    sync_waiter_t w = {.wait = {.undo = undo, .what = "lock/event/semaphore/condition"}, .obj = obj};
    int rc = aloop__wait_in(t, &w.wait, waiters, woken);
    if (gone) *gone = w.wait.result == -EPIPE;
    return rc;
}

static void *waiter_obj(aloop_wait_t *w) { return ALOOP_CONTAINER_OF(w, sync_waiter_t, wait)->obj; }

/* Objects belong to one loop: using one from a task of another loop is
 * misuse (aloop__check_loop: -EINVAL). Outside any loop the call itself
 * decides (-EPERM). */
static void *new_object(aloop_t *loop, size_t size) {
    if (!loop) return aloop__null_errno(-EINVAL);
    void *p = aloop__calloc(1, size);
    return p ? p : aloop__null_errno(-ENOMEM);
}

/* ------------------------------------------------------------------------ */
/* Lock                                                                     */
/* ------------------------------------------------------------------------ */

aloop_lock_t *aloop_lock_new(aloop_t *loop) {
    aloop_lock_t *l = new_object(loop, sizeof *l);
    if (!l) return NULL;
    l->loop = loop;
    aloop__list_init(&l->waiters);
    aloop__list_init(&l->woken);
    return l;
}

/* Release without checks: the lock goes to the first waiter, or is free. */
static void lock_pass_on(aloop_lock_t *l) {
    if (!aloop__wake_first(&l->waiters, 0)) l->locked = 0;
}

/* Woken as the owner, cancelled before running: hand the lock on. */
static void lock_undo(aloop_wait_t *w) { lock_pass_on(waiter_obj(w)); }

int aloop_lock_acquire(aloop_lock_t *l) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(l, "aloop_lock_acquire", &err);
    if (!t) return err;
    if (!l->locked) {
        l->locked = 1;
        return 0;
    }
    return wait_on(t, l, &l->waiters, &l->woken, lock_undo, NULL);
}

int aloop_lock_try_acquire(aloop_lock_t *l) {
    if (aloop__use_on(l, "aloop_lock_try_acquire") < 0) return -EINVAL;
    if (l->locked) return -EAGAIN;
    l->locked = 1;
    return 0;
}

int aloop_lock_release(aloop_lock_t *l) {
    if (aloop__use_on(l, "aloop_lock_release") < 0) return -EINVAL;
    if (!l->locked) return -EPERM;
    lock_pass_on(l);
    return 0;
}

int aloop_lock_locked(const aloop_lock_t *l) { return l && l->locked; }

void aloop_lock_free(aloop_lock_t *l) {
    if (!l) return;
    aloop__waits_free(&l->waiters, &l->woken, -EPIPE);
    aloop__free(l);
}

/* Takes the lock for the running task and cannot be interrupted: a cancel
 * meanwhile is remembered and reported (-ECANCELED) once the lock is ours.
 * Used by aloop_cond_wait, which must return with the lock held. Bypasses
 * aloop__enter on purpose: it must work while the loop is closing too.
 * -EPIPE if the lock was freed meanwhile (then it is not held). */
static int lock_reacquire(aloop_lock_t *l, aloop_task_impl_t *t) {
    int cancelled = 0, gone;
    while (l->locked) {
        int rc = wait_on(t, l, &l->waiters, &l->woken, lock_undo, &gone);
        if (rc == 0) return cancelled ? -ECANCELED : 0;
        if (gone) return rc == -ECANCELED || cancelled ? -ECANCELED : -EPIPE;
        cancelled = 1; /* a grant cancelled on the way was handed on (undo): wait again */
    }
    l->locked = 1;
    return cancelled ? -ECANCELED : 0;
}

/* ------------------------------------------------------------------------ */
/* Event                                                                    */
/* ------------------------------------------------------------------------ */

aloop_event_t *aloop_event_new(aloop_t *loop) {
    aloop_event_t *e = new_object(loop, sizeof *e);
    if (!e) return NULL;
    e->loop = loop;
    aloop__list_init(&e->waiters);
    return e;
}

void aloop_event_set(aloop_event_t *e) {
    if (!e) return;
    e->set = 1;
    aloop__wake_all(&e->waiters, 0);
}

void aloop_event_clear(aloop_event_t *e) {
    if (e) e->set = 0;
}

int aloop_event_is_set(const aloop_event_t *e) { return e && e->set; }

int aloop_event_wait(aloop_event_t *e) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(e, "aloop_event_wait", &err);
    if (!t) return err;
    if (e->set) return 0;
    /* A wake-up followed by a cancel grants nothing to undo, and the
     * waiter never touches e again: no woken list. */
    return wait_on(t, e, &e->waiters, NULL, NULL, NULL);
}

void aloop_event_free(aloop_event_t *e) {
    if (!e) return;
    aloop__waits_free(&e->waiters, NULL, -EPIPE);
    aloop__free(e);
}

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                */
/* ------------------------------------------------------------------------ */

static aloop_semaphore_t *semaphore_new(aloop_t *loop, unsigned value, int bounded) {
    aloop_semaphore_t *s = new_object(loop, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->value = value;
    s->bound = value;
    s->bounded = (uint8_t)bounded;
    aloop__list_init(&s->waiters);
    aloop__list_init(&s->woken);
    return s;
}

aloop_semaphore_t *aloop_semaphore_new(aloop_t *loop, unsigned value) {
    return semaphore_new(loop, value, 0);
}

aloop_semaphore_t *aloop_bounded_semaphore_new(aloop_t *loop, unsigned value) {
    return semaphore_new(loop, value, 1);
}

/* One unit back: to the first waiter, or onto the value. */
static void semaphore_give(aloop_semaphore_t *s) {
    if (!aloop__wake_first(&s->waiters, 0)) s->value++;
}

static void semaphore_undo(aloop_wait_t *w) { semaphore_give(waiter_obj(w)); }

int aloop_semaphore_acquire(aloop_semaphore_t *s) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(s, "aloop_semaphore_acquire", &err);
    if (!t) return err;
    if (s->value > 0) {
        s->value--;
        return 0;
    }
    return wait_on(t, s, &s->waiters, &s->woken, semaphore_undo, NULL);
}

int aloop_semaphore_release(aloop_semaphore_t *s) {
    if (aloop__use_on(s, "aloop_semaphore_release") < 0) return -EINVAL;
    if (aloop__list_empty(&s->waiters)) {
        if (s->bounded && s->value >= s->bound) return -EINVAL;
        if (s->value == UINT_MAX) return -EOVERFLOW;
    }
    semaphore_give(s);
    return 0;
}

int aloop_semaphore_locked(const aloop_semaphore_t *s) {
    return s && (s->value == 0 || !aloop__list_empty(&s->waiters));
}

void aloop_semaphore_free(aloop_semaphore_t *s) {
    if (!s) return;
    aloop__waits_free(&s->waiters, &s->woken, -EPIPE);
    aloop__free(s);
}

/* ------------------------------------------------------------------------ */
/* Condition                                                                */
/* ------------------------------------------------------------------------ */

aloop_cond_t *aloop_cond_new(aloop_t *loop, aloop_lock_t *lock) {
    if (lock && lock->loop != loop) return aloop__null_errno(-EINVAL);
    aloop_cond_t *c = new_object(loop, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->lock = lock;
    if (!lock) {
        c->lock = aloop_lock_new(loop);
        if (!c->lock) {
            aloop__free(c);
            return aloop__null_errno(-ENOMEM);
        }
        c->owns_lock = 1;
    }
    aloop__list_init(&c->waiters);
    aloop__list_init(&c->woken);
    return c;
}

/* Notified, cancelled before running: the notification must not be lost,
 * so it goes to the next waiter (as in Python 3.13). */
static void cond_undo(aloop_wait_t *w) {
    aloop_cond_t *c = waiter_obj(w);
    aloop__wake_first(&c->waiters, 0);
}

int aloop_cond_wait(aloop_cond_t *c) {
    int err, gone;
    if (aloop__use_on(c, "aloop_cond_wait") < 0) return -EINVAL;
    if (!c->lock->locked) return -EPERM;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    aloop_lock_t *lock = c->lock;
    lock_pass_on(lock);
    int rc = wait_on(t, c, &c->waiters, &c->woken, cond_undo, &gone);
    /* The condition was freed while we waited, or after it notified us but
     * before we ran: its lock may be gone too, so it is not taken again
     * (-EPIPE: the lock is not held). */
    if (gone) return rc;
    int rc2 = lock_reacquire(lock, t);
    if (rc2 == -EPIPE) return rc == -ECANCELED ? rc : -EPIPE;
    return rc < 0 ? rc : rc2;
}

int aloop_cond_notify(aloop_cond_t *c, size_t n) {
    if (aloop__use_on(c, "aloop_cond_notify") < 0) return -EINVAL;
    if (!c->lock->locked) return -EPERM;
    size_t woken = 0;
    while (woken < n && aloop__wake_first(&c->waiters, 0)) woken++;
    return woken > INT_MAX ? INT_MAX : (int)woken;
}

int aloop_cond_notify_all(aloop_cond_t *c) { return aloop_cond_notify(c, SIZE_MAX); }

aloop_lock_t *aloop_cond_lock(aloop_cond_t *c) { return c ? c->lock : NULL; }

void aloop_cond_free(aloop_cond_t *c) {
    if (!c) return;
    aloop__waits_free(&c->waiters, &c->woken, -EPIPE);
    if (c->owns_lock) aloop_lock_free(c->lock);
    aloop__free(c);
}

/*
 * timeout.c - timeout scopes (asyncio.timeout): a deadline around a block of
 * code inside one task.
 *
 * The user's aloop_timeout_t lives in the task's frame, but nothing the loop
 * does later may touch it: a task can return without exiting its scope, and
 * the frame is gone. So each open scope is a small heap record holding the
 * timer, linked innermost-first from the task (t->timeouts).
 *
 * The public struct never points at a record directly: it names a slot of
 * the loop's scope table and the slot's generation (bumped each time the
 * slot's record is released), plus a tag for its state (open, expired,
 * finished). A struct whose record was released behind its back (its task
 * returned without exit) then names a slot of another generation, and every
 * call on it is -EINVAL instead of a read of freed memory; a struct never
 * entered carries no valid tag, so it is never followed either. A struct is
 * only ever followed through its loop while that loop is alive.
 *
 * "No deadline" is +INFINITY: any other time, also one before the loop's
 * clock started (a negative one), is a deadline, already due if past.
 *
 * Cancel accounting follows asyncio 3.11: a deadline that fires counts one
 * cancel request on the task (aloop__task_cancel); the scope's exit withdraws
 * it (aloop_task_uncancel). A cancel request that no scope made is an
 * "outside" cancel; exit compares their number with the number at enter to
 * tell "my deadline" from "someone cancelled me". Several requests made
 * before the task runs again reach it as one -ECANCELED; when an inner scope
 * consumed a delivery that an enclosing scope's deadline also caused, the
 * inner exit re-arms the delivery so the enclosing block stops too.
 */
#include "internal.h"

#include <math.h>

typedef struct scope {
    aloop_scope_t base;          /* first: task->timeouts points here */
    aloop_timer_t timer;         /* a deadline in the future */
    aloop_handle_t *soon;        /* a deadline already due: call_soon, as asyncio */
    aloop_task_impl_t *task;
    struct scope *outer;         /* enclosing open scope of the same task */
    const aloop_timeout_t *pub;  /* identity check only; never dereferenced */
    size_t slot;                 /* in the loop's scope table */
    int outside_at_enter;        /* outside cancel requests when entered */
    uint8_t fired;               /* the deadline passed and cancelled the task */
    uint8_t outer_fired;         /* an enclosing scope fired while this was open */
} scope_t;

/* The loop's scope table: a slot per open scope, reused; free slots are
 * chained through next_free. */
typedef struct slot {
    scope_t *s;                  /* NULL while free */
    uintptr_t gen;               /* bumped when s is released */
    size_t next_free;
} slot_t;

struct aloop_scopes {
    slot_t *slots;
    size_t n, cap, free_head;    /* free_head == SIZE_MAX: none */
};

/* The public struct's private words. */
#define LOOP(t) ((t)->priv_[0])  /* the loop it was entered on */
#define SLOT(t) ((t)->priv_[1])  /* slot index, as a pointer-sized word */
#define GEN(t) ((t)->priv_[2])   /* the slot's generation at enter */
#define TAG(t) ((t)->priv_[3])   /* &open_tag, &expired_tag, &finished_tag */
static const char open_tag, expired_tag, finished_tag;
_Static_assert(sizeof(((aloop_timeout_t *)0)->priv_) >= 4 * sizeof(void *),
               "aloop_timeout_t must hold loop, slot, generation and state");

static scope_t *innermost(const aloop_task_impl_t *t) { return (scope_t *)(void *)t->timeouts; }

/* The open record t names, or NULL: t is not open (exited, never entered,
 * its task returned without exit, or a copy of an open struct). */
static scope_t *lookup(const aloop_timeout_t *t) {
    if (TAG(t) != (void *)&open_tag) return NULL;
    const aloop_t *loop = LOOP(t);
    const struct aloop_scopes *tab = loop ? loop->scopes : NULL;
    size_t i = (size_t)(uintptr_t)SLOT(t);
    if (!tab || i >= tab->n) return NULL;
    const slot_t *sl = &tab->slots[i];
    if (!sl->s || sl->gen != (uintptr_t)GEN(t) || sl->s->pub != t) return NULL;
    return sl->s;
}

/* A free slot for s (its index in s->slot): 0 or -ENOMEM. */
static int slot_take(aloop_t *loop, scope_t *s) {
    struct aloop_scopes *tab = loop->scopes;
    if (!tab) {
        tab = aloop__calloc(1, sizeof *tab);
        if (!tab) return -ENOMEM;
        tab->free_head = SIZE_MAX;
        loop->scopes = tab;
    }
    if (tab->free_head == SIZE_MAX) {
        if (tab->n == tab->cap) {
            size_t cap = tab->cap ? tab->cap * 2 : 16;
            slot_t *p = aloop__realloc(tab->slots, cap * sizeof *p);
            if (!p) return -ENOMEM;
            tab->slots = p;
            tab->cap = cap;
        }
        tab->slots[tab->n] = (slot_t){.next_free = SIZE_MAX};
        tab->free_head = tab->n++;
    }
    size_t i = tab->free_head;
    tab->free_head = tab->slots[i].next_free;
    tab->slots[i].s = s;
    s->slot = i;
    return 0;
}

/* Frees s and its slot: every struct that named it is stale from now on. */
static void release(aloop_t *loop, scope_t *s) {
    struct aloop_scopes *tab = loop->scopes;
    slot_t *sl = &tab->slots[s->slot];
    sl->s = NULL;
    sl->gen++;
    sl->next_free = tab->free_head;
    tab->free_head = s->slot;
    aloop__free(s);
}

void aloop__timeout_free(aloop_t *loop) {
    struct aloop_scopes *tab = loop->scopes;
    if (!tab) return;
    /* Every task has finished, so every record was released already. */
    aloop__free(tab->slots);
    aloop__free(tab);
    loop->scopes = NULL;
}

/* Cancel requests made by fired scopes, from s outwards. */
static int fired_requests(const scope_t *s) {
    int n = 0;
    for (; s; s = s->outer) n += s->fired;
    return n;
}

static void scope_fire(scope_t *s) {
    s->fired = 1;
    /* The cancel lands in the innermost open block: tell every scope in
     * between that part of what it will see is not its own deadline. */
    for (scope_t *in = innermost(s->task); in && in != s; in = in->outer) in->outer_fired = 1;
    aloop__task_cancel(s->task);
}

static void timer_fire(aloop_timer_t *timer) { scope_fire(ALOOP_CONTAINER_OF(timer, scope_t, timer)); }

static void soon_fire(void *arg) {
    scope_t *s = arg;
    s->soon = NULL;
    scope_fire(s);
}

static void drop_soon(aloop_t *loop, scope_t *s) {
    /* While aloop_free drains, queued handles are freed unrun, perhaps
     * already: never touch ours then, it will not run. */
    if (s->soon && !loop->closing) aloop_handle_cancel(s->soon);
    s->soon = NULL;
}

static void disarm(aloop_t *loop, scope_t *s) {
    aloop__timer_stop(loop, &s->timer);
    drop_soon(loop, s);
}

/* The task finished with scopes still open (their exit was skipped): stop
 * their timers and free them. Their cancels stay counted. */
static void task_done(aloop_task_impl_t *t) {
    aloop_t *loop = t->fut.loop;
    if (loop->flags & ALOOP_DEBUG)
        aloop__warn(loop, "%s finished inside a timeout scope (aloop_timeout_exit was skipped)",
                    aloop_task_name(&t->fut));
    scope_t *s = innermost(t);
    t->timeouts = NULL;
    while (s) {
        scope_t *outer = s->outer;
        disarm(loop, s);
        release(loop, s);
        s = outer;
    }
}

/* Arms s for `when` (+inf: no deadline). A deadline already due, however
 * long ago, is a callback queued behind what is ready now, so a task that
 * merely yields is cancelled at that yield (the timer heap is only looked
 * at between batches of steps). 0 or -ENOMEM, and then s keeps its old
 * deadline. */
static int arm(scope_t *s, double when) {
    aloop_t *loop = s->task->fut.loop;
    if (when == INFINITY) {
        disarm(loop, s);
        return 0;
    }
    if (when <= aloop__now(loop)) {
        if (s->soon) return 0; /* already queued to fire */
        aloop_handle_t *h = aloop_call_soon(loop, soon_fire, s);
        if (!h) return -ENOMEM;
        disarm(loop, s);
        s->soon = h;
        return 0;
    }
    /* Stopping an armed timer frees a heap slot, so moving a deadline cannot
     * fail; only a scope without a timer can meet -ENOMEM here. */
    aloop__timer_stop(loop, &s->timer);
    if (aloop__timer_start(loop, &s->timer, when) < 0) return -ENOMEM;
    drop_soon(loop, s);
    return 0;
}

/* Is t open on task's loop, in task or another of its tasks? Its words are
 * followed only if they name this loop: a struct last used on a loop that
 * is gone is never followed. */
static int already_open(const aloop_timeout_t *t, const aloop_task_impl_t *task) {
    for (const scope_t *o = innermost(task); o; o = o->outer)
        if (o->pub == t) return 1;
    return LOOP(t) == (void *)task->fut.loop && lookup(t) != NULL;
}

int aloop_timeout_enter_at(aloop_timeout_t *t, double when) {
    if (!t || isnan(when)) return -EINVAL;
    aloop_task_impl_t *task = aloop__current_task();
    if (!task) return -EPERM;
    aloop_t *loop = task->fut.loop;
    if (already_open(t, task)) return -EBUSY;
    scope_t *s = aloop__calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    if (slot_take(loop, s) < 0) {
        aloop__free(s);
        return -ENOMEM;
    }
    s->base.task_done = task_done;
    s->task = task;
    s->pub = t;
    s->outer = innermost(task);
    s->outside_at_enter = task->cancel_requests - fired_requests(s->outer);
    aloop__timer_init(&s->timer, timer_fire);
    if (arm(s, when) < 0) {
        release(loop, s);
        return -ENOMEM;
    }
    task->timeouts = &s->base;
    t->when = when;
    LOOP(t) = loop;
    SLOT(t) = (void *)(uintptr_t)s->slot;
    GEN(t) = (void *)loop->scopes->slots[s->slot].gen;
    TAG(t) = (void *)&open_tag;
    return 0;
}

int aloop_timeout_enter(aloop_timeout_t *t, double delay) {
    if (!t || isnan(delay)) return -EINVAL;
    aloop_t *loop = aloop_current();
    if (!loop || !aloop__current_task()) return -EPERM;
    return aloop_timeout_enter_at(t, delay == INFINITY ? INFINITY : aloop__now(loop) + delay);
}

int aloop_timeout_reschedule(aloop_timeout_t *t, double when) {
    if (!t || isnan(when)) return -EINVAL;
    if (TAG(t) != (void *)&open_tag) return -EINVAL;
    aloop_t *loop = LOOP(t);
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_timeout_reschedule");
    scope_t *s = lookup(t);
    if (!s) return -EINVAL;
    if (s->fired) return -EALREADY;
    if (arm(s, when) < 0) return -ENOMEM;
    t->when = when;
    return 0;
}

int aloop_timeout_expired(const aloop_timeout_t *t) {
    if (!t) return -EINVAL;
    if (TAG(t) == (void *)&expired_tag) return 1;
    if (TAG(t) == (void *)&finished_tag) return 0;
    const scope_t *s = lookup(t);
    return s ? s->fired : -EINVAL;
}

int aloop_timeout_exit(aloop_timeout_t *t, int rc) {
    if (!t) return -EINVAL;
    aloop_task_impl_t *task = aloop__current_task();
    if (!task) return -EPERM;
    scope_t *s = lookup(t);
    if (!s || s->task != task) return -EINVAL;
    if (s != innermost(task)) return -EBUSY;
    aloop_t *loop = task->fut.loop;
    disarm(loop, s);
    task->timeouts = s->outer ? &s->outer->base : NULL;
    scope_t *outer = s->outer;
    int fired = s->fired, outer_fired = s->outer_fired, outside_at_enter = s->outside_at_enter;
    release(loop, s);
    TAG(t) = (void *)(fired ? &expired_tag : &finished_tag);
    if (!fired) return rc;
    aloop_task_uncancel(&task->fut); /* this scope's own request */
    if (task->cancel_requests - fired_requests(outer) > outside_at_enter)
        return -ECANCELED; /* cancelled from outside too: that wins */
    if (outer_fired && task->cancel_requests > 0)
        task->must_cancel = 1; /* the enclosing deadline's cancel was swallowed here */
    return -ETIMEDOUT;
}

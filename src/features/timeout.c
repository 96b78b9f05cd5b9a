/*
 * timeout.c - timeout scopes (asyncio.timeout): a deadline around a block of
 * code inside one task.
 *
 * The user's aloop_timeout_t lives in the task's frame, but nothing the loop
 * does later may touch it: a task can return without exiting its scope, and
 * the frame is gone. So each open scope is a small heap record holding the
 * timer, linked innermost-first from the task (t->timeouts). The public
 * struct only points at its record while open (priv_[0]) and remembers the
 * outcome after exit (priv_[1]).
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
    int outside_at_enter;        /* outside cancel requests when entered */
    uint8_t fired;               /* the deadline passed and cancelled the task */
    uint8_t outer_fired;         /* an enclosing scope fired while this was open */
} scope_t;

/* The public struct's private words. */
#define OPEN(t) ((t)->priv_[0])  /* scope_t * while open, else NULL */
#define DONE(t) ((t)->priv_[1])  /* after exit: &expired_tag or &finished_tag */
static const char expired_tag, finished_tag;
_Static_assert(sizeof(((aloop_timeout_t *)0)->priv_) >= 2 * sizeof(void *),
               "aloop_timeout_t must hold the open record and the outcome");

static scope_t *innermost(const aloop_task_impl_t *t) { return (scope_t *)(void *)t->timeouts; }

/* Cancel requests made by fired scopes, from s outwards. */
static int fired_requests(const scope_t *s) {
    int n = 0;
    for (; s; s = s->outer) n += s->fired;
    return n;
}

static int is_open_in(const aloop_task_impl_t *t, const scope_t *s) {
    for (const scope_t *o = innermost(t); o; o = o->outer)
        if (o == s) return 1;
    return 0;
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
        aloop__free(s);
        s = outer;
    }
}

/* Arms s for `when` (< 0 or +inf: no deadline). A deadline already due is
 * a callback queued behind what is ready now, so a task that merely yields
 * is cancelled at that yield (the timer heap is only looked at between
 * batches of steps). 0 or -ENOMEM, and then s keeps its old deadline. */
static int arm(scope_t *s, double when) {
    aloop_t *loop = s->task->fut.loop;
    if (when < 0 || isinf(when)) {
        disarm(loop, s);
        return 0;
    }
    if (when <= aloop__now(loop)) {
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

int aloop_timeout_enter_at(aloop_timeout_t *t, double when) {
    if (!t || isnan(when)) return -EINVAL;
    aloop_task_impl_t *task = aloop__current_task();
    if (!task) return -EPERM;
    scope_t *s = aloop__calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->base.task_done = task_done;
    s->task = task;
    s->pub = t;
    s->outer = innermost(task);
    s->outside_at_enter = task->cancel_requests - fired_requests(s->outer);
    aloop__timer_init(&s->timer, timer_fire);
    if (arm(s, when) < 0) {
        aloop__free(s);
        return -ENOMEM;
    }
    task->timeouts = &s->base;
    t->when = when < 0 ? -1.0 : when;
    OPEN(t) = s;
    DONE(t) = NULL;
    return 0;
}

int aloop_timeout_enter(aloop_timeout_t *t, double delay) {
    if (!t || isnan(delay)) return -EINVAL;
    aloop_t *loop = aloop_current();
    if (!loop || !aloop__current_task()) return -EPERM;
    return aloop_timeout_enter_at(t, delay < 0 ? -1.0 : aloop__now(loop) + delay);
}

int aloop_timeout_reschedule(aloop_timeout_t *t, double when) {
    if (!t || isnan(when)) return -EINVAL;
    scope_t *s = OPEN(t);
    if (!s || s->pub != t) return -EINVAL;
    aloop_t *loop = s->task->fut.loop;
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_timeout_reschedule");
    if (s->fired) return -EALREADY;
    if (arm(s, when) < 0) return -ENOMEM;
    t->when = when < 0 ? -1.0 : when;
    return 0;
}

int aloop_timeout_expired(const aloop_timeout_t *t) {
    if (!t) return -EINVAL;
    const scope_t *s = OPEN(t);
    if (s) return s->fired;
    return DONE(t) == &expired_tag;
}

int aloop_timeout_exit(aloop_timeout_t *t, int rc) {
    if (!t) return -EINVAL;
    aloop_task_impl_t *task = aloop__current_task();
    if (!task) return -EPERM;
    scope_t *s = OPEN(t);
    if (!s || !is_open_in(task, s) || s->pub != t) return -EINVAL;
    if (s != innermost(task)) return -EBUSY;
    disarm(task->fut.loop, s);
    task->timeouts = s->outer ? &s->outer->base : NULL;
    scope_t *outer = s->outer;
    int fired = s->fired, outer_fired = s->outer_fired, outside_at_enter = s->outside_at_enter;
    aloop__free(s);
    OPEN(t) = NULL;
    DONE(t) = (void *)(fired ? &expired_tag : &finished_tag);
    if (!fired) return rc;
    aloop_task_uncancel(&task->fut); /* this scope's own request */
    if (task->cancel_requests - fired_requests(outer) > outside_at_enter)
        return -ECANCELED; /* cancelled from outside too: that wins */
    if (outer_fired && task->cancel_requests > 0)
        task->must_cancel = 1; /* the enclosing deadline's cancel was swallowed here */
    return -ETIMEDOUT;
}

/*
 * group.c - task groups (asyncio.TaskGroup): structured concurrency.
 *
 * A group owns one reference to each task spawned in it and keeps a
 * completion waiter on each one still running. The first child that fails
 * (an error other than being cancelled) makes the group abort: every other
 * child is cancelled, no new child may be spawned, and that error is what
 * aloop_group_wait returns once all children are done. Cancelling the task
 * in aloop_group_wait aborts the group the same way; the wait still lasts
 * until every child has finished, then returns -ECANCELED.
 *
 * Unlike asyncio, a failing child does not cancel the task that created the
 * group: C code cannot be interrupted outside its suspension points, and the
 * error reaches it through aloop_group_wait anyway.
 */
#include "internal.h"

typedef struct group_child {
    aloop_fut_waiter_t waiter; /* on the task while it runs */
    aloop_group_t *group;
    aloop_task_t *task; /* the group's reference */
} group_child_t;

/* The wait record of the task in aloop_group_wait. */
typedef struct group_wait {
    aloop_wait_t wait;
    aloop_group_t *group; /* NULL if the group was freed meanwhile */
} group_wait_t;

struct aloop_group {
    aloop_t *loop;
    group_child_t **children;
    size_t n, cap;
    size_t pending;  /* children still running */
    int error;       /* first failure */
    uint8_t aborting; /* a child failed or the waiter was cancelled */
    uint8_t finished; /* aloop_group_wait has returned */
    group_wait_t *wait; /* the record of the task in aloop_group_wait, or NULL */
};

/* Cancels every child still running; spawning is over. */
static void group_abort(aloop_group_t *g) {
    g->aborting = 1;
    for (size_t i = 0; i < g->n; i++) {
        aloop_task_t *t = g->children[i]->task;
        if (t->state == ALOOP__PENDING) aloop_cancel(t);
    }
}

static void child_done(aloop_fut_waiter_t *w, aloop_future_t *f) {
    aloop_group_t *g = ALOOP_CONTAINER_OF(w, group_child_t, waiter)->group;
    g->pending--;
    if (f->state == ALOOP__DONE && f->error) {
        f->error_retrieved = 1; /* reported by aloop_group_wait */
        if (!g->error) {
            g->error = f->error;
            group_abort(g);
        }
    }
    if (g->pending == 0 && g->wait && aloop__wait_pending(&g->wait->wait))
        aloop__wake(&g->wait->wait, 0);
}

aloop_group_t *aloop_group_new(aloop_t *loop) {
    if (!loop) return aloop__null_errno(-EINVAL);
    aloop_group_t *g = aloop__calloc(1, sizeof *g);
    if (!g) return aloop__null_errno(-ENOMEM);
    g->loop = loop;
    return g;
}

static int children_reserve(aloop_group_t *g) {
    if (g->n < g->cap) return 0;
    size_t cap = g->cap ? g->cap * 2 : 8;
    group_child_t **children = aloop__realloc(g->children, cap * sizeof *children);
    if (!children) return -ENOMEM;
    g->children = children;
    g->cap = cap;
    return 0;
}

aloop_task_t *aloop_group_spawn(aloop_group_t *g, aloop_task_fn fn, void *arg) {
    if (!fn || aloop__use_on(g, "aloop_group_spawn") < 0) return aloop__null_errno(-EINVAL);
    if (g->aborting || g->finished) return aloop__null_errno(-EPERM);
    group_child_t *c = aloop__calloc(1, sizeof *c);
    if (!c || children_reserve(g) < 0) goto nomem;
    c->task = aloop_spawn(g->loop, fn, arg);
    if (!c->task) goto nomem;
    c->group = g;
    c->waiter.fire = child_done;
    aloop__future_add_waiter(c->task, &c->waiter);
    g->children[g->n++] = c;
    g->pending++;
    return c->task;
nomem:
    aloop__free(c);
    return aloop__null_errno(-ENOMEM);
}

/* The waiting task was cancelled: abort the group (the core then wakes the
 * task, which goes on waiting for the children to finish). */
static void group_wait_cancel(aloop_wait_t *w) {
    group_abort(ALOOP_CONTAINER_OF(w, group_wait_t, wait)->group);
}

int aloop_group_wait(aloop_group_t *g) {
    int err = aloop__use_on(g, "aloop_group_wait");
    if (err < 0) return err;
    aloop_task_impl_t *self = aloop__current_task();
    for (size_t i = 0; self && i < g->n; i++)
        if (g->children[i]->task == &self->fut) return -EDEADLK; /* a child waiting for itself */
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (g->wait) return -EBUSY; /* another task waits on it already */

    int cancelled = 0;
    while (g->pending) {
        group_wait_t gw = {.wait = {.cancel = group_wait_cancel, .what = "aloop_group_wait", .task = t},
                           .group = g};
        g->wait = &gw;
        int rc = aloop__suspend(t, &gw.wait);
        if (!gw.group) return rc == -ECANCELED ? rc : -EPIPE; /* freed under us */
        g->wait = NULL;
        if (rc == -ECANCELED) {
            cancelled = 1;
            if (!g->aborting) group_abort(g);
        }
    }
    g->finished = 1;
    return cancelled ? -ECANCELED : g->error;
}

void aloop_group_free(aloop_group_t *g) {
    if (!g) return;
    if (g->wait) { /* misuse, but do not leave a task hanging */
        g->wait->group = NULL;
        if (aloop__wait_pending(&g->wait->wait)) aloop__wake(&g->wait->wait, -EPIPE);
    }
    for (size_t i = 0; i < g->n; i++) {
        group_child_t *c = g->children[i];
        aloop__future_remove_waiter(&c->waiter);
        if (c->task->state == ALOOP__PENDING) aloop_cancel(c->task);
        aloop_release(c->task);
        aloop__free(c);
    }
    aloop__free(g->children);
    aloop__free(g);
}

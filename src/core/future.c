/*
 * future.c - futures: a state, a value or an error, and an ordered list of
 * things to do on completion (aloop_fut_waiter_t). Internal waiters (a task
 * in aloop_await, a gather slot) react synchronously and only schedule;
 * user done callbacks are always scheduled through the ready ring, so they
 * run from the loop, in registration order, once, and never inside
 * set_result or cancel.
 */
#include "internal.h"

typedef struct done_callback {
    aloop_fut_waiter_t waiter;
    aloop_runnable_t run;
    aloop_future_t *future;
    void (*cb)(aloop_future_t *, void *);
    void *arg;
} done_callback_t;

void aloop__future_init_on(aloop_future_t *f, aloop_t *loop, aloop_list_t *live) {
    f->state = ALOOP__PENDING;
    f->refs = 1;
    f->loop = loop;
    aloop__list_init(&f->waiters);
    aloop__list_push_back(live, &f->live);
}

void aloop__future_init(aloop_future_t *f, aloop_t *loop) {
    aloop__future_init_on(f, loop, &loop->futures);
}

aloop_future_t *aloop_future_new(aloop_t *loop) {
    if (!loop) return aloop__null_errno(-EINVAL);
    if (aloop__foreign_thread(loop))
        return aloop__null_errno(aloop__wrong_thread(loop, "aloop_future_new"));
    aloop_future_t *f = aloop__calloc(1, sizeof *f);
    if (!f) return aloop__null_errno(-ENOMEM);
    aloop__future_init(f, loop);
    return f;
}

int aloop__future_complete(aloop_future_t *f, int state, int error, void *result) {
    if (f->state != ALOOP__PENDING || !f->loop) return -EINVAL;
    f->state = (uint8_t)state;
    f->error = error;
    f->result = result;
    aloop_list_t *n;
    while ((n = aloop__list_pop_front(&f->waiters)) != NULL) {
        aloop_fut_waiter_t *w = ALOOP_CONTAINER_OF(n, aloop_fut_waiter_t, link);
        w->fire(w, f);
    }
    return 0;
}

int aloop_future_set_result(aloop_future_t *f, void *value) {
    if (!f || f->is_task) return -EINVAL;
    return aloop__future_complete(f, ALOOP__DONE, 0, value);
}

int aloop_future_set_error(aloop_future_t *f, int err) {
    if (!f || f->is_task || err >= 0) return -EINVAL;
    return aloop__future_complete(f, ALOOP__DONE, err, NULL);
}

int aloop_future_done(const aloop_future_t *f) { return f && f->state != ALOOP__PENDING; }

int aloop_future_cancelled(const aloop_future_t *f) { return f && f->state == ALOOP__CANCELLED; }

int aloop_is_task(const aloop_future_t *f) { return f && f->is_task; }

int aloop_future_result(const aloop_future_t *f, void **value) {
    if (!f) return -EINVAL;
    if (f->state == ALOOP__PENDING) return -EAGAIN;
    ((aloop_future_t *)f)->error_retrieved = 1;
    if (value) *value = f->error ? NULL : f->result;
    return f->error;
}

void aloop__future_add_waiter(aloop_future_t *f, aloop_fut_waiter_t *w) {
    aloop__list_push_back(&f->waiters, &w->link);
}

void aloop__future_remove_waiter(aloop_fut_waiter_t *w) { aloop__list_remove(&w->link); }

/* ---- done callbacks */

static void done_callback_schedule(aloop_fut_waiter_t *w, aloop_future_t *f) {
    done_callback_t *dc = ALOOP_CONTAINER_OF(w, done_callback_t, waiter);
    aloop_retain(f); /* the callback will see f alive */
    aloop__make_ready(f->loop, &dc->run);
}

int aloop_future_add_done_callback(aloop_future_t *f, void (*cb)(aloop_future_t *, void *),
                                   void *arg) {
    if (!f || !cb || !f->loop) return -EINVAL;
    done_callback_t *dc = aloop__calloc(1, sizeof *dc);
    if (!dc) return -ENOMEM;
    if (aloop__reserve_runnable(f->loop) < 0) {
        aloop__free(dc);
        return -ENOMEM;
    }
    dc->run.kind = ALOOP__RUN_CALLBACK;
    dc->future = f;
    dc->cb = cb;
    dc->arg = arg;
    dc->waiter.fire = done_callback_schedule;
    aloop__list_init(&dc->waiter.link);
    if (f->state != ALOOP__PENDING)
        done_callback_schedule(&dc->waiter, f);
    else
        aloop__future_add_waiter(f, &dc->waiter);
    return 0;
}

int aloop_future_remove_done_callback(aloop_future_t *f, void (*cb)(aloop_future_t *, void *),
                                      void *arg) {
    if (!f || !cb) return -EINVAL;
    if (!f->loop) return 0; /* detached: its callbacks were dropped */
    int removed = 0;
    for (aloop_list_t *n = f->waiters.next; n != &f->waiters;) {
        aloop_fut_waiter_t *w = ALOOP_CONTAINER_OF(n, aloop_fut_waiter_t, link);
        n = n->next;
        if (w->fire != done_callback_schedule) continue;
        done_callback_t *dc = ALOOP_CONTAINER_OF(w, done_callback_t, waiter);
        if (dc->cb != cb || dc->arg != arg) continue;
        aloop__list_remove(&w->link);
        aloop__release_runnable(f->loop);
        aloop__free(dc);
        removed++;
    }
    return removed;
}

void aloop__future_run_callback(aloop_runnable_t *r) {
    done_callback_t *dc = ALOOP_CONTAINER_OF(r, done_callback_t, run);
    aloop_future_t *f = dc->future;
    aloop_t *loop = f->loop;
    dc->cb(f, dc->arg);
    aloop__release_runnable(loop);
    aloop__free(dc);
    aloop_release(f);
}

void aloop__future_drop_callback(aloop_runnable_t *r) {
    done_callback_t *dc = ALOOP_CONTAINER_OF(r, done_callback_t, run);
    aloop_future_t *f = dc->future;
    aloop__release_runnable(f->loop);
    aloop__free(dc);
    aloop_release(f);
}

/* Loop teardown: frees callbacks registered on a future that never
 * completed and cuts it loose from the loop. */
void aloop__future_detach(aloop_future_t *f) {
    aloop_list_t *n;
    while ((n = aloop__list_pop_front(&f->waiters)) != NULL) {
        aloop_fut_waiter_t *w = ALOOP_CONTAINER_OF(n, aloop_fut_waiter_t, link);
        if (w->fire == done_callback_schedule) {
            aloop__release_runnable(f->loop);
            aloop__free(ALOOP_CONTAINER_OF(w, done_callback_t, waiter));
        }
    }
    aloop__list_remove(&f->live);
    /* The waiter list is empty for good: its place now says how to free f
     * (a task goes back through task.c, which the loop knows). */
    f->dispose = f->is_task ? f->loop->task_dispose : NULL;
    f->loop = NULL;
}

/* ---- reference counting */

aloop_future_t *aloop_retain(aloop_future_t *f) {
    if (f) f->refs++;
    return f;
}

static void future_destroy(aloop_future_t *f);

void aloop_release(aloop_future_t *f) {
    if (!f) return;
    if (ALOOP_UNLIKELY(f->refs == 0)) {
        aloop__debug_bad_release(f);
        return;
    }
    if (--f->refs == 0) future_destroy(f);
}

static void warn_unretrieved(aloop_t *loop, aloop_future_t *f) {
    if (f->is_task) {
        char name[128];
        loop->task_label(f, name, sizeof name);
        aloop__warn(loop, "task '%s' failed with %s and nobody retrieved the error", name,
                    aloop_strerror(f->error));
    } else {
        aloop__warn(loop, "future %p failed with %s and nobody retrieved the error", (void *)f,
                    aloop_strerror(f->error));
    }
}

/* The last reference is gone. A task is freed (or recycled) by task.c,
 * through the hook its loop holds (or, once detached, f->dispose). */
static void future_destroy(aloop_future_t *f) {
    aloop_t *loop = f->loop;
    if (loop) {
        if (f->state == ALOOP__DONE && f->error && !f->error_retrieved &&
            (loop->flags & ALOOP_DEBUG))
            warn_unretrieved(loop, f);
        aloop__future_detach(f);
        if (loop->flags & ALOOP_DEBUG) {
            aloop__debug_keep_freed(loop, f); /* to catch a release too many */
            return;
        }
    }
    if (f->dispose)
        f->dispose(loop, f);
    else
        aloop__free(f);
}

/* ---- await */

/* The future's completion waiter and the task's wait record, together:
 * completion wakes the record. */
typedef struct await_waiter {
    aloop_fut_waiter_t waiter;
    aloop_wait_t wait;
} await_waiter_t;

static void await_fire(aloop_fut_waiter_t *w, aloop_future_t *f) {
    ALOOP_UNUSED(f);
    aloop__wake(&ALOOP_CONTAINER_OF(w, await_waiter_t, waiter)->wait, 0);
}

int aloop_await(aloop_future_t *f, void **result) {
    int err;
    if (!f) return -EINVAL;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (f->loop != t->fut.loop) return aloop__foreign_loop(f->loop, t->fut.loop, "aloop_await");
    if (f == &t->fut) return -EDEADLK;
    aloop_retain(f);
    if (f->state == ALOOP__PENDING) {
        await_waiter_t aw = {.waiter.fire = await_fire,
                             .wait = {.awaiting = f, .what = "aloop_await"}};
        aloop__future_add_waiter(f, &aw.waiter);
        if (aloop__suspend(t, &aw.wait) == -ECANCELED) {
            aloop_release(f);
            return -ECANCELED;
        }
    }
    f->error_retrieved = 1;
    if (result) *result = f->error ? NULL : f->result;
    err = f->error;
    aloop_release(f);
    return err;
}

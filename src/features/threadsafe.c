/*
 * threadsafe.c - aloop_run_threadsafe (asyncio.run_coroutine_threadsafe):
 * run a function as a task on a loop owned by another thread, and wait for
 * it, either blocking a plain thread or suspending a task of another loop.
 *
 * One heap record per call, shared by up to three threads' worth of code:
 *   caller  -> target: start  (spawn the task)        rec->start_post
 *   caller  -> target: cancel (cancel that task)      rec->cancel_post
 *   target  -> caller: done   (wake the caller task)  rec->done_post
 * The posts are embedded in the record, so once the record exists nothing
 * can fail for lack of memory, and a post to a loop that is freed before it
 * ran comes back through its drop hook (that is how -EPIPE is reported).
 * The record is reference counted (the caller, one per post in flight,
 * and the remote task's completion waiter while it is registered);
 * whoever drops the last reference frees it.
 *
 * The target side learns that the task finished through a future waiter
 * embedded in the record (fired synchronously by the task's completion; it
 * runs no user code, it only records the outcome and signals the caller).
 *
 * A caller task that is cancelled posts the cancel and goes on waiting for
 * the outcome: the remote task may still be running user code that refers
 * to the caller's data. Only when the caller's own loop is being freed does
 * it give up (it unhooks itself from the record under the mutex, so the
 * target never posts to a loop that is going away).
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct rts {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    aloop_t *target;
    aloop_task_fn fn;
    void *arg;

    /* under mu: the outcome, and where to report it */
    int done;
    int status;
    void *result;
    aloop_t *caller;      /* caller's loop, NULL for a blocked thread or once abandoned */

    /* target's thread only */
    aloop_fut_waiter_t finished;
    aloop_future_t *task;  /* until it finished */

    /* caller loop's thread only */
    aloop_wait_t *waiter; /* the suspended caller's record, NULL when not suspended */
    int delivered;             /* the done post ran */

    aloop_post_t start_post, cancel_post, done_post;
} rts_t;

static void rts_release(rts_t *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    aloop__free(r);
}

static void post(rts_t *r, aloop_t *loop, aloop_post_t *p) {
    atomic_fetch_add(&r->refs, 1);
    aloop__post(loop, p);
}

/* The outcome is known (on the target's thread, or while it is freed). */
static void finish(rts_t *r, int status, void *result) {
    atomic_fetch_add(&r->refs, 1); /* the caller may free r once told */
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->status = status;
    r->result = result;
    if (r->caller)
        post(r, r->caller, &r->done_post);
    else
        pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    rts_release(r);
}

/* ---- target side -------------------------------------------------------- */

static void task_finished(aloop_fut_waiter_t *w, aloop_future_t *f) {
    rts_t *r = ALOOP_CONTAINER_OF(w, rts_t, finished);
    r->task = NULL;
    f->error_retrieved = 1; /* handed to the caller */
    int status = f->error;
    /* cancelled by aloop_free before its first step: it never ran */
    if (f->state == ALOOP__CANCELLED && !aloop__task(f)->started && r->target->closing)
        status = -EPIPE;
    finish(r, status, status ? NULL : f->result);
    rts_release(r); /* the reference start_cb handed to this waiter */
}

static void start_cb(void *arg) {
    rts_t *r = arg;
    aloop_task_t *t = aloop_spawn(r->target, r->fn, r->arg);
    if (!t) {
        finish(r, -errno, NULL);
        rts_release(r);
        return;
    }
    /* the start post's reference stays with the waiter (the record must
     * outlive the task even if every caller-side reference goes) */
    r->task = t;
    r->finished.fire = task_finished;
    aloop__future_add_waiter(t, &r->finished);
    aloop_release(t); /* the loop keeps it until it finished, and fires us first */
}

static void start_drop(void *arg) { /* the target was freed first */
    rts_t *r = arg;
    finish(r, -EPIPE, NULL);
    rts_release(r);
}

static void cancel_cb(void *arg) {
    rts_t *r = arg;
    if (r->task) aloop_cancel(r->task);
    rts_release(r);
}

static void release_cb(void *arg) { rts_release(arg); }

/* ---- caller side --------------------------------------------------------- */

static void done_cb(void *arg) { /* on the caller loop's thread */
    rts_t *r = arg;
    r->delivered = 1;
    if (r->waiter) {
        aloop_wait_t *w = r->waiter;
        r->waiter = NULL;
        aloop__wake(w, 0);
    }
    rts_release(r);
}

/* The caller's wait record and what it waits for (aloop_wait_t has no
 * user pointer: the record is embedded instead). */
typedef struct rts_wait {
    aloop_wait_t wait;
    rts_t *r;
} rts_wait_t;

static void wait_cancel(aloop_wait_t *w) {
    rts_t *r = ALOOP_CONTAINER_OF(w, rts_wait_t, wait)->r;
    r->waiter = NULL; /* the cancel wakes the task; done_cb must not */
}

/* Suspends t until the outcome arrives; a cancel is forwarded to the
 * remote task and the wait goes on. */
static int wait_in_task(rts_t *r, aloop_task_impl_t *t) {
    aloop_t *loop = t->fut.loop;
    int cancelled = 0, cancel_sent = 0;
    while (!r->delivered) {
        rts_wait_t w = {.wait = {.cancel = wait_cancel, .what = "aloop_run_threadsafe"}, .r = r};
        r->waiter = &w.wait;
        if (aloop__suspend(t, &w.wait) != -ECANCELED) continue;
        cancelled = 1;
        if (r->delivered) break;
        if (!cancel_sent) {
            cancel_sent = 1;
            post(r, r->target, &r->cancel_post);
        }
        if (loop->closing) { /* our loop is being freed: stop listening */
            pthread_mutex_lock(&r->mu);
            r->caller = NULL;
            pthread_mutex_unlock(&r->mu);
            return -ECANCELED;
        }
    }
    return cancelled ? -ECANCELED : r->status;
}

static void wait_blocking(rts_t *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static rts_t *rts_new(aloop_t *loop, aloop_task_fn fn, void *arg, aloop_t *caller) {
    rts_t *r = aloop__calloc(1, sizeof *r);
    if (!r) return NULL;
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->target = loop;
    r->fn = fn;
    r->arg = arg;
    r->caller = caller;
    r->start_post = (aloop_post_t){.cb = start_cb, .drop = start_drop, .arg = r, .embedded = 1};
    r->cancel_post = (aloop_post_t){.cb = cancel_cb, .drop = release_cb, .arg = r, .embedded = 1};
    r->done_post = (aloop_post_t){.cb = done_cb, .drop = release_cb, .arg = r, .embedded = 1};
    return r;
}

int aloop_run_threadsafe(aloop_t *loop, aloop_task_fn fn, void *arg, void **result) {
    if (result) *result = NULL;
    if (!loop || !fn || !loop->pool) return -EINVAL;
    aloop_t *here = aloop__tls_loop();
    if (here == loop) return -EPERM; /* it would wait for itself */
    aloop_task_impl_t *t = NULL;
    if (here && here->current) { /* from a task: suspend it, not the thread */
        int err;
        t = aloop__enter(&err);
        if (!t) return err;
    }
    rts_t *r = rts_new(loop, fn, arg, t ? here : NULL);
    if (!r) return -ENOMEM;
    post(r, loop, &r->start_post);
    int rc;
    if (t) {
        rc = wait_in_task(r, t);
    } else {
        wait_blocking(r);
        rc = r->status;
    }
    if (rc == 0 && result) *result = r->result;
    rts_release(r);
    return rc;
}

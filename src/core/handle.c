/*
 * handle.c - call_soon / call_later / call_at. A handle is a runnable (it
 * sits on the ready ring) that may also carry a timer. The loop owns it: it
 * is freed after its callback returns, or when the loop next meets it after
 * a cancel, or at aloop_free.
 */
#include "internal.h"

#include <math.h>

static void handle_free(aloop_handle_t *h) {
    aloop__release_runnable(h->loop);
    aloop__free(h);
}

static void handle_timer_fire(aloop_timer_t *timer) {
    aloop_handle_t *h = ALOOP_CONTAINER_OF(timer, aloop_handle_t, timer);
    h->queued = 1;
    aloop__make_ready(h->loop, &h->run);
}

static aloop_handle_t *handle_new(aloop_t *loop, void (*cb)(void *), void *arg) {
    if (!loop || !cb) return aloop__null_errno(-EINVAL);
    aloop_handle_t *h = aloop__calloc(1, sizeof *h);
    if (!h) return NULL;
    if (aloop__reserve_runnable(loop) < 0) {
        aloop__free(h);
        return aloop__null_errno(-ENOMEM);
    }
    h->run.kind = ALOOP__RUN_HANDLE;
    h->loop = loop;
    h->cb = cb;
    h->arg = arg;
    aloop__timer_init(&h->timer, handle_timer_fire);
    return h;
}

aloop_handle_t *aloop_call_soon(aloop_t *loop, void (*cb)(void *), void *arg) {
    aloop_handle_t *h = handle_new(loop, cb, arg);
    if (!h) return NULL;
    h->queued = 1;
    aloop__make_ready(loop, &h->run);
    return h;
}

aloop_handle_t *aloop_call_at(aloop_t *loop, double when, void (*cb)(void *), void *arg) {
    if (isnan(when)) return aloop__null_errno(-EINVAL);
    aloop_handle_t *h = handle_new(loop, cb, arg);
    if (!h) return NULL;
    if (aloop__timer_start(loop, &h->timer, when) < 0) {
        handle_free(h);
        return aloop__null_errno(-ENOMEM);
    }
    return h;
}

aloop_handle_t *aloop_call_later(aloop_t *loop, double delay, void (*cb)(void *), void *arg) {
    if (!loop || isnan(delay) || delay < 0) return aloop__null_errno(-EINVAL);
    return aloop_call_at(loop, aloop__now(loop) + delay, cb, arg);
}

void aloop_handle_cancel(aloop_handle_t *h) {
    if (aloop__use_on(h, "aloop_handle_cancel") < 0 || h->cancelled || h->running) return;
    h->cancelled = 1;
    if (aloop__timer_armed(&h->timer)) {
        /* Off the heap now (it must not keep the loop alive), but freed by
         * the loop's next step, so a second cancel in between is harmless. */
        aloop__timer_stop(h->loop, &h->timer);
        h->queued = 1;
        aloop__make_ready(h->loop, &h->run);
    }
}

double aloop_handle_when(const aloop_handle_t *h) {
    return h ? h->timer.when : 0.0;
}

void aloop__handle_run(aloop_handle_t *h) {
    if (!h->cancelled) {
        h->running = 1;
        h->cb(h->arg);
    }
    handle_free(h);
}

/* Teardown: a handle still on the ring or in the heap is freed unrun. */
void aloop__handle_drop(aloop_handle_t *h) {
    if (aloop__timer_armed(&h->timer)) aloop__timer_stop(h->loop, &h->timer);
    handle_free(h);
}

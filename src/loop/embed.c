/*
 * embed.c - running a loop from a host's main loop (a GUI toolkit, a game
 * engine, another event library) one iteration at a time: aloop_run_once,
 * and what the host sleeps on in between, aloop_backend_fd (the epoll or
 * kqueue fd) and aloop_backend_timeout.
 *
 * One iteration is the run loop's tick + steps, with the host's timeout
 * folded into the poll and a step budget of exactly what was ready after
 * the tick, so the call always ends without blocking again. Before
 * returning it drops backend registrations nobody wants (the poller keeps
 * them between waits to save syscalls): a stale one would leave the
 * backend fd readable with nothing to process, and the host would spin.
 */
#include "internal.h"
#include "io_internal.h"

#include <math.h>

/* Anything left that could ever run: the loop is worth iterating. */
static int has_work(const aloop_t *loop) {
    return loop->sched.ring_count || loop->task_count || aloop__has_sources(loop);
}

/* How long the poll of this iteration may block (real seconds). */
static double poll_timeout(aloop_t *loop, double timeout, double next) {
    if (loop->sched.ring_count || loop->sched.deferred_head || loop->stopping || timeout == 0) return 0;
    if (next < 0) return timeout;
    if (loop->clock == ALOOP_CLOCK_VIRTUAL) return 0; /* the clock jumps instead */
    double until_next = next - aloop__now(loop);
    if (until_next < 0) until_next = 0;
    return timeout < 0 || until_next < timeout ? until_next : timeout;
}

/* Virtual clock, nothing ready (tasks paused by their budget are ready): forward to the next deadline (t < 0) or by
 * at most t (t > 0); never for t == 0. */
static void advance_virtual(aloop_t *loop, double timeout, double next) {
    if (loop->clock != ALOOP_CLOCK_VIRTUAL || loop->sched.ring_count ||
        loop->sched.deferred_head || timeout == 0)
        return;
    if (next < 0) {
        if (timeout > 0) loop->vnow += timeout;
        return;
    }
    if (next <= loop->vnow) return;
    loop->vnow = timeout < 0 || next < loop->vnow + timeout ? next : loop->vnow + timeout;
}

static int iterate(aloop_t *loop, double timeout) {
    double next = aloop__timers_next(&loop->timers);
    double wait = poll_timeout(loop, timeout, next);
    if (wait != 0 && !loop->sched.ring_count && !aloop__has_sources(loop)) {
        /* tasks that only another thread can wake: a deadlock if none exists */
        if (aloop__wait_for_other_threads(loop, wait)) return -EDEADLK;
    } else {
        aloop__io_sleep(loop, wait); /* also sees the wake-up fd of other threads */
        aloop__xthread_drain(loop);
    }
    advance_virtual(loop, timeout, next);
    if (aloop__timers_count(&loop->timers)) aloop__run_timers(loop, aloop__now(loop));
    aloop__undefer(loop); /* tasks paused by their budget (sched.c) */
    /* What is ready now runs now; what it makes ready waits for the next call. */
    size_t n = loop->sched.ring_count;
    while (n && loop->sched.ring_count) {
        unsigned budget = n > ALOOP_STEPS_PER_TICK ? ALOOP_STEPS_PER_TICK : (unsigned)n;
        aloop__run_steps(loop, budget);
        n -= budget - loop->sched.budget; /* steps actually taken (direct hand-overs too) */
        if (loop->stopping) break;
    }
    return 0;
}

int aloop_run_once(aloop_t *loop, double timeout) {
    if (!loop || isnan(timeout)) return -EINVAL;
    if (aloop__tls_loop() == loop) /* from a task or callback of loop */
        return aloop__misuse(loop, -EPERM, "aloop_run_once", "called from inside the running loop");
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_run_once");
    if (loop->running || aloop__tls_loop()) /* inside another loop */
        return aloop__misuse(loop, -EPERM, "aloop_run_once", "called from inside another running loop");
    aloop__io_flush(loop);
    if (!has_work(loop)) return 0;
    aloop__set_tls_loop(loop);
    aloop__set_running(loop, 1);
    int rc = iterate(loop, timeout);
    aloop__io_flush(loop);
    aloop__set_running(loop, 0);
    loop->stopping = 0; /* an aloop_stop inside ends this iteration only */
    aloop__set_tls_loop(NULL);
    if (rc < 0) return rc;
    return has_work(loop) ? 1 : 0;
}

int aloop_backend_fd(aloop_t *loop) {
    if (!loop) return -EINVAL;
    return aloop__backend_fd(loop->io->backend);
}

double aloop_backend_timeout(aloop_t *loop) {
    if (!loop) return -1.0;
    if (loop->sched.ring_count || loop->sched.deferred_head || loop->stopping || aloop__async_ready(loop))
        return 0.0;
    double next = aloop__timers_next(&loop->timers);
    if (next < 0) return -1.0;
    double d = next - aloop__now(loop);
    return d > 0 ? d : 0.0;
}

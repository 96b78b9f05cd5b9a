/*
 * embed.c - running a loop from a host's main loop (a GUI toolkit, a game
 * engine, another event library) one iteration at a time: aloop_run_once,
 * and what the host sleeps on in between, aloop_backend_fd (the epoll or
 * kqueue fd) and aloop_backend_timeout.
 *
 * One iteration is the scheduler's tick (aloop__tick, with the host's
 * timeout: the same poll-timeout and virtual-clock rules as aloop_run)
 * and then a step budget of exactly what was ready after the tick, so the
 * call always ends without blocking again. Before
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

static int iterate(aloop_t *loop, double timeout) {
    int rc = aloop__tick(loop, timeout);
    if (rc < 0) return rc;
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

/*
 * metrics.c - aloop_metrics and aloop_set_hooks: what a loop has done and
 * is doing, read from each module's counts, and the task hooks the core
 * calls while ALOOP__HOOKED is set.
 */
#include "internal.h"

int aloop_metrics(aloop_t *loop, aloop_metrics_t *m) {
    if (!loop || !m) return -EINVAL;
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_metrics");
    const aloop_loop_stats_t *s = &loop->stats;
    memset(m, 0, sizeof *m);
    m->iterations = s->iterations;
    m->events = s->events;
    m->poll_time = s->poll_time;
    m->tasks_spawned = s->tasks_spawned;
    m->tasks_done = s->tasks_done;
    m->switches = s->switches;
    m->budget_yields = s->budget_yields;
    m->tasks_live = loop->task_count;
    m->ready = loop->sched.ring_count;
    for (const aloop_task_impl_t *t = loop->sched.deferred_head; t; t = t->next_deferred)
        m->ready++;
    m->timers = aloop__timers_count(&loop->timers);
    m->fds = aloop__io_fds(loop);
    aloop__async_counts(loop, &m->pool_queued, &m->pool_running);
    m->lag = s->lag;
    m->lag_max = s->lag_max;
    m->timers_fired = s->timers_fired;
    return 0;
}

int aloop_set_hooks(aloop_t *loop, const aloop_hooks_t *h) {
    if (!loop) return -EINVAL;
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_set_hooks");
    static const aloop_hooks_t none = {0};
    loop->hooks = h ? *h : none;
    int any = loop->hooks.spawn || loop->hooks.resume || loop->hooks.suspend || loop->hooks.done;
    if (any)
        loop->flags |= ALOOP__HOOKED;
    else
        loop->flags &= ~ALOOP__HOOKED;
    return 0;
}

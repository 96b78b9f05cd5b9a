/*
 * loop.c - creating and freeing loops, aloop_main. (Debug warnings: debug.c.)
 */
#include "internal.h"
#include "io_internal.h"
#include "registry_internal.h"
#include "process_internal.h"
#include "signal_internal.h"

#include <math.h>
#include <unistd.h>

static int config_valid(const aloop_config_t *cfg) {
    if (cfg->clock != ALOOP_CLOCK_MONOTONIC && cfg->clock != ALOOP_CLOCK_VIRTUAL) return 0;
    if (cfg->flags & ~(unsigned)(ALOOP_NO_GUARD_PAGES | ALOOP_DEBUG)) return 0;
    if (cfg->stack_size && cfg->stack_size < ALOOP_MIN_STACK) return 0;
    return aloop__sim_config_valid(cfg);
}

/* The environment's additions to a config: ALOOP_DEBUG=1, ALOOP_CLOCK=virtual. */
static int env_debug(void) {
    const char *v = getenv("ALOOP_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

static int env_clock(int clock) {
    const char *v = getenv("ALOOP_CLOCK");
    return v && strcmp(v, "virtual") == 0 ? ALOOP_CLOCK_VIRTUAL : clock;
}

aloop_t *aloop_new_with(const aloop_config_t *cfg) {
    static const aloop_config_t defaults = {0};
    if (!cfg) cfg = &defaults;
    if (!config_valid(cfg)) return aloop__null_errno(-EINVAL);
    aloop__allocator_fix();
    aloop_t *loop = aloop__calloc(1, sizeof *loop);
    if (!loop) return aloop__null_errno(-ENOMEM);
    loop->clock = env_clock(cfg->clock);
    loop->flags = cfg->flags | (env_debug() ? ALOOP_DEBUG : 0u);
    aloop__sim_init(&loop->sim, cfg);
    /* alloc.c draws its failures through the thread's current loop */
    if (loop->sim.faults & ALOOP_SIM_ENOMEM) loop->coros.alloc_faults = &loop->sim;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t stack = cfg->stack_size ? cfg->stack_size : ALOOP_DEFAULT_STACK;
    loop->coros.page_size = page;
    loop->coros.stack_size = (stack + page - 1) & ~(page - 1);
    loop->coros.guards = !(loop->flags & ALOOP_NO_GUARD_PAGES);
    aloop__tasks_init(loop);
    aloop__list_init(&loop->futures);
    aloop__list_init(&loop->owned);
    aloop__debug_init(loop);
    /* Each module sets up its own part; each step's own error is passed on:
     * EMFILE from epoll_create1 or the wake-up fd is not "out of memory". */
    int rc = aloop__coros_init(&loop->coros);
    if (rc < 0) goto fail;
    rc = aloop__sched_init(loop);
    if (rc < 0) goto fail;
    rc = aloop__io_init(loop);
    if (rc < 0) goto fail;
    loop->io->file_io = aloop__file_io; /* regular files go to the pool (file.c) */
    rc = aloop__async_init(loop);
    if (rc < 0) {
        aloop__io_free(loop);
        goto fail;
    }
    /* Alive: other threads may post to it, signals wake it, from now on. */
    rc = aloop__loops_add(loop, aloop__async_wake_fd(loop));
    if (rc < 0) {
        aloop__async_free(loop);
        aloop__io_free(loop);
        goto fail;
    }
    /* The handler is process-wide; each thread that runs a loop gets its
     * alternate signal stack when the loop starts running there (sched.c). */
    if (!(loop->flags & ALOOP_NO_GUARD_PAGES)) aloop__install_overflow_handler();
    aloop__dumpsig_from_env(); /* ALOOP_DUMP_SIGNAL, once per process */
    return loop;
fail:
    aloop__coros_free(&loop->coros);
    aloop__sched_free(loop);
    aloop__free(loop);
    return aloop__null_errno(rc);
}

aloop_t *aloop_new(void) { return aloop_new_with(NULL); }

uint64_t aloop_sim_seed(const aloop_t *loop) { return loop ? loop->sim.seed : 0; }

/* Frees what is left on the ring and in the heap once no task is left:
 * callbacks that never ran. */
static void drop_pending_callbacks(aloop_t *loop) {
    while (loop->sched.ring_count) {
        aloop_runnable_t *r = aloop__ring_pop(loop);
        if (r->kind == ALOOP__RUN_HANDLE)
            aloop__handle_drop((aloop_handle_t *)(void *)r);
        else if (r->kind == ALOOP__RUN_CALLBACK)
            aloop__future_drop_callback(r);
        else if (r->kind == ALOOP__RUN_FD_CALLBACK)
            aloop__fd_callback_drop(r);
    }
    /* Only handle timers can be left: every other timer belongs to a
     * suspended task, and none is left. */
    aloop_timer_t *t;
    while ((t = aloop__timers_pop_due(&loop->timers, HUGE_VAL)) != NULL)
        aloop__handle_drop(ALOOP_CONTAINER_OF(t, aloop_handle_t, timer));
}

/* Once no task is left, nothing can complete a pending plain future any
 * more: cancel them, so that whatever waits on one (a done callback, a
 * shield's link) is told, and frees what it holds, instead of leaking. A
 * cancel may free other futures of the list, so walk a detached copy. */
static void cancel_pending_futures(aloop_t *loop) {
    aloop_list_t rest;
    aloop__list_init(&rest);
    if (!aloop__list_empty(&loop->futures)) {
        rest.next = loop->futures.next;
        rest.prev = loop->futures.prev;
        rest.next->prev = rest.prev->next = &rest;
        aloop__list_init(&loop->futures);
    }
    aloop_list_t *n;
    while ((n = aloop__list_pop_front(&rest)) != NULL) {
        aloop_future_t *f = ALOOP_CONTAINER_OF(n, aloop_future_t, live);
        aloop__list_push_back(&loop->futures, n);
        if (f->state != ALOOP__PENDING || f->is_task) continue;
        aloop_retain(f);
        aloop_cancel(f);
        aloop_release(f);
    }
}

/* Debug mode: task handles the program still holds when the loop goes
 * (each one a leak unless released later; valgrind would say so). */
static void warn_unreleased_tasks(aloop_t *loop) {
    size_t n = 0;
    const aloop_task_t *first = NULL;
    for (aloop_list_t *l = loop->futures.next; l != &loop->futures; l = l->next) {
        const aloop_future_t *f = ALOOP_CONTAINER_OF(l, aloop_future_t, live);
        if (!f->is_task || f->state == ALOOP__FREED) continue;
        if (!first) first = f;
        n++;
    }
    if (n)
        aloop__warn(loop, "loop freed while %zu task handle(s) were never released (first: '%s'); "
                    "aloop_release them", n, aloop_task_name(first));
}

void aloop_free(aloop_t *loop) {
    if (!loop) return;
    if (loop->running || aloop__tls_loop() == loop) {
        aloop__misuse(loop, 0, "aloop_free", "called from inside the running loop");
        return;
    }
    if (loop->task_count && (loop->flags & ALOOP_DEBUG))
        aloop__warn(loop, "loop freed with %zu unfinished task(s); cancelling them",
                    loop->task_count);
    aloop__loops_remove(loop); /* no other thread touches it from now on */
    aloop__async_close(loop);
    aloop__drain_tasks(loop);
    cancel_pending_futures(loop);
    aloop__drain_tasks(loop); /* runs what those cancels scheduled */
    drop_pending_callbacks(loop);
    /* Objects that may outlive the loop (streams) forget it */
    aloop_list_t *o;
    while ((o = aloop__list_pop_front(&loop->owned)) != NULL)
        ALOOP_CONTAINER_OF(o, aloop_owned_t, link)->detach(ALOOP_CONTAINER_OF(o, aloop_owned_t, link));
    /* Children before signals: the SIGCHLD fallback unsubscribes. */
    aloop__process_free(loop); /* unhooks pidfds: before the fd table goes */
    /* Signals first: one arriving while the pool's running jobs are joined
     * is then delivered at once, not held until they are done. */
    aloop__signal_free(loop); /* forgets its fds: before the fd table goes */
    aloop__async_free(loop);
    aloop__io_free(loop);
    if (loop->flags & ALOOP_DEBUG) warn_unreleased_tasks(loop);
    while (!aloop__list_empty(&loop->futures)) {
        aloop_future_t *f = ALOOP_CONTAINER_OF(loop->futures.next, aloop_future_t, live);
        aloop__future_detach(f);
    }
    aloop__coros_free(&loop->coros);
    aloop__timers_free(&loop->timers);
    aloop__timeout_free(loop);
    aloop__debug_free(loop); /* quarantined tasks go back to their slabs */
    aloop__task_pool_free(loop); /* after the detach: no task can come back to it */
    aloop__sched_free(loop);
    aloop__free(loop);
}

int aloop_main_with(const aloop_config_t *cfg, aloop_task_fn fn, void *arg, void **result) {
    if (!fn) return -EINVAL;
    aloop_t *loop = aloop_new_with(cfg);
    if (!loop) return -errno;
    aloop_task_t *t = aloop_spawn(loop, fn, arg);
    if (!t) {
        aloop_free(loop);
        return -ENOMEM;
    }
    int rc = aloop_run_until_complete(loop, t);
    if (result) *result = NULL;
    if (aloop_future_done(t)) rc = aloop_future_result(t, result);
    aloop_release(t);
    aloop_free(loop);
    return rc;
}

int aloop_main(aloop_task_fn fn, void *arg, void **result) {
    return aloop_main_with(NULL, fn, arg, result);
}

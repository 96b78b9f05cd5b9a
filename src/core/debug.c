/*
 * debug.c - debug mode (ALOOP_DEBUG, or ALOOP_DEBUG=1 in the environment):
 * asyncio's debug mode, in C.
 *
 *  - warnings go to stderr, or to the loop's warning handler;
 *  - a task step longer than ALOOP_SLOW_STEP seconds of wall time is
 *    reported with the task's name (it blocked every other task that long);
 *  - freed futures and tasks are kept in a bounded quarantine instead of
 *    being freed at once, so that releasing one more often than it was
 *    retained reads memory that is still ours and is reported, rather than
 *    being a use-after-free that may or may not crash;
 *  - aloop_dump() prints every unfinished task.
 *
 * Every hook on a hot path is guarded by one `loop->flags & ALOOP_DEBUG`
 * test at its call site, so with debug mode off the cost is that branch.
 *
 * What debug mode does to misuse (an abort with a message): below, with
 * the policy itself.
 */
#include "internal.h"

#include <dlfcn.h>
#include <stdarg.h>

/* ---- warnings */

void aloop_set_warning_handler(aloop_t *loop, aloop_warning_fn fn, void *arg) {
    if (!loop) return;
    loop->debug.warn_fn = fn;
    loop->debug.warn_arg = arg;
}

void aloop__warn(aloop_t *loop, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (loop && loop->debug.warn_fn)
        loop->debug.warn_fn(loop, msg, loop->debug.warn_arg);
    else
        fprintf(stderr, "aloop: warning: %s\n", msg);
}

/* ---- slow steps */

/* The time since the running step began; the next step starts now. */
static double step_took(aloop_t *loop) {
    double now = aloop__monotonic();
    double took = loop->debug.step_start > 0 ? now - loop->debug.step_start : 0;
    loop->debug.step_start = now;
    return took;
}

static void warn_slow(aloop_t *loop, aloop_task_impl_t *t, double took, const char *how) {
    aloop__warn(loop, "task '%s' ran %.0f ms without suspending%s (slow step > %.0f ms: "
                "every other task waited)", aloop_task_name(&t->fut), took * 1e3, how,
                ALOOP_SLOW_STEP * 1e3);
}

/* Called when task t ends a step by really suspending (it waits, yields or
 * returns). The next step starts now: either the task we switch to directly,
 * or, if we go back to the loop, run_task sets step_start again after
 * polling. Run time piled up over budget yields counts too. */
void aloop__debug_step_end(aloop_t *loop, aloop_task_impl_t *t) {
    double took = step_took(loop) + t->fut.busy;
    int sliced = t->fut.busy > 0;
    t->fut.busy = 0;
    if (took > ALOOP_SLOW_STEP)
        warn_slow(loop, t, took, sliced ? " (only paused by its budget)" : "");
}

/* Called when t spent its cooperative budget: the other tasks got a turn,
 * but t never waited for anything. Many short slices add up to one slow
 * step, reported once per ALOOP_SLOW_STEP of its own run time. */
void aloop__debug_coop_yield(aloop_t *loop, aloop_task_impl_t *t) {
    t->fut.busy += (float)step_took(loop);
    if (t->fut.busy > ALOOP_SLOW_STEP) {
        warn_slow(loop, t, t->fut.busy, " (only paused by its budget)");
        t->fut.busy = 0;
    }
}

void aloop__debug_step_begin(aloop_t *loop) { loop->debug.step_start = aloop__monotonic(); }

/* ---- quarantine of freed futures */

/* As its last release would have, through the hook its detach left in
 * f->dispose (a task goes back to task.c). */
static void really_free(aloop_future_t *f) {
    if (f->dispose)
        f->dispose(NULL, f);
    else
        aloop__free(f);
}

/* f's last reference is gone (already detached from the loop). Keeps it,
 * marked ALOOP__FREED, evicting the oldest once the quarantine is full. */
void aloop__debug_keep_freed(aloop_t *loop, aloop_future_t *f) {
    f->state = ALOOP__FREED;
    f->loop = loop; /* so a later bad release can find the warning handler */
    aloop__list_push_back(&loop->debug.quarantine, &f->live);
    if (++loop->debug.quarantine_len > ALOOP_QUARANTINE_MAX) {
        aloop_list_t *old = aloop__list_pop_front(&loop->debug.quarantine);
        loop->debug.quarantine_len--;
        really_free(ALOOP_CONTAINER_OF(old, aloop_future_t, live));
    }
}

/* aloop_release found refs == 0. */
void aloop__debug_bad_release(aloop_future_t *f) {
    if (f->state == ALOOP__FREED && f->loop && (f->loop->flags & ALOOP_DEBUG)) {
        if (f->is_task)
            aloop__warn(f->loop, "task '%s' released more often than retained "
                        "(aloop_release on a freed task; ignored)", aloop_task_name(f));
        else
            aloop__warn(f->loop, "future %p released more often than retained "
                        "(aloop_release on a freed future; ignored)", (void *)f);
        return;
    }
    /* Without debug mode f is freed memory: all we can do is stop here. */
    fprintf(stderr, "aloop: aloop_release on a freed future %p (released more often than "
            "retained; run with ALOOP_DEBUG=1 to catch this reliably)\n", (void *)f);
    abort();
}

void aloop__debug_init(aloop_t *loop) {
    aloop__list_init(&loop->debug.quarantine);
    loop->debug.dump_seen = __atomic_load_n(&aloop__dump_requests, __ATOMIC_RELAXED);
}

/* Loop teardown: the quarantine goes with the loop. */
void aloop__debug_free(aloop_t *loop) {
    aloop_list_t *n;
    while ((n = aloop__list_pop_front(&loop->debug.quarantine)) != NULL)
        really_free(ALOOP_CONTAINER_OF(n, aloop_future_t, live));
    loop->debug.quarantine_len = 0;
}

/* ---- aloop_dump */

static const char *task_state(const aloop_t *loop, const aloop_task_impl_t *t) {
    if (loop->current == t) return "running";
    if (!t->started) return "not started";
    if (t->wait) return "suspended";
    if (t->queued) return "ready";
    return "?";
}

static void dump_wait(FILE *out, const aloop_wait_t *w) {
    if (w->awaiting && w->awaiting->is_task)
        fprintf(out, ", awaiting task '%s'", aloop_task_name(w->awaiting));
    else if (w->awaiting)
        fprintf(out, ", awaiting future %p", (void *)w->awaiting);
    else
        fprintf(out, ", in %s", w->what ? w->what : "a wait");
}

/* Where aloop_spawn was called from, as "module+0xoffset (function+0xoff)":
 * the offset works with `addr2line -f -e module 0xoffset` even for PIE
 * executables, whose load address changes from run to run. */
static void dump_site(FILE *out, const void *site) {
    Dl_info info;
    if (!site) return;
    if (!dladdr(site, &info) || !info.dli_fname) {
        fprintf(out, ", spawned at %p", site);
        return;
    }
    const char *mod = strrchr(info.dli_fname, '/');
    mod = mod ? mod + 1 : info.dli_fname;
    fprintf(out, ", spawned at %s+0x%lx", mod,
            (unsigned long)((const char *)site - (const char *)info.dli_fbase));
    if (info.dli_sname)
        fprintf(out, " (%s+0x%lx)", info.dli_sname,
                (unsigned long)((const char *)site - (const char *)info.dli_saddr));
}

int aloop_task_backtrace(aloop_task_t *task, void **frames, int max) {
    if (!task || !task->is_task || max < 0 || (!frames && max > 0)) return -EINVAL;
    aloop_t *loop = task->loop;
    if (!loop) return 0; /* its loop was freed: it finished */
    if (aloop__foreign_thread(loop)) return aloop__wrong_thread(loop, "aloop_task_backtrace");
    aloop_task_impl_t *t = aloop__task(task);
    if (task->state != ALOOP__PENDING || !t->started || !t->coro) return 0;
    if (loop->coros.running != t->coro) return aloop__coro_backtrace(t->coro, NULL, frames, max);
    /* The caller's own stack, from this call's frame record, whose return
     * address is in the caller. The empty asm keeps the walk from being a
     * tail call, so that this frame still exists while it is read. */
    int n = aloop__coro_backtrace(t->coro, __builtin_frame_address(0), frames, max);
    __asm__ volatile("" : "+r"(n));
    return n;
}

/* The frames of a task that has run and is not running now, as Go prints a
 * goroutine's. The running task's stack is the dump's caller's. */
#define DUMP_FRAMES 64
static void dump_frames(FILE *out, aloop_task_impl_t *t) {
    void *frames[DUMP_FRAMES];
    char name[256];
    int n = aloop_task_backtrace(&t->fut, frames, DUMP_FRAMES);
    for (int i = 0; i < n; i++) {
        aloop__symbolize(frames[i], name, sizeof name);
        fprintf(out, "      #%-2d %s\n", i, name);
    }
}

void aloop_dump(aloop_t *loop, FILE *out) {
    if (!loop || !out) return;
    fprintf(out, "aloop %p: %zu unfinished task(s), loop time %.6f\n", (void *)loop,
            loop->task_count, aloop__now(loop));
    for (aloop_list_t *n = loop->tasks.next; n != &loop->tasks; n = n->next) {
        aloop_task_impl_t *t = ALOOP_CONTAINER_OF(n, aloop_task_impl_t, fut.live);
        fprintf(out, "  task '%s' #%llu: %s", aloop_task_name(&t->fut),
                (unsigned long long)t->id, task_state(loop, t));
        if (t->wait) dump_wait(out, t->wait);
        if (t->cancel_requests) fprintf(out, ", %d cancel request(s)", t->cancel_requests);
        dump_site(out, t->spawn_site);
        fputc('\n', out);
        if (loop->current != t) dump_frames(out, t);
    }
}

/* ---- dumps asked for by signal */

unsigned aloop__dump_requests;

/* At the loop's next drain after the signal: on its own thread, between
 * steps, so every task but none running is shown with its stack. One loop's
 * dump is not interleaved with another's (stderr's lock). */
void aloop__dump_requested(aloop_t *loop) {
    loop->debug.dump_seen = __atomic_load_n(&aloop__dump_requests, __ATOMIC_RELAXED);
    flockfile(stderr);
    fprintf(stderr, "aloop: dump on signal\n");
    aloop_dump(loop, stderr);
    fflush(stderr);
    funlockfile(stderr);
}

void aloop__sim_report(aloop_t *loop, const char *what) {
    if (!loop || !loop->sim.seed || loop->sim.reported) return;
    loop->sim.reported = 1;
    char line[160];
    aloop__sim_replay(&loop->sim, line, sizeof line);
    aloop__warn(loop, "%s under simulation; %s", what, line);
}

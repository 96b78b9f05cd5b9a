/*
 * internal.h - declarations shared by libaloop's sources. Not installed.
 *
 * The big picture: one struct aloop per loop holds every piece of state. A
 * task runs on a coroutine (coro.c) with its own stack. When it suspends it
 * fills a wait record on its own stack (struct aloop_wait), registers it
 * with whatever will wake it (a timer, a future, a queue, an fd) and calls
 * aloop__suspend(). Waking means waking that record (aloop__wake: the
 * record knows its task, which goes on the ready ring, sched.c); cancelling
 * means unregistering the record and waking it with -ECANCELED.
 */
#ifndef ALOOP_INTERNAL_H
#define ALOOP_INTERNAL_H

#include "aloop.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base_internal.h"
#include "error_internal.h"
#include "coro_internal.h"
#include "backtrace_internal.h"
#include "sched_internal.h"
#include "alloc_internal.h"
#include "backend_internal.h"
#include "sim_internal.h"
#include "timer_internal.h"

/* ---- runnables: what the ready ring holds */
enum aloop_run_kind {
    ALOOP__RUN_TASK,     /* resume (or start) a task */
    ALOOP__RUN_HANDLE,   /* call_soon / call_later callback */
    ALOOP__RUN_CALLBACK, /* a future's done callback */
    ALOOP__RUN_FD_CALLBACK, /* an aloop_add_reader/add_writer callback (watch.c) */
};
typedef struct aloop_runnable {
    uint8_t kind;
} aloop_runnable_t;

/* ---- timers: the heap is timer.c (timer_internal.h); the loop's one is
 * loop->timers. Arming a timer never allocates unless the heap must grow.
 * aloop__timer_start (0 / -ENOMEM) and aloop__timer_stop (idempotent) are
 * inline at the end of this file. */

/* ---- coroutines: coro_internal.h; the loop's part is loop->coros */

/* ---- futures and tasks (future.c, task.c) */
enum aloop_fut_state {
    ALOOP__PENDING = 0, ALOOP__DONE, ALOOP__CANCELLED,
    ALOOP__FREED /* debug mode: released for good, kept in quarantine (debug.c) */
};

/* Something to do when a future completes. fire() is called synchronously
 * from completion, after the node was unlinked; it must not run user code
 * (schedule it instead). */
typedef struct aloop_fut_waiter {
    aloop_list_t link;
    void (*fire)(struct aloop_fut_waiter *w, aloop_future_t *f);
} aloop_fut_waiter_t;

/* A wait record: one per suspension, on the suspended task's stack.
 *
 * Every waker wakes the record, never the task directly. Waits on an
 * object's waiter list (queues, locks, semaphores, conditions, events,
 * barriers, a server's wait_closed, child processes: aloop__wait_in)
 * follow one wake-up protocol, kept in the core (sched.c) so no primitive
 * handles it by itself:
 *  - waiting: `link` is in the object's waiter list;
 *  - woken (granted something with result 0, refused with an error, or
 *    cancelled): `link` moves to the object's `woken` list, where it stays
 *    until the task runs again, so the object can still reach the record;
 *  - cancelled while waiting: the core takes the record off the waiter
 *    list and calls `withdraw` (a barrier uncounts the arrival);
 *  - woken with a grant, then cancelled before it ran: the core calls
 *    `undo` (hand the lock, item, slot or notification on) as the task
 *    resumes, if the object still holds the record;
 *  - the object freed meanwhile (aloop__waits_free): the record is cut loose
 *    with result -EPIPE; the task then never touches the object again.
 * A wait on several lists at once (aloop_signal_wait_any: one per signal)
 * is one entry record per list, each following the protocol above, tied in
 * a ring (`any_next`) to the record the task suspends on (aloop__wait_any):
 * the first entry woken wins, the core takes the others off their lists
 * (their `withdraw` runs) and wakes the task with the winner's result.
 * Other waits (timers, fds, futures, worker jobs) use only
 * cancel/awaiting/result. */
typedef struct aloop_wait {
    /* Called when the task is cancelled while suspended: unregister from
     * whatever would wake it. The task is then woken with -ECANCELED. NULL
     * for waits that do their own cancel handling (see `awaiting`). */
    void (*cancel)(struct aloop_wait *w);
    /* Wait lists: give back what the wake-up granted (see above). NULL:
     * nothing to give back. */
    void (*undo)(struct aloop_wait *w);
    /* Wait lists: the task was cancelled while still waiting, before any
     * grant: take back what its arrival counted (a barrier's round). The
     * record is already off the waiter list. NULL: nothing counted. */
    void (*withdraw)(struct aloop_wait *w);
    /* If set, cancelling the task cancels this future instead, and the task
     * stays suspended until the future is done (await semantics). */
    aloop_future_t *awaiting;
    struct aloop_task *task; /* the waiting task (set by aloop__suspend) */
    aloop_list_t link;       /* wait lists: in the object's waiters, then woken */
    aloop_list_t *woken;     /* wait lists: the object's woken list, or NULL
                              * if the waiter never touches the object again */
    int result;   /* set by the waker */
    const char *what; /* what is waited for, for aloop_dump (optional) */
    /* A wait on several lists: the next record of its ring (the record the
     * task suspends on, then its entries); NULL for every other wait. */
    struct aloop_wait *any_next;
} aloop_wait_t;

struct aloop_future {
    aloop_runnable_t run; /* ALOOP__RUN_TASK for tasks (must stay first) */
    uint8_t state;        /* enum aloop_fut_state */
    uint8_t is_task;
    uint8_t error_retrieved;
    unsigned refs;
    int error;            /* 0, or negative errno (-ECANCELED if cancelled); a
                           * pending task keeps aloop_fail's error here */
    /* Tasks in debug mode: run time (s) since the task last really
     * suspended, summed over budget pauses (debug.c). Here because it fits
     * the padding: a task struct stays within 128 bytes. */
    float busy;
    void *result;
    aloop_t *loop;        /* NULL once the loop was freed (detached) */
    union {
        aloop_list_t waiters; /* attached: aloop_fut_waiter_t, in registration order */
        /* detached: how its last release frees it (NULL: aloop__free) */
        void (*dispose)(aloop_t *loop, aloop_future_t *f);
    };
    aloop_list_t live;    /* loop->futures (a task: loop->tasks until it finishes;
                           * a free task slot: next = the slab's next free one) */
};

/* A task, 128 bytes on x86-64 (two cache lines: the default name, a
 * second list link and aloop_fail's error share fields instead of having
 * their own). A task that has not started is only this struct on the
 * ready ring: no coroutine, no stack. */
typedef struct aloop_task {
    struct aloop_future fut;
    union {
        aloop_task_fn fn;    /* until the first step (started == 0) */
        aloop_coro_t *coro;  /* from the first step on: the coroutine it runs on */
    };
    union {
        void *arg;       /* until the first step */
        /* from the first step on: the next task on loop->deferred (paused
         * by its cooperative budget, sched.c) */
        struct aloop_task *next_deferred;
    };
    aloop_wait_t *wait;  /* set while suspended and not yet woken */
    uint64_t id;         /* for "Task-N" */
    char *name;          /* NULL = "Task-<id>", allocated on demand */
    const void *spawn_site; /* aloop_spawn's caller, for aloop_dump */
    struct aloop_scope *timeouts; /* timeout.c: innermost open timeout scope */
    int cancel_requests; /* asyncio's _num_cancels_requested */
    uint8_t must_cancel; /* a cancel is waiting to be delivered */
    uint8_t started;     /* has had its first step: coro is valid */
    uint8_t queued;      /* on the ready ring */
    /* Cooperative budget (sched.c): suspending calls entered since the task
     * last really suspended (<= ALOOP_COOP_BUDGET). Counting up from 0 means
     * a zeroed task struct starts with a full budget. */
    uint8_t coop_used;
} aloop_task_impl_t;

/* Per-task state a feature keeps on the heap while the task runs (timeout.c's
 * open scopes). A task that finishes with some still open calls task_done,
 * so the feature lets go of them without touching the task's dead frames. */
typedef struct aloop_scope {
    void (*task_done)(aloop_task_impl_t *t);
} aloop_scope_t;
/* Frees timeout.c's table of scopes (aloop_free, after every task ended). */
void aloop__timeout_free(struct aloop *loop);

/* w's task is still suspended on w: nobody woke it yet (w->task set). */
static inline int aloop__wait_pending(const aloop_wait_t *w) {
    return w->task->wait == w;
}

static inline aloop_task_impl_t *aloop__task(aloop_future_t *f) {
    return (aloop_task_impl_t *)(void *)f;
}

void aloop__future_init(aloop_future_t *f, aloop_t *loop);
/* The same, kept on `live` (a list of loop's) instead of loop->futures. */
void aloop__future_init_on(aloop_future_t *f, aloop_t *loop, aloop_list_t *live);
/* Completes f (state, error, result) and fires its waiters. -EINVAL if done. */
int aloop__future_complete(aloop_future_t *f, int state, int error, void *result);
void aloop__future_add_waiter(aloop_future_t *f, aloop_fut_waiter_t *w);
void aloop__future_remove_waiter(aloop_fut_waiter_t *w);
/* Runs a scheduled done callback (a runnable of kind ALOOP__RUN_CALLBACK). */
void aloop__future_run_callback(aloop_runnable_t *r);
/* Frees a scheduled done callback without running it (loop teardown). */
void aloop__future_drop_callback(aloop_runnable_t *r);
/* Loop teardown: drops f's callbacks and cuts it loose from its loop. */
void aloop__future_detach(aloop_future_t *f);

/* ---- the scheduler (sched.c) */

/* The calling task, or NULL (also when no loop runs on this thread). */
aloop_task_impl_t *aloop__current_task(void);
/* Entry check of every suspending call: the running task, or NULL with *err
 * set (-EPERM outside a task, -ECANCELED when a cancel is pending, which is
 * consumed). It also spends one unit of the task's cooperative budget
 * (aloop__coop_spend), so it may first yield for a full loop step. */
aloop_task_impl_t *aloop__enter(int *err);
/* The cooperative budget: a task may enter this many suspending calls that
 * do not suspend before one of them yields for a full loop step (timers,
 * fds, the other ready tasks). Tokio's figure; measured in bench/README.md. */
#ifndef ALOOP_COOP_BUDGET
#define ALOOP_COOP_BUDGET 128u /* at most 255: counted in a uint8_t */
#endif
/* Spends one unit of t's budget (t is the running task). When it is spent,
 * yields first: the task goes to loop->deferred and runs again after the
 * next poll and timers. 0, or -ECANCELED if a cancel (or an expired
 * wait_for) arrived meanwhile (consumed): the caller then does nothing.
 * Calls that loop over several syscalls without suspending spend one unit
 * per extra syscall. */
int aloop__coop_yield(aloop_task_impl_t *t);
static inline int aloop__coop_spend(aloop_task_impl_t *t) {
    if (ALOOP_LIKELY(++t->coop_used < ALOOP_COOP_BUDGET)) return 0;
    return aloop__coop_yield(t);
}
/* Suspends the running task on w (w->task = t) until aloop__wake(w).
 * Returns w->result, or
 * -ECANCELED if a cancel arrived after the wake-up (consumed; the caller
 * must undo whatever the wake-up granted, e.g. hand an item back). */
int aloop__suspend(aloop_task_impl_t *t, aloop_wait_t *w);
/* Wakes the task suspended on w (a wait record knows its task, as
 * libdill's triggers do): its aloop__suspend returns result. */
void aloop__wake(aloop_wait_t *w, int result);
/* The wake-up protocol of wait lists (see struct aloop_wait). Suspends t
 * on w at the back of `waiters`; `woken` is the object's list for woken
 * records (NULL: the waiter never touches the object after waking). Returns
 * what aloop__suspend returns; w->result == -EPIPE afterwards means the
 * object was freed (or revoked the grant) while the task was woken. */
int aloop__wait_in(aloop_task_impl_t *t, aloop_wait_t *w, aloop_list_t *waiters,
                   aloop_list_t *woken);
/* A wait on several lists at once: aloop__wait_add puts entry e of w on
 * `waiters` (woken: as for aloop__wait_in), once per list, then
 * aloop__wait_any suspends t on w until the first entry is woken (or the
 * task is cancelled: every entry leaves its list, withdraw runs). Returns
 * what aloop__suspend returns (w->result: the winner's result); a cancel
 * after the win calls the winner's undo if its object still holds it.
 * aloop__wait_any_drop takes the entries added so far off their lists
 * (withdraw runs), for a caller that gives up before suspending. */
void aloop__wait_add(aloop_task_impl_t *t, aloop_wait_t *w, aloop_wait_t *e,
                     aloop_list_t *waiters, aloop_list_t *woken);
int aloop__wait_any(aloop_task_impl_t *t, aloop_wait_t *w);
void aloop__wait_any_drop(aloop_wait_t *w);
/* Wakes the first waiter of `waiters` with result (>= 0 = a grant): the
 * record moves to its woken list. Returns it, or NULL if none waited. */
aloop_wait_t *aloop__wake_first(aloop_list_t *waiters, int result);
/* Wakes every waiter; returns how many. */
size_t aloop__wake_all(aloop_list_t *waiters, int result);
/* The object is freed: its waiters wake with result, and the records of
 * woken waiters that have not run yet are cut loose with result (no undo:
 * the grant is void). */
void aloop__waits_free(aloop_list_t *waiters, aloop_list_t *woken, int result);
/* Puts the running task at the back of the ready ring and lets the others
 * run: 0, or -ECANCELED if cancelled meanwhile. */
int aloop__yield(aloop_task_impl_t *t);
/* Runs up to budget ready runnables in FIFO order. */
void aloop__run_steps(aloop_t *loop, unsigned budget);
/* Fires every timer due at or before now (they only make things ready). */
void aloop__run_timers(aloop_t *loop, double now);
/* Something other than a ready runnable could still happen (tasks paused
 * by their budget, timers, fd waits and watches, pool jobs, posts from
 * other threads). */
int aloop__has_sources(const aloop_t *loop);
/* One tick of the loop: poll (blocking at most host_timeout seconds, < 0:
 * no limit of the host's, and only when nothing is ready), other threads'
 * posts, the virtual clock, due timers, the tasks paused by their budget.
 * aloop_run's and aloop_run_once's. 0, or -EDEADLK (see sched.c). */
int aloop__tick(aloop_t *loop, double host_timeout);
/* Moves the tasks paused by their cooperative budget to the ready ring (in
 * the order they paused): the end of every tick, after the poll and the
 * due timers. */
void aloop__undefer(aloop_t *loop);
/* Debug mode: a loop that slept this long (wall seconds) waiting only for
 * other threads says so. */
#define ALOOP_FOREIGN_WAIT_WARN 10.0
#define ALOOP_FOREIGN_SLICE_MIN 0.001 /* first re-count of the threads */
#define ALOOP_FOREIGN_SLICE_MAX 1.0   /* and the longest sleep between two */
/* Tasks that only other threads can wake: 1 if no other thread exists (a
 * deadlock), else sleeps a slice (at most limit when >= 0), drains what
 * arrived and returns 0 (sched.c; the run loop and aloop_run_once). */
int aloop__wait_for_other_threads(aloop_t *loop, double limit);
/* aloop_free's first half: cancel every task and run until none is left. */
void aloop__drain_tasks(aloop_t *loop);
/* aloop__make_ready, aloop__reserve_runnable, aloop__release_runnable and
 * aloop__ring_pop are inline, after struct aloop at the end of this file. */
/* Doubles the ready ring (the slow half of aloop__reserve_runnable). */
int aloop__ring_grow(aloop_t *loop);
/* sched.c's part of the loop: the clock's origin and the ready ring. */
int aloop__sched_init(aloop_t *loop);
void aloop__sched_free(aloop_t *loop);
/* Completion of the running task (called on its coroutine). */
void aloop__task_finish(aloop_task_impl_t *t, void *result);
/* Loop creation / teardown: the task list, the pool of task structs, and
 * the hooks future.c calls for tasks (task.c). */
void aloop__tasks_init(aloop_t *loop);
void aloop__task_pool_free(aloop_t *loop);
/* The task's name into buf (n bytes, NUL included), without allocating or
 * stdio: the coroutine label behind the stack-overflow report (task.c). */
void aloop__task_label(const void *task, char *buf, size_t n);
/* Request cancellation of a task (task.c). */
int aloop__task_cancel(aloop_task_impl_t *t);
/* Suspends t for seconds (> 0) on a timer: 0, -ECANCELED, -ENOMEM. */
int aloop__sleep(aloop_task_impl_t *t, double seconds);
/* Loop time (virtual or monotonic). */
double aloop__now(aloop_t *loop);
double aloop__monotonic(void);

/* ---- callbacks (handle.c) */
struct aloop_handle {
    aloop_runnable_t run;
    uint8_t cancelled;
    uint8_t running;
    uint8_t queued; /* on the ready ring (or due to be) */
    aloop_t *loop;
    void (*cb)(void *);
    void *arg;
    aloop_timer_t timer;
};
void aloop__handle_run(aloop_handle_t *h);
void aloop__handle_drop(aloop_handle_t *h);

/* ---- the poller seam (io.c, in front of backend_epoll.c / backend_kqueue.c /
 * backend_poll.c).
 * The scheduler only knows these calls. */
int aloop__io_init(aloop_t *loop);
void aloop__io_free(aloop_t *loop);
/* Waits up to timeout seconds (< 0: for ever; 0: just look) for readiness
 * and wakes the tasks concerned. Returns the number of events or -errno. */
int aloop__io_poll(aloop_t *loop, double timeout);
/* Fds a task waits on or a callback watches now, the library's own
 * (wake-up fd, signalfd) left out: O(highest fd), for aloop_metrics. */
size_t aloop__io_fds(const aloop_t *loop);
/* Number of registered waits: while > 0 the loop stays alive. */
size_t aloop__io_pending(const aloop_t *loop);
/* Sleeps in the backend up to timeout seconds (< 0: until something
 * arrives) even with no wait registered: for a loop whose tasks can only be
 * woken by other threads (the wake-up fd is always watched). */
int aloop__io_sleep(aloop_t *loop, double timeout);
/* Drops backend registrations nobody wants any more (the deferred shrink),
 * so the backend fd polls readable only for I/O someone will process. */
void aloop__io_flush(aloop_t *loop);

/* io.c keeps one watch per fd (a table indexed by fd, grown on demand, so
 * registering a wait is O(1)). A watch holds at most one waiting reader and
 * one waiting writer task, or an internal hook (the thread pool's wake-up
 * fd, a signalfd) that is called from the poll instead of waking a task.
 *
 * Registrations are kept in the backend across waits: `wanted` is what the
 * current waiters need, `registered` what the backend watches. Adding
 * interest updates the backend at once; dropping it is deferred to just
 * before the next poll (the fd is put on the dirty list), so a task that
 * waits on the same fd again before then costs no syscall at all. */
/* ALOOP__IO_READ / WRITE / ERROR: backend_internal.h */

struct aloop_io_waiter; /* io.c, on the waiting task's stack */
typedef void (*aloop_io_hook_fn)(aloop_t *loop, int fd);

typedef struct aloop_io_watch {
    struct aloop_io_waiter *waiter[2]; /* [0] reader, [1] writer */
    aloop_io_hook_fn hook;             /* internal reader, or NULL */
    struct aloop_fd_callback *cb[2];   /* aloop_add_reader / add_writer (watch.c) */
    uint8_t wanted;                    /* ALOOP__IO_READ | ALOOP__IO_WRITE */
    uint8_t registered;                /* what the backend watches now */
    uint8_t flags;                     /* io.c's ALOOP__WATCH_* bits */
    /* Bumped whenever the fd is forgotten (closed through the library, or
     * made anew): a waiter woken for fd but not yet run compares it before
     * touching the number again, which may by then be another file. */
    uint32_t gen;
} aloop_io_watch_t;

/* struct aloop_io, io.c's state (loop->io): io_internal.h. */

/* aloop_io_watch_t.flags bits that file.c shares (io.c owns bits 1 and 2):
 * fd is a regular file (fstat once, when recv said ENOTSOCK); a pool job
 * reads (BUSY << 0) or writes (BUSY << 1) it now. */
enum { ALOOP__WATCH_FILE = 4u, ALOOP__WATCH_FILE_BUSY = 8u };
/* From the file hook: fd is not a regular file (any more). */
#define ALOOP__IO_NOT_FILE ((ssize_t)-0x10000)
/* file.c: the hook above. Bytes (a read: one chunk, 0 at EOF; a write:
 * len), -errno (-EBUSY: another task reads / writes fd now), or
 * ALOOP__IO_NOT_FILE. */
ssize_t aloop__file_io(aloop_task_impl_t *t, int fd, void *buf, size_t len, int dir);

/* io.c: readiness on fd (ALOOP__IO_* bits). Only wakes tasks and calls hooks. */
void aloop__io_ready(aloop_t *loop, int fd, unsigned events);
/* The watch for fd, growing the table: NULL on -ENOMEM. */
aloop_io_watch_t *aloop__io_watch(aloop_t *loop, int fd);
/* Internal readers: hook(loop, fd) runs from the poll whenever fd is readable.
 * A hook must only wake tasks or read fd, never run user code. */
int aloop__io_hook(aloop_t *loop, int fd, aloop_io_hook_fn hook);
void aloop__io_unhook(aloop_t *loop, int fd);
/* Forgets everything about fd (before it is closed or after it was created:
 * its number may have been reused). Wakes its waiters with -EBADF. */
void aloop__io_forget(aloop_t *loop, int fd);
/* The library just made fd (a socket, an accepted connection): forgets the
 * number's past, and marks fd as one only aloop_close / a stream's close
 * may close, which spares it the close(2) checks (io.c). */
void aloop__io_adopt(aloop_t *loop, int fd);
/* Adds (removes) direction bit to what the backend must watch on fd for
 * someone other than a waiting task (watch.c). 0 or -errno. */
int aloop__io_want(aloop_t *loop, int fd, unsigned bit);
void aloop__io_unwant(aloop_t *loop, int fd, unsigned bit);
/* A callback watch on fd is replaced (bit already wanted): fd may be a new
 * file under the same number by now (closed with close(2) while watched),
 * so the registration is set again, unless the library made fd. */
int aloop__io_rewant(aloop_t *loop, int fd, unsigned bit);
/* Remembers loop as the one aloop_close uses outside a task on this thread. */
void aloop__io_use_loop(aloop_t *loop);

/* ---- callback fd watches: one record per fd and direction, which is also
 * the runnable the loop queues when the fd is ready. watch.c has the API
 * (aloop_add_reader & co); io.c the records' life, which the core runs. */
typedef struct aloop_fd_callback {
    aloop_runnable_t run;    /* ALOOP__RUN_FD_CALLBACK */
    uint8_t queued;          /* on the ready ring */
    uint8_t removed;         /* detached while queued: freed when met */
    uint8_t dir;             /* 0 read, 1 write */
    int fd;
    aloop_t *loop;
    void (*cb)(int fd, void *arg);
    void *arg;
} aloop_fd_callback_t;
/* The fd is ready in the record's direction: queue its callback once. */
void aloop__fd_callback_ready(aloop_fd_callback_t *c);
void aloop__fd_callback_run(aloop_runnable_t *r);
/* Teardown: a queued record met on the ring (1 if it was freed). */
void aloop__fd_callback_drop(aloop_runnable_t *r);
/* Detaches the watch's records (aloop_close, aloop_free). */
void aloop__fd_callbacks_detach(aloop_t *loop, aloop_io_watch_t *w);
/* Unhooks c from its fd; frees it unless the ring still holds it. */
void aloop__fd_callback_detach(aloop_fd_callback_t *c);

/* Waits other than fd waits that keep the loop alive (+1 / -1). */
void aloop__io_hold(aloop_t *loop, int delta);

/* Suspends t until fd is ready for reading (dir 0) or writing (dir 1), at
 * most timeout seconds (< 0: no limit). 0 / -ETIMEDOUT / -ECANCELED /
 * -EBADF / -EBUSY; 0 at once for a regular file (always ready). The caller
 * must retry its call and be ready to wait again: readiness may be
 * spurious (simulation injects it here). */
int aloop__io_wait(aloop_task_impl_t *t, int fd, int dir, double timeout);
/* The loop fd calls made outside a task use: the one running on this
 * thread, else the last one that waited on an fd here (may be NULL). */
aloop_t *aloop__io_loop(void);
/* Sets O_NONBLOCK unless already set: 0 or -errno. */
int aloop__set_nonblocking(int fd);
/* The same for an fd the program gave the library: remembers that the
 * library changed its mode, which aloop__io_release, aloop_close and
 * aloop_free put back. 0, -errno (-ENOMEM: the mode is left alone). */
int aloop__io_set_nonblocking(aloop_t *loop, int fd);
/* The library lets fd go (a stream's close, before close(2)): its blocking
 * mode back if the library changed it, then aloop__io_forget. */
void aloop__io_release(aloop_t *loop, int fd);

/* Read / write with the task t (already past aloop__enter): try the
 * syscall, wait on EAGAIN. For stream.c. */
ssize_t aloop__io_read(aloop_task_impl_t *t, int fd, void *buf, size_t len);
ssize_t aloop__io_write_all(aloop_task_impl_t *t, int fd, const void *buf, size_t len);
/* Spends a unit of t's budget between two calls on fd (and fd2, or -1)
 * that did not suspend (aloop__coop_spend). If that yields and meanwhile
 * either fd is closed through the library (aloop_close, a stream's close),
 * its number may be another file's by then: -EBADF, and the caller must
 * not touch it again. 0, or -errno (-ECANCELED: cancelled). */
int aloop__io_spend(aloop_task_impl_t *t, int fd, int fd2);
/* One write of at least one byte (suspending while fd is full): the bytes
 * written (len for a regular file, written whole on the pool), or -errno. */
ssize_t aloop__io_write(aloop_task_impl_t *t, int fd, const void *buf, size_t len);

/* ---- fd to fd copies (copy.c) */
/* Copies from in_fd to out_fd until the source's end (0) or n bytes (n ==
 * 0: no limit), adding the bytes delivered to *done as they go; at *off of
 * a regular file (advanced) when off is set, else at the fds' own
 * positions. Holds no byte it took from in_fd when it stops (but for
 * sources that are neither files, pipes nor sockets). `spent`: a syscall
 * was already made in this call, so the first one spends budget too.
 * 0 or -errno. */
ssize_t aloop__copy_fd(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t n,
                       size_t *done, int spent);
/* Whether the kernel can copy between the two fds itself (splice,
 * sendfile), so that a copy need not pass through a buffer. */
int aloop__copy_has_kernel_path(int out_fd, int in_fd);

/* ---- worker pool lanes (threadpool.c): each lane runs at most the pool's
 * size of jobs at once, so slow name lookups cannot take every worker. */
enum { ALOOP__LANE_JOBS, ALOOP__LANE_LOOKUPS, ALOOP__LANES };
/* aloop_run_in_thread_with in a lane. */
int aloop__run_in_lane(int lane, void *(*fn)(void *), void *arg,
                       void (*discard)(void *result, void *arg), void **result);

/* ---- sockets (net.c), shared with the datagram and Unix socket files */
struct addrinfo;
/* A non-blocking, close-on-exec socket the loop knows nothing stale about. */
int aloop__net_socket(int family, int type, int proto);
/* Connects fd, waiting at most timeout seconds (< 0: no limit). */
int aloop__net_connect(aloop_task_impl_t *t, int fd, const struct sockaddr *addr,
                       socklen_t len, double timeout);
/* host:port for sockets of socktype: numeric hosts and "localhost" at once,
 * names on the worker pool (-EPERM outside a task). Free with freeaddrinfo. */
int aloop__net_resolve(const char *host, const char *port, int socktype, int passive,
                       struct addrinfo **out);
/* A socket bound to the first address of host:port that works (listening,
 * for SOCK_STREAM, with backlog); flags: ALOOP_LISTEN_*. fd or -errno. */
int aloop__net_bind(const char *host, const char *port, int socktype, int backlog,
                    unsigned flags);
/* getaddrinfo's EAI_* code rc (sys_errno: errno after it) as -errno. */
int aloop__gai_errno(int rc, int sys_errno);
/* Test hook: fn answers the lookups the pool makes (names) instead of
 * getaddrinfo, and free_fn frees its lists; NULL, NULL: getaddrinfo again.
 * fn returns an EAI_* code, as getaddrinfo does. */
typedef int (*aloop__resolver_fn)(const char *host, const char *port,
                                  const struct addrinfo *hints, struct addrinfo **res);
void aloop__test_set_resolver(aloop__resolver_fn fn, void (*free_fn)(struct addrinfo *));

/* ---- streams (stream.c), for server.c: a hold keeps a stream's memory
 * alive while its owner may still close it (the handler of a connection may
 * close its stream early; the server closes it, if still open, and frees it
 * when the handler returns). */
void aloop__stream_hold(aloop_stream_t *s);
void aloop__stream_unhold(aloop_stream_t *s); /* closes it if still open; may free it */

/* ---- signals: src/proc/signal_internal.h (loop->signals,
 * aloop__signal_free); child processes: src/proc/process_internal.h
 * (loop->procs). Only the loop and src/proc/ include them. */
struct aloop_signals;
struct aloop_procs;

/* ---- cross-thread wake-ups (threadpool.c)
 * The core (sched.c, io.c) reaches them only through loop->xthread, which
 * aloop__async_init points at threadpool.c's functions: a hook the core
 * defines and the feature fills, so no core file depends on the pool. */
typedef struct aloop_xthread_ops {
    size_t (*pending)(const aloop_t *loop); /* aloop__async_pending */
    void (*drain)(aloop_t *loop);           /* aloop__async_drain */
    int (*alone)(const aloop_t *loop);      /* aloop__async_alone */
    void (*stop)(aloop_t *loop);            /* aloop__async_stop */
} aloop_xthread_ops_t;
int aloop__async_init(aloop_t *loop);
void aloop__async_free(aloop_t *loop);
/* aloop_free, once the loop has left the registry (registry_internal.h:
 * aloop_call_soon_threadsafe says -EPIPE from then on): the callbacks it
 * accepted before run now. */
void aloop__async_close(aloop_t *loop);
/* The wake-up fd another thread or a signal handler writes to. */
int aloop__async_wake_fd(const aloop_t *loop);
/* Runs callbacks queued by other threads. */
void aloop__async_drain(aloop_t *loop);
/* Work outstanding on other threads that will come back (keeps the loop alive). */
size_t aloop__async_pending(const aloop_t *loop);
/* A callback posted to a loop from any thread. call_soon_threadsafe
 * allocates one; aloop_run_threadsafe embeds its posts in its own record
 * (embedded = 1: the drain does not free it), so posting cannot fail. If
 * the loop is freed before cb ran, drop(arg) is called instead (when set). */
typedef struct aloop_post {
    struct aloop_post *next;
    void (*cb)(void *);
    void (*drop)(void *);
    void *arg;
    uint8_t embedded;
} aloop_post_t;
void aloop__post(aloop_t *loop, aloop_post_t *p);
/* Something arrived from another thread and waits for the next drain. */
int aloop__async_ready(const aloop_t *loop);
/* Pool jobs waiting for a worker and running on one now (aloop_metrics). */
void aloop__async_counts(aloop_t *loop, size_t *queued, size_t *running);
/* aloop_stop from another thread: the loop stops at its next drain. */
void aloop__async_stop(aloop_t *loop);
/* 1 only if the process surely has no thread but this one and the loop's
 * workers (Linux: /proc/self/task), i.e. nobody can post work any more. */
int aloop__async_alone(const aloop_t *loop);
/* A library thread that never posts work starts (+1) or ends (-1): not
 * counted as "another thread" by aloop__async_alone. Any thread. */
void aloop__helper_threads(int delta);

/* ---- the loop */
#define ALOOP_STEPS_PER_TICK 64    /* ready steps between timer/poll checks */

struct aloop_io;       /* io.c's state: io_internal.h */

/* Counted as the loop works, for aloop_metrics (loop/metrics.c). */
typedef struct aloop_loop_stats {
    uint64_t iterations, events, tasks_spawned, tasks_done, switches, budget_yields,
        timers_fired;
    double poll_time, lag, lag_max;
} aloop_loop_stats_t;

/* loop->flags: hooks are installed (aloop_set_hooks). Not a config flag:
 * config_valid refuses it from the caller. */
#define ALOOP__HOOKED (1u << 30)
struct aloop_pool;    /* threadpool.c state */

/* task.c's part of the loop (loop->slabs): task structs are carved from
 * page-aligned slabs. */
typedef struct aloop_task_slabs {
    aloop_list_t all;            /* every slab */
    aloop_list_t partial;        /* the slabs with a free slot */
    size_t count;
} aloop_task_slabs_t;

/* debug.c's part of the loop (loop->debug). */
typedef struct aloop_debug {
    aloop_warning_fn warn_fn;    /* NULL: warnings go to stderr */
    void *warn_arg;
    double step_start;           /* monotonic time the running step began */
    aloop_list_t quarantine;     /* freed futures, oldest first (ALOOP__FREED) */
    size_t quarantine_len;
    unsigned dump_seen;          /* aloop__dump_requests at the last dump */
} aloop_debug_t;

struct aloop {
    /* coro.c's part; first, so that the per-thread current loop
     * (aloop__tls_coros) is the loop itself */
    aloop_coros_t coros;

    /* settings */
    int clock;
    unsigned flags;
    aloop_sim_t sim;       /* sim.c: the generator and the faults to inject */

    /* clock */
    double vnow;          /* virtual clock */
    double mono_base;     /* monotonic clock at loop creation */

    aloop_sched_t sched;   /* sched.c's part: the ready ring & co (sched_internal.h) */

    aloop_timers_t timers; /* timer.c's heap */

    aloop_task_impl_t *current;  /* the running task */

    /* state */
    uint8_t running, stopping, closing;
    uint64_t next_task_id;
    size_t task_count;           /* unfinished tasks */
    aloop_list_t tasks;          /* unfinished tasks (linked by fut.live) */
    aloop_task_slabs_t slabs;    /* task.c's part: where task structs come from */
    /* future.c knows nothing of tasks: a task's last release and its name in
     * warnings go through these (set by task.c) */
    void (*task_dispose)(aloop_t *loop, aloop_future_t *f);
    void (*task_label)(const void *task, char *buf, size_t n);
    aloop_list_t futures;        /* every live future and task */
    aloop_list_t owned;          /* aloop_owned_t: objects to cut loose at aloop_free */

    /* subsystems */
    struct aloop_io *io;
    struct aloop_pool *pool;    /* threadpool.c: the worker pool and cross-thread posts */
    const aloop_xthread_ops_t *xthread; /* threadpool.c's, NULL outside init..free */
    struct aloop_signals *signals; /* signal.c; NULL until the first signal wait */
    struct aloop_procs *procs;     /* process.c; NULL until the first spawn */
    struct aloop_scopes *scopes;   /* timeout.c: open scopes; NULL until the first */

    aloop_debug_t debug;         /* debug.c's part (debug mode, dumps) */

    /* aloop_metrics' counters (the rest it reads from the modules) and
     * aloop_set_hooks' hooks, called while flags has ALOOP__HOOKED */
    aloop_loop_stats_t stats;
    aloop_hooks_t hooks;
};

/* loop->running is read by aloop_stop on other threads (to choose between
 * posting the stop and setting it): written atomically. */
static inline void aloop__set_running(aloop_t *loop, uint8_t v) {
    __atomic_store_n(&loop->running, v, __ATOMIC_RELEASE);
}

_Static_assert(offsetof(struct aloop, coros) == 0, "the current loop is its coroutine state");

/* An object of a feature that keeps a pointer to its loop and may outlive
 * it (a stream closed after aloop_free): aloop_free calls detach(), which
 * must forget the loop, so that later calls on the object never touch the
 * freed loop. The object disowns itself when it is freed first. */
typedef struct aloop_owned {
    aloop_list_t link;
    void (*detach)(struct aloop_owned *o);
} aloop_owned_t;
static inline void aloop__loop_own(aloop_t *loop, aloop_owned_t *o);
static inline void aloop__loop_disown(aloop_owned_t *o) { aloop__list_remove(&o->link); }

/* The per-thread current loop: the only global state (aloop__tls_coros,
 * coro_internal.h; struct aloop starts with its coroutine state). */
static inline aloop_t *aloop__tls_loop(void) { return (aloop_t *)(void *)aloop__tls_coros; }
void aloop__set_tls_loop(aloop_t *loop);

/* Debug-mode warning (ALOOP_DEBUG): printf-like, to the loop's warning
 * handler or stderr (debug.c). */
void aloop__warn(aloop_t *loop, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- simulation (base/sim.c; the system-call layer is sys_internal.h) */
/* A simulated loop met a failure (what: "task 'X' failed: ..."): warns
 * with the replay line, once per loop; nothing if loop is not simulated
 * (debug.c). */
void aloop__sim_report(aloop_t *loop, const char *what);
/* Simulation's delay of a readiness, accept or connect the task t waited
 * for: yields a seeded number of times, or not at all. 0 or -ECANCELED
 * (io.c). */
int aloop__io_sim_delay(aloop_task_impl_t *t);

/* ---- debug mode (debug.c). Callers test loop->flags & ALOOP_DEBUG first. */
#define ALOOP_SLOW_STEP 0.1          /* seconds of wall time a step may take */
#define ALOOP_QUARANTINE_MAX 4096    /* freed futures kept to catch double releases */
/* A task step ends (t suspends, yields or returns) / begins from the loop. */
void aloop__debug_step_end(aloop_t *loop, aloop_task_impl_t *t);
void aloop__debug_step_begin(aloop_t *loop);
/* t spent its cooperative budget: its step ends, and the run time it has
 * piled up since it last really suspended is checked as one step. */
void aloop__debug_coop_yield(aloop_t *loop, aloop_task_impl_t *t);
/* Keeps a freed (detached) future instead of freeing it. */
void aloop__debug_keep_freed(aloop_t *loop, aloop_future_t *f);
/* aloop_release with refs == 0: reported in debug mode, else abort. */
void aloop__debug_bad_release(aloop_future_t *f);
void aloop__debug_init(aloop_t *loop);
void aloop__debug_free(aloop_t *loop);
/* Dumps asked for by signal (aloop_dump_on_signal, dumpsig.c): the signal
 * handler bumps this count and wakes every loop; a loop whose dump_seen
 * differs dumps itself to stderr at its next drain (debug.c). Process-wide
 * by nature, like the signal disposition it stands for. */
extern unsigned aloop__dump_requests;
void aloop__dump_requested(aloop_t *loop);
static inline void aloop__dump_check(aloop_t *loop) {
    if (ALOOP_UNLIKELY(__atomic_load_n(&aloop__dump_requests, __ATOMIC_RELAXED) != loop->debug.dump_seen))
        aloop__dump_requested(loop);
}
/* dumpsig.c: ALOOP_DUMP_SIGNAL from the environment (read when a loop is
 * made); the handler wakes the loops through the registry. */
void aloop__dumpsig_from_env(void);
/* ---- hooks (aloop_set_hooks): a task is spawned, switched in, switched
 * out, done. Callers test loop->flags & ALOOP__HOOKED first. */
static inline void aloop__hook_spawn(aloop_t *loop, aloop_task_impl_t *t) {
    if (loop->hooks.spawn) loop->hooks.spawn(&t->fut, loop->hooks.arg);
}
static inline void aloop__hook_resume(aloop_t *loop, aloop_task_impl_t *t) {
    if (loop->hooks.resume) loop->hooks.resume(&t->fut, loop->hooks.arg);
}
static inline void aloop__hook_suspend(aloop_t *loop, aloop_task_impl_t *t) {
    if (loop->hooks.suspend) loop->hooks.suspend(&t->fut, loop->hooks.arg);
}
static inline void aloop__hook_done(aloop_t *loop, aloop_task_impl_t *t) {
    if (loop->hooks.done) loop->hooks.done(&t->fut, loop->hooks.arg);
}

/* ---- misuse: the one policy (its rules: error.c). aloop__misuse returns
 * err (-EPERM / -EINVAL); in loop's debug mode it prints "aloop: <call>:
 * <message>" and aborts. err == 0: the call cannot report an error; the
 * message is printed and the caller does nothing. */
static inline int aloop__debug_on(const aloop_t *loop) {
    if (ALOOP_LIKELY(!loop || !(loop->flags & ALOOP_DEBUG))) return 0;
    /* debug mode aborts: a simulated loop first says how to replay it */
    aloop__sim_report((aloop_t *)(uintptr_t)loop, "misuse, aborting");
    return 1;
}
#define aloop__misuse(loop, err, call, ...) \
    aloop__misuse_at(aloop__debug_on(loop), (err), (call), __VA_ARGS__)
/* A loop used from a thread other than the one running it (-EPERM). */
static inline int aloop__wrong_thread(const aloop_t *loop, const char *call) {
    return aloop__wrong_thread_at(aloop__debug_on(loop), loop, call);
}
/* An object owned by `owner` used with loop `here`, or after its loop was
 * freed (owner NULL): -EINVAL. */
static inline int aloop__foreign_loop(const aloop_t *owner, const aloop_t *here,
                                      const char *call) {
    return aloop__foreign_loop_at(aloop__debug_on(owner ? owner : here), owner, here, call);
}
/* The same-loop check of every call on an object: 0, or -EINVAL (misuse). */
static inline int aloop__check_loop(const aloop_t *owner, const char *call) {
    const aloop_t *cur = aloop__tls_loop();
    if (ALOOP_LIKELY(owner && (!cur || cur == owner))) return 0;
    return aloop__foreign_loop(owner, cur, call);
}
/* The entry of every call on an object of a loop (obj; owner its loop,
 * NULL once that loop was freed): -EINVAL for a NULL obj (a bad argument,
 * never misuse), misuse -EINVAL for an object of another loop or of a
 * freed one, else 0. aloop__use is the non-suspending calls' entry;
 * aloop__enter_obj adds aloop__enter for the suspending ones (the running
 * task, or NULL with *err). The _on macros take the owner from obj->loop. */
static inline int aloop__use(const void *obj, const aloop_t *owner, const char *call) {
    if (ALOOP_UNLIKELY(!obj)) return -EINVAL;
    return aloop__check_loop(owner, call);
}
aloop_task_impl_t *aloop__enter(int *err);
static inline aloop_task_impl_t *aloop__enter_obj(const void *obj, const aloop_t *owner,
                                                  const char *call, int *err) {
    if (ALOOP_UNLIKELY((*err = aloop__use(obj, owner, call)) < 0)) return NULL;
    return aloop__enter(err);
}
#define aloop__use_on(obj, call) aloop__use((obj), (obj) ? (obj)->loop : NULL, (call))
#define aloop__enter_on(obj, call, err) \
    aloop__enter_obj((obj), (obj) ? (obj)->loop : NULL, (call), (err))
static inline int aloop__foreign_thread(const aloop_t *loop) {
    return ALOOP_UNLIKELY(loop->running) && aloop__tls_loop() != loop;
}

/* ---- the ready ring's hot calls (sched.c), inline: a spawn + await makes
 * five of them, and they are a few instructions each */

/* Makes a runnable ready (a task's first step or wake-up, a callback). */
static inline void aloop__make_ready(aloop_t *loop, aloop_runnable_t *r) {
    loop->sched.ring[(loop->sched.ring_head + loop->sched.ring_count) & (loop->sched.ring_cap - 1)] = r;
    loop->sched.ring_count++;
}

/* Ensures the ready ring can hold one more runnable than now exist, so that
 * pushing never fails; call when creating a runnable. 0 or -ENOMEM. */
static inline int aloop__reserve_runnable(aloop_t *loop) {
    if (ALOOP_UNLIKELY(loop->sched.runnables + 1 >= loop->sched.ring_cap) && aloop__ring_grow(loop) < 0)
        return -ENOMEM;
    loop->sched.runnables++;
    return 0;
}

static inline void aloop__release_runnable(aloop_t *loop) { loop->sched.runnables--; }

/* Takes the runnable at the front of the ring (which must not be empty). */
static inline aloop_runnable_t *aloop__ring_pop(aloop_t *loop) {
    aloop_runnable_t *r = loop->sched.ring[loop->sched.ring_head];
    loop->sched.ring_head = (loop->sched.ring_head + 1) & (loop->sched.ring_cap - 1);
    loop->sched.ring_count--;
    return r;
}

/* Arms / disarms a timer in the loop's heap (sched.c fires the due ones). */
static inline int aloop__timer_start(aloop_t *loop, aloop_timer_t *t, double when) {
    return aloop__timers_insert(&loop->timers, t, when);
}
static inline void aloop__timer_stop(aloop_t *loop, aloop_timer_t *t) {
    aloop__timers_remove(&loop->timers, t);
}

/* Work from other threads, through the hooks threadpool.c installs. Without
 * them (only outside aloop_new_with..aloop_free) nothing can come. */
static inline size_t aloop__xthread_pending(const aloop_t *loop) {
    return loop->xthread ? loop->xthread->pending(loop) : 0;
}
/* Also where a dump asked for by signal (aloop_dump_on_signal) happens:
 * every wake-up of the loop drains, and so does every tick. */
static inline void aloop__xthread_drain(aloop_t *loop) {
    if (loop->xthread) loop->xthread->drain(loop);
    aloop__dump_check(loop);
}
static inline int aloop__xthread_alone(const aloop_t *loop) {
    return loop->xthread ? loop->xthread->alone(loop) : 1;
}
static inline void aloop__xthread_stop(aloop_t *loop) {
    if (loop->xthread) loop->xthread->stop(loop);
}

static inline void aloop__loop_own(aloop_t *loop, aloop_owned_t *o) {
    aloop__list_push_back(&loop->owned, &o->link);
}

#endif /* ALOOP_INTERNAL_H */

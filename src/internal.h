/*
 * internal.h - declarations shared by libaloop's sources. Not installed.
 *
 * The big picture: one struct aloop per loop holds every piece of state. A
 * task runs on a coroutine (coro.c) with its own stack. When it suspends it
 * fills a wait record on its own stack (struct aloop_wait), registers it
 * with whatever will wake it (a timer, a future, a queue, an fd) and calls
 * aloop__suspend(). Waking means pushing the task on the ready ring
 * (sched.c); cancelling means unregistering the wait record and waking the
 * task with -ECANCELED.
 */
#ifndef ALOOP_INTERNAL_H
#define ALOOP_INTERNAL_H

#include "aloop.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALOOP_UNUSED(x) ((void)(x))
#define ALOOP_CONTAINER_OF(p, type, member) \
    ((type *)(void *)((char *)(p) - offsetof(type, member)))

#if defined(__GNUC__)
#define ALOOP_LIKELY(x) __builtin_expect(!!(x), 1)
#define ALOOP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ALOOP_NOINLINE __attribute__((noinline))
#else
#define ALOOP_LIKELY(x) (x)
#define ALOOP_UNLIKELY(x) (x)
#define ALOOP_NOINLINE
#endif

/* ---- allocation (alloc.c): every allocation goes through these, so the
 * fault-injection hook can make the Nth one fail. */
void *aloop__malloc(size_t n);
void *aloop__calloc(size_t count, size_t n);
void *aloop__realloc(void *p, size_t n);
char *aloop__strdup(const char *s);
void aloop__free(void *p);
/* Test hook: the nth allocation from now (1 = the next) and every one after
 * it fail while fail_count > 0 (fail_count < 0 = for ever). 0 disables. */
void aloop__test_fail_alloc(long nth, long fail_count);
/* Test hook: number of allocations made so far (for sweeping nth). */
unsigned long aloop__test_alloc_count(void);

/* ---- intrusive doubly linked list (circular, with a sentinel head) */
typedef struct aloop_list {
    struct aloop_list *prev, *next;
} aloop_list_t;

static inline void aloop__list_init(aloop_list_t *l) { l->prev = l->next = l; }
static inline int aloop__list_empty(const aloop_list_t *l) { return l->next == l; }
static inline void aloop__list_push_back(aloop_list_t *l, aloop_list_t *n) {
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}
static inline void aloop__list_push_front(aloop_list_t *l, aloop_list_t *n) {
    n->next = l->next;
    n->prev = l;
    l->next->prev = n;
    l->next = n;
}
/* Unlinks n and leaves it self-linked, so removing twice is harmless. */
static inline void aloop__list_remove(aloop_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline aloop_list_t *aloop__list_pop_front(aloop_list_t *l) {
    aloop_list_t *n = l->next;
    if (n == l) return NULL;
    aloop__list_remove(n);
    return n;
}

/* ---- runnables: what the ready ring holds */
enum aloop_run_kind {
    ALOOP_RUN_TASK,     /* resume (or start) a task */
    ALOOP_RUN_HANDLE,   /* call_soon / call_later callback */
    ALOOP_RUN_CALLBACK, /* a future's done callback */
};
typedef struct aloop_runnable {
    uint8_t kind;
} aloop_runnable_t;

/* ---- timers (timer.c): a 4-ary min-heap on (when, seq); seq makes equal
 * deadlines fire in the order they were set. Timers are embedded in their
 * owners (a wait record, a handle), so arming one never allocates unless the
 * heap array must grow. */
typedef struct aloop_timer {
    double when;
    uint64_t seq;
    size_t index; /* position in the heap; SIZE_MAX when not armed */
    void (*fire)(struct aloop_timer *t);
} aloop_timer_t;

/* A timer's heap key, kept in an array parallel to the heap (timer.c). */
typedef struct aloop_timer_key {
    double when;
    uint64_t seq;
} aloop_timer_key_t;

void aloop__timer_init(aloop_timer_t *t, void (*fire)(aloop_timer_t *));
int aloop__timer_start(aloop_t *loop, aloop_timer_t *t, double when); /* 0 / -ENOMEM */
void aloop__timer_stop(aloop_t *loop, aloop_timer_t *t);              /* idempotent */
static inline int aloop__timer_armed(const aloop_timer_t *t) { return t->index != SIZE_MAX; }
/* Fires every timer due at or before now, in (when, seq) order. */
void aloop__timers_run(aloop_t *loop, double now);
/* Deadline of the earliest timer, or -1 if none. */
double aloop__timers_next(const aloop_t *loop);
void aloop__timers_free(aloop_t *loop);

/* ---- coroutines (coro.c) */
/* The same layout whatever the build's context switch, so code compiled
 * without the library's definitions (tests, benchmarks) agrees on it. */
typedef struct aloop_ctx {
    void *sp; /* saved stack pointer (asm switch) */
    void *uc; /* ucontext_t * (ucontext switch), allocated with the coroutine */
} aloop_ctx_t;

typedef struct aloop_coro {
    aloop_ctx_t ctx;
    struct aloop_coro *next_idle; /* in the loop's idle pool */
    struct aloop_future *task;    /* task this coroutine runs, NULL when idle */
    struct aloop_stack_chunk *chunk; /* the mapping the stack is carved from (coro.c) */
    char *map;                    /* its slot in the chunk, guard page included */
    size_t map_size;
    char *stack_lo;               /* usable stack: [stack_lo, stack_lo + stack_size) */
    size_t stack_size;
    void *asan_fake_stack;
    unsigned valgrind_id;
} aloop_coro_t;

/* The context a loop runs on (the caller's thread stack). */
typedef struct aloop_main_ctx {
    aloop_ctx_t ctx;
    void *asan_fake_stack;
    const void *stack_lo; /* learned from ASan on the first switch back */
    size_t stack_size;
    int switch_from_main; /* ASan: the switch under way started here */
} aloop_main_ctx_t;

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALOOP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ALOOP_ASAN 1
#endif
#if !defined(ALOOP_CONTEXT_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define ALOOP_CONTEXT_UCONTEXT 1
#endif
/* The plain asm switch is inlined into the scheduler; ASan's annotations
 * and swapcontext's signal-mask care live out of line in coro.c. */
#if defined(ALOOP_CONTEXT_UCONTEXT) || defined(ALOOP_ASAN)
#define ALOOP_SWITCH_OUT_OF_LINE 1
#else
#define ALOOP_SWITCH_OUT_OF_LINE 0
#endif

int aloop__coro_new(aloop_t *loop, aloop_coro_t **out); /* 0 / -ENOMEM */
void aloop__coro_free(aloop_coro_t *co);
int aloop__main_ctx_init(aloop_t *loop);
void aloop__main_ctx_free(aloop_t *loop);
/* Switches from the running context (a coroutine, or the loop's main context
 * when from == NULL) to `to` (or to the main context when to == NULL). */
#if ALOOP_SWITCH_OUT_OF_LINE
void aloop__coro_switch(aloop_t *loop, aloop_coro_t *from, aloop_coro_t *to);
#else
static inline void aloop__coro_switch(aloop_t *loop, aloop_coro_t *from, aloop_coro_t *to);
#endif
/* Called on a fresh coroutine's stack: runs tasks for ever (sched.c). */
void aloop__coro_body(aloop_t *loop, aloop_coro_t *co);
/* Process-wide: SIGSEGV handler on an alternate stack that names a task
 * whose stack overflowed into its guard page. */
void aloop__install_overflow_handler(void);
int aloop__thread_altstack(void);

/* ---- futures and tasks (future.c, task.c) */
enum aloop_fut_state {
    ALOOP_PENDING = 0, ALOOP_DONE, ALOOP_CANCELLED,
    ALOOP_FREED /* debug mode: released for good, kept in quarantine (debug.c) */
};

/* Something to do when a future completes. fire() is called synchronously
 * from completion, after the node was unlinked; it must not run user code
 * (schedule it instead). */
typedef struct aloop_fut_waiter {
    aloop_list_t link;
    void (*fire)(struct aloop_fut_waiter *w, aloop_future_t *f);
} aloop_fut_waiter_t;

/* A wait record: one per suspension, on the suspended task's stack. */
typedef struct aloop_wait {
    /* Called when the task is cancelled while suspended: unregister from
     * whatever would wake it. The task is then woken with -ECANCELED. NULL
     * for waits that do their own cancel handling (see `awaiting`). */
    void (*cancel)(struct aloop_wait *w);
    /* If set, cancelling the task cancels this future instead, and the task
     * stays suspended until the future is done (await semantics). */
    aloop_future_t *awaiting;
    int result;   /* set by the waker */
    void *data;   /* for the waiter's own use */
    const char *what; /* what is waited for, for aloop_dump (optional) */
} aloop_wait_t;

struct aloop_future {
    aloop_runnable_t run; /* ALOOP_RUN_TASK for tasks (must stay first) */
    uint8_t state;        /* enum aloop_fut_state */
    uint8_t is_task;
    uint8_t error_retrieved;
    unsigned refs;
    int error;            /* 0, or negative errno (-ECANCELED if cancelled) */
    void *result;
    aloop_t *loop;        /* NULL once the loop was freed (detached) */
    aloop_list_t waiters; /* aloop_fut_waiter_t, in registration order */
    aloop_list_t live;    /* loop->futures */
};

typedef struct aloop_task {
    struct aloop_future fut;
    aloop_task_fn fn;
    void *arg;
    aloop_coro_t *coro;
    aloop_wait_t *wait;  /* set while suspended and not yet woken */
    int cancel_requests; /* asyncio's _num_cancels_requested */
    uint8_t must_cancel; /* a cancel is waiting to be delivered */
    uint8_t started;
    uint8_t queued;      /* on the ready ring */
    int fail_error;      /* set by aloop_fail() */
    uint64_t id;         /* for "Task-N" */
    char *name;          /* NULL = "Task-<id>", formatted on demand */
    char name_buf[24];
    aloop_list_t tasks;  /* loop->tasks while unfinished */
    const void *spawn_site; /* aloop_spawn's caller, for aloop_dump */
    /* Cooperative budget (sched.c): suspending calls entered since the task
     * last really suspended. Counting up from 0 means a zeroed task struct
     * starts with a full budget. */
    unsigned coop_used;
    struct aloop_task *next_deferred; /* on loop->deferred (budget spent) */
    double busy; /* debug mode: run time since the task last really suspended */
} aloop_task_impl_t;

static inline aloop_task_impl_t *aloop__task(aloop_future_t *f) {
    return (aloop_task_impl_t *)(void *)f;
}

void aloop__future_init(aloop_future_t *f, aloop_t *loop);
/* Completes f (state, error, result) and fires its waiters. -EINVAL if done. */
int aloop__future_complete(aloop_future_t *f, int state, int error, void *result);
void aloop__future_add_waiter(aloop_future_t *f, aloop_fut_waiter_t *w);
void aloop__future_remove_waiter(aloop_fut_waiter_t *w);
void aloop__future_destroy(aloop_future_t *f); /* refs reached 0 */
/* Runs a scheduled done callback (a runnable of kind ALOOP_RUN_CALLBACK). */
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
#define ALOOP_COOP_BUDGET 128u
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
/* Suspends the running task until aloop__wake(). Returns w->result, or
 * -ECANCELED if a cancel arrived after the wake-up (consumed; the caller
 * must undo whatever the wake-up granted, e.g. hand an item back). */
int aloop__suspend(aloop_task_impl_t *t, aloop_wait_t *w);
/* Wakes a suspended task: its aloop__suspend returns result. */
void aloop__wake(aloop_task_impl_t *t, int result);
/* Puts the running task at the back of the ready ring and lets the others
 * run: 0, or -ECANCELED if cancelled meanwhile. */
int aloop__yield(aloop_task_impl_t *t);
/* aloop_free's first half: cancel every task and run until none is left. */
void aloop__drain_tasks(aloop_t *loop);
/* aloop__make_ready, aloop__reserve_runnable and aloop__release_runnable
 * are inline, after struct aloop at the end of this file. */
/* Doubles the ready ring (the slow half of aloop__reserve_runnable). */
int aloop__ring_grow(aloop_t *loop);
/* Completion of the running task (called on its coroutine). */
void aloop__task_finish(aloop_task_impl_t *t, void *result);
/* A released task struct goes back to the loop's pool (1) unless the pool
 * is full (0: free it); loop teardown frees the pool (task.c). */
int aloop__task_recycle(aloop_t *loop, aloop_task_impl_t *t);
void aloop__task_pool_free(aloop_t *loop);
/* Request cancellation of a task (task.c). */
int aloop__task_cancel(aloop_task_impl_t *t);
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

/* ---- the poller seam (poll_epoll.c / poll_kqueue.c / poll_poll.c, io.c).
 * The scheduler only knows these calls. */
int aloop__poller_init(aloop_t *loop);
void aloop__poller_free(aloop_t *loop);
/* Waits up to timeout seconds (< 0: for ever; 0: just look) for readiness
 * and wakes the tasks concerned. Returns the number of events or -errno. */
int aloop__poller_poll(aloop_t *loop, double timeout);
/* Number of registered waits: while > 0 the loop stays alive. */
size_t aloop__poller_pending(const aloop_t *loop);

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
enum { ALOOP_IO_READ = 1u, ALOOP_IO_WRITE = 2u, ALOOP_IO_ERROR = 4u };

struct aloop_io_waiter; /* io.c, on the waiting task's stack */
typedef void (*aloop_io_hook_fn)(aloop_t *loop, int fd);

typedef struct aloop_io_watch {
    struct aloop_io_waiter *waiter[2]; /* [0] reader, [1] writer */
    aloop_io_hook_fn hook;             /* internal reader, or NULL */
    uint8_t wanted;                    /* ALOOP_IO_READ | ALOOP_IO_WRITE */
    uint8_t registered;                /* what the backend watches now */
    uint8_t flags;                     /* io.c's ALOOP_WATCH_* bits */
    int slot;                          /* backend's own index (poll(2)); -1 */
} aloop_io_watch_t;

struct aloop_io {
    aloop_io_watch_t *watches; /* indexed by fd */
    size_t nwatches;
    int *dirty;                /* fds whose registration may shrink; same capacity */
    size_t ndirty;
    size_t waits;              /* tasks waiting on fds */
    size_t holds;              /* other waits keeping the loop alive (signals) */
    void *backend;             /* poll_<backend>.c state */
    void *signals;             /* signal.c state, or NULL */
};

/* Backend interface (exactly one poll_<backend>.c is compiled). */
int aloop__backend_init(aloop_t *loop);
void aloop__backend_free(aloop_t *loop);
/* Changes what the backend watches on fd from old_mask to new_mask (either may
 * be 0). 0 or -errno; -EPERM means fd cannot be polled (a regular file). */
int aloop__backend_set(aloop_t *loop, int fd, unsigned old_mask, unsigned new_mask);
/* Waits up to timeout seconds (< 0: for ever) and calls aloop__io_ready()
 * for each event. Number of events, or -errno. */
int aloop__backend_wait(aloop_t *loop, double timeout);

/* io.c: readiness on fd (ALOOP_IO_* bits). Only wakes tasks and calls hooks. */
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
/* Waits other than fd waits that keep the loop alive (+1 / -1). */
void aloop__io_hold(aloop_t *loop, int delta);

/* Read / write with the task t (already past aloop__enter): try the
 * syscall, wait on EAGAIN. For stream.c. */
ssize_t aloop__io_read(aloop_task_impl_t *t, int fd, void *buf, size_t len);
ssize_t aloop__io_write_all(aloop_task_impl_t *t, int fd, const void *buf, size_t len);

/* ---- signals (signal.c): state hangs off loop->io->signals */
void aloop__signal_free(aloop_t *loop);

/* ---- cross-thread wake-ups (threadpool.c) */
int aloop__async_init(aloop_t *loop);
void aloop__async_free(aloop_t *loop);
/* Runs callbacks queued by other threads. */
void aloop__async_drain(aloop_t *loop);
/* Work outstanding on other threads that will come back (keeps the loop alive). */
size_t aloop__async_pending(const aloop_t *loop);

/* ---- the loop */
#define ALOOP_DEFAULT_STACK (256u * 1024u)
#define ALOOP_MIN_STACK (16u * 1024u)
#define ALOOP_IDLE_CORO_MAX 1024   /* parked coroutines kept for reuse */
#define ALOOP_TASK_POOL_MAX 1024   /* freed task structs kept for reuse */
#define ALOOP_STEPS_PER_TICK 64    /* ready steps between timer/poll checks */

struct aloop_io;       /* io.c / poll_*.c state */
struct aloop_async;    /* threadpool.c state */

struct aloop {
    /* settings */
    int clock;
    unsigned flags;
    size_t stack_size;
    size_t page_size;

    /* clock */
    double vnow;          /* virtual clock */
    double mono_base;     /* monotonic clock at loop creation */

    /* ready ring: FIFO of runnables; cap is a power of two and always
     * exceeds the number of runnables in existence, so pushes never fail */
    aloop_runnable_t **ring;
    size_t ring_head, ring_count, ring_cap;
    size_t runnables;     /* runnables in existence (tasks, handles, callbacks) */

    /* timers */
    aloop_timer_t **heap;
    aloop_timer_key_t *heap_keys; /* heap[i]'s (when, seq), for cache-friendly sifting */
    size_t heap_len, heap_cap;
    uint64_t timer_seq;

    /* coroutines */
    aloop_main_ctx_t main;
    void *uc_template; /* ucontext_t: getcontext() once; makecontext starts from copies */
    aloop_coro_t *running_coro;  /* NULL while on the main context */
    aloop_task_impl_t *current;  /* the running task */
    aloop_coro_t *idle;          /* parked coroutines, ready for reuse */
    size_t idle_count;
    aloop_coro_t *zombie;        /* to free once off its stack */
    aloop_list_t stack_chunks;   /* stack chunks with a free slot (coro.c) */
    unsigned budget;             /* steps left before the next tick */
    /* tasks that spent their cooperative budget: FIFO, made ready after the
     * next poll and timers (tail valid only when head != NULL) */
    struct aloop_task *deferred_head, *deferred_tail;

    /* state */
    uint8_t running, stopping, closing;
    uint64_t next_task_id;
    size_t task_count;           /* unfinished tasks */
    aloop_list_t tasks;          /* unfinished tasks */
    aloop_list_t task_pool;      /* freed task structs for reuse, linked by `tasks` */
    size_t task_pool_len;
    aloop_list_t futures;        /* every live future and task */

    /* subsystems */
    struct aloop_io *io;
    struct aloop_async *async;

    /* debug mode (debug.c) */
    aloop_warning_fn warn_fn;    /* NULL: warnings go to stderr */
    void *warn_arg;
    double step_start;           /* monotonic time the running step began */
    aloop_list_t quarantine;     /* freed futures, oldest first (ALOOP_FREED) */
    size_t quarantine_len;
};

/* The per-thread current loop: the only global state. */
aloop_t *aloop__tls_loop(void);
void aloop__set_tls_loop(aloop_t *loop);

/* Debug-mode warning (ALOOP_DEBUG): printf-like, to the loop's warning
 * handler or stderr (debug.c). */
void aloop__warn(aloop_t *loop, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

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
void aloop__debug_free(aloop_t *loop);
/* A loop used from a thread other than the one running it: -EPERM, or an
 * abort with a message in debug mode. */
int aloop__wrong_thread(aloop_t *loop, const char *call);
static inline int aloop__foreign_thread(const aloop_t *loop) {
    return ALOOP_UNLIKELY(loop->running) && aloop__tls_loop() != loop;
}

/* ---- the ready ring's hot calls (sched.c), inline: a spawn + await makes
 * five of them, and they are a few instructions each */

/* Makes a runnable ready (a task's first step or wake-up, a callback). */
static inline void aloop__make_ready(aloop_t *loop, aloop_runnable_t *r) {
    loop->ring[(loop->ring_head + loop->ring_count) & (loop->ring_cap - 1)] = r;
    loop->ring_count++;
}

/* Ensures the ready ring can hold one more runnable than now exist, so that
 * pushing never fails; call when creating a runnable. 0 or -ENOMEM. */
static inline int aloop__reserve_runnable(aloop_t *loop) {
    if (ALOOP_UNLIKELY(loop->runnables + 1 >= loop->ring_cap) && aloop__ring_grow(loop) < 0)
        return -ENOMEM;
    loop->runnables++;
    return 0;
}

static inline void aloop__release_runnable(aloop_t *loop) { loop->runnables--; }

#ifndef ALOOP_CONTEXT_UCONTEXT
/* coro.c: saves the callee-saved registers, stores sp in *save_sp, loads
 * load_sp and returns into what was saved there. */
void aloop__ctx_swap(void **save_sp, void *load_sp);
#endif
#if !ALOOP_SWITCH_OUT_OF_LINE
static inline void aloop__coro_switch(aloop_t *loop, aloop_coro_t *from, aloop_coro_t *to) {
    void **save = from ? &from->ctx.sp : &loop->main.ctx.sp;
    void *load = to ? to->ctx.sp : loop->main.ctx.sp;
    loop->running_coro = to;
    aloop__ctx_swap(save, load);
}
#endif

#endif /* ALOOP_INTERNAL_H */

/*
 * aloop.h - libaloop: Python's asyncio, in C.
 *
 * One single-threaded event loop runs many tasks; each task is a plain C
 * function on its own small stack and is written as straight-line code:
 *
 *     static void *count(void *arg) {
 *         for (int n = 3; n > 0; n--) {
 *             if (aloop_sleep(0.5) < 0) return NULL;   // -ECANCELED
 *             printf("%s = %d\n", (char *)arg, n);
 *         }
 *         return NULL;
 *     }
 *     ...
 *     aloop_main(main_task, NULL, NULL);
 *
 * Conventions (they hold for every call below):
 *  - Calls that can fail return 0 (or a count) on success and a negative
 *    errno value on failure (-ECANCELED, -ETIMEDOUT, -ENOMEM, -EINVAL, ...).
 *    aloop_strerror() turns one into text.
 *  - Constructors (calls that return a new object) return NULL on failure
 *    with errno set: ENOMEM, EINVAL for bad arguments, and the other
 *    reasons the call lists (aloop_process_spawn, aloop_group_spawn, ...).
 *  - Getters never fail loudly on NULL: a predicate (1/0) or a count
 *    answers 0, a getter of an fd, a pid or another int -EINVAL, a name
 *    NULL. (aloop_timeout_expired also reports a scope that is not valid:
 *    -EINVAL.)
 *  - "Suspending" calls may only be made from inside a task; from outside one
 *    they return -EPERM and do nothing.
 *  - Every suspending call is a cancellation point: if the task is cancelled
 *    while suspended (or a cancel is pending when the call is made) the call
 *    returns -ECANCELED and undoes what it had started.
 *  - Times are double seconds on the loop's clock (monotonic, or virtual).
 *  - Futures and tasks are reference counted: a constructor hands the caller
 *    one reference, aloop_release() drops it.
 *  - A loop and everything made from it belong to the thread that runs the
 *    loop; only aloop_call_soon_threadsafe(), aloop_run_threadsafe() and
 *    aloop_stop() may be called from elsewhere.
 *
 * Contents (the sections below, in this order):
 *   1. Loop and embedding
 *   2. Futures and tasks
 *   3. Waiting
 *   4. Task groups
 *   5. Synchronisation
 *   6. Queues
 *   7. Callbacks, timers and fd watches
 *   8. fd I/O
 *   9. Sockets
 *  10. Streams and servers
 *  11. Files
 *  12. Threads
 *  13. Signals and subprocesses
 *  14. Errors and debug mode
 */
#ifndef ALOOP_H
#define ALOOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/select.h> /* sigset_t (POSIX defines it there too; <signal.h> does not in strict C) */

#ifdef __cplusplus
extern "C" {
#endif

/* ALOOP_API: on Windows the DLL exports while it is built (ALOOP_BUILDING,
 * set by the build) and its users import; users of the static library
 * define ALOOP_STATIC (the CMake target aloop::aloop_static does). Elsewhere
 * only the library's own symbols are visible (-fvisibility=hidden). */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(ALOOP_STATIC)
#define ALOOP_API
#elif defined(ALOOP_BUILDING)
#define ALOOP_API __declspec(dllexport)
#else
#define ALOOP_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define ALOOP_API __attribute__((visibility("default")))
#else
#define ALOOP_API
#endif

#define ALOOP_VERSION_MAJOR 0
#define ALOOP_VERSION_MINOR 1
#define ALOOP_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
ALOOP_API const char *aloop_version(void);

/* ------------------------------------------------------------------------ */
/* 1. Loop and embedding                                                    */
/* ------------------------------------------------------------------------ */

typedef struct aloop aloop_t;
typedef struct aloop_future aloop_future_t;
typedef struct aloop_future aloop_task_t; /* a task is a future */
/* A task's function: runs on the task's own stack (256 KiB by default,
 * aloop_config_t.stack_size) with a 64 KiB guard gap below it. Keep every
 * frame (locals, alloca, VLAs) well under 64 KiB: a bigger one can jump the
 * gap into another task's stack, unless the code is built with
 * -fstack-clash-protection (off by default in Debian's gcc). Put large
 * buffers on the heap. */
typedef void *(*aloop_task_fn)(void *arg);

enum { ALOOP_CLOCK_MONOTONIC = 0, ALOOP_CLOCK_VIRTUAL = 1 };
enum {
    ALOOP_NO_GUARD_PAGES = 1u << 0, /* no guard page under task stacks */
    ALOOP_DEBUG = 1u << 1           /* warnings: slow steps, lost errors */
};

/* Simulation faults (aloop_config_t.sim_faults, ALOOP_SIM): what a
 * simulated loop injects at the library's system calls, each with
 * probability sim_rate per eligible call (guide: "Simulation"). */
#define ALOOP_SIM_SHORT_IO 0x01u /* reads and writes of byte streams move fewer bytes (>= 1) */
#define ALOOP_SIM_EINTR    0x02u /* a system call fails once with EINTR (the library retries) */
#define ALOOP_SIM_SPURIOUS 0x04u /* a wait reports an fd ready when it is not */
#define ALOOP_SIM_DELAY    0x08u /* readiness, connects and accepts come a few loop passes later */
#define ALOOP_SIM_BENIGN   0x0fu /* the four above: nothing a program sees changes */
#define ALOOP_SIM_RESET    0x10u /* stream sockets fail with ECONNRESET / EPIPE */
#define ALOOP_SIM_ENOMEM   0x20u /* the library's allocations fail */

/* A zero-initialised config means "all defaults". New fields are only ever
 * added at the end, so a designated initialiser written for an older
 * version keeps its meaning. */
typedef struct aloop_config {
    size_t stack_size; /* per task; 0 = 256 KiB of address space, committed lazily */
    int clock;         /* ALOOP_CLOCK_MONOTONIC (default) or ALOOP_CLOCK_VIRTUAL */
    unsigned flags;    /* ALOOP_NO_GUARD_PAGES, ALOOP_DEBUG */
    /* Simulation: nonzero turns it on with this seed. 0 = off, unless
     * ALOOP_SIM is set in the environment (then sim_faults and sim_rate
     * are ignored and the environment decides). */
    uint64_t sim_seed;
    unsigned sim_faults; /* ALOOP_SIM_* to inject; 0 = none (seeded, but no faults) */
    double sim_rate;     /* probability per eligible call, 0..1; 0 = 0.05 */
} aloop_config_t;

/* Replaces the allocator the library uses for its memory (libuv's
 * uv_replace_allocator): jemalloc, an arena, accounting, failure
 * injection. Process-wide; only before the first aloop_new / aloop_new_with
 * of the process (of any thread): -EBUSY afterwards. All three functions,
 * or all three NULL (back to malloc, realloc, free); -EINVAL otherwise.
 * Task stacks and the task slabs are mapped with mmap, not allocated here.
 * Buffers the library hands over (aloop_read_file, aloop_process_
 * communicate) come from malloc_fn / realloc_fn: free them with free_fn. */
ALOOP_API int aloop_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                                  void (*free_fn)(void *));

/* New loop with default settings. */
ALOOP_API aloop_t *aloop_new(void);

/* New loop; NULL cfg = defaults. NULL + EINVAL for an unknown clock, flag
 * or simulation fault, a stack size below 16 KiB, or a sim_rate outside
 * 0..1. The environment can add to cfg (as with aloop_new): ALOOP_DEBUG=1
 * sets the ALOOP_DEBUG flag, ALOOP_CLOCK=virtual makes the clock
 * ALOOP_CLOCK_VIRTUAL (so a program's timeline can be tested without
 * waiting; ALOOP_CLOCK=monotonic or unset: cfg decides), and
 * ALOOP_SIM=SEED[:FAULTS[:RATE]] turns simulation on for a loop whose
 * cfg->sim_seed is 0 (FAULTS: a comma list of short, eintr, spurious,
 * delay, benign, reset, enomem; default benign. RATE: default 0.05; a
 * malformed value is reported on stderr and ignored). */
ALOOP_API aloop_t *aloop_new_with(const aloop_config_t *cfg);

/* The seed of a simulated loop (from its config or ALOOP_SIM), 0 if loop
 * is not simulated or NULL. Same seed, faults, rate and program, on the
 * virtual clock and with no peer outside the loop: the same decisions and
 * the same events. Under simulation a task that fails (completes with an
 * error other than -ECANCELED), or a debug-mode abort, reports once per
 * loop, through the warning handler (default: stderr), a line ending in
 * "replay: ALOOP_SIM=SEED:FAULTS:RATE" that reproduces the run. */
ALOOP_API uint64_t aloop_sim_seed(const aloop_t *loop);

/* Cancels every unfinished task, runs the loop until they have all finished
 * (while it does, every suspending call fails with -ECANCELED at once, so
 * cleanup code cannot block, and call_soon/call_later callbacks are dropped
 * unrun), then cancels every still-pending future (their done callbacks
 * run), then frees the loop.
 * Futures the caller still holds stay valid but detached: completing them
 * afterwards returns -EINVAL. Must not be called from inside the loop (it
 * then does nothing and says so on stderr; debug mode aborts). NULL is a
 * no-op. */
ALOOP_API void aloop_free(aloop_t *loop);

/* Runs until nothing is left that could make progress: no ready task or
 * callback, no timer, no fd watch, no thread-pool job. Returns 0, or
 * -EDEADLK when tasks are left suspended with nothing that could ever wake
 * them, -EPERM when called from inside a running loop, -EINVAL for NULL.
 * Tasks left with nothing of the loop's own to wake them may still be woken
 * by another thread (aloop_call_soon_threadsafe, aloop_run_threadsafe):
 * the loop then sleeps until such work arrives, and reports -EDEADLK only
 * when the process has no thread besides the loop's and its worker pool's
 * (Linux: /proc/self/task; elsewhere it never reports). Debug mode warns
 * after 10 s of such sleep.
 * After aloop_stop() it returns 0 with the remaining work left in place. */
ALOOP_API int aloop_run(aloop_t *loop);

/* Runs until f is done and returns f's status: 0 or f's (negative) error.
 * -EAGAIN if the loop was stopped first, -EDEADLK if it ran out of work
 * with f still pending, -EINVAL if f belongs to another loop. */
ALOOP_API int aloop_run_until_complete(aloop_t *loop, aloop_future_t *f);

/* Makes aloop_run / aloop_run_until_complete return after the current step.
 * From another thread (while the loop runs) it wakes the loop, which stops
 * at its next iteration. */
ALOOP_API void aloop_stop(aloop_t *loop);

/* The loop's clock in seconds (virtual time under ALOOP_CLOCK_VIRTUAL). */
ALOOP_API double aloop_time(aloop_t *loop);

/* The loop running on this thread, or NULL. */
ALOOP_API aloop_t *aloop_current(void);

/* asyncio.run(): makes a loop, runs fn(arg) as a task to completion, frees
 * the loop. Returns the task's status; *result (may be NULL) gets its value. */
ALOOP_API int aloop_main(aloop_task_fn fn, void *arg, void **result);

/* aloop_main with a config (e.g. a virtual clock). */
ALOOP_API int aloop_main_with(const aloop_config_t *cfg, aloop_task_fn fn, void *arg,
                              void **result);

/* ---- embedding: a host's main loop drives aloop */

/* One iteration, for a host that owns main(): waits for fds at most
 * timeout seconds (0 = do not block, < 0 = until an fd is ready or a timer
 * is due), then runs due timers and everything ready at that point (tasks a
 * timer woke included, up to their next suspension), without blocking
 * again. With no work at all it returns 0 at once, whatever the timeout.
 * Under ALOOP_CLOCK_VIRTUAL, with nothing ready, the clock moves by
 * min(timeout, time to the next deadline) for timeout > 0, to the next
 * deadline for timeout < 0, never for timeout == 0.
 * Returns 1 if work remains (tasks, timers, fd waits and watches,
 * callbacks, pool jobs), 0 if none; -EPERM from inside a loop (a task or
 * callback), -EINVAL for NULL or a NaN timeout, -EDEADLK if tasks are left
 * that nothing, not even another thread, can wake (see aloop_run). */
ALOOP_API int aloop_run_once(aloop_t *loop, double timeout);

/* An fd that polls readable when aloop_run_once(loop, 0) has I/O to
 * process (the epoll or kqueue fd; posts from other threads count, a
 * read watch does not also watch writability). Put it in the host's poll
 * set once; it lives as long as the loop. -ENOTSUP with the poll(2)
 * backend (drive such a loop by aloop_backend_timeout alone), -EINVAL. */
ALOOP_API int aloop_backend_fd(aloop_t *loop);

/* Seconds until the loop next needs to run: exactly 0.0 if something is
 * ready now, the time to the next timer, or -1.0 if nothing is scheduled
 * (only I/O, through aloop_backend_fd, can then wake it). -1.0 for NULL.
 * Ask again after every aloop_run_once: tasks arm and cancel timers. */
ALOOP_API double aloop_backend_timeout(aloop_t *loop);

/* ------------------------------------------------------------------------ */
/* 2. Futures and tasks                                                     */
/* ------------------------------------------------------------------------ */

/* A pending future bound to loop. */
ALOOP_API aloop_future_t *aloop_future_new(aloop_t *loop);

/* Completes f with a value. -EINVAL if f is already done (or detached). */
ALOOP_API int aloop_future_set_result(aloop_future_t *f, void *value);

/* Completes f with an error (err < 0, else -EINVAL). -ECANCELED is allowed
 * and makes the future count as failed, not cancelled. */
ALOOP_API int aloop_future_set_error(aloop_future_t *f, int err);

/* 1 if f is done (result, error or cancelled), else 0. */
ALOOP_API int aloop_future_done(const aloop_future_t *f);

/* 1 if f was cancelled, else 0. */
ALOOP_API int aloop_future_cancelled(const aloop_future_t *f);

/* Does not wait: 0 with *value set (value may be NULL), f's error, or
 * -EAGAIN while f is pending. Marks the error as retrieved. */
ALOOP_API int aloop_future_result(const aloop_future_t *f, void **value);

/* Calls cb(f, arg) from the loop once f is done (at once, i.e. at the next
 * step, if it already is). Callbacks run in registration order, never from
 * inside set_result/cancel. -ENOMEM, -EINVAL. */
ALOOP_API int aloop_future_add_done_callback(aloop_future_t *f,
                                             void (*cb)(aloop_future_t *, void *),
                                             void *arg);

/* Removes every registration of (cb, arg) that has not been scheduled yet;
 * returns how many were removed. */
ALOOP_API int aloop_future_remove_done_callback(aloop_future_t *f,
                                                void (*cb)(aloop_future_t *, void *),
                                                void *arg);

/* One more reference to f; returns f. */
ALOOP_API aloop_future_t *aloop_retain(aloop_future_t *f);

/* Drops one reference. Releasing a running task detaches it: it runs on and
 * is freed when done. NULL is a no-op. */
ALOOP_API void aloop_release(aloop_future_t *f);

/* create_task: fn(arg) will run as a new task. The caller gets one
 * reference (release it to detach the task). NULL + ENOMEM / EINVAL. */
ALOOP_API aloop_task_t *aloop_spawn(aloop_t *loop, aloop_task_fn fn, void *arg);

/* Sets the task's name (copied). -EINVAL for NULL, -ENOMEM. */
ALOOP_API int aloop_task_set_name(aloop_task_t *t, const char *name);

/* The task's name: "Task-N" unless set. NULL if t is not a task. */
ALOOP_API const char *aloop_task_name(const aloop_task_t *t);

/* The task running now, or NULL outside a task. */
ALOOP_API aloop_task_t *aloop_current_task(void);

/* Fills out[0..cap) with unfinished tasks of loop (borrowed pointers, valid
 * until the loop next runs); returns how many there are (may exceed cap). */
ALOOP_API size_t aloop_all_tasks(aloop_t *loop, aloop_task_t **out, size_t cap);

/* In a task: `return aloop_fail(-EIO);` completes the task with that error
 * (an err >= 0, or below -INT_MAX, becomes -EINVAL). Outside a task it does
 * nothing. ssize_t, so that an I/O call's result passes without a cast:
 * `if (n < 0) return aloop_fail(n);`. */
ALOOP_API void *aloop_fail(ssize_t err);

/* Requests cancellation: 1 = requested, 0 = f was already done (-EINVAL for
 * NULL). A plain future becomes cancelled at once. A task gets -ECANCELED
 * from its current or next suspending call (once per aloop_cancel); if it
 * is suspended in aloop_await(g), g is cancelled too. A task cancelled
 * before its first step never runs. */
ALOOP_API int aloop_cancel(aloop_future_t *f);

/* asyncio's Task.uncancel(): undoes one cancel request; returns the number
 * still pending. When it reaches 0 an undelivered cancel is dropped too, and
 * the task completes normally when it returns. */
ALOOP_API int aloop_task_uncancel(aloop_task_t *t);

/* asyncio's Task.cancelling(): cancel requests not undone by uncancel. */
ALOOP_API int aloop_task_cancelling(const aloop_task_t *t);

/* 1 if f is a task, 0 if it is a plain future. */
ALOOP_API int aloop_is_task(const aloop_future_t *f);

/* ------------------------------------------------------------------------ */
/* 3. Waiting (inside a task): await, sleep, gather, wait, wait_for,        */
/* shield, timeout scopes (asyncio.timeout)                                 */
/* ------------------------------------------------------------------------ */

/* Waits for f; 0 with *result set (result may be NULL), f's error, or
 * -ECANCELED. If the caller is cancelled meanwhile, f is cancelled too and
 * the call returns -ECANCELED once f has finished. -EINVAL if f belongs to
 * another loop, -EDEADLK if a task awaits itself. */
ALOOP_API int aloop_await(aloop_future_t *f, void **result);

/* Suspends for seconds (0 just yields). 0, -ECANCELED, or -EINVAL for a
 * negative or NaN delay. */
ALOOP_API int aloop_sleep(double seconds);

/* aloop_sleep(0): lets every other ready task run once. */
ALOOP_API int aloop_yield(void);

#define ALOOP_RETURN_ERRORS 1

/* Waits for all n futures; results[i] / errors[i] (either may be NULL) are
 * filled in input order. Without ALOOP_RETURN_ERRORS the first error is
 * returned as soon as it happens and the others keep running; with it the
 * call returns 0 and every slot is filled. If the caller is cancelled, every
 * child still pending is cancelled too. */
ALOOP_API int aloop_gather(aloop_future_t *const *fs, size_t n, void **results,
                           int *errors, unsigned flags);

enum { ALOOP_ALL_COMPLETED, ALOOP_FIRST_COMPLETED, ALOOP_FIRST_ERROR };

/* Waits until mode is satisfied or timeout (< 0: none) passes: 0 or
 * -ETIMEDOUT (or -ECANCELED). Never cancels the futures. *ndone (may be
 * NULL) = how many are done on return. */
ALOOP_API int aloop_wait(aloop_future_t *const *fs, size_t n, int mode,
                         double timeout, size_t *ndone);

/* Waits for f at most timeout seconds (< 0: no limit). On timeout cancels f,
 * waits until it has finished and returns -ETIMEDOUT. If the caller is
 * cancelled, f is cancelled too. */
ALOOP_API int aloop_wait_for(aloop_future_t *f, double timeout, void **result);

/* A new future that follows f, but whose cancellation does not cancel f.
 * The caller owns the returned reference. */
ALOOP_API aloop_future_t *aloop_shield(aloop_future_t *f);

/* ---- timeout scopes: deadlines around a block (asyncio.timeout) */

/* A timeout scope bounds a block of code inside one task:
 *
 *     aloop_timeout_t to;
 *     int rc = aloop_timeout_enter(&to, 2.0);
 *     if (rc < 0) return rc;
 *     rc = do_several_suspending_calls();       // -ECANCELED once 2 s passed
 *     rc = aloop_timeout_exit(&to, rc);          // -ETIMEDOUT if the deadline fired
 *
 * When the deadline passes the task is cancelled: its current (or next)
 * suspending call returns -ECANCELED. aloop_timeout_exit turns that cancel
 * into -ETIMEDOUT and withdraws it (the task is no longer cancelling), so
 * the code after the block runs normally. Once the deadline has fired, exit
 * returns -ETIMEDOUT whatever rc is, also when the block swallowed the
 * -ECANCELED. A cancel from outside the block (aloop_cancel, an enclosing
 * aloop_wait_for) stays a cancel: exit then returns -ECANCELED and the task
 * stays cancelled. Scopes of one task nest and must be exited innermost
 * first; each expired scope reports -ETIMEDOUT from its own exit, and when
 * an enclosing scope's deadline also fired while an inner one was open, its
 * cancel is delivered again after the inner exit, so the enclosing block is
 * interrupted at its next suspending call. As in asyncio, a deadline takes
 * effect only when the loop runs: a block that never suspends is never
 * interrupted, and exits with rc.
 *
 * The struct lives in the task's frame (usually its stack); `when` holds the
 * absolute deadline on the loop's clock, INFINITY (math.h) for none. Every
 * other time is a deadline, also one already past (a negative time, before
 * the loop's clock started, or a negative delay): it fires at the block's
 * next suspending call, as asyncio's does. The scope allocates a small
 * record until exit; a task that returns without exiting a scope leaks
 * nothing (the record is released when the task finishes) but its pending
 * cancel stays counted, and the struct is no longer open: every call on it
 * returns -EINVAL (or -EBUSY from enter, see below) until it is entered
 * again. A struct is open from enter to exit: entering it again meanwhile
 * (in any task) is -EBUSY and changes nothing. Never use a struct after
 * its loop was freed. */
typedef struct aloop_timeout {
    double when;
    void *priv_[4];
} aloop_timeout_t;

/* Enters a scope with a deadline delay seconds from now (INFINITY: none;
 * delay <= 0: already due). Not a suspending call and not a cancellation
 * point. 0, -EPERM outside a task, -EINVAL (NULL t, NaN delay), -EBUSY (t is
 * open already), -ENOMEM. */
ALOOP_API int aloop_timeout_enter(aloop_timeout_t *t, double delay);
/* The same with an absolute deadline on the loop's clock (INFINITY: none;
 * a deadline already past, negative ones included, fires at the loop's next
 * step). */
ALOOP_API int aloop_timeout_enter_at(aloop_timeout_t *t, double when);
/* Moves the deadline of an open scope (INFINITY: none; a time already past
 * fires at once), from its task or from anything else running on the loop's
 * thread. 0; -EINVAL (NULL t, NaN, a scope not open: exited, or its task
 * returned without exit); -EALREADY if the deadline has already fired;
 * -ENOMEM. */
ALOOP_API int aloop_timeout_reschedule(aloop_timeout_t *t, double when);
/* 1 if the scope's deadline has fired (while open or after exit), 0 if not,
 * -EINVAL for NULL or a scope whose task returned without exit. t must have
 * been entered. */
ALOOP_API int aloop_timeout_expired(const aloop_timeout_t *t);
/* Leaves the block; rc is the status the block ended with. Returns
 * -ETIMEDOUT if the deadline fired (its cancel is consumed), -ECANCELED if
 * the task was (also) cancelled from outside the block, else rc. Misuse:
 * -EPERM outside a task, -EINVAL for a scope that is not open (never
 * entered, already exited, or entered by another task), -EBUSY for a scope
 * that still has an inner scope open (exit that first); nothing changes then. */
ALOOP_API int aloop_timeout_exit(aloop_timeout_t *t, int rc);

/* ------------------------------------------------------------------------ */
/* 4. Task groups (structured concurrency, asyncio.TaskGroup)               */
/* ------------------------------------------------------------------------ */

typedef struct aloop_group aloop_group_t;

/* A new, empty group. */
ALOOP_API aloop_group_t *aloop_group_new(aloop_t *loop);

/* Spawns fn(arg) in the group. The handle is owned by the group (valid until
 * aloop_group_free; retain it to keep it longer). NULL + EPERM once the
 * group has failed or been waited. */
ALOOP_API aloop_task_t *aloop_group_spawn(aloop_group_t *g, aloop_task_fn fn, void *arg);

/* Suspends until every task of the group is done. On the first error the
 * others are cancelled and that error is returned. If the caller is
 * cancelled, the group's tasks are cancelled and waited for, then
 * -ECANCELED is returned. */
ALOOP_API int aloop_group_wait(aloop_group_t *g);

/* Cancels tasks still running (they finish detached) and frees the group. */
ALOOP_API void aloop_group_free(aloop_group_t *g);

/* ------------------------------------------------------------------------ */
/* 5. Synchronisation (asyncio.Lock, Event, Semaphore, BoundedSemaphore,    */
/* Condition, Barrier). Waiters are served in FIFO order.                   */
/* ------------------------------------------------------------------------ */

typedef struct aloop_lock aloop_lock_t;
typedef struct aloop_event aloop_event_t;
typedef struct aloop_semaphore aloop_semaphore_t;
typedef struct aloop_cond aloop_cond_t;

ALOOP_API aloop_lock_t *aloop_lock_new(aloop_t *loop);
/* Suspends until the lock is ours. 0 or -ECANCELED. */
ALOOP_API int aloop_lock_acquire(aloop_lock_t *l);
/* Takes the lock if free: 0, or -EAGAIN. */
ALOOP_API int aloop_lock_try_acquire(aloop_lock_t *l);
/* Releases; -EPERM if the lock is not held. */
ALOOP_API int aloop_lock_release(aloop_lock_t *l);
/* 1 if held. */
ALOOP_API int aloop_lock_locked(const aloop_lock_t *l);
/* Frees; waiters wake with -EPIPE, also one the lock was already handed
 * to but that has not run yet (it does not hold the freed lock). */
ALOOP_API void aloop_lock_free(aloop_lock_t *l);

ALOOP_API aloop_event_t *aloop_event_new(aloop_t *loop);
/* Sets the flag and wakes every waiter. */
ALOOP_API void aloop_event_set(aloop_event_t *e);
ALOOP_API void aloop_event_clear(aloop_event_t *e);
ALOOP_API int aloop_event_is_set(const aloop_event_t *e);
/* Suspends until the flag is set. 0 or -ECANCELED. */
ALOOP_API int aloop_event_wait(aloop_event_t *e);
ALOOP_API void aloop_event_free(aloop_event_t *e);

ALOOP_API aloop_semaphore_t *aloop_semaphore_new(aloop_t *loop, unsigned value);
/* Like a semaphore, but releasing above the initial value fails with -EINVAL. */
ALOOP_API aloop_semaphore_t *aloop_bounded_semaphore_new(aloop_t *loop, unsigned value);
/* Suspends while the value is 0, then decrements it. 0 or -ECANCELED. */
ALOOP_API int aloop_semaphore_acquire(aloop_semaphore_t *s);
/* Increments the value (waking a waiter). -EINVAL on over-release of a bounded one. */
ALOOP_API int aloop_semaphore_release(aloop_semaphore_t *s);
/* 1 if an acquire would suspend. */
ALOOP_API int aloop_semaphore_locked(const aloop_semaphore_t *s);
ALOOP_API void aloop_semaphore_free(aloop_semaphore_t *s);

/* A condition over lock (NULL = a new lock of its own). */
ALOOP_API aloop_cond_t *aloop_cond_new(aloop_t *loop, aloop_lock_t *lock);
/* With the lock held: releases it, waits for a notify, re-acquires it (also
 * when cancelled). 0, -ECANCELED, -EPERM if the lock is not held; -EPIPE
 * if c was freed while waiting or after notifying it but before the task
 * ran (then the lock is NOT held: it may have been freed with c). */
ALOOP_API int aloop_cond_wait(aloop_cond_t *c);
/* Wakes up to n waiters. -EPERM if the lock is not held. */
ALOOP_API int aloop_cond_notify(aloop_cond_t *c, size_t n);
/* Wakes every waiter. -EPERM if the lock is not held. */
ALOOP_API int aloop_cond_notify_all(aloop_cond_t *c);
ALOOP_API aloop_lock_t *aloop_cond_lock(aloop_cond_t *c);
/* Frees c (and its lock if it made one); waiters, notified or not, wake
 * with -EPIPE without the lock. */
ALOOP_API void aloop_cond_free(aloop_cond_t *c);

/* ---- barriers (asyncio.Barrier) */

/* `parties` tasks call aloop_barrier_wait; each waits until the last one
 * arrives, then all go on and the barrier is ready for the next round.
 * Waiting never allocates. */
typedef struct aloop_barrier aloop_barrier_t;

/* NULL + errno: EINVAL (NULL loop, parties == 0), ENOMEM. */
ALOOP_API aloop_barrier_t *aloop_barrier_new(aloop_t *loop, unsigned parties);
/* Suspends until `parties` tasks wait (the last to arrive does not suspend).
 * Returns the number of parties that had arrived before the caller in this
 * round (0 .. parties-1), -EPIPE if the barrier is broken (aborted, reset
 * or freed while waiting, or aborted before), -ECANCELED (a cancelled waiter
 * no longer counts as arrived; one cancelled after its round completed gets
 * -ECANCELED and the others still go on), -EPERM outside a task, -EINVAL
 * (NULL, or a barrier of another loop). */
ALOOP_API int aloop_barrier_wait(aloop_barrier_t *b);
/* Breaks the barrier: waiters wake with -EPIPE, and every later wait fails
 * with -EPIPE until aloop_barrier_reset. 0, -EINVAL. */
ALOOP_API int aloop_barrier_abort(aloop_barrier_t *b);
/* Back to an empty round: tasks waiting now wake with -EPIPE; a broken
 * barrier is usable again. 0, -EINVAL. */
ALOOP_API int aloop_barrier_reset(aloop_barrier_t *b);
/* asyncio's parties / n_waiting / broken: the size, the tasks waiting in the
 * current round (0 for NULL), 1 if aborted (0 for NULL). */
ALOOP_API unsigned aloop_barrier_parties(const aloop_barrier_t *b);
ALOOP_API unsigned aloop_barrier_n_waiting(const aloop_barrier_t *b);
ALOOP_API int aloop_barrier_broken(const aloop_barrier_t *b);
/* Frees b; tasks still waiting wake with -EPIPE (and never touch b again). */
ALOOP_API void aloop_barrier_free(aloop_barrier_t *b);

/* ------------------------------------------------------------------------ */
/* 6. Queues (asyncio.Queue, LifoQueue, PriorityQueue)                      */
/* ------------------------------------------------------------------------ */

typedef struct aloop_queue aloop_queue_t;

/* FIFO queue; maxsize 0 = unbounded. */
ALOOP_API aloop_queue_t *aloop_queue_new(aloop_t *loop, size_t maxsize);
/* LIFO queue (a stack). */
ALOOP_API aloop_queue_t *aloop_queue_new_lifo(aloop_t *loop, size_t maxsize);
/* Priority queue: cmp(a, b) < 0 when item a comes first (smallest first);
 * items of equal priority come out in the order they were put. */
ALOOP_API aloop_queue_t *aloop_queue_new_priority(aloop_t *loop, size_t maxsize,
                                                  int (*cmp)(const void *a, const void *b));
/* Frees q; tasks still waiting on it wake with -EPIPE. */
ALOOP_API void aloop_queue_free(aloop_queue_t *q);
/* Puts item (may be NULL), suspending while the queue is full. -EPIPE after shutdown. */
ALOOP_API int aloop_queue_put(aloop_queue_t *q, void *item);
/* Takes the next item, suspending while the queue is empty. -EPIPE after shutdown. */
ALOOP_API int aloop_queue_get(aloop_queue_t *q, void **item);
/* Puts without waiting: -EAGAIN if full. */
ALOOP_API int aloop_queue_put_nowait(aloop_queue_t *q, void *item);
/* Takes without waiting: -EAGAIN if empty. */
ALOOP_API int aloop_queue_get_nowait(aloop_queue_t *q, void **item);
/* Number of items queued. */
ALOOP_API size_t aloop_queue_size(const aloop_queue_t *q);
/* 1 if no item is queued (0 for NULL). */
ALOOP_API int aloop_queue_empty(const aloop_queue_t *q);
/* 1 if the queue is bounded and holds maxsize items. */
ALOOP_API int aloop_queue_full(const aloop_queue_t *q);
/* One item taken earlier is fully processed (for aloop_queue_join). */
ALOOP_API void aloop_queue_task_done(aloop_queue_t *q);
/* Suspends until every item put has been marked task_done. */
ALOOP_API int aloop_queue_join(aloop_queue_t *q);
/* Python 3.13 Queue.shutdown: put fails with -EPIPE; get fails with -EPIPE
 * once the queue is drained, or at once (items dropped) if immediate. */
ALOOP_API void aloop_queue_shutdown(aloop_queue_t *q, int immediate);

/* ------------------------------------------------------------------------ */
/* 7. Callbacks, timers and fd watches                                      */
/* ------------------------------------------------------------------------ */

typedef struct aloop_handle aloop_handle_t;

/* Calls cb(arg) from the loop at its next step. NULL + EINVAL / ENOMEM. */
ALOOP_API aloop_handle_t *aloop_call_soon(aloop_t *loop, void (*cb)(void *), void *arg);
/* Calls cb(arg) after delay seconds (>= 0). */
ALOOP_API aloop_handle_t *aloop_call_later(aloop_t *loop, double delay, void (*cb)(void *), void *arg);
/* Calls cb(arg) at loop time when. */
ALOOP_API aloop_handle_t *aloop_call_at(aloop_t *loop, double when, void (*cb)(void *), void *arg);
/* Cancels the call if it has not run yet. The loop frees handles itself: a
 * handle may be used until its callback has returned, or after a cancel
 * until the loop's next step; cancelling twice, or from inside its own
 * callback, is a no-op. */
ALOOP_API void aloop_handle_cancel(aloop_handle_t *h);
/* The loop time a timer handle fires at (0 for call_soon handles). */
ALOOP_API double aloop_handle_when(const aloop_handle_t *h);

/* Callback fd watches (asyncio's loop.add_reader / add_writer), to drive
 * callback-based C libraries (libcurl's multi socket interface, c-ares,
 * hiredis). cb(fd, arg) runs from the loop, like a call_soon callback,
 * each iteration fd is readable (writable), until removed; it may remove or
 * replace its own watch or aloop_close fd. One reader and one writer per
 * fd: a second add replaces the callback and argument (and watches the
 * file fd names now: a watched fd closed with close(2) and its number
 * reused is watched afresh). Watches keep the
 * loop alive (aloop_run does not return while one exists); aloop_close(fd)
 * and aloop_free remove them. Call on the loop's thread.
 * 0, or -EBUSY if a task waits on fd in that direction (and a task's
 * aloop_wait_readable/writable is -EBUSY while a watch exists in that
 * direction), -EBADF for fd < 0, -EPERM for an fd that cannot be polled (a
 * regular file), -EINVAL for a NULL loop or cb, -ENOMEM. */
ALOOP_API int aloop_add_reader(aloop_t *loop, int fd, void (*cb)(int fd, void *arg), void *arg);
ALOOP_API int aloop_add_writer(aloop_t *loop, int fd, void (*cb)(int fd, void *arg), void *arg);
/* 1 if a watch was removed, 0 if there was none; -EBADF, -EINVAL. A
 * callback already due this iteration does not run. */
ALOOP_API int aloop_remove_reader(aloop_t *loop, int fd);
ALOOP_API int aloop_remove_writer(aloop_t *loop, int fd);

/* ------------------------------------------------------------------------ */
/* 8. fd I/O (inside a task; fds are made non-blocking)                     */
/* ------------------------------------------------------------------------ */

/* Suspends until fd is readable / writable. 0, -ETIMEDOUT (timeout < 0 =
 * none), -ECANCELED, -EBADF (also when aloop_close or a stream's close
 * closes fd meanwhile, even after fd was found ready but before the task
 * ran; and when an fd the program opened itself was closed with close(2):
 * at once with poll(2), within about a second with epoll, see
 * docs/guide.md §15), -EBUSY if another task
 * already waits for the same direction on fd. aloop_read, aloop_write_all
 * and the stream calls return -EBADF in the same cases, without touching
 * the fd number again. */
ALOOP_API int aloop_wait_readable(int fd, double timeout);
ALOOP_API int aloop_wait_writable(int fd, double timeout);
/* Reads up to len bytes: > 0 bytes, 0 at EOF, < 0 -errno. Regular files
 * are read on the worker pool (see "regular files" below). */
ALOOP_API ssize_t aloop_read(int fd, void *buf, size_t len);
/* Writes every byte (suspending while the fd is full): len, or -errno. A
 * broken pipe is -EPIPE, never SIGPIPE. */
ALOOP_API ssize_t aloop_write_all(int fd, const void *buf, size_t len);

/* Closes fd; tasks waiting on it wake with -EBADF; an fd the library made
 * non-blocking gets its blocking mode back first. Use it instead of
 * close(2) for fds a task may be waiting on, and always for fds the
 * library made (aloop_accept, aloop_tcp_connect, ...). */
ALOOP_API int aloop_close(int fd);

/* ------------------------------------------------------------------------ */
/* 9. Sockets: TCP, names, datagrams, Unix-domain                           */
/* ------------------------------------------------------------------------ */

/* Accepts a connection: the new fd (non-blocking, close-on-exec) or -errno. */
ALOOP_API int aloop_accept(int listen_fd, struct sockaddr *addr, socklen_t *len);
/* Connects fd: 0 or -errno (-ECONNREFUSED, ...). */
ALOOP_API int aloop_connect(int fd, const struct sockaddr *addr, socklen_t len);
/* A listening TCP socket (IPv4 or IPv6, SO_REUSEADDR; port "0" = any;
 * backlog <= 0 = SOMAXCONN): fd or -errno. One socket, on the first of
 * host's addresses that binds: host NULL or "" is the wildcard getaddrinfo
 * lists first (0.0.0.0 with glibc: IPv4 only; "::" takes IPv6 and, where
 * the system allows, IPv4 too); "localhost" is 127.0.0.1.
 * Numeric hosts and "localhost" work anywhere, other names are looked up
 * on the worker pool (see "Names" below: -EPERM outside a task, -ENOENT
 * for no such name). */
ALOOP_API int aloop_tcp_listen(const char *host, const char *port, int backlog);

/* aloop_tcp_listen_with flags. REUSEPORT sets SO_REUSEPORT: several sockets
 * (one per loop, each listening with this flag) share the port and the
 * kernel spreads new connections over them (Linux, the BSDs). */
enum { ALOOP_LISTEN_REUSEPORT = 1u << 0 };
/* aloop_tcp_listen with flags: fd or -errno; -EINVAL for unknown flags,
 * -ENOTSUP where SO_REUSEPORT does not exist, -EADDRINUSE when the port is
 * taken by a socket that did not also set REUSEPORT (or by another user). */
ALOOP_API int aloop_tcp_listen_with(const char *host, const char *port, int backlog,
                                    unsigned flags);

/* Connects to host:port within timeout (< 0 = none; 0 = try each address
 * once without waiting): fd (TCP_NODELAY) or -errno (-ECONNREFUSED,
 * -ETIMEDOUT, -ENOENT, -ECANCELED, ...). The one deadline covers the name
 * lookup and every attempt: a resolver slower than the timeout costs the
 * timeout, never more. With several addresses (a name with IPv6 and IPv4
 * ones; "localhost": ::1 and 127.0.0.1) the attempts follow RFC 8305, Happy
 * Eyeballs: addresses interleaved by family (the first address's family
 * first), the next attempt started 250 ms after the previous one unless
 * that one failed sooner, attempts in progress left running; the first to
 * connect wins and every other is closed. When all fail: the last
 * failure's error. A cancel closes every attempt. */
ALOOP_API int aloop_tcp_connect(const char *host, const char *port, double timeout);

struct addrinfo;
/* getaddrinfo(host, port, hints, res) that never blocks the loop. A numeric
 * host (or NULL host) is answered at once, inside a task or not; a name is
 * looked up on the loop's worker pool, so only from inside a task (-EPERM
 * outside one); a name in ".invalid" is -ENOENT at once (RFC 6761). 0 with
 * *res set (free it with freeaddrinfo()), or -errno: a cancellation point
 * when it looks a name up (-ECANCELED; the pool's result is freed, never
 * leaked). -EINVAL if res is NULL or both host and port are, and for a
 * port that is neither a number 0..65535 nor a service name ("99999",
 * "-1", " 80", ""): the same rule holds everywhere a port is taken
 * (tcp_listen, tcp_connect, open_connection, udp_bind, udp_connect).
 * getaddrinfo's errors map as follows:
 *   EAI_NONAME, EAI_NODATA, EAI_ADDRFAMILY, EAI_FAIL, EAI_SERVICE -> -ENOENT
 *     (no such name, including a non-numeric host with AI_NUMERICHOST, a
 *     name without addresses (of that family), an unknown service name)
 *   EAI_AGAIN -> -EAGAIN (temporary: the resolver did not answer in time)
 *   EAI_MEMORY -> -ENOMEM;  EAI_FAMILY -> -EAFNOSUPPORT
 *   EAI_BADFLAGS, EAI_SOCKTYPE -> -EINVAL
 *   EAI_SYSTEM -> -errno of the failed call;  anything else -> -EIO */
ALOOP_API int aloop_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                                struct addrinfo **res);

/* ---- datagrams (udp.c), asyncio's create_datagram_endpoint / libuv's uv_udp.
 * Hosts resolve as for aloop_tcp_listen / aloop_tcp_connect (numeric and
 * "localhost" anywhere, other names on the pool from a task, -ENOENT for no
 * such name). The fds are non-blocking and close-on-exec; close them with
 * aloop_close. */

/* A datagram socket bound to the first address of host:port that binds
 * (host NULL or "": the wildcard, as for aloop_tcp_listen; port "0" = any
 * free port): fd or -errno (-EADDRINUSE, ...). */
ALOOP_API int aloop_udp_bind(const char *host, const char *port);
/* A datagram socket connected to host:port (bound to a free local port):
 * send with aloop_sendto(fd, ..., NULL, 0), receive only from that peer.
 * A datagram connect checks nothing, so with several addresses the first
 * one the kernel can route to is taken. fd or -errno. */
ALOOP_API int aloop_udp_connect(const char *host, const char *port);
/* Suspends until a datagram arrives and takes exactly one: its size (0 for
 * an empty datagram), with its sender in addr / *alen when addr is not NULL
 * (*alen: capacity in, length out). A datagram longer than len: buf holds
 * its first len bytes, the rest is lost, and the call returns -EMSGSIZE.
 * Other errors: -ECANCELED (no datagram is taken: the next call gets it),
 * -ECONNREFUSED (a connected socket's earlier datagram was refused by the
 * peer), -EBADF, -ENOTSOCK, -EINVAL (buf NULL with len > 0, addr without
 * alen), -EPERM outside a task. */
ALOOP_API ssize_t aloop_recvfrom(int fd, void *buf, size_t len, struct sockaddr *addr,
                                 socklen_t *alen);
/* Sends buf as one datagram to addr (NULL: to the connected peer),
 * suspending while the socket's send buffer is full: len, or -errno
 * (-EMSGSIZE above the protocol's limit, -EDESTADDRREQ for NULL addr on an
 * unconnected socket, -ECONNREFUSED, -ECANCELED: nothing was sent). */
ALOOP_API ssize_t aloop_sendto(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                               socklen_t alen);

/* ---- Unix-domain stream sockets (unix.c). path is a file system path, or
 * "@name" for Linux's abstract namespace: the address is the bytes of name
 * after a NUL, its length offsetof(struct sockaddr_un, sun_path) + 1 +
 * strlen(name), no padding (-ENOTSUP elsewhere). -ENAMETOOLONG when the
 * name does not fit sun_path (107 bytes of path on Linux), -EINVAL for
 * NULL or "". */

/* A listening socket at path (backlog <= 0 = SOMAXCONN): fd or -errno. Not
 * suspending. If path exists: a socket file nothing accepts on (left by a
 * listener that died) is replaced; one a live listener accepts on, or a
 * file that is not a socket, gives -EADDRINUSE and is left alone. The file
 * stays after aloop_close(fd): unlink(path) when done (a later listen
 * replaces it anyway). */
ALOOP_API int aloop_unix_listen(const char *path, int backlog);
/* Connects to the listener at path within timeout seconds (< 0 = none):
 * fd (non-blocking, close-on-exec) or -errno: -ENOENT (no such file),
 * -ECONNREFUSED (nothing accepts there; also an abstract name nobody
 * holds), -ETIMEDOUT (the listener's backlog stayed full), -ECANCELED,
 * -EACCES, -EINVAL (NaN timeout), -EPERM outside a task. */
ALOOP_API int aloop_unix_connect(const char *path, double timeout);

/* ------------------------------------------------------------------------ */
/* 10. Streams and servers (asyncio.open_connection, start_server)          */
/* ------------------------------------------------------------------------ */

typedef struct aloop_stream aloop_stream_t;

/* A buffered reader/writer over fd; max_line (0 = 64 KiB) bounds readline
 * and readuntil, and the read buffer (max_line + 1 bytes at most); values
 * near SIZE_MAX mean no bound.
 * One reader and one writer at a time: a read call (read, readline,
 * readuntil, readexactly, copy's source) while another task is in one gets
 * -EBUSY at once, as does a write call (write, copy's destination, shutdown)
 * while another task writes; the stream is then untouched, and a write
 * that has started is never interleaved with another task's bytes.
 * A stream belongs to loop: its calls from another loop's task, or after
 * loop was freed (but aloop_stream_close), are misuse: -EINVAL. */
ALOOP_API aloop_stream_t *aloop_stream_new(aloop_t *loop, int fd, size_t max_line);

/* Connects to host:port within timeout (< 0 = none; one deadline for the
 * lookup and every attempt, Happy Eyeballs: as aloop_tcp_connect) and wraps
 * the socket in a stream
 * with the default max_line: 0 and *out set, or -errno (-ECONNREFUSED,
 * -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL for a NULL argument, -EPERM
 * outside a task). Nothing is left open on failure. */
ALOOP_API int aloop_open_connection(const char *host, const char *port, double timeout,
                                    aloop_stream_t **out);

/* Reads one line including its '\n' into buf (NUL-terminated when it fits):
 * its length, 0 at EOF, -EMSGSIZE if longer than max_line or cap - 1:
 * reported as soon as that many bytes are buffered without a '\n' (an
 * endless line costs no more than max_line), and the next read call of
 * any kind (copy's source too) skips the rest of the line through its
 * '\n' before it reads, so those bytes are never delivered;
 * the stream stays usable. At EOF a last line without '\n' is returned as
 * is. -EBUSY: another task is reading. */
ALOOP_API ssize_t aloop_stream_readline(aloop_stream_t *s, char *buf, size_t cap);

/* Reads through the first occurrence of sep (seplen > 0 bytes, found also
 * when it arrives split across reads) into buf, NUL-terminated: the
 * record's length with the separator. -EMSGSIZE when the record with its
 * separator is longer than max_line or cap - 1, as soon as that many bytes
 * are buffered without sep: the next readline/readuntil skips the rest of
 * it through its separator (the one given to the call that reported it),
 * then reads the next record; the stream stays usable (a record of exactly
 * max_line bytes fits). At EOF before sep: what was read, possibly 0.
 * -EINVAL, -EBUSY, -ECANCELED (nothing is lost; a skip cut short by a
 * cancel goes on in the next call). */
ALOOP_API ssize_t aloop_stream_readuntil(aloop_stream_t *s, const void *sep, size_t seplen,
                                         char *buf, size_t cap);

/* Reads exactly n bytes: n, or fewer only when EOF came first; -errno. */
ALOOP_API ssize_t aloop_stream_readexactly(aloop_stream_t *s, void *buf, size_t n);

/* Up to n bytes into buf: what is buffered if anything is (it never reads
 * more to fill n), else one read. > 0 bytes, 0 at EOF (or n == 0), -errno
 * (-ECANCELED loses nothing: the bytes stay in the stream or the kernel). */
ALOOP_API ssize_t aloop_stream_read(aloop_stream_t *s, void *buf, size_t n);

/* Writes every byte (with backpressure): n or -errno. */
ALOOP_API ssize_t aloop_stream_write(aloop_stream_t *s, const void *buf, size_t n);
/* Closes the fd (waking its waiters: -EBADF) and frees the stream. Also
 * after aloop_free of its loop (then it only closes and frees). */
ALOOP_API int aloop_stream_close(aloop_stream_t *s);
/* The stream's fd. */
ALOOP_API int aloop_stream_fd(const aloop_stream_t *s);

/* Half-close (asyncio writer.write_eof, uv_shutdown): the peer reads EOF
 * after everything written so far; reading goes on. Does not suspend.
 * 0 (also when already shut down); -ENOTSOCK when the fd is not a socket
 * (the stream is then untouched), -EBUSY while another task writes,
 * -EBADF after close, -EINVAL for NULL. Writes afterwards are -EPIPE. */
ALOOP_API int aloop_stream_shutdown(aloop_stream_t *s);
/* Copies from `from` to `to` until EOF on `from` (n == 0) or n bytes: the
 * bytes already buffered in `from` first, then fd to fd with splice(2) or
 * sendfile(2) where the kernel can (a pipe on either side, a regular file
 * as the source), through from's buffer otherwise. *copied (may be NULL)
 * is set on every return to the bytes delivered to `to`. 0 at EOF or when
 * n bytes are copied; -ECANCELED, -EPIPE, -ECONNRESET, ... with *copied
 * telling how far it got: a copy that stops holds nothing, the bytes read
 * but not written stay in from's buffer for its next read. It is a read of
 * `from` and a write of `to` (-EBUSY when another task reads from or
 * writes to them; to == from is allowed), and spends the cooperative
 * budget like every other call. */
ALOOP_API int aloop_stream_copy(aloop_stream_t *to, aloop_stream_t *from, size_t n,
                                size_t *copied);
/* The same on bare fds: sockets, pipes and regular files as the source
 * (from its current offset, which advances), any writable fd as the
 * destination. A copy that stops holds nothing either (splice(2),
 * sendfile(2), or a socket source read with MSG_PEEK and taken only once
 * written), except from other sources (ttys, devices): there a cancel
 * drops the bytes of the write in progress. -EBADF for a negative fd. */
ALOOP_API int aloop_copy(int out_fd, int in_fd, size_t n, size_t *copied);
/* n bytes of the regular file in_fd from offset to out_fd (sendfile(2)
 * where there is one; n == 0: to the end of the file; the file's own
 * offset does not move). *sent (may be NULL) as *copied above. 0 at the
 * end of the file or after n bytes; -EINVAL for a negative offset or a
 * source that is not a regular file; -ECANCELED, -EPIPE, ... */
ALOOP_API int aloop_sendfile(int out_fd, int in_fd, off_t offset, size_t n, size_t *sent);

/* ---- stream transports: how a stream moves its bytes (TLS and the like)
 * A transport replaces the plain fd reads and writes under a stream's
 * buffer, so that every aloop_stream_* call works on, say, a TLS
 * connection (aloop-tls is built on this; docs/guide.md shows how to plug
 * another library). Its calls never block: each moves what it can at once
 * and returns > 0 bytes, 0 at EOF (read), -EAGAIN with *want set to
 * ALOOP_WANT_READ or ALOOP_WANT_WRITE (the direction the fd must become
 * ready in before the call is tried again: a TLS read may need to write),
 * or -errno. The stream does the waiting, the cancelling and the
 * one-reader-one-writer rule; a call is never entered twice at once in the
 * same role, but a read and a write may alternate while both are pending.
 * A write that returned -EAGAIN is tried again with the same bytes (the
 * same buf and n) until it returns, unless its caller gives up (cancelled,
 * the wait failed): then the stream calls write(ctx, fd, NULL, 0, want)
 * once to say so, and the next write is a new one (bytes of the abandoned
 * write the transport already took may still be sent, as with a socket;
 * they must not be counted towards the next write). */
enum { ALOOP_WANT_READ = 1, ALOOP_WANT_WRITE = 2 };
typedef struct aloop_stream_transport {
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t n, int *want);
    ssize_t (*write)(void *ctx, int fd, const void *buf, size_t n, int *want);
    /* Half-close (TLS: close_notify): 0, -EAGAIN + *want, or -errno. */
    int (*shutdown)(void *ctx, int fd, int *want);
    /* The stream is being closed (fd closed right after): free ctx. May be NULL. */
    void (*close)(void *ctx, int fd);
} aloop_stream_transport_t;
/* Puts s on transport ops with ctx (ops NULL: back to plain fd I/O); the
 * previous transport's close runs first. ops must outlive the stream.
 * Bytes s has buffered stay and are read first. 0; -EINVAL (a NULL read,
 * write or shutdown); -EBUSY while a call on s is in progress; -EBADF. */
ALOOP_API int aloop_stream_set_transport(aloop_stream_t *s, const aloop_stream_transport_t *ops,
                                         void *ctx);
/* The ctx given with the transport, or NULL. */
ALOOP_API void *aloop_stream_transport_ctx(const aloop_stream_t *s);
/* The transport's ops, or NULL (plain fd I/O): tells whose ctx it is. */
ALOOP_API const aloop_stream_transport_t *aloop_stream_transport(const aloop_stream_t *s);

/* ---- servers */

typedef struct aloop_server aloop_server_t;
/* Runs in a task of its own per connection; conn is closed and freed when
 * it returns (closing it earlier with aloop_stream_close is allowed). */
typedef void (*aloop_conn_fn)(aloop_stream_t *conn, void *arg);

/* Accepts connections on listen_fd (from now on the server's: it closes it)
 * and runs handler(conn, arg) as a task for each, conn a stream with the
 * default max_line over the accepted socket (TCP_NODELAY set). Works from
 * inside or outside a task. Accept errors are handled here: a connection
 * that failed before it was accepted is skipped; when fds or memory run out
 * the server pauses (at most one accept attempt per 100 ms) and goes on,
 * the connection waiting in the backlog; any other error (the fd is not a
 * listening socket) closes the server and wait_closed returns it.
 * NULL + errno: EINVAL (NULL loop or handler, listen_fd < 0), ENOMEM (then
 * listen_fd is left open, still the caller's). */
ALOOP_API aloop_server_t *aloop_serve(aloop_t *loop, int listen_fd, aloop_conn_fn handler,
                                      void *arg);
typedef struct aloop_serve_opts {
    size_t max_connections; /* 0 = no limit; at the limit the server stops
                               accepting until a handler returns (new
                               connections wait in the listen backlog) */
    size_t max_line;        /* max_line of each connection's stream (0 = default) */
    double handshake_timeout; /* aloop_serve_tls (aloop_tls.h): seconds for each
                                 connection's handshake (0 = 60); unused here */
} aloop_serve_opts_t;
/* aloop_serve with options; opts NULL = all defaults (= aloop_serve). */
ALOOP_API aloop_server_t *aloop_serve_with(aloop_t *loop, int listen_fd,
                                           const aloop_serve_opts_t *opts, aloop_conn_fn handler,
                                           void *arg);
/* Stops accepting and closes the listener; running handlers go on. Calling
 * it again does nothing. 0, -EINVAL. */
ALOOP_API int aloop_server_close(aloop_server_t *srv);
/* Suspends until the server is closed (also when called before
 * aloop_server_close) and every handler has returned. 0, the accept error
 * that closed the server, -ECANCELED, -EPERM outside a task, -EDEADLK from
 * one of the server's own handlers (it would wait for itself), -EINVAL.
 * -ENOMEM if the accept task found no memory to start (the server closed). */
ALOOP_API int aloop_server_wait_closed(aloop_server_t *srv);
/* Handlers running now (started and not returned). */
ALOOP_API size_t aloop_server_connections(const aloop_server_t *srv);
/* Cancels every running handler (each sees -ECANCELED at its current or
 * next suspension point and returns); the server itself goes on accepting
 * unless closed. The usual shutdown: close, cancel_handlers (or first give
 * them time), wait_closed, free. Returns how many were cancelled. */
ALOOP_API size_t aloop_server_cancel_handlers(aloop_server_t *srv);
/* The listening fd (-1 once closed), e.g. for getsockname(). */
ALOOP_API int aloop_server_fd(const aloop_server_t *srv);
/* Closes the server and cancels every running handler (each sees
 * -ECANCELED at its current or next suspension point); the memory goes
 * when the last one has returned. srv must not be used afterwards.
 * aloop_free on a loop with a server does the same closing (the listener,
 * the handlers and their connections go); srv itself then stays valid for
 * this call, as futures stay valid for aloop_release. */
ALOOP_API void aloop_server_free(aloop_server_t *srv);

/* ------------------------------------------------------------------------ */
/* 11. Files                                                                */
/* ------------------------------------------------------------------------ */

/* ---- regular files (file.c). aloop_read and aloop_write_all on a regular
 * file do not block the loop: they run on the worker pool (as libuv's file
 * calls do), each pool job moving at most 1 MiB through a buffer of its
 * own. aloop_read returns at most 1 MiB per call (a short read). A
 * cancelled aloop_read consumes nothing (the file offset stays) and never
 * writes into the caller's buffer; a cancelled aloop_write_all may have
 * written whole 1 MiB chunks (the one a worker had started included).
 * Another task reading (writing) the same fd meanwhile gets -EBUSY. */

/* Reads the whole file at path (until end of file) into a malloc'd buffer,
 * NUL-terminated (*len excludes the NUL; len may be NULL): 0, or -errno
 * (-ENOENT, -EACCES, -EISDIR, -ENOMEM, -ECANCELED: nothing is returned and
 * nothing leaks, -EINVAL for NULL path or buf, -EPERM outside a task).
 * Opening and reading run on the worker pool; a path that is not a regular
 * file (FIFO, character device) is read on the loop with the fd waits (a
 * FIFO with no writer yet waits, cancellably). free(*buf) when done. Not
 * for endless files (/dev/zero). */
ALOOP_API int aloop_read_file(const char *path, void **buf, size_t *len);
/* Creates or truncates path (mode 0666 & ~umask) and writes len bytes of
 * buf: 0 or -errno (as aloop_read_file, plus -ENOSPC, -EIO). The open runs
 * on the pool, the writing as aloop_write_all; a FIFO nobody reads yet is
 * opened again at intervals until someone does (cancellable). Cancelled, the file may
 * hold part of the data (no atomic replace: write a temporary file and
 * rename(2) it for that). */
ALOOP_API int aloop_write_file(const char *path, const void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* 12. Threads: the worker pool, and many loops (one per thread)            */
/* ------------------------------------------------------------------------ */

/* Runs fn(arg) on the loop's worker pool and suspends until it returns:
 * 0 with *result set. If the caller is cancelled, returns -ECANCELED at
 * once: a job no worker has taken yet never runs; a running one finishes on
 * its own and its result is lost (see aloop_run_in_thread_with). -EPERM
 * outside a task, -EINVAL for a NULL fn, -ENOMEM, or pthread_create's error
 * when no worker could be started. */
ALOOP_API int aloop_run_in_thread(void *(*fn)(void *), void *arg, void **result);
/* Worker pool size for loop (default: number of CPUs); before first use.
 * Name lookups have a lane of their own: at most n of them and at most n
 * other jobs (files, run_in_thread) run at once, on up to 2n workers, so
 * lookups waiting for a slow DNS server never hold back the other jobs. */
ALOOP_API int aloop_set_thread_pool_size(aloop_t *loop, unsigned n);

/* ---- worker jobs that outlive their caller */

/* As aloop_run_in_thread, for jobs whose argument or result owns something.
 * The ownership rule: when this call returns -ECANCELED, arg (and fn's
 * result, if any) belong to discard, which the library calls exactly once
 * for that job, on the loop's thread; on 0 or any other error discard is
 * never called and everything stays the caller's.
 *  - Caller cancelled (or a cancel pending at the call) before a worker took
 *    the job: the job never runs; discard(NULL, arg) runs in the caller's
 *    task before the call returns.
 *  - Caller cancelled while fn runs, or after fn returned but before the
 *    caller ran again: the call returns at once; discard(result, arg) runs
 *    when the job comes back.
 *  - aloop_free (which cancels every task) waits only for jobs already
 *    running, while they keep finishing, and calls their discard on the
 *    freeing thread before it returns; a job still running after a second
 *    in which none finished is left to its (detached) worker, which calls
 *    its discard on that thread when fn returns.
 * discard must not use the loop; it may be NULL (then nothing is called, as
 * with aloop_run_in_thread). A job that may outlive its caller must not
 * point into the caller's stack: give it heap memory that discard frees.
 * Errors as aloop_run_in_thread. */
ALOOP_API int aloop_run_in_thread_with(void *(*fn)(void *), void *arg,
                                       void (*discard)(void *result, void *arg), void **result);

/* ---- many loops: handing work to a loop from another thread */

/* From any thread: cb(arg) will run on the loop's thread. 0 (then cb runs,
 * at the latest when aloop_free begins), -ENOMEM, -EINVAL, -EPIPE when the
 * loop is being freed or was freed (cb will not run; arg is still the
 * caller's). */
ALOOP_API int aloop_call_soon_threadsafe(aloop_t *loop, void (*cb)(void *), void *arg);

/* Runs fn(arg) as a task on loop, from any thread that is not running loop
 * (asyncio.run_coroutine_threadsafe), and waits for it. From a plain thread
 * (or a callback of another loop) it blocks the thread; from a task of
 * another loop it suspends only that task, and is a cancellation point:
 * cancelling the caller cancels the remote task and waits until it has
 * finished. Returns the task's status (0, its error, -ECANCELED); *result
 * (may be NULL) gets its value. -EPIPE if loop is freed, or stops for good
 * (aloop_free begins), before the task ran; -EPERM from loop's own thread;
 * -EINVAL for a NULL loop or fn; -ENOMEM. loop must stay allocated until
 * the call was made (posting to a freed loop is undefined, as for
 * aloop_call_soon_threadsafe); someone must run it (a loop whose tasks only
 * wait for other threads sleeps instead of returning -EDEADLK). */
ALOOP_API int aloop_run_threadsafe(aloop_t *loop, aloop_task_fn fn, void *arg, void **result);

/* ------------------------------------------------------------------------ */
/* 13. Signals and subprocesses                                             */
/* ------------------------------------------------------------------------ */

/* Suspends until signo is delivered to the process. 0, -ECANCELED, -EINVAL.
 * On Linux the first wait blocks signo in the loop's thread (it is read
 * through a signalfd) and it stays blocked there until aloop_free, waiting
 * or not: a signal arriving while no task waits stays pending for the next
 * waiter, and one still pending at aloop_free is raised again once
 * unblocked (the process's own disposition handles it). A signal read for
 * a task that is cancelled before it returns, and for no other task, is
 * raised again: it stays pending for the next wait. Children started
 * from that thread meanwhile by fork, posix_spawn or system inherit the
 * mask with signo blocked: unblock it in the child (posix_spawnattr_
 * setsigmask, or pthread_sigmask after fork); aloop_process_spawn does. */
ALOOP_API int aloop_signal_wait(int signo);
/* Suspends until one of the signals in set is delivered to the process and
 * returns its number (> 0): SIGINT and SIGTERM in one call, asyncio's
 * add_signal_handler for several signals. Each signal of the set is
 * handled as by aloop_signal_wait (blocked in the loop's thread from the
 * first wait on). The first one read ends the wait; another signal of the
 * set arriving meanwhile stays pending for the next wait. -EINVAL (NULL
 * or empty set, or one holding SIGKILL, SIGSTOP or a synchronous signal:
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL), -ECANCELED, -EPERM outside a task,
 * -ENOMEM.
 *     sigset_t set;
 *     sigemptyset(&set);
 *     sigaddset(&set, SIGINT);
 *     sigaddset(&set, SIGTERM);
 *     int signo = aloop_signal_wait_any(&set); */
ALOOP_API int aloop_signal_wait_any(const sigset_t *set);

/* ---- subprocesses (asyncio.create_subprocess_exec) */

/* A child process started by a loop. The loop reaps it as soon as it sees
 * it exit, whether or not anybody waits: no child of a loop stays a zombie.
 * The child starts with an empty signal mask and every signal at its
 * default disposition, whatever the loop's thread blocked or ignored. */
typedef struct aloop_process aloop_process_t;

/* What the child gets on stdin/stdout/stderr. */
enum {
    ALOOP_STDIO_INHERIT = 0, /* the parent's fd */
    ALOOP_STDIO_PIPE = 1,    /* a pipe; the parent's end: aloop_process_stdin() & co */
    ALOOP_STDIO_NULL = 2,    /* /dev/null */
    ALOOP_STDIO_STDOUT = 3   /* stderr only: wherever stdout goes (2>&1) */
};

/* opts.flags */
enum {
    /* The child leads a new process group (setpgid(0, 0)), so that
     * aloop_process_kill_group reaches what it starts too, and a Ctrl-C
     * at the terminal does not. */
    ALOOP_PROCESS_NEW_GROUP = 1,
    /* The child leads a new session (setsid()): no controlling terminal,
     * its own process group too (aloop_process_kill_group works). */
    ALOOP_PROCESS_NEW_SESSION = 2,
    /* Plain inheritance: the child also gets every fd of the parent that
     * is not close-on-exec. By default it gets exactly its stdio and
     * extra_fds, every other fd closed (Python's close_fds=True), so a
     * pipe() of the program never leaks into children. */
    ALOOP_PROCESS_KEEP_FDS = 4
};

typedef struct aloop_process_opts {
    int stdin_mode, stdout_mode, stderr_mode; /* ALOOP_STDIO_*; zero = inherit */
    const char *cwd;                          /* NULL = inherit */
    char *const *envp;                        /* NULL = inherit (environ) */
    unsigned flags;                           /* ALOOP_PROCESS_*; 0 = none */
    const int *extra_fds;                     /* parent fds the child gets as 3, 4, ... */
    size_t n_extra_fds;                       /* (Go's ExtraFiles); 0 = none */
} aloop_process_opts_t;

/* Starts argv[0] with arguments argv (NULL-terminated). A name without '/'
 * is searched in PATH (the child's PATH when envp is given). NULL opts =
 * inherit stdio, no other fd. Not suspending; may be called outside a
 * task. The child gets exactly fds 0-2 and extra_fds (as 3, 4, ...; any
 * open fd of the parent, close-on-exec or not), every other fd closed
 * unless ALOOP_PROCESS_KEEP_FDS. An INHERIT slot whose fd the parent has
 * closed (or holds close-on-exec, as the library's own fds are) gives the
 * child /dev/null there, never a library fd. Returns NULL + errno on
 * failure, with no child left behind: EINVAL (NULL loop or argv, empty
 * argv[0], a bad mode or flag, extra_fds NULL with n_extra_fds > 0 or
 * more than 4096), EBADF (an extra fd is not open), a program that cannot
 * be executed (ENOENT, EACCES, ENOEXEC, ...) or a cwd that cannot be
 * entered (ENOENT, ...) rather than exit status 127, EMFILE, EAGAIN,
 * ENOMEM, ENOSYS (NEW_SESSION or cwd where the C library cannot); EPERM
 * from a thread that is not the loop's. Pipe ends are close-on-exec and
 * non-blocking, and, like every fd of the library, never 0, 1 or 2. */
ALOOP_API aloop_process_t *aloop_process_spawn(aloop_t *loop, char *const argv[],
                                               const aloop_process_opts_t *opts);
/* The child's pid (valid until aloop_process_free), or -EINVAL for NULL. */
ALOOP_API int aloop_process_pid(const aloop_process_t *p);
/* The parent's end of each pipe, -1 when not piped (or already closed or
 * taken), -EINVAL for NULL. Use them with aloop_read/aloop_write_all/aloop_wait_*; they stay
 * owned by p (aloop_process_free closes them). */
ALOOP_API int aloop_process_stdin(const aloop_process_t *p);
ALOOP_API int aloop_process_stdout(const aloop_process_t *p);
ALOOP_API int aloop_process_stderr(const aloop_process_t *p);
/* Hands the pipe of which (0 stdin, 1 stdout, 2 stderr) over to the caller:
 * returns its fd, which p forgets (its getter returns -1; aloop_process_free
 * leaves it open). For a stream that owns the fd:
 *     aloop_stream_new(loop, aloop_process_take_fd(p, 1), 0)
 * -EBADF if that pipe is not (or no longer) there, -EINVAL. */
ALOOP_API int aloop_process_take_fd(aloop_process_t *p, int which);
/* Suspends until the child exits: 0 and *status (may be NULL) as from
 * waitpid (WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG). A wait after the
 * child was reaped returns 0 at once with the same status. Several tasks
 * may wait at once. -ECANCELED (the child runs on), -EPERM outside a task,
 * -EINVAL (NULL, or p belongs to another loop or to a freed one), -ECHILD
 * (a waitpid(-1) elsewhere in the program reaped the child first). */
ALOOP_API int aloop_process_wait(aloop_process_t *p, int *status);
/* Sends signo (0 = just check) to the child, never to another process
 * (through the child's pidfd where there is one): 0, -ESRCH once the child
 * was reaped, by the loop or by a waitpid(-1) elsewhere (its pid may be
 * someone else's by then), or p's loop was freed; -EINVAL, -EPERM. Not
 * suspending. */
ALOOP_API int aloop_process_kill(aloop_process_t *p, int signo);
/* The same to the child's whole process group (a child spawned with
 * ALOOP_PROCESS_NEW_GROUP: a shell and its pipeline, say), as long as any
 * member lives, also after the child itself exited and was reaped: 0,
 * -ESRCH once the group is empty or p's loop was freed, -EINVAL (no such
 * flag at spawn, bad signo), -EPERM. On Linux 6.9 and later it never
 * reaches a stranger's group that got the same id. */
ALOOP_API int aloop_process_kill_group(aloop_process_t *p, int signo);
/* Writes in[0..inlen) to the child's stdin and closes it, while reading
 * its stdout and stderr to EOF at the same time (no pipe can fill up and
 * deadlock, whatever the sizes), then waits for the exit: 0 with *status
 * as aloop_process_wait. *out / *err get malloc'd NUL-terminated copies of
 * what was read ("" when nothing; NULL when that stream is not piped), with
 * their lengths in *outlen / *errlen; free them with free(). Any of out,
 * outlen, err, errlen, status may be NULL: an unwanted output is still
 * drained. A child that exits or closes stdin before reading all of `in`
 * is not an error. Afterwards p's pipes are closed. -EPIPE (inlen > 0 but
 * stdin is not piped), -ENOMEM, -ECANCELED (the pipes not yet done stay
 * open, the child runs on), -EBUSY (another task reads one of the pipes),
 * -EPERM, -EINVAL, -ECHILD as aloop_process_wait. On every error after
 * the reading began (a timeout scope's -ECANCELED included), *out and
 * *err hold what was read so far (malloc'd, NUL-terminated, with their
 * lengths; NULL and 0 when nothing was), so a job stopped by a timeout
 * still shows its last words. */
ALOOP_API int aloop_process_communicate(aloop_process_t *p, const void *in, size_t inlen,
                                        char **out, size_t *outlen, char **err,
                                        size_t *errlen, int *status);
/* Closes the pipes p still owns and frees p. Does not kill: a child still
 * running is reaped by the loop when it exits. Tasks suspended in
 * aloop_process_wait on p go on waiting; tasks reading its pipes wake with
 * -EBADF. At aloop_free, children that exited are reaped; each one still
 * running is handed to a detached thread that reaps it when it exits (it
 * is not killed); handles still held stay valid for aloop_process_pid and
 * aloop_process_free only. NULL is a no-op. */
ALOOP_API void aloop_process_free(aloop_process_t *p);

/* ------------------------------------------------------------------------ */
/* 14. Errors and debug mode (ALOOP_DEBUG flag, or ALOOP_DEBUG=1 in the     */
/* environment)                                                             */
/* ------------------------------------------------------------------------ */

/* Text for a negative (or positive) errno value. Never NULL. ssize_t, so
 * that an I/O call's result passes without a cast. -ENOENT is "No such
 * file or directory" whatever the call; after a name lookup
 * (aloop_getaddrinfo, aloop_tcp_connect ...) it means "no such name". */
ALOOP_API const char *aloop_strerror(ssize_t err);

/* Debug mode also turns misuse into an abort with a message on stderr
 * ("aloop: <call>: ..."): a suspending call outside a task, a loop used from
 * another thread, aloop_run inside the running loop, an object of another
 * (or a freed) loop, aloop_free inside the running loop. Without it these
 * return -EPERM / -EINVAL (see each call) and change nothing. */

/* Receives one debug-mode warning: a line of text without '\n'. Warnings:
 * a task step longer than 100 ms, a failed future/task whose error nobody
 * retrieved, a loop freed with unfinished tasks or with task handles never
 * released, a double release. */
typedef void (*aloop_warning_fn)(aloop_t *loop, const char *message, void *arg);

/* Sends loop's warnings to fn(loop, message, arg); NULL fn = stderr (default). */
ALOOP_API void aloop_set_warning_handler(aloop_t *loop, aloop_warning_fn fn, void *arg);

/* Prints every unfinished task of loop to out: name, state, what it waits
 * on, where aloop_spawn was called (module+offset, for addr2line) and, for
 * a task that has run and is not running now, its backtrace, one frame a
 * line as "function+0xoff (object)" ("object+0xoff" for a function the
 * object does not export: static functions, executables linked without
 * -rdynamic). Safe from the loop's thread at any point: in a task, in a
 * callback, between runs. */
ALOOP_API void aloop_dump(aloop_t *loop, FILE *out);

/* Stores in frames[0..max) the return addresses on task t's stack,
 * innermost first: where it is suspended (its saved context), or, for the
 * running task, the caller's own stack (frames[0] is in the caller). Use
 * dladdr() or addr2line to name them. Returns the number stored (<= max);
 * 0 for a task that has not started or is done; -EINVAL for a NULL t, a
 * plain future, max < 0 or a NULL frames with max > 0; -EPERM from a
 * thread other than the one running t's loop.
 * The walk follows frame pointers: the library is built with them; for
 * your own functions to appear, build your code with -fno-omit-frame-pointer
 * (and, to see names rather than offsets, link executables with -rdynamic).
 * Frames of code built without them are skipped or end the walk early; it
 * never reads outside the task's stack. */
ALOOP_API int aloop_task_backtrace(aloop_task_t *t, void **frames, int max);

/* When signal signo arrives, every loop of the process prints aloop_dump to
 * stderr at its next step (after "aloop: dump on signal"): a loop asleep in
 * its poller wakes for it, a busy one dumps at its next tick, one whose
 * running task never suspends dumps once it does (debug mode's slow-step
 * warning names such a task). Replaces the signal's disposition until
 * aloop_dump_on_signal(0), which gives the previous one back; a second
 * signo replaces the first. Do not use a signal the program handles or
 * waits for itself (aloop_signal_wait). ALOOP_DUMP_SIGNAL=USR1 (a name,
 * with or without SIG, or a number) in the environment does the same from
 * the first aloop_new, unless the program called this first. 0; -EINVAL
 * for a signal that cannot be caught or is a fault (SIGKILL, SIGSTOP,
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL) or out of range. */
ALOOP_API int aloop_dump_on_signal(int signo);

/* ------------------------------------------------------------------------ */
/* Observability: metrics and hooks                                         */
/* ------------------------------------------------------------------------ */

/* A loop's counters (since aloop_new) and gauges (now), as libuv's
 * uv_metrics_info and Tokio's runtime metrics. New members are only ever
 * added at the end. */
typedef struct aloop_metrics {
    uint64_t iterations;    /* loop steps that polled (or slept) for fds */
    uint64_t events;        /* fd events the poller delivered */
    double poll_time;       /* seconds spent in polls that could block */
    uint64_t tasks_spawned; /* aloop_spawn calls that made a task */
    uint64_t tasks_done;    /* tasks finished (returned, failed, cancelled) */
    uint64_t switches;      /* times a task was switched in (direct hand-overs too) */
    uint64_t budget_yields; /* times a task was paused by its cooperative budget */
    size_t tasks_live;      /* spawned and not yet done */
    size_t ready;           /* tasks and callbacks ready to run now (budget-paused included) */
    size_t timers;          /* armed timers now: sleeps, deadlines, call_later */
    size_t fds;             /* fds a task waits on or a callback watches now */
    size_t pool_queued;     /* worker-pool jobs waiting for a thread */
    size_t pool_running;    /* ... and running on one */
    /* The loop's lag: how late (loop-clock seconds) the latest timer fired
     * after its deadline, and the most it ever was. A loop whose tasks hog
     * it, or a poll that oversleeps, shows here first. Always 0 under
     * ALOOP_CLOCK_VIRTUAL. */
    double lag, lag_max;
    uint64_t timers_fired;  /* timers that came due and fired */
} aloop_metrics_t;

/* Fills *m. O(1), plus O(highest fd) for fds and O(paused tasks) for
 * ready: cheap enough to call every second. From the loop's thread (or
 * while the loop does not run). 0; -EINVAL for NULL; -EPERM from another
 * thread while the loop runs. */
ALOOP_API int aloop_metrics(aloop_t *loop, aloop_metrics_t *m);

/* Called on task events, to write a tracer or a profiler of run times. */
typedef struct aloop_hooks {
    void (*spawn)(aloop_task_t *t, void *arg);   /* aloop_spawn made t */
    void (*resume)(aloop_task_t *t, void *arg);  /* t is switched in */
    void (*suspend)(aloop_task_t *t, void *arg); /* ... and out */
    void (*done)(aloop_task_t *t, void *arg);    /* t finished (it is done now) */
    void *arg;
} aloop_hooks_t;

/* Installs a copy of *h on loop (a NULL member is skipped; h NULL removes
 * them all). Per task, in this order: spawn once; then resume and suspend
 * in pairs, one pair per run slice (its last suspend when it returns);
 * then done once. A task cancelled before it ever ran gets spawn and done
 * only. At most one task is between resume and suspend at any time, so
 * the time between the two is the task's own run time. resume and
 * suspend run on the task's own stack; all run on the loop's thread, and
 * must not suspend, nor spawn, cancel or free tasks. Installed from a
 * task, that task's first event is its suspend. Tasks that aloop_free
 * cancels still report: remove the hooks first if arg goes away. With no
 * hooks the cost is one flag test per switch. 0; -EINVAL for a NULL loop;
 * -EPERM from another thread while the loop runs. */
ALOOP_API int aloop_set_hooks(aloop_t *loop, const aloop_hooks_t *h);

#ifdef __cplusplus
}
#endif
#endif /* ALOOP_H */

/*
 * coro_internal.h - coroutines (coro.c): contexts, stacks, the switch, and
 * the loop's coroutine state (struct aloop_coros, loop->coros). A leaf: it
 * knows nothing of loops or tasks. A coroutine runs the entry function it
 * was made with; the overflow report names what runs on it through the
 * label function its creator gave.
 */
#ifndef ALOOP_CORO_INTERNAL_H
#define ALOOP_CORO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base_internal.h"

/* The same layout whatever the build's context switch, so code compiled
 * without the library's definitions (tests, benchmarks) agrees on it. */
typedef struct aloop_ctx {
    void *sp; /* saved stack pointer (asm switch); the switch's frame
               * pointer while suspended (ucontext switch, for backtraces) */
    void *uc; /* ucontext_t * (ucontext switch), allocated with the coroutine */
} aloop_ctx_t;

typedef struct aloop_coro aloop_coro_t;
typedef struct aloop_coros aloop_coros_t;
/* What a coroutine runs, on its own stack; it never returns. */
typedef void (*aloop_coro_entry_fn)(aloop_coros_t *coros, aloop_coro_t *co);
/* Names what runs on the coroutine (from co->user) into buf (n bytes, NUL
 * included), for the stack-overflow report. Called from a signal handler:
 * it must not allocate, lock or call stdio. */
typedef void (*aloop_coro_label_fn)(const void *user, char *buf, size_t n);

struct aloop_coro {
    aloop_ctx_t ctx;
    struct aloop_coro *next_idle; /* in the loop's idle pool */
    void *user;                   /* the creator's: what runs on it now (NULL: nothing) */
    aloop_coro_entry_fn entry;
    aloop_coro_label_fn label;
    struct aloop_stack_chunk *chunk; /* the mapping the stack is carved from (coro.c) */
    char *map;                    /* its slot in the chunk, guard gap included */
    size_t map_size;
    char *stack_lo;               /* usable stack: [stack_lo, stack_lo + stack_size) */
    size_t stack_size;
    void *asan_fake_stack;
    void *tsan_fiber;             /* ThreadSanitizer's record of this context */
    unsigned valgrind_id;
};

/* The context a loop runs on (the caller's thread stack). */
typedef struct aloop_main_ctx {
    aloop_ctx_t ctx;
    void *asan_fake_stack;
    void *tsan_fiber;     /* TSan: the thread's own context, taken at each switch out */
    const void *stack_lo; /* learned from ASan on the first switch back */
    size_t stack_size;
    int switch_from_main; /* ASan: the switch under way started here */
} aloop_main_ctx_t;

#define ALOOP_DEFAULT_STACK (256u * 1024u)
#define ALOOP_MIN_STACK (16u * 1024u)
#define ALOOP_IDLE_CORO_MAX 1024   /* parked coroutines kept for reuse */
/* Parked coroutines keep their stack pages while the idle pool holds less
 * than this many bytes of stacks (at least one coroutine's worth); past
 * it, a coroutine that parks gives back every page below its frame. */
#define ALOOP_IDLE_HOT_BYTES (2u * 1024u * 1024u)

/* A loop's coroutine state: the first member of struct aloop, so that the
 * per-thread current loop (below) is also its coroutine state. */
struct aloop_coros {
    aloop_coro_t *running;       /* NULL while on the main context */
    aloop_main_ctx_t main;
    void *uc_template; /* ucontext_t: getcontext() once; makecontext starts from copies */
    aloop_coro_t *idle;          /* parked coroutines, ready for reuse */
    size_t idle_count;
    aloop_coro_t *zombie;        /* to free once off its stack */
    aloop_list_t stack_chunks;   /* stack chunks with a free slot */
    size_t stack_size;           /* of every stack, whole pages */
    size_t page_size;
    uint8_t guards;              /* a guard gap below every stack */
    /* Simulation (ALOOP_SIM_ENOMEM): allocations made while this is the
     * thread's current loop fail as this generator draws (alloc.c). */
    struct aloop_sim *alloc_faults;
};

/* The per-thread current loop, the library's only global state, seen as its
 * coroutine state (a loop's address: struct aloop starts with it).
 * initial-exec: a plain %fs-relative load even in the shared library, where
 * the default model would call __tls_get_addr on every access (every
 * suspending call reads it). It is set through aloop__set_tls_loop. */
#if defined(__GNUC__) && !defined(__APPLE__)
extern _Thread_local aloop_coros_t *aloop__tls_coros __attribute__((tls_model("initial-exec")));
#else
extern _Thread_local aloop_coros_t *aloop__tls_coros;
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ALOOP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ALOOP_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ALOOP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define ALOOP_TSAN 1
#endif
#if !defined(ALOOP_CONTEXT_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define ALOOP_CONTEXT_UCONTEXT 1
#endif
/* The plain asm switch is inlined into the scheduler; the sanitizers'
 * annotations and swapcontext's signal-mask care live out of line in coro.c. */
#if defined(ALOOP_CONTEXT_UCONTEXT) || defined(ALOOP_ASAN) || defined(ALOOP_TSAN)
#define ALOOP_SWITCH_OUT_OF_LINE 1
#else
#define ALOOP_SWITCH_OUT_OF_LINE 0
#endif

/* A new coroutine that will run entry(coros, co) when first switched to.
 * 0 / -ENOMEM (no memory, or no stack could be mapped). */
int aloop__coro_new(aloop_coros_t *coros, aloop_coro_entry_fn entry, aloop_coro_label_fn label,
                    aloop_coro_t **out);
void aloop__coro_free(aloop_coro_t *co);
/* Called on co's own stack, as it parks: gives the pages of co's stack
 * below the caller's frame back to the kernel (MADV_DONTNEED: they read
 * as zeros when touched again), when more than ALOOP_IDLE_HOT_BYTES of
 * stacks are parked already. */
void aloop__coro_park(aloop_coros_t *coros, aloop_coro_t *co, size_t parked);
/* The loop's coroutine state, set up by aloop_new_with (stack_size,
 * page_size and guards already set) and freed by aloop_free (the idle pool,
 * the zombie, the main context). 0 / negative errno. */
int aloop__coros_init(aloop_coros_t *coros);
void aloop__coros_free(aloop_coros_t *coros);
/* Switches from the running context (a coroutine, or the loop's main context
 * when from == NULL) to `to` (or to the main context when to == NULL). */
#if ALOOP_SWITCH_OUT_OF_LINE
void aloop__coro_switch(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to);
#else
static inline void aloop__coro_switch(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to);
#endif
/* Where a coroutine that is not running stopped: the address it resumes
 * at (0 when not known: the ucontext switch) and a frame pointer from
 * which its frame records lead up its stack. Never switched out yet (asm):
 * its entry point and 0. */
void aloop__coro_saved_pc_fp(const aloop_coro_t *co, uintptr_t *pc, uintptr_t *fp);
/* Process-wide: SIGSEGV handler on an alternate stack that names (through
 * its label function) what ran on a coroutine whose stack overflowed into
 * its guard gap. */
void aloop__install_overflow_handler(void);
/* Gives the calling thread an alternate signal stack unless it has one. */
int aloop__thread_altstack(void);

#ifndef ALOOP_CONTEXT_UCONTEXT
/* coro.c: saves the callee-saved registers, stores sp in *save_sp, loads
 * load_sp and returns into what was saved there. */
void aloop__ctx_swap(void **save_sp, void *load_sp);
#endif
#if !ALOOP_SWITCH_OUT_OF_LINE
static inline void aloop__coro_switch(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to) {
    void **save = from ? &from->ctx.sp : &coros->main.ctx.sp;
    void *load = to ? to->ctx.sp : coros->main.ctx.sp;
    coros->running = to;
    aloop__ctx_swap(save, load);
}
#endif

#endif /* ALOOP_CORO_INTERNAL_H */

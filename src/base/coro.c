/*
 * coro.c - coroutine contexts and stacks.
 *
 * Every coroutine's context is made by makecontext() on an mmap'd stack.
 * Switching is then done either by swapcontext() (ALOOP_CONTEXT_UCONTEXT),
 * or by a few instructions of assembly that save only what the ABI says a
 * callee must preserve. glibc's swapcontext also saves and restores the
 * signal mask, a system call on every switch (~230 ns against ~3 ns here).
 *
 * The asm path still uses makecontext: the context it prepared (entry point,
 * stack pointer) is turned into the frame the asm switch expects to pop, so
 * the first switch into a coroutine lands exactly where setcontext() would.
 *
 * Stacks are MAP_NORESERVE: only touched pages cost memory, so an idle task
 * costs a page or two. A guard gap of GUARD_GAP bytes (64 KiB) below each
 * stack catches overflow, also by a frame much larger than a page (a 16 KiB
 * frame would jump a one-page guard into the neighbouring stack). It is
 * installed with MADV_GUARD_INSTALL where the kernel has it (no new mapping,
 * so vm.max_map_count is not a limit; guard pages cost address space only),
 * else with mprotect(PROT_NONE) (also no memory, but it splits the mapping
 * in two: about 32,000 guarded stacks per process at the default
 * vm.max_map_count of 65,530). What the gap cannot catch: a single frame or
 * alloca larger than 64 KiB whose first access lands beyond the gap, in code
 * built without -fstack-clash-protection (which probes every page of a big
 * frame, so the probe hits the gap). The library itself is built with it.
 *
 * This file knows nothing of tasks: a coroutine runs the entry function it
 * was created with, and an overflow report names what runs on it through
 * the label function its creator gave.
 */
#include "coro_internal.h"

#include "alloc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef ALOOP_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef ALOOP_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(ALOOP_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Below each stack, at least this much address space that faults. */
#define GUARD_GAP (64u * 1024u)


/* ------------------------------------------------------------------------ */
/* The switch                                                                */
/* ------------------------------------------------------------------------ */

#ifndef ALOOP_CONTEXT_UCONTEXT
/* void aloop__ctx_swap(void **save_sp, void *load_sp)
 * Pushes the callee-saved registers and a return address on the current
 * stack, stores the stack pointer in *save_sp, loads load_sp and pops the
 * same frame from there. It ends in an indirect jump rather than `ret`: the
 * return-stack predictor would guess the wrong target on every switch. */
#if defined(__x86_64__)
__asm__(".text\n"
        ".p2align 4\n"
        ".globl aloop__ctx_swap\n"
        ".hidden aloop__ctx_swap\n"
        ".type aloop__ctx_swap,@function\n"
        "aloop__ctx_swap:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    popq %rcx\n"
        "    jmpq *%rcx\n"
        ".size aloop__ctx_swap, .-aloop__ctx_swap\n");
enum { FRAME_WORDS = 7 }; /* r15 r14 r13 r12 rbx rbp rip */
#elif defined(__aarch64__)
/* Frame (20 words, keeps sp 16-byte aligned): x19..x28 at [0..9], x29 at
 * [10], x30 at [11], d8..d15 (the callee-saved low halves of v8..v15) at
 * [12..19]. Unlike x86-64 it ends in `ret`, not `br x30`: under branch
 * target enforcement (BTI; -mbranch-protection=standard, which some
 * distributions build everything with) a `br` must land on a `bti j`, and
 * the return sites after a `bl` are not, so `br x30` faults on the first
 * switch back (tests/cross/bti.c); `ret` is not checked. `bti c` (hint #34,
 * a no-op on older cores) lets it be called through a pointer or a linker
 * veneer. .pushsection leaves the compiler's idea of the section intact. */
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".globl aloop__ctx_swap\n"
        ".hidden aloop__ctx_swap\n"
        ".type aloop__ctx_swap,%function\n"
        "aloop__ctx_swap:\n"
        "    hint #34\n" /* bti c */
        "    sub sp, sp, #160\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mov x2, sp\n"
        "    str x2, [x0]\n"
        "    mov sp, x1\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #160\n"
        "    ret\n"
        ".size aloop__ctx_swap, .-aloop__ctx_swap\n"
        ".popsection\n");
enum { FRAME_WORDS = 20 };
#endif

#endif /* !ALOOP_CONTEXT_UCONTEXT */

/* ------------------------------------------------------------------------ */
/* Switching, with the sanitizer annotations                                */
/* ------------------------------------------------------------------------ */

#if ALOOP_SWITCH_OUT_OF_LINE
static aloop_ctx_t *ctx_of(aloop_coros_t *coros, aloop_coro_t *co) {
    return co ? &co->ctx : &coros->main.ctx;
}
#endif

#ifdef ALOOP_ASAN
/* ASan keeps a shadow of each stack; it must be told when we change stacks
 * or it reports false stack-buffer overflows. The running context starts the
 * switch with the target's bounds; the resumed one finishes it and learns
 * the bounds of where it came from (how we learn the main stack's). */
static void asan_start(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to) {
    void **fake = from ? &from->asan_fake_stack : &coros->main.asan_fake_stack;
    const void *lo = to ? to->stack_lo : coros->main.stack_lo;
    size_t size = to ? to->stack_size : coros->main.stack_size;
    __sanitizer_start_switch_fiber(fake, lo, size);
}
static void asan_finish(aloop_coros_t *coros, aloop_coro_t *self, int from_main) {
    const void *lo;
    size_t size;
    void *fake = self ? self->asan_fake_stack : coros->main.asan_fake_stack;
    __sanitizer_finish_switch_fiber(fake, &lo, &size);
    if (from_main) {
        coros->main.stack_lo = lo;
        coros->main.stack_size = size;
    }
}
#endif

#ifdef ALOOP_TSAN
/* ThreadSanitizer keeps a shadow call stack and a clock per context: each
 * coroutine is a TSan fiber, and every switch names the fiber it enters.
 * The main context is whatever thread runs the loop now (a loop may run on
 * one thread, then another), so it is taken afresh at each switch out. */
static void tsan_switch(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to) {
    if (!from) coros->main.tsan_fiber = __tsan_get_current_fiber();
    if (to && !to->tsan_fiber) to->tsan_fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(to ? to->tsan_fiber : coros->main.tsan_fiber, 0);
}
#endif

#if ALOOP_SWITCH_OUT_OF_LINE
void aloop__coro_switch(aloop_coros_t *coros, aloop_coro_t *from, aloop_coro_t *to) {
    aloop_ctx_t *save = ctx_of(coros, from), *load = ctx_of(coros, to);
    coros->running = to;
#ifdef ALOOP_TSAN
    tsan_switch(coros, from, to);
#endif
#ifdef ALOOP_ASAN
    coros->main.switch_from_main = (from == NULL);
    asan_start(coros, from, to);
#endif
#ifdef ALOOP_CONTEXT_UCONTEXT
    /* swapcontext installs the signal mask saved in `load`. The mask must
     * stay the thread's, not the context's: aloop_signal_wait blocks its
     * signal from inside a task, and switching back to a context saved
     * earlier would unblock it (the signal then kills the process). */
    pthread_sigmask(SIG_SETMASK, NULL, &((ucontext_t *)load->uc)->uc_sigmask);
    /* Where a backtrace of the suspended context starts (backtrace.c).
     * The empty asm after the call keeps swapcontext from being a tail
     * call, so this frame stays in place while the context is suspended. */
    save->sp = __builtin_frame_address(0);
    swapcontext((ucontext_t *)save->uc, (ucontext_t *)load->uc);
    __asm__ volatile("");
#else
    aloop__ctx_swap(&save->sp, load->sp);
#endif
#ifdef ALOOP_ASAN
    asan_finish(coros, from, coros->main.switch_from_main);
#endif
}
#endif

/* The per-thread current loop, as its coroutine state (coro_internal.h).
 * Defined here, in the leaf, so that coro_entry and the overflow report
 * find the running coroutine without knowing of loops; the scheduler sets
 * it. */
#if defined(__GNUC__) && !defined(__APPLE__)
_Thread_local aloop_coros_t *aloop__tls_coros __attribute__((tls_model("initial-exec")));
#else
_Thread_local aloop_coros_t *aloop__tls_coros;
#endif

/* Entry point of every coroutine, on its own stack. makecontext cannot pass
 * pointers portably, so the coroutine is found through the current loop's
 * coroutine state: the switch into it set coros->running. */
static void coro_entry(void) {
    aloop_coros_t *coros = aloop__tls_coros;
    aloop_coro_t *co = coros->running;
#ifdef ALOOP_ASAN
    asan_finish(coros, co, coros->main.switch_from_main);
#endif
    co->entry(coros, co); /* never returns */
    abort();
}

/* ------------------------------------------------------------------------ */
/* Stacks                                                                   */
/* ------------------------------------------------------------------------ */

/* Stacks are carved out of chunks of STACKS_PER_CHUNK slots mapped at once
 * (guard page + stack each). On this kind of machine a fresh stack costs
 * about 1.5 us for mmap, 1 us for its guard page and 5 us for munmap (the
 * unmap splits the merged mapping); a chunk pays the mmap, the munmap and
 * (with process_madvise) the guard system call once for all its slots.
 * A slot given back is reused before any fresh one: its top page is already
 * resident and its guard already installed, so reuse costs no system call
 * and no page fault. A chunk is unmapped when its last slot comes back.
 * Invariant: a chunk is on coros->stack_chunks exactly while it has a free
 * or never-used slot. */
#define STACKS_PER_CHUNK 64

struct aloop_stack_chunk {
    aloop_list_t link;   /* in coros->stack_chunks while a slot is free */
    aloop_list_t *owner; /* that list (aloop__coro_free has no loop at hand) */
    char *map;
    size_t map_size, slot_size;
    unsigned used;       /* slots handed out */
    unsigned fresh;      /* slots [fresh, STACKS_PER_CHUNK) never handed out */
    unsigned nfree;      /* slots given back, in free_slots[0..nfree) */
    uint8_t guarded;     /* every slot's guard page is installed */
    uint8_t free_slots[STACKS_PER_CHUNK];
};

/* The guard gap: GUARD_GAP rounded up to whole pages, 0 without guards. */
static size_t guard_size(const aloop_coros_t *coros) {
    if (!coros->guards) return 0;
    return (GUARD_GAP + coros->page_size - 1) & ~(coros->page_size - 1);
}

static int guard_install(aloop_coros_t *coros, char *gap) {
    size_t size = guard_size(coros);
    if (madvise(gap, size, MADV_GUARD_INSTALL) == 0) return 0;
    return mprotect(gap, size, PROT_NONE) == 0 ? 0 : -errno;
}

/* valgrind does not know pidfd_open (it warns "unhandled syscall 434" and
 * fails it): under valgrind, skip straight to the per-slot guards. */
static int under_valgrind(void) {
#if defined(ALOOP_HAVE_VALGRIND)
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

/* Installs the guard gap of every slot with one process_madvise() on our
 * own process (Linux 6.13+ accepts MADV_GUARD_INSTALL there; the pidfd costs
 * two more system calls, still 3 per chunk instead of 64). Returns 1 if it
 * did, 0 to fall back to one madvise (or mprotect) per slot when the slot
 * is first handed out. */
static int guard_chunk(aloop_coros_t *coros, struct aloop_stack_chunk *c) {
#if defined(__linux__) && defined(SYS_process_madvise) && defined(SYS_pidfd_open)
    if (under_valgrind()) return 0;
    size_t gap = guard_size(coros);
    struct iovec iov[STACKS_PER_CHUNK];
    for (unsigned i = 0; i < STACKS_PER_CHUNK; i++) {
        iov[i].iov_base = c->map + i * c->slot_size;
        iov[i].iov_len = gap;
    }
    long pidfd = syscall(SYS_pidfd_open, (long)getpid(), 0L);
    if (pidfd < 0) return 0;
    long r = syscall(SYS_process_madvise, pidfd, iov, (long)STACKS_PER_CHUNK,
                     (long)MADV_GUARD_INSTALL, 0L);
    close((int)pidfd);
    return r == (long)(STACKS_PER_CHUNK * gap);
#else
    ALOOP_UNUSED(coros);
    ALOOP_UNUSED(c);
    return 0;
#endif
}

static struct aloop_stack_chunk *chunk_new(aloop_coros_t *coros) {
    struct aloop_stack_chunk *c = aloop__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slot_size = coros->stack_size + guard_size(coros);
    c->map_size = c->slot_size * STACKS_PER_CHUNK;
    void *map = aloop__map_stacks(c->map_size);
    if (!map) {
        aloop__free(c);
        return NULL;
    }
    c->map = map;
    c->guarded = guard_size(coros) == 0 || guard_chunk(coros, c);
    c->owner = &coros->stack_chunks;
    aloop__list_push_front(&coros->stack_chunks, &c->link);
    return c;
}

/* Takes a slot for co: a given-back one if any, else a fresh one. */
static int stack_map(aloop_coros_t *coros, aloop_coro_t *co) {
    struct aloop_stack_chunk *c;
    if (!aloop__list_empty(&coros->stack_chunks))
        c = ALOOP_CONTAINER_OF(coros->stack_chunks.next, struct aloop_stack_chunk, link);
    else if (!(c = chunk_new(coros)))
        return -ENOMEM;
    size_t gap = guard_size(coros);
    int reused = c->nfree > 0;
    unsigned slot = reused ? c->free_slots[--c->nfree] : c->fresh;
    char *map = c->map + slot * c->slot_size;
    if (!reused) {
        if (gap && !c->guarded && guard_install(coros, map) < 0) return -ENOMEM;
        c->fresh++;
    }
    c->used++;
    if (c->nfree == 0 && c->fresh == STACKS_PER_CHUNK) aloop__list_remove(&c->link); /* full */
    co->chunk = c;
    co->map = map;
    co->map_size = c->slot_size;
    co->stack_lo = map + gap;
    co->stack_size = coros->stack_size;
#if defined(ALOOP_HAVE_VALGRIND)
    co->valgrind_id = VALGRIND_STACK_REGISTER(co->stack_lo, co->stack_lo + co->stack_size);
#endif
    return 0;
}

/* Returns the pages of [lo, hi) (rounded inwards to pages) to the kernel.
 * Private anonymous memory: touched again, they are fresh zero pages. */
static void pages_release(char *lo, char *hi, size_t page) {
    uintptr_t a = ((uintptr_t)lo + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t b = (uintptr_t)hi & ~(uintptr_t)(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Gives co's slot back; the last one back unmaps the chunk, any other
 * gives its pages back (a slot waiting for reuse must not hold memory). */
static void stack_unmap(aloop_coro_t *co, size_t page) {
    struct aloop_stack_chunk *c = co->chunk;
    int was_full = c->nfree == 0 && c->fresh == STACKS_PER_CHUNK;
    c->free_slots[c->nfree++] = (uint8_t)((size_t)(co->map - c->map) / c->slot_size);
    c->used--;
    if (was_full) aloop__list_push_back(c->owner, &c->link);
    if (c->used == 0) {
        aloop__list_remove(&c->link);
        aloop__unmap(c->map, c->map_size);
        aloop__free(c);
    } else {
        pages_release(co->stack_lo, co->stack_lo + co->stack_size, page);
    }
}

/* Below the caller's frame, this much stays: the frames of the madvise()
 * call itself (a signal handler that runs meanwhile only gets zero pages
 * and loses nothing: everything below the stack pointer is dead). */
#if defined(__SANITIZE_ADDRESS__)
#define PARK_KEEP 8192u /* interceptors' frames */
#else
#define PARK_KEEP 1024u
#endif

void aloop__coro_park(aloop_coros_t *coros, aloop_coro_t *co, size_t parked) {
    if ((parked + 1) * coros->stack_size <= ALOOP_IDLE_HOT_BYTES) return;
    char here;
    uintptr_t sp = (uintptr_t)&here, lo = (uintptr_t)co->stack_lo;
    if (sp < lo + PARK_KEEP || sp > lo + co->stack_size) return; /* not on co's stack */
    pages_release(co->stack_lo, co->stack_lo + (sp - PARK_KEEP - lo), coros->page_size);
}

#ifndef ALOOP_CONTEXT_UCONTEXT
/* Builds, below the stack pointer makecontext chose, the frame that
 * aloop__ctx_swap pops: the first switch "returns" into the entry point
 * with exactly the registers setcontext() would have loaded for it. */
static void *frame_from_ucontext(const ucontext_t *uc) {
#if defined(__x86_64__)
    uintptr_t *sp = (uintptr_t *)(uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t *f = sp - FRAME_WORDS;
    memset(f, 0, FRAME_WORDS * sizeof *f);
    f[4] = (uintptr_t)uc->uc_mcontext.gregs[REG_RBX]; /* makecontext's uc_link slot */
    f[6] = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    return f;
#else
    uintptr_t *sp = (uintptr_t *)(uintptr_t)uc->uc_mcontext.sp;
    uintptr_t *f = sp - FRAME_WORDS;
    memset(f, 0, FRAME_WORDS * sizeof *f);
    /* sp is makecontext's, 16-byte aligned; the frame is 160 bytes, so sp
     * is aligned again when the entry point starts. x29 = 0 ends the frame
     * chain; x30 is where `ret` goes (makecontext's regs[30], its return to
     * __startcontext, is dropped: coro_entry never returns). */
    f[0] = (uintptr_t)uc->uc_mcontext.regs[19]; /* makecontext's uc_link slot */
    f[11] = (uintptr_t)uc->uc_mcontext.pc;
    return f;
#endif
}
#endif

/* Every coroutine's context is made by makecontext(). getcontext() (a
 * signal-mask system call) runs once per loop, into a template; each new
 * context starts as a copy of it. On the ucontext path the copy becomes
 * the coroutine's context; on the asm path only the entry point and stack
 * pointer makecontext set up are kept, as the first switch frame. */
int aloop__coro_new(aloop_coros_t *coros, aloop_coro_entry_fn entry, aloop_coro_label_fn label,
                    aloop_coro_t **out) {
    aloop_coro_t *co = aloop__calloc(1, sizeof *co);
    if (!co) return -ENOMEM;
    co->entry = entry;
    co->label = label;
#ifdef ALOOP_CONTEXT_UCONTEXT
    ucontext_t *uc = aloop__malloc(sizeof *uc);
    if (!uc || stack_map(coros, co) < 0) {
        aloop__free(uc);
        aloop__free(co);
        return -ENOMEM;
    }
    /* A full getcontext here: a copied template's FP-state pointer would
     * point into the template, and swapcontext would load from there. */
    if (getcontext(uc) < 0) abort();
#else
    ucontext_t ucbuf, *uc = &ucbuf;
    if (stack_map(coros, co) < 0) {
        aloop__free(co);
        return -ENOMEM;
    }
    memcpy(uc, coros->uc_template, sizeof *uc);
#endif
    uc->uc_link = NULL;
    uc->uc_stack.ss_sp = co->stack_lo;
    uc->uc_stack.ss_size = co->stack_size;
    makecontext(uc, coro_entry, 0);
#ifdef ALOOP_CONTEXT_UCONTEXT
    /* getcontext left its caller's frame pointer here, on another stack: a
     * 0 ends the coroutine's frame chain (as the asm path's frame does). */
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RBP] = 0;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[29] = 0;
#endif
    co->ctx.uc = uc;
#else
    co->ctx.sp = frame_from_ucontext(uc);
#endif
    *out = co;
    return 0;
}

void aloop__coro_saved_pc_fp(const aloop_coro_t *co, uintptr_t *pc, uintptr_t *fp) {
#ifdef ALOOP_CONTEXT_UCONTEXT
    /* What swapcontext saves as the resume point differs by libc and
     * architecture (glibc on aarch64 keeps a point inside swapcontext and
     * the real return address in another slot): the switch keeps its own
     * frame pointer in ctx.sp instead, whose record leads to its caller. */
    *pc = 0;
    *fp = (uintptr_t)co->ctx.sp;
#else
    /* The frame aloop__ctx_swap pushed (see its layout above). */
    const uintptr_t *f = co->ctx.sp;
#if defined(__x86_64__)
    *fp = f[5];
    *pc = f[6];
#else
    *fp = f[10];
    *pc = f[11];
#endif
#endif
}

void aloop__coro_free(aloop_coro_t *co) {
    if (!co) return;
#if defined(ALOOP_HAVE_VALGRIND)
    VALGRIND_STACK_DEREGISTER(co->valgrind_id);
#endif
#ifdef ALOOP_TSAN
    if (co->tsan_fiber) __tsan_destroy_fiber(co->tsan_fiber);
#endif
    stack_unmap(co, (size_t)sysconf(_SC_PAGESIZE));
#ifdef ALOOP_CONTEXT_UCONTEXT
    aloop__free(co->ctx.uc);
#endif
    aloop__free(co);
}

/* The loop's coroutine state (coro.c's part of struct aloop): the stack
 * chunks, and the main context's ucontext (ucontext path only). */
int aloop__coros_init(aloop_coros_t *coros) {
    aloop__list_init(&coros->stack_chunks);
    coros->uc_template = aloop__malloc(sizeof(ucontext_t));
    if (!coros->uc_template) return -ENOMEM;
    if (getcontext(coros->uc_template) < 0) return -errno;
#ifdef ALOOP_CONTEXT_UCONTEXT
    coros->main.ctx.uc = aloop__calloc(1, sizeof(ucontext_t));
    if (!coros->main.ctx.uc) return -ENOMEM;
#endif
    return 0;
}

/* aloop_free, once no task is left: the parked coroutines, the last
 * finished one, the main context. Also undoes a half-done init. */
void aloop__coros_free(aloop_coros_t *coros) {
    while (coros->idle) {
        aloop_coro_t *co = coros->idle;
        coros->idle = co->next_idle;
        aloop__coro_free(co);
    }
    coros->idle_count = 0;
    aloop__coro_free(coros->zombie);
    coros->zombie = NULL;
    aloop__free(coros->uc_template);
    coros->uc_template = NULL;
    aloop__free(coros->main.ctx.uc);
    coros->main.ctx.uc = NULL;
}

/* ------------------------------------------------------------------------ */
/* Stack overflow reports                                                   */
/* ------------------------------------------------------------------------ */

/* Process-wide by nature (signal dispositions are per process): the handler
 * we replaced, to pass on faults that are not ours. */
static struct sigaction previous_segv;
static int overflow_handler_installed;

static void write_str(const char *s) {
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    ALOOP_UNUSED(r);
}

static void write_num(size_t v) {
    char buf[24], *p = buf + sizeof buf;
    *--p = '\0';
    do *--p = (char)('0' + v % 10); while ((v /= 10) != 0);
    write_str(p);
}

static void on_segv(int sig, siginfo_t *info, void *uctx) {
    aloop_coros_t *coros = aloop__tls_coros;
    aloop_coro_t *co = coros ? coros->running : NULL;
    char *addr = info->si_addr;
    /* A fault in the guard gap below the running coroutine's stack is an
     * overflow of that stack. */
    if (co && addr < co->stack_lo && addr >= co->map) {
        char label[128] = "?";
        if (co->label) co->label(co->user, label, sizeof label);
        write_str("aloop: stack overflow in task '");
        write_str(label);
        write_str("' (stack size ");
        write_num(co->stack_size / 1024);
        write_str(" KiB); raise aloop_config_t.stack_size\n");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    if (previous_segv.sa_flags & SA_SIGINFO) {
        if (previous_segv.sa_sigaction) {
            previous_segv.sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
        previous_segv.sa_handler(sig);
        return;
    }
    /* Not ours and nobody else's: die of it as if we were not here. */
    signal(SIGSEGV, SIG_DFL);
}

void aloop__install_overflow_handler(void) {
    if (__atomic_exchange_n(&overflow_handler_installed, 1, __ATOMIC_ACQ_REL)) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
}

/* The handler runs on an alternate stack (the faulting one is full). Gives
 * this thread one unless it has one already; it lives as long as the
 * thread. Called whenever a loop starts running on a thread (a loop may be
 * created on one thread and run on another), so after the first call on a
 * thread it is one thread-local test. Returns 0, or -ENOMEM. */
int aloop__thread_altstack(void) {
    static _Thread_local uint8_t checked; /* part of the per-thread loop state */
    stack_t old;
    if (ALOOP_LIKELY(checked)) return 0;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE)) {
        checked = 1; /* the thread's owner gave it one: keep it */
        return 0;
    }
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return -ENOMEM;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    checked = 1;
    if (sigaltstack(&ss, NULL) < 0) {
        munmap(mem, size);
        return 0; /* no report on overflow, but nothing else is lost */
    }
    return 0;
}

/*
 * backtrace.c - the return addresses on a coroutine's stack (behind
 * aloop_task_backtrace, debug.c) and their names (aloop__symbolize, for
 * aloop_dump). A leaf: it knows coroutines, not tasks or loops.
 *
 * A suspended task's whole C stack is still there, on its coroutine: the
 * saved context gives the address it resumes at and its frame pointer, and
 * the chain of frame records ({previous frame pointer, return address} on
 * x86-64 and aarch64 alike) gives the rest. That chain exists only through
 * code built with frame pointers: the library is (-fno-omit-frame-pointer);
 * a caller's functions appear when it is too, and a function built without
 * them is skipped or ends the walk early, never crashes it.
 *
 * The walk trusts nothing it reads: every frame pointer must lie inside the
 * coroutine's stack, be aligned, and be above the one before, so a stack
 * with garbage in it (a frame of code without frame pointers, a half-built
 * frame) ends the walk instead of sending it through wild memory; and the
 * number of frames is bounded by max.
 */
#include "backtrace_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Reads other stacks' words: not our frames, so not ASan's business. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize_address)
#define NO_ASAN __attribute__((no_sanitize_address))
#endif
#endif
#ifndef NO_ASAN
#define NO_ASAN
#endif

/* A return address as the code sees it: aarch64 pointer authentication
 * (-mbranch-protection) may have signed it in the frame record; xpaclri
 * (a hint, a no-op on cores without it) strips the signature. */
static uintptr_t strip_pac(uintptr_t a) {
#if defined(__aarch64__) && defined(__GNUC__)
    register uintptr_t x30 __asm__("x30") = a;
    __asm__("hint #7" : "+r"(x30));
    return x30;
#else
    return a;
#endif
}

/* Follows the frame records from fp within [lo, hi), appending return
 * addresses to frames[n..max). Returns the new count. */
static NO_ASAN int fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **frames, int n,
                           int max) {
    while (n < max) {
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || fp % sizeof(uintptr_t)) break;
        const uintptr_t *rec = (const uintptr_t *)fp;
        uintptr_t next = rec[0], ret = strip_pac(rec[1]);
        if (!ret) break;
        frames[n++] = (void *)ret;
        if (next <= fp) break; /* the chain only goes up the stack */
        fp = next;
    }
    return n;
}

int aloop__coro_backtrace(const aloop_coro_t *co, const void *fp, void **frames, int max) {
    uintptr_t lo = (uintptr_t)co->stack_lo, hi = lo + co->stack_size, pc, saved_fp;
    if (fp) return fp_walk((uintptr_t)fp, lo, hi, frames, 0, max);
    aloop__coro_saved_pc_fp(co, &pc, &saved_fp);
    if (max == 0) return 0;
    if (!pc) return fp_walk(saved_fp, lo, hi, frames, 0, max);
    frames[0] = (void *)pc;
    return fp_walk(saved_fp, lo, hi, frames, 1, max);
}

/* addr as "function+0xoff (object)", or "object+0xoff" when the symbol is
 * not exported (a static function: `addr2line -f -e object 0xoff` names
 * it), or the bare address. A return address points after its call, which
 * may be the first byte of the next function: it is looked up one byte
 * back. */
void aloop__symbolize(const void *addr, char *buf, size_t n) {
    Dl_info info;
    const char *at = (const char *)addr;
    if (!dladdr(at - 1, &info) || !info.dli_fname) {
        snprintf(buf, n, "%p", addr);
        return;
    }
    const char *obj = strrchr(info.dli_fname, '/');
    obj = obj ? obj + 1 : info.dli_fname;
    if (!*obj) obj = "?";
    if (info.dli_sname && info.dli_saddr)
        snprintf(buf, n, "%s+0x%lx (%s)", info.dli_sname,
                 (unsigned long)(at - (const char *)info.dli_saddr), obj);
    else
        snprintf(buf, n, "%s+0x%lx", obj, (unsigned long)(at - (const char *)info.dli_fbase));
}

/*
 * backtrace_internal.h - walking a coroutine's stack by its frame records,
 * and naming addresses (backtrace.c). A leaf: it knows coroutines only.
 */
#ifndef ALOOP_BACKTRACE_INTERNAL_H
#define ALOOP_BACKTRACE_INTERNAL_H

#include <stddef.h>

#include "coro_internal.h"

/* Stores in frames[0..max) the return addresses on co's stack, innermost
 * first, and returns how many. fp NULL: co is not running; the walk starts
 * at the address it resumes at and its saved frame pointer. Otherwise co is
 * the running coroutine and fp a frame record on its stack (the caller's
 * __builtin_frame_address(0)); its return address comes first. Only frame
 * records inside co's stack, aligned and each above the one before, are
 * followed. */
int aloop__coro_backtrace(const aloop_coro_t *co, const void *fp, void **frames, int max);
/* addr as "function+0xoff (object)" (or "object+0xoff", or the bare
 * address) into buf, n bytes with the NUL (for aloop_dump). */
void aloop__symbolize(const void *addr, char *buf, size_t n);

#endif /* ALOOP_BACKTRACE_INTERNAL_H */

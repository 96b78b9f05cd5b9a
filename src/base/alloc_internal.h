/*
 * alloc_internal.h - the allocation wrappers (alloc.c), a leaf: every
 * allocation in the library goes through these, so the fault-injection hook
 * can make the Nth one fail.
 */
#ifndef ALOOP_ALLOC_INTERNAL_H
#define ALOOP_ALLOC_INTERNAL_H

#include <stddef.h>

void *aloop__malloc(size_t n);
void *aloop__calloc(size_t count, size_t n);
void *aloop__realloc(void *p, size_t n);
char *aloop__strdup(const char *s);
void aloop__free(void *p);
/* Anonymous MAP_NORESERVE mapping for coroutine stacks: NULL on failure
 * (also when the hook below says so). */
void *aloop__map_stacks(size_t n);
void aloop__unmap(void *map, size_t n);
/* size bytes aligned to size (a power of two, whole pages), zeroed; NULL on
 * failure (also when the hook says so). Freed with aloop__unmap. */
void *aloop__map_aligned(size_t size);
/* n bytes, not zeroed, for arrays that may be large: from 2 MiB on, a
 * 2 MiB-aligned mapping advised MADV_HUGEPAGE (few first-touch faults),
 * else malloc. NULL on failure (also when the hook says so). Freed with
 * aloop__free_big and the same n. */
void *aloop__malloc_big(size_t n);
void aloop__free_big(void *p, size_t n);
/* aloop_new: the allocator is fixed from now on (aloop_set_allocator
 * returns -EBUSY). */
void aloop__allocator_fix(void);
/* Test hook: the nth allocation from now (1 = the next) and every one after
 * it fail while fail_count > 0 (fail_count < 0 = for ever). 0 disables. */
void aloop__test_fail_alloc(long nth, long fail_count);
/* Test hook: number of allocations made so far (for sweeping nth). */
unsigned long aloop__test_alloc_count(void);

#endif /* ALOOP_ALLOC_INTERNAL_H */

/*
 * alloc.c - the one way libaloop allocates memory. The test hook makes the
 * Nth allocation fail, so tests can walk a scenario through every
 * allocation and check that each failure comes back as -ENOMEM (or NULL +
 * ENOMEM) with nothing leaked.
 *
 * The counters are process-wide on purpose: a test must reach allocations
 * made by any loop. They are only touched when the hook is armed. A
 * simulated loop with ALOOP_SIM_ENOMEM (sim.c) makes allocations on its
 * thread fail too, drawn from its own generator.
 */
#include "aloop.h"
#include "alloc_internal.h"
#include "coro_internal.h"
#include "sim_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

/* The user's allocator (aloop_set_allocator): process-wide like libuv's
 * uv_replace_allocator, fixed once the first loop exists (memory from one
 * allocator must never reach another's free). */
static void *(*user_malloc)(size_t) = malloc;
static void *(*user_realloc)(void *, size_t) = realloc;
static void (*user_free)(void *) = free;
static atomic_int allocator_fixed;

int aloop_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void (*free_fn)(void *)) {
    if (!malloc_fn != !realloc_fn || !malloc_fn != !free_fn) return -EINVAL;
    if (atomic_load(&allocator_fixed)) return -EBUSY;
    user_malloc = malloc_fn ? malloc_fn : malloc;
    user_realloc = realloc_fn ? realloc_fn : realloc;
    user_free = free_fn ? free_fn : free;
    return 0;
}

void aloop__allocator_fix(void) { atomic_store(&allocator_fixed, 1); }

static unsigned long alloc_count;
static long fail_nth;   /* 0 = off; else fail when alloc_count reaches it */
static long fail_left;  /* failures still to inject once reached (-1 = all) */

/* Simulation: the thread's current loop may draw a failure. */
static int sim_fails(void) {
    aloop_coros_t *cur = aloop__tls_coros;
    if (ALOOP_LIKELY(!cur || !cur->alloc_faults) || !aloop__sim_hit(cur->alloc_faults)) return 0;
    errno = ENOMEM;
    return 1;
}

static int should_fail(void) {
    if (ALOOP_LIKELY(fail_nth == 0)) return sim_fails();
    alloc_count++;
    if ((long)alloc_count < fail_nth) return 0;
    if (fail_left == 0) return 0;
    if (fail_left > 0) fail_left--;
    errno = ENOMEM;
    return 1;
}

void aloop__test_fail_alloc(long nth, long fail_count) {
    alloc_count = 0;
    fail_nth = nth;
    fail_left = fail_count;
}

unsigned long aloop__test_alloc_count(void) { return alloc_count; }

void *aloop__malloc(size_t n) { return should_fail() ? NULL : user_malloc(n); }
void *aloop__realloc(void *p, size_t n) { return should_fail() ? NULL : user_realloc(p, n); }
void aloop__free(void *p) { user_free(p); }

void *aloop__calloc(size_t count, size_t n) {
    if (should_fail()) return NULL;
    if (user_malloc == malloc) return calloc(count, n); /* zeroed pages come free */
    if (n && count > SIZE_MAX / n) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = user_malloc(count * n);
    if (p) memset(p, 0, count * n);
    return p;
}

char *aloop__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = aloop__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Coroutine stacks are mapped here too, so that the hook reaches a failed
 * mmap as well (a task then completes with -ENOMEM at its first step).
 * MAP_NORESERVE: only touched pages cost memory. */
void *aloop__map_stacks(size_t n) {
    if (should_fail()) return NULL;
    void *map = mmap(NULL, n, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    return map == MAP_FAILED ? NULL : map;
}

void aloop__unmap(void *map, size_t n) { munmap(map, n); }

/* size bytes (a power of two, a multiple of the page size) aligned to size,
 * so that what is carved out of it finds its header by masking its address
 * (task.c's slabs). Over-maps by size and trims both ends. */
void *aloop__map_aligned(size_t size) {
    if (should_fail()) return NULL;
    char *map = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return NULL;
    char *lo = (char *)(((uintptr_t)map + size - 1) & ~(uintptr_t)(size - 1));
    if (lo > map) munmap(map, (size_t)(lo - map));
    if (lo + size < map + 2 * size) munmap(lo + size, (size_t)(map + 2 * size - (lo + size)));
    return lo;
}

/* Arrays of 2 MiB and more (the ready ring of a loop with a million tasks
 * queued, gather's slots for a million inputs) come from their own mapping,
 * 2 MiB-aligned and MADV_HUGEPAGE: filled once from end to end, they would
 * otherwise cost one 4 KiB first-touch fault per page (about 12,000 of the
 * 16,000 faults of spawning 1M tasks and gathering them). Smaller arrays
 * come from malloc. The caller gives back the size it asked for. */
#define BIG_ALIGN ((size_t)2 << 20)

static size_t big_size(size_t n) { return (n + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1); }

void *aloop__malloc_big(size_t n) {
    if (n < BIG_ALIGN) return aloop__malloc(n);
    if (should_fail()) return NULL;
    size_t size = big_size(n);
    if (size < n) return NULL; /* overflow */
    char *map = mmap(NULL, size + BIG_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (map == MAP_FAILED) return NULL;
    char *lo = (char *)(((uintptr_t)map + BIG_ALIGN - 1) & ~(uintptr_t)(BIG_ALIGN - 1));
    if (lo > map) munmap(map, (size_t)(lo - map));
    if (lo + size < map + size + BIG_ALIGN)
        munmap(lo + size, (size_t)(map + size + BIG_ALIGN - (lo + size)));
#ifdef MADV_HUGEPAGE
    madvise(lo, size, MADV_HUGEPAGE);
#endif
    return lo;
}

void aloop__free_big(void *p, size_t n) {
    if (n < BIG_ALIGN) {
        aloop__free(p);
    } else if (p) {
        munmap(p, big_size(n));
    }
}

/*
 * base_internal.h - the compiler macros and the intrusive list every source
 * uses. A leaf: it depends on nothing of the library.
 */
#ifndef ALOOP_BASE_INTERNAL_H
#define ALOOP_BASE_INTERNAL_H

#include <stddef.h>

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

#endif /* ALOOP_BASE_INTERNAL_H */

/*
 * registry.c - the loops alive in the process (registry_internal.h): who
 * may still be posted to, kicked on SIGCHLD, woken for a dump.
 *
 * Entries live in fixed blocks that are appended to but never freed, so
 * the dump signal's handler can walk them without a lock: it reads only
 * the wake-up fds (atomic, fd + 1, 0 = none) and counts itself in
 * `in_handler` while it writes, so a loop leaving waits until no handler
 * can still be writing to its fd (whose number may be reused once it is
 * closed). Everything else (the loop pointer, the SIGCHLD state) is read
 * and written under `lock`: shared by the threads that hold a loop,
 * exclusive to add, remove and register. fork's child gets the lock free
 * (pthread_atfork) and no handler in flight.
 *
 * Process-wide state, like the signals and the threads it stands for.
 */
#include "registry_internal.h"

#include "alloc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>

#define ENTRIES_PER_BLOCK 64

typedef struct entry {
    const aloop_t *loop; /* NULL = free; under lock */
    void *chld;          /* the SIGCHLD fallback's state; under lock */
    int wake_fd;         /* fd + 1, 0 = none; atomic (the handler reads it) */
} entry_t;

typedef struct block {
    entry_t e[ENTRIES_PER_BLOCK];
    struct block *next; /* atomic; set once */
} block_t;

static block_t registry_blocks; /* the first block (aloop-gdb.py walks the chain) */
static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static int in_handler; /* handlers between reading a wake fd and writing to it */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void before_fork(void) { pthread_rwlock_wrlock(&lock); }
static void after_fork_parent(void) { pthread_rwlock_unlock(&lock); }
static void after_fork_child(void) {
    /* The other threads are gone, with whatever handler they ran; the lock
     * is made anew (the child's thread is not the one that took it). */
    __atomic_store_n(&in_handler, 0, __ATOMIC_SEQ_CST);
    pthread_rwlock_init(&lock, NULL);
}
static void register_atfork(void) { pthread_atfork(before_fork, after_fork_parent, after_fork_child); }

/* Under lock. */
static entry_t *find(const aloop_t *loop) {
    for (block_t *b = &registry_blocks; b; b = b->next)
        for (int i = 0; i < ENTRIES_PER_BLOCK; i++)
            if (b->e[i].loop == loop) return &b->e[i];
    return NULL;
}

/* Under lock, exclusively: a free entry, or NULL when out of memory. A new
 * block is kept for the life of the process (a handler may walk the chain
 * at any moment). */
static entry_t *take_free_entry(void) {
    entry_t *e = find(NULL);
    if (e) return e;
    block_t *last = &registry_blocks;
    while (last->next) last = last->next;
    block_t *b = aloop__calloc(1, sizeof *b);
    if (!b) return NULL;
    __atomic_store_n(&last->next, b, __ATOMIC_RELEASE);
    return &b->e[0];
}

int aloop__loops_add(aloop_t *loop, int wake_fd) {
    pthread_once(&atfork_once, register_atfork);
    pthread_rwlock_wrlock(&lock);
    entry_t *e = take_free_entry();
    if (e) {
        e->loop = loop;
        e->chld = NULL;
        __atomic_store_n(&e->wake_fd, wake_fd + 1, __ATOMIC_SEQ_CST);
    }
    pthread_rwlock_unlock(&lock);
    return e ? 0 : -ENOMEM;
}

void aloop__loops_remove(aloop_t *loop) {
    pthread_rwlock_wrlock(&lock); /* waits for the threads holding it */
    entry_t *e = find(loop);
    if (e) {
        __atomic_store_n(&e->wake_fd, 0, __ATOMIC_SEQ_CST);
        e->chld = NULL;
        e->loop = NULL;
    }
    pthread_rwlock_unlock(&lock);
    /* A handler that read the fd before it was cleared is still counted
     * here: the fd stays open until it is done (a few write calls). */
    while (__atomic_load_n(&in_handler, __ATOMIC_SEQ_CST)) sched_yield();
}

int aloop__loops_hold(const aloop_t *loop) {
    if (!loop) return 0;
    pthread_rwlock_rdlock(&lock);
    if (find(loop)) return 1;
    pthread_rwlock_unlock(&lock);
    return 0;
}

void aloop__loops_release(void) { pthread_rwlock_unlock(&lock); }

void aloop__loops_set_chld(aloop_t *loop, void *chld) {
    pthread_rwlock_wrlock(&lock);
    entry_t *e = find(loop);
    if (e) e->chld = chld;
    pthread_rwlock_unlock(&lock);
}

void aloop__loops_each_chld(void (*fn)(void *chld), const void *except) {
    pthread_rwlock_rdlock(&lock);
    for (block_t *b = &registry_blocks; b; b = b->next)
        for (int i = 0; i < ENTRIES_PER_BLOCK; i++)
            if (b->e[i].loop && b->e[i].chld && b->e[i].chld != except) fn(b->e[i].chld);
    pthread_rwlock_unlock(&lock);
}

void aloop__loops_wake_all(void) {
    __atomic_add_fetch(&in_handler, 1, __ATOMIC_SEQ_CST);
    for (block_t *b = &registry_blocks; b; b = __atomic_load_n(&b->next, __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < ENTRIES_PER_BLOCK; i++) {
            int fd = __atomic_load_n(&b->e[i].wake_fd, __ATOMIC_SEQ_CST) - 1;
            if (fd < 0) continue;
            /* 8 bytes: an eventfd takes nothing less; a pipe takes it too. */
            uint64_t one = 1;
            ssize_t n = write(fd, &one, sizeof one);
            (void)n; /* EAGAIN: it is full, so the loop wakes anyway */
        }
    }
    __atomic_sub_fetch(&in_handler, 1, __ATOMIC_SEQ_CST);
}

/*
 * registry_internal.h - the loops alive in the process (registry.c).
 *
 * One list, one lock, one rule: a loop is alive from aloop_new (once it
 * can take posts) to the first step of aloop_free. Another thread may touch
 * a loop only while it holds the loop alive (aloop__loops_hold); the
 * loop's own thread takes it out of the list (aloop__loops_remove), which
 * waits until no thread holds it and no signal handler is writing to its
 * wake-up fd. After fork, the child starts with the lock free and no
 * handler in flight; the loops of the parent stay listed (their memory is
 * the child's too).
 *
 * The users register what they need another thread or a signal handler
 * to find: the wake-up fd (the dump signal writes to it: dumpsig.c), the
 * SIGCHLD fallback's state (the loop that reads a SIGCHLD kicks the
 * others: process.c). The registry itself knows nothing of them.
 */
#ifndef ALOOP_REGISTRY_INTERNAL_H
#define ALOOP_REGISTRY_INTERNAL_H

#include "aloop.h"

/* aloop_new: loop is alive from now on; wake_fd is where a signal handler
 * wakes it (aloop__loops_wake_all). 0 / -ENOMEM. */
int aloop__loops_add(aloop_t *loop, int wake_fd);
/* aloop_free's first step, on the loop's thread: not alive any more; returns
 * once no other thread holds it and no handler writes to its wake-up fd.
 * A no-op for a loop not listed. */
void aloop__loops_remove(aloop_t *loop);

/* Any thread: 1 if loop is alive, and then it stays so (not freed, its
 * registered state kept) until aloop__loops_release; 0 if it is not
 * (nothing held). Holds of several threads run in parallel; a thread
 * holding a loop adds, removes and registers nothing. */
int aloop__loops_hold(const aloop_t *loop);
void aloop__loops_release(void);

/* The loop's SIGCHLD state (NULL: not on that path); a no-op once the loop
 * has left the list. */
void aloop__loops_set_chld(aloop_t *loop, void *chld);
/* Calls fn(chld) for each alive loop's SIGCHLD state but except, with the
 * loops held. */
void aloop__loops_each_chld(void (*fn)(void *chld), const void *except);

/* Async-signal-safe, takes no lock: writes to every alive loop's wake-up fd. */
void aloop__loops_wake_all(void);

#endif

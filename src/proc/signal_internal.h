/*
 * signal_internal.h - what the loop knows of signal.c: a pointer to its
 * state (loop->signals, NULL until the first aloop_signal_wait) and the
 * call that frees it. Kept this small on purpose: signal.c may grow (child
 * processes) without the loop learning more.
 */
#ifndef ALOOP_SIGNAL_INTERNAL_H
#define ALOOP_SIGNAL_INTERNAL_H

struct aloop;
struct aloop_signals; /* signal.c */

/* aloop_free: closes the signal fds, restores masks and handlers, frees
 * loop->signals. Runs before the fd table is freed (it forgets its fds). */
void aloop__signal_free(struct aloop *loop);

/* A library-internal listener for signo (one per signal; process.c's
 * SIGCHLD): fn(loop) runs from the poll each time signo is read, before
 * the waiting tasks wake; like an io hook it must only wake tasks or make
 * syscalls. While subscribed, signo is blocked in the loop's thread and
 * read through its signalfd (the self-pipe elsewhere). 0, -EBUSY (another
 * listener), -EINVAL, -ENOMEM, -errno. */
typedef void (*aloop_signal_hook_fn)(struct aloop *loop);
int aloop__signal_subscribe(struct aloop *loop, int signo, aloop_signal_hook_fn fn);
void aloop__signal_unsubscribe(struct aloop *loop, int signo);

#endif /* ALOOP_SIGNAL_INTERNAL_H */

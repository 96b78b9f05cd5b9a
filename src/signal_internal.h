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

#endif /* ALOOP_SIGNAL_INTERNAL_H */

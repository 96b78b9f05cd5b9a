/*
 * process_internal.h - what the loop (and the tests) know of process.c:
 * a pointer to its state (loop->procs, NULL until the first spawn) and the
 * call aloop_free makes.
 */
#ifndef ALOOP_PROCESS_INTERNAL_H
#define ALOOP_PROCESS_INTERNAL_H

struct aloop;
struct aloop_procs; /* process.c */

/* aloop_free, once no task is left and before signals and the fd table go:
 * reaps children that exited, hands those still running to a reaper
 * thread, detaches the handles the user still holds, frees loop->procs. */
void aloop__process_free(struct aloop *loop);

/* Test hook: 1 if loop watches its children with pidfds, 0 if through
 * SIGCHLD, -1 before its first spawn. */
int aloop__process_uses_pidfd(const struct aloop *loop);

#endif /* ALOOP_PROCESS_INTERNAL_H */

/*
 * pipe_internal.h - the non-blocking, close-on-exec pipe (pipe.c), a leaf
 * shared by the thread pool's wake-up fd and the signal self-pipe where
 * eventfd / signalfd are missing.
 */
#ifndef ALOOP_PIPE_INTERNAL_H
#define ALOOP_PIPE_INTERNAL_H

/* fds[0] read end, fds[1] write end, both O_NONBLOCK and FD_CLOEXEC.
 * 0, or -errno with nothing left open. */
int aloop__pipe(int fds[2]);

#endif /* ALOOP_PIPE_INTERNAL_H */

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

/* The library's own fds never sit on 0, 1 or 2: a program that closed
 * one of them would otherwise find a library fd there (its printf going
 * to the loop's epoll fd, a child inheriting a pipe end as its stdout).
 * Returns fd itself when it is above 2 (or < 0); else a close-on-exec
 * copy at 3 or above, the original closed (-1 + errno on failure, nothing
 * left open). */
int aloop__fd_high(int fd);

#endif /* ALOOP_PIPE_INTERNAL_H */

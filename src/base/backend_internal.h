/*
 * backend_internal.h - the kernel poller behind io.c: exactly one of
 * backend_epoll.c, backend_kqueue.c, backend_poll.c is compiled. A leaf: a
 * backend knows fds and masks, nothing of loops, tasks or watches; it hands
 * each event to the function io.c passes to aloop__backend_wait.
 */
#ifndef ALOOP_BACKEND_INTERNAL_H
#define ALOOP_BACKEND_INTERNAL_H

#include <limits.h>

/* Readiness bits, in masks and events. */
/* ALOOP__IO_CLOSED: the fd is not open any more (poll(2)'s POLLNVAL): its
 * waiters wake with -EBADF (io.c). */
enum { ALOOP__IO_READ = 1u, ALOOP__IO_WRITE = 2u, ALOOP__IO_ERROR = 4u, ALOOP__IO_CLOSED = 8u };

typedef struct aloop_backend aloop_backend_t; /* each backend's own */
/* Called once per event from aloop__backend_wait; must not change what the
 * backend watches (io.c defers every shrink to before the next wait). */
typedef void (*aloop_backend_ready_fn)(void *ctx, int fd, unsigned events);

/* A new backend in *out: 0, -ENOMEM, or the kernel's -errno. */
int aloop__backend_new(aloop_backend_t **out);
void aloop__backend_free(aloop_backend_t *b); /* NULL: no-op */
/* Changes what the backend watches on fd from old_mask to new_mask (either
 * may be 0). old_mask is io.c's belief, which may be stale (fd closed with
 * close(2), and maybe its number reused, while registered): the backend
 * says what it found and decides nothing. 0, or -errno: -ENOENT, the
 * kernel holds no registration old_mask names; -EEXIST, it holds one
 * although old_mask is 0; -EBADF, fd is not open; -EPERM, fd cannot be
 * polled (a regular file). io.c's backend_change applies the one rule. */
int aloop__backend_set(aloop_backend_t *b, int fd, unsigned old_mask, unsigned new_mask);
/* Waits up to timeout seconds (< 0: for ever) and calls ready(ctx, fd,
 * events) for each event. Number of events, or -errno (EINTR: 0). */
int aloop__backend_wait(aloop_backend_t *b, double timeout, aloop_backend_ready_fn ready, void *ctx);
/* Whether fd, registered with mask, is still the file the backend watches:
 * 0 once it was closed with close(2) (epoll: also when the number was then
 * reused by a file the backend does not watch), else 1. One syscall. */
int aloop__backend_watching(aloop_backend_t *b, int fd, unsigned mask);
/* The backend's pollable fd (epoll, kqueue), or -ENOTSUP (poll(2)). */
int aloop__backend_fd(const aloop_backend_t *b);

/* Seconds to a millisecond timeout for epoll_wait/poll (< 0: -1, for ever),
 * rounded up so that a wait never ends just before a deadline and spins. */
static inline int aloop__backend_timeout_ms(double timeout) {
    if (timeout < 0) return -1;
    double ms = timeout * 1000.0;
    if (ms >= (double)INT_MAX) return INT_MAX;
    int whole = (int)ms;
    return whole < ms ? whole + 1 : whole;
}

#endif /* ALOOP_BACKEND_INTERNAL_H */

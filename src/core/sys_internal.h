/*
 * sys_internal.h - the library's system calls on fds, in one place: every
 * read, recv, write, send, recvmsg, sendto, accept and connect the library
 * makes for a task goes through these, so that simulation (sim.c) can
 * inject its faults at exactly one spot per family.
 *
 * Each wrapper behaves as the system call it names (a count or fd, or -1
 * with errno set), so a call site changes only its name and gains the loop.
 * With simulation off (loop->sim.faults == 0, or no loop) the cost is one
 * load and one predicted branch before the real call.
 *
 * The waits have hooks of their own (io.c: aloop__io_wait's spurious
 * readiness and delays, aloop__io_sim_delay for accept and connect).
 */
#ifndef ALOOP_SYS_INTERNAL_H
#define ALOOP_SYS_INTERNAL_H

/* Included after internal.h (struct aloop), which it does not include
 * itself: it only reads loop->sim and calls base/sim.c. */
#include "sim_internal.h"

#include <sys/socket.h>
#include <unistd.h>

static inline int aloop__sim_on(const aloop_t *loop) {
    return ALOOP_UNLIKELY(loop != NULL && loop->sim.faults != 0);
}

static inline ssize_t aloop__sys_recv(aloop_t *loop, int fd, void *buf, size_t len, int flags) {
    if (aloop__sim_on(loop)) return aloop__sim_recv(&loop->sim, fd, buf, len, flags);
    return recv(fd, buf, len, flags);
}
static inline ssize_t aloop__sys_send(aloop_t *loop, int fd, const void *buf, size_t len,
                                      int flags) {
    if (aloop__sim_on(loop)) return aloop__sim_send(&loop->sim, fd, buf, len, flags);
    return send(fd, buf, len, flags);
}
static inline ssize_t aloop__sys_read(aloop_t *loop, int fd, void *buf, size_t len) {
    if (aloop__sim_on(loop)) return aloop__sim_read(&loop->sim, fd, buf, len);
    return read(fd, buf, len);
}
static inline ssize_t aloop__sys_write(aloop_t *loop, int fd, const void *buf, size_t len) {
    if (aloop__sim_on(loop)) return aloop__sim_write(&loop->sim, fd, buf, len);
    return write(fd, buf, len);
}
static inline ssize_t aloop__sys_recvmsg(aloop_t *loop, int fd, struct msghdr *m, int flags) {
    if (aloop__sim_on(loop)) return aloop__sim_recvmsg(&loop->sim, fd, m, flags);
    return recvmsg(fd, m, flags);
}
static inline ssize_t aloop__sys_sendto(aloop_t *loop, int fd, const void *buf, size_t len,
                                        int flags, const struct sockaddr *to, socklen_t tolen) {
    if (aloop__sim_on(loop)) return aloop__sim_sendto(&loop->sim, fd, buf, len, flags, to, tolen);
    return sendto(fd, buf, len, flags, to, tolen);
}
/* accept4(2) with flags where it exists; elsewhere flags must be 0. */
static inline int aloop__sys_accept(aloop_t *loop, int lfd, struct sockaddr *addr,
                                    socklen_t *len, int flags) {
    if (aloop__sim_on(loop)) return aloop__sim_accept(&loop->sim, lfd, addr, len, flags);
#if defined(__linux__) || defined(__FreeBSD__)
    return accept4(lfd, addr, len, flags);
#else
    (void)flags;
    return accept(lfd, addr, len);
#endif
}
static inline int aloop__sys_connect(aloop_t *loop, int fd, const struct sockaddr *addr,
                                     socklen_t len) {
    if (aloop__sim_on(loop)) return aloop__sim_connect(&loop->sim, fd, addr, len);
    return connect(fd, addr, len);
}

#endif /* ALOOP_SYS_INTERNAL_H */

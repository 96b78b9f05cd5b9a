/*
 * udp.c - datagram sockets: aloop_udp_bind, aloop_udp_connect,
 * aloop_recvfrom, aloop_sendto.
 *
 * One call moves one datagram, as recvfrom(2)/sendto(2) do: the calls try
 * the syscall first and wait for readiness only on EAGAIN, so a busy socket
 * costs no poller work. A datagram is taken off the socket only by the
 * recvmsg that returns it, so a cancelled (or timed-out) receive loses
 * nothing: the next receive gets the datagram. A send either hands the
 * whole datagram to the kernel or nothing.
 *
 * Truncation: a datagram longer than the buffer is not silently cut. The
 * buffer gets its first len bytes, the rest is dropped by the kernel (there
 * is no way to read it later), and the call says so with -EMSGSIZE rather
 * than returning len, which would look like a datagram of exactly len bytes
 * (MSG_TRUNC in recvmsg's flags tells us).
 */
#include "internal.h"
#include "sys_internal.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored instead (see io.c) */
#endif

int aloop_udp_bind(const char *host, const char *port) {
    if (!port) return -EINVAL;
    return aloop__net_bind(host, port, SOCK_DGRAM, 0, 0);
}

int aloop_udp_connect(const char *host, const char *port) {
    if (!host || !port) return -EINVAL;
    struct addrinfo *ai;
    int rc = aloop__net_resolve(host, port, SOCK_DGRAM, 0, &ai);
    if (rc < 0) return rc;
    int first_err = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = aloop__net_socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0) {
            /* a datagram connect only sets the peer: it never waits */
            if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
                freeaddrinfo(ai);
                return fd;
            }
            int e = -errno;
            close(fd);
            fd = e;
        }
        if (!first_err) first_err = fd;
    }
    freeaddrinfo(ai);
    return first_err ? first_err : -EADDRNOTAVAIL;
}

ssize_t aloop_recvfrom(int fd, void *buf, size_t len, struct sockaddr *addr, socklen_t *alen) {
    if (fd < 0) return -EBADF;
    if ((!buf && len) || (addr && !alen)) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    socklen_t cap = addr ? *alen : 0;
    for (;;) {
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr mh = {.msg_name = addr, .msg_namelen = cap, .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = aloop__sys_recvmsg(t->fut.loop, fd, &mh, MSG_DONTWAIT);
        if (n >= 0) {
            if (alen) *alen = addr ? mh.msg_namelen : 0;
            return (mh.msg_flags & MSG_TRUNC) ? -EMSGSIZE : n;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        int rc = aloop__io_wait(t, fd, 0, -1);
        if (rc < 0) return rc;
    }
}

ssize_t aloop_sendto(int fd, const void *buf, size_t len, const struct sockaddr *addr,
                     socklen_t alen) {
    if (fd < 0) return -EBADF;
    if (!buf && len) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    for (;;) {
        ssize_t n = addr ? aloop__sys_sendto(t->fut.loop, fd, buf, len,
                                             MSG_DONTWAIT | MSG_NOSIGNAL, addr, alen)
                         : aloop__sys_send(t->fut.loop, fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        int rc = aloop__io_wait(t, fd, 1, -1);
        if (rc < 0) return rc;
    }
}

/*
 * backend_epoll.c - the Linux poller: one epoll instance per loop, level-
 * triggered. io.c keeps fds registered across waits, so in steady state a
 * wait costs no epoll_ctl at all; this file only maps masks to syscalls.
 */
#include "internal.h"

#include <sys/epoll.h>
#include <unistd.h>

#define EPOLL_BATCH 256

typedef struct epoll_backend {
    int epfd;
    struct epoll_event events[EPOLL_BATCH];
} epoll_backend_t;

int aloop__backend_init(aloop_t *loop) {
    epoll_backend_t *b = aloop__malloc(sizeof *b);
    if (!b) return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int err = -errno;
        aloop__free(b);
        return err;
    }
    loop->io->backend = b;
    return 0;
}

void aloop__backend_free(aloop_t *loop) {
    epoll_backend_t *b = loop->io->backend;
    if (!b) return;
    close(b->epfd);
    aloop__free(b);
    loop->io->backend = NULL;
}

static uint32_t to_epoll(unsigned mask) {
    return ((mask & ALOOP__IO_READ) ? (uint32_t)EPOLLIN : 0u) |
           ((mask & ALOOP__IO_WRITE) ? (uint32_t)EPOLLOUT : 0u);
}

int aloop__backend_set(aloop_t *loop, int fd, unsigned old_mask, unsigned new_mask) {
    epoll_backend_t *b = loop->io->backend;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = to_epoll(new_mask);
    ev.data.fd = fd;
    if (!new_mask) {
        /* ENOENT / EBADF: the kernel already dropped it when fd was closed */
        if (epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT && errno != EBADF)
            return -errno;
        return 0;
    }
    int op = old_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(b->epfd, op, fd, &ev) == 0) return 0;
    /* Our idea of the registration was stale (fd closed and reused, or
     * registered by an earlier incarnation): try the other operation. */
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD;
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    return epoll_ctl(b->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

int aloop__backend_wait(aloop_t *loop, double timeout) {
    epoll_backend_t *b = loop->io->backend;
    int n = epoll_wait(b->epfd, b->events, EPOLL_BATCH, aloop__backend_timeout_ms(timeout));
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = b->events[i].events;
        unsigned mask = ((e & EPOLLIN) ? ALOOP__IO_READ : 0u) | ((e & EPOLLOUT) ? ALOOP__IO_WRITE : 0u) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? ALOOP__IO_ERROR : 0u);
        aloop__io_ready(loop, b->events[i].data.fd, mask);
    }
    return n;
}

int aloop__backend_fd(aloop_t *loop) {
    epoll_backend_t *b = loop->io->backend;
    return b->epfd;
}

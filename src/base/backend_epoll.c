/*
 * backend_epoll.c - the Linux poller: one epoll instance per loop, level-
 * triggered. io.c keeps fds registered across waits, so in steady state a
 * wait costs no epoll_ctl at all; this file only maps masks to syscalls.
 */
#include "backend_internal.h"

#include "alloc_internal.h"
#include "pipe_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <sys/epoll.h>
#include <unistd.h>

#define EPOLL_BATCH 256

struct aloop_backend {
    int epfd;
    struct epoll_event events[EPOLL_BATCH];
};

int aloop__backend_new(aloop_backend_t **out) {
    aloop_backend_t *b = aloop__malloc(sizeof *b);
    if (!b) return -ENOMEM;
    b->epfd = aloop__fd_high(epoll_create1(EPOLL_CLOEXEC));
    if (b->epfd < 0) {
        int err = -errno;
        aloop__free(b);
        return err;
    }
    *out = b;
    return 0;
}

void aloop__backend_free(aloop_backend_t *b) {
    if (!b) return;
    close(b->epfd);
    aloop__free(b);
}

static uint32_t to_epoll(unsigned mask) {
    return ((mask & ALOOP__IO_READ) ? (uint32_t)EPOLLIN : 0u) |
           ((mask & ALOOP__IO_WRITE) ? (uint32_t)EPOLLOUT : 0u);
}

int aloop__backend_set(aloop_backend_t *b, int fd, unsigned old_mask, unsigned new_mask) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = to_epoll(new_mask);
    ev.data.fd = fd;
    int op = !new_mask ? EPOLL_CTL_DEL : old_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    /* ENOENT (DEL, MOD) / EEXIST (ADD): old_mask was stale; io.c decides */
    return epoll_ctl(b->epfd, op, fd, &ev) == 0 ? 0 : -errno;
}

/* A closed file leaves the epoll set silently; MOD with the same mask is a
 * no-op for a live registration and fails for a gone one (EBADF: closed;
 * ENOENT: the number is another, unregistered file now). */
int aloop__backend_watching(aloop_backend_t *b, int fd, unsigned mask) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = to_epoll(mask);
    ev.data.fd = fd;
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 1;
    return errno != EBADF && errno != ENOENT;
}

int aloop__backend_wait(aloop_backend_t *b, double timeout, aloop_backend_ready_fn ready, void *ctx) {
    int n = epoll_wait(b->epfd, b->events, EPOLL_BATCH, aloop__backend_timeout_ms(timeout));
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = b->events[i].events;
        unsigned mask = ((e & EPOLLIN) ? ALOOP__IO_READ : 0u) | ((e & EPOLLOUT) ? ALOOP__IO_WRITE : 0u) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? ALOOP__IO_ERROR : 0u);
        ready(ctx, b->events[i].data.fd, mask);
    }
    return n;
}

int aloop__backend_fd(const aloop_backend_t *b) { return b->epfd; }

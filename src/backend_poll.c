/*
 * backend_poll.c - the portable poller: a dense pollfd array rebuilt
 * incrementally. Each watched fd remembers its slot (watch->slot), so adding,
 * changing and removing an fd are O(1) (removal swaps the last entry in).
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>

typedef struct poll_backend {
    struct pollfd *fds;
    size_t n, cap;
} poll_backend_t;

int aloop__backend_init(aloop_t *loop) {
    poll_backend_t *b = aloop__calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    loop->io->backend = b;
    return 0;
}

void aloop__backend_free(aloop_t *loop) {
    poll_backend_t *b = loop->io->backend;
    if (!b) return;
    aloop__free(b->fds);
    aloop__free(b);
    loop->io->backend = NULL;
}

static short to_poll(unsigned mask) {
    return (short)(((mask & ALOOP__IO_READ) ? POLLIN : 0) | ((mask & ALOOP__IO_WRITE) ? POLLOUT : 0));
}

static void slot_remove(struct aloop_io *io, poll_backend_t *b, aloop_io_watch_t *w) {
    size_t slot = (size_t)w->slot;
    b->n--;
    if (slot != b->n) {
        b->fds[slot] = b->fds[b->n];
        io->watches[b->fds[slot].fd].slot = (int)slot;
    }
    w->slot = -1;
}

int aloop__backend_set(aloop_t *loop, int fd, unsigned old_mask, unsigned new_mask) {
    ALOOP_UNUSED(old_mask);
    struct aloop_io *io = loop->io;
    poll_backend_t *b = io->backend;
    aloop_io_watch_t *w = &io->watches[fd];
    if (!new_mask) {
        if (w->slot >= 0) slot_remove(io, b, w);
        return 0;
    }
    if (w->slot < 0) {
        /* poll() would only say POLLNVAL later; epoll fails here, so do we */
        if (fcntl(fd, F_GETFD) < 0) return -errno;
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            struct pollfd *fds = aloop__realloc(b->fds, cap * sizeof *fds);
            if (!fds) return -ENOMEM;
            b->fds = fds;
            b->cap = cap;
        }
        w->slot = (int)b->n++;
        b->fds[w->slot].fd = fd;
    }
    b->fds[w->slot].events = to_poll(new_mask);
    b->fds[w->slot].revents = 0;
    return 0;
}

int aloop__backend_wait(aloop_t *loop, double timeout) {
    poll_backend_t *b = loop->io->backend;
    int n = poll(b->fds, (nfds_t)b->n, aloop__backend_timeout_ms(timeout));
    if (n < 0) return errno == EINTR ? 0 : -errno;
    /* aloop__io_ready never changes the array (shrinking is deferred to the
     * next poll), so iterating it in place is safe. */
    int seen = 0;
    for (size_t i = 0; i < b->n && seen < n; i++) {
        short r = b->fds[i].revents;
        if (!r) continue;
        seen++;
        unsigned mask = ((r & POLLIN) ? ALOOP__IO_READ : 0u) | ((r & POLLOUT) ? ALOOP__IO_WRITE : 0u) |
                        ((r & (POLLERR | POLLHUP | POLLNVAL)) ? ALOOP__IO_ERROR : 0u);
        aloop__io_ready(loop, b->fds[i].fd, mask);
    }
    return n;
}

/* poll(2) has no fd of its own that a host could poll. */
int aloop__backend_fd(aloop_t *loop) {
    ALOOP_UNUSED(loop);
    return -ENOTSUP;
}

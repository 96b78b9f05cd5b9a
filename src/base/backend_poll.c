/*
 * backend_poll.c - the portable poller: a dense pollfd array rebuilt
 * incrementally. A table indexed by fd remembers each watched fd's slot, so
 * adding, changing and removing an fd are O(1) (removal swaps the last
 * entry in).
 */
#include "backend_internal.h"

#include "alloc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>

struct aloop_backend {
    struct pollfd *fds;
    size_t n, cap;
    int *slot_of; /* indexed by fd: its index in fds, or -1 */
    size_t nslots;
};

int aloop__backend_new(aloop_backend_t **out) {
    aloop_backend_t *b = aloop__calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    *out = b;
    return 0;
}

void aloop__backend_free(aloop_backend_t *b) {
    if (!b) return;
    aloop__free(b->fds);
    aloop__free(b->slot_of);
    aloop__free(b);
}

static short to_poll(unsigned mask) {
    return (short)(((mask & ALOOP__IO_READ) ? POLLIN : 0) | ((mask & ALOOP__IO_WRITE) ? POLLOUT : 0));
}

static int slot_get(const aloop_backend_t *b, int fd) {
    return (size_t)fd < b->nslots ? b->slot_of[fd] : -1;
}

static void slot_remove(aloop_backend_t *b, int fd) {
    size_t slot = (size_t)b->slot_of[fd];
    b->n--;
    if (slot != b->n) {
        b->fds[slot] = b->fds[b->n];
        b->slot_of[b->fds[slot].fd] = (int)slot;
    }
    b->slot_of[fd] = -1;
}

/* Room for one more pollfd and a slot entry for fd: 0 or -ENOMEM. */
static int reserve(aloop_backend_t *b, int fd) {
    if ((size_t)fd >= b->nslots) {
        size_t n = b->nslots ? b->nslots : 64;
        while (n <= (size_t)fd) n *= 2;
        int *slot_of = aloop__realloc(b->slot_of, n * sizeof *slot_of);
        if (!slot_of) return -ENOMEM;
        for (size_t i = b->nslots; i < n; i++) slot_of[i] = -1;
        b->slot_of = slot_of;
        b->nslots = n;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct pollfd *fds = aloop__realloc(b->fds, cap * sizeof *fds);
        if (!fds) return -ENOMEM;
        b->fds = fds;
        b->cap = cap;
    }
    return 0;
}

int aloop__backend_set(aloop_backend_t *b, int fd, unsigned old_mask, unsigned new_mask) {
    (void)old_mask;
    int slot = slot_get(b, fd);
    if (!new_mask) {
        if (slot >= 0) slot_remove(b, fd);
        return 0;
    }
    if (slot < 0) {
        /* poll() would only say POLLNVAL later; epoll fails here, so do we */
        if (fcntl(fd, F_GETFD) < 0) return -errno;
        int rc = reserve(b, fd);
        if (rc < 0) return rc;
        slot = (int)b->n++;
        b->slot_of[fd] = slot;
        b->fds[slot].fd = fd;
    }
    b->fds[slot].events = to_poll(new_mask);
    b->fds[slot].revents = 0;
    return 0;
}

int aloop__backend_wait(aloop_backend_t *b, double timeout, aloop_backend_ready_fn ready, void *ctx) {
    int n = poll(b->fds, (nfds_t)b->n, aloop__backend_timeout_ms(timeout));
    if (n < 0) return errno == EINTR ? 0 : -errno;
    /* ready() never changes the array (shrinking is deferred to the next
     * poll), so iterating it in place is safe. */
    int seen = 0;
    for (size_t i = 0; i < b->n && seen < n; i++) {
        short r = b->fds[i].revents;
        if (!r) continue;
        seen++;
        unsigned mask = ((r & POLLIN) ? ALOOP__IO_READ : 0u) | ((r & POLLOUT) ? ALOOP__IO_WRITE : 0u) |
                        ((r & (POLLERR | POLLHUP | POLLNVAL)) ? ALOOP__IO_ERROR : 0u) |
                        ((r & POLLNVAL) ? ALOOP__IO_CLOSED : 0u);
        ready(ctx, b->fds[i].fd, mask);
    }
    return n;
}

/* poll(2) has no fd of its own that a host could poll. */
/* Only "closed" is detectable: a reused number is simply the new file. */
int aloop__backend_watching(aloop_backend_t *b, int fd, unsigned mask) {
    (void)b;
    (void)mask;
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

int aloop__backend_fd(const aloop_backend_t *b) {
    (void)b;
    return -ENOTSUP;
}

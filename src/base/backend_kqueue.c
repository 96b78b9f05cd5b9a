/*
 * backend_kqueue.c - the BSD / macOS poller: one kqueue per loop, one filter
 * per direction (EVFILT_READ, EVFILT_WRITE). Changes are applied at once,
 * one filter at a time, so that an error names the filter that failed.
 * io.c keeps filters registered across waits.
 */
#include "backend_internal.h"

#include "alloc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#define KQ_BATCH 256

struct aloop_backend {
    int kq;
    struct kevent events[KQ_BATCH];
};

int aloop__backend_new(aloop_backend_t **out) {
    aloop_backend_t *b = aloop__malloc(sizeof *b);
    if (!b) return -ENOMEM;
    b->kq = kqueue();
    if (b->kq < 0) {
        int err = -errno;
        aloop__free(b);
        return err;
    }
    int fl = fcntl(b->kq, F_GETFD);
    if (fl >= 0) fcntl(b->kq, F_SETFD, fl | FD_CLOEXEC);
    *out = b;
    return 0;
}

void aloop__backend_free(aloop_backend_t *b) {
    if (!b) return;
    close(b->kq);
    aloop__free(b);
}

/* Adds or deletes one filter. Deleting a filter the kernel already dropped
 * (fd closed: EBADF, ENOENT) is reported: io.c decides. */
static int filter_change(aloop_backend_t *b, int fd, short filter, int add) {
    struct kevent ch;
    EV_SET(&ch, (uintptr_t)fd, filter, add ? EV_ADD | EV_ENABLE : EV_DELETE, 0, 0, NULL);
    return kevent(b->kq, &ch, 1, NULL, 0, NULL) == 0 ? 0 : -errno;
}

int aloop__backend_set(aloop_backend_t *b, int fd, unsigned old_mask, unsigned new_mask) {
    static const struct { unsigned bit; short filter; } dirs[2] = {
        {ALOOP__IO_READ, EVFILT_READ}, {ALOOP__IO_WRITE, EVFILT_WRITE}};
    int stale = 0;
    for (int i = 0; i < 2; i++) {
        unsigned bit = dirs[i].bit;
        /* Adding again is harmless (EV_ADD updates): an add never finds a
         * stale old_mask (EEXIST cannot happen here). */
        if (new_mask & bit) {
            int rc = filter_change(b, fd, dirs[i].filter, 1);
            if (rc < 0) return rc == -EINVAL ? -EPERM : rc; /* not pollable */
        } else if (old_mask & bit) {
            int rc = filter_change(b, fd, dirs[i].filter, 0);
            if (rc == -ENOENT || rc == -EBADF)
                stale = rc; /* said once the other filter had its turn */
            else if (rc < 0)
                return rc;
        }
    }
    return stale;
}

int aloop__backend_wait(aloop_backend_t *b, double timeout, aloop_backend_ready_fn ready, void *ctx) {
    struct timespec ts, *tsp = NULL;
    if (timeout >= 0) {
        double secs = floor(timeout);
        ts.tv_sec = secs > (double)INT_MAX ? INT_MAX : (time_t)secs;
        ts.tv_nsec = (long)((timeout - secs) * 1e9);
        tsp = &ts;
    }
    int n = kevent(b->kq, NULL, 0, b->events, KQ_BATCH, tsp);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        const struct kevent *ev = &b->events[i];
        unsigned mask;
        if (ev->flags & EV_ERROR)
            mask = ALOOP__IO_ERROR;
        else
            mask = ev->filter == EVFILT_READ ? ALOOP__IO_READ : ALOOP__IO_WRITE;
        ready(ctx, (int)ev->ident, mask);
    }
    return n;
}

/* Only "closed" is detectable: a reused number is simply the new file. */
int aloop__backend_watching(aloop_backend_t *b, int fd, unsigned mask) {
    (void)b;
    (void)mask;
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

int aloop__backend_fd(const aloop_backend_t *b) { return b->kq; }

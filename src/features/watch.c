/*
 * watch.c - callback-level fd watches (asyncio's loop.add_reader /
 * add_writer): cb(fd, arg) runs from the loop each time fd is ready, until
 * the watch is removed. This is what other event-driven C libraries plug
 * into (libcurl's multi socket interface, c-ares, hiredis' adapters).
 *
 * A watch is one heap record per fd and direction, hung on io.c's watch
 * table (watch->cb[dir]). The record is also the runnable the loop queues
 * when the poller reports the fd ready, so callbacks run from the ready
 * ring like call_soon's, never from inside the poll (the poller may be in
 * the middle of its event array). Level-triggered: a callback that leaves
 * data unread is called again on the next iteration.
 *
 * The records' life on the ring and on the watch table (queue, run, drop,
 * detach) is io.c's: the core runs them without knowing this file.
 *
 * Invariants:
 *  - A record on the ring is never freed by a remove: it is marked removed
 *    and the ring frees it when it gets there (queued => owned by the ring).
 *  - Each record holds one loop hold (watches keep the loop alive) and one
 *    reserved ring slot (pushing it can never fail).
 *  - A direction is either watched by a callback or waited on by a task,
 *    never both: the other side gets -EBUSY.
 */
#include "internal.h"
#include "io_internal.h"

static int add_watch(aloop_t *loop, int fd, int dir, void (*cb)(int, void *), void *arg) {
    if (!loop || !cb) return -EINVAL;
    if (fd < 0) return -EBADF;
    if (aloop__foreign_thread(loop))
        return aloop__wrong_thread(loop, dir ? "aloop_add_writer" : "aloop_add_reader");
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    if (w->waiter[dir] || (dir == 0 && w->hook)) return -EBUSY;
    aloop__io_use_loop(loop);
    aloop_fd_callback_t *c = w->cb[dir];
    if (c) { /* replacement: same record, so a pending call runs the new cb */
        int rc = aloop__io_rewant(loop, fd, dir ? ALOOP__IO_WRITE : ALOOP__IO_READ);
        if (rc < 0) return rc; /* fd is a regular file or closed now: nothing changed */
        c->cb = cb;
        c->arg = arg;
        return 0;
    }
    c = aloop__calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    if (aloop__reserve_runnable(loop) < 0) {
        aloop__free(c);
        return -ENOMEM;
    }
    int rc = aloop__io_want(loop, fd, (dir ? ALOOP__IO_WRITE : ALOOP__IO_READ)); /* -EPERM: a regular file */
    if (rc < 0) {
        aloop__release_runnable(loop);
        aloop__free(c);
        return rc;
    }
    *c = (aloop_fd_callback_t){.run = {.kind = ALOOP__RUN_FD_CALLBACK},
                               .dir = (uint8_t)dir, .fd = fd, .loop = loop,
                               .cb = cb, .arg = arg};
    loop->io->watches[fd].cb[dir] = c; /* the table may have moved: re-index */
    aloop__io_hold(loop, +1);
    return 0;
}

static int remove_watch(aloop_t *loop, int fd, int dir) {
    if (!loop) return -EINVAL;
    if (fd < 0) return -EBADF;
    if (aloop__foreign_thread(loop))
        return aloop__wrong_thread(loop, dir ? "aloop_remove_writer" : "aloop_remove_reader");
    struct aloop_io *io = loop->io;
    if ((size_t)fd >= io->nwatches || !io->watches[fd].cb[dir]) return 0;
    aloop__fd_callback_detach(io->watches[fd].cb[dir]);
    return 1;
}

int aloop_add_reader(aloop_t *loop, int fd, void (*cb)(int fd, void *arg), void *arg) {
    return add_watch(loop, fd, 0, cb, arg);
}

int aloop_add_writer(aloop_t *loop, int fd, void (*cb)(int fd, void *arg), void *arg) {
    return add_watch(loop, fd, 1, cb, arg);
}

int aloop_remove_reader(aloop_t *loop, int fd) { return remove_watch(loop, fd, 0); }
int aloop_remove_writer(aloop_t *loop, int fd) { return remove_watch(loop, fd, 1); }

/*
 * io_internal.h - io.c's part of the loop (loop->io): the fd watch table,
 * the deferred-shrink list, the wait counts and the backend. Only the files
 * that look inside it include this: io.c, and the few of the fd layer that
 * index the watch table or install its hooks. A leaf: it names the watch
 * and task types (internal.h) by their struct tags only.
 */
#ifndef ALOOP_IO_INTERNAL_H
#define ALOOP_IO_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "backend_internal.h"

struct aloop_io_watch; /* aloop_io_watch_t, internal.h */
struct aloop_task;     /* aloop_task_impl_t, internal.h */

struct aloop_io_mode {
    int fd;
    dev_t dev;
    ino_t ino;
};

struct aloop_io {
    struct aloop_io_watch *watches; /* indexed by fd */
    size_t nwatches;
    int *dirty;                /* fds whose registration may shrink; same capacity */
    size_t ndirty;
    size_t waits;              /* tasks waiting on fds */
    size_t unowned_waits;      /* ... of them on fds the library did not make */
    size_t holds;              /* other waits keeping the loop alive (signals) */
    aloop_backend_t *backend;  /* backend_<name>.c */
    /* Fds the library switched to O_NONBLOCK (ALOOP__WATCH_MADE_NB), and
     * which file each was then: the mode goes back when the library lets
     * the fd go, if the number still names that file. */
    struct aloop_io_mode *modes;
    size_t nmodes, capmodes;
    /* Reads (one chunk) and writes (all of it) of a regular file, on the
     * worker pool: file.c's aloop__file_io, installed by loop.c (so that
     * io.c does not depend on the feature layer). */
    ssize_t (*file_io)(struct aloop_task *t, int fd, void *buf, size_t len, int dir);
};

#endif /* ALOOP_IO_INTERNAL_H */

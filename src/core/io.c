/*
 * io.c - waiting on fds, and reading and writing them.
 *
 * Backend-independent half of the poller: the per-fd watch table, waking
 * readers and writers, timeouts on waits, and the deferred shrinking of
 * backend registrations (see internal.h). Each backend_<name>.c only turns
 * "watch fd for these directions" and "wait" into syscalls.
 *
 * A wait is a record on the waiting task's stack (struct aloop_io_waiter):
 * the watch points at it while the task waits, its timer (if any) sits in
 * the loop's heap. Whoever ends the wait first - readiness, the timer,
 * aloop_close, or a cancel - unregisters both, so nothing is left behind.
 *
 * Choices worth knowing:
 *  - Reads and writes try the syscall first and only wait on EAGAIN, so a
 *    busy connection costs no poller work at all.
 *  - On sockets, recv/send use MSG_DONTWAIT | MSG_NOSIGNAL: they never block
 *    even if the fd was not made non-blocking, and never raise SIGPIPE. Other
 *    fds (pipes, ttys) are switched to O_NONBLOCK and use read/write; for
 *    those, SIGPIPE is set to SIG_IGN process-wide when the first loop is
 *    created, but only if its disposition is still SIG_DFL (a handler the
 *    user installed is left alone). A broken pipe is then -EPIPE.
 *  - Close fds that a task waited on with aloop_close(), not close(2): the
 *    backend may still be watching the number (that is what makes repeated
 *    waits free), and a new fd reusing it must not inherit that. Every fd
 *    the library creates (net.c's sockets) starts clean, and registrations
 *    nobody waits on are dropped at the next poll.
 *  - Regular files are always "ready" yet may stall a read: once recv says
 *    ENOTSOCK and fstat says regular file, reads and writes go to the hook
 *    loop.c installs (file.c: the worker pool).
 * Sockets (accept, connect, listeners, name lookups) live in net.c, which
 * builds on aloop__io_wait.
 */
#include "internal.h"
#include "io_internal.h"
#include "sys_internal.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored instead (see above) */
#endif

enum {
    ALOOP__WATCH_DIRTY = 1u,   /* on io->dirty, registration may shrink */
    ALOOP__WATCH_NOTSOCK = 2u, /* recv/send failed with ENOTSOCK: use read/write */
    /* 16u: nobody has wanted fd since some point while it stayed registered
     * (the drop is deferred to the next poll); the program may have closed
     * the number with close(2) and reused it meanwhile, so the registration
     * is checked again before it is trusted (watch_add_interest). */
    ALOOP__WATCH_UNSURE = 16u,
    /* 32u: the library made fd (aloop__io_adopt) and only aloop_close or a
     * stream's close may close it (guide §15), so neither of the above
     * checks is needed: it outlives idle spells, aloop_close clears it. */
    ALOOP__WATCH_OWNED = 32u,
    /* 64u: the library made fd non-blocking: it is on io->modes */
    ALOOP__WATCH_MADE_NB = 64u,
};

typedef struct aloop_io_waiter {
    aloop_wait_t wait;
    aloop_timer_t timer;
    int fd;
    int dir; /* 0 = read, 1 = write */
} aloop_io_waiter_t;

/* The loop io calls outside a task use (aloop_close after aloop_run has
 * returned, aloop_tcp_listen before it starts): the one running on this
 * thread, else the last one that did I/O on it. */
static _Thread_local aloop_t *last_io_loop;

aloop_t *aloop__io_loop(void) {
    aloop_t *loop = aloop__tls_loop();
    return loop ? loop : last_io_loop;
}

static unsigned dir_bit(int dir) { return dir ? ALOOP__IO_WRITE : ALOOP__IO_READ; }

/* ------------------------------------------------------------------------ */
/* The watch table                                                          */
/* ------------------------------------------------------------------------ */

aloop_io_watch_t *aloop__io_watch(aloop_t *loop, int fd) {
    struct aloop_io *io = loop->io;
    if ((size_t)fd < io->nwatches) return &io->watches[fd];
    size_t n = io->nwatches ? io->nwatches : 64;
    while (n <= (size_t)fd) n *= 2;
    /* dirty first: it must never be smaller than the table */
    int *dirty = aloop__realloc(io->dirty, n * sizeof *dirty);
    if (!dirty) return NULL;
    io->dirty = dirty;
    aloop_io_watch_t *w = aloop__realloc(io->watches, n * sizeof *w);
    if (!w) return NULL;
    memset(w + io->nwatches, 0, (n - io->nwatches) * sizeof *w);
    io->watches = w;
    io->nwatches = n;
    return &w[fd];
}

static void mark_dirty(struct aloop_io *io, int fd) {
    aloop_io_watch_t *w = &io->watches[fd];
    if (w->flags & ALOOP__WATCH_DIRTY) return;
    w->flags |= ALOOP__WATCH_DIRTY;
    io->dirty[io->ndirty++] = fd; /* each fd at most once: never overflows */
}

/* ---- blocking modes the library changed --------------------------------- */

/* Index of fd on io->modes, or -1. */
static long mode_find(const struct aloop_io *io, int fd) {
    for (size_t i = 0; i < io->nmodes; i++)
        if (io->modes[i].fd == fd) return (long)i;
    return -1;
}

static void mode_drop(struct aloop_io *io, int fd) {
    long i = mode_find(io, fd);
    if (i >= 0) io->modes[i] = io->modes[--io->nmodes];
    if ((size_t)fd < io->nwatches) io->watches[fd].flags &= (uint8_t)~ALOOP__WATCH_MADE_NB;
}

/* Another fd on io->modes that still names the same file (a dup of fd:
 * the mode is the shared description's), or -1. A record whose number was
 * closed with close(2) and reused does not count. */
static long mode_twin(const struct aloop_io *io, int fd, dev_t dev, ino_t ino) {
    struct stat st;
    for (size_t i = 0; i < io->nmodes; i++)
        if (io->modes[i].fd != fd && io->modes[i].dev == dev && io->modes[i].ino == ino &&
            fstat(io->modes[i].fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
            return (long)i;
    return -1;
}

/* Puts fd back in blocking mode if the number still names the file the
 * library switched (a close(2) and a reuse since must not touch the new
 * file) and no other fd the library still uses names it (a dup would be
 * read with blocking calls), and forgets the record. */
static void mode_restore(struct aloop_io *io, int fd) {
    long i = mode_find(io, fd);
    struct stat st;
    if (i >= 0 && fstat(fd, &st) == 0 && st.st_dev == io->modes[i].dev &&
        st.st_ino == io->modes[i].ino && mode_twin(io, fd, st.st_dev, st.st_ino) < 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    mode_drop(io, fd);
}

/* Records that fd (now the file st) was blocking before the library. */
static int mode_record(struct aloop_io *io, int fd, const struct stat *st) {
    long i = mode_find(io, fd);
    if (i < 0) {
        if (io->nmodes == io->capmodes) {
            size_t cap = io->capmodes ? io->capmodes * 2 : 8;
            struct aloop_io_mode *m = aloop__realloc(io->modes, cap * sizeof *m);
            if (!m) return -ENOMEM;
            io->modes = m;
            io->capmodes = cap;
        }
        i = (long)io->nmodes++;
    }
    io->modes[i] = (struct aloop_io_mode){.fd = fd, .dev = st->st_dev, .ino = st->st_ino};
    io->watches[fd].flags |= ALOOP__WATCH_MADE_NB;
    return 0;
}

/* Interest in fd shrank by bit: the registration shrinks at the next poll.
 * Once nobody wants fd at all, close(2) on it is allowed, so until then the
 * registration the backend holds may belong to a file that is gone. */
static void interest_drop(struct aloop_io *io, int fd, unsigned bit) {
    aloop_io_watch_t *w = &io->watches[fd];
    w->wanted &= (uint8_t)~bit;
    if (!(w->registered & ~w->wanted)) return;
    mark_dirty(io, fd);
    if (!w->wanted && !(w->flags & ALOOP__WATCH_OWNED)) w->flags |= ALOOP__WATCH_UNSURE;
}

/* Removes a waiter from its watch and its timer from the heap. */
static void waiter_unregister(aloop_io_waiter_t *iw) {
    aloop_t *loop = iw->wait.task->fut.loop;
    struct aloop_io *io = loop->io;
    aloop_io_watch_t *w = &io->watches[iw->fd];
    w->waiter[iw->dir] = NULL;
    if (!(w->flags & ALOOP__WATCH_OWNED)) io->unowned_waits--;
    interest_drop(io, iw->fd, dir_bit(iw->dir));
    aloop__timer_stop(loop, &iw->timer);
    io->waits--;
}

static void waiter_finish(aloop_io_waiter_t *iw, int result) {
    waiter_unregister(iw);
    aloop__wake(&iw->wait, result);
}

static void waiter_timeout(aloop_timer_t *tm) {
    waiter_finish(ALOOP_CONTAINER_OF(tm, aloop_io_waiter_t, timer), -ETIMEDOUT);
}

static void waiter_cancel(aloop_wait_t *w) {
    waiter_unregister(ALOOP_CONTAINER_OF(w, aloop_io_waiter_t, wait));
}

/* The one rule for a registration the kernel may or may not still hold
 * (fd closed with close(2) while registered, its number maybe reused by
 * then, or registered by an earlier incarnation): the backend reports what
 * it found, and the change is made again from that. A registration that is
 * gone already needs no removal; one that is gone is added afresh; one
 * that is there after all is modified. */
static int backend_change(struct aloop_io *io, int fd, unsigned old_mask, unsigned new_mask) {
    int rc = aloop__backend_set(io->backend, fd, old_mask, new_mask);
    if (!new_mask) return rc == -ENOENT || rc == -EBADF ? 0 : rc;
    if (rc == -ENOENT && old_mask) return aloop__backend_set(io->backend, fd, 0, new_mask);
    if (rc == -EEXIST && !old_mask) return aloop__backend_set(io->backend, fd, new_mask, new_mask);
    return rc;
}

/* Makes the backend watch bit too. Invariant: wanted is a subset of
 * registered (extra registered bits are on the dirty list). A registration
 * left over from an earlier wait is reused as is while someone wanted fd
 * all along; after a moment when nobody did, it is set again (epoll: MOD,
 * or ADD when the number is a new file now), one syscall. */
static int watch_add_interest(aloop_t *loop, int fd, aloop_io_watch_t *w, unsigned bit) {
    if ((w->registered & bit) && !(w->flags & ALOOP__WATCH_UNSURE)) return 0;
    unsigned mask = w->registered | bit;
    int rc = backend_change(loop->io, fd, w->registered, mask);
    if (rc < 0) return rc;
    w->registered = (uint8_t)mask;
    w->flags &= (uint8_t)~ALOOP__WATCH_UNSURE;
    return 0;
}

int aloop__io_sim_delay(aloop_task_impl_t *t) {
    aloop_t *loop = t->fut.loop;
    unsigned passes = aloop__sim_on(loop) ? aloop__sim_delay(&loop->sim) : 0;
    for (int rc; passes--;)
        if ((rc = aloop__yield(t)) < 0) return rc;
    return 0;
}

/* Suspends t until fd is ready in direction dir (0 read, 1 write). sim:
 * the caller retries its call after the wait, so simulation may report
 * readiness early (spurious) or late (delay). */
static int io_wait(aloop_task_impl_t *t, int fd, int dir, double timeout, int sim) {
    aloop_t *loop = t->fut.loop;
    struct aloop_io *io = loop->io;
    last_io_loop = loop;
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    if (w->waiter[dir] || w->cb[dir] || (dir == 0 && w->hook)) return -EBUSY;
    int rc = watch_add_interest(loop, fd, w, dir_bit(dir));
    if (rc == -EPERM) return 0; /* a regular file: always ready */
    if (rc < 0) return rc;
    if (sim && aloop__sim_on(loop) && aloop__sim_spurious(&loop->sim)) return aloop__yield(t);
    aloop_io_waiter_t iw = {.wait = {.cancel = waiter_cancel,
                                     .what = dir ? "fd writable" : "fd readable"},
                            .fd = fd, .dir = dir};
    aloop__timer_init(&iw.timer, waiter_timeout);
    if (timeout >= 0 && aloop__timer_start(loop, &iw.timer, aloop__now(loop) + timeout) < 0) {
        if (w->registered & ~w->wanted) mark_dirty(io, fd);
        return -ENOMEM;
    }
    w->waiter[dir] = &iw;
    w->wanted |= (uint8_t)dir_bit(dir);
    io->waits++;
    if (!(w->flags & ALOOP__WATCH_OWNED)) io->unowned_waits++;
    uint32_t gen = w->gen;
    rc = aloop__suspend(t, &iw.wait);
    /* Simulation: readiness comes late, but never for a wait with a
     * deadline of its own (the delay must not change its outcome). */
    if (rc == 0 && sim && timeout < 0) rc = aloop__io_sim_delay(t);
    /* Woken because fd was ready, then closed (aloop_close, a stream's
     * close, aloop__io_forget) before we ran: the number may already be a
     * new connection's. Say so instead of letting the caller read or write
     * someone else's file. (The table may have moved: index it again.) */
    if (rc == 0 && io->watches[fd].gen != gen) return -EBADF;
    return rc;
}

int aloop__io_wait(aloop_task_impl_t *t, int fd, int dir, double timeout) {
    return io_wait(t, fd, dir, timeout, 1);
}

/* The public waits promise readiness: simulation leaves them alone. */
static int wait_public(int fd, int dir, double timeout) {
    if (fd < 0) return -EBADF;
    if (isnan(timeout)) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    return io_wait(t, fd, dir, timeout, 0);
}

int aloop_wait_readable(int fd, double timeout) { return wait_public(fd, 0, timeout); }
int aloop_wait_writable(int fd, double timeout) { return wait_public(fd, 1, timeout); }

/* ------------------------------------------------------------------------ */
/* Poller seam                                                              */
/* ------------------------------------------------------------------------ */

int aloop__io_init(aloop_t *loop) {
    static atomic_int sigpipe_done; /* loops may be created on several threads */
    if (!atomic_exchange(&sigpipe_done, 1)) {
        struct sigaction old;
        if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO))
            signal(SIGPIPE, SIG_IGN);
    }
    loop->io = aloop__calloc(1, sizeof *loop->io);
    if (!loop->io) return -ENOMEM;
    int rc = aloop__backend_new(&loop->io->backend);
    if (rc < 0) {
        aloop__free(loop->io);
        loop->io = NULL;
    }
    return rc;
}

void aloop__io_free(aloop_t *loop) {
    struct aloop_io *io = loop->io;
    if (!io) return;
    for (size_t fd = 0; fd < io->nwatches; fd++) aloop__fd_callbacks_detach(loop, &io->watches[fd]);
    while (io->nmodes) mode_restore(io, io->modes[0].fd); /* the fds the loop lets go */
    aloop__free(io->modes);
    aloop__backend_free(io->backend);
    aloop__free(io->watches);
    aloop__free(io->dirty);
    aloop__free(io);
    loop->io = NULL;
    if (last_io_loop == loop) last_io_loop = NULL;
}

/* The backend's callback: one event. */
static void io_ready(void *loop, int fd, unsigned events) { aloop__io_ready(loop, fd, events); }

/* Brings the backend in line with what waiters still want on every fd
 * whose interest shrank since the last poll. */
static void flush_dirty(aloop_t *loop) {
    struct aloop_io *io = loop->io;
    for (size_t i = 0; i < io->ndirty; i++) {
        int fd = io->dirty[i];
        aloop_io_watch_t *w = &io->watches[fd];
        if (!(w->flags & ALOOP__WATCH_DIRTY)) continue;
        w->flags &= (uint8_t)~ALOOP__WATCH_DIRTY;
        if (w->registered == w->wanted) continue;
        int rc = backend_change(io, fd, w->registered, w->wanted);
        w->registered = rc < 0 ? 0 : w->wanted;
        if (!w->wanted) /* idle: forget what we knew about fd, but not what to undo */
            w->flags &= ALOOP__WATCH_OWNED | ALOOP__WATCH_MADE_NB;
        if (rc < 0) {
            /* fd was closed behind our back: its waiters would hang */
            for (int dir = 0; dir < 2; dir++)
                if (w->waiter[dir]) waiter_finish(w->waiter[dir], -EBADF);
        }
    }
    io->ndirty = 0;
}

/* A task waits on an fd that was closed with close(2) (misuse, but it
 * happens): poll(2) reports POLLNVAL at once, but epoll silently drops a
 * closed file from its set, so the waiter would sleep for ever. So while
 * tasks wait on fds the program opened itself, a poll never blocks longer
 * than ALOOP_FD_SWEEP, and after one that found nothing to do each such fd
 * is checked: one that is not open any more wakes its waiters with -EBADF.
 * Fds the library made (sockets, accepted connections) are closed only
 * through it (guide §15) and never checked, so a server's idle
 * connections cost nothing. Cost: one wake-up and one syscall per waited
 * program fd per ALOOP_FD_SWEEP of idleness. epoll also sees a number
 * reused by a new file since (it is not in the set); poll(2) and kqueue
 * cannot tell a reused number from the old file. */
#define ALOOP_FD_SWEEP 1.0

static void sweep_closed(aloop_t *loop) {
    struct aloop_io *io = loop->io;
    for (size_t fd = 0; fd < io->nwatches && io->unowned_waits; fd++) {
        aloop_io_watch_t *w = &io->watches[fd];
        if (!w->waiter[0] && !w->waiter[1]) continue;
        if (w->flags & ALOOP__WATCH_OWNED) continue;
        if (aloop__backend_watching(io->backend, (int)fd, w->registered)) continue;
        aloop__io_ready(loop, (int)fd, ALOOP__IO_READ | ALOOP__IO_WRITE | ALOOP__IO_CLOSED);
    }
}

/* The backend's wait, counted for aloop_metrics. Only a wait that may
 * block is timed: a zero timeout costs no clock reads. */
static int backend_wait(aloop_t *loop, double timeout) {
    double t0 = timeout != 0 ? aloop__monotonic() : 0;
    int n = aloop__backend_wait(loop->io->backend, timeout, io_ready, loop);
    if (timeout != 0) loop->stats.poll_time += aloop__monotonic() - t0;
    loop->stats.iterations++;
    if (n > 0) loop->stats.events += (uint64_t)n;
    return n;
}

int aloop__io_poll(aloop_t *loop, double timeout) {
    struct aloop_io *io = loop->io;
    flush_dirty(loop);
    /* Called only to flush (see aloop__io_pending): nothing could end a
     * wait for ever, so just look. */
    if (timeout < 0 && !io->waits && !io->holds && !aloop__xthread_pending(loop)) timeout = 0;
    int sweep = io->unowned_waits && (timeout < 0 || timeout > ALOOP_FD_SWEEP);
    if (sweep) timeout = ALOOP_FD_SWEEP;
    int n = backend_wait(loop, timeout);
    if (sweep && n == 0) sweep_closed(loop);
    return n;
}

int aloop__io_sleep(aloop_t *loop, double timeout) {
    flush_dirty(loop);
    return backend_wait(loop, timeout);
}

void aloop__io_flush(aloop_t *loop) {
    if (loop->io) flush_dirty(loop);
}

/* Waits keep the loop alive; so does a non-empty dirty list, for one more
 * tick: registrations nobody wants must be dropped before aloop_run returns,
 * or a plain close(2) + reuse of the number before the next run would find
 * a stale entry. */
size_t aloop__io_fds(const aloop_t *loop) {
    const struct aloop_io *io = loop->io;
    size_t n = 0;
    for (size_t fd = 0; io && fd < io->nwatches; fd++) {
        const aloop_io_watch_t *w = &io->watches[fd];
        n += w->waiter[0] || w->waiter[1] || w->cb[0] || w->cb[1];
    }
    return n;
}

size_t aloop__io_pending(const aloop_t *loop) {
    const struct aloop_io *io = loop->io;
    return io ? io->waits + io->holds + (io->ndirty ? 1 : 0) : 0;
}

void aloop__io_ready(aloop_t *loop, int fd, unsigned events) {
    struct aloop_io *io = loop->io;
    if (fd < 0 || (size_t)fd >= io->nwatches) return;
    if (events & ALOOP__IO_ERROR) events |= ALOOP__IO_READ | ALOOP__IO_WRITE;
    aloop_io_watch_t *w = &io->watches[fd];
    if (w->hook && (events & ALOOP__IO_READ)) {
        w->hook(loop, fd);
        events &= ~(unsigned)ALOOP__IO_READ;
        w = &io->watches[fd];
    }
    /* closed with close(2) behind our back: waiters learn it (-EBADF) */
    int result = (events & ALOOP__IO_CLOSED) ? -EBADF : 0;
    for (int dir = 0; dir < 2; dir++) {
        if (!(events & dir_bit(dir))) continue;
        if (w->cb[dir])
            aloop__fd_callback_ready(w->cb[dir]);
        else if (w->waiter[dir])
            waiter_finish(w->waiter[dir], result);
        else
            mark_dirty(io, fd); /* nobody wants it: level-triggered would repeat */
    }
}

int aloop__io_hook(aloop_t *loop, int fd, aloop_io_hook_fn hook) {
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    if (w->waiter[0] || w->cb[0]) return -EBUSY;
    int rc = watch_add_interest(loop, fd, w, ALOOP__IO_READ);
    if (rc < 0) return rc;
    w->hook = hook;
    w->wanted |= ALOOP__IO_READ;
    return 0;
}

void aloop__io_unhook(aloop_t *loop, int fd) {
    struct aloop_io *io = loop->io;
    if ((size_t)fd >= io->nwatches || !io->watches[fd].hook) return;
    io->watches[fd].hook = NULL;
    interest_drop(io, fd, ALOOP__IO_READ);
}

void aloop__io_forget(aloop_t *loop, int fd) {
    if (!loop || !loop->io || fd < 0) return;
    struct aloop_io *io = loop->io;
    if ((size_t)fd >= io->nwatches) return;
    aloop_io_watch_t *w = &io->watches[fd];
    w->gen++; /* waiters already woken for this fd must not touch it now */
    for (int dir = 0; dir < 2; dir++)
        if (w->waiter[dir]) waiter_finish(w->waiter[dir], -EBADF);
    aloop__fd_callbacks_detach(loop, w);
    if (w->registered) backend_change(io, fd, w->registered, 0);
    w->hook = NULL;
    w->wanted = w->registered = 0;
    if (w->flags & ALOOP__WATCH_MADE_NB) mode_drop(io, fd); /* the file is not ours to touch now */
    /* Keep DIRTY: fd may still be on io->dirty, and the flag is what keeps
     * each fd there at most once (the list never outgrows the table). */
    w->flags &= ALOOP__WATCH_DIRTY;
}

void aloop__io_adopt(aloop_t *loop, int fd) {
    aloop__io_forget(loop, fd);
    if (!loop || !loop->io || fd < 0) return;
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (w) w->flags |= ALOOP__WATCH_OWNED; /* else treated as the program's own fd */
}

int aloop__io_want(aloop_t *loop, int fd, unsigned bit) {
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    int rc = watch_add_interest(loop, fd, w, bit);
    if (rc < 0) return rc;
    w->wanted |= (uint8_t)bit;
    return 0;
}

void aloop__io_unwant(aloop_t *loop, int fd, unsigned bit) { interest_drop(loop->io, fd, bit); }

int aloop__io_rewant(aloop_t *loop, int fd, unsigned bit) {
    aloop_io_watch_t *w = &loop->io->watches[fd];
    if (!(w->flags & ALOOP__WATCH_OWNED)) w->flags |= ALOOP__WATCH_UNSURE;
    return aloop__io_want(loop, fd, bit);
}

void aloop__io_use_loop(aloop_t *loop) { last_io_loop = loop; }

void aloop__io_hold(aloop_t *loop, int delta) {
    loop->io->holds = (size_t)((long)loop->io->holds + delta);
}

int aloop_close(int fd) {
    if (fd < 0) return -EBADF;
    aloop__io_release(aloop__io_loop(), fd);
    /* On Linux the fd is gone even when close reports EINTR: never retry. */
    if (close(fd) < 0 && errno != EINTR) return -errno;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reading and writing                                                      */
/* ------------------------------------------------------------------------ */

int aloop__set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

/* fd is non-blocking already: if through another fd of the same file that
 * the library switched (a dup), fd joins its record, so that the mode goes
 * back only when the library lets the last of them go. 0 or -ENOMEM. */
static int mode_join(aloop_t *loop, int fd) {
    struct aloop_io *io = loop->io;
    if (!io->nmodes) return 0;
    if ((size_t)fd < io->nwatches && (io->watches[fd].flags & ALOOP__WATCH_MADE_NB)) return 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || mode_twin(io, fd, st.st_dev, st.st_ino) < 0) return 0;
    if (!aloop__io_watch(loop, fd)) return -ENOMEM;
    return mode_record(io, fd, &st);
}

int aloop__io_set_nonblocking(aloop_t *loop, int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -errno;
    if (fl & O_NONBLOCK) return mode_join(loop, fd);
    struct stat st;
    if (!aloop__io_watch(loop, fd) || fstat(fd, &st) < 0) return errno == EBADF ? -EBADF : -ENOMEM;
    int rc = mode_record(loop->io, fd, &st);
    if (rc < 0) return rc;
    if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        rc = -errno;
        mode_drop(loop->io, fd);
        return rc;
    }
    return 0;
}

void aloop__io_release(aloop_t *loop, int fd) {
    if (!loop || !loop->io || fd < 0) return;
    struct aloop_io *io = loop->io;
    if ((size_t)fd < io->nwatches && (io->watches[fd].flags & ALOOP__WATCH_MADE_NB)) mode_restore(io, fd);
    aloop__io_forget(loop, fd);
}

static int watch_notsock(aloop_t *loop, int fd) {
    struct aloop_io *io = loop->io;
    return (size_t)fd < io->nwatches && (io->watches[fd].flags & ALOOP__WATCH_NOTSOCK);
}

/* Remembers that fd is not a socket, and whether it is a regular file
 * (read and written on the worker pool: file.c); if the table cannot grow
 * we simply try recv again next time. */
static void mark_notsock(aloop_t *loop, int fd) {
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return;
    w->flags |= ALOOP__WATCH_NOTSOCK;
    struct stat st;
    if (loop->io->file_io && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        w->flags |= ALOOP__WATCH_FILE;
}

static int watch_file(aloop_t *loop, int fd) {
    struct aloop_io *io = loop->io;
    return (size_t)fd < io->nwatches && (io->watches[fd].flags & ALOOP__WATCH_FILE);
}

/* try_io found that fd is a regular file: nothing was read or written. */
#define IO_IS_FILE ((ssize_t)-0x10001)

/* A regular file's read (one chunk) or whole write, on the pool. If fd is
 * no longer a regular file (its number was reused), forgets that it was
 * one: the caller tries again the ordinary way. */
static ssize_t file_io(aloop_task_impl_t *t, int fd, void *buf, size_t len, int dir) {
    aloop_t *loop = t->fut.loop;
    ssize_t n = loop->io->file_io(t, fd, buf, len, dir);
    if (n == ALOOP__IO_NOT_FILE) loop->io->watches[fd].flags &= (uint8_t)~ALOOP__WATCH_FILE;
    return n;
}

/* One non-blocking read (dir 0) or write (dir 1) attempt: bytes, 0 at
 * EOF, -EAGAIN, or -errno. Sockets use recv/send (never SIGPIPE, never
 * blocking); an fd that turns out not to be one is remembered and made
 * non-blocking for read/write. */
static ssize_t try_io(aloop_t *loop, int fd, void *buf, size_t len, int dir) {
    for (;;) {
        ssize_t n;
        if (!watch_notsock(loop, fd)) {
            n = dir ? aloop__sys_send(loop, fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : aloop__sys_recv(loop, fd, buf, len, MSG_DONTWAIT);
            if (n >= 0) return n;
            if (errno != ENOTSOCK) {
                if (errno == EINTR) continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
            }
            mark_notsock(loop, fd);
            if (watch_file(loop, fd)) return IO_IS_FILE;
        }
        int rc = aloop__io_set_nonblocking(loop, fd);
        if (rc < 0) return rc;
        n = dir ? aloop__sys_write(loop, fd, buf, len) : aloop__sys_read(loop, fd, buf, len);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static ssize_t try_read(aloop_t *loop, int fd, void *buf, size_t len) {
    return try_io(loop, fd, buf, len, 0);
}

static ssize_t try_write(aloop_t *loop, int fd, const void *buf, size_t len) {
    return try_io(loop, fd, (void *)buf, len, 1); /* only ever written from */
}

ssize_t aloop__io_read(aloop_task_impl_t *t, int fd, void *buf, size_t len) {
    for (;;) {
        ssize_t n = watch_file(t->fut.loop, fd) ? file_io(t, fd, buf, len, 0)
                                                : try_read(t->fut.loop, fd, buf, len);
        if (n == IO_IS_FILE || n == ALOOP__IO_NOT_FILE) continue;
        if (n != -EAGAIN) return n;
        int rc = aloop__io_wait(t, fd, 0, -1);
        if (rc < 0) return rc;
    }
}

ssize_t aloop__io_write(aloop_task_impl_t *t, int fd, const void *buf, size_t len) {
    for (;;) {
        if (watch_file(t->fut.loop, fd)) {
            ssize_t n = file_io(t, fd, (void *)buf, len, 1);
            if (n == ALOOP__IO_NOT_FILE) continue;
            return n < 0 ? n : (ssize_t)len;
        }
        ssize_t n = try_write(t->fut.loop, fd, buf, len);
        if (n == IO_IS_FILE) continue;
        if (n != -EAGAIN) return n;
        int rc = aloop__io_wait(t, fd, 1, -1);
        if (rc < 0) return rc;
    }
}

/* How many times fd was forgotten (closed through the library) so far;
 * makes its watch, so that a close from now on is seen. */
static int fd_generation(aloop_t *loop, int fd, uint32_t *gen) {
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    *gen = w->gen;
    return 0;
}

int aloop__io_spend(aloop_task_impl_t *t, int fd, int fd2) {
    aloop_t *loop = t->fut.loop;
    uint32_t gen = 0, gen2 = 0;
    int rc = fd_generation(loop, fd, &gen);
    if (rc == 0 && fd2 >= 0) rc = fd_generation(loop, fd2, &gen2);
    if (rc == 0) rc = aloop__coop_spend(t);
    if (rc < 0) return rc;
    /* (the table may have moved: index it again) */
    if (loop->io->watches[fd].gen != gen) return -EBADF;
    if (fd2 >= 0 && loop->io->watches[fd2].gen != gen2) return -EBADF;
    return 0;
}

ssize_t aloop__io_write_all(aloop_task_impl_t *t, int fd, const void *buf, size_t len) {
    const char *p = buf;
    size_t done = 0;
    int rc_spend;
    while (done < len) {
        if (watch_file(t->fut.loop, fd)) {
            ssize_t n = file_io(t, fd, (void *)(p + done), len - done, 1);
            if (n == ALOOP__IO_NOT_FILE) continue;
            return n < 0 ? n : (ssize_t)len;
        }
        ssize_t n = try_write(t->fut.loop, fd, p + done, len - done);
        if (n == IO_IS_FILE) continue;
        if (n > 0) {
            done += (size_t)n;
            /* another send without suspending: a fast reader must not let
             * one big write keep the loop */
            if (done < len && (rc_spend = aloop__io_spend(t, fd, -1)) < 0) return rc_spend;
            continue;
        }
        if (n < 0 && n != -EAGAIN) return n;
        int rc = aloop__io_wait(t, fd, 1, -1);
        if (rc < 0) return rc;
    }
    return (ssize_t)len;
}

ssize_t aloop_read(int fd, void *buf, size_t len) {
    if (fd < 0) return -EBADF;
    if (!buf && len) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (len == 0) return 0;
    return aloop__io_read(t, fd, buf, len);
}

ssize_t aloop_write_all(int fd, const void *buf, size_t len) {
    if (fd < 0) return -EBADF;
    if (!buf && len) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    return aloop__io_write_all(t, fd, buf, len);
}

/* ------------------------------------------------------------------------ */
/* Callback watches' records (the API, aloop_add_reader & co, is watch.c)   */
/* ------------------------------------------------------------------------ */

static void record_free(aloop_fd_callback_t *c) {
    aloop__release_runnable(c->loop);
    aloop__free(c);
}

void aloop__fd_callback_detach(aloop_fd_callback_t *c) {
    aloop_t *loop = c->loop;
    aloop_io_watch_t *w = &loop->io->watches[c->fd];
    w->cb[c->dir] = NULL;
    aloop__io_unwant(loop, c->fd, dir_bit(c->dir));
    aloop__io_hold(loop, -1);
    if (c->queued)
        c->removed = 1;
    else
        record_free(c);
}

void aloop__fd_callback_ready(aloop_fd_callback_t *c) {
    if (c->queued) return; /* already due: one call per iteration */
    c->queued = 1;
    aloop__make_ready(c->loop, &c->run);
}

void aloop__fd_callback_run(aloop_runnable_t *r) {
    aloop_fd_callback_t *c = (aloop_fd_callback_t *)(void *)r;
    c->queued = 0;
    if (c->removed || c->loop->closing) {
        if (c->removed) record_free(c);
        return;
    }
    /* cb may remove or replace this very watch, or close fd: c must not be
     * touched after the call. */
    c->cb(c->fd, c->arg);
}

void aloop__fd_callback_drop(aloop_runnable_t *r) {
    aloop_fd_callback_t *c = (aloop_fd_callback_t *)(void *)r;
    c->queued = 0;
    if (c->removed) record_free(c);
    /* else still hung on its watch: aloop__fd_callbacks_detach frees it */
}

void aloop__fd_callbacks_detach(aloop_t *loop, aloop_io_watch_t *w) {
    ALOOP_UNUSED(loop);
    for (int dir = 0; dir < 2; dir++)
        if (w->cb[dir]) aloop__fd_callback_detach(w->cb[dir]);
}

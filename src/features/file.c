/*
 * file.c - regular files off the loop's thread.
 *
 * A regular file is always "ready" (epoll refuses it, poll says yes), yet a
 * read from it may wait for a disk, and even from the page cache a 20 MB
 * read holds the thread for milliseconds. So, as libuv does, aloop_read and
 * aloop_write_all on a regular file run on the loop's worker pool: io.c
 * learns once per fd that it is a regular file (fstat after recv says
 * ENOTSOCK; cached in the fd watch) and hands the call to the hook below,
 * which loop.c installs.
 *
 * Each pool job moves at most FILE_CHUNK bytes, through a buffer of its own:
 *  - a read job preads into its buffer at the offset the file had when the
 *    call began; the caller copies the bytes out and moves the offset past
 *    them only when it runs again. A cancelled read therefore consumes
 *    nothing (the offset stays, the next read gets the same bytes) and the
 *    worker never writes into the caller's memory, which may be gone;
 *  - a write job writes a copy of the caller's chunk with write(2) (so
 *    O_APPEND works); a chunk a worker has started lands in the file even
 *    if the caller is cancelled meanwhile (as part of a socket write may),
 *    a chunk not started yet is never written.
 * A job works on a dup of the fd, so closing the fd meanwhile cannot make
 * it touch another file that reused the number. One read and one write at a
 * time per fd (-EBUSY otherwise), as for fd waits.
 *
 * aloop_read returns after one chunk (a short read, as read(2) may give);
 * aloop_write_all goes on chunk by chunk until everything is written. Small
 * calls pay a round trip to a worker (~10-20 us): read files in large
 * blocks, or whole with aloop_read_file.
 */
#include "internal.h"
#include "io_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_CHUNK ((size_t)1 << 20) /* bytes per pool job */

/* ---- one chunk on the pool ------------------------------------------------ */

typedef struct file_job {
    int fd;      /* a dup of the caller's fd, close-on-exec */
    int dir;     /* 0 read, 1 write */
    off_t off;   /* reads: where to pread */
    size_t len;
    ssize_t n;   /* bytes moved, -errno, or ALOOP__IO_NOT_FILE */
    char buf[];  /* the job's own copy of the bytes */
} file_job_t;

static void file_job_free(file_job_t *j) {
    if (j->fd >= 0) close(j->fd);
    aloop__free(j);
}

/* Runs on a worker: no loop, no task, no allocation. */
static void *file_job_run(void *arg) {
    file_job_t *j = arg;
    struct stat st;
    if (fstat(j->fd, &st) < 0) {
        j->n = -errno;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) { /* the fd number was reused behind our back */
        j->n = ALOOP__IO_NOT_FILE;
        return NULL;
    }
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = j->dir ? write(j->fd, j->buf + done, j->len - done)
                           : pread(j->fd, j->buf + done, j->len - done, j->off + (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            j->n = done ? (ssize_t)done : -errno;
            return NULL;
        }
        if (n == 0) break; /* end of file */
        done += (size_t)n;
    }
    j->n = (ssize_t)done;
    return NULL;
}

/* The caller gave up: the job is done, or never started. */
static void file_job_discard(void *result, void *arg) {
    (void)result;
    file_job_free(arg);
}

/* A job for len bytes of fd: 0 and *out, or -ENOMEM / -EMFILE. */
static int file_job_new(int fd, int dir, size_t len, file_job_t **out) {
    file_job_t *j = aloop__malloc(sizeof *j + len);
    if (!j) return -ENOMEM;
    j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (j->fd < 0) {
        int err = -errno;
        aloop__free(j);
        return err;
    }
    j->dir = dir;
    j->off = 0;
    j->len = len;
    j->n = 0;
    *out = j;
    return 0;
}

/* Runs j on the pool: 0 with j->n set (j is still the caller's), or -errno
 * (-ECANCELED: j belongs to the discard now). */
static int file_job_submit(file_job_t *j) {
    int rc = aloop_run_in_thread_with(file_job_run, j, file_job_discard, NULL);
    if (rc == -ECANCELED) return rc;
    if (rc < 0) file_job_free(j);
    return rc;
}

/* A call on fd from a task of loop: gen is fd's generation when it began
 * (NULL loop: fd is the library's own, nobody else can close it). */
typedef struct file_call {
    aloop_t *loop;
    int fd;
    uint32_t gen;
} file_call_t;

static int file_closed(const file_call_t *c) {
    return c->loop && c->loop->io->watches[c->fd].gen != c->gen;
}

/* One chunk read: bytes (0 at EOF) or -errno. */
static ssize_t file_read_chunk(const file_call_t *c, void *buf, size_t len) {
    int fd = c->fd;
    off_t off = lseek(fd, 0, SEEK_CUR);
    if (off < 0) return errno == ESPIPE ? ALOOP__IO_NOT_FILE : -errno; /* number reused */
    if (len > FILE_CHUNK) len = FILE_CHUNK;
    file_job_t *j = NULL;
    int rc = file_job_new(fd, 0, len, &j);
    if (rc < 0) return rc;
    j->off = off;
    rc = file_job_submit(j);
    if (rc < 0) return rc;
    ssize_t n = file_closed(c) ? -EBADF : j->n;
    if (n > 0) {
        memcpy(buf, j->buf, (size_t)n);
        /* through the dup: the same open file, even if fd was closed */
        if (lseek(j->fd, off + (off_t)n, SEEK_SET) < 0) n = -errno;
    }
    file_job_free(j);
    return n;
}

/* One chunk written (all of it, unless an error stops it): bytes or -errno. */
static ssize_t file_write_chunk(int fd, const void *buf, size_t len) {
    if (len > FILE_CHUNK) len = FILE_CHUNK;
    file_job_t *j = NULL;
    int rc = file_job_new(fd, 1, len, &j);
    if (rc < 0) return rc;
    memcpy(j->buf, buf, len); /* the caller's buffer may go away */
    rc = file_job_submit(j);
    if (rc < 0) return rc;
    ssize_t n = j->n;
    file_job_free(j);
    return n;
}

static ssize_t file_write_all(const file_call_t *c, const char *buf, size_t len) {
    size_t done = 0;
    do {
        if (done) { /* between chunks too: a pending cancel stops here */
            int err;
            if (!aloop__enter(&err)) return err;
        }
        ssize_t n = file_write_chunk(c->fd, buf + done, len - done);
        if (file_closed(c)) return -EBADF;
        if (n < 0) return n;
        if (n == 0) return -EIO; /* a regular file that takes nothing */
        done += (size_t)n;
    } while (done < len);
    return (ssize_t)len;
}

/* io.c's hook (installed by loop.c): fd is (believed to be) a regular file.
 * fd closed through the library (aloop_close, a stream's close) while a
 * job ran: -EBADF, as for fd waits (guide §15); a read then hands over no
 * byte and leaves the offset alone. */
ssize_t aloop__file_io(aloop_task_impl_t *t, int fd, void *buf, size_t len, int dir) {
    aloop_t *loop = t->fut.loop;
    aloop_io_watch_t *w = aloop__io_watch(loop, fd);
    if (!w) return -ENOMEM;
    unsigned busy = ALOOP__WATCH_FILE_BUSY << dir;
    if (w->flags & busy) return -EBUSY;
    w->flags |= (uint8_t)busy;
    file_call_t call = {.loop = loop, .fd = fd, .gen = w->gen};
    ssize_t n = dir ? file_write_all(&call, buf, len) : file_read_chunk(&call, buf, len);
    w = &loop->io->watches[fd]; /* the table may have moved meanwhile */
    if (w->gen == call.gen) w->flags &= (uint8_t)~busy; /* else forgotten, flags too */
    return n;
}

/* ---- whole files ----------------------------------------------------------
 *
 * The path is opened on the pool (a lookup may wait for a disk or a network
 * file system), always O_NONBLOCK, so that opening a FIFO never blocks a
 * worker. A regular file is then read or written on the pool as above;
 * anything else (FIFO, character device, a pipe behind /dev/stdout) comes
 * back to the loop and is read or written with the fd waits, like a
 * socket: it may wait for ever (a FIFO with no writer), so it must be
 * cancellable, and it behaves as read(2)/write(2) do (/dev/null takes
 * everything, /dev/full says -ENOSPC).
 */

typedef struct whole_file {
    char *path;
    int fd;      /* the opened fd, or -1 */
    int rc;      /* 0 or -errno */
    int special; /* fd is not a regular file: read or written on the loop */
    int fifo;    /* (write) -ENXIO came from a FIFO nobody reads yet */
    char *data;  /* aloop_read_file: malloc'd by the worker */
    size_t len;
} whole_file_t;

static void whole_file_free(whole_file_t *w) {
    if (w->fd >= 0) close(w->fd);
    free(w->data); /* the worker's malloc, not ours */
    aloop__free(w->path);
    aloop__free(w);
}

static void whole_file_discard(void *result, void *arg) {
    (void)result;
    whole_file_free(arg);
}

static whole_file_t *whole_file_new(const char *path) {
    whole_file_t *w = aloop__calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = -1;
    w->path = aloop__strdup(path);
    if (!w->path) {
        aloop__free(w);
        return NULL;
    }
    return w;
}

/* Runs fn(w) on the pool: 0 (w is still the caller's) or -errno. */
static int whole_file_submit(void *(*fn)(void *), whole_file_t *w) {
    int rc = aloop_run_in_thread_with(fn, w, whole_file_discard, NULL);
    if (rc == -ECANCELED) return rc; /* w is the discard's */
    if (rc == 0) rc = w->rc;
    return rc;
}

/* Appends to w->data until n is 0 (EOF) or an error: the buffer stays
 * NUL-terminated with room for one more byte. read_some(ctx, p, room):
 * bytes, 0 at EOF, -errno. */
static int slurp(whole_file_t *w, size_t cap, ssize_t (*read_some)(void *ctx, char *p, size_t room), void *ctx) {
    for (;;) {
        if (w->len + 1 >= cap || !w->data) {
            if (w->data && cap > SIZE_MAX / 2) return -EFBIG;
            size_t ncap = w->data ? cap * 2 : cap;
            char *p = realloc(w->data, ncap);
            if (!p) return -ENOMEM;
            w->data = p;
            cap = ncap;
        }
        ssize_t n = read_some(ctx, w->data + w->len, cap - 1 - w->len);
        if (n < 0) return (int)n;
        if (n == 0) {
            w->data[w->len] = '\0';
            return 0;
        }
        w->len += (size_t)n;
    }
}

static ssize_t read_blocking(void *ctx, char *p, size_t room) {
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t n = read(fd, p, room);
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

/* Worker: opens w->path; reads all of it (until EOF, whatever fstat says)
 * if it is a regular file, else leaves the fd to the loop. */
static void *read_file_run(void *arg) {
    whole_file_t *w = arg;
    int fd = open(w->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        w->rc = -errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        w->rc = -errno;
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        w->fd = fd;
        w->special = S_ISFIFO(st.st_mode) ? 2 : 1;
        return NULL;
    }
    size_t cap = 4096;
    if (st.st_size > 0 && (uintmax_t)st.st_size < SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1; /* + 1: EOF seen without a regrow */
    w->rc = slurp(w, cap, read_blocking, &fd);
    close(fd);
    return NULL;
}

typedef struct loop_reader {
    aloop_task_impl_t *t;
    int fd;
} loop_reader_t;

static ssize_t read_waiting(void *ctx, char *p, size_t room) {
    loop_reader_t *r = ctx;
    return aloop__io_read(r->t, r->fd, p, room);
}

/* w->fd is the loop's now: adopted, and closed through it. */
static void special_close(aloop_t *loop, whole_file_t *w, int *rc) {
    aloop__io_forget(loop, w->fd);
    if (close(w->fd) < 0 && errno != EINTR && *rc == 0) *rc = -errno;
    w->fd = -1;
}

/* Data, or a writer that came and went, is there to read now. */
static int fifo_has_news(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* A FIFO, a character device...: read on the loop, waiting like a socket. */
static int read_special(aloop_task_impl_t *t, whole_file_t *w) {
    aloop_t *loop = t->fut.loop;
    aloop__io_adopt(loop, w->fd);
    int rc = 0;
    /* A FIFO reads EOF while no writer has come yet: wait for the first
     * one's bytes (or its close) first. A wake-up may be spurious (epoll
     * and poll allow it): only a poll that sees data or a hang-up counts. */
    if (w->special == 2)
        while ((rc = aloop__io_wait(t, w->fd, 0, -1)) == 0 && !fifo_has_news(w->fd)) continue;
    loop_reader_t r = {.t = t, .fd = w->fd};
    if (rc == 0) rc = slurp(w, 4096, read_waiting, &r);
    special_close(loop, w, &rc);
    return rc;
}

int aloop_read_file(const char *path, void **buf, size_t *len) {
    if (!path || !buf) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    whole_file_t *w = whole_file_new(path);
    if (!w) return -ENOMEM;
    int rc = whole_file_submit(read_file_run, w);
    if (rc == -ECANCELED) return rc;
    if (rc == 0 && w->special) rc = read_special(t, w);
    if (rc == 0) {
        *buf = w->data;
        if (len) *len = w->len;
        w->data = NULL;
    }
    whole_file_free(w);
    return rc;
}

/* Worker: opens (creating or truncating) w->path for writing. */
static void *open_for_write_run(void *arg) {
    whole_file_t *w = arg;
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        w->rc = -errno;
        struct stat st; /* ENXIO: a FIFO without a reader (so far) */
        w->fifo = w->rc == -ENXIO && stat(w->path, &st) == 0 && S_ISFIFO(st.st_mode);
        return NULL;
    }
    struct stat st;
    w->rc = fstat(w->fd, &st) < 0 ? -errno : 0;
    w->special = w->rc == 0 && !S_ISREG(st.st_mode);
    return NULL;
}

/* A FIFO can be opened for writing only once someone reads it, and no
 * poller says when that happens: try again, at growing intervals. */
#define FIFO_RETRY_MIN 0.001
#define FIFO_RETRY_MAX 0.1

int aloop_write_file(const char *path, const void *buf, size_t len) {
    if (!path || (!buf && len)) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    whole_file_t *w = whole_file_new(path);
    if (!w) return -ENOMEM;
    int rc;
    for (double delay = FIFO_RETRY_MIN;; delay = delay * 2 > FIFO_RETRY_MAX ? FIFO_RETRY_MAX : delay * 2) {
        rc = whole_file_submit(open_for_write_run, w);
        if (rc == -ECANCELED) return rc;
        if (rc != -ENXIO || !w->fifo) break;
        w->rc = 0;
        rc = aloop_sleep(delay);
        if (rc < 0) break;
    }
    if (rc == 0 && w->special) {
        aloop__io_adopt(t->fut.loop, w->fd);
        ssize_t n = aloop__io_write_all(t, w->fd, buf, len);
        if (n < 0) rc = (int)n;
        special_close(t->fut.loop, w, &rc);
    } else if (rc == 0) {
        if (len) {
            file_call_t call = {.fd = w->fd};
            ssize_t n = file_write_all(&call, buf, len);
            if (n < 0) rc = (int)n;
        }
        if (rc == 0) {
            int closed = close(w->fd); /* may report a late write error (NFS) */
            w->fd = -1;
            if (closed < 0 && errno != EINTR) rc = -errno;
        }
    }
    whole_file_free(w);
    return rc;
}

/*
 * copy.c - moving bytes from one fd to another without the caller's
 * buffer: aloop_copy, aloop_sendfile, and the kernel half of
 * aloop_stream_copy (stream.c).
 *
 * The rule that shapes everything here: a copy that stops (a cancel, an
 * error on the destination) has delivered exactly *copied bytes and holds
 * none that it took from the source. So each step moves only what the
 * destination accepts in that step:
 *  - a regular file source: sendfile(2) (Linux), else pread + one write,
 *    the file offset advanced by what was written;
 *  - a pipe on either side: splice(2) (Linux), which moves what both ends
 *    can take in one call;
 *  - a socket source: recv(MSG_PEEK), one write, then the written bytes are
 *    taken from the socket;
 *  - any other source (a tty, a character device): read, then write it all.
 *    This one path can hold bytes: a cancel during its write drops them.
 * A step that would block waits for the end that blocks. Every step after
 * the first spends a unit of the cooperative budget.
 */
#include "internal.h"
#include "sys_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#define COPY_CHUNK (64u * 1024u) /* bytes per step on the user-space paths */
/* per kernel step: large, but well inside ssize_t and sendfile's limit */
#define COPY_KERNEL_CHUNK (1u << 30)

enum { KIND_OTHER, KIND_FILE, KIND_PIPE, KIND_SOCK };

static int fd_kind(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (S_ISREG(st.st_mode)) return KIND_FILE;
    if (S_ISFIFO(st.st_mode)) return KIND_PIPE;
    if (S_ISSOCK(st.st_mode)) return KIND_SOCK;
    return KIND_OTHER;
}

static size_t step_len(size_t n, size_t done, size_t chunk) {
    return n && n - done < chunk ? n - done : chunk;
}

/* A kernel step got EAGAIN: wait for whichever end is not ready. */
static int wait_blocked(aloop_task_impl_t *t, int out_fd, int in_fd) {
    struct pollfd p[2] = {{.fd = in_fd, .events = POLLIN}, {.fd = out_fd, .events = POLLOUT}};
    if (poll(p, 2, 0) >= 0 && !p[0].revents) return aloop__io_wait(t, in_fd, 0, -1);
    return aloop__io_wait(t, out_fd, 1, -1);
}

/* One step: bytes moved (> 0), 0 at the source's end, -EAGAIN (nothing
 * moved, waited already), -ENOSYS (no kernel path: use the next one), or
 * -errno. */
typedef ssize_t (*step_fn)(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len);

#ifdef __linux__
static ssize_t step_sendfile(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len) {
    ssize_t r = sendfile(out_fd, in_fd, off, len);
    if (r >= 0) return r;
    if (errno == EAGAIN) {
        int rc = aloop__io_wait(t, out_fd, 1, -1);
        return rc < 0 ? rc : -EAGAIN;
    }
    return errno == EINVAL || errno == ENOSYS ? -ENOSYS : -errno;
}

static ssize_t step_splice(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len) {
    ALOOP_UNUSED(off);
    ssize_t r = splice(in_fd, NULL, out_fd, NULL, len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (r >= 0) return r;
    if (errno == EAGAIN) {
        int rc = wait_blocked(t, out_fd, in_fd);
        return rc < 0 ? rc : -EAGAIN;
    }
    return errno == EINVAL || errno == ENOSYS ? -ENOSYS : -errno;
}
#endif

/* pread at *off (the file offset itself when off is NULL), then one write. */
static ssize_t step_pread(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len) {
    char *buf = aloop__malloc(len);
    if (!buf) return -ENOMEM;
    off_t at = off ? *off : lseek(in_fd, 0, SEEK_CUR);
    ssize_t r = at < 0 ? -errno : pread(in_fd, buf, len, at);
    if (r < 0 && at >= 0) r = -errno;
    if (r > 0) r = aloop__io_write(t, out_fd, buf, (size_t)r);
    if (r > 0 && off) *off += r;
    if (r > 0 && !off && lseek(in_fd, at + r, SEEK_SET) < 0) r = -errno;
    aloop__free(buf);
    return r;
}

/* Peek, write once, then take what was written off the socket. */
static ssize_t step_peek(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len) {
    ALOOP_UNUSED(off);
    char *buf = aloop__malloc(len);
    if (!buf) return -ENOMEM;
    ssize_t r = aloop__sys_recv(t->fut.loop, in_fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
    /* interrupted: wait (at once if data is there) and try again */
    if (r < 0) r = errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
    if (r == -EAGAIN) {
        int rc = aloop__io_wait(t, in_fd, 0, -1);
        if (rc < 0) r = rc;
    } else if (r > 0) {
        r = aloop__io_write(t, out_fd, buf, (size_t)r);
        /* only this task reads in_fd: the peeked bytes are still first */
        if (r > 0 && recv(in_fd, buf, (size_t)r, MSG_DONTWAIT) != r) r = -EIO;
    }
    aloop__free(buf);
    return r;
}

/* Read, then write it all (holds bytes while it writes: see above). */
static ssize_t step_read(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t len) {
    ALOOP_UNUSED(off);
    char *buf = aloop__malloc(len);
    if (!buf) return -ENOMEM;
    ssize_t r = aloop__io_read(t, in_fd, buf, len);
    if (r > 0) r = aloop__io_write_all(t, out_fd, buf, (size_t)r);
    aloop__free(buf);
    return r;
}

/* The steps to try for this pair of fds, best first, NULL-terminated. */
static void pick_steps(int out_kind, int in_kind, int have_off, step_fn *steps) {
    int i = 0;
#ifdef __linux__
    if (in_kind == KIND_FILE) steps[i++] = step_sendfile;
    if (!have_off && (in_kind == KIND_PIPE || out_kind == KIND_PIPE)) steps[i++] = step_splice;
#else
    ALOOP_UNUSED(out_kind);
#endif
    if (in_kind == KIND_FILE) steps[i++] = step_pread;
    else if (in_kind == KIND_SOCK) steps[i++] = step_peek;
    else steps[i++] = step_read;
    steps[i] = NULL;
}

ssize_t aloop__copy_fd(aloop_task_impl_t *t, int out_fd, int in_fd, off_t *off, size_t n,
                       size_t *done, int spent) {
    int in_kind = fd_kind(in_fd), out_kind = fd_kind(out_fd);
    if (in_kind < 0) return in_kind;
    if (out_kind < 0) return out_kind;
    if (off && in_kind != KIND_FILE) return -EINVAL;
    /* the program's fds: their mode goes back when the library lets them go */
    if (in_kind != KIND_FILE) aloop__io_set_nonblocking(t->fut.loop, in_fd);
    if (out_kind != KIND_FILE) aloop__io_set_nonblocking(t->fut.loop, out_fd);
    step_fn steps[4];
    pick_steps(out_kind, in_kind, off != NULL, steps);
    step_fn *step = steps;
    while (!n || *done < n) {
        if (spent++) {
            int rc = aloop__io_spend(t, out_fd, in_fd); /* either may be closed meanwhile */
            if (rc < 0) return rc;
        }
        size_t chunk = *step == step_pread || *step == step_peek || *step == step_read
                           ? COPY_CHUNK
                           : COPY_KERNEL_CHUNK;
        ssize_t r = (*step)(t, out_fd, in_fd, off, step_len(n, *done, chunk));
        if (r == -ENOSYS && step[1]) {
            step++;
            continue;
        }
        if (r == -EAGAIN) continue;
        if (r < 0) return r;
        if (r == 0) return 0; /* the source's end */
        *done += (size_t)r;
    }
    return 0;
}

static int copy_enter(int out_fd, int in_fd, aloop_task_impl_t **t) {
    if (out_fd < 0 || in_fd < 0) return -EBADF;
    int err;
    *t = aloop__enter(&err);
    return *t ? 0 : err;
}

int aloop_copy(int out_fd, int in_fd, size_t n, size_t *copied) {
    size_t done = 0;
    if (copied) *copied = 0;
    aloop_task_impl_t *t;
    int rc = copy_enter(out_fd, in_fd, &t);
    if (rc < 0) return rc;
    rc = (int)aloop__copy_fd(t, out_fd, in_fd, NULL, n, &done, 0);
    if (copied) *copied = done;
    return rc;
}

int aloop_sendfile(int out_fd, int in_fd, off_t offset, size_t n, size_t *sent) {
    size_t done = 0;
    if (sent) *sent = 0;
    if (offset < 0) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = copy_enter(out_fd, in_fd, &t);
    if (rc < 0) return rc;
    rc = (int)aloop__copy_fd(t, out_fd, in_fd, &offset, n, &done, 0);
    if (sent) *sent = done;
    return rc;
}

int aloop__copy_has_kernel_path(int out_fd, int in_fd) {
#ifdef __linux__
    int in_kind = fd_kind(in_fd);
    return in_kind == KIND_FILE || in_kind == KIND_PIPE || fd_kind(out_fd) == KIND_PIPE;
#else
    ALOOP_UNUSED(out_fd);
    ALOOP_UNUSED(in_fd);
    return 0;
#endif
}

/*
 * pipe.c - a pipe both of whose ends are non-blocking and close-on-exec.
 * pipe2() would do it in one call, but macOS lacks it; the window between
 * pipe() and FD_CLOEXEC only matters to a program that forks from another
 * thread meanwhile, and there the child merely inherits two idle fds.
 */
#include "pipe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int set_flags(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    int fdfl = fcntl(fd, F_GETFD);
    if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -errno;
    return 0;
}

int aloop__fd_high(int fd) {
    if (fd < 0 || fd > 2) return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    close(fd);
    errno = e;
    return n;
}

int aloop__pipe(int fds[2]) {
    int p[2];
    if (pipe(p) < 0) return -errno;
    for (int i = 0; i < 2; i++) {
        int rc = (p[i] = aloop__fd_high(p[i])) < 0 ? -errno : set_flags(p[i]);
        if (rc < 0) {
            if (p[i] >= 0) close(p[i]);
            close(p[1 - i]);
            return rc;
        }
    }
    fds[0] = p[0];
    fds[1] = p[1];
    return 0;
}

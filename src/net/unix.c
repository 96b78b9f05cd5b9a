/*
 * unix.c - Unix-domain stream sockets: aloop_unix_listen, aloop_unix_connect.
 *
 * Names. A path names a socket file; "@name" names a socket in Linux's
 * abstract namespace, whose address is exactly the bytes after '@' behind a
 * leading NUL, with the address length saying where it ends (offset of
 * sun_path + 1 + length of name): no padding, so "@abc" is not "@abc\0\0..".
 *
 * A socket file outlives its listener (close(2) does not remove it), so a
 * server restarted after a crash finds its path taken. aloop_unix_listen
 * replaces such a stale file, but only when it is a socket and nothing
 * accepts on it: it connects to the path first, and a listener that answers
 * (or whose backlog is full) is alive, so the call fails with -EADDRINUSE
 * and leaves the file alone, as it leaves alone anything that is not a
 * socket. Two servers replacing the same stale file at the same instant can
 * still race (each may remove what the other just bound); a lock file is
 * the cure if that matters.
 *
 * Connecting. A non-blocking connect to a Unix socket never is "in
 * progress" on Linux: it succeeds at once, or fails with EAGAIN when the
 * listener's backlog is full, and then the socket is simply unconnected
 * (polling it would report it writable at once). So on EAGAIN we try again
 * after a pause that doubles from 1 ms to 100 ms, until the timeout.
 * Systems where the connect does go in progress wait for writability.
 */
#include "internal.h"

#include <math.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Fills *sun for path: 0 and *len, or -EINVAL / -ENAMETOOLONG / -ENOTSUP. */
static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len) {
    if (!path || !*path) return -EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (path[0] == '@') {
#if defined(__linux__)
        if (n > sizeof sun->sun_path) return -ENAMETOOLONG; /* NUL + n - 1 bytes */
        memcpy(sun->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
#else
        return -ENOTSUP;
#endif
    }
    if (n >= sizeof sun->sun_path) return -ENAMETOOLONG;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* 1 if path is a socket file nobody accepts on (a connect is refused). */
static int stale_socket_file(const struct sockaddr_un *sun, socklen_t len) {
    struct stat st;
    if (lstat(sun->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
    int probe = aloop__net_socket(AF_UNIX, SOCK_STREAM, 0);
    if (probe < 0) return 0;
    int refused = connect(probe, (const struct sockaddr *)sun, len) < 0 && errno == ECONNREFUSED;
    close(probe);
    return refused;
}

int aloop_unix_listen(const char *path, int backlog) {
    struct sockaddr_un sun;
    socklen_t len;
    int rc = unix_addr(path, &sun, &len);
    if (rc < 0) return rc;
    int fd = aloop__net_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    rc = bind(fd, (struct sockaddr *)&sun, len) == 0 ? 0 : -errno;
    if (rc == -EADDRINUSE && path[0] != '@' && stale_socket_file(&sun, len)) {
        unlink(sun.sun_path);
        rc = bind(fd, (struct sockaddr *)&sun, len) == 0 ? 0 : -errno;
    }
    if (rc == 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rc = -errno;
        if (path[0] != '@') unlink(sun.sun_path); /* ours: we just bound it */
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

#define CONNECT_PAUSE_MIN 0.001
#define CONNECT_PAUSE_MAX 0.1

/* Connects fd to sun before deadline (< 0: none), retrying while the
 * listener's backlog is full. */
static int connect_retrying(aloop_task_impl_t *t, int fd, const struct sockaddr_un *sun,
                            socklen_t len, double deadline) {
    aloop_t *loop = t->fut.loop;
    double pause = CONNECT_PAUSE_MIN;
    for (;;) {
        double left = deadline >= 0 ? deadline - aloop__now(loop) : -1;
        if (deadline >= 0 && left < 0) left = 0; /* one try, even with timeout 0 */
        int rc = aloop__net_connect(t, fd, (const struct sockaddr *)sun, len, left);
        if (rc != -EAGAIN) return rc;
        if (deadline >= 0 && left <= 0) return -ETIMEDOUT;
        if (deadline >= 0 && pause > left) pause = left;
        rc = aloop_sleep(pause);
        if (rc < 0) return rc;
        pause = pause * 2 < CONNECT_PAUSE_MAX ? pause * 2 : CONNECT_PAUSE_MAX;
    }
}

int aloop_unix_connect(const char *path, double timeout) {
    if (isnan(timeout)) return -EINVAL;
    struct sockaddr_un sun;
    socklen_t len;
    int rc = unix_addr(path, &sun, &len);
    if (rc < 0) return rc;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    double deadline = timeout >= 0 ? aloop__now(t->fut.loop) + timeout : -1;
    int fd = aloop__net_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return fd;
    rc = connect_retrying(t, fd, &sun, len, deadline);
    if (rc < 0) {
        aloop_close(fd);
        return rc;
    }
    return fd;
}

/* tlsserver - the libaloop side of bench/tls: aloop_serve_tls on one loop,
 * one task per connection, speaking the same tiny protocol as
 * `openssl s_server -WWW` and bench/tls/go/server.go: one request
 * "GET /NAME HTTP/1.0\r\n\r\n", the answer "HTTP/1.0 200 ok\r\n\r\n" and
 * the file ROOT/NAME, then close_notify and close.
 *
 *   tlsserver [--copy] --cert C --key K --root DIR [--port P]
 *
 * The file is read with read(2) and sent with aloop_stream_write, 64 KiB at
 * a time; --copy sends it with aloop_stream_copy from a stream on the file
 * instead.
 *
 * Prints "PORT n" once it listens; runs until killed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>
#include <aloop_tls.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct opts {
    const char *cert, *key, *root, *port;
    int copy;
} opts_t;

static const char ok_head[] = "HTTP/1.0 200 ok\r\n\r\n";
static const char missing[] = "HTTP/1.0 404 not found\r\n\r\n";

/* ROOT/NAME for "GET /NAME ...", NAME without "..": 0, or -1. */
static int file_path(const char *root, const char *req, char *out, size_t cap)
{
    if (strncmp(req, "GET /", 5) != 0)
        return -1;
    const char *name = req + 5;
    size_t len = strcspn(name, " \r\n");
    if (len == 0 || memmem(name, len, "..", 2) != NULL)
        return -1;
    int n = snprintf(out, cap, "%s/%.*s", root, (int)len, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The file with read(2) (it is in the page cache, as for s_server and
 * Go's io.Copy) and aloop_stream_write: 0 or -1. */
static int send_read(aloop_stream_t *conn, int fd)
{
    enum { CHUNK = 64 * 1024 };
    char *buf = malloc(CHUNK); /* each connection its own: writes suspend */
    ssize_t n = buf != NULL ? 1 : -1;
    while (n > 0) {
        n = read(fd, buf, CHUNK);
        if (n > 0 && aloop_stream_write(conn, buf, (size_t)n) < 0)
            n = -1;
    }
    free(buf);
    return n == 0 ? 0 : -1;
}

/* --copy: aloop_stream_copy from a stream on the file (its reads go to the
 * loop's thread pool, as every regular-file read of the library does). */
static int send_copy(aloop_stream_t *conn, int fd)
{
    int dup_fd = dup(fd);
    aloop_stream_t *file = dup_fd < 0 ? NULL : aloop_stream_new(aloop_current(), dup_fd, 0);
    if (file == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        return -1;
    }
    int rc = aloop_stream_copy(conn, file, 0, NULL);
    aloop_stream_close(file);
    return rc == 0 ? 0 : -1;
}

static void handle(aloop_stream_t *conn, void *arg)
{
    const opts_t *o = arg;
    char req[1024], path[PATH_MAX];
    ssize_t n = aloop_stream_readuntil(conn, "\r\n\r\n", 4, req, sizeof req);
    if (n <= 0)
        return;
    int fd = file_path(o->root, req, path, sizeof path) == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        aloop_stream_write(conn, missing, sizeof missing - 1);
        aloop_stream_shutdown(conn);
        return;
    }
    if (aloop_stream_write(conn, ok_head, sizeof ok_head - 1) > 0 &&
        (o->copy ? send_copy(conn, fd) : send_read(conn, fd)) == 0)
        aloop_stream_shutdown(conn); /* close_notify */
    close(fd);
}

static void *main_task(void *arg)
{
    const opts_t *o = arg;
    aloop_tls_config_t *cfg = aloop_tls_server_config_new(o->cert, o->key);
    if (cfg == NULL) {
        fprintf(stderr, "tlsserver: %s, %s: %s\n", o->cert, o->key, strerror(errno));
        exit(1);
    }
    int lfd = aloop_tcp_listen("127.0.0.1", o->port, 1024);
    if (lfd < 0) {
        fprintf(stderr, "tlsserver: listen: %s\n", strerror(-lfd));
        exit(1);
    }
    aloop_server_t *srv = aloop_serve_tls(aloop_current(), lfd, cfg, NULL, handle, arg);
    if (srv == NULL) {
        fprintf(stderr, "tlsserver: aloop_serve_tls: %s\n", strerror(errno));
        exit(1);
    }
    aloop_tls_config_free(cfg);
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    getsockname(aloop_server_fd(srv), (struct sockaddr *)&sa, &salen);
    printf("PORT %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    aloop_server_wait_closed(srv);
    return NULL;
}

int main(int argc, char **argv)
{
    opts_t o = {.root = ".", .port = "0"};
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "--copy") == 0) {
        o.copy = 1;
        i++;
    }
    for (; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--cert") == 0)
            o.cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            o.key = argv[i + 1];
        else if (strcmp(argv[i], "--root") == 0)
            o.root = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            o.port = argv[i + 1];
    }
    if (o.cert == NULL || o.key == NULL || i != argc) {
        fprintf(stderr, "usage: tlsserver [--copy] --cert C --key K [--root DIR] [--port P]\n");
        return 2;
    }
    return aloop_main(main_task, &o, NULL) == 0 ? 0 : 1;
}

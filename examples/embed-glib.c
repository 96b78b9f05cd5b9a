/*
 * embed-glib - aloop tasks running inside a GLib main loop.
 *
 * GLib owns main() here, as a GTK program would. It runs its own sources
 * (a 100 ms tick, and a TCP client on a non-blocking socket watched with
 * g_unix_fd_add) and, next to them, an aloop loop with two tasks: a
 * countdown and a TCP echo server that the GLib client talks to.
 *
 * The bridge (bridge_* below, about 40 lines) is what any host needs:
 *   - watch aloop_backend_fd() for readability (g_unix_fd_add); when it
 *     fires, run one non-blocking iteration: aloop_run_once(loop, 0);
 *   - after every iteration, ask aloop_backend_timeout() when it next needs
 *     to run and arm a host timer for then (0 = right away, -1 = only
 *     when the fd fires);
 *   - with the poll(2) backend there is no fd (-ENOTSUP): poll the loop
 *     on a short timer instead.
 * aloop never blocks GLib: each aloop_run_once(loop, 0) runs what is ready
 * and returns.
 *
 *     embed-glib            prints what both sides do, in order
 */
#include <aloop.h>
#include <glib.h>
#include <glib-unix.h>

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the bridge: GLib drives aloop --------------------------------------- */

typedef struct bridge {
    aloop_t *loop;
    guint fd_source;    /* the backend fd watch (0 with the poll backend) */
    guint timer_source; /* the next aloop deadline, 0 if none armed */
} bridge_t;

static void bridge_iterate(bridge_t *b);

static gboolean bridge_on_timer(gpointer arg) {
    bridge_t *b = arg;
    b->timer_source = 0; /* this source ends now (G_SOURCE_REMOVE) */
    bridge_iterate(b);
    return G_SOURCE_REMOVE;
}

static gboolean bridge_on_fd(gint fd, GIOCondition cond, gpointer arg) {
    (void)fd;
    (void)cond;
    bridge_iterate(arg);
    return G_SOURCE_CONTINUE;
}

/* Arms a GLib timer for aloop's next deadline. */
static void bridge_rearm(bridge_t *b) {
    if (b->timer_source) g_source_remove(b->timer_source);
    b->timer_source = 0;
    double t = aloop_backend_timeout(b->loop);
    if (!b->fd_source && (t < 0 || t > 0.005)) t = 0.005; /* no fd to wake us for I/O */
    if (t >= 0) b->timer_source = g_timeout_add((guint)ceil(t * 1000), bridge_on_timer, b);
}

static void bridge_iterate(bridge_t *b) {
    int rc = aloop_run_once(b->loop, 0);
    if (rc < 0) fprintf(stderr, "aloop_run_once: %s\n", aloop_strerror(rc));
    bridge_rearm(b);
}

static void bridge_start(bridge_t *b, aloop_t *loop) {
    b->loop = loop;
    int fd = aloop_backend_fd(loop);
    b->fd_source = fd >= 0 ? g_unix_fd_add(fd, G_IO_IN, bridge_on_fd, b) : 0;
    bridge_rearm(b);
}

static void bridge_stop(bridge_t *b) {
    if (b->fd_source) g_source_remove(b->fd_source);
    if (b->timer_source) g_source_remove(b->timer_source);
    b->fd_source = b->timer_source = 0;
}

/* ---- the aloop side: a countdown and an echo server ------------------------ */

static void *countdown(void *arg) {
    (void)arg;
    for (int n = 3; n > 0; n--) {
        if (aloop_sleep(0.2) < 0) return NULL;
        printf("aloop: countdown %d\n", n);
    }
    printf("aloop: countdown done\n");
    return NULL;
}

static void *echo_server(void *arg) {
    int lfd = *(int *)arg;
    int fd = aloop_accept(lfd, NULL, NULL);
    aloop_close(lfd);
    if (fd < 0) return aloop_fail(fd);
    printf("aloop: echo accepted a connection\n");
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 256);
    if (!s) {
        aloop_close(fd);
        return aloop_fail(-ENOMEM);
    }
    char line[256];
    ssize_t n;
    while ((n = aloop_stream_readline(s, line, sizeof line)) > 0) {
        printf("aloop: echo %.*s", (int)n, line);
        if (aloop_stream_write(s, line, (size_t)n) < 0) break;
    }
    printf("aloop: echo connection closed\n");
    aloop_stream_close(s);
    return NULL;
}

/* ---- the GLib side: a tick, and a client of the echo server ---------------- */

typedef struct app {
    GMainLoop *main;
    int ticks;
    int fd;               /* client socket */
    int sent, replies;
    char buf[256];
    size_t have;
    int countdown_done;   /* set through aloop (task done callback) */
    aloop_task_t *countdown;
} app_t;

#define PINGS 3

static void maybe_quit(app_t *a) {
    if (a->replies == PINGS && aloop_future_done(a->countdown)) g_main_loop_quit(a->main);
}

static gboolean on_tick(gpointer arg) {
    app_t *a = arg;
    printf("glib: tick %d\n", ++a->ticks);
    maybe_quit(a);
    return G_SOURCE_CONTINUE;
}

static void send_ping(app_t *a) {
    char msg[32];
    int len = snprintf(msg, sizeof msg, "ping %d\n", ++a->sent);
    if (send(a->fd, msg, (size_t)len, MSG_NOSIGNAL) != len) perror("send");
}

static gboolean on_client_readable(gint fd, GIOCondition cond, gpointer arg) {
    (void)cond;
    app_t *a = arg;
    ssize_t n = recv(fd, a->buf + a->have, sizeof a->buf - a->have - 1, 0);
    if (n <= 0) return G_SOURCE_REMOVE;
    a->have += (size_t)n;
    char *nl;
    while ((nl = memchr(a->buf, '\n', a->have)) != NULL) {
        size_t len = (size_t)(nl - a->buf) + 1;
        printf("glib: reply %.*s", (int)len, a->buf);
        memmove(a->buf, a->buf + len, a->have - len);
        a->have -= len;
        if (++a->replies < PINGS) send_ping(a);
    }
    if (a->replies == PINGS) {
        shutdown(a->fd, SHUT_WR); /* the echo task sees EOF */
        maybe_quit(a);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void on_countdown_done(aloop_future_t *f, void *arg) {
    (void)f;
    maybe_quit(arg);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        printf("usage: embed-glib\nRuns aloop tasks (a countdown, a TCP echo server) inside a GLib main loop.\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    aloop_t *loop = aloop_new();
    if (!loop) return 1;
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 8);
    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", aloop_strerror(lfd));
        return 1;
    }
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);

    app_t a = {.main = g_main_loop_new(NULL, FALSE)};
    a.countdown = aloop_spawn(loop, countdown, NULL);
    aloop_task_t *echo = aloop_spawn(loop, echo_server, &lfd);
    aloop_future_add_done_callback(a.countdown, on_countdown_done, &a);

    bridge_t bridge = {0};
    bridge_start(&bridge, loop);
    g_timeout_add(100, on_tick, &a);

    /* the GLib client: a plain blocking connect (loopback), then async */
    a.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(a.fd, (struct sockaddr *)&addr, alen) < 0) {
        perror("connect");
        return 1;
    }
    g_unix_set_fd_nonblocking(a.fd, TRUE, NULL);
    g_unix_fd_add(a.fd, G_IO_IN, on_client_readable, &a);
    printf("glib: connected\n");
    send_ping(&a);

    g_main_loop_run(a.main);
    printf("glib: main loop done after %d ticks\n", a.ticks);

    /* let the echo task see the EOF and finish, then tear down */
    while (!aloop_future_done(echo) && aloop_run_once(loop, -1) > 0) {}
    bridge_stop(&bridge);
    close(a.fd);
    aloop_release(a.countdown);
    aloop_release(echo);
    aloop_free(loop);
    g_main_loop_unref(a.main);
    printf("done\n");
    return 0;
}

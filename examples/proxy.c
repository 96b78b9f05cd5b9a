/*
 * proxy - a TCP relay: every connection to --listen is relayed, both ways,
 * to --to, the half-close of either side passed on to the other.
 *
 *     proxy --listen HOST:PORT --to HOST:PORT [--max-conns N]
 *
 * Each connection is one handler task (aloop_serve_with; at --max-conns
 * the server stops accepting and the backlog holds the rest): it connects
 * upstream within CONNECT_TIMEOUT, then copies client -> upstream itself
 * while a second task copies upstream -> client (aloop_stream_copy; the
 * kernel moves the bytes where it can). A direction that reaches EOF
 * shuts down the other side's write half (aloop_stream_shutdown), so a
 * client that half-closes still gets its whole answer; a direction that
 * fails cancels the other. SIGINT or SIGTERM: stop accepting, let the
 * open connections finish for up to GRACE seconds, then cancel them.
 * The asyncio twin is examples/asyncio/proxy.py.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long */
#endif
#include <aloop.h>

#include <errno.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CONNECT_TIMEOUT 5.0 /* seconds for the lookup and connect upstream */
#define GRACE 10.0          /* seconds open connections get after a signal */

typedef struct side {
    aloop_stream_t *to, *from;
    aloop_task_t *other; /* cancelled when this direction fails */
} side_t;

/* One direction: EOF is passed on as a half-close, a failure ends both. */
static void *pump(void *arg) {
    side_t *s = arg;
    if (aloop_stream_copy(s->to, s->from, 0, NULL) == 0) aloop_stream_shutdown(s->to);
    else if (s->other) aloop_cancel(s->other);
    return NULL;
}

static void relay(aloop_stream_t *client, void *upstream_addr) {
    char **to = upstream_addr;
    aloop_stream_t *up;
    if (aloop_open_connection(to[0], to[1], CONNECT_TIMEOUT, &up) < 0) return;
    side_t back = {client, up, aloop_current_task()}, forth = {up, client, NULL};
    if ((forth.other = aloop_spawn(aloop_current(), pump, &back))) {
        pump(&forth);
        aloop_await(forth.other, NULL); /* a cancel here cancels it too */
        aloop_release(forth.other);
    }
    aloop_stream_close(up);
}

typedef struct opts {
    char *listen[2], *to[2];
    aloop_serve_opts_t serve;
    sigset_t stop; /* SIGINT, SIGTERM */
} opts_t;

static void *proxy_main(void *arg) {
    opts_t *o = arg;
    int fd = aloop_tcp_listen(o->listen[0], o->listen[1], 0);
    aloop_server_t *srv = fd < 0 ? NULL : aloop_serve_with(aloop_current(), fd, &o->serve, relay, o->to);
    if (!srv) return aloop_fail(fd < 0 ? fd : -errno);
    struct sockaddr_in6 sa; /* the port sits at the same place for IPv4 */
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("proxy: listening on %s:%u\n", o->listen[0], ntohs(sa.sin6_port));
    fflush(stdout);
    aloop_signal_wait_any(&o->stop);
    aloop_server_close(srv); /* stop accepting; GRACE seconds for the open connections */
    aloop_timeout_t grace;
    aloop_timeout_enter(&grace, GRACE);
    aloop_timeout_exit(&grace, aloop_server_wait_closed(srv));
    aloop_server_free(srv); /* cancels what is left */
    return NULL;
}

/* ---- the command line ---------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(out, "usage: proxy --listen HOST:PORT --to HOST:PORT [--max-conns N]\n"
                 "  relays every connection to --listen to --to, both ways\n");
}

/* Splits "HOST:PORT" (or "[V6]:PORT") in place; 0 or -1. */
static int split_addr(char *s, char **hp) {
    char *colon = strrchr(s, ':');
    if (!colon || !colon[1]) return -1;
    *colon = '\0';
    if (s[0] == '[' && colon[-1] == ']') {
        colon[-1] = '\0';
        s++;
    }
    hp[0] = s;
    hp[1] = colon + 1;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                              {"to", required_argument, NULL, 't'},
                                              {"max-conns", required_argument, NULL, 'm'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    opts_t o = {0};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'l': bad |= split_addr(optarg, o.listen); break;
        case 't': bad |= split_addr(optarg, o.to); break;
        case 'm':
            o.serve.max_connections = strtoul(optarg, &end, 10);
            bad |= *end || !*optarg ? -1 : 0;
            break;
        case 'h': usage(stdout); return 0;
        default: bad = -1;
        }
    }
    if (bad || optind != argc || !o.listen[0] || !o.to[0]) {
        usage(stderr);
        return 2;
    }
    /* the signals are ours to wait for (in every thread, the pool's too) */
    sigemptyset(&o.stop);
    sigaddset(&o.stop, SIGINT);
    sigaddset(&o.stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &o.stop, NULL);
    int rc = aloop_main(proxy_main, &o, NULL);
    if (rc < 0) fprintf(stderr, "proxy: %s:%s: %s\n", o.listen[0], o.listen[1], aloop_strerror(rc));
    return rc < 0;
}

/*
 * udp-echo - a UDP echo server, and a client that measures round trips.
 *
 *   udp-echo [--host H] [--port P]              server: echoes every datagram
 *   udp-echo --client [--host H] [--port P] [-n COUNT] [--size BYTES]
 *            [--interval S] [--timeout S]        client: ping-like round trips
 *
 * The server is one task: receive a datagram, send it back to its sender.
 * SIGINT or SIGTERM stops it (a second task waits for them and cancels the
 * first). The client sends COUNT numbered datagrams, one every INTERVAL
 * seconds, and waits up to TIMEOUT for each echo inside a timeout scope (a
 * late echo of an earlier one is recognised by its number and skipped);
 * it prints one line per echo and a summary, as ping(8) does, and exits 1
 * if no echo came back at all.
 */
#define _GNU_SOURCE /* getnameinfo, NI_MAXHOST; getopt_long */
#include <aloop.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest UDP payload: 65,535 - 8 over IPv6 (a 16-bit payload length,
 * with no IP header in it); IPv4's is 65,507, and the kernel refuses a
 * longer datagram there with EMSGSIZE. */
#define MAX_DATAGRAM 65527

typedef struct options {
    int client;
    const char *host, *port;
    long count;
    size_t size;
    double interval, timeout;
} options_t;

static void usage(FILE *out) {
    fprintf(out,
            "usage: udp-echo [--host HOST] [--port PORT]\n"
            "       udp-echo --client [--host HOST] [--port PORT] [-n COUNT] [--size BYTES]\n"
            "                [--interval SECONDS] [--timeout SECONDS]\n"
            "\n"
            "Server (default): echoes every datagram to its sender until SIGINT/SIGTERM.\n"
            "  --host HOST        address to bind (default 127.0.0.1; \"\" = every address)\n"
            "  --port PORT        port (default 9999; 0 = any free port, printed)\n"
            "Client (--client): sends COUNT numbered datagrams and prints round-trip times.\n"
            "  -n, --count COUNT  datagrams to send (default 5)\n"
            "  --size BYTES       payload size, 8..%d (default 64)\n"
            "  --interval S       seconds between sends (default 0.2)\n"
            "  --timeout S        seconds to wait for each echo (default 1)\n"
            "  -h, --help         this text\n",
            MAX_DATAGRAM);
}

static int parse_double(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0)) return -1;
    *out = v;
    return 0;
}

/* 0 ok, 1 help printed, -1 bad usage. */
static int parse_args(int argc, char **argv, options_t *opt) {
    *opt = (options_t){.host = "127.0.0.1", .port = "9999", .count = 5, .size = 64,
                       .interval = 0.2, .timeout = 1};
    static const struct option longopts[] = {
        {"client", no_argument, NULL, 'c'},     {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'}, {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'}, {"interval", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'c': opt->client = 1; break;
        case 'H': opt->host = optarg; break;
        case 'p': opt->port = optarg; break;
        case 'n':
            opt->count = strtol(optarg, &end, 10);
            if (*end || opt->count <= 0) return -1;
            break;
        case 's': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 8 || v > MAX_DATAGRAM) return -1;
            opt->size = (size_t)v;
            break;
        }
        case 'i':
            if (parse_double(optarg, &opt->interval) < 0) return -1;
            break;
        case 't':
            if (parse_double(optarg, &opt->timeout) < 0) return -1;
            break;
        case 'h': usage(stdout); return 1;
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

/* "127.0.0.1:9999" or "[::1]:9999" for an address. */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap) {
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(sa, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, cap, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* ---- server ------------------------------------------------------------- */

typedef struct server {
    int fd;
    long echoed;
    aloop_task_t *echo;
} server_t;

static void *echo_main(void *arg) {
    server_t *srv = arg;
    static char buf[MAX_DATAGRAM + 1];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = aloop_recvfrom(srv->fd, buf, sizeof buf, (struct sockaddr *)&from, &flen);
        if (n == -ECANCELED) return NULL;
        if (n < 0) { /* -EMSGSIZE only for an IPv6 jumbogram: report and go on */
            fprintf(stderr, "udp-echo: recvfrom: %s\n", aloop_strerror(n));
            continue;
        }
        ssize_t w = aloop_sendto(srv->fd, buf, (size_t)n, (struct sockaddr *)&from, flen);
        if (w == -ECANCELED) return NULL;
        if (w < 0) fprintf(stderr, "udp-echo: sendto: %s\n", aloop_strerror(w));
        else srv->echoed++;
    }
}

/* SIGINT or SIGTERM ends the echo task. */
static void *signal_main(void *arg) {
    server_t *srv = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (aloop_signal_wait_any(&set) > 0) aloop_cancel(srv->echo);
    return NULL;
}

static int run_server(const options_t *opt) {
    server_t srv = {0};
    srv.fd = aloop_udp_bind(*opt->host ? opt->host : NULL, opt->port);
    if (srv.fd < 0) {
        fprintf(stderr, "udp-echo: cannot bind %s:%s: %s\n", opt->host, opt->port,
                aloop_strerror(srv.fd));
        return 1;
    }
    aloop_t *loop = aloop_current();
    srv.echo = aloop_spawn(loop, echo_main, &srv);
    aloop_task_t *sig = aloop_spawn(loop, signal_main, &srv);
    if (!srv.echo || !sig) {
        fprintf(stderr, "udp-echo: out of memory\n");
        aloop_cancel(srv.echo);
        aloop_cancel(sig);
    } else {
        aloop_yield(); /* the signal watcher registers before we announce ourselves */
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char where[NI_MAXHOST + NI_MAXSERV + 4] = "?";
        if (getsockname(srv.fd, (struct sockaddr *)&ss, &len) == 0)
            format_addr((struct sockaddr *)&ss, len, where, sizeof where);
        printf("listening on %s\n", where);
        fflush(stdout);
        aloop_await(srv.echo, NULL); /* until a signal cancels it */
        aloop_cancel(sig);
        aloop_await(sig, NULL);
        printf("echoed %ld datagrams\n", srv.echoed);
    }
    if (srv.echo) aloop_release(srv.echo);
    if (sig) aloop_release(sig);
    aloop_close(srv.fd);
    return 0;
}

/* ---- client ------------------------------------------------------------- */

typedef struct stats {
    long sent, received;
    double min, max, sum;
} stats_t;

/* Waits for the echo of datagram seq (len bytes) within timeout seconds:
 * its round-trip time, or a negative errno (-ETIMEDOUT). Echoes of earlier
 * datagrams that arrive late are skipped. */
static double await_echo(int fd, uint32_t seq, size_t len, double sent_at, double timeout,
                         char *buf) {
    aloop_timeout_t to;
    int rc = aloop_timeout_enter(&to, timeout);
    if (rc < 0) return rc;
    for (;;) {
        ssize_t n = aloop_recvfrom(fd, buf, len + 1, NULL, NULL);
        if (n == -EMSGSIZE) continue; /* not one of ours */
        if (n < 0) {
            rc = (int)n;
            break;
        }
        uint32_t got;
        memcpy(&got, buf, sizeof got);
        if ((size_t)n == len && got == seq) break;
    }
    rc = aloop_timeout_exit(&to, rc);
    return rc < 0 ? rc : aloop_time(aloop_current()) - sent_at;
}

static int run_client(const options_t *opt) {
    int fd = aloop_udp_connect(opt->host, opt->port);
    if (fd < 0) {
        fprintf(stderr, "udp-echo: cannot reach %s:%s: %s\n", opt->host, opt->port,
                fd == -ENOENT ? "name not found" : aloop_strerror(fd));
        return 1;
    }
    char *out = calloc(2, opt->size + 1), *in = out ? out + opt->size + 1 : NULL;
    if (!out) {
        aloop_close(fd);
        return 1;
    }
    for (size_t i = 8; i < opt->size; i++) out[i] = (char)('a' + i % 26);
    stats_t st = {.min = 1e9};
    int rc = 0;
    for (uint32_t seq = 0; seq < (uint32_t)opt->count && rc == 0; seq++) {
        if (seq && (rc = aloop_sleep(opt->interval)) < 0) break;
        memcpy(out, &seq, sizeof seq);
        double t0 = aloop_time(aloop_current());
        ssize_t w = aloop_sendto(fd, out, opt->size, NULL, 0);
        if (w < 0) {
            printf("seq=%u: send failed: %s\n", seq, aloop_strerror(w));
            continue;
        }
        st.sent++;
        double rtt = await_echo(fd, seq, opt->size, t0, opt->timeout, in);
        if (rtt == -ECANCELED) rc = -ECANCELED;
        else if (rtt < 0) printf("seq=%u: no echo: %s\n", seq, aloop_strerror((int)rtt));
        else {
            st.received++;
            st.sum += rtt;
            if (rtt < st.min) st.min = rtt;
            if (rtt > st.max) st.max = rtt;
            printf("%zu bytes from %s:%s: seq=%u time=%.3f ms\n", opt->size, opt->host,
                   opt->port, seq, rtt * 1e3);
        }
        fflush(stdout);
    }
    printf("--- %s:%s udp-echo statistics ---\n", opt->host, opt->port);
    printf("%ld sent, %ld received, %.0f%% lost\n", st.sent, st.received,
           st.sent ? 100.0 * (double)(st.sent - st.received) / (double)st.sent : 0.0);
    if (st.received)
        printf("rtt min/avg/max = %.3f/%.3f/%.3f ms\n", st.min * 1e3,
               st.sum / (double)st.received * 1e3, st.max * 1e3);
    free(out);
    aloop_close(fd);
    return st.received ? 0 : 1;
}

static void *main_task(void *arg) {
    const options_t *opt = arg;
    int status = opt->client ? run_client(opt) : run_server(opt);
    return (void *)(intptr_t)status;
}

int main(int argc, char **argv) {
    options_t opt;
    int rc = parse_args(argc, argv, &opt);
    if (rc > 0) return 0;
    if (rc < 0) {
        usage(stderr);
        return 2;
    }
    void *status = NULL;
    rc = aloop_main(main_task, &opt, &status);
    if (rc < 0) {
        fprintf(stderr, "udp-echo: %s\n", aloop_strerror(rc));
        return 1;
    }
    return (int)(intptr_t)status;
}

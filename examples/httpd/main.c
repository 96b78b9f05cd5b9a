/*
 * httpd - a static HTTP/1.1 file server on libaloop, the runtime's
 * showcase: GET and HEAD of the files under ROOT, keep-alive and
 * pipelining, Last-Modified / If-Modified-Since, single byte ranges,
 * aloop_sendfile for bodies, an access log, one loop per core.
 *
 *     ./httpd --port 8080 --root /srv/www [--loops N] [--max-conns N]
 *     curl -v http://127.0.0.1:8080/index.html
 *
 * HTTPS with --tls-cert FILE --tls-key FILE (aloop-tls, built when OpenSSL
 * 3 is found): every loop serves with aloop_serve_tls and a server config
 * of its own (a config is used by one thread at a time); a handler gets a
 * connection only once its handshake is done.
 *     curl --cacert ca.pem https://localhost:8443/index.html
 *
 * Shape: N loops on N threads (loop 0 on the main thread), each with its
 * own listener on the same port (SO_REUSEPORT: the kernel spreads the
 * connections), its own server (a task per connection, conn.c) and its own
 * access-log buffer; they share nothing but the options. Loop 0 also waits
 * for SIGINT / SIGTERM and tells the others, through
 * aloop_call_soon_threadsafe, to shut down gracefully: stop accepting,
 * finish the responses under way, close idle keep-alive connections. A
 * second signal ends the process at once.
 *
 * The request parser (parse.c) is pure and fuzzed (tests/fuzz/fuzz_httpd.c);
 * what it accepts and refuses is listed in http.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "http.h"
#ifdef EXAMPLE_WITH_TLS
#include <aloop_tls.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct httpd_thread {
    httpd_loop_t hl;
    pthread_t thread;
    aloop_task_t *main;
    aloop_event_t *stop;
    int stop_requested;       /* loop 0 said stop (maybe before stop existed) */
    struct httpd_thread *all; /* loop 0 tells the others */
    unsigned n;
    unsigned signals;         /* loop 0: SIGINT/SIGTERM received */
} httpd_thread_t;

/* ------------------------------------------------------------------------ */
/* Stopping                                                                 */
/* ------------------------------------------------------------------------ */

static void stop_this_loop(void *arg) {
    httpd_thread_t *t = arg;
    t->stop_requested = 1;
    if (t->stop) aloop_event_set(t->stop);
}

static void tell_other_loops_to_stop(httpd_thread_t *t0) {
    for (unsigned i = 1; i < t0->n; i++) {
        int rc = aloop_call_soon_threadsafe(t0->all[i].hl.loop, stop_this_loop, &t0->all[i]);
        if (rc < 0) fprintf(stderr, "httpd: cannot stop loop %u: %s\n", i, aloop_strerror(rc));
    }
}

/* The first SIGINT/SIGTERM starts the graceful shutdown; a second one ends
 * the process by that signal. */
static void *signal_main(void *arg) {
    httpd_thread_t *t0 = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        int signo = aloop_signal_wait_any(&set);
        if (signo < 0) return NULL;
        if (t0->signals++ > 0) {
            fprintf(stderr, "httpd: second signal during shutdown; exiting now\n");
            signal(signo, SIG_DFL);
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, signo);
            pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            raise(signo);
            _exit(128 + signo);
        }
        aloop_event_set(t0->stop);
        tell_other_loops_to_stop(t0);
    }
}

static void stop_task(aloop_task_t *t) {
    if (!t) return;
    aloop_cancel(t);
    aloop_await(t, NULL);
    aloop_release(t);
}

/* ------------------------------------------------------------------------ */
/* One loop                                                                 */
/* ------------------------------------------------------------------------ */

static void print_listening(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    if (ss.ss_family == AF_INET6) printf("listening on [%s]:%s\n", host, serv);
    else printf("listening on %s:%s\n", host, serv);
    fflush(stdout);
}

/* A task per connection running httpd_session; over TLS, only once the
 * connection's handshake is done. */
static aloop_server_t *serve(httpd_loop_t *hl, const aloop_serve_opts_t *so) {
#ifdef EXAMPLE_WITH_TLS
    if (hl->tls) return aloop_serve_tls(hl->loop, hl->listen_fd, hl->tls, so, httpd_session, hl);
#endif
    return aloop_serve_with(hl->loop, hl->listen_fd, so, httpd_session, hl);
}

static void *loop_main(void *arg) {
    httpd_thread_t *t = arg;
    httpd_loop_t *hl = &t->hl;
    aloop_t *loop = aloop_current();
    int watch = t == &t->all[0];
    t->stop = aloop_event_new(loop);
    if (t->stop && t->stop_requested) aloop_event_set(t->stop);
    aloop_task_t *sig = NULL;
    int ok = t->stop != NULL;
    if (ok && watch) {
        sig = aloop_spawn(loop, signal_main, t);
        ok = sig != NULL;
    }
    /* At --max-conns the server stops accepting (the backlog holds the
     * rest); a line longer than a request or field line may be is refused
     * as soon as that many bytes are in. */
    aloop_serve_opts_t so = {.max_connections = hl->opt->max_conns, .max_line = HTTP_MAX_LINE};
    if (ok) hl->server = serve(hl, &so);
    if (hl->server) {
        aloop_yield(); /* the watcher registers before anyone can signal us */
        if (watch) print_listening(hl->listen_fd);
        aloop_event_wait(t->stop);
        httpd_loop_shutdown(hl);
        aloop_server_free(hl->server);
    } else {
        fprintf(stderr, "httpd: out of memory\n");
        aloop_close(hl->listen_fd);
        if (watch) tell_other_loops_to_stop(t);
    }
    stop_task(sig);
    aloop_event_free(t->stop);
    t->stop = NULL;
    return hl->server ? NULL : aloop_fail(-ENOMEM);
}

static void *loop_thread(void *arg) {
    httpd_thread_t *t = arg;
    int rc = aloop_run_until_complete(t->hl.loop, t->main);
    return (void *)(intptr_t)rc;
}

/* N listeners on one port: the first picks it (port 0 = any), the others
 * join it with SO_REUSEPORT; one loop gets a plain listener. A task on loop
 * 0 (a host name may need its pool). */
static void *open_listeners(void *arg) {
    httpd_thread_t *all = arg;
    const httpd_options_t *opt = all[0].hl.opt;
    char bound[NI_MAXSERV];
    snprintf(bound, sizeof bound, "%s", opt->port);
    for (unsigned i = 0; i < all[0].n; i++) {
        int fd = all[0].n == 1 ? aloop_tcp_listen(opt->host, opt->port, SOMAXCONN)
                               : aloop_tcp_listen_with(opt->host, bound, SOMAXCONN,
                                                       ALOOP_LISTEN_REUSEPORT);
        if (fd < 0) {
            fprintf(stderr, "httpd: cannot listen on %s:%s: %s\n", opt->host, bound,
                    aloop_strerror(fd));
            while (i-- > 0) aloop_close(all[i].hl.listen_fd);
            return aloop_fail(fd);
        }
        all[i].hl.listen_fd = fd;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (i == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            getnameinfo((struct sockaddr *)&ss, len, NULL, 0, bound, sizeof bound, NI_NUMERICSERV);
    }
    return NULL;
}

/* A loop's server config from --tls-cert/--tls-key (NULL without them), or
 * -1 after saying why. */
static int tls_config(const httpd_options_t *opt, struct aloop_tls_config **out) {
    *out = NULL;
    if (!opt->tls_cert) return 0;
#ifdef EXAMPLE_WITH_TLS
    static const char *const alpn[] = {"http/1.1"};
    aloop_tls_config_t *c = aloop_tls_server_config_new(opt->tls_cert, opt->tls_key);
    int err = c ? -aloop_tls_config_set_alpn(c, alpn, 1) : errno;
    if (err == 0) {
        *out = c;
        return 0;
    }
    const char *e = err == EINVAL ? aloop_tls_error() : NULL; /* OpenSSL's words on bad PEM */
    fprintf(stderr, "httpd: cannot use %s and %s: %s\n", opt->tls_cert, opt->tls_key,
            e && *e ? e : strerror(err));
    aloop_tls_config_free(c);
#endif
    return -1;
}

static void tls_config_free(struct aloop_tls_config *c) {
#ifdef EXAMPLE_WITH_TLS
    aloop_tls_config_free(c);
#else
    (void)c;
#endif
}

static int run(const httpd_options_t *opt, int root_fd) {
    httpd_thread_t *all = calloc(opt->loops, sizeof *all);
    if (!all) return -ENOMEM;
    unsigned made = 0;
    int rc = 0;
    for (; made < opt->loops; made++) {
        httpd_thread_t *t = &all[made];
        t->all = all;
        t->n = opt->loops;
        t->hl.opt = opt;
        t->hl.root_fd = root_fd;
        t->hl.listen_fd = -1;
        t->hl.loop = aloop_new();
        if (!t->hl.loop) break;
        if (tls_config(opt, &t->hl.tls) < 0) {
            aloop_free(t->hl.loop);
            t->hl.loop = NULL;
            rc = -EINVAL;
            break;
        }
    }
    if (made < opt->loops) {
        if (rc == 0) {
            fprintf(stderr, "httpd: out of memory\n");
            rc = -ENOMEM;
        }
    } else {
        aloop_task_t *t = aloop_spawn(all[0].hl.loop, open_listeners, all);
        rc = t ? aloop_run_until_complete(all[0].hl.loop, t) : -ENOMEM;
        aloop_release(t);
    }
    for (unsigned i = 0; rc == 0 && i < made; i++) {
        all[i].main = aloop_spawn(all[i].hl.loop, loop_main, &all[i]);
        if (!all[i].main) rc = -ENOMEM;
    }
    if (rc < 0) {
        for (unsigned i = 0; i < made; i++) {
            if (all[i].hl.listen_fd >= 0 && !all[i].main) aloop_close(all[i].hl.listen_fd);
            aloop_release(all[i].main);
            aloop_free(all[i].hl.loop);
            tls_config_free(all[i].hl.tls);
        }
        free(all);
        return rc;
    }
    /* The other loops' threads never take SIGINT/SIGTERM: loop 0 waits. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 1;
    for (; started < opt->loops; started++)
        if (pthread_create(&all[started].thread, NULL, loop_thread, &all[started]) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < opt->loops) {
        fprintf(stderr, "httpd: cannot start a thread for loop %u\n", started);
        rc = -EAGAIN;
        all[0].n = started;
        all[0].stop_requested = 1;
        tell_other_loops_to_stop(&all[0]);
        for (unsigned i = started; i < opt->loops; i++) aloop_close(all[i].hl.listen_fd);
    }
    int rc0 = aloop_run_until_complete(all[0].hl.loop, all[0].main);
    if (rc == 0) rc = rc0;
    for (unsigned i = 1; i < started; i++) {
        void *trc = NULL;
        pthread_join(all[i].thread, &trc);
        if (rc == 0 && (intptr_t)trc < 0) rc = (int)(intptr_t)trc;
    }
    for (unsigned i = 0; i < opt->loops; i++) {
        aloop_release(all[i].main);
        aloop_free(all[i].hl.loop);
        tls_config_free(all[i].hl.tls);
    }
    free(all);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s [options]\n"
            "  --host HOST            address to listen on (default 127.0.0.1)\n"
            "  --port PORT            port (default 8080; 0 = any free port)\n"
            "  --root DIR             the files served (default: the current directory)\n"
            "  --loops N              loops, one per thread, each with its own listener\n"
            "                         (SO_REUSEPORT) (default: online CPUs)\n"
            "  --max-conns N          connections per loop at once (default 0: no limit);\n"
            "                         more wait in the listen backlog\n"
            "  --header-timeout SECS  a request's head must arrive within SECS once its\n"
            "                         first line is in (default 10; else 408)\n"
            "  --idle-timeout SECS    keep-alive connections idle this long are closed\n"
            "                         (default 15)\n"
            "  --grace SECS           at shutdown, how long responses under way may take\n"
            "                         (default 10)\n"
            "  --quiet                no access log (otherwise: stdout, Common Log Format)\n"
            "  --tls-cert FILE        serve HTTPS with this certificate chain (PEM) ...\n"
            "  --tls-key FILE         ... and its private key (PEM)\n"
            "%s"
            "Prints \"listening on HOST:PORT\" once ready. SIGINT/SIGTERM: stop accepting,\n"
            "finish the responses under way, close idle connections, exit 0.\n",
            prog,
#ifdef EXAMPLE_WITH_TLS
            ""
#else
            "  (This build has no TLS: OpenSSL 3 was not found; the --tls options exit 2.)\n"
#endif
    );
}

static int parse_count(const char *s, unsigned long lo, unsigned long hi, unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || *s == '-' || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 1e6) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},       {"port", required_argument, NULL, 'p'},
        {"root", required_argument, NULL, 'r'},       {"loops", required_argument, NULL, 'L'},
        {"max-conns", required_argument, NULL, 'c'},  {"header-timeout", required_argument, NULL, 't'},
        {"idle-timeout", required_argument, NULL, 'i'}, {"grace", required_argument, NULL, 'g'},
        {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'H'},
        {"tls-cert", required_argument, NULL, 'C'},   {"tls-key", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    httpd_options_t opt = {.host = "127.0.0.1", .port = "8080", .root = ".",
                           .header_timeout = 10, .idle_timeout = 15, .grace = 10};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        unsigned long v = 0;
        int bad = 0;
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'r': opt.root = optarg; break;
        case 'L': bad = parse_count(optarg, 1, 1024, &v); opt.loops = (unsigned)v; break;
        case 'c': bad = parse_count(optarg, 0, 1000000, &v); opt.max_conns = v; break;
        case 't': bad = parse_seconds(optarg, &opt.header_timeout); break;
        case 'i': bad = parse_seconds(optarg, &opt.idle_timeout); break;
        case 'g': bad = parse_seconds(optarg, &opt.grace); break;
        case 'q': opt.quiet = 1; break;
        case 'C': opt.tls_cert = optarg; break;
        case 'K': opt.tls_key = optarg; break;
        case 'H': usage(stdout, argv[0]); return 0;
        default: bad = 1; break;
        }
        if (bad) {
            if (ch != '?') fprintf(stderr, "%s: bad value '%s'\n", argv[0], optarg);
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc || !opt.tls_cert != !opt.tls_key) {
        if (optind == argc) fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", argv[0]);
        usage(stderr, argv[0]);
        return 2;
    }
#ifndef EXAMPLE_WITH_TLS
    if (opt.tls_cert) {
        fprintf(stderr, "httpd: built without TLS (OpenSSL 3 not found): --tls-cert and "
                        "--tls-key are not available\n");
        return 2;
    }
#endif
    if (!opt.loops) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        opt.loops = cpus > 0 ? (unsigned)cpus : 1;
    }
    int root_fd = open(opt.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        fprintf(stderr, "httpd: cannot serve %s: %s\n", opt.root, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = run(&opt, root_fd);
    close(root_fd);
    return rc < 0 ? 1 : 0; /* run has said what went wrong */
}

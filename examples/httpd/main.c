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
 * (examples/common/serve_main.c, the start-up the servers share)
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
#include "../common/serve_main.h"
#ifdef EXAMPLE_WITH_TLS
#include <aloop_tls.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* One loop (serve_main runs N of them and the shutdown)                    */
/* ------------------------------------------------------------------------ */

static httpd_loop_t *loop_state(serve_loop_t *l) {
    httpd_loop_t *all = l->cfg->arg;
    return &all[l->index];
}

static aloop_server_t *start_loop(serve_loop_t *l) {
    httpd_loop_t *hl = loop_state(l);
    hl->loop = l->loop;
    hl->listen_fd = l->fd;
    /* At --max-conns the server stops accepting (the backlog holds the
     * rest); a line longer than a request or field line may be is refused
     * as soon as that many bytes are in. Over TLS, a client gets
     * --idle-timeout for its handshake, as for its first request line: a
     * connection that says nothing holds a slot no longer either way. */
    aloop_serve_opts_t so = {.max_connections = hl->opt->max_conns, .max_line = HTTP_MAX_LINE,
                             .handshake_timeout = hl->opt->idle_timeout};
#ifdef EXAMPLE_WITH_TLS
    if (hl->tls) {
        hl->server = aloop_serve_tls(l->loop, l->fd, hl->tls, &so, httpd_session, hl);
        return hl->server;
    }
#endif
    hl->server = aloop_serve_with(l->loop, l->fd, &so, httpd_session, hl);
    return hl->server;
}

static void shutdown_loop(serve_loop_t *l, aloop_server_t *server) {
    httpd_loop_shutdown(loop_state(l));
    aloop_server_free(server);
}

/* A loop's server config from --tls-cert/--tls-key (NULL without them):
 * 0, or -EINVAL after saying why. */
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
    return -EINVAL;
}

static void tls_config_free(struct aloop_tls_config *c) {
#ifdef EXAMPLE_WITH_TLS
    aloop_tls_config_free(c);
#else
    (void)c;
#endif
}

static int run(const httpd_options_t *opt, int root_fd) {
    httpd_loop_t *all = calloc(opt->loops, sizeof *all);
    if (!all) return -ENOMEM;
    int rc = 0;
    for (unsigned i = 0; i < opt->loops && rc == 0; i++) {
        all[i].opt = opt;
        all[i].root_fd = root_fd;
        all[i].listen_fd = -1;
        rc = tls_config(opt, &all[i].tls);
    }
    serve_config_t cfg = {.name = "httpd", .host = opt->host, .port = opt->port,
                          .loops = opt->loops, .start = start_loop,
                          .shutdown = shutdown_loop, .arg = all};
    if (rc == 0) rc = serve_main(&cfg);
    for (unsigned i = 0; i < opt->loops; i++) tls_config_free(all[i].tls);
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
            "                         (default 15); over TLS, also bounds each handshake\n"
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

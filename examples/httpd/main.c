/*
 * httpd - a static HTTP/1.1 file server on libaloop, the runtime's
 * showcase: GET and HEAD of the files under ROOT, keep-alive and
 * pipelining, Last-Modified / If-Modified-Since, single byte ranges,
 * aloop_sendfile for bodies, an access log, one loop per core.
 *
 *     ./httpd --port 8080 --root /srv/www [--loops N] [--max-conns N]
 *     curl -v http://127.0.0.1:8080/index.html
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
     * as soon as that many bytes are in. */
    aloop_serve_opts_t so = {.max_connections = hl->opt->max_conns, .max_line = HTTP_MAX_LINE};
    hl->server = aloop_serve_with(l->loop, l->fd, &so, httpd_session, hl);
    return hl->server;
}

static void shutdown_loop(serve_loop_t *l, aloop_server_t *server) {
    httpd_loop_shutdown(loop_state(l));
    aloop_server_free(server);
}

static int run(const httpd_options_t *opt, int root_fd) {
    httpd_loop_t *all = calloc(opt->loops, sizeof *all);
    if (!all) return -ENOMEM;
    for (unsigned i = 0; i < opt->loops; i++) {
        all[i].opt = opt;
        all[i].root_fd = root_fd;
        all[i].listen_fd = -1;
    }
    serve_config_t cfg = {.name = "httpd", .host = opt->host, .port = opt->port,
                          .loops = opt->loops, .start = start_loop,
                          .shutdown = shutdown_loop, .arg = all};
    int rc = serve_main(&cfg);
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
            "Prints \"listening on HOST:PORT\" once ready. SIGINT/SIGTERM: stop accepting,\n"
            "finish the responses under way, close idle connections, exit 0.\n",
            prog);
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
        case 'H': usage(stdout, argv[0]); return 0;
        default: bad = 1; break;
        }
        if (bad) {
            if (ch != '?') fprintf(stderr, "%s: bad value '%s'\n", argv[0], optarg);
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }
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

/*
 * chat - a single-threaded, real-time chat server (the course's "Single-
 * threaded Real-time Chat Application"), written as plain straight-line
 * tasks on libaloop.
 *
 * Try it with two terminals (or more):
 *     ./chat --port 8888                 # prints "listening on 127.0.0.1:8888"
 *     nc 127.0.0.1 8888                  # terminal 2: pick a name, chat
 *     ./chat-client 127.0.0.1 8888       # terminal 3
 *
 * Over TLS (aloop-tls, built when OpenSSL 3 is found): the same server,
 * the connections handed to chat_session only once their handshake is done
 * (aloop_serve_tls); the session code does not change, a TLS connection is
 * an ordinary stream.
 *     ./chat --tls-cert server.pem --tls-key server.key
 *     openssl s_client -quiet -connect 127.0.0.1:8888 -CAfile ca.pem
 *
 * Shape of the program: aloop_serve runs chat_session (session.c) as a task
 * per connection: it asks for a name, then turns each line into a
 * broadcast to the room (room.c) or a command. What keeps one client from
 * hurting the others (slow readers, bursts, silent connections, terminal
 * escapes) is in hardening.c. This file: options, the server, the quote
 * bot, and the shutdown on SIGINT / SIGTERM (examples/common/serve_main.c
 * waits for them), which tells every client "* server shutting down, bye",
 * flushes their outboxes (for at most FLUSH_TIMEOUT seconds each) and exits
 * with status 0; a second signal during the shutdown ends it at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "chat.h"
#include "../common/serve_main.h"
#ifdef EXAMPLE_WITH_TLS
#include <aloop_tls.h>
#endif

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s [options]\n"
            "  --host HOST          address to listen on (default 127.0.0.1)\n"
            "  --port PORT          port (default 8888; 0 = any free port)\n"
            "  --bot-interval SECS  the bot posts a quote every SECS seconds\n"
            "                       (default 30; 0 = no bot)\n"
            "  --name-timeout SECS  disconnect clients that have not picked a\n"
            "                       name after SECS seconds (default 60; 0 = never);\n"
            "                       over TLS, also bounds each handshake\n"
            "  --queue N            per-client outbox length (default 64). A client\n"
            "                       whose outbox is full is too slow: it is\n"
            "                       disconnected and the room is told so.\n"
            "  --max-line N         longest input line in bytes (default 512);\n"
            "                       longer lines are rejected with a message\n"
            "  --verbose            log connections and why they end (stderr)\n"
            "  --tls-cert FILE      serve TLS with this certificate chain (PEM) ...\n"
            "  --tls-key FILE       ... and its private key (PEM); clients connect with\n"
            "                       e.g. openssl s_client -quiet -connect HOST:PORT\n"
            "  --help               this text\n"
            "%s"
            "Prints \"listening on HOST:PORT\" once ready. SIGINT/SIGTERM shut the\n"
            "server down cleanly. Commands for clients: /who, /quit.\n",
            prog,
#ifdef EXAMPLE_WITH_TLS
            ""
#else
            "  (This build has no TLS: OpenSSL 3 was not found; the --tls options exit 2.)\n"
#endif
    );
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 1e9) return -1;
    *out = v;
    return 0;
}

static int parse_count(const char *s, size_t lo, size_t hi, size_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || *s == '-' || v < lo || v > hi) return -1;
    *out = (size_t)v;
    return 0;
}

/* 0 = run, 1 = exit 0 (help), -1 = exit 2 (bad usage). */
static int parse_options(int argc, char **argv, chat_options_t *opt) {
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"bot-interval", required_argument, NULL, 'b'},
        {"name-timeout", required_argument, NULL, 't'},
        {"queue", required_argument, NULL, 'q'},
        {"max-line", required_argument, NULL, 'l'},
        {"verbose", no_argument, NULL, 'v'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    *opt = (chat_options_t){.host = "127.0.0.1", .port = "8888", .bot_interval = 30,
                            .name_timeout = 60, .queue_len = 64, .max_line = 512};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'h': opt->host = optarg; break;
        case 'p': opt->port = optarg; break;
        case 'b': bad = parse_seconds(optarg, &opt->bot_interval); break;
        case 't': bad = parse_seconds(optarg, &opt->name_timeout); break;
        case 'q': bad = parse_count(optarg, 1, 1u << 20, &opt->queue_len); break;
        case 'l': bad = parse_count(optarg, 16, 1u << 20, &opt->max_line); break;
        case 'v': opt->verbose = 1; break;
        case 'c': opt->tls_cert = optarg; break;
        case 'k': opt->tls_key = optarg; break;
        case 'H': usage(stdout, argv[0]); return 1;
        default: bad = -1; break;
        }
        if (bad) {
            if (ch != '?') fprintf(stderr, "%s: bad value '%s'\n", argv[0], optarg);
            usage(stderr, argv[0]);
            return -1;
        }
    }
    if (optind != argc || !opt->tls_cert != !opt->tls_key) {
        if (optind == argc) fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", argv[0]);
        usage(stderr, argv[0]);
        return -1;
    }
    return 0;
}

/* The server config from --tls-cert/--tls-key: 0 (opt->tls set, or no TLS
 * asked for), or the exit status after saying why: 1 for files it cannot
 * use, 2 (bad usage) in a build without TLS. */
static int tls_setup(chat_options_t *opt) {
    if (!opt->tls_cert) return 0;
#ifdef EXAMPLE_WITH_TLS
    opt->tls = aloop_tls_server_config_new(opt->tls_cert, opt->tls_key);
    if (opt->tls) return 0;
    int err = errno;
    const char *e = err == EINVAL ? aloop_tls_error() : NULL; /* OpenSSL's words on bad PEM */
    fprintf(stderr, "chat: cannot use %s and %s: %s\n", opt->tls_cert, opt->tls_key,
            e && *e ? e : strerror(err));
    return 1;
#else
    fprintf(stderr, "chat: built without TLS (OpenSSL 3 not found): --tls-cert and --tls-key "
                    "are not available\n");
    return 2;
#endif
}

/* ------------------------------------------------------------------------ */
/* The bot                                                                  */
/* ------------------------------------------------------------------------ */

static const char *const quotes[] = {
    "Well done is better than well said. (Benjamin Franklin)",
    "It always seems impossible until it is done. (Nelson Mandela)",
    "The best way out is always through. (Robert Frost)",
    "Simplicity is prerequisite for reliability. (Edsger W. Dijkstra)",
    "Whatever you are, be a good one. (Abraham Lincoln)",
    "What we know is a drop, what we do not know is an ocean. (Isaac Newton)",
    "Act as if what you do makes a difference. It does. (William James)",
    "Nothing will work unless you do. (Maya Angelou)",
};

static void *bot_main(void *arg) {
    chat_room_t *room = arg;
    size_t nquotes = sizeof quotes / sizeof quotes[0];
    while (aloop_sleep(room->opt->bot_interval) == 0) {
        chat_msg_t *m = msg_format(BOT_NAME ": %s\n", quotes[room->next_quote++ % nquotes]);
        room_broadcast(room, NULL, m);
        msg_release(m);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The server (serve_main: the listener, the signals, one loop)             */
/* ------------------------------------------------------------------------ */

typedef struct chat_server {
    const chat_options_t *opt;
    chat_room_t room;
    aloop_task_t *bot;
} chat_server_t;

/* A task per connection running chat_session; over TLS, only once the
 * connection's handshake is done (a failed one never reaches the room). */
static aloop_server_t *serve(aloop_t *loop, int fd, const chat_options_t *opt, chat_room_t *room) {
#ifdef EXAMPLE_WITH_TLS
    /* A connection has --name-timeout for its handshake too (0: the
     * library's 60 s): one that never speaks holds no task for longer. */
    aloop_serve_opts_t so = {.handshake_timeout = opt->name_timeout};
    if (opt->tls) return aloop_serve_tls(loop, fd, opt->tls, &so, chat_session, room);
#else
    (void)opt;
#endif
    return aloop_serve(loop, fd, chat_session, room);
}

static aloop_server_t *server_start(serve_loop_t *l) {
    chat_server_t *cs = l->cfg->arg;
    chat_room_t *room = &cs->room;
    if (room_init(room, l->loop, cs->opt) < 0) return NULL;
    room->server = serve(l->loop, l->fd, cs->opt, room);
    if (!room->server) {
        room_free(room);
        return NULL;
    }
    cs->bot = cs->opt->bot_interval > 0 ? aloop_spawn(l->loop, bot_main, room) : NULL;
    return room->server;
}

static void server_shutdown(serve_loop_t *l, aloop_server_t *server) {
    chat_server_t *cs = l->cfg->arg;
    serve_stop_task(cs->bot);
    room_shutdown(&cs->room);
    aloop_server_free(server);
    room_free(&cs->room);
}

int main(int argc, char **argv) {
    chat_options_t opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if ((rc = tls_setup(&opt)) != 0) return rc;
    chat_server_t cs = {.opt = &opt};
    serve_config_t cfg = {.name = "chat", .host = opt.host, .port = opt.port, .loops = 1,
                          .start = server_start, .shutdown = server_shutdown, .arg = &cs};
    rc = serve_main(&cfg);
#ifdef EXAMPLE_WITH_TLS
    aloop_tls_config_free(opt.tls);
#endif
    return rc < 0 ? 1 : 0; /* serve_main has said what went wrong */
}

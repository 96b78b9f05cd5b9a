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
 * Shape of the program: one room (struct chat_room) holds every connection
 * (struct chat_client). The accept task spawns one session task per
 * connection; the session is the client's reader (it asks for a name, then
 * turns each line into a broadcast or a command) and spawns the client's
 * writer task, which is the only code that ever writes to that socket. The
 * two talk through the client's own bounded queue, the "outbox".
 *
 * Slow clients: a broadcast only ever calls aloop_queue_put_nowait(), so no
 * client can block the room. When a client's outbox is full (its socket
 * buffers are full as well, so it has not read anything for a while) the
 * client is disconnected and the room is told "* NAME was disconnected (too
 * slow)". Memory per client is therefore bounded by --queue messages of at
 * most --max-line bytes each (plus one /who listing). Senders, not readers,
 * absorb bursts: a chat line waits while some client's outbox is half full
 * and its writer merely has not run yet (see client_congest_check()), so a
 * thousand clients talking at once do not get each other dropped.
 *
 * Lifetimes: a client is reference counted by its session and its writer;
 * whichever finishes last frees it and closes the socket. SIGINT / SIGTERM
 * tell every client "* server shutting down, bye", flush their outboxes (for
 * at most FLUSH_TIMEOUT seconds each) and exit with status 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define NAME_MAX_LEN 16        /* user names: 1..16 of [A-Za-z0-9_-] */
#define BOT_NAME "bot"         /* reserved: the quote bot speaks as this */
#define FLUSH_TIMEOUT 2.0      /* seconds a leaving client's outbox may take */
#define WRITE_BATCH 8192       /* the writer coalesces queued messages up to this */

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct chat_options {
    const char *host;
    const char *port;
    double bot_interval; /* seconds between quotes; 0 = no bot */
    double name_timeout; /* seconds a new connection has to pick a name; 0 = no limit */
    size_t queue_len;    /* messages a client's outbox holds before it is dropped */
    size_t max_line;     /* longest accepted input line, '\n' included */
    int verbose;         /* log connections and why they end, on stderr */
} chat_options_t;

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s [options]\n"
            "  --host HOST          address to listen on (default 127.0.0.1)\n"
            "  --port PORT          port (default 8888; 0 = any free port)\n"
            "  --bot-interval SECS  the bot posts a quote every SECS seconds\n"
            "                       (default 30; 0 = no bot)\n"
            "  --name-timeout SECS  disconnect clients that have not picked a\n"
            "                       name after SECS seconds (default 60; 0 = never)\n"
            "  --queue N            per-client outbox length (default 64). A client\n"
            "                       whose outbox is full is too slow: it is\n"
            "                       disconnected and the room is told so.\n"
            "  --max-line N         longest input line in bytes (default 512);\n"
            "                       longer lines are rejected with a message\n"
            "  --verbose            log connections and why they end (stderr)\n"
            "  --help               this text\n"
            "Prints \"listening on HOST:PORT\" once ready. SIGINT/SIGTERM shut the\n"
            "server down cleanly. Commands for clients: /who, /quit.\n",
            prog);
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
        case 'H': usage(stdout, argv[0]); return 1;
        default: bad = -1; break;
        }
        if (bad) {
            if (ch != '?') fprintf(stderr, "%s: bad value '%s'\n", argv[0], optarg);
            usage(stderr, argv[0]);
            return -1;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages: immutable, reference counted, shared by every outbox they are  */
/* queued in, so a broadcast to N clients formats and allocates once.       */
/* ------------------------------------------------------------------------ */

typedef struct chat_msg {
    unsigned refs;
    size_t len;  /* bytes in text, the final '\n' included */
    char text[]; /* NUL-terminated for convenience */
} chat_msg_t;

static chat_msg_t *msg_vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    chat_msg_t *m = malloc(sizeof *m + (size_t)n + 1);
    if (!m) return NULL;
    vsnprintf(m->text, (size_t)n + 1, fmt, ap);
    m->refs = 1;
    m->len = (size_t)n;
    return m;
}

/* printf-style; the caller includes the '\n'. NULL when out of memory. */
static chat_msg_t *msg_format(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static chat_msg_t *msg_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    chat_msg_t *m = msg_vformat(fmt, ap);
    va_end(ap);
    return m;
}

static chat_msg_t *msg_retain(chat_msg_t *m) {
    m->refs++;
    return m;
}

static void msg_release(chat_msg_t *m) {
    if (m && --m->refs == 0) free(m);
}

/* ------------------------------------------------------------------------ */
/* Room and clients                                                         */
/* ------------------------------------------------------------------------ */

/* Why a session ends; only the first reason counts. */
enum chat_end {
    END_NONE = 0,
    END_LEFT,        /* EOF, /quit or a read error: "* NAME left" */
    END_SLOW,        /* outbox overflowed: "* NAME was disconnected (too slow)" */
    END_WRITE_ERROR, /* the socket broke under the writer: "* NAME left" */
    END_TIMEOUT,     /* no name in time */
    END_SHUTDOWN,    /* the server is stopping */
};

typedef struct chat_room chat_room_t;

typedef struct chat_client {
    chat_room_t *room;
    struct chat_client *prev, *next; /* room->clients */
    unsigned refs;                   /* session + writer */
    aloop_stream_t *stream;
    aloop_queue_t *outbox;           /* chat_msg_t *, at most opt->queue_len */
    aloop_task_t *session;           /* the reader; NULL until spawned */
    aloop_task_t *writer;
    aloop_handle_t *name_timer;      /* pending --name-timeout, or NULL */
    enum chat_end end;
    int session_started;
    int write_error;                 /* what broke the writer, for --verbose */
    int writing;                     /* the writer is inside a socket write (maybe stuck) */
    int writer_started;              /* a task cancelled before its first step never runs */
    int writer_done;
    int congested;                   /* counted in room->congested */
    int joined;                      /* named and visible in the room */
    char name[NAME_MAX_LEN + 1];
    char *line;                      /* input buffer, max_line + 1 bytes */
} chat_client_t;

struct chat_room {
    aloop_t *loop;
    const chat_options_t *opt;
    int listen_fd;
    chat_client_t *clients;     /* every open connection, named or not */
    size_t nconnected;
    size_t njoined;
    int stopping;
    aloop_event_t *stop;        /* set by a signal watcher */
    aloop_event_t *all_gone;    /* set when the last client is freed while stopping */
    size_t congested;           /* clients whose outbox waits for a writer that is not stuck */
    aloop_event_t *flowing;     /* set while congested == 0 */
    unsigned next_quote;
};

static void client_unref(chat_client_t *c);

/* Flow control. A broadcast never waits, so a burst (hundreds of clients
 * talking in the same loop step, all their sessions ahead of the writers on
 * the ready ring) could fill the outbox of a client that reads perfectly
 * well and whose writer simply has not run yet. So a client whose outbox is
 * half full while its writer is NOT inside a socket write counts as
 * congested, and chat lines wait (room->flowing) until no client is; its
 * writer runs soon and empties the outbox. A client whose writer is stuck
 * in a write does not hold the room up: its outbox fills and it is
 * disconnected. */
static void client_congest_check(chat_client_t *c) {
    chat_room_t *room = c->room;
    if (c->congested || c->writing || c->writer_done || c->end != END_NONE) return;
    if (aloop_queue_size(c->outbox) * 2 < room->opt->queue_len) return;
    c->congested = 1;
    if (room->congested++ == 0) aloop_event_clear(room->flowing);
}

static void client_uncongest(chat_client_t *c) {
    if (!c->congested) return;
    c->congested = 0;
    if (--c->room->congested == 0) aloop_event_set(c->room->flowing);
}

/* Called before a session handles a line (which may cause a reply or a
 * broadcast) and before a leave notice: 0, or < 0 if cancelled meanwhile. */
static int room_wait_flowing(chat_room_t *room) {
    while (room->congested > 0) {
        int rc = aloop_event_wait(room->flowing);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Hands c one reference to m. A full outbox means c is not keeping up: it
 * is disconnected rather than allowed to stall the sender or grow. */
static void client_send(chat_client_t *c, chat_msg_t *m);

/* Ends c's session from anywhere: the reader's current (or next) suspending
 * call returns -ECANCELED and it runs its normal teardown. A session that
 * has not started yet sees c->end when it does. */
static void client_end(chat_client_t *c, enum chat_end why) {
    if (c->end != END_NONE) return;
    c->end = why;
    client_uncongest(c);
    /* From the session itself this leaves a pending cancel: its next
     * suspending call returns at once instead of waiting for input. */
    if (c->session_started) aloop_cancel(c->session);
}

static void client_send(chat_client_t *c, chat_msg_t *m) {
    if (!m) return; /* out of memory while formatting: the message is lost, nothing else */
    int rc = aloop_queue_put_nowait(c->outbox, msg_retain(m));
    if (rc < 0) {
        msg_release(m);
        if (rc == -EAGAIN) client_end(c, END_SLOW);
        return;
    }
    client_congest_check(c);
}

/* One message to one client. */
static void client_say(chat_client_t *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void client_say(chat_client_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    chat_msg_t *m = msg_vformat(fmt, ap);
    va_end(ap);
    client_send(c, m);
    msg_release(m);
}

/* m to every named client except `except` (may be NULL). Never suspends.
 * client_send may end a client, which only sets flags and cancels its
 * session, so the list stays intact while we walk it. */
static void room_broadcast(chat_room_t *room, chat_client_t *except, chat_msg_t *m) {
    if (!m) return;
    for (chat_client_t *c = room->clients; c; c = c->next)
        if (c->joined && c != except) client_send(c, m);
}

static chat_client_t *room_find(chat_room_t *room, const char *name) {
    for (chat_client_t *c = room->clients; c; c = c->next)
        if (c->joined && strcasecmp(c->name, name) == 0) return c;
    return NULL;
}

static void room_link(chat_room_t *room, chat_client_t *c) {
    c->prev = NULL;
    c->next = room->clients;
    if (room->clients) room->clients->prev = c;
    room->clients = c;
    room->nconnected++;
}

static void room_unlink(chat_room_t *room, chat_client_t *c) {
    if (c->prev) c->prev->next = c->next;
    else room->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (--room->nconnected == 0 && room->stopping) aloop_event_set(room->all_gone);
}

/* "* online (N): a, b, c\n" */
static chat_msg_t *room_who(chat_room_t *room) {
    size_t cap = 32 + room->njoined * (NAME_MAX_LEN + 2);
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t len = (size_t)snprintf(buf, cap, "* online (%zu):", room->njoined);
    const char *sep = " ";
    for (chat_client_t *c = room->clients; c; c = c->next) {
        if (!c->joined) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, c->name);
        sep = ", ";
    }
    chat_msg_t *m = msg_format("%s\n", buf);
    free(buf);
    return m;
}

/* ------------------------------------------------------------------------ */
/* Client lifetime                                                          */
/* ------------------------------------------------------------------------ */

static chat_client_t *client_new(chat_room_t *room, int fd) {
    chat_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->room = room;
    c->refs = 1; /* the session's */
    c->line = malloc(room->opt->max_line + 1);
    c->outbox = aloop_queue_new(room->loop, room->opt->queue_len);
    c->stream = c->line && c->outbox ? aloop_stream_new(room->loop, fd, room->opt->max_line) : NULL;
    if (!c->stream) {
        aloop_queue_free(c->outbox);
        free(c->line);
        free(c);
        return NULL;
    }
    room_link(room, c);
    return c;
}

/* Last reference: close the socket, drop what is still queued, unlink. */
static void client_drop_outbox(chat_client_t *c) {
    void *item;
    while (aloop_queue_get_nowait(c->outbox, &item) == 0) msg_release(item);
}

static void client_free(chat_client_t *c) {
    client_drop_outbox(c);
    aloop_queue_free(c->outbox);
    aloop_stream_close(c->stream);
    room_unlink(c->room, c);
    free(c->line);
    free(c);
}

static void client_unref(chat_client_t *c) {
    if (--c->refs == 0) client_free(c);
}

/* ------------------------------------------------------------------------ */
/* The writer task: outbox -> socket                                        */
/* ------------------------------------------------------------------------ */

/* The only place that writes to a client's socket. */
static int client_write(chat_client_t *c, const char *data, size_t len) {
    c->writing = 1;
    ssize_t n = aloop_stream_write(c->stream, data, len);
    c->writing = 0;
    return n < 0 ? (int)n : 0;
}

static int flush_batch(chat_client_t *c, char *batch, size_t *used) {
    int rc = *used ? client_write(c, batch, *used) : 0;
    *used = 0;
    return rc;
}

/* Appends m to batch, writing first if it would not fit. */
static int batch_add(chat_client_t *c, char *batch, size_t *used, const chat_msg_t *m) {
    if (*used + m->len > WRITE_BATCH) {
        int rc = flush_batch(c, batch, used);
        if (rc < 0) return rc;
    }
    if (m->len > WRITE_BATCH) return client_write(c, m->text, m->len); /* a long /who */
    memcpy(batch + *used, m->text, m->len);
    *used += m->len;
    return 0;
}

/* Waits for one message, then takes whatever else is already queued, so a
 * burst of broadcasts costs one write per client instead of one per line. */
static void *writer_main(void *arg) {
    chat_client_t *c = arg;
    char batch[WRITE_BATCH];
    c->writer_started = 1;
    for (;;) {
        void *item;
        int rc = aloop_queue_get(c->outbox, &item); /* -EPIPE: shut down and drained */
        if (rc < 0) break;
        size_t used = 0;
        do {
            rc = batch_add(c, batch, &used, item);
            msg_release(item);
        } while (rc == 0 && aloop_queue_get_nowait(c->outbox, &item) == 0);
        client_uncongest(c); /* the outbox is empty, or we are writing */
        if (rc == 0) rc = flush_batch(c, batch, &used);
        if (rc < 0) {
            if (rc != -ECANCELED) {
                c->write_error = rc;
                client_end(c, END_WRITE_ERROR);
            }
            break;
        }
    }
    c->writer_done = 1;
    client_uncongest(c);
    client_unref(c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The session task (the client's reader)                                   */
/* ------------------------------------------------------------------------ */

/* Makes control characters harmless in place ('?'): C0 and DEL, and C1 both
 * as raw bytes (0x80-0x9f: 8-bit terminals take 0x9b for CSI) and UTF-8
 * encoded (U+0080-U+009F: "\xc2\x9b" is CSI to a UTF-8 terminal). Other
 * valid UTF-8 passes, even where its continuation bytes fall in 0x80-0x9f
 * ("\xe2\x82\xac" is the euro sign); overlong forms do not count as valid. */
static void defang_controls(char *line, ssize_t n) {
    unsigned char *s = (unsigned char *)line;
    for (ssize_t i = 0; i < n;) {
        unsigned b = s[i];
        ssize_t len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3
                    : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (ssize_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xc0) == 0x80;
        if (ok && ((b == 0xe0 && s[i + 1] < 0xa0) || (b == 0xf0 && s[i + 1] < 0x90))) ok = 0;
        if (!ok) { /* not UTF-8: a byte of its own */
            if (b >= 0x80 && b < 0xa0) s[i] = '?';
            i++;
        } else {
            if (len == 1 ? b < 0x20 || b == 0x7f : b == 0xc2 && s[i + 1] < 0xa0)
                memset(s + i, '?', (size_t)len);
            i += len;
        }
    }
}

/* One input line into c->line without its "\n" / "\r\n", control bytes
 * made harmless. Returns its length, -EMSGSIZE for an over-long line (the
 * stream skipped it and stays usable), or < 0 at EOF / on error. */
static ssize_t client_read_line(chat_client_t *c) {
    ssize_t n = aloop_stream_readline(c->stream, c->line, c->room->opt->max_line + 1);
    if (n == 0) return -EPIPE; /* EOF */
    if (n < 0) return n;
    while (n > 0 && (c->line[n - 1] == '\n' || c->line[n - 1] == '\r')) n--;
    c->line[n] = '\0';
    defang_controls(c->line, n); /* no terminal escapes into other people's screens */
    return n;
}

static void name_timeout_cb(void *arg) {
    chat_client_t *c = arg;
    c->name_timer = NULL; /* the loop frees the handle after this returns */
    client_say(c, "* no name given in time, bye\n");
    client_end(c, END_TIMEOUT);
}

static int name_is_valid(const char *s, size_t len) {
    if (len < 1 || len > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
        if (!ok) return 0;
    }
    return strcasecmp(s, BOT_NAME) != 0;
}

/* Asks until the client picks a valid, unused name: 0, or < 0 when the
 * session ends first (EOF, timeout, shutdown). */
static int client_login(chat_client_t *c) {
    chat_room_t *room = c->room;
    client_say(c, "Welcome to aloop chat! Pick a name (1-%d letters, digits, '_' or '-'):\n",
               NAME_MAX_LEN);
    if (room->opt->name_timeout > 0) {
        c->name_timer = aloop_call_later(room->loop, room->opt->name_timeout, name_timeout_cb, c);
        if (!c->name_timer) return -ENOMEM;
    }
    for (;;) {
        ssize_t n = client_read_line(c);
        if (c->end != END_NONE) return -ECANCELED;
        /* Every line may cause a reply or a broadcast: pace them. Waiting
         * here, not between the name check and room_join(), keeps names
         * unique: the check and the join happen in one step. */
        if (room_wait_flowing(room) < 0 || c->end != END_NONE) return -ECANCELED;
        if (n == -EMSGSIZE) {
            client_say(c, "* line too long (max %zu bytes), ignored\n", room->opt->max_line);
            continue;
        }
        if (n < 0) return (int)n;
        if (!name_is_valid(c->line, (size_t)n)) {
            client_say(c, "* invalid name, use 1-%d letters, digits, '_' or '-':\n", NAME_MAX_LEN);
        } else if (room_find(room, c->line)) {
            client_say(c, "* name '%s' is taken, pick another:\n", c->line);
        } else {
            memcpy(c->name, c->line, (size_t)n + 1);
            return 0;
        }
    }
}

/* Same step as the name check (no suspension in between), so names stay unique. */
static void room_join(chat_client_t *c) {
    chat_room_t *room = c->room;
    if (c->name_timer) {
        aloop_handle_cancel(c->name_timer);
        c->name_timer = NULL;
    }
    c->joined = 1;
    room->njoined++;
    client_say(c, "* welcome %s (%zu online; /who lists them, /quit leaves)\n", c->name,
               room->njoined);
    chat_msg_t *m = msg_format("* %s joined\n", c->name);
    room_broadcast(room, c, m);
    msg_release(m);
}

static void room_leave(chat_client_t *c) {
    chat_room_t *room = c->room;
    c->joined = 0;
    room->njoined--;
    if (room->stopping) return; /* everyone is being told the server stops */
    chat_msg_t *m = c->end == END_SLOW ? msg_format("* %s was disconnected (too slow)\n", c->name)
                                       : msg_format("* %s left\n", c->name);
    room_broadcast(room, c, m);
    msg_release(m);
}

/* A line starting with '/': 1 if the client asked to leave. */
static int client_command(chat_client_t *c) {
    if (strcmp(c->line, "/quit") == 0) {
        client_say(c, "* bye %s\n", c->name);
        return 1;
    }
    if (strcmp(c->line, "/who") == 0) {
        chat_msg_t *m = room_who(c->room);
        client_send(c, m);
        msg_release(m);
    } else {
        client_say(c, "* unknown command %.32s (try /who or /quit)\n", c->line);
    }
    return 0;
}

/* Reads lines until the client leaves or the session is ended. */
static void client_chat(chat_client_t *c) {
    chat_room_t *room = c->room;
    for (;;) {
        ssize_t n = client_read_line(c);
        if (c->end != END_NONE) return;
        /* Every line may cause a reply or a broadcast: pace them, so that a
         * paste of many lines is answered, not mistaken for a slow reader. */
        if (room_wait_flowing(room) < 0 || c->end != END_NONE) return;
        if (n == -EMSGSIZE) {
            client_say(c, "* line too long (max %zu bytes), ignored\n", room->opt->max_line);
            continue;
        }
        if (n < 0) return;
        if (n == 0) continue;
        if (c->line[0] == '/') {
            if (client_command(c)) return;
            continue;
        }
        chat_msg_t *m = msg_format("%s: %s\n", c->name, c->line);
        room_broadcast(room, c, m);
        msg_release(m);
    }
}

static void log_end(const chat_client_t *c) {
    static const char *const why[] = {
        [END_NONE] = "?", [END_LEFT] = "left", [END_SLOW] = "too slow",
        [END_WRITE_ERROR] = "write failed", [END_TIMEOUT] = "no name in time",
        [END_SHUTDOWN] = "shutdown",
    };
    fprintf(stderr, "chat: %s: %s%s%s\n", c->name[0] ? c->name : "(no name)", why[c->end],
            c->write_error ? ": " : "", c->write_error ? aloop_strerror(c->write_error) : "");
}

/* Ends the writer, after it has written what is queued if `flush` (for
 * at most FLUSH_TIMEOUT seconds), and waits until it has finished. */
static void client_stop_writer(chat_client_t *c, int flush) {
    aloop_future_t *writer = c->writer;
    if (flush) {
        aloop_queue_shutdown(c->outbox, 0); /* the writer drains, then stops */
        if (aloop_wait(&writer, 1, ALOOP_ALL_COMPLETED, FLUSH_TIMEOUT, NULL) == 0) return;
    }
    /* Drop what is queued and make its next get fail at once. Cancel it
     * only if it has started (it may be stuck in a write that never
     * completes): cancelled before its first step it would never run, and
     * never drop its reference to c. */
    client_drop_outbox(c);
    aloop_queue_shutdown(c->outbox, 1);
    if (c->writer_started) aloop_cancel(writer);
    aloop_await(writer, NULL);
}

/* Leave the room, let the writer finish, drop the session's reference. */
static void client_teardown(chat_client_t *c) {
    if (c->end == END_NONE) c->end = END_LEFT;
    if (c->room->opt->verbose) log_end(c);
    /* A cancel from client_end() that was not delivered yet must not cut
     * the flush below short. */
    while (aloop_task_uncancel(c->session) > 0) {
    }
    if (c->name_timer) {
        aloop_handle_cancel(c->name_timer);
        c->name_timer = NULL;
    }
    client_uncongest(c);
    if (c->joined) {
        room_wait_flowing(c->room); /* if cancelled (loop teardown), announce anyway */
        room_leave(c);
    }
    if (c->writer) {
        client_stop_writer(c, c->end != END_SLOW && c->end != END_WRITE_ERROR);
        aloop_release(c->writer);
        c->writer = NULL;
    }
    aloop_task_t *self = c->session;
    client_unref(c);
    aloop_release(self); /* detaches this task: it is freed when it returns */
}

static void *session_main(void *arg) {
    chat_client_t *c = arg;
    c->session_started = 1;
    c->writer = aloop_spawn(c->room->loop, writer_main, c);
    if (c->writer) {
        c->refs++;
        if (c->end == END_NONE && client_login(c) == 0 && c->end == END_NONE) {
            room_join(c);
            client_chat(c);
        }
    }
    client_teardown(c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Server tasks: accept, bot, signals                                       */
/* ------------------------------------------------------------------------ */

static void client_open(chat_room_t *room, int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* chat is interactive */
    chat_client_t *c = client_new(room, fd);
    if (!c) {
        aloop_close(fd);
        return;
    }
    c->session = aloop_spawn(room->loop, session_main, c);
    if (!c->session) client_free(c);
}

static int accept_error_is_fatal(int err) {
    return err == -EBADF || err == -EINVAL || err == -ENOTSOCK || err == -EOPNOTSUPP;
}

static void *accept_main(void *arg) {
    chat_room_t *room = arg;
    int starved = 0; /* in a streak of EMFILE-like errors (logged once) */
    for (;;) {
        int fd = aloop_accept(room->listen_fd, NULL, NULL);
        if (fd == -ECANCELED || accept_error_is_fatal(fd)) break;
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            /* Out of fds or memory: back off instead of spinning; pending
             * connections wait in the backlog until a client leaves. */
            if (!starved++) fprintf(stderr, "chat: accept: %s, pausing\n", aloop_strerror(fd));
            if (aloop_sleep(0.1) < 0) break;
            continue;
        }
        starved = 0;
        if (fd < 0) continue; /* ECONNABORTED and friends: that peer is gone */
        client_open(room, fd);
    }
    return NULL;
}

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

typedef struct signal_watch {
    chat_room_t *room;
    int signo;
} signal_watch_t;

static void *signal_main(void *arg) {
    signal_watch_t *w = arg;
    int rc = aloop_signal_wait(w->signo);
    if (rc == 0) aloop_event_set(w->room->stop);
    else if (rc != -ECANCELED)
        fprintf(stderr, "chat: cannot wait for signal %d: %s\n", w->signo, aloop_strerror(rc));
    return NULL;
}

/* Cancels t (if any), waits for it and drops the reference. */
static void stop_task(aloop_task_t *t) {
    if (!t) return;
    aloop_cancel(t);
    aloop_await(t, NULL);
    aloop_release(t);
}

/* Tells everyone, ends every session (each flushes its outbox) and waits
 * until the last client is gone. */
static void room_shutdown(chat_room_t *room) {
    room->stopping = 1;
    chat_msg_t *m = msg_format("* server shutting down, bye\n");
    for (chat_client_t *c = room->clients; c; c = c->next) {
        client_send(c, m);
        client_end(c, END_SHUTDOWN);
    }
    msg_release(m);
    if (room->nconnected > 0) aloop_event_wait(room->all_gone);
}

/* "listening on 127.0.0.1:8888" (IPv6 as [::1]:8888), from the bound socket. */
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

static void *server_main(void *arg) {
    const chat_options_t *opt = arg;
    chat_room_t room = {.loop = aloop_current(), .opt = opt};
    room.listen_fd = aloop_tcp_listen(opt->host, opt->port, SOMAXCONN);
    if (room.listen_fd < 0) {
        fprintf(stderr, "chat: cannot listen on %s:%s: %s\n", opt->host, opt->port,
                aloop_strerror(room.listen_fd));
        return aloop_fail(room.listen_fd);
    }
    room.stop = aloop_event_new(room.loop);
    room.all_gone = aloop_event_new(room.loop);
    room.flowing = aloop_event_new(room.loop);
    if (room.flowing) aloop_event_set(room.flowing);
    signal_watch_t watch_int = {&room, SIGINT}, watch_term = {&room, SIGTERM};
    aloop_task_t *sig_int = aloop_spawn(room.loop, signal_main, &watch_int);
    aloop_task_t *sig_term = aloop_spawn(room.loop, signal_main, &watch_term);
    if (!room.stop || !room.all_gone || !room.flowing || !sig_int || !sig_term) {
        fprintf(stderr, "chat: out of memory\n");
        stop_task(sig_int);
        stop_task(sig_term);
        aloop_event_free(room.stop);
        aloop_event_free(room.all_gone);
        aloop_event_free(room.flowing);
        aloop_close(room.listen_fd);
        return aloop_fail(-ENOMEM);
    }
    /* Let the watchers register before we announce ourselves: a test may
     * send SIGTERM as soon as it reads the "listening on" line. */
    aloop_yield();
    print_listening(room.listen_fd);

    aloop_task_t *acceptor = aloop_spawn(room.loop, accept_main, &room);
    aloop_task_t *bot = opt->bot_interval > 0 ? aloop_spawn(room.loop, bot_main, &room) : NULL;
    if (acceptor) aloop_event_wait(room.stop);
    else fprintf(stderr, "chat: out of memory\n");

    stop_task(acceptor);
    stop_task(bot);
    stop_task(sig_int);
    stop_task(sig_term);
    room_shutdown(&room);
    aloop_close(room.listen_fd);
    aloop_event_free(room.stop);
    aloop_event_free(room.all_gone);
    aloop_event_free(room.flowing);
    return acceptor ? NULL : aloop_fail(-ENOMEM);
}

int main(int argc, char **argv) {
    chat_options_t opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != 0) return rc > 0 ? 0 : 2;
    rc = aloop_main(server_main, &opt, NULL);
    return rc < 0 ? 1 : 0; /* server_main has said what went wrong */
}

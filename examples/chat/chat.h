/*
 * chat.h - what the parts of the chat server share.
 *
 * The server in four files, from the lecture outwards:
 *   main.c      options, the server (aloop_serve), the bot, signals, shutdown
 *   session.c   one connection: pick a name, join, chat, leave (the lecture)
 *   room.c      messages, the room's client list, broadcasts, /who
 *   hardening.c what keeps one client from hurting the others: a bounded
 *               outbox and writer task per client (slow ones are dropped),
 *               pacing of bursts, the name timeout, harmless input
 */
#ifndef CHAT_H
#define CHAT_H

#include <aloop.h>

#include <stdarg.h>
#include <stddef.h>

#define NAME_MAX_LEN 16   /* user names: 1..16 of [A-Za-z0-9_-] */
#define BOT_NAME "bot"    /* reserved: the quote bot speaks as this */
#define FLUSH_TIMEOUT 2.0 /* seconds a leaving client's outbox may take */
#define WRITE_BATCH 8192  /* the writer coalesces queued messages up to this */

#if defined(__GNUC__)
#define CHAT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CHAT_PRINTF(f, a)
#endif

typedef struct chat_options {
    const char *host;
    const char *port;
    double bot_interval; /* seconds between quotes; 0 = no bot */
    double name_timeout; /* seconds a new connection has to pick a name; 0 = no limit */
    size_t queue_len;    /* messages a client's outbox holds before it is dropped */
    size_t max_line;     /* longest accepted input line, '\n' included */
    int verbose;         /* log connections and why they end, on stderr */
    const char *tls_cert, *tls_key; /* PEM files: serve TLS (main.c) */
    struct aloop_tls_config *tls;   /* their server config, or NULL: plain TCP */
} chat_options_t;

/* ---- messages (room.c): immutable, reference counted, shared by every
 * outbox they are queued in, so a broadcast formats and allocates once. */
typedef struct chat_msg {
    unsigned refs;
    size_t len;  /* bytes in text, the final '\n' included */
    char text[]; /* NUL-terminated for convenience */
} chat_msg_t;

chat_msg_t *msg_vformat(const char *fmt, va_list ap);
chat_msg_t *msg_format(const char *fmt, ...) CHAT_PRINTF(1, 2); /* NULL when out of memory */
chat_msg_t *msg_retain(chat_msg_t *m);
void msg_release(chat_msg_t *m);

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

/* One connection, reference counted by its session (the handler task) and
 * its writer task; the last one frees it. Its stream belongs to the server,
 * which closes it when the session returns (after the writer has ended). */
typedef struct chat_client {
    chat_room_t *room;
    unsigned refs;
    struct chat_client *prev, *next; /* room->clients */
    aloop_stream_t *stream;
    aloop_task_t *session;           /* the handler task: the client's reader */
    aloop_queue_t *outbox;           /* chat_msg_t *, at most opt->queue_len */
    aloop_task_t *writer;
    aloop_handle_t *name_timer;      /* pending --name-timeout, or NULL */
    enum chat_end end;
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
    aloop_server_t *server;
    chat_client_t *clients; /* every open connection, named or not */
    size_t nconnected;
    size_t njoined;
    int stopping;
    size_t congested;       /* clients whose outbox waits for a writer that is not stuck */
    aloop_event_t *flowing; /* set while congested == 0 */
    aloop_event_t *emptied; /* set once the last client of a stopping room is gone */
    chat_msg_t *who;        /* queued for "/who": the writer lists the room when it gets there */
    unsigned next_quote;
};

/* ---- room.c */
int room_init(chat_room_t *room, aloop_t *loop, const chat_options_t *opt); /* 0 / -ENOMEM */
void room_free(chat_room_t *room);
void room_link(chat_room_t *room, chat_client_t *c);
void room_unlink(chat_room_t *room, chat_client_t *c);
chat_client_t *room_find(chat_room_t *room, const char *name);
void room_broadcast(chat_room_t *room, chat_client_t *except, chat_msg_t *m); /* never suspends */
chat_msg_t *room_who(chat_room_t *room);
void client_say(chat_client_t *c, const char *fmt, ...) CHAT_PRINTF(2, 3);

/* ---- session.c */
void client_unref(chat_client_t *c);
/* The aloop_serve handler: the whole life of one connection. */
void chat_session(aloop_stream_t *conn, void *room);
/* Tells everyone, ends every session and waits until all are gone. */
void room_shutdown(chat_room_t *room);

/* ---- hardening.c */
int client_outbox_open(chat_client_t *c);  /* outbox + writer task: 0 / -ENOMEM */
void client_outbox_close(chat_client_t *c, int flush); /* ends the writer, waits for it */
void client_drop_outbox(chat_client_t *c);
void client_send(chat_client_t *c, chat_msg_t *m); /* queues; drops c when it is too slow */
void client_end(chat_client_t *c, enum chat_end why);
void client_uncongest(chat_client_t *c);
int room_wait_flowing(chat_room_t *room); /* 0, or < 0 if cancelled */
int client_name_timer_start(chat_client_t *c);
void client_name_timer_stop(chat_client_t *c);
/* One input line into c->line, without "\n"/"\r\n", control bytes made
 * harmless: its length, -EMSGSIZE (skipped), or < 0 at EOF / on error. */
ssize_t client_read_line(chat_client_t *c);

#endif

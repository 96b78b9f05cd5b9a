/*
 * session.c - one connection's life, the part the lecture draws on the
 * board: ask for a name, join the room, turn each line into a broadcast or
 * a command, leave. chat_session is the aloop_serve handler: it runs as
 * the connection's own task, and the server closes the connection when it
 * returns.
 */
#include "chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Client lifetime                                                          */
/* ------------------------------------------------------------------------ */

static chat_client_t *client_new(chat_room_t *room, aloop_stream_t *conn) {
    chat_client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->line = malloc(room->opt->max_line + 1);
    if (!c->line) {
        free(c);
        return NULL;
    }
    c->room = room;
    c->refs = 1; /* the session's */
    c->stream = conn;
    c->session = aloop_current_task();
    room_link(room, c);
    return c;
}

void client_unref(chat_client_t *c) {
    if (--c->refs > 0) return;
    if (c->outbox) {
        client_drop_outbox(c);
        aloop_queue_free(c->outbox);
    }
    free(c->line);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Name, join, chat, leave                                                  */
/* ------------------------------------------------------------------------ */

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

/* Reads the next line and waits until the room may take what it causes:
 * its length, -EMSGSIZE (told to the client), or < 0 when the session ends. */
static ssize_t next_line(chat_client_t *c) {
    ssize_t n = client_read_line(c);
    if (c->end != END_NONE) return -ECANCELED;
    /* Every line may cause a reply or a broadcast: pace them, so that a
     * paste of many lines is answered, not mistaken for a slow reader. */
    if (room_wait_flowing(c->room) < 0 || c->end != END_NONE) return -ECANCELED;
    if (n == -EMSGSIZE)
        client_say(c, "* line too long (max %zu bytes), ignored\n", c->room->opt->max_line);
    return n;
}

/* Asks until the client picks a valid, unused name: 0, or < 0 when the
 * session ends first (EOF, timeout, shutdown). */
static int client_login(chat_client_t *c) {
    client_say(c, "Welcome to aloop chat! Pick a name (1-%d letters, digits, '_' or '-'):\n",
               NAME_MAX_LEN);
    if (client_name_timer_start(c) < 0) return -ENOMEM;
    for (;;) {
        ssize_t n = next_line(c);
        if (n == -EMSGSIZE) continue;
        if (n < 0) return (int)n;
        /* The check and the join happen in one step: names stay unique. */
        if (!name_is_valid(c->line, (size_t)n)) {
            client_say(c, "* invalid name, use 1-%d letters, digits, '_' or '-':\n", NAME_MAX_LEN);
        } else if (room_find(c->room, c->line)) {
            client_say(c, "* name '%s' is taken, pick another:\n", c->line);
        } else {
            memcpy(c->name, c->line, (size_t)n + 1);
            return 0;
        }
    }
}

static void room_join(chat_client_t *c) {
    chat_room_t *room = c->room;
    client_name_timer_stop(c);
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
        client_send(c, c->room->who);
    } else {
        client_say(c, "* unknown command %.32s (try /who or /quit)\n", c->line);
    }
    return 0;
}

/* Reads lines until the client leaves or the session is ended. */
static void client_chat(chat_client_t *c) {
    for (;;) {
        ssize_t n = next_line(c);
        if (n == -EMSGSIZE || n == 0) continue;
        if (n < 0) return;
        if (c->line[0] == '/') {
            if (client_command(c)) return;
            continue;
        }
        chat_msg_t *m = msg_format("%s: %s\n", c->name, c->line);
        room_broadcast(c->room, c, m);
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

/* Leave the room, let the writer finish (flushing unless the client is
 * being dropped), unlink, drop the session's reference. */
static void client_teardown(chat_client_t *c) {
    if (c->end == END_NONE) c->end = END_LEFT;
    if (c->room->opt->verbose) log_end(c);
    /* A cancel from client_end() that was not delivered yet must not cut
     * the flush below short. */
    while (aloop_task_uncancel(c->session) > 0) {
    }
    client_name_timer_stop(c);
    client_uncongest(c);
    if (c->joined) {
        room_wait_flowing(c->room); /* if cancelled (loop teardown), announce anyway */
        room_leave(c);
    }
    client_outbox_close(c, c->end != END_SLOW && c->end != END_WRITE_ERROR);
    room_unlink(c->room, c);
    client_unref(c);
}

void chat_session(aloop_stream_t *conn, void *arg) {
    chat_room_t *room = arg;
    if (room->stopping) return; /* too late: room_shutdown has told everyone */
    chat_client_t *c = client_new(room, conn);
    if (!c) return; /* out of memory: the server closes the connection */
    if (client_outbox_open(c) == 0 && client_login(c) == 0 && c->end == END_NONE) {
        room_join(c);
        client_chat(c);
    }
    client_teardown(c);
}

void room_shutdown(chat_room_t *room) {
    room->stopping = 1;
    if (room->server) aloop_server_close(room->server); /* no newcomers */
    chat_msg_t *m = msg_format("* server shutting down, bye\n");
    for (chat_client_t *c = room->clients; c; c = c->next) {
        if (c->outbox) client_send(c, m);
        client_end(c, END_SHUTDOWN);
    }
    msg_release(m);
    if (!room->server) return;
    /* Each client flushes, then leaves. A connection that is no client
     * (yet) would not end by itself: over TLS, one still in its handshake
     * has the whole handshake timeout; it is cancelled once the room is
     * empty. */
    if (room->clients) aloop_event_wait(room->emptied);
    aloop_server_cancel_handlers(room->server);
    aloop_server_wait_closed(room->server);
}

/*
 * room.c - messages and the room: who is connected, who has a name, and
 * sending a message to everyone.
 */
#include "chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

chat_msg_t *msg_vformat(const char *fmt, va_list ap) {
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

chat_msg_t *msg_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    chat_msg_t *m = msg_vformat(fmt, ap);
    va_end(ap);
    return m;
}

chat_msg_t *msg_retain(chat_msg_t *m) {
    m->refs++;
    return m;
}

void msg_release(chat_msg_t *m) {
    if (m && --m->refs == 0) free(m);
}

/* ------------------------------------------------------------------------ */
/* The room                                                                 */
/* ------------------------------------------------------------------------ */

int room_init(chat_room_t *room, aloop_t *loop, const chat_options_t *opt) {
    memset(room, 0, sizeof *room);
    room->loop = loop;
    room->opt = opt;
    room->flowing = aloop_event_new(loop);
    room->emptied = aloop_event_new(loop);
    room->who = msg_format("/who\n");
    if (!room->flowing || !room->emptied || !room->who) {
        room_free(room);
        return -ENOMEM;
    }
    aloop_event_set(room->flowing);
    return 0;
}

void room_free(chat_room_t *room) {
    aloop_event_free(room->flowing);
    aloop_event_free(room->emptied);
    msg_release(room->who);
}

void room_link(chat_room_t *room, chat_client_t *c) {
    c->prev = NULL;
    c->next = room->clients;
    if (room->clients) room->clients->prev = c;
    room->clients = c;
    room->nconnected++;
}

void room_unlink(chat_room_t *room, chat_client_t *c) {
    if (c->prev) c->prev->next = c->next;
    else room->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    room->nconnected--;
    if (room->stopping && !room->clients) aloop_event_set(room->emptied);
}

chat_client_t *room_find(chat_room_t *room, const char *name) {
    for (chat_client_t *c = room->clients; c; c = c->next)
        if (c->joined && strcasecmp(c->name, name) == 0) return c;
    return NULL;
}

/* m to every named client except `except` (may be NULL). Never suspends.
 * client_send may end a client, which only sets flags and cancels its
 * session, so the list stays intact while we walk it. */
void room_broadcast(chat_room_t *room, chat_client_t *except, chat_msg_t *m) {
    if (!m) return;
    for (chat_client_t *c = room->clients; c; c = c->next)
        if (c->joined && c != except) client_send(c, m);
}

/* "* online (N): a, b, c\n". Made by the writer when it reaches a queued
 * room->who, so a client's outbox never holds more than the one listing
 * being written, however many /who it asked for. */
chat_msg_t *room_who(chat_room_t *room) {
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

/* One message to one client. */
void client_say(chat_client_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    chat_msg_t *m = msg_vformat(fmt, ap);
    va_end(ap);
    client_send(c, m);
    msg_release(m);
}

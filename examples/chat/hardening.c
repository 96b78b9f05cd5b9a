/*
 * hardening.c - what keeps one client from hurting the others.
 *
 * Slow clients: a broadcast only ever calls aloop_queue_put_nowait() on the
 * client's own bounded outbox, so no client can block the room. The
 * client's writer task is the only code that writes to its socket. When an
 * outbox is full (its socket buffers are full as well, so the client has
 * not read anything for a while) the client is disconnected and the room is
 * told "* NAME was disconnected (too slow)". Memory per client is therefore
 * bounded by --queue messages of at most --max-line bytes each (plus the
 * one /who listing being written: a queued /who is listed by the writer).
 *
 * Bursts: senders, not readers, absorb them. A chat line waits while some
 * client's outbox is half full and its writer merely has not run yet (see
 * client_congest_check()), so a thousand clients talking at once do not get
 * each other dropped.
 *
 * Also here: the writer coalesces queued messages into one write, a
 * connection that picks no name in --name-timeout seconds is closed, and
 * input lines are made harmless before anyone else sees them.
 */
#include "chat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Flow control                                                             */
/* ------------------------------------------------------------------------ */

/* A client whose outbox is half full while its writer is NOT inside a
 * socket write counts as congested, and chat lines wait (room->flowing)
 * until no client is; its writer runs soon and empties the outbox. A
 * client whose writer is stuck in a write does not hold the room up: its
 * outbox fills and it is disconnected. */
static void client_congest_check(chat_client_t *c) {
    chat_room_t *room = c->room;
    if (c->congested || c->writing || c->writer_done || c->end != END_NONE) return;
    if (aloop_queue_size(c->outbox) * 2 < room->opt->queue_len) return;
    c->congested = 1;
    if (room->congested++ == 0) aloop_event_clear(room->flowing);
}

void client_uncongest(chat_client_t *c) {
    if (!c->congested) return;
    c->congested = 0;
    if (--c->room->congested == 0) aloop_event_set(c->room->flowing);
}

/* Called before a session handles a line (which may cause a reply or a
 * broadcast) and before a leave notice: 0, or < 0 if cancelled meanwhile. */
int room_wait_flowing(chat_room_t *room) {
    while (room->congested > 0) {
        int rc = aloop_event_wait(room->flowing);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Ends c's session from anywhere: the reader's current (or next) suspending
 * call returns -ECANCELED and it runs its normal teardown. From the session
 * itself this leaves a pending cancel: its next suspending call returns at
 * once instead of waiting for input. */
void client_end(chat_client_t *c, enum chat_end why) {
    if (c->end != END_NONE) return;
    c->end = why;
    client_uncongest(c);
    aloop_cancel(c->session);
}

/* Hands c one reference to m. A full outbox means c is not keeping up: it
 * is disconnected rather than allowed to stall the sender or grow. */
void client_send(chat_client_t *c, chat_msg_t *m) {
    if (!m) return; /* out of memory while formatting: the message is lost, nothing else */
    int rc = aloop_queue_put_nowait(c->outbox, msg_retain(m));
    if (rc < 0) {
        msg_release(m);
        if (rc == -EAGAIN) client_end(c, END_SLOW);
        return;
    }
    client_congest_check(c);
}

/* ------------------------------------------------------------------------ */
/* The writer task: outbox -> socket                                        */
/* ------------------------------------------------------------------------ */

/* The only place that writes to a client's socket. A writer inside a write
 * may stay there for ever (the client stopped reading): it must not hold
 * the room up meanwhile, so its client stops counting as congested before
 * the write, not after; its outbox then fills and it is dropped. */
static int client_write(chat_client_t *c, const char *data, size_t len) {
    client_uncongest(c);
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
    if (m == c->room->who) {
        chat_msg_t *list = room_who(c->room); /* NULL when out of memory: not answered */
        int rc = list ? batch_add(c, batch, used, list) : 0;
        msg_release(list);
        return rc;
    }
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
        client_uncongest(c); /* the outbox is empty */
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
    return NULL;
}

/* The writer's reference to c goes when its task completes, whether it ran
 * or was cancelled before its first step. */
static void writer_finished(aloop_future_t *f, void *arg) {
    (void)f;
    client_unref(arg);
}

int client_outbox_open(chat_client_t *c) {
    c->outbox = aloop_queue_new(c->room->loop, c->room->opt->queue_len);
    if (!c->outbox) return -ENOMEM;
    c->writer = aloop_spawn(c->room->loop, writer_main, c);
    if (!c->writer) return -ENOMEM;
    if (aloop_future_add_done_callback(c->writer, writer_finished, c) < 0) {
        aloop_cancel(c->writer); /* before its first step: it never runs */
        aloop_release(c->writer);
        c->writer = NULL;
        return -ENOMEM;
    }
    c->refs++;
    return 0;
}

void client_drop_outbox(chat_client_t *c) {
    void *item;
    while (aloop_queue_get_nowait(c->outbox, &item) == 0) msg_release(item);
}

/* Ends the writer, after it has written what is queued if `flush` (for at
 * most FLUSH_TIMEOUT seconds), and waits until it has finished. */
void client_outbox_close(chat_client_t *c, int flush) {
    if (!c->writer) return;
    aloop_future_t *writer = c->writer;
    int done = 0;
    if (flush) {
        aloop_queue_shutdown(c->outbox, 0); /* the writer drains, then stops */
        done = aloop_wait(&writer, 1, ALOOP_ALL_COMPLETED, FLUSH_TIMEOUT, NULL) == 0;
    }
    if (!done) {
        /* Drop what is queued and make its next get fail at once. Cancel it
         * only if it has started (it may be stuck in a write that never
         * completes): cancelled before its first step it would never run. */
        client_drop_outbox(c);
        aloop_queue_shutdown(c->outbox, 1);
        if (c->writer_started) aloop_cancel(writer);
        aloop_await(writer, NULL);
    }
    aloop_release(writer);
    c->writer = NULL;
}

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

/* ------------------------------------------------------------------------ */
/* Names in time, harmless input                                            */
/* ------------------------------------------------------------------------ */

static void name_timeout_cb(void *arg) {
    chat_client_t *c = arg;
    c->name_timer = NULL; /* the loop frees the handle after this returns */
    client_say(c, "* no name given in time, bye\n");
    client_end(c, END_TIMEOUT);
}

int client_name_timer_start(chat_client_t *c) {
    double secs = c->room->opt->name_timeout;
    if (secs <= 0) return 0;
    c->name_timer = aloop_call_later(c->room->loop, secs, name_timeout_cb, c);
    return c->name_timer ? 0 : -ENOMEM;
}

void client_name_timer_stop(chat_client_t *c) {
    if (!c->name_timer) return;
    aloop_handle_cancel(c->name_timer);
    c->name_timer = NULL;
}

ssize_t client_read_line(chat_client_t *c) {
    ssize_t n = aloop_stream_readline(c->stream, c->line, c->room->opt->max_line + 1);
    if (n == 0) return -EPIPE; /* EOF */
    if (n < 0) return n;
    while (n > 0 && (c->line[n - 1] == '\n' || c->line[n - 1] == '\r')) n--;
    c->line[n] = '\0';
    defang_controls(c->line, n); /* no terminal escapes into other people's screens */
    return n;
}

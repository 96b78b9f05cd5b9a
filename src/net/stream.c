/*
 * stream.c - buffered reader/writer over an fd (asyncio's StreamReader and
 * StreamWriter in one object).
 *
 * One reader and one writer at a time: a call that would be a second
 * reader (read, readline, readuntil, readexactly) or a second writer
 * (write) returns -EBUSY before it touches anything. That is what lets a
 * reader suspended in fill() keep pointers into the buffer: nobody else
 * compacts or reallocates it meanwhile, and a write that has started is
 * never interleaved with another task's bytes.
 *
 * The read buffer [start, end) of cap bytes grows on demand, never beyond
 * max_line + 1 bytes (buf_limit): enough for a readexactly of that size.
 * readline/readuntil report a record too long as soon as max_line bytes
 * are buffered without its separator, and the next read call of any kind
 * skips the rest of it through the separator (discarding), so an endless line costs
 * neither memory nor time beyond max_line. Data is consumed from the buffer only
 * when a call returns it, so a cancelled readline (or a readexactly of at
 * most max_line + 1 bytes) loses nothing: the next call sees the same bytes.
 * A larger readexactly reads straight into the caller's buffer; if it fails
 * (a cancel, an error) what it read goes back into the stream's buffer,
 * which then grows beyond max_line + 1 to hold it (put_back), so nothing is
 * lost on that path either.
 *
 * A transport (aloop_stream_set_transport: TLS, say) replaces the plain
 * fd I/O under the buffer: its non-blocking read/write/shutdown say which
 * way the fd must become ready before they are tried again, and the stream
 * does the waiting. The plain path tests one pointer and is otherwise what
 * it was; the kernel shortcuts of copies apply to plain streams only.
 *
 * Writes go straight to aloop_write_all: the call returns once the kernel
 * has every byte, which is the backpressure (a slow peer suspends the
 * writer, never grows memory).
 *
 * aloop_stream_close may run while other tasks are suspended inside calls
 * on the same stream: they are woken with -EBADF (aloop__io_forget) and
 * `users` counts them, so the last one out frees the stream.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>

#define STREAM_DEFAULT_MAX_LINE (64u * 1024u)
#define STREAM_MIN_BUF 4096u

struct aloop_stream {
    aloop_t *loop;      /* NULL once the loop was freed (stream_detach) */
    aloop_owned_t owned; /* on loop->owned while the loop lives */
    int fd;
    size_t max_line;
    char *buf;
    size_t start, end, cap;
    uint8_t eof;        /* read returned 0: no more data will come */
    uint8_t closed;     /* aloop_stream_close was called */
    uint8_t reading;    /* a read call is in progress (one reader at a time) */
    uint8_t writing;    /* a write call is in progress (one writer at a time) */
    uint8_t wr_shut;    /* aloop_stream_shutdown succeeded: writes are -EPIPE */
    int error;          /* sticky: data was lost (see put_back); reads fail */
    uint8_t discarding; /* inside an over-long record, dropping through dsep */
    char *dsep;         /* the separator being discarded through */
    size_t dseplen;
    char dsep_small[16]; /* dsep for short separators (no allocation) */
    unsigned users;     /* calls in progress */
    const aloop_stream_transport_t *tr; /* NULL: plain fd I/O (io.c) */
    void *tr_ctx;
};

/* aloop_free: the stream may still be closed afterwards (and must not
 * reach the freed loop then). */
static void stream_detach(aloop_owned_t *o) {
    ALOOP_CONTAINER_OF(o, aloop_stream_t, owned)->loop = NULL;
}

/* max_line + 1, or "no limit" for values near SIZE_MAX (never wrapping). */
static size_t buf_limit(const aloop_stream_t *s) {
    return s->max_line < SIZE_MAX / 2 ? s->max_line + 1 : SIZE_MAX / 2;
}

aloop_stream_t *aloop_stream_new(aloop_t *loop, int fd, size_t max_line) {
    if (!loop || fd < 0) return aloop__null_errno(-EINVAL);
    aloop_stream_t *s = aloop__calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->fd = fd;
    s->max_line = max_line ? max_line : STREAM_DEFAULT_MAX_LINE;
    s->cap = buf_limit(s) < STREAM_MIN_BUF ? buf_limit(s) : STREAM_MIN_BUF;
    s->buf = aloop__malloc(s->cap);
    if (!s->buf) {
        aloop__free(s);
        return NULL;
    }
    aloop__io_set_nonblocking(loop, fd); /* put back when the stream lets fd go */
    s->owned.detach = stream_detach;
    aloop__loop_own(loop, &s->owned);
    return s;
}

int aloop_stream_fd(const aloop_stream_t *s) { return s ? s->fd : -EINVAL; }

int aloop_stream_set_transport(aloop_stream_t *s, const aloop_stream_transport_t *ops,
                               void *ctx) {
    if (!s || (ops && (!ops->read || !ops->write || !ops->shutdown))) return -EINVAL;
    if (s->closed) return -EBADF;
    if (s->reading || s->writing) return -EBUSY;
    if (s->tr && s->tr->close) s->tr->close(s->tr_ctx, s->fd);
    s->tr = ops;
    s->tr_ctx = ops ? ctx : NULL;
    return 0;
}

void *aloop_stream_transport_ctx(const aloop_stream_t *s) { return s ? s->tr_ctx : NULL; }

const aloop_stream_transport_t *aloop_stream_transport(const aloop_stream_t *s) {
    return s ? s->tr : NULL;
}

static void stream_destroy(aloop_stream_t *s) {
    aloop__loop_disown(&s->owned);
    if (s->dsep != s->dsep_small) aloop__free(s->dsep);
    aloop__free(s->buf);
    aloop__free(s);
}

enum { STREAM_READ = 1, STREAM_WRITE = 2 };

/* Entry of every call: the stream is in use, as a reader and/or writer
 * (role), until stream_leave. -EBUSY when another task holds that role.
 * The check comes after aloop__enter, which may yield. */
static int stream_claim(aloop_stream_t *s, int role) {
    if (s->closed) return -EBADF;
    if (((role & STREAM_READ) && s->reading) || ((role & STREAM_WRITE) && s->writing))
        return -EBUSY;
    if (role & STREAM_READ) s->reading = 1;
    if (role & STREAM_WRITE) s->writing = 1;
    s->users++;
    return 0;
}

/* The stream's fd is waited on through its own loop's poller only: from
 * another loop (or after its loop was freed) a call is misuse, -EINVAL,
 * before it touches anything (aloop_stream_close would not wake it). */
static int stream_enter(aloop_stream_t *s, aloop_task_impl_t **t, int role, const char *call) {
    int err;
    *t = aloop__enter_on(s, call, &err);
    if (!*t) return err;
    return stream_claim(s, role);
}

/* Returns rc, or -EBADF if the stream was closed meanwhile (then it may be
 * freed here: do not touch s afterwards). */
static ssize_t stream_leave(aloop_stream_t *s, int role, ssize_t rc) {
    s->users--;
    if (role & STREAM_READ) s->reading = 0;
    if (role & STREAM_WRITE) s->writing = 0;
    if (!s->closed) return rc;
    if (!s->users) stream_destroy(s);
    return -EBADF;
}

/* ---- the transport: plain fd I/O, or the ops a TLS library installed ------ */

/* Waits for what a transport call asked for. A wait already taken by the
 * other role (a reader that wants the fd writable while the writer waits
 * for that too) is -EBUSY in io.c: then yield and try the call again. */
static int transport_wait(aloop_task_impl_t *t, aloop_stream_t *s, int want) {
    int dir = want == ALOOP_WANT_WRITE;
    int rc = aloop__io_wait(t, s->fd, dir, -1);
    return rc == -EBUSY ? aloop__yield(t) : rc;
}

/* One read of at least one byte (or 0 at EOF), suspending as needed. */
static ssize_t stream_recv(aloop_task_impl_t *t, aloop_stream_t *s, void *buf, size_t len) {
    if (s->closed) return -EBADF; /* during a budget yield: fd and ctx are gone */
    if (ALOOP_LIKELY(!s->tr)) return aloop__io_read(t, s->fd, buf, len);
    for (;;) {
        int want = ALOOP_WANT_READ;
        ssize_t n = s->tr->read(s->tr_ctx, s->fd, buf, len, &want);
        if (n != -EAGAIN) return n;
        int rc = transport_wait(t, s, want);
        if (rc < 0 || s->closed) return rc < 0 ? rc : -EBADF;
    }
}

/* One write of at least one byte, suspending as needed. */
static ssize_t stream_send(aloop_task_impl_t *t, aloop_stream_t *s, const void *buf, size_t len) {
    if (s->closed) return -EBADF;
    if (ALOOP_LIKELY(!s->tr)) return aloop__io_write(t, s->fd, buf, len);
    for (;;) {
        int want = ALOOP_WANT_WRITE;
        ssize_t n = s->tr->write(s->tr_ctx, s->fd, buf, len, &want);
        if (n != -EAGAIN) return n;
        int rc = transport_wait(t, s, want);
        if (s->closed) return -EBADF;
        if (rc < 0) {
            /* the retry will not come: the transport must not count what
             * it took of these bytes towards the next write */
            s->tr->write(s->tr_ctx, s->fd, NULL, 0, &want);
            return rc;
        }
    }
}

/* Every byte, spending the budget between writes that did not suspend. */
static ssize_t stream_send_all(aloop_task_impl_t *t, aloop_stream_t *s, const char *buf,
                               size_t len) {
    if (ALOOP_LIKELY(!s->tr)) return aloop__io_write_all(t, s->fd, buf, len);
    for (size_t done = 0; done < len;) {
        int rc = done ? aloop__coop_spend(t) : 0;
        ssize_t n = rc < 0 ? rc : stream_send(t, s, buf + done, len - done);
        if (n < 0) return n;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

static size_t buffered(const aloop_stream_t *s) { return s->end - s->start; }

static void consume(aloop_stream_t *s, size_t n) {
    s->start += n;
    if (s->start == s->end) s->start = s->end = 0;
}

/* Moves up to n buffered bytes to out: how many. */
static ssize_t take_buffered(aloop_stream_t *s, void *out, size_t n) {
    size_t take = buffered(s) < n ? buffered(s) : n;
    if (take) memcpy(out, s->buf + s->start, take);
    consume(s, take);
    return (ssize_t)take;
}

/* Makes room for `need` bytes from start, then reads once. Bytes read, 0 at
 * EOF (s->eof set), or -errno. `again`: not the call's first read, so it
 * spends a unit of the task's budget (a peer that always has data must not
 * let one call keep the loop). */
static ssize_t fill(aloop_task_impl_t *t, aloop_stream_t *s, size_t need, int again) {
    if (again) {
        int rc = aloop__coop_spend(t);
        if (rc < 0) return rc;
    }
    if (s->cap - s->start < need && s->start) {
        memmove(s->buf, s->buf + s->start, buffered(s));
        s->end -= s->start;
        s->start = 0;
    }
    if (s->cap < need) {
        size_t limit = buf_limit(s);
        size_t cap = s->cap < limit / 2 ? s->cap * 2 : limit;
        if (cap < need) cap = need;
        char *buf = aloop__realloc(s->buf, cap);
        if (!buf) return -ENOMEM;
        s->buf = buf;
        s->cap = cap;
    }
    ssize_t n = stream_recv(t, s, s->buf + s->end, s->cap - s->end);
    if (n > 0) s->end += (size_t)n;
    if (n == 0) s->eof = 1;
    return n;
}

/* The first occurrence of sep[0..seplen) in p[0..n), or NULL. */
static const char *find_sep(const char *p, size_t n, const char *sep, size_t seplen) {
    if (seplen == 1) return memchr(p, sep[0], n);
    while (n >= seplen) {
        const char *q = memchr(p, sep[0], n - seplen + 1);
        if (!q) return NULL;
        if (memcmp(q, sep, seplen) == 0) return q;
        n -= (size_t)(q + 1 - p);
        p = q + 1;
    }
    return NULL;
}

/* Remembers the separator of the record being discarded: a discard that a
 * cancel interrupts is finished by the next readline/readuntil, after the
 * caller's separator is gone. 0 or -ENOMEM (nothing consumed yet). */
static int discard_begin(aloop_stream_t *s, const char *sep, size_t seplen) {
    char *keep = s->dsep_small;
    if (seplen > sizeof s->dsep_small) {
        keep = aloop__malloc(seplen);
        if (!keep) return -ENOMEM;
    }
    memcpy(keep, sep, seplen);
    if (s->dsep != s->dsep_small) aloop__free(s->dsep);
    s->dsep = keep;
    s->dseplen = seplen;
    s->discarding = 1;
    return 0;
}

/* Drops the rest of an over-long record, through its separator (or up to
 * EOF): 0 once done, else -errno (still discarding: the next call goes on).
 * The last seplen - 1 bytes are kept across reads: they may be the start
 * of a separator whose end has not arrived yet. */
static ssize_t discard_record(aloop_task_impl_t *t, aloop_stream_t *s) {
    const char *sep = s->dsep;
    size_t seplen = s->dseplen;
    for (;;) {
        const char *p = s->buf + s->start;
        const char *hit = find_sep(p, buffered(s), sep, seplen);
        if (hit) {
            consume(s, (size_t)(hit - p) + seplen);
            break;
        }
        if (s->eof) {
            consume(s, buffered(s));
            break;
        }
        size_t keep = buffered(s) < seplen - 1 ? buffered(s) : seplen - 1;
        consume(s, buffered(s) - keep);
        ssize_t n = fill(t, s, keep + 1, 1);
        if (s->closed) return -EBADF;
        if (n < 0) return n;
    }
    s->discarding = 0;
    return 0;
}

/* Every read call starts here: the rest of an over-long record that a
 * readline/readuntil reported goes first, whichever call reads next, so
 * its bytes are never delivered and no later record is skipped instead.
 * 0, or -errno (a sticky error, or the skip cut short: it goes on next). */
static ssize_t read_begin(aloop_task_impl_t *t, aloop_stream_t *s) {
    if (s->error) return s->error;
    return s->discarding ? discard_record(t, s) : 0;
}

/* The record being read is too long: -EMSGSIZE now, and the next
 * readline/readuntil skips it through its separator. What is buffered goes
 * at once but for the last seplen - 1 bytes (the start of a separator,
 * perhaps), so memory stays bounded by max_line. */
static ssize_t record_too_long(aloop_stream_t *s, const char *sep, size_t seplen) {
    int rc = discard_begin(s, sep, seplen);
    if (rc < 0) return rc;
    size_t keep = buffered(s) < seplen - 1 ? buffered(s) : seplen - 1;
    consume(s, buffered(s) - keep);
    return -EMSGSIZE;
}

/* readline and readuntil: the record through the first sep, into out
 * (NUL-terminated). Nothing is consumed until the call returns it, so a
 * cancel at the read inside fill() loses nothing. A record is too long as
 * soon as `limit` + 1 bytes are buffered without a whole separator: it
 * cannot end within them (at `limit` bytes, an end of file next would still
 * make them a last record without separator). */
static ssize_t readuntil_locked(aloop_task_impl_t *t, aloop_stream_t *s, const char *sep,
                                size_t seplen, char *out, size_t cap) {
    ssize_t rc = read_begin(t, s);
    if (rc < 0) return rc;
    size_t limit = cap - 1 < s->max_line ? cap - 1 : s->max_line;
    size_t scanned = 0; /* bytes already searched for a whole separator */
    for (int again = 0;; again = 1) {
        const char *p = s->buf + s->start;
        size_t from = scanned >= seplen - 1 ? scanned - (seplen - 1) : 0;
        const char *hit = find_sep(p + from, buffered(s) - from, sep, seplen);
        if (hit) {
            size_t len = (size_t)(hit - p) + seplen;
            if (len > limit) {
                consume(s, len);
                return -EMSGSIZE;
            }
            memcpy(out, p, len);
            out[len] = '\0';
            consume(s, len);
            return (ssize_t)len;
        }
        scanned = buffered(s);
        if (scanned > limit) return record_too_long(s, sep, seplen);
        if (s->eof) {
            /* a last record without separator is returned as is, then 0 */
            if (scanned) memcpy(out, p, scanned);
            out[scanned] = '\0';
            consume(s, scanned);
            return (ssize_t)scanned;
        }
        ssize_t n = fill(t, s, buffered(s) + 1, again);
        if (s->closed) return -EBADF;
        if (n < 0) return n;
    }
}

ssize_t aloop_stream_readline(aloop_stream_t *s, char *buf, size_t cap) {
    if (!s || !buf || !cap) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_READ, "aloop_stream_readline");
    if (rc < 0) return rc;
    return stream_leave(s, STREAM_READ, readuntil_locked(t, s, "\n", 1, buf, cap));
}

ssize_t aloop_stream_readuntil(aloop_stream_t *s, const void *sep, size_t seplen, char *buf,
                               size_t cap) {
    if (!s || !sep || !seplen || !buf || !cap) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_READ, "aloop_stream_readuntil");
    if (rc < 0) return rc;
    return stream_leave(s, STREAM_READ, readuntil_locked(t, s, sep, seplen, buf, cap));
}

/* What is buffered, else one read: straight into the caller's buffer when
 * it is at least as large as ours (no copy), else into ours (so that many
 * small reads cost one syscall). */
static ssize_t read_locked(aloop_task_impl_t *t, aloop_stream_t *s, char *out, size_t n) {
    ssize_t rc = read_begin(t, s);
    if (rc < 0) return rc;
    if (!buffered(s) && !s->eof) {
        if (n >= s->cap) {
            ssize_t r = stream_recv(t, s, out, n);
            if (s->closed) return -EBADF;
            if (r == 0) s->eof = 1;
            return r;
        }
        ssize_t r = fill(t, s, 1, 0);
        if (s->closed) return -EBADF;
        if (r < 0) return r;
    }
    return take_buffered(s, out, n);
}

ssize_t aloop_stream_read(aloop_stream_t *s, void *buf, size_t n) {
    if (!s || (!buf && n)) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_READ, "aloop_stream_read");
    if (rc < 0) return rc;
    if (n == 0) return stream_leave(s, STREAM_READ, 0);
    return stream_leave(s, STREAM_READ, read_locked(t, s, buf, n));
}

int aloop_open_connection(const char *host, const char *port, double timeout,
                          aloop_stream_t **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    int fd = aloop_tcp_connect(host, port, timeout); /* checks the rest; suspends */
    if (fd < 0) return fd;
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0);
    if (!s) {
        aloop_close(fd);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

/* A large read failed (cancelled, an error) after `got` bytes went into the
 * caller's buffer: they go back into the (then empty) stream buffer, which
 * grows beyond max_line + 1 for them, so the next call sees them. If even
 * that allocation fails the bytes are lost: the stream is then broken and
 * every later read reports -ENOMEM rather than silently skip them. */
static ssize_t put_back(aloop_stream_t *s, const char *out, size_t got, ssize_t rc) {
    if (!got) return rc;
    if (s->cap < got) {
        char *buf = aloop__realloc(s->buf, got);
        if (!buf) {
            s->error = -ENOMEM;
            return -ENOMEM;
        }
        s->buf = buf;
        s->cap = got;
    }
    memcpy(s->buf, out, got);
    s->start = 0;
    s->end = got;
    return rc;
}

/* Larger than the buffer may grow: drain it, then read in place. */
static ssize_t readexactly_large(aloop_task_impl_t *t, aloop_stream_t *s, char *out, size_t n) {
    size_t got = buffered(s);
    if (got) memcpy(out, s->buf + s->start, got);
    consume(s, got);
    for (int again = 0; got < n && !s->eof; again = 1) {
        ssize_t r = again ? aloop__coop_spend(t) : 0;
        if (r == 0) r = stream_recv(t, s, out + got, n - got);
        if (s->closed) return -EBADF;
        if (r < 0) return put_back(s, out, got, r);
        if (r == 0) s->eof = 1;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static ssize_t readexactly_locked(aloop_task_impl_t *t, aloop_stream_t *s, char *out, size_t n) {
    ssize_t rc = read_begin(t, s);
    if (rc < 0) return rc;
    if (n > buf_limit(s)) return readexactly_large(t, s, out, n);
    /* Fits the buffer: gather it all first, so a cancel loses nothing. */
    for (int again = 0; buffered(s) < n && !s->eof; again = 1) {
        ssize_t r = fill(t, s, n, again);
        if (s->closed) return -EBADF;
        if (r < 0) return r;
    }
    return take_buffered(s, out, n);
}

ssize_t aloop_stream_readexactly(aloop_stream_t *s, void *buf, size_t n) {
    if (!s || (!buf && n)) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_READ, "aloop_stream_readexactly");
    if (rc < 0) return rc;
    return stream_leave(s, STREAM_READ, readexactly_locked(t, s, buf, n));
}

ssize_t aloop_stream_write(aloop_stream_t *s, const void *buf, size_t n) {
    if (!s || (!buf && n)) return -EINVAL;
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_WRITE, "aloop_stream_write");
    if (rc < 0) return rc;
    if (s->wr_shut) return stream_leave(s, STREAM_WRITE, -EPIPE);
    return stream_leave(s, STREAM_WRITE, stream_send_all(t, s, buf, n));
}

/* A transport's half-close (TLS: close_notify) may have to wait. */
static int transport_shutdown(aloop_stream_t *s) {
    aloop_task_impl_t *t;
    int rc = stream_enter(s, &t, STREAM_WRITE, "aloop_stream_shutdown");
    if (rc < 0) return rc;
    for (;;) {
        int want = ALOOP_WANT_WRITE;
        rc = s->tr->shutdown(s->tr_ctx, s->fd, &want);
        if (rc != -EAGAIN) break;
        if ((rc = transport_wait(t, s, want)) < 0 || s->closed) break;
    }
    if (rc == 0 && !s->closed) s->wr_shut = 1;
    return (int)stream_leave(s, STREAM_WRITE, rc);
}

int aloop_stream_shutdown(aloop_stream_t *s) {
    if (!s) return -EINVAL;
    if (s->closed) return -EBADF;
    if (s->writing) return -EBUSY;
    if (s->wr_shut) return 0;
    if (s->tr) return transport_shutdown(s);
    if (shutdown(s->fd, SHUT_WR) < 0) return -errno; /* -ENOTSOCK: nothing changed */
    s->wr_shut = 1;
    return 0;
}

/* ---- copies ---------------------------------------------------------------- */

#define COPY_CHUNK (64u * 1024u)

/* What is buffered in from goes out first, then what the kernel can move
 * by itself (a pipe on one side, a regular file source) goes fd to fd;
 * everything else passes through from's buffer, consumed only once
 * written, so that a copy that stops holds nothing: what was read and not
 * written is still in from's buffer for the next read. */
static ssize_t copy_locked(aloop_task_impl_t *t, aloop_stream_t *to, aloop_stream_t *from,
                           size_t n, size_t *done) {
    if (to->wr_shut) return -EPIPE;
    ssize_t begin = read_begin(t, from);
    if (begin < 0) return begin;
    size_t chunk = buf_limit(from) < COPY_CHUNK ? buf_limit(from) : COPY_CHUNK;
    int kernel = -1; /* not yet asked */
    for (int again = 0; !n || *done < n; again = 1) {
        if (!buffered(from)) {
            if (from->eof) return 0;
            if (kernel < 0)
                kernel = !to->tr && !from->tr && aloop__copy_has_kernel_path(to->fd, from->fd);
            if (kernel) {
                ssize_t rc = aloop__copy_fd(t, to->fd, from->fd, NULL, n, done, again);
                if (to->closed || from->closed) return -EBADF;
                if (rc == 0 && (!n || *done < n)) from->eof = 1;
                return rc;
            }
            ssize_t r = fill(t, from, chunk, again);
            if (to->closed || from->closed) return -EBADF;
            if (r <= 0) return r;
            continue;
        }
        if (again) {
            int rc = aloop__coop_spend(t);
            if (rc < 0) return rc;
        }
        size_t len = buffered(from);
        if (n && n - *done < len) len = n - *done;
        ssize_t w = stream_send(t, to, from->buf + from->start, len);
        if (to->closed || from->closed) return -EBADF;
        if (w < 0) return w;
        consume(from, (size_t)w);
        *done += (size_t)w;
    }
    return 0;
}

int aloop_stream_copy(aloop_stream_t *to, aloop_stream_t *from, size_t n, size_t *copied) {
    size_t done = 0;
    if (copied) *copied = 0;
    if (!from || aloop__use_on(to, "aloop_stream_copy") < 0) return -EINVAL;
    aloop_task_impl_t *t;
    int same = to == from;
    int rc = stream_enter(from, &t, same ? STREAM_READ | STREAM_WRITE : STREAM_READ,
                          "aloop_stream_copy");
    if (rc < 0) return rc;
    if (!same && aloop__check_loop(to->loop, "aloop_stream_copy") < 0) rc = -EINVAL;
    if (!same && (rc < 0 || (rc = stream_claim(to, STREAM_WRITE)) < 0))
        return (int)stream_leave(from, STREAM_READ, rc);
    /* both are held (users): neither is freed before we leave */
    rc = (int)copy_locked(t, to, from, n, &done);
    if (copied) *copied = done;
    if (same) return (int)stream_leave(from, STREAM_READ | STREAM_WRITE, rc);
    int rc_to = (int)stream_leave(to, STREAM_WRITE, rc);
    int rc_from = (int)stream_leave(from, STREAM_READ, rc);
    return rc_to < 0 ? rc_to : rc_from;
}

void aloop__stream_hold(aloop_stream_t *s) { s->users++; }

void aloop__stream_unhold(aloop_stream_t *s) {
    s->users--;
    if (!s->closed) aloop_stream_close(s); /* frees it unless a call is in progress */
    else if (!s->users) stream_destroy(s);
}

int aloop_stream_close(aloop_stream_t *s) {
    if (!s) return -EINVAL;
    if (s->closed) return -EBADF;
    s->closed = 1;
    /* wakes tasks inside our calls (-EBADF); nothing to do once the loop
     * was freed (aloop_free already ended every call) */
    if (s->loop) aloop__io_release(s->loop, s->fd);
    if (s->tr && s->tr->close) s->tr->close(s->tr_ctx, s->fd);
    int rc = close(s->fd) < 0 && errno != EINTR ? -errno : 0;
    if (!s->users) stream_destroy(s);
    return rc;
}

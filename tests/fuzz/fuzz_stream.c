/*
 * fuzz_stream.c - libFuzzer target for aloop_stream_readline, the line
 * reader every line protocol (the chat server included) sits on.
 *
 * Input: byte 0 picks max_line, byte 1 the caller's buffer size, byte 2 how
 * the bytes are chopped into writes; the rest is what the peer sends before
 * closing. A writer task sends it over a socket pair in those chunks (with
 * yields in between, so the reader sees every kind of partial line) while
 * the reader checks each result against a model of the documented rules:
 *   - a line (through its '\n', or the unterminated tail at EOF) of at most
 *     limit = min(max_line, cap - 1) bytes comes back whole, NUL-terminated;
 *   - a longer one gives -EMSGSIZE, is skipped through its '\n', and the
 *     stream stays usable;
 *   - then 0 (EOF), and nothing else, ever.
 * Any disagreement aborts (a crash for libFuzzer).
 */
#include <aloop.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_case {
    const uint8_t *in;
    size_t len;
    size_t max_line, cap;
    unsigned chop;
    int fds[2];
} fuzz_case_t;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz_stream: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                           \
            abort();                                                            \
        }                                                                       \
    } while (0)

static void *writer(void *arg) {
    fuzz_case_t *c = arg;
    size_t off = 0;
    unsigned step = 0;
    while (off < c->len) {
        size_t n = 1 + ((c->chop * 2654435761u + step++ * 40503u) >> 7) % 97;
        if (c->chop == 0) n = c->len - off; /* everything at once */
        if (n > c->len - off) n = c->len - off;
        CHECK(aloop_write_all(c->fds[0], c->in + off, n) == (ssize_t)n);
        off += n;
        aloop_yield();
    }
    CHECK(aloop_close(c->fds[0]) == 0);
    return NULL;
}

static void *reader(void *arg) {
    fuzz_case_t *c = arg;
    aloop_stream_t *s = aloop_stream_new(aloop_current(), c->fds[1], c->max_line);
    CHECK(s != NULL);
    size_t limit = c->cap - 1 < c->max_line ? c->cap - 1 : c->max_line;
    char *buf = malloc(c->cap);
    CHECK(buf != NULL);
    size_t pos = 0; /* where the model's next line starts */
    for (;;) {
        ssize_t n = aloop_stream_readline(s, buf, c->cap);
        if (pos == c->len) {
            CHECK(n == 0);
            break;
        }
        const uint8_t *nl = memchr(c->in + pos, '\n', c->len - pos);
        size_t want = nl ? (size_t)(nl - (c->in + pos)) + 1 : c->len - pos;
        if (want > limit) {
            CHECK(n == -EMSGSIZE);
        } else {
            CHECK(n == (ssize_t)want);
            CHECK(memcmp(buf, c->in + pos, want) == 0);
            CHECK(buf[want] == '\0');
        }
        pos += want;
    }
    free(buf);
    CHECK(aloop_stream_close(s) == 0);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t max_lines[] = {1, 2, 3, 8, 16, 100, 4096, 0 /* default 64 KiB */};
    if (size < 3) return 0;
    fuzz_case_t c = {
        .in = data + 3,
        .len = size - 3,
        .max_line = max_lines[data[0] % 8],
        .cap = 1 + (size_t)data[1] % 130 + (data[1] >= 250 ? 70000 : 0),
        .chop = data[2],
    };
    if (c.max_line == 0) c.max_line = 64 * 1024; /* what 0 means, for the model */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.fds) == 0);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    CHECK(loop != NULL);
    aloop_task_t *w = aloop_spawn(loop, writer, &c);
    aloop_task_t *r = aloop_spawn(loop, reader, &c);
    CHECK(w && r);
    CHECK(aloop_run(loop) == 0);
    CHECK(aloop_future_result(w, NULL) == 0 && aloop_future_result(r, NULL) == 0);
    aloop_release(w);
    aloop_release(r);
    aloop_free(loop);
    return 0;
}

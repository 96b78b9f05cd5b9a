/*
 * fuzz_chat.c - libFuzzer target for the chat server's input handling
 * (the examples/chat sources, compiled into this file with main() renamed, so the
 * fuzzer drives the real session code: login, names, commands, broadcasts,
 * over-long lines, control bytes, /quit).
 *
 * Input: byte 0 picks the server's --max-line, byte 1 how the rest is
 * chopped into writes; the rest is what one client sends before hanging up.
 * The server runs in-process on a virtual clock, with clients connected
 * through socket pairs (no TCP, no ports): each is a task running the
 * server's connection handler, chat_session, on its own stream. After the fuzzed client is gone,
 * two fresh clients must still be able to log in and chat, and the server
 * must shut down cleanly with nothing left behind. Anything else aborts.
 */
#define main chat_main
int chat_main(int argc, char **argv);
#include "../../examples/chat/main.c"
#undef main
#include "../../examples/chat/hardening.c"
#include "../../examples/chat/room.c"
#include "../../examples/chat/session.c"
#include "../../examples/common/serve_main.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_chat: %s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define PATIENCE 10.0 /* virtual seconds any expected answer may take */

typedef struct fuzz_chat {
    const uint8_t *in;
    size_t len;
    unsigned chop;
    chat_options_t opt;
    chat_room_t room;
} fuzz_chat_t;

typedef struct session_arg {
    chat_room_t *room;
    int fd;
} session_arg_t;

/* What aloop_serve does for a connection: the handler on a stream, closed
 * when it returns. */
static void *session_task(void *arg) {
    session_arg_t *a = arg;
    aloop_stream_t *s = aloop_stream_new(aloop_current(), a->fd, 0);
    CHECK(s != NULL);
    chat_room_t *room = a->room;
    free(a);
    chat_session(s, room);
    aloop_stream_close(s);
    return NULL;
}

/* Connects a new in-process client: returns our end of the socket pair. */
static int connect_client(chat_room_t *room) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    session_arg_t *a = malloc(sizeof *a);
    CHECK(a != NULL);
    *a = (session_arg_t){room, sv[1]};
    aloop_task_t *t = aloop_spawn(room->loop, session_task, a);
    CHECK(t != NULL);
    aloop_release(t);
    aloop_yield(); /* the session registers in the room */
    return sv[0];
}

/* Until every session has left the room. */
static void wait_all_gone(chat_room_t *room) {
    for (int i = 0; room->nconnected > 0; i++) {
        if (i == 1000) aloop_dump(aloop_current(), stderr); /* who is stuck */
        CHECK(i < 1000);
        CHECK(aloop_sleep(0.01) == 0);
    }
}

/* Reads from fd into acc until needle shows up. */
static void expect(int fd, char *acc, size_t cap, size_t *len, const char *needle) {
    while (!strstr(acc, needle)) {
        CHECK(aloop_wait_readable(fd, PATIENCE) == 0);
        ssize_t n = aloop_read(fd, acc + *len, cap - 1 - *len);
        CHECK(n > 0);
        *len += (size_t)n;
        acc[*len] = '\0';
        CHECK(*len < cap - 1);
    }
}

/* Reads and drops whatever the server tells the fuzzed client. */
static void *drain(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    while (aloop_read(fd, buf, sizeof buf) > 0) {
    }
    return NULL;
}

static void send_fuzzed_input(fuzz_chat_t *f) {
    int fd = connect_client(&f->room);
    aloop_task_t *d = aloop_spawn(f->room.loop, drain, (void *)(intptr_t)fd);
    CHECK(d != NULL);
    size_t off = 0;
    unsigned step = 0;
    while (off < f->len) {
        size_t n = f->chop == 0 ? f->len - off
                                : 1 + ((f->chop * 2654435761u + step++ * 40503u) >> 9) % 257;
        if (n > f->len - off) n = f->len - off;
        if (aloop_write_all(fd, f->in + off, n) < 0) break; /* the server hung up (/quit) */
        off += n;
        aloop_yield();
    }
    shutdown(fd, SHUT_WR);
    /* The session sees EOF, flushes and leaves. */
    wait_all_gone(&f->room);
    CHECK(aloop_await(d, NULL) == 0);
    aloop_release(d);
    aloop_close(fd);
}

/* Two new clients log in and one hears the other. */
static void check_room_still_works(fuzz_chat_t *f) {
    char a[8192] = "", b[8192] = "";
    size_t alen = 0, blen = 0;
    int ca = connect_client(&f->room), cb = connect_client(&f->room);
    CHECK(aloop_write_all(ca, "carol\n", 6) == 6);
    expect(ca, a, sizeof a, &alen, "* welcome carol");
    CHECK(aloop_write_all(cb, "dave\n", 5) == 5);
    expect(cb, b, sizeof b, &blen, "* welcome dave");
    expect(ca, a, sizeof a, &alen, "* dave joined");
    CHECK(aloop_write_all(ca, "yo?\n", 4) == 4); /* fits the smallest --max-line */
    expect(cb, b, sizeof b, &blen, "carol: yo?\n");

    room_shutdown(&f->room); /* no server: it does not wait */
    expect(ca, a, sizeof a, &alen, "* server shutting down, bye");
    expect(cb, b, sizeof b, &blen, "* server shutting down, bye");
    wait_all_gone(&f->room);
    aloop_close(ca);
    aloop_close(cb);
}

static void *fuzz_main(void *arg) {
    fuzz_chat_t *f = arg;
    CHECK(room_init(&f->room, aloop_current(), &f->opt) == 0);
    send_fuzzed_input(f);
    check_room_still_works(f);

    room_free(&f->room);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    fuzz_chat_t f;
    memset(&f, 0, sizeof f);
    f.in = data + 2;
    f.len = size - 2;
    f.chop = data[1];
    f.opt.host = "127.0.0.1";
    f.opt.port = "0";
    f.opt.queue_len = 64;
    f.opt.max_line = 8 + data[0] % 120;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    CHECK(loop != NULL);
    aloop_task_t *t = aloop_spawn(loop, fuzz_main, &f);
    CHECK(t != NULL);
    CHECK(aloop_run_until_complete(loop, t) == 0);
    aloop_release(t);
    CHECK(aloop_run(loop) == 0);
    aloop_free(loop);
    return 0;
}

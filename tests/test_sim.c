/* Simulation (src/base/sim.c, the system-call layer core/sys_internal.h):
 * seeded fault injection and deterministic replay. API tests: only
 * aloop.h. Benign faults must change nothing a program sees; hard faults
 * must give negative errno values, never a crash, hang or leak (the ASan
 * preset checks the leaks). */
#include "aloop_test.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* A simulated loop on the virtual clock. */
static aloop_t *sim_loop(uint64_t seed, unsigned faults, double rate) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .sim_seed = seed,
                          .sim_faults = faults, .sim_rate = rate};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    return loop;
}

static void socket_pair(int sv[2]) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); }

/* A pattern no two offsets of which (within 1 MiB) are easily confused. */
static void fill(unsigned char *p, size_t n, unsigned salt) {
    uint32_t x = 2463534242u ^ salt;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* ---- an event trace: what the tasks saw, and when */

typedef struct trace {
    char text[1 << 17];
    size_t len;
} trace_t;

static void trace_add(trace_t *t, const char *fmt, ...) {
    if (t->len >= sizeof t->text - 1) return;
    int n = snprintf(t->text + t->len, sizeof t->text - t->len, "%.6f ", now());
    if (n > 0) t->len += (size_t)n;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(t->text + t->len, sizeof t->text - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len += (size_t)n;
    if (t->len > sizeof t->text - 1) t->len = sizeof t->text - 1;
}

/* Warnings of a loop (the replay line among them), kept for the test. */
typedef struct warnings {
    char text[4096];
    int count;
} warnings_t;

static void keep_warning(aloop_t *loop, const char *msg, void *arg) {
    (void)loop;
    warnings_t *w = arg;
    size_t at = strlen(w->text);
    snprintf(w->text + at, sizeof w->text - at, "%s\n", msg);
    w->count++;
}

/* ---- configuration */

static void test_config_and_seed(void **state) {
    (void)state;
    unsetenv("ALOOP_SIM");
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    assert_true(aloop_sim_seed(loop) == 0); /* off by default */
    aloop_free(loop);
    loop = sim_loop(42, ALOOP_SIM_BENIGN, 0.5);
    assert_true(aloop_sim_seed(loop) == 42);
    aloop_free(loop);
    assert_true(aloop_sim_seed(NULL) == 0);
    aloop_config_t bad[] = {
        {.sim_seed = 1, .sim_faults = 0x40u},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = 1.5},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = -0.1},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = NAN},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_null(aloop_new_with(&bad[i]));
        assert_int_equal(errno, EINVAL);
    }
}

/* ALOOP_SIM applies to loops whose config has no seed of its own; a
 * malformed value is ignored (and said so on stderr). */
static void test_environment(void **state) {
    (void)state;
    struct {
        const char *env;
        uint64_t seed;
    } cases[] = {
        {"7", 7}, {"0x10:short,eintr", 16}, {"99:benign:0.25", 99}, {"5:reset,enomem:1", 5},
        {"0", 0}, {"x", 0}, {"3:nonsense", 0}, {"3:short:2", 0}, {"3:short:0.5junk", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("ALOOP_SIM", cases[i].env, 1);
        aloop_t *loop = aloop_new();
        assert_non_null(loop);
        assert_true(aloop_sim_seed(loop) == cases[i].seed);
        aloop_free(loop);
    }
    setenv("ALOOP_SIM", "7", 1);
    aloop_t *loop = sim_loop(11, 0, 0); /* the config's own seed wins */
    assert_true(aloop_sim_seed(loop) == 11);
    aloop_free(loop);
    unsetenv("ALOOP_SIM");
}


/* ---- determinism: same seed, same events */

/* Ping-pong over a socketpair: a client writes messages of many sizes and
 * reads the echo back in whatever pieces arrive; an echo task reads up to
 * 4 KiB at a time and writes back what it got. Under benign faults the
 * pieces (short reads) and the times (delays) depend on the seed only. */
#define PP_MESSAGES 40
typedef struct pingpong {
    int sv[2];
    trace_t trace;
    int bad;
} pingpong_t;

static void *pp_client(void *arg) {
    pingpong_t *pp = arg;
    unsigned char out[6000], in[6000];
    for (int i = 0; i < PP_MESSAGES; i++) {
        size_t n = (size_t)(i * 397 % 5900) + 1;
        fill(out, n, (unsigned)i);
        if (aloop_write_all(pp->sv[0], out, n) != (ssize_t)n) pp->bad++;
        trace_add(&pp->trace, "client wrote %zu\n", n);
        for (size_t got = 0; got < n;) {
            ssize_t r = aloop_read(pp->sv[0], in + got, n - got);
            trace_add(&pp->trace, "client read %zd\n", r);
            if (r <= 0) {
                pp->bad++;
                return NULL;
            }
            got += (size_t)r;
        }
        if (memcmp(in, out, n) != 0) pp->bad++;
    }
    shutdown(pp->sv[0], SHUT_WR);
    return NULL;
}

static void *pp_echo(void *arg) {
    pingpong_t *pp = arg;
    char buf[4096];
    for (;;) {
        ssize_t r = aloop_read(pp->sv[1], buf, sizeof buf);
        trace_add(&pp->trace, "echo read %zd\n", r);
        if (r <= 0) return NULL;
        if (aloop_write_all(pp->sv[1], buf, (size_t)r) != r) pp->bad++;
    }
}

static void run_pingpong(uint64_t seed, unsigned faults, double rate, pingpong_t *pp) {
    memset(pp, 0, sizeof *pp);
    socket_pair(pp->sv);
    aloop_t *loop = sim_loop(seed, faults, rate);
    aloop_task_t *ts[2] = {spawn(loop, pp_client, pp), spawn(loop, pp_echo, pp)};
    run_and_release(loop, ts, 2);
    aloop_free(loop);
    close(pp->sv[0]);
    close(pp->sv[1]);
    assert_int_equal(pp->bad, 0);
}

static void test_same_seed_same_trace(void **state) {
    (void)state;
    static pingpong_t a, b, c;
    run_pingpong(1234, ALOOP_SIM_BENIGN, 0.5, &a);
    run_pingpong(1234, ALOOP_SIM_BENIGN, 0.5, &b);
    run_pingpong(1235, ALOOP_SIM_BENIGN, 0.5, &c);
    assert_true(a.trace.len > 1000);
    assert_true(a.trace.len == b.trace.len);
    assert_memory_equal(a.trace.text, b.trace.text, a.trace.len);
    assert_false(a.trace.len == c.trace.len && memcmp(a.trace.text, c.trace.text, a.trace.len) == 0);
    /* the faults did happen: reads came in more pieces than messages */
    size_t reads = 0;
    for (const char *p = a.trace.text; (p = strstr(p, "client read")) != NULL; p++) reads++;
    assert_true(reads > PP_MESSAGES);
    assert_true(strstr(a.trace.text, "0.000000 ") != NULL);
}

/* ---- benign faults change nothing a program sees */

#define MIB (1u << 20)
typedef struct bulk {
    aloop_stream_t *w, *r;
    int raw;            /* write with aloop_write_all on w's fd, not w */
    unsigned char *data, *back;
    ssize_t wrote, read;
} bulk_t;

static void *bulk_writer(void *arg) {
    bulk_t *b = arg;
    b->wrote = b->raw ? aloop_write_all(aloop_stream_fd(b->w), b->data, MIB)
                      : aloop_stream_write(b->w, b->data, MIB);
    return NULL;
}

static void *bulk_reader(void *arg) {
    bulk_t *b = arg;
    b->read = aloop_stream_readexactly(b->r, b->back, MIB);
    return NULL;
}

/* 1 MiB through aloop_write_all (odd seeds) or aloop_stream_write (even
 * ones), read back with aloop_stream_readexactly. */
static void test_benign_mib_write_all_readexactly(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        int sv[2];
        socket_pair(sv);
        aloop_t *loop = sim_loop(seed, ALOOP_SIM_BENIGN, 0.5);
        bulk_t b = {.raw = seed % 2 == 1, .data = malloc(MIB), .back = calloc(1, MIB)};
        assert_non_null(b.data);
        assert_non_null(b.back);
        fill(b.data, MIB, (unsigned)seed);
        assert_non_null(b.w = aloop_stream_new(loop, sv[0], 0));
        assert_non_null(b.r = aloop_stream_new(loop, sv[1], 0));
        aloop_task_t *ts[2] = {spawn(loop, bulk_writer, &b), spawn(loop, bulk_reader, &b)};
        run_and_release(loop, ts, 2);
        assert_int_equal(b.wrote, MIB);
        assert_int_equal(b.read, MIB);
        assert_memory_equal(b.data, b.back, MIB);
        aloop_stream_close(b.w);
        aloop_stream_close(b.r);
        aloop_free(loop);
        free(b.data);
        free(b.back);
    }
}

#define LINES 1000
static void *line_writer(void *arg) {
    aloop_stream_t *s = arg;
    char line[64];
    for (int i = 0; i < LINES; i++) {
        int n = snprintf(line, sizeof line, "line %d %.*s\n", i, i % 40, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
        if (aloop_stream_write(s, line, (size_t)n) != n) return (void *)1;
    }
    shutdown(aloop_stream_fd(s), SHUT_WR);
    return NULL;
}

static void *line_reader(void *arg) {
    aloop_stream_t *s = arg;
    char line[64], want[64];
    for (int i = 0; i < LINES; i++) {
        int n = snprintf(want, sizeof want, "line %d %.*s\n", i, i % 40, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
        if (aloop_stream_readline(s, line, sizeof line) != n || strcmp(line, want) != 0)
            return (void *)1;
    }
    return aloop_stream_readline(s, line, sizeof line) == 0 ? NULL : (void *)1; /* EOF */
}

static void test_benign_readlines(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        int sv[2];
        socket_pair(sv);
        aloop_t *loop = sim_loop(seed, ALOOP_SIM_BENIGN, 0.5);
        aloop_stream_t *w = aloop_stream_new(loop, sv[0], 0), *r = aloop_stream_new(loop, sv[1], 0);
        assert_non_null(w);
        assert_non_null(r);
        aloop_task_t *tw = spawn(loop, line_writer, w), *tr = spawn(loop, line_reader, r);
        assert_int_equal(aloop_run(loop), 0);
        void *rw, *rr;
        assert_int_equal(aloop_future_result(tw, &rw), 0);
        assert_int_equal(aloop_future_result(tr, &rr), 0);
        assert_null(rw);
        assert_null(rr);
        aloop_release(tw);
        aloop_release(tr);
        aloop_stream_close(w);
        aloop_stream_close(r);
        aloop_free(loop);
    }
}

/* TCP over loopback: a server accepts NCONN connections and answers each
 * request line with its reverse; clients connect, ask, check. */
#define NCONN 16
typedef struct tcp_ctx {
    int lfd;
    char port[16];
    int served, ok;
} tcp_ctx_t;

static void reverse(char *s, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        char c = s[i];
        s[i] = s[n - 1 - i];
        s[n - 1 - i] = c;
    }
}

static void *tcp_session(void *arg) {
    tcp_ctx_t *c = *(tcp_ctx_t **)arg;
    int fd = ((int *)arg)[sizeof(tcp_ctx_t *) / sizeof(int)];
    free(arg);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0);
    if (!s) return NULL;
    char line[256];
    ssize_t n = aloop_stream_readline(s, line, sizeof line);
    if (n > 1) {
        reverse(line, (size_t)n - 1);
        if (aloop_stream_write(s, line, (size_t)n) == n) c->served++;
    }
    aloop_stream_close(s);
    return NULL;
}

static void *tcp_server(void *arg) {
    tcp_ctx_t *c = arg;
    aloop_task_t *ts[NCONN];
    for (int i = 0; i < NCONN; i++) {
        int fd = aloop_accept(c->lfd, NULL, NULL);
        assert_true(fd >= 0);
        void *blob = malloc(sizeof(tcp_ctx_t *) + sizeof(int));
        assert_non_null(blob);
        *(tcp_ctx_t **)blob = c;
        ((int *)blob)[sizeof(tcp_ctx_t *) / sizeof(int)] = fd;
        ts[i] = spawn(aloop_current(), tcp_session, blob);
    }
    aloop_gather(ts, NCONN, NULL, NULL, 0);
    for (int i = 0; i < NCONN; i++) aloop_release(ts[i]);
    return NULL;
}

static void *tcp_client(void *arg) {
    tcp_ctx_t *c = arg;
    aloop_stream_t *s;
    if (aloop_open_connection("127.0.0.1", c->port, -1, &s) < 0) return NULL;
    char req[200], want[200], back[200];
    int n = snprintf(req, sizeof req, "request %p %d\n", (void *)s, c->ok * 7919);
    memcpy(want, req, (size_t)n);
    reverse(want, (size_t)n - 1);
    if (aloop_stream_write(s, req, (size_t)n) == n &&
        aloop_stream_readline(s, back, sizeof back) == n && memcmp(back, want, (size_t)n) == 0)
        c->ok++;
    aloop_stream_close(s);
    return NULL;
}

static void tcp_round(aloop_t *loop, tcp_ctx_t *c) {
    c->lfd = aloop_tcp_listen("127.0.0.1", "0", 64);
    assert_true(c->lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(c->port, sizeof c->port, "%d", ntohs(sin.sin_port));
    aloop_task_t *ts[NCONN + 1];
    ts[0] = spawn(loop, tcp_server, c);
    for (int i = 1; i <= NCONN; i++) ts[i] = spawn(loop, tcp_client, c);
    for (int i = 0; i <= NCONN; i++) aloop_run_until_complete(loop, ts[i]);
    for (int i = 0; i <= NCONN; i++) aloop_release(ts[i]);
    aloop_close(c->lfd);
}

static void test_benign_tcp_accept_connect(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        aloop_t *loop = sim_loop(seed, ALOOP_SIM_BENIGN, 0.5);
        tcp_ctx_t c = {0};
        tcp_round(loop, &c);
        assert_int_equal(c.served, NCONN);
        assert_int_equal(c.ok, NCONN);
        aloop_free(loop);
    }
}

/* A child (cat) fed 256 KiB: communicate returns every byte, in order. */
typedef struct comm {
    unsigned char *in;
    size_t inlen;
    char *out;
    size_t outlen;
    int status, rc;
} comm_t;

static void *comm_task(void *arg) {
    comm_t *c = arg;
    char *argv[] = {"cat", NULL};
    aloop_process_opts_t opts = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, &opts);
    if (!p) {
        c->rc = -errno;
        return NULL;
    }
    c->rc = aloop_process_communicate(p, c->in, c->inlen, &c->out, &c->outlen, NULL, NULL,
                                      &c->status);
    aloop_process_free(p);
    return NULL;
}

static void test_benign_communicate(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        aloop_t *loop = sim_loop(seed, ALOOP_SIM_BENIGN, 0.5);
        comm_t c = {.inlen = 256 * 1024};
        assert_non_null(c.in = malloc(c.inlen));
        fill(c.in, c.inlen, 99);
        aloop_task_t *t = spawn(loop, comm_task, &c);
        run_and_release(loop, &t, 1);
        assert_int_equal(c.rc, 0);
        assert_true(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
        assert_int_equal(c.outlen, c.inlen);
        assert_memory_equal(c.out, c.in, c.inlen);
        free(c.out);
        free(c.in);
        aloop_free(loop);
    }
}

/* aloop_copy from a socket (peek, write, take) under EINTR: byte-exact.
 * An interrupted peek is retried; it does not end the copy with -EINTR. */
typedef struct copy_ctx {
    int src[2], dst[2];
    unsigned char *data, *back;
    size_t copied, got;
    int rc;
} copy_ctx_t;

#define COPY_BYTES (64 * 1024)
static void *copy_feeder(void *arg) {
    copy_ctx_t *c = arg;
    if (aloop_write_all(c->src[0], c->data, COPY_BYTES) != COPY_BYTES) return (void *)1;
    shutdown(c->src[0], SHUT_WR);
    return NULL;
}
static void *copy_copier(void *arg) {
    copy_ctx_t *c = arg;
    c->rc = aloop_copy(c->dst[0], c->src[1], 0, &c->copied);
    shutdown(c->dst[0], SHUT_WR);
    return NULL;
}
static void *copy_drain(void *arg) {
    copy_ctx_t *c = arg;
    ssize_t n;
    while (c->got < COPY_BYTES && (n = aloop_read(c->dst[1], c->back + c->got, COPY_BYTES - c->got)) > 0)
        c->got += (size_t)n;
    return NULL;
}

static void test_benign_copy_socket_to_socket(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        copy_ctx_t c = {.data = malloc(COPY_BYTES), .back = calloc(1, COPY_BYTES)};
        assert_non_null(c.data);
        assert_non_null(c.back);
        fill(c.data, COPY_BYTES, 5);
        socket_pair(c.src);
        socket_pair(c.dst);
        aloop_t *loop = sim_loop(seed, ALOOP_SIM_BENIGN, 0.5);
        aloop_task_t *ts[3] = {spawn(loop, copy_feeder, &c), spawn(loop, copy_copier, &c),
                               spawn(loop, copy_drain, &c)};
        run_and_release(loop, ts, 3);
        aloop_free(loop);
        assert_int_equal(c.rc, 0);
        assert_int_equal(c.copied, COPY_BYTES);
        assert_int_equal(c.got, COPY_BYTES);
        assert_memory_equal(c.data, c.back, COPY_BYTES);
        for (int i = 0; i < 2; i++) {
            close(c.src[i]);
            close(c.dst[i]);
        }
        free(c.data);
        free(c.back);
    }
}

/* ---- hard faults: errors, never a crash or a hang */

/* Many echo sessions over socketpairs under reset or enomem: every call
 * either works or returns a negative errno, every task ends, and bytes that
 * do arrive are the ones sent (no connection sees another's data). */
#define HARD_PAIRS 8
typedef struct hard {
    int sv[2];
    unsigned salt;
    int corrupt, errors;
    int odd;            /* errors other than the faults' own (see hard_error) */
} hard_t;

/* An error a hard fault may cause: the reset itself (ECONNRESET, EPIPE),
 * a failed allocation (ENOMEM), or what the peer's end gives after it. */
static void hard_error(hard_t *h, ssize_t err) {
    h->errors++;
    if (err != -ECONNRESET && err != -EPIPE && err != -ENOMEM) h->odd++;
}

static void *hard_session(hard_t *h);

static void *hard_client(void *arg) {
    hard_session(arg);
    return NULL;
}

/* However the client ended (even without a first step: no stack), the
 * echo task must not wait for ever. */
static void hard_client_done(aloop_future_t *f, void *arg) {
    (void)f;
    shutdown(((hard_t *)arg)->sv[0], SHUT_RDWR);
}

static void *hard_session(hard_t *h) {
    unsigned char out[3000], in[3000];
    for (int i = 0; i < 20; i++) {
        size_t n = (size_t)(i * 131 % 2900) + 1;
        fill(out, n, h->salt + (unsigned)i);
        ssize_t w = aloop_write_all(h->sv[0], out, n);
        if (w < 0) {
            hard_error(h, w);
            return NULL;
        }
        assert_int_equal(w, (ssize_t)n);
        for (size_t got = 0; got < n;) {
            ssize_t r = aloop_read(h->sv[0], in + got, n - got);
            if (r <= 0) {
                if (r < 0) hard_error(h, r);
                return NULL;
            }
            if (memcmp(in + got, out + got, (size_t)r) != 0) h->corrupt++;
            got += (size_t)r;
        }
    }
    return NULL;
}

static void *hard_echo(void *arg) {
    hard_t *h = arg;
    char buf[1024];
    for (;;) {
        ssize_t r = aloop_read(h->sv[1], buf, sizeof buf);
        if (r < 0) hard_error(h, r);
        if (r <= 0) break;
        ssize_t w = aloop_write_all(h->sv[1], buf, (size_t)r);
        if (w < 0) hard_error(h, w);
        if (w != r) break;
    }
    return NULL;
}

static void hard_echo_done(aloop_future_t *f, void *arg) {
    (void)f;
    shutdown(((hard_t *)arg)->sv[1], SHUT_RDWR);
}

static int hard_round(uint64_t seed, unsigned faults, double rate) {
    hard_t h[HARD_PAIRS];
    aloop_t *loop = sim_loop(seed, faults, rate);
    aloop_set_warning_handler(loop, keep_warning, &(warnings_t){{0}, 0});
    aloop_task_t *ts[2 * HARD_PAIRS];
    size_t nt = 0;
    int errors = 0; /* calls, spawns and tasks that failed */
    for (int i = 0; i < HARD_PAIRS; i++) {
        h[i] = (hard_t){.salt = (unsigned)i * 1000u};
        socket_pair(h[i].sv);
        aloop_task_t *a = aloop_spawn(loop, hard_client, &h[i]);
        aloop_task_t *b = aloop_spawn(loop, hard_echo, &h[i]);
        if (a) ts[nt++] = a;
        if (a) assert_int_equal(aloop_future_add_done_callback(a, hard_client_done, &h[i]), 0);
        if (b) ts[nt++] = b;
        if (b) assert_int_equal(aloop_future_add_done_callback(b, hard_echo_done, &h[i]), 0);
        if (!a || !b) assert_int_equal(errno, ENOMEM); /* only enomem may refuse */
        errors += !a + !b;
    }
    int rc = aloop_run(loop);
    assert_int_equal(rc, 0); /* everything ended: no hang, no deadlock */
    for (size_t i = 0; i < nt; i++) {
        assert_true(aloop_future_done(ts[i]));
        int err = aloop_future_result(ts[i], NULL);
        assert_true(err == 0 || err == -ENOMEM);
        errors += err != 0;
        aloop_release(ts[i]);
    }
    for (int i = 0; i < HARD_PAIRS; i++) {
        assert_int_equal(h[i].corrupt, 0);
        assert_int_equal(h[i].odd, 0); /* a negative errno, and the fault's own */
        errors += h[i].errors;
        close(h[i].sv[0]);
        close(h[i].sv[1]);
    }
    aloop_free(loop);
    return errors;
}

static void test_hard_faults_reset(void **state) {
    (void)state;
    int errors = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) errors += hard_round(seed, ALOOP_SIM_RESET, 0.02);
    assert_true(errors > 0); /* resets did happen, and came back as errors */
}

static void test_hard_faults_enomem(void **state) {
    (void)state;
    int errors = 0;
    for (uint64_t seed = 1; seed <= 5; seed++)
        errors += hard_round(seed, ALOOP_SIM_ENOMEM | ALOOP_SIM_BENIGN, 0.05);
    assert_true(errors > 0); /* allocations did fail, and were refused with ENOMEM */
}

/* ---- the replay line */

static void *failing(void *arg) {
    (void)arg;
    return aloop_fail(-EPROTO);
}

static void *cancelled(void *arg) {
    (void)arg;
    aloop_sleep(10);
    return NULL;
}

static void test_failed_task_prints_replay_line(void **state) {
    (void)state;
    warnings_t w = {{0}, 0};
    aloop_t *loop = sim_loop(77, ALOOP_SIM_SHORT_IO | ALOOP_SIM_EINTR, 0.25);
    aloop_set_warning_handler(loop, keep_warning, &w);
    aloop_task_t *c = spawn(loop, cancelled, NULL);
    aloop_call_later(loop, 1, cancel_cb, c);
    aloop_run_until_complete(loop, c);
    assert_int_equal(w.count, 0); /* a cancel is no failure */
    aloop_task_t *ts[2] = {spawn(loop, failing, NULL), spawn(loop, failing, NULL)};
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(w.count, 1); /* once per loop */
    assert_non_null(strstr(w.text, "failed: "));
    assert_non_null(strstr(w.text, "replay: ALOOP_SIM=77:short,eintr:0.25\n"));
    aloop_release(c);
    aloop_release(ts[0]);
    aloop_release(ts[1]);
    aloop_free(loop);

    /* not simulated: nothing */
    unsetenv("ALOOP_SIM");
    memset(&w, 0, sizeof w);
    loop = vloop();
    aloop_set_warning_handler(loop, keep_warning, &w);
    aloop_task_t *t = spawn(loop, failing, NULL);
    aloop_run(loop);
    assert_int_equal(w.count, 0);
    aloop_release(t);
    aloop_free(loop);
}

/* A misuse that aborts in debug mode prints the replay line first. */
static void *misuse_task(void *arg) {
    aloop_run(arg); /* re-entering the running loop */
    return NULL;
}

static void test_debug_abort_prints_replay_line(void **state) {
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .flags = ALOOP_DEBUG,
                              .sim_seed = 5, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = 0.5};
        aloop_t *loop = aloop_new_with(&cfg);
        if (loop) aloop_spawn(loop, misuse_task, loop);
        if (loop) aloop_run(loop);
        _exit(0);
    }
    close(pfd[1]);
    char out[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(pfd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_non_null(strstr(out, "replay: ALOOP_SIM=5:benign:0.5"));
}

/* ---- the end-to-end demo: simulation finds a planted bug */

/* A request/response protocol over loopback TCP: a request is a 4-byte
 * big-endian length and a body; the response is the body's checksum as a
 * line. The client's send_request has the planted bug: it sends with one
 * aloop_sendto call and ignores a short count (no short-write loop). On a
 * real loopback a few hundred bytes always go in one piece, so tests
 * without simulation never see it; with short writes the server waits for
 * bytes that never come, and the client's deadline fails the task. */
#define DEMO_REQUESTS 8
typedef struct demo {
    int lfd;
    char port[16];
    trace_t trace;
} demo_t;

static int send_request(int fd, const unsigned char *body, uint32_t len) {
    unsigned char msg[600];
    msg[0] = (unsigned char)(len >> 24);
    msg[1] = (unsigned char)(len >> 16);
    msg[2] = (unsigned char)(len >> 8);
    msg[3] = (unsigned char)len;
    memcpy(msg + 4, body, len);
    ssize_t n = aloop_sendto(fd, msg, 4 + len, NULL, 0); /* BUG: n may be short */
    return n < 0 ? (int)n : 0;
}

static void *demo_serve_one(void *arg) {
    demo_t *d = arg;
    int fd = aloop_accept(d->lfd, NULL, NULL);
    if (fd < 0) return aloop_fail(fd);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0);
    if (!s) return aloop_fail(-ENOMEM);
    for (int i = 0; i < DEMO_REQUESTS; i++) {
        unsigned char hdr[4], body[600];
        if (aloop_stream_readexactly(s, hdr, 4) != 4) break;
        uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        if (len > sizeof body || aloop_stream_readexactly(s, body, len) != (ssize_t)len) break;
        unsigned sum = 0;
        for (uint32_t k = 0; k < len; k++) sum = sum * 31 + body[k];
        char line[32];
        int n = snprintf(line, sizeof line, "%u\n", sum);
        trace_add(&d->trace, "server answered %d (%u bytes)\n", i, len);
        if (aloop_stream_write(s, line, (size_t)n) != n) break;
    }
    aloop_stream_close(s);
    return NULL;
}

static void *demo_client_body(void *arg) {
    demo_t *d = arg;
    int fd = aloop_tcp_connect("127.0.0.1", d->port, -1);
    if (fd < 0) return aloop_fail(fd);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0);
    if (!s) return aloop_fail(-ENOMEM);
    int rc = 0;
    for (int i = 0; i < DEMO_REQUESTS && rc == 0; i++) {
        unsigned char body[600];
        uint32_t len = 100 + (uint32_t)i * 57;
        fill(body, len, (unsigned)i);
        unsigned sum = 0;
        for (uint32_t k = 0; k < len; k++) sum = sum * 31 + body[k];
        char line[32], want[32];
        snprintf(want, sizeof want, "%u\n", sum);
        if ((rc = send_request(fd, body, len)) < 0) break;
        ssize_t n = aloop_stream_readline(s, line, sizeof line);
        trace_add(&d->trace, "client got %zd for %d\n", n, i);
        if (n <= 0 || strcmp(line, want) != 0) rc = n < 0 ? (int)n : -EPROTO;
    }
    aloop_stream_close(s);
    return rc ? aloop_fail(rc) : NULL;
}

/* The client, under a 10 s deadline (virtual time: free). */
static void *demo_client(void *arg) {
    aloop_task_t *t = aloop_spawn(aloop_current(), demo_client_body, arg);
    if (!t) return aloop_fail(-ENOMEM);
    int rc = aloop_wait_for(t, 10, NULL);
    aloop_release(t);
    return rc ? aloop_fail(rc) : NULL;
}

/* One run of the protocol; cfg NULL: simulation from the environment. 0 if
 * every request was answered, else the client's error. */
static int demo_run(const aloop_config_t *cfg, demo_t *d, warnings_t *w) {
    memset(d, 0, sizeof *d);
    aloop_config_t env_cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(cfg ? cfg : &env_cfg);
    assert_non_null(loop);
    aloop_set_warning_handler(loop, keep_warning, w);
    d->lfd = aloop_tcp_listen("127.0.0.1", "0", 8);
    assert_true(d->lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(d->lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(d->port, sizeof d->port, "%d", ntohs(sin.sin_port));
    aloop_task_t *srv = spawn(loop, demo_serve_one, d), *cli = spawn(loop, demo_client, d);
    aloop_run_until_complete(loop, cli);
    int rc = aloop_future_result(cli, NULL);
    aloop_cancel(srv);
    aloop_run(loop);
    aloop_release(srv);
    aloop_release(cli);
    aloop_close(d->lfd);
    aloop_free(loop);
    return rc;
}

#define DEMO_SEEDS 64
static void test_demo_simulation_finds_planted_bug(void **state) {
    (void)state;
    static demo_t d, again;
    warnings_t w = {{0}, 0};
    unsetenv("ALOOP_SIM");
    /* Without simulation the bug never shows. */
    assert_int_equal(demo_run(NULL, &d, &w), 0);
    assert_int_equal(w.count, 0);
    /* With short writes it shows within a bounded number of seeds. */
    uint64_t seed;
    int rc = 0;
    for (seed = 1; seed <= DEMO_SEEDS; seed++) {
        memset(&w, 0, sizeof w);
        aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .sim_seed = seed,
                              .sim_faults = ALOOP_SIM_SHORT_IO, .sim_rate = 0.1};
        if ((rc = demo_run(&cfg, &d, &w)) != 0) break;
    }
    assert_true(seed <= DEMO_SEEDS);
    assert_int_equal(rc, -ETIMEDOUT); /* the server waited for the rest */
    print_message("planted bug found at seed %llu: %s", (unsigned long long)seed, w.text);
    const char *line = strstr(w.text, "replay: ALOOP_SIM=");
    assert_non_null(line);
    char spec[128];
    assert_int_equal(sscanf(line, "replay: ALOOP_SIM=%127s", spec), 1);
    /* The printed line alone reproduces it: same failure, same events. */
    setenv("ALOOP_SIM", spec, 1);
    warnings_t w2 = {{0}, 0};
    assert_int_equal(demo_run(NULL, &again, &w2), rc);
    unsetenv("ALOOP_SIM");
    assert_true(d.trace.len > 0 && d.trace.len == again.trace.len);
    assert_memory_equal(d.trace.text, again.trace.text, d.trace.len);
    assert_non_null(strstr(w2.text, spec));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_seed),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_same_seed_same_trace),
        cmocka_unit_test(test_benign_mib_write_all_readexactly),
        cmocka_unit_test(test_benign_readlines),
        cmocka_unit_test(test_benign_tcp_accept_connect),
        cmocka_unit_test(test_benign_communicate),
        cmocka_unit_test(test_benign_copy_socket_to_socket),
        cmocka_unit_test(test_hard_faults_reset),
        cmocka_unit_test(test_hard_faults_enomem),
        cmocka_unit_test(test_failed_task_prints_replay_line),
        cmocka_unit_test(test_debug_abort_prints_replay_line),
        cmocka_unit_test(test_demo_simulation_finds_planted_bug),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

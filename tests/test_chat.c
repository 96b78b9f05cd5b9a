/*
 * test_chat.c - drives the real examples/chat server over loopback.
 *
 * Each test starts the built binary on an ephemeral port (--port 0; the
 * server prints "listening on 127.0.0.1:PORT"), talks to it with plain
 * blocking sockets that have receive/send timeouts (so a missing line fails
 * the test instead of hanging it), and finally sends SIGTERM and checks the
 * server exits with status 0. A teardown kills a server left behind by a
 * failed assertion.
 */
#include "aloop_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifndef CHAT_BIN /* built without the examples: main() skips everything */
#define CHAT_BIN ""
#define CHAT_BIN_MISSING 1
#endif

#define IO_TIMEOUT_MS 5000
#define LINE_MAX_TEST 4096

/* ------------------------------------------------------------------------ */
/* The server process                                                       */
/* ------------------------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int out_fd; /* its stdout; kept open so a late write cannot SIGPIPE it */
    int port;
} server_t;

static server_t srv = {.pid = -1, .out_fd = -1};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts CHAT_BIN --port 0 plus args (NULL-terminated) and waits for its
 * "listening on 127.0.0.1:PORT" line. */
static void server_start(const char *arg, ...) {
    const char *argv[32] = {CHAT_BIN, "--port", "0"};
    int argc = 3;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *)) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
#endif
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execv(CHAT_BIN, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    srv.pid = pid;
    srv.out_fd = out[0];

    char buf[256];
    size_t len = 0;
    while (!memchr(buf, '\n', len)) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(out[0], buf + len, sizeof buf - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
    }
    buf[len] = '\0';
    assert_int_equal(sscanf(buf, "listening on 127.0.0.1:%d", &srv.port), 1);
    assert_true(srv.port > 0);
}

/* Sends signo and waits (bounded) for a clean exit with status 0. */
static void server_stop_with(int signo) {
    assert_int_equal(kill(srv.pid, signo), 0);
    int status = 0;
    double deadline = now_s() + 30;
    pid_t r;
    while ((r = waitpid(srv.pid, &status, WNOHANG)) == 0 && now_s() < deadline) usleep(10000);
    assert_int_equal(r, srv.pid);
    srv.pid = -1;
    close(srv.out_fd);
    srv.out_fd = -1;
    if (WIFSIGNALED(status)) fail_msg("server killed by signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void server_stop(void) { server_stop_with(SIGTERM); }

static int teardown_server(void **state) {
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        waitpid(srv.pid, NULL, 0);
        srv.pid = -1;
    }
    if (srv.out_fd >= 0) close(srv.out_fd);
    srv.out_fd = -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Clients: blocking sockets with timeouts, line buffered                   */
/* ------------------------------------------------------------------------ */

typedef struct client {
    int fd;
    size_t len;
    char buf[LINE_MAX_TEST];
} client_t;

static void set_timeouts(int fd, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* rcvbuf > 0 shrinks the receive buffer before connecting (a slow reader). */
static int connect_fd(int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    set_timeouts(fd, IO_TIMEOUT_MS);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static client_t *client_connect(void) {
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = connect_fd(0);
    return c;
}

static void client_close(client_t *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c);
}

/* Takes one complete line (without '\n') out of the buffer: its length, or -1. */
static ssize_t take_line(client_t *c, char *out, size_t cap) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl) return -1;
    size_t n = (size_t)(nl - c->buf);
    assert_true(n < cap);
    memcpy(out, c->buf, n);
    out[n] = '\0';
    c->len -= n + 1;
    memmove(c->buf, nl + 1, c->len);
    return (ssize_t)n;
}

/* Next line, waiting up to IO_TIMEOUT_MS: its length, -1 at EOF or
 * timeout. Works on sockets and pipes alike. */
static ssize_t client_line(client_t *c, char *out, size_t cap) {
    for (;;) {
        ssize_t n = take_line(c, out, cap);
        if (n >= 0) return n;
        assert_true(c->len < sizeof c->buf); /* a line longer than the test buffer */
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, IO_TIMEOUT_MS) != 1) return -1;
        n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n <= 0) return -1;
        c->len += (size_t)n;
    }
}

/* A line longer than the line buffer, malloc'd (without '\n'). */
static char *client_long_line(client_t *c, size_t cap) {
    char *s = malloc(cap);
    assert_non_null(s);
    size_t len = c->len;
    memcpy(s, c->buf, len);
    c->len = 0;
    char *nl;
    while (!(nl = memchr(s, '\n', len))) {
        assert_true(len < cap);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, IO_TIMEOUT_MS), 1);
        ssize_t n = read(c->fd, s + len, cap - len);
        assert_true(n > 0);
        len += (size_t)n;
    }
    assert_true(nl == s + len - 1); /* nothing else was due after it */
    *nl = '\0';
    return s;
}

static void client_expect(client_t *c, const char *want) {
    char line[LINE_MAX_TEST];
    ssize_t n = client_line(c, line, sizeof line);
    if (n < 0) fail_msg("expected \"%s\", got EOF or timeout", want);
    assert_string_equal(line, want);
}

static void client_expect_prefix(client_t *c, const char *prefix) {
    char line[LINE_MAX_TEST];
    ssize_t n = client_line(c, line, sizeof line);
    if (n < 0) fail_msg("expected \"%s...\", got EOF or timeout", prefix);
    if (strncmp(line, prefix, strlen(prefix)) != 0)
        fail_msg("expected \"%s...\", got \"%s\"", prefix, line);
}

/* The server closes the connection (after any remaining lines, which are
 * skipped). Fails if it stays open past the timeout. */
static void client_expect_eof(client_t *c) {
    c->len = 0;
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return;
        if (n < 0) fail_msg("connection still open: %s", strerror(errno));
    }
}

static void client_send(client_t *c, const char *fmt, ...) {
    char line[LINE_MAX_TEST];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof line);
    assert_int_equal(send(c->fd, line, (size_t)n, MSG_NOSIGNAL), n);
}

#define PROMPT "Welcome to aloop chat! Pick a name (1-16 letters, digits, '_' or '-'):"
#define INVALID "* invalid name, use 1-16 letters, digits, '_' or '-':"

/* Connects and picks name; checks the welcome, which counts online users. */
static client_t *client_join(const char *name, int online) {
    client_t *c = client_connect();
    client_expect(c, PROMPT);
    client_send(c, "%s\n", name);
    char want[128];
    snprintf(want, sizeof want, "* welcome %s (%d online; /who lists them, /quit leaves)", name,
             online);
    client_expect(c, want);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_names_broadcast_and_commands(void **state) {
    (void)state;
    server_start("--bot-interval", "0", NULL);
    client_t *alice = client_join("alice", 1);

    client_t *bob = client_connect();
    client_expect(bob, PROMPT);
    const char *bad[] = {"", "two words", "bot", "BOT", "abcdefghijklmnopq", "semi;colon"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client_send(bob, "%s\n", bad[i]);
        client_expect(bob, INVALID);
    }
    client_send(bob, "ALICE\r\n"); /* names are unique regardless of case; telnet's \r\n */
    client_expect(bob, "* name 'ALICE' is taken, pick another:");
    client_send(bob, "bob\r\n");
    client_expect(bob, "* welcome bob (2 online; /who lists them, /quit leaves)");
    client_expect(alice, "* bob joined");

    client_send(alice, "hello, room\n");
    client_expect(bob, "alice: hello, room");
    client_send(bob, "hi alice\r\n");
    client_expect(alice, "bob: hi alice"); /* and alice got no echo of her own line */
    client_send(bob, "\n");                /* empty lines are ignored */
    client_send(bob, "/who\n");
    client_expect(bob, "* online (2): bob, alice");
    client_send(bob, "/nope\n");
    client_expect(bob, "* unknown command /nope (try /who or /quit)");
    client_send(alice, "tab\there\x1b[2J\n"); /* control bytes cannot reach other screens */
    client_expect(bob, "alice: tab?here?[2J");
    /* C1 too: raw (8-bit CSI) and UTF-8 encoded (CSI, OSC, C1 range ends),
     * while real UTF-8 text passes, continuation bytes 0x80-0x9f included */
    client_send(alice, "%s\n", "a\x9b" "2J b\xc2\x9b" "1m c\xc2\x9d" "0;t\x07 d\xc2\x80\xc2\x9f e\xc2\xa0"
                                " caf\xc3\xa9 \xe2\x82\xac \xe0\x82\x9b" "x");
    client_expect(bob, "alice: a?2J b??1m c??0;t? d???? e\xc2\xa0 caf\xc3\xa9 \xe2\x82\xac \xe0??x");

    client_t *carol = client_join("carol_3-x", 3);
    client_expect(alice, "* carol_3-x joined");
    client_expect(bob, "* carol_3-x joined");

    client_send(bob, "/quit\n");
    client_expect(bob, "* bye bob");
    client_expect_eof(bob);
    client_expect(alice, "* bob left");
    client_expect(carol, "* bob left");
    client_send(carol, "/who\n");
    client_expect(carol, "* online (2): carol_3-x, alice");

    client_close(alice);
    client_close(bob);
    client_close(carol);
    server_stop();
}

static void test_abrupt_disconnect(void **state) {
    (void)state;
    server_start("--bot-interval", "0", NULL);
    client_t *alice = client_join("alice", 1);
    client_t *bob = client_join("bob", 2);
    client_expect(alice, "* bob joined");

    /* A connection that vanishes before picking a name: nobody hears of it. */
    client_t *ghost = client_connect();
    client_expect(ghost, PROMPT);
    client_close(ghost);

    /* bob's connection is reset (RST), no /quit. */
    struct linger lg = {1, 0};
    setsockopt(bob->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(bob);
    client_expect(alice, "* bob left");

    /* The name is free again, and the room works on. */
    bob = client_join("bob", 2);
    client_expect(alice, "* bob joined");
    client_send(bob, "back\n");
    client_expect(alice, "bob: back");
    client_close(alice);
    client_close(bob);
    server_stop_with(SIGINT);
}

static void test_overlong_line(void **state) {
    (void)state;
    server_start("--bot-interval", "0", "--max-line", "64", NULL);
    char longline[300];
    memset(longline, 'x', 200);
    longline[200] = '\0';

    client_t *alice = client_connect();
    client_expect(alice, PROMPT);
    client_send(alice, "%s\n", longline); /* too long even as a name */
    client_expect(alice, "* line too long (max 64 bytes), ignored");
    client_send(alice, "alice\n");
    client_expect_prefix(alice, "* welcome alice (1 online");
    client_t *bob = client_join("bob", 2);
    client_expect(alice, "* bob joined");

    client_send(alice, "%s\n", longline);
    client_expect(alice, "* line too long (max 64 bytes), ignored");
    client_send(alice, "still here\n"); /* the connection stays usable */
    client_expect(bob, "alice: still here");

    /* 63 characters + '\n' = 64 bytes: just fits. */
    memset(longline, 'y', 63);
    longline[63] = '\0';
    client_send(alice, "%s\n", longline);
    char want[sizeof longline + 16];
    snprintf(want, sizeof want, "alice: %s", longline);
    client_expect(bob, want);
    client_close(alice);
    client_close(bob);
    server_stop();
}

static void test_bot_posts_quotes(void **state) {
    (void)state;
    server_start("--bot-interval", "0.2", NULL);
    client_t *alice = client_join("alice", 1);
    client_expect_prefix(alice, "bot: ");
    client_expect_prefix(alice, "bot: ");
    client_close(alice);
    server_stop();
}

static void test_name_timeout(void **state) {
    (void)state;
    server_start("--bot-interval", "0", "--name-timeout", "0.3", NULL);
    client_t *alice = client_join("alice", 1); /* named in time: stays */
    client_t *idle = client_connect();
    client_expect(idle, PROMPT);
    client_expect(idle, "* no name given in time, bye");
    client_expect_eof(idle); /* the server has dropped it: /who cannot see it */
    client_send(alice, "/who\n");
    client_expect(alice, "* online (1): alice");
    client_close(idle);
    client_close(alice);
    server_stop();
}

static void test_shutdown_tells_everyone(void **state) {
    (void)state;
    server_start("--bot-interval", "0", NULL);
    client_t *alice = client_join("alice", 1);
    client_t *bob = client_join("bob", 2);
    client_expect(alice, "* bob joined");
    client_t *unnamed = client_connect();
    client_expect(unnamed, PROMPT);
    server_stop();
    client_expect(alice, "* server shutting down, bye");
    client_expect_eof(alice);
    client_expect(bob, "* server shutting down, bye");
    client_expect_eof(bob);
    client_expect(unnamed, "* server shutting down, bye");
    client_expect_eof(unnamed);
    client_close(alice);
    client_close(bob);
    client_close(unnamed);
}

/* Bursts of over-long lines that are already buffered when the server
 * accepts (it is stopped with SIGSTOP meanwhile; the kernel completes the
 * connections): each session could reject its whole burst in one step,
 * before its writer ever ran. The replies must be paced (or the client
 * dropped) and every connection close: once, such a client was dropped
 * with its writer cancelled before its first step, and the connection
 * stayed open for ever. The room works on. */
#define BURSTS 8
static void test_burst_before_writer_runs(void **state) {
    (void)state;
    server_start("--bot-interval", "0", "--max-line", "16", NULL);
    client_t *alice = client_join("alice", 1);
    static const char too_long[] = "far too long for sixteen\n";
    enum { LEN = sizeof too_long - 1 };
    char lines[200 * LEN + 1];
    for (int i = 0; i < 200; i++) memcpy(lines + LEN * i, too_long, LEN);
    lines[sizeof lines - 1] = '\0';
    client_t *burst[BURSTS];
    assert_int_equal(kill(srv.pid, SIGSTOP), 0);
    for (int i = 0; i < BURSTS; i++) {
        burst[i] = client_connect();
        ssize_t len = (ssize_t)strlen(lines);
        assert_int_equal(send(burst[i]->fd, lines, (size_t)len, MSG_NOSIGNAL), len);
        shutdown(burst[i]->fd, SHUT_WR);
    }
    assert_int_equal(kill(srv.pid, SIGCONT), 0);
    for (int i = 0; i < BURSTS; i++) {
        client_expect_eof(burst[i]);
        client_close(burst[i]);
    }
    client_send(alice, "/who\n");
    client_expect(alice, "* online (1): alice");
    client_close(alice);
    server_stop();
}

/* A client that never reads: once its socket buffers and its outbox are
 * full it is disconnected, and meanwhile the others get every message. */
static void test_client_that_never_reads(void **state) {
    (void)state;
    server_start("--bot-interval", "0", "--queue", "8", NULL);
    client_t *slow = calloc(1, sizeof *slow);
    assert_non_null(slow);
    slow->fd = connect_fd(4096);
    client_expect(slow, PROMPT);
    client_send(slow, "slow\n");
    client_expect_prefix(slow, "* welcome slow");
    client_t *alice = client_join("alice", 2);
    client_expect(slow, "* alice joined");
    client_t *bob = client_join("bob", 3);
    client_expect(alice, "* bob joined");
    /* From here on, slow reads nothing. */

    char pad[301];
    memset(pad, 'p', 300);
    pad[300] = '\0';
    int kicked = 0, sent;
    for (sent = 0; sent < 100000 && !kicked; sent++) {
        client_send(alice, "%d %s\n", sent, pad);
        char want[LINE_MAX_TEST], line[LINE_MAX_TEST];
        snprintf(want, sizeof want, "alice: %d %s", sent, pad);
        for (;;) { /* bob gets every message, maybe the notice first */
            assert_true(client_line(bob, line, sizeof line) >= 0);
            if (strcmp(line, "* slow was disconnected (too slow)") == 0) {
                kicked = 1;
                continue;
            }
            assert_string_equal(line, want);
            break;
        }
    }
    assert_true(kicked);
    assert_true(sent > 8); /* it took more than a queue's worth */
    client_expect(alice, "* slow was disconnected (too slow)");
    client_send(alice, "after\n");
    client_expect(bob, "alice: after");
    client_expect_eof(slow); /* after whatever the buffers held */
    print_message("slow client disconnected after %d messages of %zu bytes\n", sent,
                  strlen(pad) + 12);
    client_close(slow);
    client_close(alice);
    client_close(bob);
    server_stop();
}

/* examples/chat-client against the server: what is typed goes to the room,
 * what the room says is printed, end of input means /quit. */
static void test_chat_client(void **state) {
    (void)state;
#ifdef CHAT_CLIENT_BIN
    server_start("--bot-interval", "0", NULL);
    client_t *alice = client_join("alice", 1);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(CHAT_CLIENT_BIN, CHAT_CLIENT_BIN, "127.0.0.1", port, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    client_t *screen = calloc(1, sizeof *screen);
    assert_non_null(screen);
    screen->fd = out[0];

    client_expect(screen, PROMPT);
    assert_int_equal(write(in[1], "carl\nhi from carl\n", 18), 18);
    client_expect_prefix(screen, "* welcome carl (2 online");
    client_expect(alice, "* carl joined");
    client_expect(alice, "carl: hi from carl");
    client_send(alice, "hey carl\n");
    client_expect(screen, "alice: hey carl");
    close(in[1]); /* end of input: the client says /quit */
    client_expect(screen, "* bye carl");
    client_expect(alice, "* carl left");
    int status = 0;
    double deadline = now_s() + 10;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && now_s() < deadline) usleep(10000);
    if (r != pid) { /* do not leave it behind */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    assert_int_equal(r, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    client_close(screen);
    client_close(alice);
    server_stop();
#else
    skip();
#endif
}

/* ------------------------------------------------------------------------ */
/* 1,000 concurrent clients, every message to every client, nothing lost    */
/* ------------------------------------------------------------------------ */

#define MASS_N 1000

typedef struct mass {
    client_t *c;            /* MASS_N clients */
    unsigned char *seen;    /* seen[i * MASS_N + j]: i got j's message */
    int *joins;             /* join notices i got (j > i, in order) */
    int *msgs;              /* messages i got */
    long done, expected;    /* lines received / to receive */
} mass_t;

static void mass_line(mass_t *m, int i, const char *line) {
    int j, k;
    char tail[64];
    if (sscanf(line, "* u%d joined%63s", &j, tail) == 1) {
        if (j != i + 1 + m->joins[i]) fail_msg("client %d: join of u%04d out of order", i, j);
        m->joins[i]++;
    } else if (sscanf(line, "u%d: hello from u%d%63s", &j, &k, tail) == 2 && j == k) {
        if (j == i || j < 0 || j >= MASS_N || m->seen[(size_t)i * MASS_N + (size_t)j])
            fail_msg("client %d: unexpected \"%s\"", i, line);
        m->seen[(size_t)i * MASS_N + (size_t)j] = 1;
        m->msgs[i]++;
    } else {
        fail_msg("client %d: unexpected \"%s\"", i, line);
    }
    m->done++;
}

/* Reads whatever client i has, without blocking. */
static void mass_drain(mass_t *m, int i) {
    client_t *c = &m->c[i];
    char line[LINE_MAX_TEST];
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) fail_msg("client %d: connection lost (%s) after %d joins, %d messages", i, n ? strerror(errno) : "EOF", m->joins[i], m->msgs[i]);
        c->len += (size_t)n;
        while (take_line(c, line, sizeof line) >= 0) mass_line(m, i, line);
    }
}

/* The server's resident memory (Linux /proc; -1 elsewhere), for the log. */
static long server_rss_kib(void) {
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)srv.pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static int raise_fd_limit(rlim_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur >= want) return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) return -1;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

static void test_thousand_clients(void **state) {
    (void)state;
    if (raise_fd_limit(MASS_N + 256) != 0) {
        print_message("RLIMIT_NOFILE too low for %d clients\n", MASS_N);
        skip();
    }
    server_start("--bot-interval", "0", NULL); /* default --queue 64 */
    double t0 = now_s();
    mass_t m = {
        .c = calloc(MASS_N, sizeof(client_t)),
        .seen = calloc((size_t)MASS_N * MASS_N, 1),
        .joins = calloc(MASS_N, sizeof(int)),
        .msgs = calloc(MASS_N, sizeof(int)),
    };
    assert_true(m.c && m.seen && m.joins && m.msgs);

    /* Join one after another; earlier clients' join notices pile up in
     * their sockets meanwhile and are checked below. */
    char line[LINE_MAX_TEST], want[128];
    for (int i = 0; i < MASS_N; i++) {
        client_t *c = &m.c[i];
        c->fd = connect_fd(0);
        client_expect(c, PROMPT);
        client_send(c, "u%04d\n", i);
        assert_true(client_line(c, line, sizeof line) >= 0);
        snprintf(want, sizeof want, "* welcome u%04d (%d online;", i, i + 1);
        if (strncmp(line, want, strlen(want)) != 0) fail_msg("got \"%s\"", line);
    }
    double t_joined = now_s();

    /* Everyone says hello while everyone reads: each client must get the
     * join notices of those after it and the hello of every other one. */
    m.expected = (long)MASS_N * (MASS_N - 1) / 2 + (long)MASS_N * (MASS_N - 1);
    struct pollfd *pfd = calloc(MASS_N, sizeof *pfd);
    assert_non_null(pfd);
    for (int i = 0; i < MASS_N; i++) pfd[i] = (struct pollfd){.fd = m.c[i].fd, .events = POLLIN};
    int next_sender = 0;
    double deadline = now_s() + 60;
    while (m.done < m.expected) {
        if (now_s() > deadline) fail_msg("only %ld of %ld lines after 60 s", m.done, m.expected);
        for (int k = 0; k < 25 && next_sender < MASS_N; k++, next_sender++)
            client_send(&m.c[next_sender], "hello from u%04d\n", next_sender);
        int ready = poll(pfd, MASS_N, next_sender < MASS_N ? 0 : 200);
        assert_true(ready >= 0);
        for (int i = 0; i < MASS_N && ready > 0; i++) {
            if (!pfd[i].revents) continue;
            ready--;
            mass_drain(&m, i);
        }
    }
    double t_done = now_s();
    long rss_kib = server_rss_kib();
    for (int i = 0; i < MASS_N; i++) {
        assert_int_equal(m.joins[i], MASS_N - 1 - i);
        assert_int_equal(m.msgs[i], MASS_N - 1);
    }
    print_message("%d clients joined in %.2f s; %ld lines delivered in %.2f s; server RSS %ld KiB\n",
                  MASS_N, t_joined - t0, m.done, t_done - t_joined, rss_kib);

    /* /who lists all 1,000 (a line longer than the writer's batch). */
    client_send(&m.c[0], "/who\n");
    char *who = client_long_line(&m.c[0], 64 * 1024);
    assert_memory_equal(who, "* online (1000): ", 17);
    size_t commas = 0;
    for (char *p = who; *p; p++) commas += *p == ',';
    assert_int_equal(commas, MASS_N - 1);
    assert_non_null(strstr(who, ": u0999, u0998, "));     /* newest first */
    assert_string_equal(who + strlen(who) - 7, ", u0000");
    free(who);

    for (int i = 0; i < MASS_N; i++) close(m.c[i].fd);
    server_stop();
    free(pfd);
    free(m.c);
    free(m.seen);
    free(m.joins);
    free(m.msgs);
}

int main(void) {
#ifdef CHAT_BIN_MISSING
    puts("test_chat: built without the chat example; skipped");
    return 0;
#else
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_names_broadcast_and_commands, teardown_server),
        cmocka_unit_test_teardown(test_abrupt_disconnect, teardown_server),
        cmocka_unit_test_teardown(test_overlong_line, teardown_server),
        cmocka_unit_test_teardown(test_bot_posts_quotes, teardown_server),
        cmocka_unit_test_teardown(test_name_timeout, teardown_server),
        cmocka_unit_test_teardown(test_shutdown_tells_everyone, teardown_server),
        cmocka_unit_test_teardown(test_burst_before_writer_runs, teardown_server),
        cmocka_unit_test_teardown(test_client_that_never_reads, teardown_server),
        cmocka_unit_test_teardown(test_chat_client, teardown_server),
        cmocka_unit_test_teardown(test_thousand_clients, teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}

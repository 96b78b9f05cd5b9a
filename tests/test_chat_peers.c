/*
 * test_chat_peers.c - the chat server (examples/chat.c, run as a separate
 * process) against misbehaving peers and descriptor exhaustion:
 *
 *   - 10 MiB without a newline: rejected, memory stays flat, the sender and
 *     everyone else carry on;
 *   - a half-closed client: its last line is delivered, then it leaves, and
 *     it still reads everything the server had for it;
 *   - a client that never reads resets its connection while the server
 *     still has data for it: only that client goes;
 *   - 1,000 clients connecting and vanishing (some with a reset, some after
 *     half a name): no descriptor leaks, the room still works;
 *   - EMFILE (RLIMIT_NOFILE lowered for the server): the server keeps
 *     serving the connections it has, does not spin, and accepts again
 *     once descriptors free up.
 *
 * Plain blocking sockets with poll() timeouts on the test side; timeouts
 * only bound how long a failure takes to show.
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

#define WAIT_MS 10000 /* longest any expected answer may take */

/* ---- the server process */

static pid_t server_pid = -1;
static int server_out = -1, server_err = -1;
static int server_port;

static void server_start(rlim_t nofile) {
#ifdef CHAT_BIN
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (nofile) {
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = nofile;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) _exit(126);
        }
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        for (int fd = 3; fd < 64; fd++) close(fd);
        execl(CHAT_BIN, CHAT_BIN, "--port", "0", "--bot-interval", "0", "--name-timeout", "0",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    server_pid = pid;
    server_out = out[0];
    server_err = err[0];
    char buf[256] = "";
    size_t len = 0;
    while (!strchr(buf, '\n')) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        ssize_t n = read(out[0], buf + len, sizeof buf - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
        buf[len] = '\0';
    }
    assert_int_equal(sscanf(buf, "listening on 127.0.0.1:%d", &server_port), 1);
#else
    (void)nofile;
#endif
}

/* SIGTERM, then the server must exit 0 on its own. */
static void server_stop(void) {
    assert_int_equal(kill(server_pid, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(server_pid, &status, 0), server_pid);
    server_pid = -1;
    close(server_out);
    close(server_err);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int kill_server(void **state) {
    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        close(server_out);
        close(server_err);
        server_pid = -1;
    }
    return 0;
}

/* ---- /proc views of the server */

static int server_fds(void) {
    char path[64], link[256];
    int n = 0;
    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)server_pid, fd);
        if (readlink(path, link, sizeof link) >= 0) n++;
    }
    return n;
}

static long server_rss_kib(void) {
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static double server_cpu_seconds(void) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may contain spaces */
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                     &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- clients */

typedef struct client {
    int fd;
    size_t len;
    const char *watch[8]; /* texts to look out for: watched[i] once watch[i] arrived */
    int watched[8];
    char buf[16384];
} client_t;

static int tcp_connect_fd(int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

static void client_open(client_t *c, int rcvbuf) {
    c->fd = tcp_connect_fd(rcvbuf);
    c->len = 0;
    c->buf[0] = '\0';
}

/* One read (c->fd is readable): bytes read, 0 at EOF, < 0 on error. Keeps
 * only the tail of the text. */
static ssize_t client_read_some(client_t *c) {
    if (c->len > sizeof c->buf / 2) { /* keep the last quarter */
        memmove(c->buf, c->buf + c->len - sizeof c->buf / 4, sizeof c->buf / 4 + 1);
        c->len = sizeof c->buf / 4;
    }
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0) return n;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    /* Checked before the next read trims the buffer, which keeps more than
     * a needle's length: no occurrence is missed. */
    for (int i = 0; i < 8; i++)
        if (c->watch[i] && strstr(c->buf, c->watch[i])) c->watched[i] = 1;
    return n;
}

/* Waits up to ms for needle; 1 if seen. */
static int client_wait_for(client_t *c, const char *needle, int ms) {
    for (;;) {
        if (strstr(c->buf, needle)) return 1;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, ms) != 1) return 0;
        if (client_read_some(c) <= 0) return strstr(c->buf, needle) != NULL;
    }
}

static void client_expect(client_t *c, const char *needle) {
    if (!client_wait_for(c, needle, WAIT_MS))
        fail_msg("no \"%s\" from the server; got: \"%s\"", needle, c->buf);
}

static int client_watched_all(const client_t *c) {
    for (int i = 0; i < 8; i++)
        if (c->watch[i] && !c->watched[i]) return 0;
    return 1;
}

static void client_send(client_t *c, const char *text) {
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(c->fd, text + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

static void client_login(client_t *c, const char *name) {
    char line[64];
    client_open(c, 0);
    client_expect(c, "Pick a name");
    snprintf(line, sizeof line, "%s\n", name);
    client_send(c, line);
    snprintf(line, sizeof line, "* welcome %s", name);
    client_expect(c, line);
}

static void client_reset(client_t *c) { /* close with RST */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    c->fd = -1;
}

static void client_close(client_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* a says something, b must hear it. */
static void check_chat(client_t *a, const char *a_name, client_t *b, const char *text) {
    char line[256], heard[300];
    snprintf(line, sizeof line, "%s\n", text);
    snprintf(heard, sizeof heard, "%s: %s\n", a_name, text);
    client_send(a, line);
    client_expect(b, heard);
}

/* Logs in a client whose receive buffer is tiny and that never reads. */
static void silent_login(client_t *c, const char *name) {
    char line[64];
    c->fd = tcp_connect_fd(4096);
    client_expect(c, "Pick a name");
    snprintf(line, sizeof line, "%s\n", name);
    client_send(c, line);
    snprintf(line, sizeof line, "* welcome %s", name);
    client_expect(c, line);
}

static client_t *new_client(void) {
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = -1;
    return c;
}

/* ---- the tests */

static void test_ten_mib_without_newline(void **state) {
    (void)state;
    server_start(0);
    client_t *amy = new_client(), *bob = new_client();
    client_login(amy, "amy");
    client_login(bob, "bob");
    long rss0 = server_rss_kib();
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 160; i++) { /* 10 MiB, no '\n' */
        size_t off = 0;
        while (off < sizeof chunk) {
            ssize_t n = write(bob->fd, chunk + off, sizeof chunk - off);
            assert_true(n > 0);
            off += (size_t)n;
        }
    }
    client_send(bob, "\nstill talking\n");
    client_expect(bob, "* line too long");
    check_chat(bob, "bob", amy, "still talking");
    long rss1 = server_rss_kib();
    print_message("server RSS %ld KiB before, %ld KiB after 10 MiB without a newline\n", rss0,
                  rss1);
    assert_true(rss1 < rss0 + 4096); /* nothing like 10 MiB was buffered */
    check_chat(amy, "amy", bob, "glad you are back");
    client_close(amy);
    client_close(bob);
    server_stop();
    free(amy);
    free(bob);
}

static void test_half_closed_client(void **state) {
    (void)state;
    server_start(0);
    client_t *amy = new_client(), *cat = new_client();
    client_login(amy, "amy");
    client_login(cat, "cat");
    client_send(cat, "last words\n");
    shutdown(cat->fd, SHUT_WR); /* EOF for the server; cat still reads */
    client_expect(amy, "cat: last words\n");
    client_expect(amy, "* cat left");
    /* The server flushes what it had for cat, then closes: cat sees EOF. */
    struct pollfd p = {.fd = cat->fd, .events = POLLIN};
    char buf[4096];
    ssize_t n;
    do {
        assert_int_equal(poll(&p, 1, WAIT_MS), 1);
        n = read(cat->fd, buf, sizeof buf);
    } while (n > 0);
    assert_int_equal(n, 0);
    client_close(cat);
    client_close(amy);
    server_stop();
    free(amy);
    free(cat);
}

static void test_reset_in_the_middle_of_writes(void **state) {
    (void)state;
    server_start(0);
    client_t *amy = new_client(), *rex = new_client(), *dan = new_client();
    client_login(amy, "amy");
    rex->fd = tcp_connect_fd(4096); /* tiny receive buffer, and it never reads */
    client_expect(rex, "Pick a name");
    client_send(rex, "rex\n");
    client_expect(rex, "* welcome rex");
    client_expect(amy, "* rex joined");
    char line[450];
    memset(line, 'y', sizeof line - 2);
    line[sizeof line - 2] = '\n';
    line[sizeof line - 1] = '\0';
    for (int i = 0; i < 40; i++) client_send(amy, line); /* ~18 KB towards rex */
    client_reset(rex); /* RST while the server still has data for it */
    for (int i = 0; i < 40; i++) client_send(amy, line);
    if (!client_wait_for(amy, "* rex left", WAIT_MS) &&
        !strstr(amy->buf, "* rex was disconnected (too slow)"))
        fail_msg("rex never left; amy got: \"%s\"", amy->buf);
    client_login(dan, "dan");
    check_chat(amy, "amy", dan, "rex is gone");
    check_chat(dan, "dan", amy, "so it seems");
    client_close(amy);
    client_close(dan);
    server_stop();
    free(amy);
    free(rex);
    free(dan);
}

/* Clients that stop reading while another talks in bursts: each is dropped
 * at --queue, and everyone else hears every line, before and after; a
 * newcomer can still pick a name. The room must never wait for a writer
 * stuck on a full socket. Several silent clients: each socket fills up at
 * its own moment, whichever write that happens in. */
#define SILENT 4
static void test_silent_readers_are_dropped_not_waited_for(void **state) {
    (void)state;
    server_start(0);
    client_t *sid[SILENT], *wat = new_client(), *ben = new_client(), *neo = new_client();
    char names[SILENT][16], notices[SILENT][64];
    for (int i = 0; i < SILENT; i++) {
        sid[i] = new_client();
        snprintf(names[i], sizeof names[i], "sid%d", i);
        snprintf(notices[i], sizeof notices[i], "* %.15s was disconnected (too slow)\n", names[i]);
        silent_login(sid[i], names[i]);
        wat->watch[i] = notices[i];
    }
    client_login(wat, "wat");
    client_login(ben, "ben");
    /* Bursts back to back, as fast as the server takes them, while wat reads
     * everything: the server is never left waiting for the test. */
    enum { BURSTS = 200, LINE = 500, BURST = 60 * LINE };
    static char text[BURSTS * BURST + 1];
    size_t len = 0;
    for (int b = 0; b < BURSTS; b++) {
        for (int i = 0; i < 60; i++, len += LINE) {
            int n = snprintf(text + len, 32, "b%d-l%d ", b, i);
            memset(text + len + n, 'z', LINE - 1 - (size_t)n);
            text[len + LINE - 1] = '\n';
        }
    }
    text[len] = '\0';
    fcntl(ben->fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    while (off < len) {
        struct pollfd p[2] = {{.fd = ben->fd, .events = POLLOUT}, {.fd = wat->fd, .events = POLLIN}};
        if (poll(p, 2, WAIT_MS) < 1)
            fail_msg("the room stopped after %zu of %zu bytes; wat got: \"%s\"", off, len, wat->buf);
        if (p[0].revents) {
            ssize_t n = write(ben->fd, text + off, len - off);
            assert_true(n > 0 || errno == EAGAIN);
            if (n > 0) off += (size_t)n;
        }
        if (p[1].revents) assert_true(client_read_some(wat) > 0);
    }
    char last[32];
    snprintf(last, sizeof last, "ben: b%d-l59 ", BURSTS - 1);
    client_expect(wat, last); /* the last line reached the watcher */
    int bursts = BURSTS;
    print_message("%d silent clients dropped after %d bursts of 60 lines\n", SILENT, bursts);
    assert_true(client_watched_all(wat));
    client_login(neo, "neo");
    check_chat(ben, "ben", neo, "welcome neo");
    check_chat(neo, "neo", wat, "hello everyone");
    for (int i = 0; i < SILENT; i++) {
        client_close(sid[i]);
        free(sid[i]);
    }
    client_close(wat);
    client_close(ben);
    client_close(neo);
    server_stop();
    free(wat);
    free(ben);
    free(neo);
}

/* A client that floods the server with /who in a room whose listing is
 * longer than the writer's batch, and never reads its answers: it is dropped,
 * and the room goes on. */
#define WHO_ROOM 520
static void test_who_flood_from_a_silent_client(void **state) {
    (void)state;
    server_start(0);
    client_t *sid = new_client(), *wat = new_client();
    silent_login(sid, "sid");
    client_login(wat, "wat");
    static client_t crowd[WHO_ROOM];
    for (int i = 0; i < WHO_ROOM; i++) { /* 16-letter names: a /who of ~9 KB */
        char name[32];
        snprintf(name, sizeof name, "crowd-%010d", i);
        client_login(&crowd[i], name);
    }
    wat->watch[0] = "* sid was disconnected (too slow)\n";
    static char flood[60 * 5 + 1];
    for (int i = 0; i < 60; i++) memcpy(flood + 5 * i, "/who\n", 5);
    /* Until the server drops sid: usually within ten packets, but a server
     * slowed down (simulation's held-back readiness, a loaded machine)
     * reads sid's flood more slowly, so the bound is generous time, not a
     * packet count. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int packets = 0;
    for (; !wat->watched[0]; packets++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 120) break;
        (void)!write(sid->fd, flood, strlen(flood)); /* fails once sid is dropped */
        char name[32], line[64];
        snprintf(name, sizeof name, "crowd-%010d", packets % WHO_ROOM);
        snprintf(line, sizeof line, "still here %d", packets);
        check_chat(&crowd[packets % WHO_ROOM], name, wat, line);
    }
    print_message("sid dropped after %d packets of 60 /who\n", packets);
    assert_true(wat->watched[0]);
    client_t neo = {.fd = -1}; /* watch[] all NULL */
    client_login(&neo, "neo");
    check_chat(&neo, "neo", wat, "hello everyone");
    for (int i = 0; i < WHO_ROOM; i++) client_close(&crowd[i]);
    client_close(&neo);
    client_close(sid);
    client_close(wat);
    server_stop();
    free(sid);
    free(wat);
}

static void test_thousand_clients_vanish(void **state) {
    (void)state;
    server_start(0);
    client_t *amy = new_client(), *bob = new_client();
    client_login(amy, "amy");
    int fds_before = server_fds();
    for (int i = 0; i < 1000; i++) {
        client_t c;
        client_open(&c, 0);
        if (i % 3 == 0) client_send(&c, "half-a-na"); /* no newline */
        if (i % 2 == 0) client_reset(&c);
        else client_close(&c);
    }
    /* Every one of them is accepted, noticed gone, and closed. */
    int fds_after = -1;
    for (int tries = 0; tries < 200; tries++) {
        fds_after = server_fds();
        if (fds_after <= fds_before) break;
        usleep(50000);
    }
    print_message("server fds: %d before, %d after 1000 vanishing clients\n", fds_before,
                  fds_after);
    assert_int_equal(fds_after, fds_before);
    client_login(bob, "bob");
    check_chat(amy, "amy", bob, "quiet again");
    client_close(amy);
    client_close(bob);
    server_stop();
    free(amy);
    free(bob);
}

#define EMFILE_LIMIT 32
#define EMFILE_MAX_CLIENTS 40

static void test_emfile_keeps_serving(void **state) {
    (void)state;
    server_start(EMFILE_LIMIT);
    client_t *c[EMFILE_MAX_CLIENTS];
    int served = 0, pending = -1;
    for (int i = 0; i < EMFILE_MAX_CLIENTS; i++) {
        c[i] = new_client();
        client_open(c[i], 0); /* connect() succeeds: the kernel's backlog */
        if (!client_wait_for(c[i], "Pick a name", 3000)) {
            pending = i; /* the server is out of descriptors */
            break;
        }
        served++;
    }
    print_message("EMFILE after %d clients (RLIMIT_NOFILE %d)\n", served, EMFILE_LIMIT);
    assert_true(pending >= 0);
    assert_true(served >= 2);

    /* Saturated, it must not spin... */
    double cpu0 = server_cpu_seconds();
    usleep(1000000);
    double cpu = server_cpu_seconds() - cpu0;
    print_message("server CPU while out of descriptors: %.2f s per second\n", cpu);
    assert_true(cpu >= 0 && cpu < 0.3);

    /* ...and the clients it has keep working. */
    client_send(c[0], "amy\n");
    client_expect(c[0], "* welcome amy");
    client_send(c[1], "bob\n");
    client_expect(c[1], "* welcome bob");
    check_chat(c[0], "amy", c[1], "we are still here");

    /* A descriptor frees up: the waiting connection is accepted. */
    client_close(c[served - 1]);
    client_expect(c[pending], "Pick a name");
    client_send(c[pending], "late\n");
    client_expect(c[pending], "* welcome late");
    check_chat(c[pending], "late", c[0], "better late than never");

    for (int i = 0; i <= pending; i++) {
        client_close(c[i]);
        free(c[i]);
    }
    server_stop();
}

int main(void) {
#ifndef CHAT_BIN
    puts("test_chat_peers: built without the chat example; skipped");
    return 0;
#else
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ten_mib_without_newline, kill_server),
        cmocka_unit_test_teardown(test_half_closed_client, kill_server),
        cmocka_unit_test_teardown(test_reset_in_the_middle_of_writes, kill_server),
        cmocka_unit_test_teardown(test_silent_readers_are_dropped_not_waited_for, kill_server),
        cmocka_unit_test_teardown(test_who_flood_from_a_silent_client, kill_server),
        cmocka_unit_test_teardown(test_thousand_clients_vanish, kill_server),
        cmocka_unit_test_teardown(test_emfile_keeps_serving, kill_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}

/*
 * test_tls_peers.c - aloop-tls against peers it does not control.
 *
 *   - interop: the library's client against `openssl s_server` and a
 *     Python `ssl` server, its server (aloop_serve_tls) against
 *     `openssl s_client` and a Python `ssl` client: byte-exact echo, ALPN,
 *     client certificates required and missing, a TLS 1.2-only peer
 *     accepted, a TLS 1.1-only peer refused, SNI;
 *   - certificate checks against a real server: expired, wrong name,
 *     untrusted, IP-address hosts against IP SANs: -EKEYREJECTED with a
 *     readable aloop_tls_error();
 *   - hostile peers (tests/tls/peer.py, which writes raw records through
 *     memory BIOs): garbage instead of a ClientHello, a handshake that
 *     stops half-way, a truncated record, a close without close_notify, a
 *     flood of one-byte records, renegotiation from a TLS 1.2 peer, a
 *     close_notify followed by more reading (half-close). Each one ends in
 *     a clear error or the right bytes, and the server goes on serving.
 *
 * Peers are processes started by the test; it synchronises on the lines
 * they print ("ready PORT", "ACCEPT host:port", "sent", "closed ..."), never
 * on time. WAIT only bounds how long a failure takes to show. The loops run
 * on the real clock: a virtual clock would jump to the next deadline while
 * a peer process is still working. Skipped when openssl or python3 is
 * missing. Certificates: tests/tls/gen-certs.sh (the ctest fixture).
 */
#include "aloop_test.h"

#include "aloop_tls.h"
#include "tls_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PYTHON3
#define PYTHON3 ""
#endif
#ifndef OPENSSL_BIN
#define OPENSSL_BIN ""
#endif
#ifndef PEER_PY
#define PEER_PY ""
#endif
#define CA_PEM cert("ca.pem")
#define SERVER_PEM cert("server.pem")
#define SERVER_KEY cert("server.key")
#define CLIENT_PEM cert("client.pem")
#define CLIENT_KEY cert("client.key")
#define EXPIRED_PEM cert("expired.pem")
#define EXPIRED_KEY cert("expired.key")
#define WRONGNAME_PEM cert("wrongname.pem")
#define WRONGNAME_KEY cert("wrongname.key")
#define UNTRUSTED_PEM cert("untrusted.pem")
#define UNTRUSTED_KEY cert("untrusted.key")

#define WAIT 60.0 /* seconds; bounds how long a failure takes to show */

/* ---- what the tests need */

static int runnable(const char *path) { return path[0] && access(path, X_OK) == 0; }

static void need(int python, int openssl) {
    if (python && !runnable(PYTHON3)) {
        print_message("skipped: python3 not found\n");
        skip();
    }
    if (openssl && !runnable(OPENSSL_BIN)) {
        print_message("skipped: openssl not found\n");
        skip();
    }
    if (access(CA_PEM, R_OK) != 0) fail_msg("no test certificates: %s", CA_PEM);
}

/* The payload of the byte-exact tests: byte i is i % 251 (peer.py's too). */
static void pattern(unsigned char *b, size_t off, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((off + i) % 251);
}
static int is_pattern(const unsigned char *b, size_t off, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)((off + i) % 251)) return 0;
    return 1;
}

/* ---- peer processes: their stdout line by line, their stdin as a stream */

typedef struct peer {
    aloop_process_t *proc;
    aloop_stream_t *out, *in;
    char line[4096];
} peer_t;

static int peer_stderr = ALOOP_STDIO_INHERIT; /* ALOOP_STDIO_STDOUT: read it as well */

static void peer_startv(peer_t *p, const char **argv) {
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = peer_stderr};
    memset(p, 0, sizeof *p);
    p->proc = aloop_process_spawn(aloop_current(), (char *const *)argv, &o);
    assert_non_null(p->proc);
    p->out = aloop_stream_new(aloop_current(), aloop_process_take_fd(p->proc, 1), 0);
    p->in = aloop_stream_new(aloop_current(), aloop_process_take_fd(p->proc, 0), 0);
    assert_non_null(p->out);
    assert_non_null(p->in);
}

/* peer.py ROLE MODE [ARG...] (NULL-terminated). */
static void py_start(peer_t *p, const char *role, const char *mode, ...) {
    const char *argv[40] = {PYTHON3, PEER_PY, role, mode};
    int n = 4;
    va_list ap;
    va_start(ap, mode);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    peer_startv(p, argv);
}

/* openssl ARG... (NULL-terminated), killed after 100 s whatever happens to
 * the test (an orphan would hold ctest's output pipe), its stdout line
 * buffered (stdbuf): s_server says some things without flushing them. */
#define OSSL_PREFIX "timeout", "-s", "KILL", "100", "stdbuf", "-oL", OPENSSL_BIN
static void ossl_start(peer_t *p, ...) {
    const char *argv[40] = {OSSL_PREFIX};
    int n = 7;
    va_list ap;
    va_start(ap, p);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    peer_startv(p, argv);
}

/* The peer's next line without its newline; NULL at EOF. */
static char *peer_line(peer_t *p) {
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, WAIT), 0);
    ssize_t n = aloop_stream_readline(p->out, p->line, sizeof p->line);
    int rc = aloop_timeout_exit(&to, n < 0 ? (int)n : 0);
    if (rc < 0) fail_msg("peer: no line within %g s (%s)", WAIT, strerror(-rc));
    if (n == 0) return NULL;
    while (n > 0 && (p->line[n - 1] == '\n' || p->line[n - 1] == '\r')) p->line[--n] = '\0';
    if (getenv("TLS_PEERS_TRACE")) print_message("peer> %s\n", p->line);
    return p->line;
}

/* Skips lines up to the first one starting with prefix, which it returns. */
static char *peer_expect(peer_t *p, const char *prefix) {
    for (;;) {
        char *l = peer_line(p);
        if (!l) fail_msg("peer: ended before a line starting with \"%s\"", prefix);
        if (strncmp(l, prefix, strlen(prefix)) == 0) return l;
    }
}

/* Each call reaches the peer's stdin in one piece. openssl s_server and
 * s_client take a read of one or two bytes as a command ("q" closes, "r"
 * renegotiates, "k" updates the keys), so a line must never arrive split,
 * as a short write (simulation's, or a full pipe's) would deliver it. A
 * write of at most PIPE_BUF bytes to a pipe is all or nothing. */
static void peer_write(peer_t *p, const void *buf, size_t n) {
    assert_true(n <= PIPE_BUF);
    int fd = aloop_stream_fd(p->in);
    for (;;) {
        ssize_t w = write(fd, buf, n);
        if (w == (ssize_t)n) return;
        assert_true(w < 0 && (errno == EAGAIN || errno == EINTR));
        if (errno == EAGAIN) assert_int_equal(aloop_wait_writable(fd, WAIT), 0);
    }
}

/* Waits for the peer to exit by itself: its exit status. */
static int peer_exit(peer_t *p) {
    int st = 0;
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, WAIT), 0);
    int rc = aloop_timeout_exit(&to, aloop_process_wait(p->proc, &st));
    if (rc < 0) fail_msg("peer: still running after %g s", WAIT);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void peer_stop(peer_t *p) {
    if (!p->proc) return;
    aloop_process_kill(p->proc, SIGKILL);
    assert_int_equal(aloop_process_wait(p->proc, NULL), 0);
    aloop_stream_close(p->out);
    aloop_stream_close(p->in);
    aloop_process_free(p->proc);
    p->proc = NULL;
}

static int port_of(const char *s) {
    const char *colon = strrchr(s, ':'), *sp = strrchr(s, ' ');
    const char *num = colon ? colon + 1 : sp ? sp + 1 : s;
    int port = atoi(num);
    assert_true(port > 0 && port < 65536);
    return port;
}

/* A Python server in MODE: its port once it said "ready". */
static int py_server(peer_t *p, const char *mode, ...) {
    const char *argv[40] = {PYTHON3, PEER_PY, "server", mode};
    int n = 4;
    va_list ap;
    va_start(ap, mode);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    peer_startv(p, argv);
    return port_of(peer_expect(p, "ready "));
}

/* ---- the library's side */

static int dial(const char *host, int port, aloop_tls_config_t *c, aloop_stream_t **out) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    return aloop_open_tls_connection(host, p, c, WAIT, out);
}

/* Writes n pattern bytes from offset 0. */
static void write_pattern(aloop_stream_t *s, size_t n) {
    unsigned char buf[16384];
    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        pattern(buf, off, k);
        assert_int_equal(aloop_stream_write(s, buf, k), (ssize_t)k);
        off += k;
    }
}

/* Reads until n bytes, EOF or an error: the last read's result (n read:
 * n); *got: bytes read, all checked against the pattern. */
static ssize_t read_pattern(aloop_stream_t *s, size_t n, size_t *got) {
    unsigned char buf[16384];
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < sizeof buf ? n - *got : sizeof buf;
        ssize_t k = aloop_stream_read(s, buf, want);
        if (k <= 0) return k;
        assert_true(is_pattern(buf, *got, (size_t)k));
        *got += (size_t)k;
    }
    return (ssize_t)n;
}

/* ---- a TLS server in the test's loop, its handler's record */

enum { H_ECHO, H_LINES, H_DRAIN, H_HALFCLOSE };

static struct srv {
    aloop_server_t *srv;
    int port;
    int mode;
    int started, returned; /* handlers */
    ssize_t rc;            /* the last handler's final read */
    size_t bytes;          /* ... and the bytes it read (pattern-checked in H_DRAIN) */
    char version[16], alpn[32];
    int in_flood, ticks;   /* the ticker's steps while a handler reads */
    int flood_done;
    size_t flood_bytes;    /* the flood is over once a handler read that many */
    aloop_event_t *gate;   /* when set: H_ECHO waits for it before reading */
} S;

static void handler(aloop_stream_t *conn, void *arg) {
    (void)arg;
    S.started++;
    const char *v = aloop_tls_version(conn), *a = aloop_tls_alpn(conn);
    snprintf(S.version, sizeof S.version, "%s", v ? v : "");
    snprintf(S.alpn, sizeof S.alpn, "%s", a ? a : "");
    char buf[16384];
    ssize_t rc;
    S.bytes = 0;
    switch (S.mode) {
    case H_ECHO:
        if (S.gate) assert_int_equal(aloop_event_wait(S.gate), 0);
        S.in_flood = 1;
        while ((rc = aloop_stream_read(conn, buf, sizeof buf)) > 0) {
            S.bytes += (size_t)rc;
            if (S.bytes >= S.flood_bytes) S.in_flood = 0, S.flood_done = 1;
            if (aloop_stream_write(conn, buf, (size_t)rc) != rc) break;
        }
        S.in_flood = 0;
        S.flood_done = 1;
        break;
    case H_LINES:
        while ((rc = aloop_stream_readline(conn, buf, sizeof buf)) > 0) {
            S.bytes += (size_t)rc;
            if (strcmp(buf, "QUIT\n") == 0) break;
            if (aloop_stream_write(conn, buf, (size_t)rc) != rc) break;
        }
        break;
    case H_DRAIN:
        while ((rc = aloop_stream_read(conn, buf, sizeof buf)) > 0) {
            assert_true(is_pattern((unsigned char *)buf, S.bytes, (size_t)rc));
            S.bytes += (size_t)rc;
        }
        break;
    case H_HALFCLOSE:
    default:
        while ((rc = aloop_stream_read(conn, buf, sizeof buf)) > 0) {
            assert_true(is_pattern((unsigned char *)buf, S.bytes, (size_t)rc));
            S.bytes += (size_t)rc;
        }
        if (rc == 0) {
            int k = snprintf(buf, sizeof buf, "got %zu after close_notify\n", S.bytes);
            assert_int_equal(aloop_stream_write(conn, buf, (size_t)k), k);
        }
        break;
    }
    S.rc = rc;
    S.returned++;
}

/* Serves with c (the caller's reference is given to the server). */
static void serve(aloop_tls_config_t *c, int mode, double handshake_timeout, size_t max_conns) {
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 64);
    assert_true(lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    S.port = ntohs(sin.sin_port);
    S.mode = mode;
    aloop_serve_opts_t o = {.max_connections = max_conns, .handshake_timeout = handshake_timeout};
    S.srv = aloop_serve_tls(aloop_current(), lfd, c, &o, handler, NULL);
    assert_non_null(S.srv);
    aloop_tls_config_free(c); /* the server holds its own reference */
}

static void serve_end(void) {
    aloop_server_close(S.srv);
    aloop_server_cancel_handlers(S.srv);
    assert_int_equal(aloop_server_wait_closed(S.srv), 0);
    aloop_server_free(S.srv);
    S.srv = NULL;
}

static char port_text[16];
static const char *sport(void) {
    snprintf(port_text, sizeof port_text, "%d", S.port);
    return port_text;
}

/* A Python client that echoes size pattern bytes through the server:
 * "echo ok" expected. */
static void py_echo_ok(const char *size) {
    peer_t p;
    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--size", size, NULL);
    peer_expect(&p, "handshake ");
    char want[64];
    snprintf(want, sizeof want, "echo ok %s", size);
    assert_string_equal(peer_expect(&p, "echo "), want);
    peer_expect(&p, "done");
    assert_int_equal(peer_exit(&p), 0);
    peer_stop(&p);
}

/* ---- running a test: its body is a task on a real-clock loop */

static int body_done;
static void (*body_fn)(void);

static void *body_task(void *arg) {
    (void)arg;
    body_fn();
    body_done = 1;
    return NULL;
}

static void run_body(void (*body)(void)) {
    memset(&S, 0, sizeof S);
    body_done = 0;
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    body_fn = body;
    aloop_task_t *t = spawn(loop, body_task, NULL);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_true(body_done);
}

#define TEST(name, python, openssl)              \
    static void name##_body(void);               \
    static void name(void **state) {             \
        (void)state;                             \
        need(python, openssl);                   \
        run_body(name##_body);                   \
    }                                            \
    static void name##_body(void)

/* ======================================================================
 * The library's client against openssl s_server
 * ====================================================================== */

/* s_server (not quiet: it says its port) prints the handshake's details,
 * then "Secure Renegotiation IS [NOT] supported", then what it receives. */
static const char *s_server_naccept = "1";

static int s_server_start(peer_t *p, ...) {
    const char *argv[40] = {OSSL_PREFIX, "s_server", "-accept", "127.0.0.1:0", "-naccept",
                            s_server_naccept, "-cert", SERVER_PEM, "-key", SERVER_KEY};
    int n = 16;
    va_list ap;
    va_start(ap, p);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 39;) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    peer_startv(p, argv);
    return port_of(peer_expect(p, "ACCEPT "));
}

#define NLINES 400
static void text_line(char *buf, size_t cap, int i) {
    snprintf(buf, cap, "line %05d of the s_server exchange: abcdefghijklmnopqrstuvwxyz\n", i);
}

/* NLINES lines each way, byte-exact, then close_notify both ways. */
static void s_server_exchange(peer_t *p, aloop_stream_t *s) {
    char want[128], got[256];
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        assert_int_equal(aloop_stream_write(s, want, strlen(want)), (ssize_t)strlen(want));
    }
    peer_expect(p, "Secure Renegotiation");
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        want[strlen(want) - 1] = '\0';
        assert_string_equal(peer_line(p), want);
    }
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        peer_write(p, want, strlen(want));
    }
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        assert_int_equal(aloop_stream_readline(s, got, sizeof got), (ssize_t)strlen(want));
        assert_string_equal(got, want);
    }
    assert_int_equal(aloop_stream_shutdown(s), 0); /* close_notify */
    peer_expect(p, "DONE");                        /* s_server read it as EOF */
    assert_int_equal(aloop_stream_read(s, got, sizeof got), 0); /* and answered it */
}

TEST(test_client_s_server_echo, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    assert_string_equal(aloop_tls_version(s), "TLSv1.3");
    assert_null(aloop_tls_alpn(s));
    s_server_exchange(&p, s);
    aloop_stream_close(s);
    assert_int_equal(peer_exit(&p), 0);
    peer_stop(&p);
    aloop_tls_config_free(c);
}

TEST(test_client_s_server_tls12, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, "-tls1_2", NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    assert_string_equal(aloop_tls_version(s), "TLSv1.2");
    s_server_exchange(&p, s);
    aloop_stream_close(s);
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* A server that speaks only TLS 1.1 is refused (the client's minimum is
 * 1.2): -EPROTO, with words. */
TEST(test_client_refuses_tls11_server, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s = (aloop_stream_t *)&p;
    assert_int_equal(dial("localhost", port, c, &s), -EPROTO);
    assert_null(s);
    print_message("TLS 1.1 server: %s\n", aloop_tls_error());
    assert_true(strlen(aloop_tls_error()) > 0);
    peer_stop(&p);
    aloop_tls_config_free(c);
}

TEST(test_client_s_server_alpn, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, "-alpn", "h2,http/1.1", NULL);
    aloop_tls_config_t *c = client_config();
    const char *protos[] = {"spdy/3", "http/1.1"};
    assert_int_equal(aloop_tls_config_set_alpn(c, protos, 2), 0);
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    assert_string_equal(aloop_tls_alpn(s), "http/1.1");
    assert_string_equal(peer_expect(&p, "ALPN protocols selected"),
                        "ALPN protocols selected: http/1.1");
    aloop_stream_close(s);
    peer_stop(&p);

    /* nothing in common: s_server refuses (a no_application_protocol
     * alert), the client says so */
    port = s_server_start(&p, "-alpn", "h2", NULL);
    s = (aloop_stream_t *)&p;
    assert_int_equal(dial("localhost", port, c, &s), -EPROTO);
    assert_null(s);
    assert_non_null(strstr(aloop_tls_error(), "no application protocol"));
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* s_server requires a client certificate: with one the exchange works,
 * without one the client sees an error (at the handshake with TLS 1.2, at
 * the first read with TLS 1.3, where the server judges after the client
 * finished). */
TEST(test_client_cert_s_server, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, "-Verify", "1", "-verifyCAfile", CA_PEM,
                              "-verify_return_error", NULL);
    aloop_tls_config_t *c = client_config();
    assert_int_equal(aloop_tls_config_set_client_cert(c, CLIENT_PEM, CLIENT_KEY), 0);
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    s_server_exchange(&p, s);
    aloop_stream_close(s);
    peer_stop(&p);
    aloop_tls_config_free(c);

    for (int v12 = 0; v12 < 2; v12++) {
        port = s_server_start(&p, "-Verify", "1", "-verifyCAfile", CA_PEM, "-verify_return_error",
                              v12 ? "-tls1_2" : NULL, NULL);
        c = client_config();
        int rc = dial("localhost", port, c, &s);
        if (rc == 0) {
            char buf[64];
            rc = (int)aloop_stream_read(s, buf, sizeof buf);
            aloop_stream_close(s);
        }
        print_message("no client certificate (TLS 1.%d): %d %s\n", v12 ? 2 : 3, rc,
                      aloop_tls_error());
        assert_true(rc == -EKEYREJECTED || rc == -EPROTO);
        assert_true(strlen(aloop_tls_error()) > 0);
        peer_stop(&p);
        aloop_tls_config_free(c);
    }
}

/* A TLS 1.2 server asks for a renegotiation (HelloRequest) while the
 * client reads: the client refuses (no_renegotiation), s_server gives up
 * the connection, and the read ends in -EPROTO, never a crash or a hang. */
static void *read_a_line(void *arg) {
    char buf[256];
    aloop_timeout_t to;
    assert_int_equal(aloop_timeout_enter(&to, WAIT), 0);
    ssize_t rc = aloop_stream_readline(arg, buf, sizeof buf);
    rc = aloop_timeout_exit(&to, (int)rc);
    print_message("read after HelloRequest: %zd %s\n", rc, rc < 0 ? aloop_tls_error() : buf);
    return (void *)(intptr_t)rc;
}

TEST(test_client_s_server_renegotiation, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, "-tls1_2", NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    assert_int_equal(aloop_stream_write(s, "hello\n", 6), 6);
    peer_expect(&p, "hello");
    aloop_task_t *r = spawn(aloop_current(), read_a_line, s);
    peer_write(&p, "R\n", 2); /* s_server: renegotiate */
    void *res;
    assert_int_equal(aloop_await(r, &res), 0);
    aloop_release(r);
    assert_int_equal((intptr_t)res, -EPROTO);
    assert_true(strlen(aloop_tls_error()) > 0);
    char b[8];
    assert_int_equal(aloop_stream_read(s, b, sizeof b), -EPROTO); /* it sticks */
    aloop_stream_close(s);
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* A second connection to the same s_server resumes the first one's
 * session (a TLS 1.3 ticket, a TLS 1.2 session): no certificate again. */
static void resume_against(const char *version_flag, const char *version) {
    peer_t p;
    s_server_naccept = "2";
    int port = s_server_start(&p, version_flag, NULL);
    s_server_naccept = "1";
    aloop_tls_config_t *c = client_config();
    for (int i = 0; i < 2; i++) {
        aloop_stream_t *s;
        char got[64];
        assert_int_equal(dial("localhost", port, c, &s), 0);
        assert_string_equal(aloop_tls_version(s), version);
        assert_int_equal(aloop_tls_resumed(s), i);
        assert_int_equal(aloop_stream_write(s, "ping\n", 5), 5);
        peer_expect(&p, "ping");
        peer_write(&p, "pong\n", 5); /* the client reads: TLS 1.3 tickets come in */
        assert_int_equal(aloop_stream_readline(s, got, sizeof got), 5);
        assert_int_equal(aloop_stream_shutdown(s), 0);
        peer_expect(&p, "DONE");
        aloop_stream_close(s);
    }
    assert_string_equal(peer_expect(&p, "   1 session cache hits"), "   1 session cache hits");
    peer_stop(&p);
    aloop_tls_config_free(c);
}

TEST(test_client_s_server_resumption, 0, 1) {
    resume_against("-tls1_3", "TLSv1.3");
    resume_against("-tls1_2", "TLSv1.2");
}

/* A server that takes the ClientHello and never answers: the handshake's
 * deadline, -ETIMEDOUT, and words for it. */
TEST(test_client_silent_server, 1, 0) {
    peer_t p;
    int port = py_server(&p, "silent", "--cert", SERVER_PEM, "--key", SERVER_KEY, NULL);
    aloop_tls_config_t *c = client_config();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    aloop_stream_t *s = (aloop_stream_t *)&p;
    assert_int_equal(aloop_open_tls_connection("localhost", ps, c, 1.0, &s), -ETIMEDOUT);
    assert_null(s);
    assert_non_null(strstr(aloop_tls_error(), "timed out"));
    peer_expect(&p, "accepted");
    assert_true(strncmp(peer_expect(&p, "closed "), "closed ", 7) == 0); /* we closed */
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* ======================================================================
 * The library's client against a Python ssl server
 * ====================================================================== */

#define BULK 1048576

/* The library's client connected to "localhost" at a Python server in MODE
 * with the test server certificate (size: its --size, or NULL). */
typedef struct py_conn {
    peer_t p;
    aloop_tls_config_t *c;
    aloop_stream_t *s;
} py_conn_t;

static void py_conn_open(py_conn_t *k, const char *mode, const char *size) {
    int port = py_server(&k->p, mode, "--cert", SERVER_PEM, "--key", SERVER_KEY,
                         size ? "--size" : NULL, size, NULL);
    k->c = client_config();
    assert_int_equal(dial("localhost", port, k->c, &k->s), 0);
}

static void py_conn_close(py_conn_t *k) {
    aloop_stream_close(k->s);
    peer_stop(&k->p);
    aloop_tls_config_free(k->c);
}

static void *writer(void *arg) {
    write_pattern(arg, BULK);
    return NULL;
}

TEST(test_client_python_server_echo, 1, 0) {
    py_conn_t k;
    py_conn_open(&k, "echo", NULL);
    assert_string_equal(peer_expect(&k.p, "handshake "),
                        "handshake version=TLSv1.3 alpn=- sni=localhost");
    /* write and read at once: neither side's buffers hold 1 MiB */
    aloop_task_t *w = spawn(aloop_current(), writer, k.s);
    size_t got;
    assert_int_equal(read_pattern(k.s, BULK, &got), BULK);
    assert_int_equal(aloop_await(w, NULL), 0);
    aloop_release(w);
    assert_int_equal(aloop_stream_shutdown(k.s), 0);
    assert_string_equal(peer_expect(&k.p, "eof "), "eof clean 1048576");
    char b[8];
    assert_int_equal(aloop_stream_read(k.s, b, sizeof b), 0); /* its close_notify */
    peer_expect(&k.p, "done");
    py_conn_close(&k);
}

/* The client sends close_notify as soon as it has written, then reads the
 * echo still on its way (TLS 1.3 half-close from the client's side): every
 * byte, then 0 at the server's close_notify. */
static void *write_then_shutdown(void *arg) {
    write_pattern(arg, BULK);
    assert_int_equal(aloop_stream_shutdown(arg), 0);
    return NULL;
}

TEST(test_client_half_close_python_server, 1, 0) {
    py_conn_t k;
    py_conn_open(&k, "echo", NULL);
    aloop_task_t *w = spawn(aloop_current(), write_then_shutdown, k.s);
    size_t got;
    assert_int_equal(read_pattern(k.s, BULK, &got), BULK);
    assert_int_equal(aloop_await(w, NULL), 0);
    aloop_release(w);
    char b[8];
    assert_int_equal(aloop_stream_read(k.s, b, sizeof b), 0);
    assert_string_equal(peer_expect(&k.p, "eof "), "eof clean 1048576");
    peer_expect(&k.p, "done");
    py_conn_close(&k);
}

/* IP-address hosts: checked against the certificate's IP SANs, and never
 * sent as SNI (RFC 6066 allows only host names there). */
TEST(test_client_ip_host, 1, 0) {
    peer_t p;
    int port = py_server(&p, "echo", "--cert", SERVER_PEM, "--key", SERVER_KEY, NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s;
    assert_int_equal(dial("127.0.0.1", port, c, &s), 0);
    assert_string_equal(peer_expect(&p, "handshake "),
                        "handshake version=TLSv1.3 alpn=- sni=-");
    write_pattern(s, 1000);
    size_t got;
    assert_int_equal(read_pattern(s, 1000, &got), 1000);
    aloop_stream_close(s);
    peer_stop(&p);

    /* ::1 against IP:::1, where the machine has IPv6 */
    int fd6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have6 = fd6 >= 0 && bind(fd6, (struct sockaddr *)&lo6, sizeof lo6) == 0;
    if (fd6 >= 0) close(fd6);
    if (have6) {
        port = py_server(&p, "echo", "--host", "::1", "--cert", SERVER_PEM, "--key", SERVER_KEY,
                         NULL);
        assert_int_equal(dial("::1", port, c, &s), 0);
        assert_string_equal(peer_expect(&p, "handshake "),
                            "handshake version=TLSv1.3 alpn=- sni=-");
        aloop_stream_close(s);
        peer_stop(&p);
    }

    /* the certificate holds 127.0.0.1, not 127.0.0.2 */
    port = py_server(&p, "echo", "--cert", SERVER_PEM, "--key", SERVER_KEY, NULL);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    assert_int_equal(aloop_open_connection("127.0.0.1", ps, WAIT, &s), 0);
    aloop_stream_t *t = s;
    assert_int_equal(aloop_tls_connect(s, c, "127.0.0.2", WAIT, &t), -EKEYREJECTED);
    assert_null(t);
    print_message("127.0.0.2: %s\n", aloop_tls_error());
    assert_non_null(strstr(aloop_tls_error(), "IP address mismatch"));
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* A server certificate that must be refused: -EKEYREJECTED, and the
 * reason in words. */
static void refused(const char *cert, const char *key, const char *reason) {
    peer_t p;
    int port = py_server(&p, "echo", "--cert", cert, "--key", key, NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s = (aloop_stream_t *)&p;
    assert_int_equal(dial("localhost", port, c, &s), -EKEYREJECTED);
    assert_null(s);
    print_message("%s: %s\n", cert, aloop_tls_error());
    assert_non_null(strstr(aloop_tls_error(), reason));
    /* the server saw the client's alert */
    assert_non_null(strstr(peer_expect(&p, "handshake-error"), "ALERT"));
    peer_stop(&p);
    aloop_tls_config_free(c);
}

TEST(test_client_refuses_expired, 1, 0) { refused(EXPIRED_PEM, EXPIRED_KEY, "expired"); }
TEST(test_client_refuses_wrong_name, 1, 0) {
    refused(WRONGNAME_PEM, WRONGNAME_KEY, "hostname mismatch");
}
TEST(test_client_refuses_untrusted, 1, 0) {
    refused(UNTRUSTED_PEM, UNTRUSTED_KEY, "self-signed");
}

/* The server ends the connection without close_notify: the client reads
 * every byte, then -ECONNRESET, never a silent EOF. */
TEST(test_client_server_vanishes, 1, 0) {
    py_conn_t k;
    py_conn_open(&k, "nonotify", "50000");
    peer_expect(&k.p, "sent");
    size_t got;
    assert_int_equal(read_pattern(k.s, 100000, &got), -ECONNRESET);
    assert_int_equal(got, 50000);
    char b[8];
    assert_int_equal(aloop_stream_read(k.s, b, sizeof b), -ECONNRESET); /* it sticks */
    py_conn_close(&k);
}

/* The server's last record is cut short: the bytes before it, then
 * -ECONNRESET. */
TEST(test_client_truncated_record, 1, 0) {
    py_conn_t k;
    py_conn_open(&k, "truncate", NULL);
    peer_expect(&k.p, "sent");
    char b[256];
    assert_int_equal(aloop_stream_readexactly(k.s, b, 1), 1);
    assert_int_equal(b[0], 'x');
    assert_int_equal(aloop_stream_read(k.s, b, sizeof b), -ECONNRESET);
    py_conn_close(&k);
}

/* ======================================================================
 * aloop_serve_tls against openssl s_client and Python clients
 * ====================================================================== */

TEST(test_server_s_client_echo, 0, 1) {
    serve(server_config("server"), H_LINES, 0, 0);
    peer_t p;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", S.port);
    ossl_start(&p, "s_client", "-quiet", "-connect", addr, "-servername", "localhost",
               "-CAfile", CA_PEM, "-verify_return_error", NULL);
    char want[128];
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        peer_write(&p, want, strlen(want));
    }
    for (int i = 0; i < NLINES; i++) {
        text_line(want, sizeof want, i);
        want[strlen(want) - 1] = '\0';
        assert_string_equal(peer_line(&p), want);
    }
    peer_write(&p, "QUIT\n", 5); /* the handler returns: close_notify */
    assert_null(peer_line(&p));  /* s_client ends */
    assert_int_equal(peer_exit(&p), 0);
    peer_stop(&p);
    assert_int_equal(S.started, 1);
    assert_string_equal(S.version, "TLSv1.3");
    serve_end();
}

/* A TLS 1.2-only client works; a TLS 1.1-only one never reaches the
 * handler, and the next client is served. */
TEST(test_server_s_client_versions, 0, 1) {
    serve(server_config("server"), H_LINES, 0, 0);
    peer_t p;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", S.port);
    ossl_start(&p, "s_client", "-quiet", "-tls1_2", "-connect", addr, "-CAfile", CA_PEM, NULL);
    peer_write(&p, "twelve\n", 7);
    assert_string_equal(peer_line(&p), "twelve");
    peer_write(&p, "QUIT\n", 5);
    assert_null(peer_line(&p));
    peer_stop(&p);
    assert_string_equal(S.version, "TLSv1.2");

    ossl_start(&p, "s_client", "-quiet", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-connect",
               addr, "-CAfile", CA_PEM, NULL);
    assert_null(peer_line(&p));
    assert_int_not_equal(peer_exit(&p), 0);
    peer_stop(&p);
    assert_int_equal(S.started, 1);

    S.mode = H_ECHO;
    py_echo_ok("1000");
    serve_end();
}

TEST(test_server_python_client_alpn, 1, 0) {
    aloop_tls_config_t *c = server_config("server");
    const char *protos[] = {"h2", "http/1.1"};
    assert_int_equal(aloop_tls_config_set_alpn(c, protos, 2), 0);
    serve(c, H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--alpn",
             "spdy/3,http/1.1", "--size", "1048576", NULL);
    assert_string_equal(peer_expect(&p, "handshake "),
                        "handshake version=TLSv1.3 alpn=http/1.1 sni=-");
    assert_string_equal(peer_expect(&p, "echo "), "echo ok 1048576");
    peer_expect(&p, "done");
    peer_stop(&p);
    assert_string_equal(S.alpn, "http/1.1");
    assert_int_equal(S.bytes, BULK);
    assert_int_equal(S.rc, 0); /* the client's close_notify */
    serve_end();
}

/* The server requires client certificates: a client with one is served,
 * one without never reaches the handler and is told (an alert). */
TEST(test_server_requires_client_cert, 1, 0) {
    aloop_tls_config_t *c = server_config("server");
    assert_int_equal(aloop_tls_config_set_ca_file(c, CA_PEM), 0);
    assert_int_equal(aloop_tls_config_require_client_cert(c, 1), 0);
    serve(c, H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--cert", CLIENT_PEM,
             "--key", CLIENT_KEY, "--size", "10000", NULL);
    assert_string_equal(peer_expect(&p, "echo "), "echo ok 10000");
    peer_stop(&p);
    assert_int_equal(S.started, 1);

    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--size", "10000", NULL);
    char *l = peer_line(&p);
    if (strncmp(l, "handshake ", 10) == 0) l = peer_line(&p); /* TLS 1.3: at the first read */
    print_message("client without a certificate: %s\n", l);
    /* an error; its reason (the alert) may be lost: the server closes at
     * once, and closing with the client's data unread resets the
     * connection */
    assert_true(strncmp(l, "error", 5) == 0 || strncmp(l, "handshake-error", 15) == 0);
    peer_stop(&p);
    assert_int_equal(S.started, 1);
    serve_end();
}

/* A client certificate from a CA the server does not trust: never
 * handled, the client is told, the next client is served. */
TEST(test_server_untrusted_client_cert, 1, 0) {
    aloop_tls_config_t *c = server_config("server");
    assert_int_equal(aloop_tls_config_set_ca_file(c, CA_PEM), 0);
    assert_int_equal(aloop_tls_config_require_client_cert(c, 1), 0);
    serve(c, H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--cert",
             cert("other-client.pem"), "--key", cert("other-client.key"), "--size", "10", NULL);
    char *l = peer_line(&p);
    if (strncmp(l, "handshake ", 10) == 0) l = peer_line(&p); /* TLS 1.3: at the first read */
    print_message("client with an untrusted certificate: %s\n", l);
    assert_true(strncmp(l, "error", 5) == 0 || strncmp(l, "handshake-error", 15) == 0);
    peer_stop(&p);
    assert_int_equal(S.started, 0);
    py_start(&p, "client", "echo", "--port", sport(), "--ca", CA_PEM, "--cert", CLIENT_PEM,
             "--key", CLIENT_KEY, "--size", "10000", NULL);
    assert_string_equal(peer_expect(&p, "echo "), "echo ok 10000");
    peer_stop(&p);
    assert_int_equal(S.started, 1);
    serve_end();
}

/* ---- hostile clients */

/* An HTTP request instead of a ClientHello: closed at once (long before
 * the handshake deadline), never handled; the next client is served. */
TEST(test_server_garbage_hello, 1, 0) {
    serve(server_config("server"), H_ECHO, 1000, 1); /* room for one: each failure frees it */
    for (int i = 0; i < 3; i++) {
        peer_t p;
        py_start(&p, "client", "garbage", "--port", sport(), NULL);
        peer_expect(&p, "sent");
        assert_true(strncmp(peer_line(&p), "closed ", 7) == 0); /* not "timeout" */
        peer_stop(&p);
    }
    assert_int_equal(S.started, 0);
    py_echo_ok("10000");
    assert_int_equal(S.started, 1);
    serve_end();
}

/* Half a ClientHello, then silence: while it waits, others are served;
 * the server's teardown closes it. */
TEST(test_server_stalled_handshake_others_served, 1, 0) {
    serve(server_config("server"), H_ECHO, 1000, 0);
    peer_t stall;
    py_start(&stall, "client", "stall", "--port", sport(), NULL);
    peer_expect(&stall, "stalled");
    py_echo_ok("100000");
    py_echo_ok("100000");
    assert_int_equal(S.started, 2);
    serve_end(); /* closes the pending handshake too */
    assert_true(strncmp(peer_line(&stall), "closed ", 7) == 0);
    peer_stop(&stall);
}

/* The handshake deadline frees the slot: with room for one connection, a
 * stalled handshake holds it until its deadline, then the next client gets
 * it. */
TEST(test_server_stalled_handshake_deadline, 1, 0) {
    serve(server_config("server"), H_ECHO, 0.5, 1);
    peer_t stall;
    py_start(&stall, "client", "stall", "--port", sport(), NULL);
    peer_expect(&stall, "stalled");
    py_echo_ok("10000"); /* waits in the backlog until the deadline */
    assert_true(strncmp(peer_line(&stall), "closed ", 7) == 0);
    peer_stop(&stall);
    assert_int_equal(S.started, 1);
    serve_end();
}

/* A ClientHello one byte per 50 ms (slowloris): the deadline is one for
 * the whole handshake, not per byte, so the connection goes at it. */
TEST(test_server_trickled_handshake, 1, 0) {
    serve(server_config("server"), H_ECHO, 0.3, 0);
    peer_t p;
    py_start(&p, "client", "trickle", "--port", sport(), NULL);
    peer_expect(&p, "trickling");
    char *l = peer_line(&p);
    assert_true(strncmp(l, "closed ", 7) == 0); /* not "completed" */
    peer_stop(&p);
    assert_int_equal(S.started, 0);
    serve_end();
}

/* A record cut short, then FIN: the handler gets the bytes before it, then
 * -ECONNRESET. */
TEST(test_server_truncated_record, 1, 0) {
    serve(server_config("server"), H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "truncate", "--port", sport(), NULL);
    peer_expect(&p, "sent");
    assert_true(strncmp(peer_expect(&p, "closed "), "closed ", 7) == 0);
    peer_stop(&p);
    assert_int_equal(S.returned, 1);
    assert_int_equal(S.bytes, 1);
    assert_int_equal(S.rc, -ECONNRESET);
    py_echo_ok("1000");
    serve_end();
}

/* Whole records, then FIN without close_notify: every byte, then
 * -ECONNRESET (a truncation attack must not look like a clean end). */
TEST(test_server_close_without_notify, 1, 0) {
    serve(server_config("server"), H_DRAIN, 0, 0);
    peer_t p;
    py_start(&p, "client", "nonotify", "--port", sport(), "--size", "50000", NULL);
    peer_expect(&p, "sent");
    peer_expect(&p, "closed ");
    peer_stop(&p);
    assert_int_equal(S.returned, 1);
    assert_int_equal(S.bytes, 50000);
    assert_int_equal(S.rc, -ECONNRESET);
    serve_end();
}

/* A record whose authentication tag is wrong: the bytes before it, then
 * -EPROTO (and the connection is closed). */
TEST(test_server_bad_record, 1, 0) {
    serve(server_config("server"), H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "badrecord", "--port", sport(), NULL);
    peer_expect(&p, "sent");
    peer_expect(&p, "closed ");
    peer_stop(&p);
    assert_int_equal(S.returned, 1);
    assert_int_equal(S.bytes, 1);
    assert_int_equal(S.rc, -EPROTO);
    py_echo_ok("1000");
    serve_end();
}

/* TLS 1.3 KeyUpdate from s_client, asking for ours too: the handler's
 * reads answer it (a read that must write) and the echo goes on under the
 * new keys. */
TEST(test_server_s_client_key_update, 0, 1) {
    serve(server_config("server"), H_LINES, 0, 0);
    peer_t p;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", S.port);
    peer_stderr = ALOOP_STDIO_STDOUT; /* s_client says KEYUPDATE there */
    ossl_start(&p, "s_client", "-connect", addr, "-CAfile", CA_PEM, NULL);
    peer_stderr = ALOOP_STDIO_INHERIT;
    peer_write(&p, "before\n", 7);
    peer_expect(&p, "before");
    for (int i = 0; i < 3; i++) {
        char line[32];
        /* KeyUpdate, update_requested; s_client drops what came in the
         * same read as the command: the next line only after it said so */
        peer_write(&p, "K\n", 2);
        peer_expect(&p, "KEYUPDATE");
        snprintf(line, sizeof line, "after %d\n", i);
        peer_write(&p, line, strlen(line));
        line[strlen(line) - 1] = '\0';
        peer_expect(&p, line);
    }
    peer_write(&p, "Q\n", 2); /* s_client: close_notify, and it ends */
    while (peer_line(&p))
        ;
    assert_int_equal(peer_exit(&p), 0);
    peer_stop(&p);
    assert_int_equal(S.returned, 1);
    assert_int_equal(S.rc, 0); /* a clean EOF, no error */
    serve_end();
}

/* The same from s_server to the library's client. */
TEST(test_client_s_server_key_update, 0, 1) {
    peer_t p;
    int port = s_server_start(&p, NULL);
    aloop_tls_config_t *c = client_config();
    aloop_stream_t *s;
    assert_int_equal(dial("localhost", port, c, &s), 0);
    assert_int_equal(aloop_stream_write(s, "hello\n", 6), 6);
    peer_expect(&p, "hello");
    for (int i = 0; i < 3; i++) {
        char line[32], got[64];
        peer_write(&p, "K\n", 2); /* s_server: KeyUpdate, update_requested */
        peer_expect(&p, "SSL_do_handshake -> 1"); /* sent (a command must come alone) */
        snprintf(line, sizeof line, "update %d\n", i);
        peer_write(&p, line, strlen(line));
        assert_int_equal(aloop_stream_readline(s, got, sizeof got), (ssize_t)strlen(line));
        assert_string_equal(got, line);
        snprintf(line, sizeof line, "reply %d\n", i);
        assert_int_equal(aloop_stream_write(s, line, strlen(line)), (ssize_t)strlen(line));
        line[strlen(line) - 1] = '\0';
        peer_expect(&p, line);
    }
    aloop_stream_close(s);
    peer_stop(&p);
    aloop_tls_config_free(c);
}

/* A task that counts its steps while a handler is in its read loop. */
static void *ticker(void *arg) {
    (void)arg;
    while (!S.flood_done) {
        if (aloop_sleep(0) < 0) return NULL;
        if (S.in_flood) S.ticks++;
    }
    return NULL;
}

/* 2000 one-byte records in one burst, all in the socket before the
 * handler reads (it waits for the peer's "sent"): the echo is byte-exact,
 * and the loop's other tasks run while the handler works through records
 * that are always there (the cooperative budget). */
TEST(test_server_tiny_record_flood, 1, 0) {
    S.gate = aloop_event_new(aloop_current());
    assert_non_null(S.gate);
    S.flood_bytes = 2000;
    serve(server_config("server"), H_ECHO, 0, 0);
    peer_t p;
    py_start(&p, "client", "tiny", "--port", sport(), "--size", "2000", NULL);
    peer_expect(&p, "sent");
    aloop_task_t *tk = spawn(aloop_current(), ticker, NULL);
    aloop_event_set(S.gate);
    assert_string_equal(peer_expect(&p, "echo "), "echo ok 2000");
    peer_stop(&p);
    assert_int_equal(aloop_await(tk, NULL), 0);
    aloop_release(tk);
    print_message("ticker steps while the handler read: %d\n", S.ticks);
    assert_true(S.ticks > 0);
    aloop_event_free(S.gate);
    S.gate = NULL;
    py_echo_ok("1000");
    serve_end();
}

/* A TLS 1.2 client asks to renegotiate: refused with a clear error, the
 * server carries on. */
TEST(test_server_client_renegotiation, 0, 1) {
    serve(server_config("server"), H_LINES, 0, 0);
    peer_t p;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", S.port);
    ossl_start(&p, "s_client", "-tls1_2", "-connect", addr, "-CAfile", CA_PEM, NULL);
    peer_write(&p, "before\n", 7);
    peer_expect(&p, "before");
    peer_write(&p, "R\n", 2); /* s_client: renegotiate (it says so on stderr) */
    assert_null(peer_line(&p)); /* refused: s_client gives up */
    assert_int_not_equal(peer_exit(&p), 0);
    peer_stop(&p);
    print_message("handler after the renegotiation attempt: %zd %s\n", S.rc, aloop_tls_error());
    assert_int_equal(S.returned, 1);
    assert_int_equal(S.rc, -EPROTO);
    S.mode = H_ECHO;
    py_echo_ok("1000");
    serve_end();
}

/* The client sends its data and close_notify, then keeps reading: the
 * handler reads EOF (0), still writes its answer, and closes cleanly. */
TEST(test_server_half_close, 1, 0) {
    serve(server_config("server"), H_HALFCLOSE, 0, 0);
    peer_t p;
    py_start(&p, "client", "halfclose", "--port", sport(), "--size", "20000", NULL);
    assert_string_equal(peer_expect(&p, "reply "), "reply 29 got 20000 after close_notify");
    assert_string_equal(peer_line(&p), "eof clean");
    peer_stop(&p);
    assert_int_equal(S.rc, 0);
    serve_end();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_s_server_echo),
        cmocka_unit_test(test_client_s_server_tls12),
        cmocka_unit_test(test_client_refuses_tls11_server),
        cmocka_unit_test(test_client_s_server_alpn),
        cmocka_unit_test(test_client_cert_s_server),
        cmocka_unit_test(test_client_s_server_renegotiation),
        cmocka_unit_test(test_client_s_server_resumption),
        cmocka_unit_test(test_client_silent_server),
        cmocka_unit_test(test_client_python_server_echo),
        cmocka_unit_test(test_client_half_close_python_server),
        cmocka_unit_test(test_client_ip_host),
        cmocka_unit_test(test_client_refuses_expired),
        cmocka_unit_test(test_client_refuses_wrong_name),
        cmocka_unit_test(test_client_refuses_untrusted),
        cmocka_unit_test(test_client_server_vanishes),
        cmocka_unit_test(test_client_truncated_record),
        cmocka_unit_test(test_server_s_client_echo),
        cmocka_unit_test(test_server_s_client_versions),
        cmocka_unit_test(test_server_python_client_alpn),
        cmocka_unit_test(test_server_requires_client_cert),
        cmocka_unit_test(test_server_untrusted_client_cert),
        cmocka_unit_test(test_server_garbage_hello),
        cmocka_unit_test(test_server_stalled_handshake_others_served),
        cmocka_unit_test(test_server_stalled_handshake_deadline),
        cmocka_unit_test(test_server_trickled_handshake),
        cmocka_unit_test(test_server_truncated_record),
        cmocka_unit_test(test_server_close_without_notify),
        cmocka_unit_test(test_server_bad_record),
        cmocka_unit_test(test_server_s_client_key_update),
        cmocka_unit_test(test_client_s_server_key_update),
        cmocka_unit_test(test_server_tiny_record_flood),
        cmocka_unit_test(test_server_client_renegotiation),
        cmocka_unit_test(test_server_half_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

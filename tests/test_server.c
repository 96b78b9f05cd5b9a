/*
 * test_server.c - stream servers (src/server.c): a handler task per
 * connection, close / wait_closed / free, the connection count, teardown by
 * aloop_free, accept errors (EMFILE back-off, fatal errors).
 */
#include "aloop_test.h"


#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCLIENTS 200

typedef struct srv_ctx {
    aloop_server_t *srv;
    char port[16];
    int handlers_started;
    int handlers_returned;
    int handler_rc[NCLIENTS]; /* what each handler's last call returned */
    size_t max_conns;         /* highest aloop_server_connections seen */
    int client_ok;
    int rc[8];
    double when[4];
    int mode; /* what the handler does; see handler() */
} srv_ctx_t;

enum { ECHO, HOLD, CLOSE_EARLY, FREE_SERVER };

static void listen_port(int lfd, char *port, size_t len) {
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    snprintf(port, len, "%d", ntohs(sin.sin_port));
}

static aloop_server_t *serve_local(aloop_t *loop, aloop_conn_fn fn, srv_ctx_t *c) {
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 512);
    assert_true(lfd >= 0);
    listen_port(lfd, c->port, sizeof c->port);
    aloop_server_t *srv = aloop_serve(loop, lfd, fn, c);
    assert_non_null(srv);
    assert_int_equal(aloop_server_fd(srv), lfd);
    c->srv = srv;
    return srv;
}

/* ECHO: lines back until EOF. HOLD: waits for input that never comes.
 * CLOSE_EARLY: says bye, closes its stream, then still suspends once.
 * FREE_SERVER: frees its own server, then suspends (and is cancelled). */
static void handler(aloop_stream_t *conn, void *arg) {
    srv_ctx_t *c = arg;
    int id = c->handlers_started++;
    size_t n = aloop_server_connections(c->srv);
    if (n > c->max_conns) c->max_conns = n;
    char line[128];
    ssize_t rc = 0;
    switch (c->mode) {
    case ECHO:
        while ((rc = aloop_stream_readline(conn, line, sizeof line)) > 0)
            if ((rc = aloop_stream_write(conn, line, (size_t)rc)) < 0) break;
        break;
    case HOLD: rc = aloop_stream_readline(conn, line, sizeof line); break;
    case CLOSE_EARLY:
        aloop_stream_write(conn, "bye\n", 4);
        aloop_stream_close(conn);
        rc = aloop_sleep(0.1);
        break;
    case FREE_SERVER:
        aloop_server_free(c->srv);
        rc = aloop_sleep(10);
        break;
    }
    if (id < NCLIENTS) c->handler_rc[id] = (int)rc;
    c->handlers_returned++;
}

/* Waits (virtual time) until *count reaches n: 0, or -ETIMEDOUT after 10
 * s. Under simulated allocation failures a connection the server could not
 * take never gets a handler: the test then fails instead of waiting for
 * ever. */
static int wait_count(const int *count, int n) {
    for (double until = now() + 10; *count < n;)
        if (now() >= until || aloop_sleep(0.01) < 0) return -ETIMEDOUT;
    return 0;
}

/* A client: connects, sends "hello <i>", expects it back, closes. */
typedef struct client {
    srv_ctx_t *c;
    int i;
} client_t;

static void *echo_client(void *arg) {
    client_t *cl = arg;
    aloop_stream_t *s;
    if (aloop_open_connection("127.0.0.1", cl->c->port, 10, &s) < 0) return NULL;
    char msg[32], back[32];
    int len = snprintf(msg, sizeof msg, "hello %d\n", cl->i);
    /* every connection is being served before any finishes (however late
     * accepts come: simulation delays them) */
    wait_count(&cl->c->handlers_started, NCLIENTS);
    if (aloop_stream_write(s, msg, (size_t)len) == len &&
        aloop_stream_readline(s, back, sizeof back) == len && strcmp(msg, back) == 0)
        cl->c->client_ok++;
    aloop_stream_close(s);
    return NULL;
}

/* Many concurrent connections, each served by its own handler task; the
 * server closed afterwards reports idle through wait_closed. */
static void *many_main(void *arg) {
    srv_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_server_t *srv = serve_local(loop, handler, c);
    client_t cl[NCLIENTS];
    aloop_task_t *ts[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (client_t){c, i};
        ts[i] = spawn(loop, echo_client, &cl[i]);
    }
    aloop_gather(ts, NCLIENTS, NULL, NULL, 0);
    for (int i = 0; i < NCLIENTS; i++) aloop_release(ts[i]);
    assert_int_equal(aloop_server_close(srv), 0);
    assert_int_equal(aloop_server_close(srv), 0); /* again: nothing */
    assert_int_equal(aloop_server_fd(srv), -1);
    c->rc[0] = aloop_server_wait_closed(srv);
    c->rc[1] = (int)aloop_server_connections(srv);
    aloop_server_free(srv);
    return NULL;
}

static void test_many_connections(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = ECHO};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, many_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    assert_int_equal(aloop_run(loop), 0); /* nothing left behind */
    aloop_free(loop);
    assert_int_equal(c.client_ok, NCLIENTS);
    assert_int_equal(c.handlers_started, NCLIENTS);
    assert_int_equal(c.handlers_returned, NCLIENTS);
    assert_true(c.max_conns > NCLIENTS / 2); /* they really ran side by side */
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 0);
}

/* Closing stops accepting (new connects are refused) while running
 * handlers go on; wait_closed returns once the last one has returned. A
 * waiter that started before the close waits for the close too. */
static void *early_waiter(void *arg) {
    srv_ctx_t *c = arg;
    c->rc[2] = aloop_server_wait_closed(c->srv);
    c->when[0] = now();
    return NULL;
}

static void *close_main(void *arg) {
    srv_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_server_t *srv = serve_local(loop, handler, c);
    aloop_task_t *w = spawn(loop, early_waiter, c);
    aloop_stream_t *s;
    assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 1, &s), 0);
    aloop_stream_write(s, "one\n", 4);
    char line[32];
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 4);
    aloop_sleep(1);
    assert_false(aloop_future_done(w)); /* not closed yet */
    aloop_server_close(srv);
    aloop_stream_t *s2 = NULL;
    c->rc[0] = aloop_open_connection("127.0.0.1", c->port, 1, &s2);
    /* the open connection is still served */
    aloop_stream_write(s, "two\n", 4);
    c->rc[1] = (int)aloop_stream_readline(s, line, sizeof line);
    aloop_sleep(1);
    assert_false(aloop_future_done(w)); /* a handler still runs */
    assert_int_equal(aloop_server_connections(srv), 1);
    c->when[1] = now();
    aloop_stream_close(s); /* the handler sees EOF and returns */
    assert_int_equal(aloop_server_wait_closed(srv), 0);
    c->when[2] = now();
    aloop_await(w, NULL);
    aloop_release(w);
    aloop_server_free(srv);
    return NULL;
}

static void test_close_while_handlers_run(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = ECHO};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, close_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.rc[0], -ECONNREFUSED);
    assert_int_equal(c.rc[1], 4);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.handlers_returned, 1);
    assert_true(c.when[0] >= c.when[1]);
    assert_true(c.when[2] >= c.when[1]);
}

/* aloop_server_free cancels running handlers (they see -ECANCELED), closes
 * their connections (the peers see EOF) and the listener; a wait_closed
 * in progress returns once they are gone. */
static void *free_waiter(void *arg) {
    srv_ctx_t *c = arg;
    c->rc[3] = aloop_server_wait_closed(c->srv);
    return NULL;
}

static void *free_main(void *arg) {
    srv_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_server_t *srv = serve_local(loop, handler, c);
    aloop_stream_t *s[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 1, &s[i]), 0);
    aloop_task_t *w = spawn(loop, free_waiter, c);
    wait_count(&c->handlers_started, 3);
    c->rc[0] = (int)aloop_server_connections(srv);
    int lfd = aloop_server_fd(srv);
    aloop_server_free(srv);
    c->rc[1] = fcntl(lfd, F_GETFD) == -1; /* listener closed at once */
    aloop_await(w, NULL);
    aloop_release(w);
    char b[8];
    c->rc[2] = 0;
    for (int i = 0; i < 3; i++) {
        if (aloop_stream_read(s[i], b, sizeof b) == 0) c->rc[2]++;
        aloop_stream_close(s[i]);
    }
    return NULL;
}

static void test_free_cancels_handlers(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = HOLD};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, free_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.rc[0], 3);
    assert_int_equal(c.rc[1], 1);
    assert_int_equal(c.rc[2], 3);
    assert_int_equal(c.rc[3], 0);
    assert_int_equal(c.handlers_returned, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(c.handler_rc[i], -ECANCELED);
}

/* cancel_handlers: every running handler sees -ECANCELED; the server keeps
 * accepting until closed; then wait_closed returns at once. */
static void *cancel_main(void *arg) {
    srv_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_server_t *srv = serve_local(loop, handler, c);
    aloop_stream_t *s[3];
    for (int i = 0; i < 2; i++)
        assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 1, &s[i]), 0);
    wait_count(&c->handlers_started, 2);
    c->rc[0] = (int)aloop_server_cancel_handlers(srv);
    wait_count(&c->handlers_returned, 2);
    c->rc[1] = (int)aloop_server_connections(srv);
    /* still serving */
    c->rc[2] = aloop_open_connection("127.0.0.1", c->port, 1, &s[2]);
    wait_count(&c->handlers_started, 3);
    aloop_server_close(srv);
    c->rc[3] = (int)aloop_server_cancel_handlers(srv);
    c->rc[4] = aloop_server_wait_closed(srv);
    aloop_server_free(srv);
    for (int i = 0; i < 3; i++) aloop_stream_close(s[i]);
    return NULL;
}

static void test_cancel_handlers(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = HOLD};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, cancel_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.rc[0], 2);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.rc[3], 1);
    assert_int_equal(c.rc[4], 0);
    for (int i = 0; i < 3; i++) assert_int_equal(c.handler_rc[i], -ECANCELED);
    assert_int_equal(aloop_server_cancel_handlers(NULL), 0);
}

/* aloop_free on a loop with a live server and running handlers: handlers
 * are cancelled, connections and the listener closed (ASan: no leak once
 * aloop_server_free has freed the handle, called after aloop_free). */
static void *connect_and_hold(void *arg) {
    srv_ctx_t *c = arg;
    int fd = aloop_tcp_connect("127.0.0.1", c->port, 1);
    c->rc[0] = fd < 0 ? fd : 0;
    if (fd >= 0) {
        wait_count(&c->handlers_started, 1);
        c->rc[4] = fd;
    }
    return NULL; /* keeps fd open: aloop_free must not care */
}

static void test_loop_free_with_live_server(void **state) {
    (void)state;
    for (int unstarted = 0; unstarted < 2; unstarted++) {
        srv_ctx_t c = {.mode = HOLD};
        aloop_t *loop = vloop();
        aloop_server_t *srv = serve_local(loop, handler, &c);
        int lfd = aloop_server_fd(srv);
        if (!unstarted) {
            aloop_task_t *t = spawn(loop, connect_and_hold, &c);
            assert_int_equal(aloop_run_until_complete(loop, t), 0);
            aloop_release(t);
            assert_int_equal(aloop_server_connections(srv), 1);
        }
        aloop_free(loop);
        assert_int_equal(fcntl(lfd, F_GETFD), -1);
        assert_int_equal(aloop_server_connections(srv), 0);
        if (!unstarted) {
            assert_int_equal(c.handler_rc[0], -ECANCELED);
            char b[4];
            assert_int_equal(read(c.rc[4], b, sizeof b), 0); /* our side was closed */
            close(c.rc[4]);
        }
        aloop_server_free(srv);
    }
}

/* A handler may close its own stream early (no double close or free), and
 * may free its own server: it is cancelled itself at its next suspension. */
static void *bye_client(void *arg) {
    srv_ctx_t *c = arg;
    aloop_stream_t *s;
    if (aloop_open_connection("127.0.0.1", c->port, 1, &s) < 0) return NULL;
    char line[16];
    c->rc[0] = (int)aloop_stream_readline(s, line, sizeof line);
    c->rc[1] = (int)aloop_stream_readline(s, line, sizeof line);
    aloop_stream_close(s);
    return NULL;
}

static void test_handler_closes_early(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = CLOSE_EARLY};
    aloop_t *loop = vloop();
    aloop_server_t *srv = serve_local(loop, handler, &c);
    aloop_task_t *t = spawn(loop, bye_client, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    while (c.handlers_returned < 1) {
        aloop_stop(loop);
        aloop_run(loop);
    }
    assert_int_equal(c.rc[0], 4);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.handler_rc[0], 0);
    assert_int_equal(aloop_server_connections(srv), 0);
    aloop_server_free(srv);
    assert_int_equal(aloop_run(loop), 0);
    aloop_free(loop);
}

static void test_handler_frees_server(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = FREE_SERVER};
    aloop_t *loop = vloop();
    serve_local(loop, handler, &c);
    aloop_task_t *t = spawn(loop, bye_client, &c);
    assert_int_equal(aloop_run(loop), 0); /* the server went away by itself */
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.handlers_returned, 1);
    assert_int_equal(c.handler_rc[0], -ECANCELED);
    assert_int_equal(c.rc[0], 0); /* the client saw EOF */
}

/* wait_closed: cancellable while suspended (the server is unaffected),
 * -EDEADLK from a handler of the same server, -EPERM outside a task. */
static void deadlock_handler(aloop_stream_t *conn, void *arg) {
    (void)conn;
    srv_ctx_t *c = arg;
    c->rc[1] = aloop_server_wait_closed(c->srv);
    c->handlers_returned++;
}

static void *wait_cancel_main(void *arg) {
    srv_ctx_t *c = arg;
    aloop_t *loop = aloop_current();
    aloop_server_t *srv = serve_local(loop, deadlock_handler, c);
    aloop_task_t *self = aloop_current_task();
    aloop_call_later(loop, 1, cancel_cb, self);
    c->rc[0] = aloop_server_wait_closed(srv);
    aloop_task_uncancel(self);
    aloop_stream_t *s;
    c->rc[2] = aloop_open_connection("127.0.0.1", c->port, 1, &s);
    wait_count(&c->handlers_returned, 1);
    aloop_stream_close(s);
    aloop_server_close(srv);
    c->rc[3] = aloop_server_wait_closed(srv);
    c->rc[4] = aloop_server_wait_closed(srv); /* idle: at once */
    aloop_server_free(srv);
    return NULL;
}

static void test_wait_closed_rules(void **state) {
    (void)state;
    srv_ctx_t c = {0};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, wait_cancel_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    assert_int_equal(c.rc[0], -ECANCELED);
    assert_int_equal(c.rc[1], -EDEADLK);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.rc[3], 0);
    assert_int_equal(c.rc[4], 0);
    /* outside a task */
    c = (srv_ctx_t){0};
    aloop_server_t *srv = serve_local(loop, handler, &c);
    assert_int_equal(aloop_server_wait_closed(srv), -EPERM);
    aloop_server_free(srv);
    assert_int_equal(aloop_run(loop), 0);
    aloop_free(loop);
}

/* A listening fd that is no listening socket: the server closes itself and
 * wait_closed reports why. */
static void *fatal_main(void *arg) {
    srv_ctx_t *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* never listen()ed */
    aloop_server_t *srv = aloop_serve(aloop_current(), fd, handler, c);
    c->rc[0] = aloop_server_wait_closed(srv);
    c->rc[1] = fcntl(fd, F_GETFD) == -1;
    aloop_server_free(srv);
    return NULL;
}

static void test_fatal_accept_error(void **state) {
    (void)state;
    srv_ctx_t c = {0};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, fatal_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.rc[0], -EINVAL);
    assert_int_equal(c.rc[1], 1);
}

/* Any stream listener works, not just TCP (TCP_NODELAY fails harmlessly). */
static void *unix_main(void *arg) {
    srv_ctx_t *c = arg;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int len = snprintf(sun.sun_path + 1, sizeof sun.sun_path - 1, "aloop-test-server-%d",
                       (int)getpid());
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sl), 0);
    assert_int_equal(listen(lfd, 8), 0);
    c->srv = aloop_serve(aloop_current(), lfd, handler, c);
    assert_non_null(c->srv);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    c->rc[0] = aloop_connect(fd, (struct sockaddr *)&sun, sl);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), fd, 0);
    aloop_stream_write(s, "unix\n", 5);
    char line[16];
    c->rc[1] = (int)aloop_stream_readline(s, line, sizeof line);
    aloop_stream_close(s);
    aloop_server_close(c->srv);
    c->rc[2] = aloop_server_wait_closed(c->srv);
    aloop_server_free(c->srv);
    return NULL;
}

static void test_unix_listener(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = ECHO};
    aloop_t *loop = vloop();
    aloop_task_t *t = spawn(loop, unix_main, &c);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 5);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.handlers_returned, 1);
}

static void test_bad_args(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    errno = 0;
    assert_null(aloop_serve(NULL, 3, handler, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_serve(loop, -1, handler, NULL));
    assert_null(aloop_serve(loop, 3, NULL, NULL));
    assert_int_equal(aloop_server_close(NULL), -EINVAL);
    assert_int_equal(aloop_server_wait_closed(NULL), -EINVAL);
    assert_int_equal(aloop_server_connections(NULL), 0);
    assert_int_equal(aloop_server_fd(NULL), -EINVAL);
    aloop_server_free(NULL);
    aloop_free(loop);
}

/* Out of fds with a connection waiting: the server pauses between accept
 * attempts instead of spinning, and serves the connection once an fd is
 * free. Run in a child: it lowers its own fd limit. */
typedef struct emfile_ctx {
    aloop_server_t *srv;
    int spare;
    int served;
    double served_at;
    int ticks; /* a 10 ms ticker: proof the loop kept running */
} emfile_ctx_t;

static void emfile_handler(aloop_stream_t *conn, void *arg) {
    (void)conn;
    emfile_ctx_t *e = arg;
    e->served++;
    e->served_at = now();
    aloop_server_close(e->srv); /* then the loop runs dry */
}

static void *emfile_freer(void *arg) {
    emfile_ctx_t *e = arg;
    aloop_sleep(0.6);
    close(e->spare); /* one fd free again */
    return NULL;
}

static void *ticker(void *arg) {
    emfile_ctx_t *e = arg;
    while (!e->served && aloop_sleep(0.01) == 0) e->ticks++;
    return NULL;
}

static int emfile_child(void) {
    aloop_t *loop = aloop_new(); /* real time: a spin would burn the CPU */
    if (!loop) return 10;
    emfile_ctx_t e = {0};
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 4);
    if (lfd < 0) return 11;
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cl, (struct sockaddr *)&sin, sl) < 0) return 12; /* waits in the backlog */
    aloop_server_t *srv = aloop_serve(loop, lfd, emfile_handler, &e);
    if (!srv) return 13;
    e.srv = srv;
    aloop_release(aloop_spawn(loop, ticker, &e));
    aloop_release(aloop_spawn(loop, emfile_freer, &e));
    /* the tasks exist (no fd needed to run them): now use up every fd */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return 14;
    int last = -1;
    for (;;) {
        int fd = dup(lfd);
        if (fd < 0) break;
        last = fd;
    }
    if (last < 0 || errno != EMFILE) return 15;
    e.spare = last;
    double cpu0 = cpu_seconds();
    if (aloop_run(loop) != 0 || !e.served) return 16;
    double cpu = cpu_seconds() - cpu0;
    if (e.served_at < 0.6) return 17;
    if (cpu > 0.3) return 18; /* a spinning accept loop burns all of the 0.6 s */
    if (e.ticks < 20) return 19; /* the loop was not stalled */
    aloop_server_free(srv);
    aloop_free(loop);
    close(cl);
    return 0;
}

static void test_emfile_backoff(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(emfile_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Allocation failures anywhere in a serve / connect / echo / close run:
 * every call of ours returns success or -ENOMEM, the loop runs dry, and
 * (ASan) nothing leaks. */
typedef struct alloc_ctx {
    char port[16];
    int violations;
    char what[96];
} alloc_ctx_t;

static void alloc_bad(alloc_ctx_t *a, const char *call, long rc) {
    if (a->violations++ == 0) snprintf(a->what, sizeof a->what, "%s returned %ld", call, rc);
}

static void alloc_echo(aloop_stream_t *conn, void *arg) {
    (void)arg;
    char line[64];
    ssize_t n;
    while ((n = aloop_stream_readuntil(conn, "\r\n", 2, line, sizeof line)) > 0)
        if (aloop_stream_write(conn, line, (size_t)n) < 0) break;
}

static void *alloc_client(void *arg) {
    alloc_ctx_t *a = arg;
    aloop_stream_t *s;
    int rc = aloop_open_connection("127.0.0.1", a->port, 5, &s);
    if (rc < 0) { /* refused: the server closed, its accept task had no memory to start;
                   * reset: it accepted, then dropped us before we looked */
        if (rc != -ENOMEM && rc != -ECONNREFUSED && rc != -ECONNRESET)
            alloc_bad(a, "aloop_open_connection", rc);
        return NULL;
    }
    ssize_t n = aloop_stream_write(s, "hi\r\n", 4);
    char line[16];
    if (n == 4) n = aloop_stream_readuntil(s, "\r\n", 2, line, sizeof line);
    /* the server may have dropped us for want of memory: EOF or a reset */
    if (n != 4 && n != 0 && n != -ENOMEM && n != -ECONNRESET && n != -EPIPE)
        alloc_bad(a, "client exchange", n);
    aloop_stream_close(s);
    return NULL;
}

static void *alloc_main(void *arg) {
    alloc_ctx_t *a = arg;
    aloop_t *loop = aloop_current();
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 16);
    if (lfd < 0) {
        if (lfd != -ENOMEM) alloc_bad(a, "aloop_tcp_listen", lfd);
        return NULL;
    }
    listen_port(lfd, a->port, sizeof a->port);
    errno = 0;
    aloop_server_t *srv = aloop_serve(loop, lfd, alloc_echo, a);
    if (!srv) {
        if (errno != ENOMEM) alloc_bad(a, "aloop_serve", -errno);
        aloop_close(lfd);
        return NULL;
    }
    aloop_task_t *ts[3];
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        if ((ts[n] = aloop_spawn(loop, alloc_client, a)) != NULL) n++;
    if (n) aloop_gather(ts, n, NULL, NULL, ALOOP_RETURN_ERRORS);
    for (size_t i = 0; i < n; i++) aloop_release(ts[i]);
    aloop_server_close(srv);
    int rc = aloop_server_wait_closed(srv);
    if (rc != 0 && rc != -ENOMEM) alloc_bad(a, "aloop_server_wait_closed", rc);
    aloop_server_free(srv);
    return NULL;
}

/* Returns how many allocations the run made. */
static unsigned long alloc_run(long nth, long count) {
    alloc_ctx_t a = {0};
    test_fail_alloc(nth, count);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    if (!loop) {
        test_fail_alloc(0, 0);
        return 0;
    }
    aloop_task_t *m = aloop_spawn(loop, alloc_main, &a);
    if (m) {
        int rc = aloop_run_until_complete(loop, m);
        if (rc != 0 && rc != -ENOMEM) alloc_bad(&a, "alloc_main", rc);
        aloop_release(m);
    }
    int rc = aloop_run(loop);
    unsigned long made = test_alloc_count();
    test_fail_alloc(0, 0);
    if (rc != 0) alloc_bad(&a, "aloop_run", rc);
    if (a.violations) fail_msg("nth %ld count %ld: %s", nth, count, a.what);
    assert_int_equal(aloop_all_tasks(loop, NULL, 0), 0);
    aloop_free(loop);
    return made;
}

static void test_allocation_failures(void **state) {
    (void)state;
    unsigned long total = alloc_run(LONG_MAX, 0); /* counts, never fails */
    assert_true(total > 10);
    print_message("serve scenario makes %lu allocations\n", total);
    for (long nth = 1; nth <= (long)total; nth++) {
        alloc_run(nth, 1);  /* only that one fails */
        alloc_run(nth, -1); /* that one and every later one */
    }
}

/* ---- aloop_serve_with ------------------------------------------------------ */

/* max_connections 2 and five clients at once: never more than two
 * handlers live (the others wait in the backlog, not accepted), and all
 * five are served, two at a time (three rounds of 0.5 s). */
typedef struct limit_ctx {
    char port[16];
    aloop_server_t *srv;
    aloop_serve_opts_t opts;
    int live, max_live, served, ok, nclients;
    size_t max_seen;
    ssize_t first, second;
    double took;
} limit_ctx_t;

static void limited_handler(aloop_stream_t *conn, void *arg) {
    limit_ctx_t *c = arg;
    if (++c->live > c->max_live) c->max_live = c->live;
    if (aloop_server_connections(c->srv) > c->max_seen) c->max_seen = aloop_server_connections(c->srv);
    char line[64];
    ssize_t k = aloop_stream_readline(conn, line, sizeof line);
    aloop_sleep(0.5);
    if (k > 0 && aloop_stream_write(conn, line, (size_t)k) == k) c->served++;
    c->live--;
}

static void *limit_client(void *arg) {
    limit_ctx_t *c = arg;
    aloop_stream_t *s;
    if (aloop_open_connection("127.0.0.1", c->port, 10, &s) < 0) return NULL;
    char back[64];
    if (aloop_stream_write(s, "hi\n", 3) == 3 && aloop_stream_readline(s, back, sizeof back) == 3)
        c->ok++;
    aloop_stream_close(s);
    return NULL;
}

static void *limit_main(void *arg) {
    limit_ctx_t *c = arg;
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 16);
    assert_true(lfd >= 0);
    listen_port(lfd, c->port, sizeof c->port);
    c->srv = aloop_serve_with(aloop_current(), lfd, &c->opts, limited_handler, c);
    assert_non_null(c->srv);
    aloop_task_t *ts[5];
    double start = now();
    for (int i = 0; i < c->nclients; i++) ts[i] = spawn(aloop_current(), limit_client, c);
    aloop_gather(ts, (size_t)c->nclients, NULL, NULL, 0);
    c->took = now() - start;
    for (int i = 0; i < c->nclients; i++) aloop_release(ts[i]);
    aloop_server_close(c->srv);
    assert_int_equal(aloop_server_wait_closed(c->srv), 0);
    aloop_server_free(c->srv);
    return NULL;
}

static void test_serve_with_max_connections(void **state) {
    (void)state;
    limit_ctx_t c = {.opts = {.max_connections = 2}, .nclients = 5};
    assert_int_equal(aloop_main_with(&(aloop_config_t){.clock = ALOOP_CLOCK_VIRTUAL}, limit_main,
                                     &c, NULL),
                     0);
    assert_int_equal(c.max_live, 2);
    assert_int_equal(c.max_seen, 2);
    assert_int_equal(c.served, 5);
    assert_int_equal(c.ok, 5);
    assert_true(c.took >= 1.5 - 1e-9); /* three rounds: 2 + 2 + 1 */
}

/* No limit (opts NULL, and max_connections 0): all five side by side. */
static void test_serve_with_defaults(void **state) {
    (void)state;
    limit_ctx_t c = {.nclients = 5};
    assert_int_equal(aloop_main_with(&(aloop_config_t){.clock = ALOOP_CLOCK_VIRTUAL}, limit_main,
                                     &c, NULL),
                     0);
    assert_int_equal(c.max_live, 5);
    assert_int_equal(c.ok, 5);
    assert_true(c.took < 1.0);
}

/* Per-connection max_line: a longer line is -EMSGSIZE at once, the next
 * one is read. And opts NULL serves with the defaults. */
static void line_handler(aloop_stream_t *conn, void *arg) {
    limit_ctx_t *c = arg;
    char line[64];
    c->first = aloop_stream_readline(conn, line, sizeof line);
    c->second = aloop_stream_readline(conn, line, sizeof line);
    aloop_stream_write(conn, "done\n", 5);
}

static void *max_line_main(void *arg) {
    limit_ctx_t *c = arg;
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 16);
    listen_port(lfd, c->port, sizeof c->port);
    c->srv = aloop_serve_with(aloop_current(), lfd, &c->opts, line_handler, c);
    aloop_stream_t *s;
    assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 10, &s), 0);
    aloop_stream_write(s, "0123456789abcdef\nok\n", 20);
    char back[16];
    c->ok = aloop_stream_readline(s, back, sizeof back) == 5;
    aloop_stream_close(s);
    aloop_server_free(c->srv);
    return NULL;
}

static void test_serve_with_max_line(void **state) {
    (void)state;
    limit_ctx_t c = {.opts = {.max_line = 8}};
    assert_int_equal(aloop_main(max_line_main, &c, NULL), 0);
    assert_int_equal(c.first, -EMSGSIZE);
    assert_int_equal(c.second, 3);
    assert_int_equal(c.ok, 1);
}

/* Closed while the accept task waits for a slot: it stops there, and the
 * server goes idle once the handler is cancelled. */
static void *held_at_limit_main(void *arg) {
    srv_ctx_t *c = arg;
    int lfd = aloop_tcp_listen("127.0.0.1", "0", 16);
    listen_port(lfd, c->port, sizeof c->port);
    aloop_serve_opts_t o = {.max_connections = 1};
    c->srv = aloop_serve_with(aloop_current(), lfd, &o, handler, c);
    aloop_stream_t *s1, *s2;
    assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 10, &s1), 0);
    assert_int_equal(aloop_open_connection("127.0.0.1", c->port, 10, &s2), 0); /* backlog */
    aloop_sleep(1);
    c->rc[0] = c->handlers_started;
    aloop_server_close(c->srv);
    aloop_server_cancel_handlers(c->srv);
    c->rc[1] = aloop_server_wait_closed(c->srv);
    c->rc[2] = c->handlers_started;
    aloop_server_free(c->srv);
    aloop_stream_close(s1);
    aloop_stream_close(s2);
    return NULL;
}

static void test_serve_with_close_at_limit(void **state) {
    (void)state;
    srv_ctx_t c = {.mode = HOLD};
    assert_int_equal(aloop_main_with(&(aloop_config_t){.clock = ALOOP_CLOCK_VIRTUAL},
                                     held_at_limit_main, &c, NULL),
                     0);
    assert_int_equal(c.rc[0], 1);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 1);
    assert_int_equal(c.handler_rc[0], -ECANCELED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serve_with_max_connections),
        cmocka_unit_test(test_serve_with_defaults),
        cmocka_unit_test(test_serve_with_max_line),
        cmocka_unit_test(test_serve_with_close_at_limit),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_close_while_handlers_run),
        cmocka_unit_test(test_free_cancels_handlers),
        cmocka_unit_test(test_cancel_handlers),
        cmocka_unit_test(test_loop_free_with_live_server),
        cmocka_unit_test(test_handler_closes_early),
        cmocka_unit_test(test_handler_frees_server),
        cmocka_unit_test(test_wait_closed_rules),
        cmocka_unit_test(test_fatal_accept_error),
        cmocka_unit_test(test_unix_listener),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_emfile_backoff),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

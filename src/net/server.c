/*
 * server.c - stream servers (asyncio.start_server): an accept task that
 * runs a handler task per connection, and the server's lifecycle.
 *
 * Lifecycle: serving -> closed (the listener is closed, no more accepts)
 * -> idle (closed, and the accept task and every handler have finished).
 * aloop_server_wait_closed waits for idle. aloop_server_free closes,
 * cancels the handlers and frees the server once it is idle.
 *
 * Ends of tasks are noticed with a waiter on the task's future, fired
 * synchronously when the task completes: that covers a handler whose task
 * was cancelled before its first step (its function never runs) and tasks
 * finished by aloop_free, so a connection's stream is closed and freed
 * however its task ends. Our spawn references are dropped at once; the
 * loop's own reference keeps each task valid until it completes, which is
 * exactly as long as it is on our lists.
 *
 * With max_connections, the accept task waits on `slot` while that many
 * handlers run; each handler's end wakes it. The connections that arrive
 * meanwhile wait in the kernel's listen backlog, as they would for a busy
 * accept loop.
 *
 * Accept errors are handled once, here. A connection that failed before it
 * was accepted (ECONNABORTED, the network errors Linux passes on from
 * accept) is skipped. Running out of fds or memory leaves the listener
 * readable, so trying again at once would spin: the server makes at most
 * one attempt per ACCEPT_PAUSE after such an error (aloop_accept already
 * pauses that long on EMFILE/ENFILE; the pause here covers every other
 * path, and is not added on top). The pending connection waits in the
 * kernel's backlog. Errors that say the fd is not a listening socket close
 * the server; wait_closed reports them.
 *
 * After aloop_free, every task is gone, and with them the listener and the
 * connections; the struct itself stays until aloop_server_free, which then
 * touches no loop state.
 */
#include "internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define ACCEPT_PAUSE 0.1 /* seconds between accept attempts after a resource error */

typedef struct server_conn {
    aloop_list_t link; /* srv->conns */
    aloop_server_t *srv;
    aloop_stream_t *stream;
    aloop_task_t *task;
    aloop_fut_waiter_t done;
} server_conn_t;

struct aloop_server {
    aloop_t *loop;
    int listen_fd;         /* -1 once closed */
    aloop_conn_fn handler;
    void *arg;
    aloop_task_t *acceptor; /* NULL once it has finished */
    aloop_fut_waiter_t acceptor_done;
    aloop_list_t conns;     /* server_conn_t: handler tasks not finished */
    size_t nconns;
    aloop_list_t waiters;   /* aloop_wait_t: tasks in wait_closed (core wait list) */
    aloop_list_t slot;      /* aloop_wait_t: the accept task, waiting for a free slot */
    size_t max_connections; /* 0 = no limit */
    size_t max_line;        /* of each connection's stream (0 = the default) */
    int error;              /* the accept error that closed the server, or 0 */
    uint8_t closed;
    uint8_t freed;          /* aloop_server_free was called */
};

static int server_idle(const aloop_server_t *srv) {
    return srv->closed && !srv->acceptor && !srv->nconns;
}

/* Wakes wait_closed once idle, and frees the server if it was freed. */
static void server_check_idle(aloop_server_t *srv) {
    if (!server_idle(srv)) return;
    aloop__wake_all(&srv->waiters, srv->error);
    if (srv->freed) aloop__free(srv);
}

static void close_listener(aloop_server_t *srv) {
    srv->closed = 1;
    if (srv->listen_fd < 0) return;
    aloop_close(srv->listen_fd);
    srv->listen_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void *conn_main(void *arg) {
    server_conn_t *c = arg;
    c->srv->handler(c->stream, c->srv->arg);
    return NULL;
}

/* The handler's task completed (returned, or cancelled before it ran). */
static void conn_done(aloop_fut_waiter_t *w, aloop_future_t *f) {
    f->error_retrieved = 1; /* ours to handle (-ENOMEM: it never ran): no debug warning */
    server_conn_t *c = ALOOP_CONTAINER_OF(w, server_conn_t, done);
    aloop_server_t *srv = c->srv;
    aloop__list_remove(&c->link);
    srv->nconns--;
    aloop__wake_first(&srv->slot, 0); /* an accept task held at the limit goes on */
    aloop__stream_unhold(c->stream); /* closes it unless the handler did */
    aloop__free(c);
    server_check_idle(srv);
}

/* A handler task for the accepted fd: 0, or -ENOMEM (fd closed). */
static int conn_start(aloop_server_t *srv, int fd) {
    int one = 1; /* as asyncio: small writes go out at once (fails harmlessly off TCP) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    server_conn_t *c = aloop__calloc(1, sizeof *c);
    if (c) c->stream = aloop_stream_new(srv->loop, fd, srv->max_line);
    if (c && c->stream) c->task = aloop_spawn(srv->loop, conn_main, c);
    if (!c || !c->task) {
        if (c && c->stream) aloop_stream_close(c->stream);
        else aloop_close(fd);
        aloop__free(c);
        return -ENOMEM;
    }
    c->srv = srv;
    aloop__stream_hold(c->stream);
    c->done.fire = conn_done;
    aloop__future_add_waiter(c->task, &c->done);
    aloop_release(c->task); /* the loop's reference lasts until conn_done */
    aloop__list_push_back(&srv->conns, &c->link);
    srv->nconns++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The accept task                                                          */
/* ------------------------------------------------------------------------ */

/* The listening fd itself is unusable: no point in trying again. */
static int accept_error_fatal(int err) {
    return err == -EBADF || err == -EINVAL || err == -ENOTSOCK || err == -EOPNOTSUPP ||
           err == -EFAULT;
}

/* That one connection failed before we got it; the next may be fine. */
static int accept_error_skip(int err) {
    switch (err) {
    case -ECONNABORTED:
    case -ECONNRESET:
    case -EPROTO:
    case -EINTR:
    case -EPERM: /* refused by a firewall rule */
    case -ENETDOWN:
    case -ENETUNREACH:
    case -EHOSTDOWN:
    case -EHOSTUNREACH:
    case -ENOPROTOOPT:
#ifdef ENONET
    case -ENONET:
#endif
        return 1;
    default: return 0;
    }
}

/* At most one accept attempt per ACCEPT_PAUSE after a resource error. */
static int accept_backoff(aloop_t *loop, double attempt_start) {
    double left = attempt_start + ACCEPT_PAUSE - aloop_time(loop);
    return left > 0 ? aloop_sleep(left) : 0;
}

/* At max_connections, accepting stops until a handler returns (the
 * kernel's backlog holds the new connections meanwhile). 0 or -ECANCELED. */
static int wait_for_slot(aloop_server_t *srv) {
    while (srv->max_connections && srv->nconns >= srv->max_connections) {
        aloop_wait_t w = {.what = "a connection slot"};
        int rc = aloop__wait_in(aloop__current_task(), &w, &srv->slot, NULL);
        if (rc < 0) return rc;
    }
    return 0;
}

static void *accept_main(void *arg) {
    aloop_server_t *srv = arg;
    while (!srv->closed) {
        if (wait_for_slot(srv) < 0 || srv->closed) break;
        double start = aloop_time(srv->loop);
        int fd = aloop_accept(srv->listen_fd, NULL, NULL);
        if (fd >= 0) fd = conn_start(srv, fd);
        if (fd >= 0 || accept_error_skip(fd)) continue;
        if (srv->closed || fd == -ECANCELED) break;
        if (accept_error_fatal(fd)) {
            srv->error = fd;
            break;
        }
        if (accept_backoff(srv->loop, start) < 0) break; /* EMFILE, ENOMEM, ... */
    }
    return NULL;
}

/* The accept task completed: however it ended, the server is closed now. */
static void acceptor_done(aloop_fut_waiter_t *w, aloop_future_t *f) {
    aloop_server_t *srv = ALOOP_CONTAINER_OF(w, aloop_server_t, acceptor_done);
    f->error_retrieved = 1; /* reported by wait_closed */
    /* It never ran (no stack for it: -ENOMEM) and nobody closed us: say so. */
    if (!srv->closed && !srv->error && f->error && f->error != -ECANCELED) srv->error = f->error;
    srv->acceptor = NULL;
    close_listener(srv);
    server_check_idle(srv);
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

aloop_server_t *aloop_serve_with(aloop_t *loop, int listen_fd, const aloop_serve_opts_t *opts,
                                 aloop_conn_fn handler, void *arg) {
    if (!loop || !handler || listen_fd < 0) return aloop__null_errno(-EINVAL);
    aloop_server_t *srv = aloop__calloc(1, sizeof *srv);
    if (!srv) return NULL;
    if (opts) {
        srv->max_connections = opts->max_connections;
        srv->max_line = opts->max_line;
    }
    srv->loop = loop;
    srv->listen_fd = listen_fd;
    srv->handler = handler;
    srv->arg = arg;
    aloop__list_init(&srv->conns);
    aloop__list_init(&srv->waiters);
    aloop__list_init(&srv->slot);
    srv->acceptor = aloop_spawn(loop, accept_main, srv);
    if (!srv->acceptor) {
        int err = errno;
        aloop__free(srv);
        return aloop__null_errno(-err);
    }
    srv->acceptor_done.fire = acceptor_done;
    aloop__future_add_waiter(srv->acceptor, &srv->acceptor_done);
    aloop_release(srv->acceptor); /* the loop's reference lasts until acceptor_done */
    return srv;
}

aloop_server_t *aloop_serve(aloop_t *loop, int listen_fd, aloop_conn_fn handler, void *arg) {
    return aloop_serve_with(loop, listen_fd, NULL, handler, arg);
}

int aloop_server_close(aloop_server_t *srv) {
    int err = aloop__use_on(srv, "aloop_server_close");
    if (err < 0) return err;
    if (srv->closed) return 0;
    close_listener(srv);
    if (srv->acceptor) aloop_cancel(srv->acceptor); /* wakes it from a back-off pause too */
    server_check_idle(srv);
    return 0;
}

static int is_own_handler(const aloop_server_t *srv, const aloop_task_impl_t *t) {
    for (const aloop_list_t *n = srv->conns.next; n != &srv->conns; n = n->next)
        if (ALOOP_CONTAINER_OF(n, server_conn_t, link)->task == &t->fut) return 1;
    return 0;
}

int aloop_server_wait_closed(aloop_server_t *srv) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(srv, "aloop_server_wait_closed", &err);
    if (!t) return err;
    if (server_idle(srv)) return srv->error;
    if (is_own_handler(srv, t)) return -EDEADLK;
    /* a woken waiter never touches the server again (it may be freed) */
    aloop_wait_t w = {.what = "server closed"};
    return aloop__wait_in(t, &w, &srv->waiters, NULL);
}

size_t aloop_server_connections(const aloop_server_t *srv) { return srv ? srv->nconns : 0; }

int aloop_server_fd(const aloop_server_t *srv) { return srv ? srv->listen_fd : -EINVAL; }

size_t aloop_server_cancel_handlers(aloop_server_t *srv) {
    if (!srv) return 0;
    size_t n = 0;
    /* A cancel never completes a task on the spot, so the list holds. */
    for (aloop_list_t *l = srv->conns.next; l != &srv->conns; l = l->next)
        n += (size_t)aloop_cancel(ALOOP_CONTAINER_OF(l, server_conn_t, link)->task);
    return n;
}

void aloop_server_free(aloop_server_t *srv) {
    if (!srv || srv->freed) return;
    aloop_server_close(srv);
    aloop_server_cancel_handlers(srv);
    srv->freed = 1; /* only now: server_check_idle may free it */
    server_check_idle(srv);
}

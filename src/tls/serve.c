/*
 * serve.c - TLS over libaloop's connections and servers:
 * aloop_open_tls_connection (lookup, connect and handshake under one
 * deadline) and aloop_serve_tls (aloop_serve_with whose handler task first
 * does the handshake).
 *
 * aloop_serve_tls passes the server a record of its own (the config, the
 * user's handler and arg, the handshake timeout) as the handler's arg. The
 * server has no "freed" callback, so a small task of ours waits for the
 * server to close (aloop_server_wait_closed: it wakes once every handler
 * has returned, and touches the server no more), and the record goes when
 * that task ends (its done callback: also when aloop_free cancels it
 * before it ever ran).
 * Each handler task copies what it needs from the record before it first
 * suspends, so it never reads the record after that.
 */
#include "tls_internal.h"

#include <errno.h>

#define DEFAULT_HANDSHAKE_TIMEOUT 60.0

int aloop_open_tls_connection(const char *host, const char *port, aloop_tls_config_t *c,
                              double timeout, aloop_stream_t **out) {
    if (out) *out = NULL;
    if (!host || !port || !c || !out || c->server || timeout != timeout) return -EINVAL;
    aloop_t *loop = aloop_current();
    if (!loop || !aloop_current_task()) return -EPERM;
    double deadline = timeout < 0 ? -1 : aloop_time(loop) + timeout;
    aloop_stream_t *s;
    int rc = aloop_open_connection(host, port, timeout, &s);
    if (rc < 0) return rc;
    return aloop__tls_handshake(s, c, host, deadline, out);
}

typedef struct tls_serve {
    aloop_tls_config_t *cfg; /* referenced */
    aloop_conn_fn handler;
    void *arg;
    double timeout;
    aloop_server_t *srv;
} tls_serve_t;

static void serve_conn(aloop_stream_t *conn, void *arg) {
    tls_serve_t *r = arg;
    aloop_conn_fn handler = r->handler;
    void *user_arg = r->arg;
    aloop_tls_config_t *cfg = r->cfg;
    aloop__tls_config_ref(cfg); /* the record may go while we run */
    double deadline = aloop_time(aloop_current()) + r->timeout;
    aloop_stream_t *tls;
    /* a failed handshake closes conn at once (the server's close later is
     * allowed) and never reaches the handler */
    if (aloop__tls_handshake(conn, cfg, NULL, deadline, &tls) == 0) handler(tls, user_arg);
    aloop__tls_config_unref(cfg);
}

static void *serve_reaper(void *arg) {
    tls_serve_t *r = arg;
    aloop_server_wait_closed(r->srv); /* whatever it returns, the handlers are done */
    return NULL;
}

/* The reaper's end, also when it never ran (aloop_free before the loop
 * ran it): the record goes. */
static void serve_reaped(aloop_future_t *reaper, void *arg) {
    (void)reaper;
    tls_serve_t *r = arg;
    aloop__tls_config_unref(r->cfg);
    OPENSSL_free(r);
}

aloop_server_t *aloop_serve_tls(aloop_t *loop, int listen_fd, aloop_tls_config_t *c,
                                const aloop_serve_opts_t *opts, aloop_conn_fn handler,
                                void *arg) {
    if (!loop || !c || !c->server || !handler || listen_fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    tls_serve_t *r = OPENSSL_zalloc(sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->cfg = c;
    r->handler = handler;
    r->arg = arg;
    r->timeout = opts && opts->handshake_timeout > 0 ? opts->handshake_timeout
                                                     : DEFAULT_HANDSHAKE_TIMEOUT;
    aloop_task_t *reaper = aloop_spawn(loop, serve_reaper, r);
    if (!reaper || aloop_future_add_done_callback(reaper, serve_reaped, r) < 0) {
        if (reaper) aloop_cancel(reaper); /* it has not run yet: its function never will */
        aloop_release(reaper);
        OPENSSL_free(r);
        errno = ENOMEM;
        return NULL;
    }
    r->srv = aloop_serve_with(loop, listen_fd, opts, serve_conn, r);
    if (!r->srv) {
        int err = errno;
        aloop_future_remove_done_callback(reaper, serve_reaped, r);
        aloop_cancel(reaper);
        aloop_release(reaper);
        OPENSSL_free(r);
        errno = err;
        return NULL;
    }
    aloop__tls_config_ref(c);
    aloop_release(reaper);
    return r->srv;
}

/*
 * curl_aloop.c - libcurl's multi socket interface on an aloop loop (see
 * curl_aloop.h). Copy it into your program; it uses only aloop's public
 * API and libcurl.
 *
 * How the two event models meet:
 *   libcurl -> us   CURLMOPT_SOCKETFUNCTION: "watch socket s for IN / OUT /
 *                   both / nothing"  => aloop_add_reader / add_writer /
 *                   remove_reader / remove_writer.
 *                   CURLMOPT_TIMERFUNCTION: "call me back in N ms (or never)"
 *                   => one aloop_call_later handle, replaced each time.
 *   us -> libcurl   a watch or the timer fires => curl_multi_socket_action()
 *                   for that socket (or CURL_SOCKET_TIMEOUT), then
 *                   curl_multi_info_read() to collect finished transfers.
 *   transfers       each one is a task blocked in aloop_await on a private
 *                   future; a finished transfer completes that future. A
 *                   cancelled task takes its easy handle out of the multi
 *                   before it ends, so curl never touches it afterwards.
 * Nothing here blocks, and curl's callbacks only ever run from the loop's
 * watches and timer, i.e. on the loop's thread.
 */
#include "curl_aloop.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One transfer, on its task's stack while the task waits. */
typedef struct xfer {
    struct xfer *prev, *next;  /* ca->xfers */
    curl_aloop_t *ca;          /* NULL once curl_aloop_free detached it */
    CURL *easy;
    aloop_future_t *done;      /* completed with the CURLcode */
    int in_multi;
} xfer_t;

struct curl_aloop {
    aloop_t *loop;
    CURLM *multi;
    aloop_handle_t *timer;     /* curl's pending timeout, or NULL */
    xfer_t *xfers;             /* transfers under way */
    int *fds;                  /* sockets we watch for curl */
    size_t nfds, capfds;
    int closing;               /* curl_aloop_free is under way */
};

/* ---- the sockets curl asks us to watch --------------------------------- */

static void drain_messages(curl_aloop_t *ca) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(ca->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result; /* msg dies with remove_handle */
        xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(ca->multi, easy);
        x->in_multi = 0;
        aloop_future_set_result(x->done, (void *)(intptr_t)code);
    }
}

static void socket_ready(curl_aloop_t *ca, int fd, int flags) {
    int running;
    curl_multi_socket_action(ca->multi, fd, flags, &running);
    drain_messages(ca);
}

static void on_readable(int fd, void *arg) { socket_ready(arg, fd, CURL_CSELECT_IN); }
static void on_writable(int fd, void *arg) { socket_ready(arg, fd, CURL_CSELECT_OUT); }

/* Remembers fd as watched (so curl_aloop_free can drop what curl left). */
static int track_fd(curl_aloop_t *ca, int fd) {
    for (size_t i = 0; i < ca->nfds; i++)
        if (ca->fds[i] == fd) return 0;
    if (ca->nfds == ca->capfds) {
        size_t cap = ca->capfds ? ca->capfds * 2 : 16;
        int *fds = realloc(ca->fds, cap * sizeof *fds);
        if (!fds) return -ENOMEM;
        ca->fds = fds;
        ca->capfds = cap;
    }
    ca->fds[ca->nfds++] = fd;
    return 0;
}

static void untrack_fd(curl_aloop_t *ca, int fd) {
    for (size_t i = 0; i < ca->nfds; i++)
        if (ca->fds[i] == fd) {
            ca->fds[i] = ca->fds[--ca->nfds];
            return;
        }
}

/* CURLMOPT_SOCKETFUNCTION: what to watch on s from now on. Returning -1
 * makes curl fail the transfer (we could not watch the socket). */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    curl_aloop_t *ca = userp;
    int want_in = what == CURL_POLL_IN || what == CURL_POLL_INOUT;
    int want_out = what == CURL_POLL_OUT || what == CURL_POLL_INOUT;
    if (!want_in) aloop_remove_reader(ca->loop, s);
    if (!want_out) aloop_remove_writer(ca->loop, s);
    if (what == CURL_POLL_REMOVE || ca->closing) {
        untrack_fd(ca, s);
        return 0;
    }
    if (track_fd(ca, s) < 0) return -1;
    if (want_in && aloop_add_reader(ca->loop, s, on_readable, ca) < 0) return -1;
    if (want_out && aloop_add_writer(ca->loop, s, on_writable, ca) < 0) return -1;
    return 0;
}

/* ---- the one timer curl asks for ----------------------------------------- */

static void on_timeout(void *arg) {
    curl_aloop_t *ca = arg;
    ca->timer = NULL; /* the loop frees a handle once its callback ran */
    socket_ready(ca, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_TIMERFUNCTION: -1 = no timeout; otherwise (re)arm it. Curl may
 * ask for 0 ms: we still call back from the loop, never from in here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    curl_aloop_t *ca = userp;
    if (ca->timer) {
        aloop_handle_cancel(ca->timer);
        ca->timer = NULL;
    }
    if (timeout_ms < 0 || ca->closing) return 0;
    ca->timer = aloop_call_later(ca->loop, (double)timeout_ms / 1000.0, on_timeout, ca);
    return ca->timer ? 0 : -1;
}

/* ---- transfers ------------------------------------------------------------ */

static void xfer_unlink(xfer_t *x) {
    if (!x->ca) return;
    if (x->prev) x->prev->next = x->next;
    else x->ca->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
}

/* The task behind each transfer: add the handle, wait for curl to finish
 * it (or for a cancel), and make sure curl has let go of it on the way out. */
static void *xfer_task(void *arg) {
    CURL *easy = arg;
    curl_aloop_t *ca = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&ca);
    xfer_t x = {.ca = ca, .easy = easy, .done = aloop_future_new(ca->loop)};
    if (!x.done) return aloop_fail(-ENOMEM);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, &x);
    CURLMcode mc = curl_multi_add_handle(ca->multi, easy);
    if (mc != CURLM_OK) {
        aloop_release(x.done);
        return aloop_fail(mc == CURLM_ADDED_ALREADY ? -EBUSY : -ENOMEM);
    }
    x.in_multi = 1;
    x.next = ca->xfers;
    if (x.next) x.next->prev = &x;
    ca->xfers = &x;

    void *code = NULL;
    int rc = aloop_await(x.done, &code); /* -ECANCELED: we were cancelled */
    if (x.in_multi) curl_multi_remove_handle(ca->multi, easy);
    xfer_unlink(&x);
    aloop_release(x.done);
    return rc < 0 ? aloop_fail(rc) : code;
}

aloop_task_t *curl_aloop_start(curl_aloop_t *ca, CURL *easy) {
    if (!ca || !easy) {
        errno = EINVAL;
        return NULL;
    }
    /* the task finds ca here (a task cancelled before its first step never
     * runs, so nothing may be allocated for it in advance) */
    curl_easy_setopt(easy, CURLOPT_PRIVATE, ca);
    return aloop_spawn(ca->loop, xfer_task, easy);
}

int curl_aloop_perform(curl_aloop_t *ca, CURL *easy) {
    if (!aloop_current_task()) return -EPERM;
    aloop_task_t *t = curl_aloop_start(ca, easy);
    if (!t) return -errno;
    void *code = NULL;
    int rc = aloop_await(t, &code); /* a cancel here cancels t, and waits for it */
    aloop_release(t);
    return rc < 0 ? rc : (int)(intptr_t)code;
}

/* ---- the adapter ----------------------------------------------------------- */

curl_aloop_t *curl_aloop_new(aloop_t *loop) {
    if (!loop) {
        errno = EINVAL;
        return NULL;
    }
    curl_aloop_t *ca = calloc(1, sizeof *ca);
    if (!ca) return NULL;
    ca->loop = loop;
    ca->multi = curl_multi_init();
    if (!ca->multi) {
        free(ca);
        errno = ENOMEM;
        return NULL;
    }
    curl_multi_setopt(ca->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(ca->multi, CURLMOPT_SOCKETDATA, ca);
    curl_multi_setopt(ca->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ca->multi, CURLMOPT_TIMERDATA, ca);
    return ca;
}

CURLM *curl_aloop_multi(curl_aloop_t *ca) { return ca ? ca->multi : NULL; }

void curl_aloop_free(curl_aloop_t *ca) {
    if (!ca) return;
    ca->closing = 1;
    /* transfers still under way: out of the multi, their tasks woken with
     * -ECANCELED when the loop next runs (or by aloop_free) */
    for (xfer_t *x = ca->xfers; x;) {
        xfer_t *next = x->next;
        if (x->in_multi) curl_multi_remove_handle(ca->multi, x->easy);
        x->in_multi = 0;
        x->ca = NULL;
        aloop_cancel(x->done);
        x = next;
    }
    ca->xfers = NULL;
    curl_multi_cleanup(ca->multi); /* may still call socket_cb / timer_cb */
    if (ca->timer) aloop_handle_cancel(ca->timer);
    for (size_t i = 0; i < ca->nfds; i++) {
        aloop_remove_reader(ca->loop, ca->fds[i]);
        aloop_remove_writer(ca->loop, ca->fds[i]);
    }
    free(ca->fds);
    free(ca);
}

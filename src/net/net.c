/*
 * net.c - sockets over the fd waits of io.c: accept, connect, TCP listeners
 * and connections, and name lookups.
 *
 * Names. getaddrinfo() blocks (a DNS server may take seconds to answer), so
 * it never runs on the loop's thread for a name: aloop_getaddrinfo first
 * tries the host as a numeric address (AI_NUMERICHOST, no lookup at all)
 * and only sends real names to the worker pool. Two kinds of names are
 * answered without any lookup, as RFC 6761 asks of name libraries:
 * "*.invalid" never exists (-ENOENT at once), and for the helpers that take
 * a host (tcp_listen, tcp_connect, udp_*) "localhost" means the loopback
 * addresses (127.0.0.1 to listen or for datagrams, ::1 then 127.0.0.1 for
 * a TCP connect), so a server can listen on "localhost" before its loop
 * runs. aloop_getaddrinfo itself resolves "localhost" like
 * any other name (on the pool, from /etc/hosts), as getaddrinfo would.
 *
 * A lookup on the pool outlives a cancelled caller: the request (copies of
 * host, port and hints, and later the result list) is heap-allocated and
 * handed to aloop_run_in_thread_with's discard, which frees it, result list
 * included, once the job is done (or at once if no worker took it yet).
 *
 * Other choices worth knowing:
 *  - Every fd made here is non-blocking and close-on-exec, and the loop's
 *    watch table forgets anything it knew about its number (a new socket
 *    may reuse the number of one closed with close(2)).
 *  - EMFILE/ENFILE on accept: the call pauses 100 ms before it returns the
 *    error, so a server that logs it and calls again (as asyncio's does)
 *    cannot spin on a listening socket that stays readable.
 */
#include "internal.h"
#include "pipe_internal.h"
#include "sys_internal.h"

#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Sockets                                                                  */
/* ------------------------------------------------------------------------ */

#if !(defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)) || !(defined(__linux__) || defined(__FreeBSD__))
/* Where sockets cannot be made close-on-exec and non-blocking at birth:
 * fd, or -errno with fd closed. */
static int cloexec_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    int rc = aloop__set_nonblocking(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}
#endif

int aloop__net_socket(int family, int type, int proto) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    int fd = aloop__fd_high(socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto));
    if (fd < 0) return -errno;
#else
    int fd = socket(family, type, proto);
    if (fd < 0) return -errno;
    fd = cloexec_nonblocking(fd);
    if (fd < 0) return fd;
#endif
    aloop__io_adopt(aloop__io_loop(), fd);
    return fd;
}

static int accept_once(aloop_t *loop, int lfd, struct sockaddr *addr, socklen_t *len) {
#if defined(__linux__) || defined(__FreeBSD__)
    int fd = aloop__fd_high(aloop__sys_accept(loop, lfd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd < 0) return -errno;
#else
    int fd = aloop__sys_accept(loop, lfd, addr, len, 0);
    if (fd < 0) return -errno;
    fd = cloexec_nonblocking(fd);
    if (fd < 0) return fd;
#endif
    return fd;
}

/* Pause before reporting that fds (or kernel memory) ran out. */
#define ACCEPT_PAUSE 0.1

int aloop_accept(int listen_fd, struct sockaddr *addr, socklen_t *len) {
    if (listen_fd < 0) return -EBADF;
    if (addr && !len) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    int rc = aloop__io_set_nonblocking(t->fut.loop, listen_fd); /* a blocking accept would stall the loop */
    if (rc < 0) return rc;
    if ((rc = aloop__io_sim_delay(t)) < 0) return rc; /* simulation: the connection comes late */
    socklen_t cap = len ? *len : 0;
    for (;;) {
        if (len) *len = cap;
        int fd = accept_once(t->fut.loop, listen_fd, addr, len);
        if (fd >= 0) {
            aloop__io_adopt(t->fut.loop, fd);
            return fd;
        }
        switch (fd) {
        case -EINTR:
        case -ECONNABORTED:
        case -EPROTO:
            /* a storm of aborted connections must not keep the loop: each
             * spends one unit of the cooperative budget */
            rc = aloop__coop_spend(t);
            if (rc < 0) return rc;
            continue;
        case -EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case -EWOULDBLOCK:
#endif
            rc = aloop__io_wait(t, listen_fd, 0, -1);
            if (rc < 0) return rc;
            continue;
        case -EMFILE:
        case -ENFILE:
        case -ENOBUFS:
        case -ENOMEM:
            /* Out of fds: the listener stays readable, so a caller that
             * simply tries again would spin. Pause first, then report it
             * (the connection waits in the backlog until an fd is free). */
            rc = aloop_sleep(ACCEPT_PAUSE);
            return rc < 0 ? rc : fd;
        default:
            return fd;
        }
    }
}

/* After the connecting fd polled writable: 0 if connected, 1 if the
 * connect is still under way (the readiness was spurious), or -errno. */
static int connect_outcome(int fd) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) return -errno;
    if (soerr) return -soerr;
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0) return 0;
    return errno == ENOTCONN ? 1 : -errno;
}

int aloop__net_connect(aloop_task_impl_t *t, int fd, const struct sockaddr *addr,
                       socklen_t len, double timeout) {
    aloop_t *loop = t->fut.loop;
    /* simulation: the connect starts late (unless it has a deadline) */
    int rc = timeout < 0 ? aloop__io_sim_delay(t) : 0;
    if (rc < 0) return rc;
    if (aloop__sys_connect(loop, fd, addr, len) == 0) return 0;
    if (errno == EISCONN) return 0;
    if (errno != EINPROGRESS && errno != EINTR && errno != EALREADY) return -errno;
    double deadline = timeout >= 0 ? aloop__now(loop) + timeout : -1;
    for (;;) {
        double left = deadline < 0 ? -1 : fmax(0, deadline - aloop__now(loop));
        rc = aloop__io_wait(t, fd, 1, left);
        if (rc < 0) return rc;
        /* Writable does not always mean decided: a wake-up may come early
         * (epoll and poll allow spurious readiness). Wait on until it is. */
        if ((rc = connect_outcome(fd)) <= 0) return rc;
    }
}

int aloop_connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (fd < 0) return -EBADF;
    if (!addr) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    int rc = aloop__io_set_nonblocking(t->fut.loop, fd);
    if (rc < 0) return rc;
    return aloop__net_connect(t, fd, addr, len, -1);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

/* getaddrinfo's EAI_* codes as negative errno values (the table is in
 * aloop.h, next to aloop_getaddrinfo). sys_errno is errno right after the
 * call, on the thread that made it (EAI_SYSTEM). */
int aloop__gai_errno(int rc, int sys_errno) {
    switch (rc) {
    case 0: return 0;
    case EAI_NONAME:
    case EAI_FAIL:
    case EAI_SERVICE:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    case EAI_BADFLAGS:
    case EAI_SOCKTYPE: return -EINVAL;
    case EAI_SYSTEM: return sys_errno ? -sys_errno : -EIO;
    default: return -EIO;
    }
}

/* 1 if name is `label` or ends in ".label" (an optional final dot too),
 * ignoring case. */
static int name_in_domain(const char *name, const char *label) {
    size_t n = strlen(name), l = strlen(label);
    if (n && name[n - 1] == '.') n--;
    if (n < l || strncasecmp(name + n - l, label, l) != 0) return 0;
    return n == l || name[n - l - 1] == '.';
}

/* The test hook: a resolver that answers the pool's lookups instead of
 * getaddrinfo, and the function that frees its lists (tests/test_net.c:
 * a resolver that blocks, a list of chosen addresses). Process-wide, like
 * the allocation hook; each lookup takes both when it is queued. */
static aloop__resolver_fn test_resolver;
static void (*test_resolver_free)(struct addrinfo *);

void aloop__test_set_resolver(aloop__resolver_fn fn, void (*free_fn)(struct addrinfo *)) {
    test_resolver = fn;
    test_resolver_free = free_fn;
}

/* A lookup on the worker pool (see the top of the file for who frees it). */
typedef struct lookup {
    int rc;
    int has_hints;
    struct addrinfo hints; /* flags, family, socktype, protocol only */
    struct addrinfo *res;
    char *host, *port;     /* copies: the caller's strings may be gone */
    aloop__resolver_fn resolve;               /* getaddrinfo, or the hook */
    void (*free_res)(struct addrinfo *res);   /* freeaddrinfo, or the hook's */
} lookup_t;

static void lookup_free(lookup_t *l) {
    if (l->res) l->free_res(l->res);
    aloop__free(l->host);
    aloop__free(l->port);
    aloop__free(l);
}

static void *lookup_job(void *arg) {
    lookup_t *l = arg;
    int rc = l->resolve(l->host, l->port, l->has_hints ? &l->hints : NULL, &l->res);
    l->rc = aloop__gai_errno(rc, errno);
    if (rc) l->res = NULL;
    return NULL;
}

/* The caller gave up: called once, when the job is done, or at once if it
 * never started; the result list goes with the request. */
static void lookup_discard(void *result, void *arg) {
    (void)result;
    lookup_free(arg);
}

static lookup_t *lookup_new(const char *host, const char *port, const struct addrinfo *hints) {
    lookup_t *l = aloop__calloc(1, sizeof *l);
    if (!l) return NULL;
    l->resolve = test_resolver ? test_resolver : getaddrinfo;
    l->free_res = test_resolver ? test_resolver_free : freeaddrinfo;
    if (hints) {
        l->has_hints = 1;
        l->hints.ai_flags = hints->ai_flags;
        l->hints.ai_family = hints->ai_family;
        l->hints.ai_socktype = hints->ai_socktype;
        l->hints.ai_protocol = hints->ai_protocol;
    }
    l->host = aloop__strdup(host);
    l->port = port ? aloop__strdup(port) : NULL;
    if (!l->host || (port && !l->port)) {
        lookup_free(l);
        return NULL;
    }
    return l;
}

/* How to free a list: freeaddrinfo, or the test hook's. */
typedef void (*free_list_fn)(struct addrinfo *res);

/* Resolves a name on the worker pool, from a task. */
static int lookup_on_pool(const char *host, const char *port, const struct addrinfo *hints,
                          struct addrinfo **res, free_list_fn *free_res) {
    lookup_t *l = lookup_new(host, port, hints);
    if (!l) return -ENOMEM;
    int rc = aloop__run_in_lane(ALOOP__LANE_LOOKUPS, lookup_job, l, lookup_discard, NULL);
    if (rc == -ECANCELED) return rc; /* l is lookup_discard's now */
    if (rc < 0) {                    /* never queued (-ENOMEM, no thread) */
        lookup_free(l);
        return rc;
    }
    rc = l->rc;
    *res = l->res;
    *free_res = l->free_res;
    l->res = NULL;
    lookup_free(l);
    return rc;
}

/* A port is a number 0..65535 (leading zeros allowed) or something that can
 * be a service name: printable ASCII with a letter, not starting with a
 * sign. getaddrinfo itself would wrap "99999" to 34463 and read " 80" or
 * "+80" as 80. */
static int port_ok(const char *port) {
    size_t digits = strspn(port, "0123456789");
    if (digits && !port[digits]) {
        while (*port == '0' && port[1]) port++;
        return strlen(port) < 5 || (strlen(port) == 5 && strcmp(port, "65535") <= 0);
    }
    if (*port == '+' || *port == '-') return 0;
    int letter = 0;
    for (const char *c = port; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f) return 0; /* blanks, controls, not ASCII */
        letter |= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
    }
    return letter;
}

/* aloop_getaddrinfo, saying how to free the list (*free_res). */
static int resolve(const char *host, const char *port, const struct addrinfo *hints,
                   struct addrinfo **res, free_list_fn *free_res) {
    *free_res = freeaddrinfo;
    if (res) *res = NULL;
    if (!res || (!host && !port) || (port && !port_ok(port))) return -EINVAL;
    *res = NULL;
    /* glibc's defaults for NULL hints, made explicit to add AI_NUMERICHOST */
    struct addrinfo h = {.ai_family = AF_UNSPEC, .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG};
    if (hints) {
        h.ai_flags = hints->ai_flags;
        h.ai_family = hints->ai_family;
        h.ai_socktype = hints->ai_socktype;
        h.ai_protocol = hints->ai_protocol;
    }
    int numeric_only = (h.ai_flags & AI_NUMERICHOST) || !host;
    h.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(host, port, &h, res);
    if (rc != EAI_NONAME || numeric_only) {
        if (rc) *res = NULL;
        return aloop__gai_errno(rc, errno);
    }
    *res = NULL;
    if (name_in_domain(host, "invalid")) return -ENOENT; /* RFC 6761 6.4 */
    if (!aloop__current_task()) return -EPERM;            /* a lookup would block */
    int err;
    if (!aloop__enter(&err)) return err; /* a pending cancel: -ECANCELED */
    return lookup_on_pool(host, port, hints, res, free_res);
}

int aloop_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                      struct addrinfo **res) {
    free_list_fn free_res;
    return resolve(host, port, hints, res, &free_res);
}

/* aloop__net_resolve, saying how to free the list. */
static int net_resolve(const char *host, const char *port, int socktype, int passive,
                       struct addrinfo **out, free_list_fn *free_res) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype,
                             .ai_flags = passive ? AI_PASSIVE : 0};
    if (host && !*host) host = NULL;
    if (host && name_in_domain(host, "localhost")) {
        host = NULL; /* RFC 6761 6.3: the loopback addresses, no lookup */
        hints.ai_flags = 0;
        /* One address only where nothing tries the next: a listener or a
         * datagram socket gets 127.0.0.1, which every hosts file calls
         * localhost (some lack ::1, so their clients would never find a
         * listener on ::1). A TCP connect tries ::1, then 127.0.0.1. */
        if (passive || socktype == SOCK_DGRAM) hints.ai_family = AF_INET;
    }
    return resolve(host, port, &hints, out, free_res);
}

int aloop__net_resolve(const char *host, const char *port, int socktype, int passive,
                       struct addrinfo **out) {
    free_list_fn free_res;
    return net_resolve(host, port, socktype, passive, out, &free_res);
}

/* ------------------------------------------------------------------------ */
/* TCP                                                                      */
/* ------------------------------------------------------------------------ */

/* A socket of a's kind bound to a's address (and listening, for a stream
 * socket), with the options flags ask for: fd or -errno. */
static int bind_one(const struct addrinfo *a, int backlog, unsigned flags) {
    int fd = aloop__net_socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) return fd;
    int one = 1, rc = 0;
    if (a->ai_socktype == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
    if ((flags & ALOOP_LISTEN_REUSEPORT) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        rc = -errno;
#else
    if (flags & ALOOP_LISTEN_REUSEPORT) rc = -ENOTSUP;
#endif
    if (rc == 0 && bind(fd, a->ai_addr, a->ai_addrlen) < 0) rc = -errno;
    if (rc == 0 && a->ai_socktype == SOCK_STREAM && listen(fd, backlog) < 0) rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int aloop__net_bind(const char *host, const char *port, int socktype, int backlog,
                    unsigned flags) {
    struct addrinfo *ai;
    int rc = aloop__net_resolve(host, port, socktype, 1, &ai);
    if (rc < 0) return rc;
    int first_err = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = bind_one(a, backlog, flags);
        if (fd >= 0) {
            freeaddrinfo(ai);
            return fd;
        }
        if (!first_err) first_err = fd; /* the preferred address says most */
    }
    freeaddrinfo(ai);
    return first_err ? first_err : -EADDRNOTAVAIL;
}

int aloop_tcp_listen_with(const char *host, const char *port, int backlog, unsigned flags) {
    if (!port || (flags & ~(unsigned)ALOOP_LISTEN_REUSEPORT)) return -EINVAL;
    return aloop__net_bind(host, port, SOCK_STREAM, backlog > 0 ? backlog : SOMAXCONN, flags);
}

int aloop_tcp_listen(const char *host, const char *port, int backlog) {
    return aloop_tcp_listen_with(host, port, backlog, 0);
}

/* ------------------------------------------------------------------------ */
/* TCP connect: one deadline, Happy Eyeballs (RFC 8305)                     */
/* ------------------------------------------------------------------------ */

/* RFC 8305's Connection Attempt Delay: the next address is tried this long
 * after the previous attempt started, unless that attempt failed sooner. */
#define HE_DELAY 0.25

typedef struct he_addr {
    struct sockaddr_storage sa;
    socklen_t len;
    int family, socktype, protocol;
} he_addr_t;

typedef struct attempt {
    struct he *he;
    int fd;        /* -1: not started, or over (closed) */
    uint8_t ready; /* its writer watch fired: connected or failed */
} attempt_t;

/* One connect in progress: the attempts run side by side on watches, the
 * calling task waits on one record for any of them or the timer. */
typedef struct he {
    aloop_wait_t wait;     /* wait.task: the calling task */
    aloop_timer_t timer;   /* the next attempt's start, or the deadline */
    aloop_t *loop;
    const he_addr_t *addrs;
    attempt_t *att;
    size_t n, started, inflight;
} he_t;

/* The next entry from p on of the first family (other == 0) or of the
 * others (other == 1). */
static const struct addrinfo *next_of(const struct addrinfo *p, int family0, int other) {
    for (; p; p = p->ai_next)
        if ((p->ai_family != family0) == other && p->ai_addrlen <= sizeof(struct sockaddr_storage))
            return p;
    return NULL;
}

/* ai's addresses, interleaved by family starting with the first entry's
 * (RFC 8305 section 4: A, B, A, B, ..., then the rest of whichever lasts):
 * a dead address family costs one attempt delay, not every address of it.
 * 0 with *out (aloop__free it) and *n, or -ENOMEM. */
static int interleave(const struct addrinfo *ai, he_addr_t **out, size_t *n) {
    size_t count = 0;
    int family0 = ai ? ai->ai_family : AF_UNSPEC;
    for (const struct addrinfo *p = ai; p; p = p->ai_next)
        count += p->ai_addrlen <= sizeof(struct sockaddr_storage);
    he_addr_t *v = aloop__calloc(count ? count : 1, sizeof *v);
    if (!v) return -ENOMEM;
    const struct addrinfo *cur[2] = {ai, ai};
    for (size_t k = 0; k < count; k++) {
        int side = (int)(k % 2);
        const struct addrinfo *p = next_of(cur[side], family0, side);
        if (!p) {
            side ^= 1;
            p = next_of(cur[side], family0, side);
        }
        cur[side] = p->ai_next;
        memcpy(&v[k].sa, p->ai_addr, p->ai_addrlen);
        v[k].len = p->ai_addrlen;
        v[k].family = p->ai_family;
        v[k].socktype = p->ai_socktype;
        v[k].protocol = p->ai_protocol;
    }
    *out = v;
    *n = count;
    return 0;
}

/* Wakes the task if it still waits on he (a watch and the timer may both
 * fire before it runs). */
static void he_wake(he_t *he) {
    if (aloop__wait_pending(&he->wait)) aloop__wake(&he->wait, 0);
}

static void he_timer(aloop_timer_t *tm) { he_wake(ALOOP_CONTAINER_OF(tm, he_t, timer)); }

static void he_cancel(aloop_wait_t *w) {
    he_t *he = ALOOP_CONTAINER_OF(w, he_t, wait);
    aloop__timer_stop(he->loop, &he->timer);
}

static void attempt_writable(int fd, void *arg) {
    attempt_t *at = arg;
    aloop_remove_writer(at->he->loop, fd); /* once: the task reads the outcome */
    at->ready = 1;
    he_wake(at->he);
}

/* Closes an attempt that lost or failed. */
static void attempt_close(he_t *he, attempt_t *at) {
    if (at->fd < 0) return;
    aloop_remove_writer(he->loop, at->fd);
    aloop_close(at->fd);
    at->fd = -1;
}

/* Starts attempt i: 1 connected at once, 0 in progress (watched), or
 * -errno (failed at once, nothing left open). */
static int attempt_start(he_t *he, size_t i) {
    const he_addr_t *a = &he->addrs[i];
    attempt_t *at = &he->att[i];
    int fd = aloop__net_socket(a->family, a->socktype, a->protocol);
    if (fd < 0) return fd;
    at->fd = fd;
    if (aloop__sys_connect(he->loop, fd, (const struct sockaddr *)&a->sa, a->len) == 0) return 1;
    int err = errno;
    if (err == EINPROGRESS || err == EINTR) { /* the connect goes on: wait for it */
        int rc = aloop_add_writer(he->loop, fd, attempt_writable, at);
        if (rc == 0) {
            he->inflight++;
            return 0;
        }
        err = -rc;
    }
    attempt_close(he, at);
    return -err;
}

/* The outcome of an attempt that is over (its watch fired, or poll says
 * so): 1 connected, or -errno (then closed). */
static int attempt_finish(he_t *he, attempt_t *at) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(at->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    at->ready = 0;
    he->inflight--;
    if (soerr == 0) return 1;
    attempt_close(he, at);
    return -soerr;
}

/* Has an attempt in progress finished? One look, no wait. */
static int attempt_done_now(const attempt_t *at) {
    struct pollfd p = {.fd = at->fd, .events = POLLOUT};
    return at->ready || poll(&p, 1, 0) > 0;
}

/* Suspends until an attempt finishes, `wake` passes, or a cancel. */
static int he_wait(he_t *he, double wake) {
    if (wake != INFINITY && aloop__timer_start(he->loop, &he->timer, wake) < 0) return -ENOMEM;
    int rc = aloop__suspend(he->wait.task, &he->wait);
    aloop__timer_stop(he->loop, &he->timer);
    return rc;
}

/* The attempts over addrs under deadline: the connected fd (every other
 * attempt closed), or -errno (nothing left open). At the deadline every
 * address not tried yet is tried once and every attempt in progress looked
 * at once, without waiting (so a deadline of now tries each address once). */
static int happy_eyeballs(aloop_task_impl_t *t, const he_addr_t *addrs, size_t n, double deadline) {
    aloop_t *loop = t->fut.loop;
    attempt_t *att = aloop__calloc(n ? n : 1, sizeof *att);
    if (!att) return -ENOMEM;
    he_t he = {.wait = {.cancel = he_cancel, .what = "tcp connect", .task = t},
               .loop = loop, .addrs = addrs, .att = att, .n = n};
    aloop__timer_init(&he.timer, he_timer);
    for (size_t i = 0; i < n; i++) att[i] = (attempt_t){.he = &he, .fd = -1};
    int err = n ? -EHOSTUNREACH : -ENOENT;
    size_t winner = SIZE_MAX, last = SIZE_MAX;
    double next_start = aloop__now(loop);
    for (;;) {
        double now = aloop__now(loop);
        int final = now >= deadline;
        /* start what is due: at the start, HE_DELAY after the last one, at
         * once when nothing is in progress, every address at the deadline */
        while (he.started < n && (final || now >= next_start || he.inflight == 0)) {
            last = he.started++;
            int rc = attempt_start(&he, last);
            if (rc == 1) {
                winner = last;
                break;
            }
            if (rc < 0) {
                err = rc;
                next_start = now; /* failed at once: the next one now */
            }
            if (rc == 0) {
                next_start = now + HE_DELAY;
                if (!final) break;
            }
        }
        if (winner != SIZE_MAX) break;
        if (final) {
            for (size_t i = 0; i < he.started && winner == SIZE_MAX; i++) {
                if (att[i].fd < 0 || !attempt_done_now(&att[i])) continue;
                int rc = attempt_finish(&he, &att[i]);
                if (rc == 1) winner = i;
                else err = rc;
            }
            if (winner == SIZE_MAX && he.inflight) err = -ETIMEDOUT;
            break;
        }
        if (!he.inflight && he.started == n) break; /* every address failed */
        double wake = he.started < n && next_start < deadline ? next_start : deadline;
        int rc = he_wait(&he, wake);
        if (rc < 0) {
            err = rc;
            break;
        }
        for (size_t i = 0; i < he.started && winner == SIZE_MAX; i++) {
            if (!att[i].ready) continue;
            rc = attempt_finish(&he, &att[i]);
            if (rc == 1) {
                winner = i;
            } else {
                err = rc;
                if (i == last) next_start = aloop__now(loop); /* failed sooner: next now */
            }
        }
        if (winner != SIZE_MAX) break;
    }
    for (size_t i = 0; i < he.started; i++)
        if (i != winner) attempt_close(&he, &att[i]);
    int fd = err;
    if (winner != SIZE_MAX) {
        fd = att[winner].fd;
        aloop_remove_writer(loop, fd); /* when poll, not the watch, found it */
    }
    aloop__free(att);
    return fd;
}

/* host:port for a stream connect before deadline: the lookup runs under a
 * timeout scope, so a slow resolver costs at most the time left. */
static int resolve_until(const char *host, const char *port, double deadline, he_addr_t **addrs,
                         size_t *n) {
    struct addrinfo *ai = NULL;
    free_list_fn free_res = freeaddrinfo;
    aloop_timeout_t to;
    int rc = aloop_timeout_enter_at(&to, deadline);
    if (rc < 0) return rc;
    rc = net_resolve(host, port, SOCK_STREAM, 0, &ai, &free_res);
    rc = aloop_timeout_exit(&to, rc);
    if (rc == 0) rc = interleave(ai, addrs, n);
    if (ai) free_res(ai);
    return rc;
}

int aloop_tcp_connect(const char *host, const char *port, double timeout) {
    if (!host || !port || isnan(timeout)) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    /* one deadline for the lookup and every attempt */
    double deadline = timeout >= 0 ? aloop__now(t->fut.loop) + timeout : INFINITY;
    he_addr_t *addrs = NULL;
    size_t n = 0;
    int rc = resolve_until(host, port, deadline, &addrs, &n);
    if (rc < 0) return rc;
    int fd = happy_eyeballs(t, addrs, n, deadline);
    aloop__free(addrs);
    if (fd >= 0) {
        int one = 1; /* asyncio's default: small writes go out at once */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* tlsload - the one TLS client of bench/tls: drives any server that answers
 * "GET /NAME HTTP/1.0\r\n\r\n" with a head and the file, then closes
 * (bench/tls/tlsserver, `openssl s_server -WWW`, bench/tls/go/server).
 *
 * Plain OpenSSL with non-blocking sockets under epoll, no libaloop, so the
 * client is the same whichever server it loads. `-c N` connections are kept
 * in flight; each one connects, handshakes, asks for --path, reads to EOF
 * and closes, and its slot starts the next one.
 *
 *   --mode new     every handshake is a full one
 *   --mode reuse   every connection offers the session (TLS 1.3: ticket)
 *                  of the latest one that finished; counts those resumed
 *   --mode bulk    counts the bytes of the answers (ask for a large file)
 *
 * The figures cover --seconds after --warmup. With --server-pid it also
 * reads the server's CPU time (all its threads, /proc/PID/task/\*\/schedstat)
 * and prints it per handshake or per MB, the comparison that does not
 * depend on how fast this client is. One line of output:
 *
 *   ops=... seconds=... rate=... MBps=... reused=... server_cpu=...
 *   client_cpu=... version=... cipher=... group=...
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_NEW, MODE_REUSE, MODE_BULK };
enum state { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ };

typedef struct conn {
    int fd;
    SSL *ssl;
    enum state st;
    size_t sent;
    double started;
} conn_t;

typedef struct load {
    SSL_CTX *ctx;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int ep;
    enum mode mode;
    char req[512];
    size_t reqlen;
    SSL_SESSION *session; /* the latest finished connection's */
    int measuring;
    unsigned long long ops, reused, bytes, failed;
    double max_ms; /* the slowest connection that finished in the window */
    char version[32], cipher[64], group[32];
} load_t;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* CPU seconds of every thread of pid so far (schedstat: ns on the CPU). */
static double proc_cpu(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[320];
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p, "r");
        if (f == NULL)
            continue;
        unsigned long long ns;
        if (fscanf(f, "%llu", &ns) == 1)
            sum += (double)ns * 1e-9;
        fclose(f);
    }
    closedir(d);
    return sum;
}

static void die(const char *what)
{
    fprintf(stderr, "tlsload: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void watch(load_t *l, conn_t *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(l->ep, op, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_start(load_t *l, conn_t *c)
{
    c->fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(l->ctx);
    if (c->ssl == NULL)
        die("SSL_new");
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    if (l->mode == MODE_REUSE && l->session != NULL)
        SSL_set_session(c->ssl, l->session);
    c->sent = 0;
    c->started = now();
    if (connect(c->fd, (struct sockaddr *)&l->addr, l->addrlen) == 0) {
        c->st = ST_HANDSHAKE;
        watch(l, c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
    } else if (errno == EINPROGRESS) {
        c->st = ST_CONNECT;
        watch(l, c, EPOLL_CTL_ADD, EPOLLOUT);
    } else {
        die("connect");
    }
}

static void conn_finish(load_t *l, conn_t *c, int ok)
{
    if (ok && l->measuring) {
        double ms = (now() - c->started) * 1e3;
        if (ms > l->max_ms)
            l->max_ms = ms;
        l->ops++;
        if (SSL_session_reused(c->ssl))
            l->reused++;
    }
    if (!ok)
        l->failed++;
    if (ok && l->version[0] == '\0') {
        snprintf(l->version, sizeof l->version, "%s", SSL_get_version(c->ssl));
        snprintf(l->cipher, sizeof l->cipher, "%s", SSL_get_cipher_name(c->ssl));
        int g = SSL_get_negotiated_group(c->ssl);
        const char *gn = g != 0 ? OBJ_nid2sn(g) : NULL;
        snprintf(l->group, sizeof l->group, "%s", gn != NULL ? gn : "?");
    }
    if (ok && l->mode == MODE_REUSE) {
        /* After the answer was read, so a TLS 1.3 session carries the
         * ticket that came after the handshake. */
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s != NULL && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(l->session);
            l->session = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
    if (ok)
        SSL_shutdown(c->ssl); /* our close_notify, as a polite client sends */
    ERR_clear_error();
    /* Freeing an SSL that was not shut down both ways marks its session
     * not resumable. */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

/* SSL_ERROR_WANT_* -> the epoll interest; 0 when the call failed. */
static int want(load_t *l, conn_t *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        watch(l, c, EPOLL_CTL_MOD, EPOLLIN);
        return 1;
    case SSL_ERROR_WANT_WRITE:
        watch(l, c, EPOLL_CTL_MOD, EPOLLOUT);
        return 1;
    default:
        return 0;
    }
}

/* Moves c on as far as it goes; 1 while it lives, 0 once it finished. */
static int conn_step(load_t *l, conn_t *c)
{
    static char buf[1 << 16];
    switch (c->st) {
    case ST_CONNECT: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_finish(l, c, 0);
            return 0;
        }
        c->st = ST_HANDSHAKE;
    }
    /* fall through */
    case ST_HANDSHAKE: {
        int r = SSL_connect(c->ssl);
        if (r != 1) {
            if (want(l, c, r))
                return 1;
            conn_finish(l, c, 0);
            return 0;
        }
        c->st = ST_WRITE;
    }
    /* fall through */
    case ST_WRITE:
        while (c->sent < l->reqlen) {
            int r = SSL_write(c->ssl, l->req + c->sent, (int)(l->reqlen - c->sent));
            if (r <= 0) {
                if (want(l, c, r))
                    return 1;
                conn_finish(l, c, 0);
                return 0;
            }
            c->sent += (size_t)r;
        }
        c->st = ST_READ;
        watch(l, c, EPOLL_CTL_MOD, EPOLLIN);
    /* fall through */
    case ST_READ:
        for (;;) {
            int r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) {
                if (l->measuring)
                    l->bytes += (unsigned long long)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                want(l, c, r);
                return 1;
            }
            /* close_notify, or a bare close after the answer (a server
             * that does not send close_notify): both end the answer. */
            int ok = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0);
            ERR_clear_error();
            conn_finish(l, c, ok);
            return 0;
        }
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: tlsload --connect HOST:PORT [--mode new|reuse|bulk] [-c N]\n"
                    "  [--seconds S] [--warmup S] [--path /NAME] [--tls 1.2|1.3]\n"
                    "  [--group X25519] [--server-pid PID]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *path = "/small", *tls = "1.3", *group = "X25519";
    double seconds = 3, warmup = 0.5;
    int nconn = 8, server_pid = 0;
    load_t l = {.mode = MODE_NEW};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(a, "--connect") == 0)
            target = v;
        else if (strcmp(a, "--mode") == 0)
            l.mode = strcmp(v, "reuse") == 0 ? MODE_REUSE : strcmp(v, "bulk") == 0 ? MODE_BULK : MODE_NEW;
        else if (strcmp(a, "-c") == 0)
            nconn = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            warmup = atof(v);
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--tls") == 0)
            tls = v;
        else if (strcmp(a, "--group") == 0)
            group = v;
        else if (strcmp(a, "--server-pid") == 0)
            server_pid = atoi(v);
        else
            usage();
    }
    if (target == NULL || nconn < 1)
        usage();
    char host[256];
    snprintf(host, sizeof host, "%s", target);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        usage();
    *colon = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        die("getaddrinfo");
    memcpy(&l.addr, ai->ai_addr, ai->ai_addrlen);
    l.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);

    l.ctx = SSL_CTX_new(TLS_client_method());
    if (l.ctx == NULL)
        die("SSL_CTX_new");
    int version = strcmp(tls, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(l.ctx, version);
    SSL_CTX_set_max_proto_version(l.ctx, version);
    /* One suite and one group, so every server negotiates the same. */
    if (!SSL_CTX_set_ciphersuites(l.ctx, "TLS_AES_128_GCM_SHA256") ||
        !SSL_CTX_set_cipher_list(l.ctx, "ECDHE-ECDSA-AES128-GCM-SHA256") ||
        !SSL_CTX_set1_groups_list(l.ctx, group))
        die("suite or group");
    SSL_CTX_set_verify(l.ctx, SSL_VERIFY_NONE, NULL); /* the server's cost does not change */
    SSL_CTX_set_session_cache_mode(l.ctx, SSL_SESS_CACHE_OFF);
    l.reqlen = (size_t)snprintf(l.req, sizeof l.req, "GET %s HTTP/1.0\r\n\r\n", path);

    l.ep = epoll_create1(EPOLL_CLOEXEC);
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    if (l.ep < 0 || conns == NULL)
        die("setup");
    /* The first connection alone, so every reuse one has a session. */
    conn_start(&l, &conns[0]);
    for (int alive = 1; alive;) {
        struct epoll_event ev;
        if (epoll_wait(l.ep, &ev, 1, 5000) != 1)
            die("no answer from the server within 5 s");
        alive = conn_step(&l, ev.data.ptr);
    }
    if (l.failed != 0 || (l.mode == MODE_REUSE && l.session == NULL))
        die(l.failed != 0 ? "the first connection failed" : "no resumable session from the server");
    for (int i = 0; i < nconn; i++)
        conn_start(&l, &conns[i]);

    double t_start = now(), t0 = 0, cpu0 = 0, scpu0 = 0;
    double t_end = t_start + warmup + seconds;
    struct epoll_event evs[64];
    for (;;) {
        double t = now();
        if (!l.measuring && t >= t_start + warmup) {
            l.measuring = 1;
            t0 = t;
            cpu0 = self_cpu();
            scpu0 = server_pid > 0 ? proc_cpu(server_pid) : 0;
        }
        if (t >= t_end)
            break;
        int n = epoll_wait(l.ep, evs, 64, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!conn_step(&l, c))
                conn_start(&l, c);
        }
        if (l.failed > 100 && l.failed > l.ops)
            die("most connections fail");
    }
    double t1 = now(), cpu1 = self_cpu();
    double scpu = server_pid > 0 ? proc_cpu(server_pid) - scpu0 : -1;
    double el = t1 - t0;
    double per = l.mode == MODE_BULK ? (double)l.bytes / 1e6 : (double)l.ops;
    printf("ops=%llu seconds=%.3f rate=%.1f MBps=%.1f reused=%llu failed=%llu", l.ops, el,
           (double)l.ops / el, (double)l.bytes / 1e6 / el, l.reused, l.failed);
    /* CPU per handshake in us, or per MB in ms */
    double unit = l.mode == MODE_BULK ? 1e3 : 1e6;
    if (scpu >= 0 && per > 0)
        printf(" server_cpu=%.2f server_util=%.2f", scpu / per * unit, scpu / el);
    if (per > 0)
        printf(" client_cpu=%.2f", (cpu1 - cpu0) / per * unit);
    printf(" max_ms=%.1f version=%s cipher=%s group=%s\n", l.max_ms, l.version, l.cipher, l.group);
    return 0;
}

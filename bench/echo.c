/*
 * echo.c - TCP echo over loopback: requests per second.
 *
 * The server is a libaloop program with a coroutine per connection
 * (aloop_accept, then aloop_read / aloop_write_all until EOF), hand-written
 * or with aloop_serve and streams (aloop_stream_read / _write). The load
 * generator is plain epoll, single-threaded and independent of libaloop,
 * so it can measure any server: C connections (default 50) each keep one
 * 64-byte message in flight, send the next as soon as the echo is back,
 * and the generator counts round trips for a fixed time after a warm-up
 * (bounded in time and in count). It only ever connects to loopback.
 *
 *   echo                  forks the aloop servers (hand-written accept loop,
 *                         aloop_serve) and a hand-written epoll callback
 *                         server (the floor, what libuv-style code gets on
 *                         this machine) and loads them in alternating rounds
 *   echo --server [--serve] [-p P]
 *                         only the aloop server (prints "PORT <n>"), until
 *                         killed; --serve: the aloop_serve one
 *   echo --connect H:P    only the load generator, against someone's server
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err) {
    fprintf(stderr, "echo: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* The server: a task per connection                                        */
/* ------------------------------------------------------------------------ */

static void *serve_one(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = aloop_read(fd, buf, sizeof buf);
        if (n <= 0) break;
        if (aloop_write_all(fd, buf, (size_t)n) < 0) break;
    }
    aloop_close(fd);
    return NULL;
}

struct server_args {
    const char *port;
    int report_fd; /* where "PORT <n>\n" goes */
    int lfd;       /* a listener made already (--loops), or -1 */
};

static int listen_and_report(struct server_args *sa) {
    if (sa->lfd >= 0) return sa->lfd; /* --loops: made and reported already */
    int lfd = aloop_tcp_listen("127.0.0.1", sa->port, 1024);
    if (lfd < 0) die("aloop_tcp_listen", lfd);
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) die("getsockname", errno);
    dprintf(sa->report_fd, "PORT %d\n", ntohs(addr.sin_port));
    return lfd;
}

static void *serve(void *arg) {
    int lfd = listen_and_report(arg);
    aloop_t *loop = aloop_current();
    for (;;) {
        int fd = aloop_accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (fd == -ECANCELED) break;
            continue; /* e.g. a connection reset before we took it */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        aloop_task_t *t = aloop_spawn(loop, serve_one, (void *)(intptr_t)fd);
        if (!t) {
            close(fd);
            continue;
        }
        aloop_release(t); /* detached */
    }
    aloop_close(lfd);
    return NULL;
}

/* The same server on aloop_serve: the handler is the whole program. */
static void echo_handler(aloop_stream_t *conn, void *arg) {
    (void)arg;
    char buf[16384];
    ssize_t n;
    while ((n = aloop_stream_read(conn, buf, sizeof buf)) > 0)
        if (aloop_stream_write(conn, buf, (size_t)n) < 0) break;
}

static void *serve_streams(void *arg) {
    int lfd = listen_and_report(arg);
    aloop_server_t *srv = aloop_serve(aloop_current(), lfd, echo_handler, NULL);
    if (!srv) die("aloop_serve", errno);
    aloop_server_wait_closed(srv);
    aloop_server_free(srv);
    return NULL;
}

static int run_server(const char *port, int report_fd, int streams) {
    struct server_args sa = {port, report_fd, -1};
    signal(SIGPIPE, SIG_IGN);
    int rc = aloop_main(streams ? serve_streams : serve, &sa, NULL);
    if (rc < 0) die("aloop_main", rc);
    return 0;
}

/* One loop per thread (--loops N): each thread runs the same server on a
 * listener of its own; the listeners share the port (SO_REUSEPORT) and the
 * kernel spreads connections over them. The loops share nothing. */
struct loop_thread_args {
    struct server_args sa;
    int streams;
};

static void *loop_thread(void *arg) {
    struct loop_thread_args *la = arg;
    int rc = aloop_main(la->streams ? serve_streams : serve, &la->sa, NULL);
    if (rc < 0) die("aloop_main", rc);
    return NULL;
}

static int run_server_loops(const char *port, int report_fd, int streams, int loops) {
    if (loops <= 1) return run_server(port, report_fd, streams);
    signal(SIGPIPE, SIG_IGN);
    struct loop_thread_args *la = calloc((size_t)loops, sizeof *la);
    pthread_t *th = calloc((size_t)loops, sizeof *th);
    if (!la || !th) die("calloc", ENOMEM);
    char bound[16] = "";
    for (int i = 0; i < loops; i++) {
        /* the first listener picks the port (0 = any), the others join it */
        int lfd = aloop_tcp_listen_with("127.0.0.1", i ? bound : port, 1024, ALOOP_LISTEN_REUSEPORT);
        if (lfd < 0) die("aloop_tcp_listen_with", lfd);
        struct sockaddr_in addr;
        socklen_t len = sizeof addr;
        if (getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) die("getsockname", errno);
        snprintf(bound, sizeof bound, "%d", ntohs(addr.sin_port));
        la[i] = (struct loop_thread_args){{port, -1, lfd}, streams};
    }
    dprintf(report_fd, "PORT %s\n", bound); /* every listener is up */
    for (int i = 1; i < loops; i++)
        if (pthread_create(&th[i], NULL, loop_thread, &la[i]) != 0) die("pthread_create", EAGAIN);
    loop_thread(&la[0]);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The floor: the same server as hand-written epoll callbacks                */
/* ------------------------------------------------------------------------ */

/* Level-triggered epoll, one read and one write per readable event: the
 * shortest correct echo server for 64-byte messages (a write of what was
 * just read always fits in an empty loopback socket buffer). */
static _Noreturn void run_epoll_server(int report_fd) {
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket", errno);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
        die("listen", errno);
    dprintf(report_fd, "PORT %d\n", ntohs(addr.sin_port));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll", errno);
    struct epoll_event evs[256];
    char buf[16384];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(fd);
                continue;
            }
            if (write(fd, buf, (size_t)r) != r) close(fd);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The load generator                                                       */
/* ------------------------------------------------------------------------ */

struct conn {
    int fd;
    size_t got; /* bytes of the current echo received so far */
};

/* Resolves host:port, refusing anything that is not a loopback address:
 * this tool floods whatever it points at. */
static struct addrinfo *resolve_loopback(const char *hostport) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host) {
        fprintf(stderr, "echo: --connect wants HOST:PORT\n");
        exit(2);
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:port */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "echo: %s: %s\n", hostport, gai_strerror(rc));
        exit(2);
    }
    int loopback = 0;
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ai->ai_addr;
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ai->ai_addr;
        loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    if (!loopback) {
        fprintf(stderr, "echo: %s is not a loopback address; refusing to load it\n", host);
        exit(2);
    }
    return ai;
}

static int connect_one(const struct addrinfo *ai) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket", errno);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("connect", errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_msg(struct conn *c) {
    static const char msg[MSG] = "0123456789abcdef0123456789abcdef0123456789abcdef012345678901234";
    ssize_t n = send(c->fd, msg, MSG, MSG_NOSIGNAL);
    if (n != MSG) die("send", n < 0 ? errno : EIO);
    c->got = 0;
}

struct load_result {
    double rps;
    long requests;
    double seconds;
};

/* Keeps nconn echoes in flight; counts round trips completed between the
 * end of the warm-up and the end of the run (or max_requests). */
static struct load_result load(const char *hostport, int nconn, double warmup, double seconds,
                               long max_requests) {
    struct addrinfo *ai = resolve_loopback(hostport);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1", errno);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!conns) die("calloc", ENOMEM);
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = connect_one(ai);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) die("epoll_ctl", errno);
    }
    freeaddrinfo(ai);
    for (int i = 0; i < nconn; i++) send_msg(&conns[i]);

    struct epoll_event evs[256];
    char buf[MSG * 4];
    double start = now_s(), measure_from = start + warmup, end = measure_from + seconds;
    long counted = 0;
    int measuring = 0;
    double t = start;
    while (t < end && counted < max_requests) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait", errno);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r == 0) die("server closed a connection", ECONNRESET);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv", errno);
            }
            c->got += (size_t)r;
            if (c->got < MSG) continue;
            if (measuring) counted++;
            send_msg(c);
        }
        t = now_s();
        if (!measuring && t >= measure_from) {
            measuring = 1;
            measure_from = t;
        }
    }
    for (int i = 0; i < nconn; i++) close(conns[i].fd);
    close(ep);
    free(conns);
    struct load_result res = {0, counted, t - measure_from};
    if (measuring && res.seconds > 0) res.rps = (double)counted / res.seconds;
    return res;
}

/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { SERVER_TASKS, SERVER_SERVE, SERVER_FLOOR, NSERVERS };

/* Forks a server (one of SERVER_*; the aloop ones with `loops` loops) and
 * returns its port; *pid gets the child. */
static int start_server(pid_t *pid, int kind, int loops) {
    int p[2];
    if (pipe(p) < 0) die("pipe", errno);
    *pid = fork();
    if (*pid < 0) die("fork", errno);
    if (*pid == 0) {
        close(p[0]);
        signal(SIGPIPE, SIG_IGN);
        if (kind == SERVER_FLOOR) run_epoll_server(p[1]);
        _exit(run_server_loops("0", p[1], kind == SERVER_SERVE, loops));
    }
    close(p[1]);
    char line[64] = {0};
    size_t len = 0;
    while (len < sizeof line - 1 && !strchr(line, '\n')) {
        ssize_t r = read(p[0], line + len, sizeof line - 1 - len);
        if (r <= 0) die("the server did not start", EIO);
        len += (size_t)r;
    }
    close(p[0]);
    int port = 0;
    if (sscanf(line, "PORT %d", &port) != 1) die("the server did not start", EIO);
    return port;
}

/* CPU time (user + system) a process has used so far, in seconds. */
static double process_cpu(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long utime = 0, stime = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --loops N: the same aloop server with 1 loop and with N loops, loaded in
 * alternating rounds (medians of req/s); CPU is summed over all rounds of
 * each: the server's (every thread, from /proc) per request, and the load
 * generator's (this process) as a share of the wall time. */
static int compare_loops(int loops, int nconn, double warmup, double seconds, long max_requests) {
    enum { ROUNDS = 5 };
    struct variant {
        int loops;
        pid_t pid;
        char target[64];
        double rps[ROUNDS];
        double server_cpu, gen_cpu, wall;
        long requests;
    } v[2] = {{.loops = 1}, {.loops = loops}};
    for (int k = 0; k < 2; k++)
        snprintf(v[k].target, sizeof v[k].target, "127.0.0.1:%d", start_server(&v[k].pid, SERVER_SERVE, v[k].loops));
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            double s0 = process_cpu(v[k].pid), g0 = self_cpu(), w0 = now_s();
            struct load_result lr = load(v[k].target, nconn, warmup, seconds / ROUNDS, max_requests);
            v[k].server_cpu += process_cpu(v[k].pid) - s0;
            v[k].gen_cpu += self_cpu() - g0;
            v[k].wall += now_s() - w0;
            v[k].rps[r] = lr.rps;
            v[k].requests += lr.requests;
        }
    }
    printf("echo --loops: loopback, %d connections, %d-byte messages, median of %d alternating "
           "rounds of %.2f s; %ld online CPUs\n", nconn, MSG, ROUNDS, seconds / ROUNDS,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("  %-34s %10s %9s %15s %11s %16s %12s\n", "server", "req/s", "x 1 loop", "server CPU/req",
           "server CPU", "loadgen CPU/req", "loadgen CPU");
    double base = 0;
    for (int k = 0; k < 2; k++) {
        kill(v[k].pid, SIGKILL);
        waitpid(v[k].pid, NULL, 0);
        qsort(v[k].rps, ROUNDS, sizeof v[k].rps[0], cmp_double);
        double rps = v[k].rps[ROUNDS / 2];
        if (!k) base = rps;
        /* warm-ups count in CPU and wall time but not in requests: small */
        double us_per_req = v[k].requests ? v[k].server_cpu * 1e6 / (double)v[k].requests : 0;
        double gen_per_req = v[k].requests ? v[k].gen_cpu * 1e6 / (double)v[k].requests : 0;
        char name[64];
        snprintf(name, sizeof name, "aloop_serve, %d loop%s%s", v[k].loops, v[k].loops > 1 ? "s" : "",
                 v[k].loops > 1 ? " (REUSEPORT)" : "");
        printf("  %-34s %10.0f %9.2f %12.2f us %10.0f%% %13.2f us %11.0f%%\n", name, rps,
               base > 0 ? rps / base : 0, us_per_req, 100 * v[k].server_cpu / v[k].wall,
               gen_per_req, 100 * v[k].gen_cpu / v[k].wall);
        printf("RESULT name=echo_loops%d unit=req/s value=%.0f\n", v[k].loops, rps);
        printf("RESULT name=echo_loops%d_server_cpu unit=us/req value=%.2f\n", v[k].loops, us_per_req);
        printf("RESULT name=echo_loops%d_loadgen_cpu unit=%% value=%.0f\n", v[k].loops,
               100 * v[k].gen_cpu / v[k].wall);
    }
    if (base > 0)
        printf("RESULT name=echo_loops%d_vs_1 unit=ratio value=%.2f\n", loops, v[1].rps[ROUNDS / 2] / base);
    return v[0].requests > 0 && v[1].requests > 0 ? 0 : 1;
}

static void usage(void) {
    puts("usage: echo [--quick] [-c CONNS] [-t SECONDS] [-n MAX] [--loops N] [--connect HOST:PORT]\n"
         "       echo --server [--serve] [-p PORT]\n"
         "  TCP echo over loopback, 64-byte messages, CONNS connections (50)\n"
         "  each with one message in flight, SECONDS of measurement (5; --quick 1)\n"
         "  after a warm-up, at most MAX round trips per round (100,000,000).\n"
         "  Without --connect it forks its own libaloop servers (a hand-written\n"
         "  accept loop; aloop_serve with streams) and a hand-written epoll server\n"
         "  (the floor) and loads them in 5 alternating rounds; --server runs only\n"
         "  a libaloop server (--serve: the aloop_serve one). Loopback only.\n"
         "  --loops N: the aloop_serve server with 1 loop and with N loops (one per\n"
         "  thread, SO_REUSEPORT listeners) in alternating rounds, with the server's\n"
         "  CPU time per request and the load generator's CPU use (with --server:\n"
         "  serve with N loops).");
}

int main(int argc, char **argv) {
    const char *connect_to = NULL, *port = "0";
    int server_only = 0, streams = 0, nconn = 50, loops = 0;
    double seconds = 5, warmup = 0.2;
    long max_requests = 100000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            seconds = 1;
            warmup = 0.1;
        } else if (!strcmp(argv[i], "--connect") && i + 1 < argc) {
            connect_to = argv[++i];
        } else if (!strcmp(argv[i], "--server")) {
            server_only = 1;
        } else if (!strcmp(argv[i], "--serve")) {
            streams = 1;
        } else if (!strcmp(argv[i], "--loops") && i + 1 < argc) {
            loops = atoi(argv[++i]);
            if (loops < 1 || loops > 256) {
                usage();
                return 2;
            }
        } else if (!strcmp(argv[i], "-p") && i + 1 < argc) {
            port = argv[++i];
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            nconn = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            max_requests = atol(argv[++i]);
        } else {
            usage();
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (nconn < 1 || nconn > 10000 || !(seconds > 0) || max_requests < 1) {
        usage();
        return 2;
    }
    if (server_only) {
        setvbuf(stdout, NULL, _IONBF, 0);
        return run_server_loops(port, STDOUT_FILENO, streams, loops ? loops : 1);
    }
    if (loops && !connect_to) return compare_loops(loops, nconn, warmup, seconds, max_requests);

    if (connect_to) {
        struct load_result r = load(connect_to, nconn, warmup, seconds, max_requests);
        printf("echo: server at %s, %d connections, %d-byte messages, %.2f s\n", connect_to,
               nconn, MSG, r.seconds);
        printf("  %-28s %12.0f\n", "requests per second", r.rps);
        printf("RESULT name=echo unit=req/s value=%.0f\n", r.rps);
        return r.requests > 0 ? 0 : 1;
    }

    /* Our servers and the floor, each in a child of its own, in alternating
     * rounds (whatever else the machine does then hits all alike); the
     * median round of each counts. */
    enum { ROUNDS = 5 };
    struct server_run {
        pid_t pid;
        char target[64];
        double rps[ROUNDS];
    } runs[NSERVERS];
    for (int k = 0; k < NSERVERS; k++)
        snprintf(runs[k].target, sizeof runs[k].target, "127.0.0.1:%d",
                 start_server(&runs[k].pid, k, 1));
    long requests = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < NSERVERS; k++) {
            struct load_result lr = load(runs[k].target, nconn, warmup, seconds / ROUNDS,
                                         max_requests);
            runs[k].rps[r] = lr.rps;
            if (k == SERVER_TASKS) requests += lr.requests;
        }
    }
    double rps[NSERVERS];
    for (int k = 0; k < NSERVERS; k++) {
        kill(runs[k].pid, SIGKILL);
        waitpid(runs[k].pid, NULL, 0);
        qsort(runs[k].rps, ROUNDS, sizeof runs[k].rps[0], cmp_double);
        rps[k] = runs[k].rps[ROUNDS / 2];
    }
    double floor_rps = rps[SERVER_FLOOR];
    static const char *const names[NSERVERS] = {"libaloop, a task per connection",
                                                "libaloop, aloop_serve + streams",
                                                "floor: hand-written epoll callbacks"};
    printf("echo: loopback, %d connections, %d-byte messages, median of %d alternating "
           "rounds of %.2f s\n", nconn, MSG, ROUNDS, seconds / ROUNDS);
    printf("  %-40s %12s %8s\n", "server", "req/s", "x floor");
    for (int k = 0; k < NSERVERS; k++)
        printf("  %-40s %12.0f %8.2f\n", names[k], rps[k], floor_rps > 0 ? rps[k] / floor_rps : 0);
    printf("RESULT name=echo unit=req/s value=%.0f\n", rps[SERVER_TASKS]);
    printf("RESULT name=echo_serve unit=req/s value=%.0f\n", rps[SERVER_SERVE]);
    printf("RESULT name=echo_floor unit=req/s value=%.0f\n", floor_rps);
    if (floor_rps > 0)
        printf("RESULT name=echo_vs_floor unit=ratio value=%.2f\n", rps[SERVER_TASKS] / floor_rps);
    if (rps[SERVER_TASKS] > 0)
        printf("RESULT name=echo_serve_vs_tasks unit=ratio value=%.2f\n",
               rps[SERVER_SERVE] / rps[SERVER_TASKS]);
    return requests > 0 ? 0 : 1;
}

/*
 * fibserver - the course's "API server": a client sends n (one number per
 * line), the server answers with the n-th Fibonacci number in decimal.
 *
 *     ./fibserver --port 8889 [--threads] [--loops N]
 *     printf '10\n100\n' | nc 127.0.0.1 8889      ->  55, 354224848179261915075
 *
 * The numbers are exact (arbitrary precision, computed by plain addition),
 * so the cost of a request grows with n (fib(200000) has 41,798 digits and
 * takes a noticeable fraction of a second): small n are "simple requests",
 * big n "complex requests", as in the course.
 *
 * Without --threads every request is computed on the loop's thread, so one
 * big request stalls every other client until it is done (the single-
 * threaded server's weakness). With --threads, requests with
 * n >= --thread-min run on the worker pool through aloop_run_in_thread():
 * the connection's task suspends, the loop keeps serving the small ones.
 *
 * One loop per CPU (--loops N, default: the number of online CPUs): N threads,
 * each with its own loop, its own listener on the port (SO_REUSEPORT: the
 * kernel spreads connections over them) and its own worker pool; they share
 * nothing. The first loop (the main thread's) also waits for the signals
 * and tells the others to stop with aloop_call_soon_threadsafe.
 *
 * One task per connection (aloop_serve runs fib_session for each); SIGINT /
 * SIGTERM close the servers, cancel them all and exit 0. A
 * request whose task is cancelled while its job waits for a worker never
 * runs; one cancelled while a worker computes it leaves the job behind, and
 * aloop_run_in_thread_with frees its answer when it is done. A client that
 * hangs up while its request is on the pool cancels it. A second signal
 * during the shutdown ends the process at once (by that signal).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUEST_MAX_LINE 64 /* "123456\n" and then some */

typedef struct fib_options {
    const char *host, *port;
    int threads;          /* big requests go to the worker pool */
    unsigned long thread_min; /* what "big" means */
    unsigned long max_n;
    unsigned pool_size;   /* 0 = library default (number of CPUs) */
    unsigned loops;       /* loops, one per thread (default: online CPUs) */
    int log;              /* print "fib(n)" to stdout as each request starts */
} fib_options_t;

/* ------------------------------------------------------------------------ */
/* Arbitrary-precision Fibonacci                                            */
/* ------------------------------------------------------------------------ */

#define LIMB_BASE 1000000000u /* 9 decimal digits per limb */

/* fib(n) as a malloc'd decimal string, or NULL when out of memory.
 * fib(0) = 0, fib(1) = 1. Runs on any thread: touches nothing shared. */
static char *fib_decimal(unsigned long n) {
    /* fib(n) has about 0.209 n digits, i.e. 0.0233 n limbs; fib(n + 1),
     * computed on the way, may need one more. */
    size_t cap = n / 40 + 3;
    uint32_t *a = calloc(cap, sizeof *a), *b = calloc(cap, sizeof *b);
    char *out = NULL;
    if (!a || !b) goto done;
    size_t len = 1;
    b[0] = 1; /* (a, b) = (fib(i), fib(i + 1)), starting at i = 0 */
    for (unsigned long i = 0; i < n; i++) {
        uint32_t carry = 0;
        for (size_t k = 0; k < len; k++) { /* a += b: now fib(i + 2) */
            uint32_t sum = a[k] + b[k] + carry;
            carry = sum >= LIMB_BASE;
            a[k] = carry ? sum - LIMB_BASE : sum;
        }
        if (carry) a[len++] = 1;
        uint32_t *t = a; /* (a, b) = (b, a + b) */
        a = b;
        b = t;
    }
    while (len > 1 && a[len - 1] == 0) len--;
    out = malloc(len * 9 + 2);
    if (!out) goto done;
    int pos = sprintf(out, "%u", (unsigned)a[len - 1]);
    for (size_t k = len - 1; k-- > 0;) pos += sprintf(out + pos, "%09u", (unsigned)a[k]);
done:
    free(a);
    free(b);
    return out;
}

/* On a worker thread: the answer is the job's result (a malloc'd string). */
static void *fib_job_run(void *arg) { return fib_decimal((unsigned long)(uintptr_t)arg); }

/* An answer nobody waits for any more (its request was cancelled). */
static void fib_job_discard(void *answer, void *arg) {
    (void)arg;
    free(answer);
}

/* fib(n) on the worker pool, as a task: its result is the answer. */
static void *fib_job_task(void *arg) {
    void *answer = NULL;
    int rc = aloop_run_in_thread_with(fib_job_run, arg, fib_job_discard, &answer);
    if (rc < 0) return aloop_fail(rc);
    return answer ? answer : aloop_fail(-ENOMEM);
}

/* Watches a client while its request is on the pool: an error (a reset)
 * means it hung up, and its job is cancelled (dropped if no worker has
 * taken it yet). End of file is not a hang-up: a client may half-close
 * after its request (`nc -N`) and still wait for the answer, which it
 * gets before the server closes. Another request already sent
 * (pipelining) means the client is still there. Either way, nothing more
 * to watch. */
typedef struct hangup_watch {
    int fd;
    aloop_task_t *job;
} hangup_watch_t;

static void *hangup_main(void *arg) {
    hangup_watch_t *w = arg;
    for (;;) {
        if (aloop_wait_readable(w->fd, -1) < 0) return NULL; /* cancelled */
        char b;
        ssize_t n = recv(w->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n >= 0) return NULL; /* more requests, or end of file */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        aloop_cancel(w->job);
        return NULL;
    }
}

static void stop_task(aloop_task_t *t);

/* fib(n) on the worker pool while watching the client: 0 with *answer set,
 * -ECONNRESET if the client hung up, or -errno. */
static int fib_in_thread(int fd, unsigned long n, char **answer) {
    aloop_t *loop = aloop_current();
    aloop_task_t *job = aloop_spawn(loop, fib_job_task, (void *)(uintptr_t)n);
    if (!job) return -ENOMEM;
    hangup_watch_t w = {fd, job};
    aloop_task_t *watch = aloop_spawn(loop, hangup_main, &w);
    void *res = NULL;
    int rc = aloop_await(job, &res); /* a cancel of ours cancels the job too */
    int hung_up = rc == -ECANCELED && aloop_task_cancelling(aloop_current_task()) == 0;
    if (rc < 0 && aloop_future_result(job, &res) == 0) free(res); /* done, then we were cancelled */
    stop_task(watch); /* before w goes out of scope */
    aloop_release(job);
    if (rc < 0) return hung_up ? -ECONNRESET : rc;
    *answer = res;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Server and connections                                                   */
/* ------------------------------------------------------------------------ */

typedef struct fib_loop fib_loop_t;

typedef struct fib_server {
    const fib_options_t *opt;
    unsigned signals;    /* SIGINT/SIGTERM received */
    aloop_event_t *stop; /* set by a signal watcher, or by loop 0 */
    int stop_requested;  /* loop 0 said stop (maybe before stop existed) */
    fib_loop_t *loops;   /* all of them (loop 0 tells the others to stop) */
    unsigned nloops;
} fib_server_t;

/* One loop, its thread, its listener. */
struct fib_loop {
    aloop_t *loop;
    int fd;              /* its listener */
    int watch_signals;   /* loop 0 only */
    pthread_t thread;
    aloop_task_t *main;
    fib_server_t state;
};

/* "  42\r\n" (len bytes) -> 42. -1 if not a whole number in [0, max],
 * including a line with a NUL byte in it ("3\0junk\n" is not "3"). */
static long parse_request(const char *line, size_t len, unsigned long max) {
    if (memchr(line, '\0', len)) return -1;
    while (*line == ' ' || *line == '\t') line++;
    if (*line < '0' || *line > '9') return -1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(line, &end, 10);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end || errno || n > max) return -1;
    return (long)n;
}

static int conn_reply(aloop_stream_t *conn, const char *text) {
    ssize_t n = aloop_stream_write(conn, text, strlen(text));
    return n < 0 ? (int)n : 0;
}

/* Answers one request line: 0, or < 0 when the connection should end. */
static int conn_answer(aloop_stream_t *conn, const fib_options_t *opt, const char *line,
                       size_t line_len) {
    char msg[96];
    long n = parse_request(line, line_len, opt->max_n);
    if (n < 0) {
        snprintf(msg, sizeof msg, "error: send a whole number from 0 to %lu\n", opt->max_n);
        return conn_reply(conn, msg);
    }
    if (opt->log) { /* before the work starts: a watcher knows it is under way */
        printf("fib(%ld)\n", n);
        fflush(stdout);
    }
    char *answer = NULL;
    int rc;
    if (opt->threads && (unsigned long)n >= opt->thread_min) {
        rc = fib_in_thread(aloop_stream_fd(conn), (unsigned long)n, &answer);
    } else {
        answer = fib_decimal((unsigned long)n); /* blocks the loop for big n */
        rc = answer ? 0 : -ENOMEM;
    }
    if (rc == -ENOMEM) return conn_reply(conn, "error: out of memory\n");
    if (rc == -ECONNRESET && opt->log) {
        printf("hung up: fib(%ld)\n", n);
        fflush(stdout);
    }
    if (rc < 0) return rc;
    size_t len = strlen(answer);
    answer[len] = '\n'; /* fib_decimal leaves room for it */
    ssize_t w = aloop_stream_write(conn, answer, len + 1);
    free(answer);
    return w < 0 ? (int)w : 0;
}

/* The aloop_serve handler: one connection, a request per line, until the
 * client goes (or the server cancels us); the server closes conn. */
static void fib_session(aloop_stream_t *conn, void *arg) {
    const fib_server_t *srv = arg;
    char line[REQUEST_MAX_LINE + 1]; /* readline's cap bounds the line */
    for (;;) {
        ssize_t n = aloop_stream_readline(conn, line, sizeof line);
        if (n == -EMSGSIZE) {
            if (conn_reply(conn, "error: line too long\n") < 0) break;
            continue;
        }
        if (n <= 0 || conn_answer(conn, srv->opt, line, (size_t)n) < 0) break;
    }
}

/* The user insists: end the process by that signal now, without waiting for
 * the jobs still running. aloop_signal_wait keeps the signal blocked in this
 * thread, so it is raised with the default action and then unblocked. */
static void die_by_signal(int signo) {
    fprintf(stderr, "fibserver: second signal during shutdown; exiting now\n");
    signal(signo, SIG_DFL);
    raise(signo);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + signo); /* not reached */
}

/* On loop i's thread: loop 0 asks it to stop. */
static void stop_this_loop(void *arg) {
    fib_server_t *state = arg;
    state->stop_requested = 1;
    if (state->stop) aloop_event_set(state->stop);
}

/* On loop 0: every other loop shuts down the same way. Posting never waits
 * (nor fails for lack of memory in a way we could do better about: a loop
 * we cannot tell would keep the process up, so say so). */
static void tell_other_loops_to_stop(fib_server_t *server) {
    for (unsigned i = 1; i < server->nloops; i++) {
        fib_loop_t *l = &server->loops[i];
        int rc = aloop_call_soon_threadsafe(l->loop, stop_this_loop, &l->state);
        if (rc < 0) fprintf(stderr, "fibserver: cannot stop loop %u: %s\n", i, aloop_strerror(rc));
    }
}

/* The first SIGINT/SIGTERM starts the shutdown; the watcher keeps running
 * during it, so a second one is not lost. */
static void *signal_main(void *arg) {
    fib_server_t *server = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        int signo = aloop_signal_wait_any(&set);
        if (signo < 0) {
            if (signo != -ECANCELED)
                fprintf(stderr, "fibserver: cannot wait for SIGINT/SIGTERM: %s\n",
                        aloop_strerror(signo));
            return NULL;
        }
        if (server->signals++ > 0) die_by_signal(signo);
        aloop_event_set(server->stop);
        tell_other_loops_to_stop(server);
    }
}

static void stop_task(aloop_task_t *t) {
    if (!t) return;
    aloop_cancel(t);
    aloop_await(t, NULL);
    aloop_release(t);
}

static void print_listening(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    if (ss.ss_family == AF_INET6) printf("listening on [%s]:%s\n", host, serv);
    else printf("listening on %s:%s\n", host, serv);
    fflush(stdout);
}

/* One loop's server: serves its listener until told to stop (by a signal
 * on loop 0, by loop 0 on the others). */
static void *server_main(void *arg) {
    fib_loop_t *l = arg;
    fib_server_t *state = &l->state;
    aloop_t *loop = aloop_current();
    int fd = l->fd;
    state->stop = aloop_event_new(loop);
    if (state->stop && state->stop_requested) aloop_event_set(state->stop);
    aloop_task_t *sig = l->watch_signals ? aloop_spawn(loop, signal_main, state) : NULL;
    int watchers_ok = !l->watch_signals || sig;
    aloop_server_t *srv = NULL;
    if (state->stop && watchers_ok) srv = aloop_serve(loop, fd, fib_session, state);
    if (srv) {
        aloop_yield(); /* the watcher registers before anyone can signal us */
        if (l->watch_signals) print_listening(fd);
        aloop_event_wait(state->stop);
        /* Stop accepting, end every connection, wait until all are gone;
         * the signal watchers stay up meanwhile (a second signal is fatal). */
        aloop_server_close(srv);
        aloop_server_cancel_handlers(srv);
        aloop_server_wait_closed(srv);
        aloop_server_free(srv);
    } else {
        fprintf(stderr, "fibserver: out of memory\n");
        aloop_close(fd);
        if (l->watch_signals) tell_other_loops_to_stop(state);
    }
    stop_task(sig);
    aloop_event_free(state->stop);
    state->stop = NULL;
    return srv ? NULL : aloop_fail(-ENOMEM);
}

/* Loops 1..N-1: each thread runs its loop until its server_main returns. */
static void *loop_thread(void *arg) {
    fib_loop_t *l = arg;
    int rc = aloop_run_until_complete(l->loop, l->main);
    return (void *)(intptr_t)rc;
}

/* N listeners on one port: the first picks it (port 0 = any), the others
 * join it with SO_REUSEPORT; with one loop, a plain listener. Runs as a
 * task on loop 0 (a host name may need a lookup on its pool). */
typedef struct listen_job {
    const fib_options_t *opt;
    fib_loop_t *loops;
} listen_job_t;

static void *open_listeners(void *arg) {
    listen_job_t *job = arg;
    const fib_options_t *opt = job->opt;
    char bound[NI_MAXSERV];
    snprintf(bound, sizeof bound, "%s", opt->port);
    for (unsigned i = 0; i < opt->loops; i++) {
        int fd = opt->loops == 1 ? aloop_tcp_listen(opt->host, opt->port, SOMAXCONN)
                                 : aloop_tcp_listen_with(opt->host, bound, SOMAXCONN,
                                                         ALOOP_LISTEN_REUSEPORT);
        if (fd < 0) {
            fprintf(stderr, "fibserver: cannot listen on %s:%s: %s\n", opt->host, bound,
                    aloop_strerror(fd));
            while (i-- > 0) {
                aloop_close(job->loops[i].fd);
                job->loops[i].fd = -1;
            }
            return aloop_fail(fd);
        }
        job->loops[i].fd = fd;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (i == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            getnameinfo((struct sockaddr *)&ss, len, NULL, 0, bound, sizeof bound, NI_NUMERICSERV);
    }
    return NULL;
}

/* Creates the loops (each with its own pool) and their server tasks, runs
 * loops 1..N-1 on threads of their own (SIGINT/SIGTERM blocked there, so
 * the signals reach loop 0's watchers) and loop 0 on this thread. */
static int run_servers(const fib_options_t *opt) {
    fib_loop_t *loops = calloc(opt->loops, sizeof *loops);
    if (!loops) return -ENOMEM;
    unsigned made = 0;
    int rc = 0;
    for (; made < opt->loops; made++) {
        fib_loop_t *l = &loops[made];
        l->state = (fib_server_t){.opt = opt, .loops = loops, .nloops = opt->loops};
        l->watch_signals = made == 0;
        l->fd = -1;
        l->loop = aloop_new();
        if (!l->loop) break;
        if (opt->pool_size) aloop_set_thread_pool_size(l->loop, opt->pool_size);
    }
    if (made < opt->loops) {
        fprintf(stderr, "fibserver: out of memory\n");
        rc = -ENOMEM;
    } else {
        listen_job_t job = {opt, loops};
        aloop_task_t *t = aloop_spawn(loops[0].loop, open_listeners, &job);
        rc = t ? aloop_run_until_complete(loops[0].loop, t) : -ENOMEM;
        aloop_release(t);
    }
    for (unsigned i = 0; rc == 0 && i < made; i++) {
        loops[i].main = aloop_spawn(loops[i].loop, server_main, &loops[i]);
        if (!loops[i].main) rc = -ENOMEM; /* aloop_free below cancels the others */
    }
    if (rc < 0) {
        for (unsigned i = 0; i < made; i++) {
            if (loops[i].fd >= 0 && !loops[i].main) aloop_close(loops[i].fd);
            aloop_release(loops[i].main);
            aloop_free(loops[i].loop);
        }
        free(loops);
        return rc;
    }
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 1;
    for (; started < opt->loops; started++)
        if (pthread_create(&loops[started].thread, NULL, loop_thread, &loops[started]) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started < opt->loops) {
        /* stop at once: loop 0 tells the loops that run; the loops that got
         * no thread are freed below, which cancels their servers unstarted */
        fprintf(stderr, "fibserver: cannot start a thread for loop %u\n", started);
        rc = -EAGAIN;
        loops[0].state.nloops = started;
        loops[0].state.stop_requested = 1;
        tell_other_loops_to_stop(&loops[0].state);
        for (unsigned i = started; i < opt->loops; i++) aloop_close(loops[i].fd);
    }
    int rc0 = aloop_run_until_complete(loops[0].loop, loops[0].main);
    if (rc == 0) rc = rc0;
    for (unsigned i = 1; i < started; i++) {
        void *trc = NULL;
        pthread_join(loops[i].thread, &trc);
        if (rc == 0 && (intptr_t)trc < 0) rc = (int)(intptr_t)trc;
    }
    for (unsigned i = 0; i < opt->loops; i++) {
        aloop_release(loops[i].main);
        aloop_free(loops[i].loop);
    }
    free(loops);
    return rc;
}

static void usage(FILE *out, const char *prog) {
    fprintf(out,
            "usage: %s [options]\n"
            "  --host HOST        address to listen on (default 127.0.0.1)\n"
            "  --port PORT        port (default 8889; 0 = any free port)\n"
            "  --threads          compute big requests on the worker pool\n"
            "  --thread-min N     what is big: n >= N (default 5000)\n"
            "  --pool N           worker threads per loop (default: number of CPUs)\n"
            "  --loops N          loops, one per thread, each with its own listener\n"
            "                     (SO_REUSEPORT) and pool (default: online CPUs)\n"
            "  --max-n N          largest n accepted (default 200000)\n"
            "  --log              print \"fib(N)\" to stdout as each request starts\n"
            "Protocol: one number n per line; the answer is fib(n) in decimal.\n"
            "Prints \"listening on HOST:PORT\" once ready; SIGINT/SIGTERM stop it\n"
            "(a second one during the shutdown ends it at once).\n",
            prog);
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || *s == '-' || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},   {"port", required_argument, NULL, 'p'},
        {"threads", no_argument, NULL, 't'},      {"thread-min", required_argument, NULL, 'm'},
        {"pool", required_argument, NULL, 'P'},   {"max-n", required_argument, NULL, 'n'},
        {"loops", required_argument, NULL, 'L'},  {"help", no_argument, NULL, 'H'},
        {"log", no_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    fib_options_t opt = {.host = "127.0.0.1", .port = "8889", .thread_min = 5000,
                         .max_n = 200000};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        unsigned long v = 0;
        int bad = 0;
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 't': opt.threads = 1; break;
        case 'm': bad = parse_ulong(optarg, 0, 100000000, &opt.thread_min); break;
        case 'P': bad = parse_ulong(optarg, 1, 1024, &v); opt.pool_size = (unsigned)v; break;
        case 'n': bad = parse_ulong(optarg, 0, 10000000, &opt.max_n); break;
        case 'L': bad = parse_ulong(optarg, 1, 1024, &v); opt.loops = (unsigned)v; break;
        case 'l': opt.log = 1; break;
        case 'H': usage(stdout, argv[0]); return 0;
        default: bad = 1; break;
        }
        if (bad) {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (!opt.loops) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        opt.loops = cpus > 0 ? (unsigned)cpus : 1;
    }
    int rc = run_servers(&opt);
    return rc < 0 ? 1 : 0; /* run_servers has said what went wrong */
}

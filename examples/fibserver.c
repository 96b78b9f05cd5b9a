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
 * and tells the others to stop with aloop_call_soon_threadsafe (the
 * start-up the servers share: examples/common/serve_main.c).
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
#include "common/serve_main.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    serve_stop_task(watch); /* before w goes out of scope */
    aloop_release(job);
    if (rc < 0) return hung_up ? -ECONNRESET : rc;
    *answer = res;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Server and connections                                                   */
/* ------------------------------------------------------------------------ */

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
    const fib_options_t *opt = arg;
    char line[REQUEST_MAX_LINE + 1]; /* readline's cap bounds the line */
    for (;;) {
        ssize_t n = aloop_stream_readline(conn, line, sizeof line);
        if (n == -EMSGSIZE) {
            if (conn_reply(conn, "error: line too long\n") < 0) break;
            continue;
        }
        if (n <= 0 || conn_answer(conn, opt, line, (size_t)n) < 0) break;
    }
}

/* serve_main runs N loops and the shutdown; each loop serves its listener. */
static aloop_server_t *start_loop(serve_loop_t *l) {
    return aloop_serve(l->loop, l->fd, fib_session, l->cfg->arg);
}

/* Stop accepting, end every connection, wait until all are gone. */
static void shutdown_loop(serve_loop_t *l, aloop_server_t *srv) {
    (void)l;
    aloop_server_close(srv);
    aloop_server_cancel_handlers(srv);
    aloop_server_wait_closed(srv);
    aloop_server_free(srv);
}

static int run_servers(const fib_options_t *opt) {
    serve_config_t cfg = {.name = "fibserver", .host = opt->host, .port = opt->port,
                          .loops = opt->loops, .pool_size = opt->pool_size,
                          .start = start_loop, .shutdown = shutdown_loop, .arg = (void *)opt};
    return serve_main(&cfg);
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

/*
 * timers.c - what a timer costs in CPU time (not wall time: the loop spends
 * most of the second asleep, which costs nothing).
 *
 *   sleep_tasks   N tasks (default 100,000), each sleeping a random 0-1 s
 *                 once: process CPU time / N, everything included (spawn,
 *                 stack, the sleep, the wake-up, the task's end). Also split
 *                 into the spawn phase and the run phase.
 *   call_later    M call_later callbacks (default 1,000,000) at random 0-1 s:
 *                 CPU per timer with no task at all.
 *
 * CPU time is CLOCK_PROCESS_CPUTIME_ID (user + system). Prints a human
 * table and one `RESULT name=... unit=ns value=...` line per figure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
static double cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
static double wall_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* xorshift64*: the same delays on every run, no libc rand() state. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static double random_unit(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Du) >> 11) / 9007199254740992.0;
}

static void die(const char *what, int err) {
    fprintf(stderr, "timers: %s: %s\n", what, aloop_strerror(err));
    exit(1);
}

/* ---- N sleeping tasks */

static long woken;

static void *sleeper(void *arg) {
    double *delay = arg;
    int rc = aloop_sleep(*delay);
    if (rc < 0) die("aloop_sleep", rc);
    woken++;
    return NULL;
}

struct sleep_result {
    double total, spawn, run, wall; /* ns */
};

static struct sleep_result bench_sleep_tasks(long n) {
    double *delays = malloc((size_t)n * sizeof *delays);
    if (!delays) die("malloc", -ENOMEM);
    for (long i = 0; i < n; i++) delays[i] = random_unit();
    aloop_t *loop = aloop_new();
    if (!loop) die("aloop_new", -errno);
    woken = 0;
    double w0 = wall_ns(), c0 = cpu_ns();
    for (long i = 0; i < n; i++) {
        aloop_task_t *t = aloop_spawn(loop, sleeper, &delays[i]);
        if (!t) die("aloop_spawn", -errno);
        aloop_release(t); /* detached: freed when it ends */
    }
    double c1 = cpu_ns();
    int rc = aloop_run(loop);
    if (rc < 0) die("aloop_run", rc);
    double c2 = cpu_ns(), w2 = wall_ns();
    if (woken != n) {
        fprintf(stderr, "timers: %ld of %ld sleepers woke\n", woken, n);
        exit(1);
    }
    aloop_free(loop);
    free(delays);
    struct sleep_result r = {(c2 - c0) / (double)n, (c1 - c0) / (double)n,
                             (c2 - c1) / (double)n, w2 - w0};
    return r;
}

/* ---- M call_later callbacks */

static long fired;
static void on_timer(void *arg) {
    (void)arg;
    fired++;
}

static double bench_call_later(long m, double *wall) {
    aloop_t *loop = aloop_new();
    if (!loop) die("aloop_new", -errno);
    fired = 0;
    double w0 = wall_ns(), c0 = cpu_ns();
    for (long i = 0; i < m; i++)
        if (!aloop_call_later(loop, random_unit(), on_timer, NULL)) die("aloop_call_later", -errno);
    int rc = aloop_run(loop);
    if (rc < 0) die("aloop_run", rc);
    double c1 = cpu_ns();
    *wall = wall_ns() - w0;
    if (fired != m) {
        fprintf(stderr, "timers: %ld of %ld callbacks fired\n", fired, m);
        exit(1);
    }
    aloop_free(loop);
    return (c1 - c0) / (double)m;
}

static void usage(void) {
    puts("usage: timers [--quick] [-n TASKS] [-m CALLBACKS]\n"
         "  CPU ns per timer: TASKS tasks sleeping a random 0-1 s (default\n"
         "  100,000) and CALLBACKS call_later callbacks (default 1,000,000).\n"
         "  --quick = 20,000 and 200,000. Each case takes about 1 s of wall time.");
}

int main(int argc, char **argv) {
    long n = 100000, m = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            n = 20000;
            m = 200000;
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            n = atol(argv[++i]);
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            m = atol(argv[++i]);
        } else {
            usage();
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (n < 1) n = 1;
    if (m < 1) m = 1;

    struct sleep_result s = bench_sleep_tasks(n);
    double cb_wall, cb = bench_call_later(m, &cb_wall);

    printf("timers: %ld sleeping tasks, %ld call_later callbacks, delays 0-1 s\n", n, m);
    printf("  %-40s %12s %10s\n", "figure", "CPU ns/timer", "wall s");
    printf("  %-40s %12.0f %10.2f\n", "sleeping tasks, total", s.total, s.wall / 1e9);
    printf("  %-40s %12.0f\n", "  of which spawn (stack, task)", s.spawn);
    printf("  %-40s %12.0f\n", "  of which run (sleep, wake, finish)", s.run);
    printf("  %-40s %12.0f %10.2f\n", "call_later callbacks", cb, cb_wall / 1e9);
    printf("RESULT name=timers_sleep unit=ns value=%.0f\n", s.total);
    printf("RESULT name=timers_sleep_spawn unit=ns value=%.0f\n", s.spawn);
    printf("RESULT name=timers_sleep_run unit=ns value=%.0f\n", s.run);
    printf("RESULT name=timers_call_later unit=ns value=%.0f\n", cb);
    return 0;
}

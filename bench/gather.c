/*
 * gather.c - spawn N trivial tasks, then gather them (the pattern of the
 * course's asyncio examples: create many tasks, then `gather` them).
 *
 *   gather_million       ns per task, spawn + run + gather, N = 1,000,000
 *                        (wall clock, median of the rounds);
 *   gather_million_cpu   the same in CPU time of the process (user + system:
 *                        less sensitive to other work on the machine);
 *   gather_million_rss   peak RSS of the whole process, MiB (Go 1.19 does
 *                        this in 101-119 MiB at 894-1,069 ns per task);
 *   gather_pending       bytes of RSS per pending task: RSS with all N
 *                        spawned and none started, minus RSS before, / N.
 *
 * Each task returns its index + 1; the gathered results are checked.
 * Prints a human table and one `RESULT name=... unit=... value=...` line per
 * figure. --quick: N = 100,000 (names gather_100k*).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "aloop.h"

#include <errno.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
static double cpu_ns(void) { return clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

static size_t rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct job {
    size_t n;
    double ns_per_task, cpu_per_task;
    size_t rss_before, rss_pending;
    int ok;
} job_t;

static void *one(void *arg) { return (void *)((uintptr_t)arg + 1); }

static void *spawn_then_gather(void *arg) {
    job_t *job = arg;
    aloop_t *loop = aloop_current();
    aloop_task_t **ts = malloc(job->n * sizeof *ts);
    void **results = malloc(job->n * sizeof *results);
    if (!ts || !results) return aloop_fail(-ENOMEM);
    job->rss_before = rss_bytes();
    double t0 = now_ns(), c0 = cpu_ns();
    size_t n = 0;
    for (; n < job->n; n++)
        if (!(ts[n] = aloop_spawn(loop, one, (void *)n))) break;
    double t1 = now_ns(), c1 = cpu_ns();
    job->rss_pending = rss_bytes();
    double t2 = now_ns(), c2 = cpu_ns();
    int rc = n == job->n ? aloop_gather(ts, n, results, NULL, 0) : -ENOMEM;
    double t3 = now_ns(), c3 = cpu_ns();
    job->ns_per_task = ((t1 - t0) + (t3 - t2)) / (double)job->n;
    job->cpu_per_task = ((c1 - c0) + (c3 - c2)) / (double)job->n;
    job->ok = rc == 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && (uintptr_t)results[i] != i + 1) job->ok = 0;
        aloop_release(ts[i]);
    }
    free(ts);
    free(results);
    return NULL;
}

static int run_round(size_t n, job_t *job) {
    memset(job, 0, sizeof *job);
    job->n = n;
    int rc = aloop_main(spawn_then_gather, job, NULL);
    if (rc < 0 || !job->ok) {
        fprintf(stderr, "gather: round failed: %s\n", rc < 0 ? aloop_strerror(rc) : "bad results");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, rounds = 5;
    size_t n = 1000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            n = 100000;
            rounds = 3;
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: gather [--quick] [-n TASKS] [--rounds R]\n");
            return 2;
        }
    }
    if (n < 1 || rounds < 1) return 2;
    double ns[64], cpu[64];
    if (rounds > 64) rounds = 64;
    job_t job = {0}, first = {0}; /* rounds >= 1: first is always set; gcc -O2 cannot tell */
    for (int r = 0; r < rounds; r++) {
        if (run_round(n, &job) < 0) return 1;
        if (r == 0) first = job; /* the pending RSS of a fresh process */
        ns[r] = job.ns_per_task;
        cpu[r] = job.cpu_per_task;
    }
    qsort(ns, (size_t)rounds, sizeof *ns, cmp_double);
    qsort(cpu, (size_t)rounds, sizeof *cpu, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double peak_mib = (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB */
    double pending = (double)(first.rss_pending - first.rss_before) / (double)n;
    const char *name = n >= 1000000 ? "gather_million" : quick ? "gather_100k" : "gather";
    printf("gather: spawn %zu trivial tasks, then gather them (median of %d rounds)\n", n, rounds);
    printf("  %-36s %12.1f ns\n", "per task (spawn + run + gather)", ns[rounds / 2]);
    printf("  %-36s %12.1f ns\n", "  CPU time per task", cpu[rounds / 2]);
    printf("  %-36s %12.1f MiB\n", "peak RSS of the process", peak_mib);
    printf("  %-36s %12.1f bytes\n", "RSS per pending task", pending);
    printf("RESULT name=%s unit=ns value=%.1f\n", name, ns[rounds / 2]);
    printf("RESULT name=%s_cpu unit=ns value=%.1f\n", name, cpu[rounds / 2]);
    printf("RESULT name=%s_rss unit=MiB value=%.1f\n", name, peak_mib);
    printf("RESULT name=%s_pending unit=B value=%.1f\n", name, pending);
    return 0;
}

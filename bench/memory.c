/*
 * memory.c - resident memory per idle suspended task.
 *
 * Spawns N tasks (default 100,000; --million: 1,000,000) that each await
 * one shared future, lets them all run up to that await, and reads the
 * process's resident set (/proc/self/statm) before and after: the growth
 * divided by N is what an idle task costs (its stack pages, its task
 * struct, its share of the ready ring). Guard pages stay on (the default)
 * unless --no-guard. Page tables are not part of RSS; VmPTE is printed
 * beside it for the record.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, int err) {
    fprintf(stderr, "memory: %s: %s\n", what, aloop_strerror(err));
    exit(1);
}

/* Resident set in bytes. */
static double rss_bytes(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) die("/proc/self/statm", -EIO);
    fclose(f);
    return (double)pages_resident * (double)sysconf(_SC_PAGESIZE);
}

/* A "Name:  value kB" line of /proc/self/status, in bytes (0 if absent). */
static double status_kb(const char *name) {
    char line[256];
    double v = 0;
    size_t len = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':') v = atof(line + len + 1) * 1024.0;
    fclose(f);
    return v;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static aloop_future_t *gate; /* every idle task awaits it */
static long idle_now;        /* tasks parked in the await */

static void *idler(void *arg) {
    (void)arg;
    idle_now++;
    int rc = aloop_await(gate, NULL);
    if (rc < 0) die("aloop_await", rc);
    idle_now--;
    return NULL;
}

struct job {
    long n;
    double rss_before, rss_idle, pte_before, pte_idle, spawn_s;
};

/* Runs as a task: spawns the idlers, yields once so that every one of them
 * runs up to its await (the ring is FIFO), measures, then opens the gate. */
static void *controller(void *arg) {
    struct job *job = arg;
    aloop_t *loop = aloop_current();
    job->rss_before = rss_bytes();
    job->pte_before = status_kb("VmPTE");
    double t0 = wall_s();
    for (long i = 0; i < job->n; i++) {
        aloop_task_t *t = aloop_spawn(loop, idler, NULL);
        if (!t) die("aloop_spawn", -errno);
        aloop_release(t); /* detached */
    }
    int rc = aloop_yield();
    if (rc < 0) die("aloop_yield", rc);
    job->spawn_s = wall_s() - t0;
    if (idle_now != job->n) {
        fprintf(stderr, "memory: only %ld of %ld tasks are idle\n", idle_now, job->n);
        exit(1);
    }
    job->rss_idle = rss_bytes();
    job->pte_idle = status_kb("VmPTE");
    aloop_future_set_result(gate, NULL);
    return NULL;
}

static void usage(void) {
    puts("usage: memory [--quick] [--million] [-n N] [--no-guard]\n"
         "  RSS per idle suspended task, N tasks (default 100,000; --quick\n"
         "  20,000; --million 1,000,000), guard pages on unless --no-guard.");
}

int main(int argc, char **argv) {
    struct job job = {.n = 100000};
    aloop_config_t cfg = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            job.n = 20000;
        } else if (!strcmp(argv[i], "--million")) {
            job.n = 1000000;
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            job.n = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--no-guard")) {
            cfg.flags |= ALOOP_NO_GUARD_PAGES;
        } else {
            usage();
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (job.n < 1) job.n = 1;

    aloop_t *loop = aloop_new_with(&cfg);
    if (!loop) die("aloop_new", -errno);
    gate = aloop_future_new(loop);
    if (!gate) die("aloop_future_new", -errno);
    aloop_task_t *t = aloop_spawn(loop, controller, &job);
    if (!t) die("aloop_spawn", -errno);
    int rc = aloop_run(loop);
    if (rc < 0) die("aloop_run", rc);
    if (idle_now != 0) die("idle tasks left", -EDEADLK);
    aloop_release(t);
    aloop_release(gate);
    aloop_free(loop);

    double per_task = (job.rss_idle - job.rss_before) / (double)job.n;
    double pte = (job.pte_idle - job.pte_before) / (double)job.n;
    const char *name = job.n >= 1000000 ? "memory_million" : "memory_idle";
    printf("memory: %ld idle tasks, guard pages %s\n", job.n,
           (cfg.flags & ALOOP_NO_GUARD_PAGES) ? "off" : "on");
    printf("  %-36s %12.2f MiB\n", "RSS before", job.rss_before / 1048576.0);
    printf("  %-36s %12.2f MiB\n", "RSS with every task idle", job.rss_idle / 1048576.0);
    printf("  %-36s %12.2f KiB\n", "RSS per idle task", per_task / 1024.0);
    printf("  %-36s %12.2f KiB\n", "page tables per task (not in RSS)", pte / 1024.0);
    printf("  %-36s %12.2f s\n", "time to spawn and park them", job.spawn_s);
    printf("RESULT name=%s unit=KiB value=%.2f\n", name, per_task / 1024.0);
    printf("RESULT name=%s_total unit=MiB value=%.1f\n", name, (job.rss_idle - job.rss_before) / 1048576.0);
    return 0;
}

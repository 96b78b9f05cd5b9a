/*
 * bench/spawn.c - children per second: aloop_process_spawn + wait of
 * /bin/true, one at a time and 16 at once (bench/asyncio/spawn.py is the
 * asyncio twin: create_subprocess_exec + wait).
 *
 * --parent-mib N first allocates and touches N MiB, then also times a
 * plain fork + execv + waitpid loop in the same run: posix_spawn (glibc:
 * clone(CLONE_VM | CLONE_VFORK)) does not copy the parent's page tables,
 * fork does, so fork's rate falls with the parent's size and spawn's does
 * not. The two are run interleaved, several rounds, medians.
 *
 * Prints a table and `RESULT name=... unit=child/s value=...` lines.
 */
#define _GNU_SOURCE
#include <aloop.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CONCURRENT 16
#define ROUNDS 5

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *true_argv[] = {"/bin/true", NULL};

typedef struct work {
    int n;      /* children per task */
    int failed;
} work_t;

static void *spawner(void *arg) {
    work_t *w = arg;
    for (int i = 0; i < w->n; i++) {
        aloop_process_t *p = aloop_process_spawn(aloop_current(), true_argv, NULL);
        int st = -1;
        if (!p || aloop_process_wait(p, &st) < 0 || st != 0) w->failed++;
        aloop_process_free(p);
    }
    return NULL;
}

/* n children through `tasks` tasks at once: children per second. */
static double run_aloop(int n, int tasks) {
    aloop_t *loop = aloop_new();
    if (!loop) exit(1);
    work_t w[CONCURRENT];
    aloop_task_t *t[CONCURRENT];
    double t0 = now_s();
    for (int i = 0; i < tasks; i++) {
        w[i] = (work_t){.n = n / tasks};
        t[i] = aloop_spawn(loop, spawner, &w[i]);
    }
    aloop_run(loop);
    double dt = now_s() - t0;
    for (int i = 0; i < tasks; i++) {
        aloop_release(t[i]);
        if (w[i].failed) {
            fprintf(stderr, "spawn: %d children failed\n", w[i].failed);
            exit(1);
        }
    }
    aloop_free(loop);
    return (double)(n / tasks * tasks) / dt;
}

/* The baseline: fork + execv + waitpid, one at a time. */
static double run_fork(int n) {
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(true_argv[0], true_argv);
            _exit(127);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) < 0 || st != 0) exit(1);
    }
    return (double)n / (now_s() - t0);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

int main(int argc, char **argv) {
    int n = 2000;
    long parent_mib = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            n = 320;
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--parent-mib") && i + 1 < argc)
            parent_mib = atol(argv[++i]);
        else {
            printf("usage: spawn [--quick] [-n CHILDREN] [--parent-mib N]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (n < CONCURRENT) n = CONCURRENT;
    char *ballast = NULL;
    if (parent_mib > 0) {
        size_t len = (size_t)parent_mib << 20;
        ballast = malloc(len);
        if (!ballast) return 1;
        memset(ballast, 1, len); /* touched: real page-table entries */
    }
    double seq = run_aloop(n, 1), conc = run_aloop(n, CONCURRENT);
    printf("spawn (aloop): /bin/true, %d children, parent %ld MiB extra\n", n, parent_mib);
    printf("  %-40s %12s\n", "figure", "child/s");
    printf("  %-40s %12.0f\n", "spawn + wait, one at a time", seq);
    printf("  %-40s %12.0f\n", "spawn + wait, 16 at once", conc);
    if (parent_mib > 0) {
        double a[ROUNDS], f[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) { /* interleaved A/B */
            a[r] = run_aloop(n / ROUNDS, 1);
            f[r] = run_fork(n / ROUNDS);
        }
        double am = median(a, ROUNDS), fm = median(f, ROUNDS);
        printf("  %-40s %12.0f\n", "A/B median: aloop_process_spawn", am);
        printf("  %-40s %12.0f\n", "A/B median: fork + execv + waitpid", fm);
        printf("  %-40s %12.2f\n", "  spawn / fork", am / fm);
    } else {
        printf("RESULT name=spawn_seq unit=child/s value=%.0f\n", seq);
        printf("RESULT name=spawn_16 unit=child/s value=%.0f\n", conc);
    }
    free(ballast);
    return 0;
}

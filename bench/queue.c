/*
 * queue.c - producer -> consumer through a bounded aloop queue.
 *
 * One task puts N items (default 1,000,000) into an aloop_queue of maxsize
 * 64, another gets them; the figure is CPU time per item from the first
 * put to the last get, median of 3 rounds. Then, if python3 is on PATH, it
 * runs bench/queue.py (the same workload with asyncio.Queue) and prints
 * both figures and the ratio, so one run answers "how much faster".
 *
 *   queue                 1,000,000 items, then asyncio
 *   queue --quick         100,000 items
 *   queue --items N --maxsize M --no-python
 *
 * Prints a table and a `RESULT name=queue unit=ns value=...` line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 3

typedef struct workload {
    aloop_queue_t *q;
    long n;
    long received;
} workload_t;

/* CPU time of the process: the workload never blocks, and on a shared
 * machine wall time would also count other programs' turns. */
static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *producer(void *arg) {
    workload_t *w = arg;
    for (long i = 0; i < w->n; i++)
        if (aloop_queue_put(w->q, (void *)(intptr_t)i) < 0) return NULL;
    return NULL;
}

static void *consumer(void *arg) {
    workload_t *w = arg;
    void *item;
    for (long i = 0; i < w->n; i++) {
        if (aloop_queue_get(w->q, &item) < 0) return NULL;
        if ((intptr_t)item != i) {
            fprintf(stderr, "queue: item %ld came out as %ld\n", i, (long)(intptr_t)item);
            exit(1);
        }
        w->received++;
    }
    return NULL;
}

/* One round in a fresh loop: ns per item. */
static double one_round(long n, size_t maxsize) {
    aloop_t *loop = aloop_new();
    workload_t w = {aloop_queue_new(loop, maxsize), n, 0};
    if (!loop || !w.q) {
        fprintf(stderr, "queue: out of memory\n");
        exit(1);
    }
    double t0 = now_ns();
    aloop_task_t *p = aloop_spawn(loop, producer, &w);
    aloop_task_t *c = aloop_spawn(loop, consumer, &w);
    if (!p || !c || aloop_run(loop) != 0 || w.received != n) {
        fprintf(stderr, "queue: the run failed (%ld of %ld items)\n", w.received, n);
        exit(1);
    }
    double ns = (now_ns() - t0) / (double)n;
    aloop_release(p);
    aloop_release(c);
    aloop_queue_free(w.q);
    aloop_free(loop);
    return ns;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* bench/queue.py sits next to this source file (ALOOP_QUEUE_PY overrides). */
static void python_path(char *out, size_t cap) {
    const char *env = getenv("ALOOP_QUEUE_PY");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    snprintf(out, cap, "%s", __FILE__);
    char *slash = strrchr(out, '/');
    if (slash)
        snprintf(slash + 1, cap - (size_t)(slash + 1 - out), "queue.py");
    else
        snprintf(out, cap, "queue.py");
}

/* Runs the asyncio twin: its ns per item, or -1 if it could not run. */
static double run_python(long n, size_t maxsize) {
    char script[4096], cmd[4400], line[256];
    python_path(script, sizeof script);
    FILE *f = fopen(script, "r");
    if (!f) return -1;
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 '%s' --items %ld --maxsize %zu 2>/dev/null", script, n,
             maxsize);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double ns = -1;
    while (fgets(line, sizeof line, p))
        if (strncmp(line, "RESULT name=queue ", 18) == 0) {
            const char *v = strstr(line, "value=");
            if (v) ns = strtod(v + 6, NULL);
        }
    if (pclose(p) != 0) return -1;
    return ns;
}

static void usage(FILE *to) {
    fprintf(to, "usage: queue [--quick] [--items N] [--maxsize M] [--no-python]\n"
                "Producer -> consumer through a bounded aloop queue (default 1,000,000\n"
                "items, maxsize 64; --quick = 100,000), ns per item, then the same with\n"
                "asyncio.Queue (bench/queue.py) and the ratio. Prints a RESULT line.\n");
}

int main(int argc, char **argv) {
    long n = 1000000;
    size_t maxsize = 64;
    int python = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n = 100000;
        } else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc) {
            n = atol(argv[++i]);
        } else if (strcmp(argv[i], "--maxsize") == 0 && i + 1 < argc) {
            maxsize = (size_t)atol(argv[++i]);
        } else if (strcmp(argv[i], "--no-python") == 0) {
            python = 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (n <= 0) {
        usage(stderr);
        return 2;
    }
    one_round(n / 10 + 1, maxsize); /* warm-up: page in stacks and code */
    double rounds[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) rounds[r] = one_round(n, maxsize);
    qsort(rounds, ROUNDS, sizeof rounds[0], cmp_double);
    double ns = rounds[ROUNDS / 2];
    printf("aloop_queue (maxsize %zu), %ld items: %8.1f CPU ns/item (median of %d)\n", maxsize,
           n, ns, ROUNDS);
    if (python) {
        double py = run_python(n, maxsize);
        if (py > 0)
            printf("asyncio.Queue (maxsize %zu), %ld items: %8.1f CPU ns/item\n"
                   "aloop is %.1fx faster\n",
                   maxsize, n, py, py / ns);
        else
            printf("(asyncio comparison skipped: python3 or bench/queue.py not available)\n");
    }
    printf("RESULT name=queue unit=ns value=%.1f\n", ns);
    return 0;
}

/*
 * countdown - the course's first asyncio program, in C.
 *
 * Three countdowns, A (1 s), B (0.8 s) and C (0.5 s), each counting 3, 2, 1.
 * Run concurrently they finish in about 3.0 s; one after another with a
 * blocking sleep (--sequential) they take 6.9 s.
 *
 *   countdown               concurrent, tasks awaited one by one
 *   countdown --gather      concurrent, results collected with aloop_gather
 *   countdown --sequential  the blocking version, for contrast
 *
 * ALOOP_CLOCK=virtual in the environment runs the loop on its virtual
 * clock: the same order and times, without waiting (the tests do that).
 */
#define _POSIX_C_SOURCE 200809L
#include <aloop.h>

#include <errno.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct countdown {
    char name;
    double delay;
    double finished_at; /* the task's result points here */
} countdown_t;

static double start; /* clock_now() when the countdowns began */

/* The loop's clock while it runs (virtual under ALOOP_CLOCK=virtual), the
 * monotonic clock for the blocking version, which runs without a loop. */
static double clock_now(void) {
    aloop_t *loop = aloop_current();
    if (loop) return aloop_time(loop);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double elapsed(void) { return clock_now() - start; }

static void print_count(const countdown_t *c, int n) {
    char indent[8] = {0};
    memset(indent, '\t', (size_t)(c->name - 'A'));
    printf("----------------------------------------\n");
    printf("%0.4f \t%s%c = %i\n", elapsed(), indent, c->name, n);
    fflush(stdout);
}

static void *count_down(void *arg) {
    countdown_t *c = arg;
    for (int n = 3; n > 0; n--) {
        if (aloop_sleep(c->delay) < 0) return NULL;
        print_count(c, n);
    }
    c->finished_at = elapsed();
    return c;
}

static void blocking_count_down(countdown_t *c) {
    for (int n = 3; n > 0; n--) {
        struct timespec ts = {(time_t)c->delay, (long)((c->delay - (double)(time_t)c->delay) * 1e9)};
        nanosleep(&ts, NULL);
        print_count(c, n);
    }
}

static countdown_t counters[3] = {{'A', 1.0, 0}, {'B', 0.8, 0}, {'C', 0.5, 0}};

static void *run_concurrent(void *arg) {
    int gather = *(int *)arg;
    aloop_t *loop = aloop_current();
    aloop_task_t *tasks[3];
    start = clock_now();
    for (int i = 0; i < 3; i++) {
        tasks[i] = aloop_spawn(loop, count_down, &counters[i]);
        if (!tasks[i]) return aloop_fail(-ENOMEM);
    }
    int rc = 0;
    if (gather) {
        void *results[3];
        rc = aloop_gather(tasks, 3, results, NULL, 0);
        printf("----------------------------------------\n");
        for (int i = 0; rc == 0 && i < 3; i++) {
            const countdown_t *c = results[i];
            printf("gathered: %c finished at %0.4f\n", c->name, c->finished_at);
        }
    } else {
        for (int i = 0; i < 3 && rc == 0; i++) rc = aloop_await(tasks[i], NULL);
        printf("----------------------------------------\n");
    }
    for (int i = 0; i < 3; i++) aloop_release(tasks[i]);
    if (rc < 0) return aloop_fail(rc);
    printf("Done.\n");
    return NULL;
}

static void usage(FILE *to) {
    fprintf(to, "usage: countdown [--sequential | --gather]\n"
                "  Counts A (1 s), B (0.8 s) and C (0.5 s) down from 3, concurrently.\n"
                "  --sequential  blocking sleeps, one countdown after another (6.9 s)\n"
                "  --gather      collect each countdown's result with aloop_gather\n"
                "  ALOOP_CLOCK=virtual in the environment: the same order and times,\n"
                "  without waiting\n");
}

int main(int argc, char **argv) {
    int sequential = 0, gather = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sequential")) sequential = 1;
        else if (!strcmp(argv[i], "--gather")) gather = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (sequential) {
        start = clock_now();
        for (int i = 0; i < 3; i++) blocking_count_down(&counters[i]);
        printf("----------------------------------------\nDone.\n");
        return 0;
    }
    int rc = aloop_main(run_concurrent, &gather, NULL);
    if (rc < 0) fprintf(stderr, "countdown: %s\n", aloop_strerror(rc));
    return rc < 0 ? 1 : 0;
}

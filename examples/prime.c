/*
 * prime - the course's primality checker, in C.
 *
 * Checks 9637529763296797, 427920331 and 157 by trial division. As tasks that
 * yield every 100,000 divisions, the small numbers report before the big one
 * even though the big one started first. --threads instead runs the
 * (blocking) trial divisions on the loop's worker pool, like the course's
 * ProcessPoolExecutor version, each number's divisors in slices so that
 * every core helps, and prints the speed-up over one thread.
 *
 *   prime               cooperative tasks (aloop_sleep(0) every 100,000 divisions)
 *   prime --sequential  one after another, no tasks
 *   prime --threads     blocking checks on the worker pool; prints the speed-up
 */
#define _POSIX_C_SOURCE 200809L
#include <aloop.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint64_t numbers[3] = {9637529763296797ULL, 427920331ULL, 157ULL};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void say(const char *fmt, uint64_t x) {
    printf(fmt, (unsigned long long)x);
    fflush(stdout);
}

/* Trial division; if cooperative, lets other tasks run every 100,000
 * divisions (the course's `elif i % 100000 == 1: await asyncio.sleep(0)`).
 * Returns 1 if prime, 0 if not, -ECANCELED if cancelled. */
static int check_prime(uint64_t x, int cooperative) {
    say("Processing %llu...\n", x);
    if (x < 2 || (x > 2 && x % 2 == 0)) {
        say("%llu is not a prime number.\n", x);
        return 0;
    }
    uint64_t limit = (uint64_t)sqrt((double)x) + 1;
    for (uint64_t i = 3; i < limit; i += 2) {
        if (x % i == 0) {
            say("%llu is not a prime number.\n", x);
            return 0;
        }
        if (cooperative && i % 100000 == 1 && aloop_sleep(0) < 0) return -ECANCELED;
    }
    say("%llu is a prime number.\n", x);
    return 1;
}

static void *prime_task(void *arg) {
    int rc = check_prime(*(const uint64_t *)arg, 1);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

/* --threads: each number's odd divisors are split into SLICES ranges, each
 * checked by a blocking function on the worker pool; the number's task
 * gathers them. The course's version hands each whole number to one worker,
 * so the biggest one alone sets the time; slicing lets every core help. */
enum { SLICES = 8 };

typedef struct slice {
    uint64_t x, lo, hi; /* odd divisors in [lo, hi) */
    int divisible;
} slice_t;

static void *check_slice(void *arg) { /* on a worker thread */
    slice_t *s = arg;
    for (uint64_t i = s->lo | 1; i < s->hi; i += 2)
        if (s->x % i == 0) {
            s->divisible = 1;
            break;
        }
    return NULL;
}

/* The job's memory when its task gave up on it (see slice_task). */
static void free_slice(void *result, void *arg) {
    (void)result;
    free(arg);
}

/* Slice k of numbers[i]: odd divisors in [lo, hi); lo >= limit means the
 * slice is empty (small numbers have fewer than SLICES slices). */
static slice_t slice_of(size_t i, unsigned k) {
    uint64_t x = numbers[i];
    uint64_t limit = (uint64_t)sqrt((double)x) + 1, step = limit / SLICES + 1;
    uint64_t lo = 3 + (uint64_t)k * step;
    return (slice_t){x, lo, lo + step < limit ? lo + step : limit, 0};
}

/* One slice's task; arg encodes (number, slice), so that no task points into
 * another's stack. Its job gets a slice of its own on the heap: a cancelled
 * task returns at once while its job may still run. On -ECANCELED that
 * memory is free_slice's (aloop_run_in_thread_with calls it once, when the
 * job is done or if it never ran); otherwise it is ours. The answer is the
 * task's result. */
static void *slice_task(void *arg) {
    uintptr_t code = (uintptr_t)arg;
    slice_t *job = malloc(sizeof *job);
    if (!job) return aloop_fail(-ENOMEM);
    *job = slice_of(code / SLICES, (unsigned)(code % SLICES));
    int rc = aloop_run_in_thread_with(check_slice, job, free_slice, NULL);
    if (rc == -ECANCELED) return aloop_fail(rc);
    int divisible = job->divisible;
    free(job);
    if (rc < 0) return aloop_fail(rc);
    return divisible ? (void *)1 : NULL;
}

static void *prime_on_pool(void *arg) {
    size_t i = (size_t)((const uint64_t *)arg - numbers);
    uint64_t x = numbers[i];
    say("Processing %llu...\n", x);
    if (x < 2 || (x > 2 && x % 2 == 0)) {
        say("%llu is not a prime number.\n", x);
        return NULL;
    }
    aloop_task_t *t[SLICES];
    void *found[SLICES] = {0};
    size_t n = 0;
    int rc = 0;
    for (unsigned k = 0; k < SLICES && rc == 0; k++) {
        slice_t s = slice_of(i, k);
        if (s.lo >= s.hi) break;
        void *code = (void *)(uintptr_t)(i * SLICES + k);
        if ((t[n] = aloop_spawn(aloop_current(), slice_task, code)) != NULL) n++;
        else rc = -ENOMEM;
    }
    if (rc == 0) rc = aloop_gather(t, n, found, NULL, 0);
    int divisible = 0;
    for (size_t k = 0; k < n; k++) {
        /* After an error the others are still running: stop them (a job's
         * memory then goes to free_slice). */
        if (rc < 0) aloop_cancel(t[k]);
        divisible |= found[k] != NULL;
        aloop_release(t[k]);
    }
    if (rc < 0) return aloop_fail(rc);
    say(divisible ? "%llu is not a prime number.\n" : "%llu is a prime number.\n", x);
    return NULL;
}

static void *run_tasks(void *arg) {
    (void)arg;
    aloop_task_t *t[3];
    for (int i = 0; i < 3; i++)
        if (!(t[i] = aloop_spawn(aloop_current(), prime_task, (void *)&numbers[i])))
            return aloop_fail(-ENOMEM);
    int rc = aloop_wait(t, 3, ALOOP_ALL_COMPLETED, -1, NULL);
    for (int i = 0; i < 3; i++) aloop_release(t[i]);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

static void *run_threads(void *arg) {
    (void)arg;
    aloop_task_t *t[3];
    for (int i = 0; i < 3; i++)
        if (!(t[i] = aloop_spawn(aloop_current(), prime_on_pool, (void *)&numbers[i])))
            return aloop_fail(-ENOMEM);
    int rc = aloop_gather(t, 3, NULL, NULL, 0);
    for (int i = 0; i < 3; i++) aloop_release(t[i]);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

static void usage(FILE *to) {
    fprintf(to, "usage: prime [--sequential | --threads]\n"
                "  Checks 9637529763296797, 427920331 and 157 for primality.\n"
                "  (default)     three tasks yielding every 100,000 divisions\n"
                "  --sequential  one after another, no event loop\n"
                "  --threads     on the worker pool (one thread per CPU); prints the\n"
                "                speed-up over checking them on one thread\n");
}

int main(int argc, char **argv) {
    const char *mode = "tasks";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sequential")) mode = "sequential";
        else if (!strcmp(argv[i], "--threads")) mode = "threads";
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    double t0 = now();
    int rc = 0;
    if (!strcmp(mode, "sequential")) {
        for (int i = 0; i < 3; i++) check_prime(numbers[i], 0);
    } else if (!strcmp(mode, "tasks")) {
        rc = aloop_main(run_tasks, NULL, NULL);
    } else {
        rc = aloop_main(run_threads, NULL, NULL);
        double pooled = now() - t0;
        printf("Took %.2f seconds on the worker pool.\n", pooled);
        printf("Now one after another on one thread, for comparison:\n");
        double s0 = now();
        for (int i = 0; i < 3; i++) check_prime(numbers[i], 0);
        double single = now() - s0;
        printf("Took %.2f seconds on one thread.\n", single);
        printf("Speed-up: %.2fx\n", single / pooled);
        return rc < 0 ? 1 : 0;
    }
    if (rc < 0) fprintf(stderr, "prime: %s\n", aloop_strerror(rc));
    printf("Took %.2f seconds.\n", now() - t0);
    return rc < 0 ? 1 : 0;
}

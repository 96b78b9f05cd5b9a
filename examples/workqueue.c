/*
 * workqueue - the course's work-queue program, in C.
 *
 * Two workers, "One" and "Two", take delays 15, 10, 5 and 2 from a queue
 * and wait that long for each (one unit = --scale seconds, default 0.1).
 *
 * Blocking version: the wait is a blocking sleep, so while one worker waits
 * nothing else can run and the delays add up: 15+10+5+2 = 32 units. A lock
 * held across the sleep plays the part of the blocked program.
 *
 * Asynchronous version: the wait is aloop_sleep, so the other worker runs
 * meanwhile: One takes 15, Two takes 10 then 5, One takes 2 at 15, and
 * everything is done after 17 units. The two workers are run with
 * aloop_gather, as the course's asyncio.gather(...).
 *
 * ALOOP_CLOCK=virtual in the environment runs it on the loop's virtual
 * clock: same output, no waiting.
 */
#include <aloop.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int WORK[] = {15, 10, 5, 2};
static double scale = 0.1; /* seconds per unit of work */

typedef struct worker {
    const char *name;
    aloop_queue_t *queue;
    aloop_lock_t *blocked; /* non-NULL: the blocking version */
} worker_t;

static double now(void) { return aloop_time(aloop_current()); }

/* One unit of work: "running", the wait, "elapsed time". */
static int do_work(const worker_t *w, int delay) {
    printf("Task %s running\n", w->name);
    fflush(stdout);
    double t0 = now();
    int rc = aloop_sleep(delay * scale);
    if (rc == 0) printf("Task %s elapsed time: %.1f\n", w->name, now() - t0);
    return rc;
}

/* Asynchronous worker: takes work until the queue is empty. */
static void *async_worker(void *arg) {
    worker_t *w = arg;
    void *item;
    while (aloop_queue_get_nowait(w->queue, &item) == 0) {
        int rc = do_work(w, (int)(intptr_t)item);
        aloop_queue_task_done(w->queue);
        if (rc < 0) return aloop_fail(rc);
    }
    return NULL;
}

/* Blocking worker: holds the "program" for the whole wait, then lets the
 * other worker have a turn (the course's generator `yield`). */
static void *blocking_worker(void *arg) {
    worker_t *w = arg;
    for (;;) {
        int rc = aloop_lock_acquire(w->blocked);
        if (rc < 0) return aloop_fail(rc);
        void *item;
        if (aloop_queue_get_nowait(w->queue, &item) < 0) {
            aloop_lock_release(w->blocked);
            return NULL;
        }
        rc = do_work(w, (int)(intptr_t)item);
        aloop_queue_task_done(w->queue);
        aloop_lock_release(w->blocked);
        if (rc < 0) return aloop_fail(rc);
    }
}

/* Fills a queue, runs both workers with aloop_gather, prints the total. */
static int run_workers(aloop_task_fn fn, aloop_lock_t *blocked) {
    aloop_t *loop = aloop_current();
    aloop_queue_t *q = aloop_queue_new(loop, 0);
    if (!q) return -ENOMEM;
    for (size_t i = 0; i < sizeof WORK / sizeof WORK[0]; i++)
        aloop_queue_put_nowait(q, (void *)(intptr_t)WORK[i]);
    worker_t workers[] = {{"One", q, blocked}, {"Two", q, blocked}};
    double t0 = now();
    aloop_task_t *ts[2] = {aloop_spawn(loop, fn, &workers[0]), aloop_spawn(loop, fn, &workers[1])};
    int rc = (ts[0] && ts[1]) ? aloop_gather(ts, 2, NULL, NULL, 0) : -ENOMEM;
    if (rc == 0) printf("\nTotal elapsed time: %.1f\n", now() - t0);
    for (int i = 0; i < 2; i++) {
        if (ts[i] && rc < 0) aloop_cancel(ts[i]);
        aloop_release(ts[i]);
    }
    aloop_queue_free(q);
    return rc;
}

enum { RUN_BLOCKING = 1, RUN_ASYNC = 2 };

static void *main_task(void *arg) {
    int which = *(int *)arg;
    int rc = 0;
    if (which & RUN_BLOCKING) {
        printf("Blocking sleep: one worker at a time\n");
        aloop_lock_t *blocked = aloop_lock_new(aloop_current());
        rc = blocked ? run_workers(blocking_worker, blocked) : -ENOMEM;
        aloop_lock_free(blocked);
        if (which & RUN_ASYNC) printf("\n");
    }
    if (rc == 0 && (which & RUN_ASYNC)) {
        printf("Non-blocking aloop_sleep: the workers overlap\n");
        rc = run_workers(async_worker, NULL);
    }
    return rc < 0 ? aloop_fail(rc) : NULL;
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: workqueue [--blocking | --async] [--scale SECONDS]\n"
            "Two workers share the work 15, 10, 5, 2 from a queue. With a blocking\n"
            "sleep it takes 32 units; with aloop_sleep the workers overlap: 17 units.\n"
            "  --blocking       only the blocking version\n"
            "  --async          only the asynchronous version\n"
            "  --scale SECONDS  seconds per unit of work (default 0.1)\n"
            "  --help           this text\n"
            "ALOOP_CLOCK=virtual in the environment: the same output, no waiting\n");
}

int main(int argc, char **argv) {
    int which = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--blocking") == 0) {
            which |= RUN_BLOCKING;
        } else if (strcmp(argv[i], "--async") == 0) {
            which |= RUN_ASYNC;
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            char *end;
            scale = strtod(argv[++i], &end);
            if (*end || !(scale > 0)) {
                fprintf(stderr, "workqueue: --scale needs a positive number of seconds\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!which) which = RUN_BLOCKING | RUN_ASYNC;
    int rc = aloop_main(main_task, &which, NULL);
    if (rc < 0) {
        fprintf(stderr, "workqueue: %s\n", aloop_strerror(rc));
        return 1;
    }
    return 0;
}

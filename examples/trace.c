/*
 * trace - a tracer of task run slices in 80 lines, with aloop_set_hooks.
 *
 * It runs a small pipeline (a producer, three workers that each burn some
 * CPU per item, a logger) and writes what every task did, when, to a
 * Chrome trace-event JSON file: open it in chrome://tracing or
 * https://ui.perfetto.dev to see each task's run slices on a time line.
 * Then it prints the loop's metrics (aloop_metrics).
 *
 *   trace [OUT.json]          (default trace.json; "-" for stdout)
 *
 * The hooks: spawn gives the task a row of the time line, resume starts a
 * slice, suspend ends it (one task at most is between the two, so a slice
 * is the task's own run time), done names the row. Times are in
 * microseconds of the monotonic clock.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid */
#include <aloop.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define ROWS 64

typedef struct tracer {
    FILE *out;
    double t0, slice_start;
    int first;
    aloop_task_t *row[ROWS]; /* one row of the time line per task */
} tracer_t;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* t's row (1..ROWS; 0 once they are all taken). */
static int row_of(tracer_t *tr, aloop_task_t *t) {
    for (int i = 0; i < ROWS; i++)
        if (tr->row[i] == t) return i + 1;
    return 0;
}

static void begin(tracer_t *tr) {
    fprintf(tr->out, "%s\n  {", tr->first ? "" : ",");
    tr->first = 0;
}

static void on_spawn(aloop_task_t *t, void *arg) {
    tracer_t *tr = arg;
    for (int i = 0; i < ROWS; i++)
        if (!tr->row[i]) {
            tr->row[i] = t;
            break;
        }
}
static void on_resume(aloop_task_t *t, void *arg) {
    (void)t;
    ((tracer_t *)arg)->slice_start = now_us();
}
static void on_suspend(aloop_task_t *t, void *arg) { /* a slice: "complete" event */
    tracer_t *tr = arg;
    double end = now_us();
    begin(tr);
    fprintf(tr->out, "\"name\": \"%s\", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, "
            "\"pid\": 1, \"tid\": %d}", aloop_task_name(t), tr->slice_start - tr->t0,
            end - tr->slice_start, row_of(tr, t));
}
static void on_done(aloop_task_t *t, void *arg) { /* the row's name */
    tracer_t *tr = arg;
    int row = row_of(tr, t);
    begin(tr);
    fprintf(tr->out, "\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": %d, "
            "\"args\": {\"name\": \"%s\"}}", row, aloop_task_name(t));
    if (row) tr->row[row - 1] = NULL;
}

/* ---- the traced program: a producer, three workers, a logger */

#define ITEMS 30

static volatile unsigned long sink;

static void burn(unsigned n) { /* a little CPU work per item */
    for (unsigned i = 0; i < n * 20000u; i++) sink += i;
}

static void *producer(void *arg) {
    aloop_queue_t *q = arg;
    for (long i = 1; i <= ITEMS; i++) {
        aloop_queue_put(q, (void *)i);
        if (i % 5 == 0) aloop_sleep(0.002);
    }
    for (int i = 0; i < 3; i++) aloop_queue_put(q, NULL); /* one stop per worker */
    return NULL;
}

typedef struct work {
    aloop_queue_t *in, *log;
} work_t;

static void *worker(void *arg) {
    work_t *w = arg;
    void *item;
    while (aloop_queue_get(w->in, &item) == 0 && item) {
        burn((unsigned)(long)item % 4 + 1);
        aloop_queue_put(w->log, item);
    }
    return NULL;
}

static void *logger(void *arg) {
    aloop_queue_t *log = arg;
    void *item;
    long sum = 0;
    for (int i = 0; i < ITEMS && aloop_queue_get(log, &item) == 0; i++) sum += (long)item;
    printf("logger: %d items, sum %ld\n", ITEMS, sum);
    return NULL;
}

static void *pipeline(void *arg) {
    (void)arg;
    aloop_t *loop = aloop_current();
    aloop_queue_t *in = aloop_queue_new(loop, 4), *log = aloop_queue_new(loop, 0);
    work_t w = {in, log};
    aloop_task_t *t[5];
    t[0] = aloop_spawn(loop, producer, in);
    aloop_task_set_name(t[0], "producer");
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "worker-%d", i);
        t[i] = aloop_spawn(loop, worker, &w);
        aloop_task_set_name(t[i], name);
    }
    t[4] = aloop_spawn(loop, logger, log);
    aloop_task_set_name(t[4], "logger");
    aloop_gather(t, 5, NULL, NULL, 0);
    for (int i = 0; i < 5; i++) aloop_release(t[i]);
    aloop_queue_free(in);
    aloop_queue_free(log);
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "trace.json";
    if (argc > 2 || (argc > 1 && !strcmp(argv[1], "--help"))) {
        fprintf(stderr, "usage: trace [OUT.json]   (writes a Chrome trace of task run slices)\n");
        return argc > 2 ? 2 : 0;
    }
    tracer_t tr = {.out = strcmp(path, "-") ? fopen(path, "w") : stdout, .first = 1};
    if (!tr.out) {
        perror(path);
        return 1;
    }
    tr.t0 = now_us();
    aloop_t *loop = aloop_new();
    if (!loop) return 1;
    aloop_hooks_t hooks = {on_spawn, on_resume, on_suspend, on_done, &tr};
    aloop_set_hooks(loop, &hooks);
    fprintf(tr.out, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [");
    aloop_task_t *main_task = aloop_spawn(loop, pipeline, NULL);
    aloop_task_set_name(main_task, "pipeline");
    int rc = aloop_run_until_complete(loop, main_task);
    aloop_release(main_task);
    aloop_set_hooks(loop, NULL);
    fprintf(tr.out, "\n]}\n");
    if (tr.out != stdout) fclose(tr.out);

    aloop_metrics_t m;
    aloop_metrics(loop, &m);
    fprintf(stderr, "metrics: %llu tasks spawned, %llu done, %llu switches, %llu budget "
            "yields, %llu polls (%.1f ms blocked), %llu timers fired (lag max %.3f ms)\n",
            (unsigned long long)m.tasks_spawned, (unsigned long long)m.tasks_done,
            (unsigned long long)m.switches, (unsigned long long)m.budget_yields,
            (unsigned long long)m.iterations, m.poll_time * 1e3,
            (unsigned long long)m.timers_fired, m.lag_max * 1e3);
    aloop_free(loop);
    return rc == 0 ? 0 : 1;
}

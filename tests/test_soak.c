/*
 * test_soak.c - a bounded soak: many tasks, each doing a fixed number of
 * random steps (sleeps, yields, queue traffic, locks, gathers of child
 * tasks, failing), while a chaos task cancels random live tasks. At the end
 * the loop must be empty and every task's outcome accounted for:
 *
 *   spawned == returned-with-its-value + failed(-EIO) + cancelled
 *   no other error ever appears, no queue item is lost or duplicated,
 *   aloop_run returns 0 (nothing left hanging), nothing leaks (ASan/LSan).
 *
 * The default run uses SOAK_SMALL tasks; `test_soak --stress` (registered as
 * the ctest `test_soak_stress`, label "stress": `ctest -L stress`) runs
 * 100,000. `test_soak N [seed]` runs N tasks with another seed.
 */
#include "aloop_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define SOAK_SMALL 3000
#define SOAK_STRESS 100000
#define MAX_LIVE 1000   /* top-level tasks alive at once (bounds memory) */
#define MAX_CHILDREN 3

static size_t g_total = SOAK_SMALL;
static uint64_t g_seed = 0x5eed5eedULL;

typedef struct soak soak_t;

typedef struct job {
    soak_t *soak;
    aloop_task_t *task; /* borrowed: valid while registered (see on_done) */
    size_t slot;        /* index in soak->live, or SIZE_MAX */
    int depth;
} job_t;

struct soak {
    aloop_t *loop;
    uint64_t rng;
    job_t *jobs;
    size_t njobs;               /* jobs handed out (spawn attempts) */
    job_t **live;               /* registered jobs, for the chaos task */
    size_t nlive;
    aloop_semaphore_t *permits; /* MAX_LIVE top-level tasks */
    aloop_queue_t *pairs;       /* each user puts one item, then takes one */
    aloop_queue_t *sink;        /* bounded, drained by one consumer */
    aloop_lock_t *lock;
    aloop_event_t *all_done;
    /* accounting */
    size_t spawned, ok, failed, cancelled, other;
    size_t pairs_put, pairs_got, sink_put, sink_got, chaos_cancels;
    size_t lock_holders;        /* must never exceed 1 */
    int lock_violation;
};

static uint32_t rnd(soak_t *s, uint32_t n) { /* xorshift64*, uniform enough */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

static void registry_add(soak_t *s, job_t *j) {
    j->slot = s->nlive;
    s->live[s->nlive++] = j;
}

static void registry_remove(soak_t *s, job_t *j) {
    job_t *last = s->live[--s->nlive];
    s->live[j->slot] = last;
    last->slot = j->slot;
    j->slot = SIZE_MAX;
}

static void *job_main(void *arg);

/* Every spawned task ends up here exactly once, whether it ran, failed, or
 * was cancelled before its first step. */
static void on_done(aloop_future_t *f, void *arg) {
    job_t *j = arg;
    soak_t *s = j->soak;
    void *v = NULL;
    int rc = aloop_future_result(f, &v);
    if (aloop_future_cancelled(f)) s->cancelled++;
    else if (rc == -EIO) s->failed++;
    else if (rc == 0 && v == j) s->ok++;
    else s->other++;
    registry_remove(s, j);
    if (j->depth == 0) aloop_semaphore_release(s->permits);
    if (s->ok + s->failed + s->cancelled + s->other == g_total) aloop_event_set(s->all_done);
}

/* Spawns job j, registered and detached: NULL when the budget is used up. */
static aloop_task_t *spawn_job(soak_t *s, int depth) {
    if (s->njobs == g_total) return NULL;
    job_t *j = &s->jobs[s->njobs++];
    j->soak = s;
    j->depth = depth;
    aloop_task_t *t = aloop_spawn(s->loop, job_main, j);
    if (!t) return NULL; /* cannot happen without allocation faults */
    if (aloop_future_add_done_callback(t, on_done, j) < 0) s->other++;
    j->task = t; /* borrowed: the done callback holds a reference until it has run */
    s->spawned++;
    registry_add(s, j);
    aloop_release(t); /* detached: it runs on and is freed when done */
    return t;
}

static int step_queue_pair(soak_t *s) {
    void *item;
    int rc = aloop_queue_put(s->pairs, s);
    if (rc < 0) return rc;
    s->pairs_put++;
    rc = aloop_queue_get(s->pairs, &item);
    if (rc < 0) return rc;
    if (item != s) s->other++;
    s->pairs_got++;
    return 0;
}

static int step_lock(soak_t *s) {
    int rc = aloop_lock_acquire(s->lock);
    if (rc < 0) return rc;
    if (++s->lock_holders > 1) s->lock_violation = 1;
    rc = aloop_sleep(0.0001 * rnd(s, 3)); /* hold it across a suspension */
    s->lock_holders--;
    aloop_lock_release(s->lock);
    return rc;
}

static int step_gather(soak_t *s, job_t *self) {
    aloop_task_t *kids[MAX_CHILDREN];
    size_t n = 0, want = 1 + rnd(s, MAX_CHILDREN);
    while (n < want) {
        aloop_task_t *t = spawn_job(s, self->depth + 1);
        if (!t) break;
        kids[n++] = aloop_retain(t);
    }
    int errors[MAX_CHILDREN];
    int rc = aloop_gather(kids, n, NULL, errors, ALOOP_RETURN_ERRORS);
    for (size_t i = 0; i < n; i++) aloop_release(kids[i]);
    return rc;
}

static void *job_main(void *arg) {
    job_t *j = arg;
    soak_t *s = j->soak;
    int steps = 3 + (int)rnd(s, 4), rc = 0;
    for (int i = 0; i < steps && rc >= 0; i++) {
        switch (rnd(s, 8)) {
        case 0: rc = aloop_sleep(0.001 * rnd(s, 10)); break;
        case 1: rc = aloop_yield(); break;
        case 2: rc = step_queue_pair(s); break;
        case 3:
            rc = aloop_queue_put(s->sink, j);
            if (rc == 0) s->sink_put++;
            break;
        case 4: rc = step_lock(s); break;
        case 5: rc = j->depth < 2 ? step_gather(s, j) : aloop_yield(); break;
        case 6: if (rnd(s, 4) == 0) return aloop_fail(-EIO); break;
        default: rc = aloop_sleep(0); break;
        }
    }
    if (rc == -ECANCELED) return NULL; /* completes as cancelled */
    if (rc < 0) s->other++;              /* no other error may appear */
    return j;
}

static void *sink_consumer(void *arg) {
    soak_t *s = arg;
    void *item;
    while (aloop_queue_get(s->sink, &item) == 0) s->sink_got++;
    return NULL; /* -EPIPE: shut down and drained */
}

static void *chaos(void *arg) {
    soak_t *s = arg;
    while (aloop_sleep(0.0005 * (1 + rnd(s, 4))) == 0) {
        if (s->nlive && aloop_cancel(s->live[rnd(s, (uint32_t)s->nlive)]->task) == 1)
            s->chaos_cancels++;
    }
    return NULL;
}

static void *spawner(void *arg) {
    soak_t *s = arg;
    while (s->njobs < g_total) {
        if (aloop_semaphore_acquire(s->permits) < 0) return aloop_fail(-ECANCELED);
        if (!spawn_job(s, 0)) aloop_semaphore_release(s->permits);
    }
    return NULL;
}

static void *soak_main(void *arg) {
    soak_t *s = arg;
    aloop_task_t *consumer = aloop_spawn(s->loop, sink_consumer, s);
    aloop_task_t *chaos_task = aloop_spawn(s->loop, chaos, s);
    aloop_task_t *spawn_task = aloop_spawn(s->loop, spawner, s);
    /* (No cmocka asserts on a task's stack: a failure would longjmp off it.) */
    if (aloop_await(spawn_task, NULL) != 0) s->other++;
    if (aloop_event_wait(s->all_done) != 0) s->other++;

    aloop_cancel(chaos_task);
    aloop_await(chaos_task, NULL);
    aloop_queue_shutdown(s->sink, 0);
    if (aloop_await(consumer, NULL) != 0) s->other++;
    void *item; /* items of users cancelled between put and get stay */
    while (aloop_queue_get_nowait(s->pairs, &item) == 0) s->pairs_got++;

    aloop_release(consumer);
    aloop_release(chaos_task);
    aloop_release(spawn_task);
    return s;
}

static void run_soak(void) {
    soak_t s;
    memset(&s, 0, sizeof s);
    s.rng = g_seed;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 64 * 1024};
    s.loop = aloop_new_with(&cfg);
    assert_non_null(s.loop);
    s.jobs = calloc(g_total, sizeof *s.jobs);
    s.live = calloc(g_total, sizeof *s.live);
    s.permits = aloop_semaphore_new(s.loop, MAX_LIVE);
    s.pairs = aloop_queue_new(s.loop, 0);
    s.sink = aloop_queue_new(s.loop, 16);
    s.lock = aloop_lock_new(s.loop);
    s.all_done = aloop_event_new(s.loop);
    assert_true(s.jobs && s.live && s.permits && s.pairs && s.sink && s.lock && s.all_done);

    aloop_task_t *m = aloop_spawn(s.loop, soak_main, &s);
    assert_int_equal(aloop_run_until_complete(s.loop, m), 0);
    aloop_release(m);
    assert_int_equal(aloop_run(s.loop), 0); /* nothing left that could hang */

    print_message("soak: %zu tasks (seed %llu): %zu ok, %zu failed, %zu cancelled "
                  "(%zu by chaos); %zu queue pairs, %zu sink items; %.3f s virtual\n",
                  s.spawned, (unsigned long long)g_seed, s.ok, s.failed, s.cancelled,
                  s.chaos_cancels, s.pairs_put, s.sink_put, aloop_time(s.loop));
    assert_int_equal(s.spawned, g_total);
    assert_int_equal(s.ok + s.failed + s.cancelled, g_total);
    assert_int_equal(s.other, 0);
    assert_int_equal(s.nlive, 0);
    assert_int_equal(aloop_all_tasks(s.loop, NULL, 0), 0);
    assert_int_equal(s.pairs_put, s.pairs_got);
    assert_int_equal(s.sink_put, s.sink_got);
    assert_false(s.lock_violation);
    assert_false(aloop_lock_locked(s.lock));
    /* every kind of outcome actually happened */
    assert_true(s.ok > 0 && s.failed > 0 && s.cancelled > 0 && s.chaos_cancels > 0);

    aloop_event_free(s.all_done);
    aloop_lock_free(s.lock);
    aloop_queue_free(s.sink);
    aloop_queue_free(s.pairs);
    aloop_semaphore_free(s.permits);
    aloop_free(s.loop);
    free(s.live);
    free(s.jobs);
}

static void test_soak(void **state) {
    (void)state;
    run_soak();
}

int main(int argc, char **argv) {
    if (argc > 1) g_total = strcmp(argv[1], "--stress") == 0 ? SOAK_STRESS : strtoul(argv[1], NULL, 10);
    if (argc > 2) g_seed = strtoull(argv[2], NULL, 0);
    if (g_total < 100) g_total = 100;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_alloc.c - the allocation-failure sweep.
 *
 * One scenario spawns tasks, awaits them, gathers them, waits with a
 * timeout, shields, runs a task group, queues items, takes locks, sets
 * events, schedules callbacks, sends lines over a socket pair through a
 * stream and runs a function on the thread pool. It is first run once to
 * count its allocations; then, for every
 * N, it runs again with the Nth allocation failing (alloc.c's test hook),
 * once with only that one failing and once with every allocation from the
 * Nth on failing. Each time:
 *   - every call returns success or -ENOMEM (NULL with errno ENOMEM), never
 *     anything else (checked inside tasks, counted, asserted afterwards);
 *   - every task that was spawned finishes, and the loop ends up empty (a
 *     task gets its stack when it first runs: one that cannot get it
 *     completes with -ENOMEM without running, so the scenario counts the
 *     tasks that started and checks that each of those finished);
 *   - aloop_free leaves nothing behind (LSan, in the sanitizer build).
 */
#include "aloop_test.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define WORKERS 10 /* > gather's on-stack slots, so gather allocates too */

typedef struct scenario {
    aloop_t *loop;
    aloop_lock_t *lock;
    aloop_event_t *event;
    aloop_queue_t *queue;
    aloop_future_t *signal;
    int spawned, started, finished, workers, workers_started, callbacks_added, callbacks;
    int consumed;
    int lines_sent, lines_read, thread_ran;
    int watch_calls; /* aloop_add_reader callback (watch.c) */
    int violations;
    char what[160];
} scenario_t;

/* A result that is neither success nor ENOMEM is a bug: remember the first. */
static void bad(scenario_t *s, const char *call, long got) {
    if (s->violations++ == 0) snprintf(s->what, sizeof s->what, "%s returned %ld", call, got);
}
#define EXPECT_RC(s, call, ok)                                  \
    do {                                                        \
        long rc_ = (long)(call);                                \
        if (!(ok) && rc_ != -ENOMEM) bad((s), #call, rc_);      \
    } while (0)
#define EXPECT_PTR(s, p, call)                                  \
    do {                                                        \
        errno = 0;                                              \
        (p) = (call);                                           \
        if (!(p) && errno != ENOMEM) bad((s), #call, -errno);   \
    } while (0)

static void *worker(void *arg) {
    scenario_t *s = arg;
    s->started++;
    s->workers_started++;
    int rc = aloop_sleep(0.01 * s->spawned);
    EXPECT_RC(s, rc, rc == 0);
    if (s->lock) {
        rc = aloop_lock_acquire(s->lock);
        EXPECT_RC(s, rc, rc == 0);
        if (rc == 0) {
            rc = aloop_yield(); /* hold it across a switch */
            EXPECT_RC(s, rc, rc == 0);
            aloop_lock_release(s->lock);
        }
    }
    if (s->event) {
        rc = aloop_event_wait(s->event);
        EXPECT_RC(s, rc, rc == 0);
    }
    if (s->queue) {
        rc = aloop_queue_put(s->queue, s);
        EXPECT_RC(s, rc, rc == 0);
    }
    s->finished++;
    return s;
}

static void *consumer(void *arg) {
    scenario_t *s = arg;
    s->started++;
    void *item;
    while (aloop_queue_get(s->queue, &item) == 0) {
        s->consumed++;
        aloop_queue_task_done(s->queue);
    }
    s->finished++;
    return NULL;
}

#define LINES 5

typedef struct reader_arg {
    scenario_t *s;
    int fd;
    int started;
} reader_arg_t;

static void *stream_reader(void *arg) {
    reader_arg_t *ra = arg;
    scenario_t *s = ra->s;
    s->started++;
    ra->started = 1;
    aloop_stream_t *st;
    EXPECT_PTR(s, st, aloop_stream_new(s->loop, ra->fd, 0));
    if (!st) {
        close(ra->fd);
    } else {
        char line[64];
        ssize_t n;
        while ((n = aloop_stream_readline(st, line, sizeof line)) > 0) {
            if (strcmp(line, "hello\n") != 0) bad(s, "readline content", n);
            s->lines_read++;
        }
        EXPECT_RC(s, n, n == 0);
        aloop_stream_close(st);
    }
    s->finished++;
    return NULL;
}

static void *in_thread(void *arg) {
    scenario_t *s = arg;
    return s;
}

/* Sends LINES lines to a reader task over a socket pair, then EOF. */
static void socket_traffic(scenario_t *s) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        bad(s, "socketpair", -errno);
        return;
    }
    reader_arg_t ra = {s, sv[1], 0};
    aloop_task_t *r;
    EXPECT_PTR(s, r, aloop_spawn(s->loop, stream_reader, &ra));
    if (!r) close(sv[1]);
    else s->spawned++;
    for (int i = 0; r && i < LINES; i++) { /* (no reader: the pipe is broken) */
        ssize_t n = aloop_write_all(sv[0], "hello\n", 6);
        EXPECT_RC(s, n, n == 6);
        if (n == 6) s->lines_sent++;
    }
    aloop_close(sv[0]);
    if (r) {
        int rc = aloop_await(r, NULL);
        EXPECT_RC(s, rc, rc == 0);
        aloop_release(r);
        if (!ra.started) close(sv[1]); /* it got no stack: its fd is still ours */
    }
}

/* A callback fd watch: one byte waits on a socket; the reader callback
 * takes it and removes itself. */
static void watch_cb(int fd, void *arg) {
    scenario_t *s = arg;
    char c;
    if (read(fd, &c, 1) == 1) s->watch_calls++;
    int rc = aloop_remove_reader(s->loop, fd);
    EXPECT_RC(s, rc, rc == 1);
}

static void watch_traffic(scenario_t *s) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        bad(s, "socketpair", -errno);
        return;
    }
    if (write(sv[1], "w", 1) != 1) bad(s, "write", -errno);
    int rc = aloop_add_reader(s->loop, sv[0], watch_cb, s);
    EXPECT_RC(s, rc, rc == 0);
    for (int i = 0; rc == 0 && s->watch_calls == 0 && i < 100; i++) aloop_yield();
    if (rc == 0 && s->watch_calls != 1) bad(s, "watch callback calls", s->watch_calls);
    aloop_close(sv[0]);
    close(sv[1]);
}

static void *member(void *arg) {
    scenario_t *s = arg;
    s->started++;
    int rc = aloop_sleep(0.01);
    EXPECT_RC(s, rc, rc == 0);
    s->finished++;
    return NULL;
}

/* Two tasks in a task group, waited for together. */
static void group_traffic(scenario_t *s) {
    aloop_group_t *g;
    EXPECT_PTR(s, g, aloop_group_new(s->loop));
    if (!g) return;
    for (int i = 0; i < 2; i++) {
        aloop_task_t *t;
        EXPECT_PTR(s, t, aloop_group_spawn(g, member, s));
        if (t) s->spawned++;
    }
    int rc = aloop_group_wait(g);
    EXPECT_RC(s, rc, rc == 0);
    aloop_group_free(g);
}

static void on_done(aloop_future_t *f, void *arg) {
    scenario_t *s = arg;
    (void)f;
    s->callbacks++;
}

static void set_event(void *arg) {
    scenario_t *s = arg;
    aloop_event_set(s->event);
    aloop_future_set_result(s->signal, s);
}

static void *main_task(void *arg) {
    scenario_t *s = arg;
    aloop_task_t *ws[WORKERS];
    size_t n = 0;
    int rc;
    s->started++;

    EXPECT_RC(s, rc = aloop_task_set_name(aloop_current_task(), "main"), rc == 0);
    EXPECT_PTR(s, s->lock, aloop_lock_new(s->loop));
    EXPECT_PTR(s, s->event, aloop_event_new(s->loop));
    EXPECT_PTR(s, s->queue, aloop_queue_new(s->loop, 4));
    EXPECT_PTR(s, s->signal, aloop_future_new(s->loop));
    aloop_task_t *cons = NULL;
    if (s->queue) {
        EXPECT_PTR(s, cons, aloop_spawn(s->loop, consumer, s));
        if (cons) {
            s->spawned++;
            /* Let it start: one that got no stack is done (-ENOMEM) now. */
            EXPECT_RC(s, rc = aloop_yield(), rc == 0);
            if (aloop_future_done(cons)) {
                EXPECT_RC(s, rc = aloop_future_result(cons, NULL), 0);
                aloop_release(cons);
                cons = NULL;
            }
        }
        if (!cons) aloop_queue_free(s->queue), s->queue = NULL; /* nobody would drain it */
    }
    for (int i = 0; i < WORKERS; i++) {
        aloop_task_t *t;
        EXPECT_PTR(s, t, aloop_spawn(s->loop, worker, s));
        if (!t) continue;
        s->spawned++;
        s->workers++;
        ws[n++] = t;
        rc = aloop_future_add_done_callback(t, on_done, s);
        EXPECT_RC(s, rc, rc == 0);
        if (rc == 0) s->callbacks_added++;
    }

    /* The event and the signal future come from a timer callback; if that
     * cannot be scheduled, set them here. */
    aloop_handle_t *h = NULL;
    if (s->event && s->signal) EXPECT_PTR(s, h, aloop_call_later(s->loop, 0.5, set_event, s));
    if (!h) {
        if (s->event) aloop_event_set(s->event);
        if (s->signal) aloop_future_set_result(s->signal, s);
    }

    if (s->signal) {
        aloop_future_t *sh;
        EXPECT_PTR(s, sh, aloop_shield(s->signal));
        void *v = NULL;
        rc = aloop_wait_for(sh ? sh : s->signal, 5.0, &v);
        EXPECT_RC(s, rc, rc == 0 && v == s);
        aloop_release(sh);
    }

    void *results[WORKERS];
    int errors[WORKERS];
    rc = aloop_gather(ws, n, results, errors, ALOOP_RETURN_ERRORS);
    EXPECT_RC(s, rc, rc == 0);
    for (size_t i = 0; i < n; i++) { /* whatever gather did, await them all */
        void *r = NULL;
        rc = aloop_await(ws[i], &r);
        EXPECT_RC(s, rc, rc == 0 && r == s);
        aloop_release(ws[i]);
    }
    socket_traffic(s);
    watch_traffic(s);
    group_traffic(s);
    void *tr = NULL;
    rc = aloop_run_in_thread(in_thread, s, &tr);
    EXPECT_RC(s, rc, rc == 0 && tr == s);
    if (rc == 0) s->thread_ran = 1;

    if (s->queue) {
        EXPECT_RC(s, rc = aloop_queue_join(s->queue), rc == 0);
        aloop_queue_shutdown(s->queue, 0);
        EXPECT_RC(s, rc = aloop_await(cons, NULL), rc == 0);
    }
    aloop_release(cons);
    s->finished++;
    return s;
}

/* One run of the scenario; asserts everything that must hold whether or
 * not an allocation failed. */
static void run_scenario(long nth, long count) {
    scenario_t s;
    memset(&s, 0, sizeof s);
    aloop__test_fail_alloc(nth, count);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    errno = 0;
    s.loop = aloop_new_with(&cfg);
    if (!s.loop) {
        aloop__test_fail_alloc(0, 0);
        assert_int_equal(errno, ENOMEM);
        return;
    }
    aloop_task_t *m;
    EXPECT_PTR(&s, m, aloop_spawn(s.loop, main_task, &s));
    if (m) {
        s.spawned++;
        int rc = aloop_run_until_complete(s.loop, m);
        if (rc != 0 && rc != -ENOMEM) bad(&s, "aloop_run_until_complete", rc);
        aloop_release(m);
    }
    int rc = aloop_run(s.loop); /* whatever is left runs out */
    if (rc != 0) bad(&s, "aloop_run", rc);
    aloop__test_fail_alloc(0, 0);

    if (s.violations) fail_msg("nth %ld count %ld: %s", nth, count, s.what);
    assert_int_equal(s.loop->task_count, 0);
    assert_int_equal(s.finished, s.started);
    assert_true(s.started <= s.spawned);
    assert_int_equal(s.callbacks, s.callbacks_added); /* each ran, once */
    if (s.queue) assert_int_equal(s.consumed, s.workers_started); /* no item lost */
    assert_true(s.lines_read <= s.lines_sent);
    aloop_queue_free(s.queue);
    aloop_event_free(s.event);
    aloop_lock_free(s.lock);
    aloop_release(s.signal);
    aloop_free(s.loop);
}

static unsigned long count_allocations(void) {
    aloop__test_fail_alloc(LONG_MAX, 0); /* counts, never fails */
    scenario_t s;
    memset(&s, 0, sizeof s);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    s.loop = aloop_new_with(&cfg);
    aloop_task_t *m = aloop_spawn(s.loop, main_task, &s);
    s.spawned = 1;
    assert_int_equal(aloop_run_until_complete(s.loop, m), 0);
    aloop_release(m);
    assert_int_equal(aloop_run(s.loop), 0);
    unsigned long n = aloop__test_alloc_count();
    aloop__test_fail_alloc(0, 0);
    assert_int_equal(s.violations, 0);
    assert_int_equal(s.finished, 5 + WORKERS);
    assert_int_equal(s.started, s.spawned);
    assert_int_equal(s.consumed, WORKERS);
    assert_int_equal(s.lines_read, LINES);
    assert_int_equal(s.thread_ran, 1);
    assert_int_equal(s.watch_calls, 1);
    aloop_queue_free(s.queue);
    aloop_event_free(s.event);
    aloop_lock_free(s.lock);
    aloop_release(s.signal);
    aloop_free(s.loop);
    return n;
}

static void test_scenario_without_failures(void **state) {
    (void)state;
    unsigned long n = count_allocations();
    assert_true(n > WORKERS); /* the sweep below has something to sweep */
    print_message("scenario makes %lu allocations\n", n);
}

static void test_each_single_allocation_fails(void **state) {
    (void)state;
    unsigned long n = count_allocations();
    for (unsigned long nth = 1; nth <= n; nth++) run_scenario((long)nth, 1);
}

static void test_every_allocation_from_nth_fails(void **state) {
    (void)state;
    unsigned long n = count_allocations();
    for (unsigned long nth = 1; nth <= n; nth++) run_scenario((long)nth, -1);
}

/* Plain API calls outside tasks, each made to fail once. */
static void noop(void *arg) { (void)arg; }
static void on_future(aloop_future_t *f, void *arg) { (void)f; (void)arg; }

static void test_constructors_report_enomem(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    aloop_future_t *f = aloop_future_new(loop);

#define FAILS_WITH_NULL(call)                     \
    do {                                          \
        aloop__test_fail_alloc(1, -1);            \
        errno = 0;                                \
        void *p_ = (void *)(call);                \
        aloop__test_fail_alloc(0, 0);             \
        assert_null(p_);                          \
        assert_int_equal(errno, ENOMEM);          \
    } while (0)
    FAILS_WITH_NULL(aloop_new_with(&cfg));
    FAILS_WITH_NULL(aloop_future_new(loop));
    FAILS_WITH_NULL(aloop_spawn(loop, (aloop_task_fn)main_task, NULL));
    FAILS_WITH_NULL(aloop_call_soon(loop, noop, NULL));
    FAILS_WITH_NULL(aloop_call_later(loop, 1, noop, NULL));
    FAILS_WITH_NULL(aloop_lock_new(loop));
    FAILS_WITH_NULL(aloop_event_new(loop));
    FAILS_WITH_NULL(aloop_semaphore_new(loop, 1));
    FAILS_WITH_NULL(aloop_cond_new(loop, NULL));
    FAILS_WITH_NULL(aloop_queue_new(loop, 0));
    FAILS_WITH_NULL(aloop_shield(f));
    FAILS_WITH_NULL(aloop_group_new(loop));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    FAILS_WITH_NULL(aloop_stream_new(loop, sv[0], 0));
    close(sv[0]);
    close(sv[1]);

    aloop__test_fail_alloc(1, -1);
    assert_int_equal(aloop_future_add_done_callback(f, on_future, NULL), -ENOMEM);
    aloop__test_fail_alloc(0, 0);
    assert_int_equal(aloop_run(loop), 0); /* nothing was left scheduled */
    assert_int_equal(loop->task_count, 0);
    aloop_release(f);
    aloop_free(loop);
}

/* A task gets its coroutine (record, stack mapping, context) at its first
 * step. Each allocation of that first step failing completes the task with
 * -ENOMEM without running it; the loop goes on, and the next task runs. */
static int first_ran;
static void *first_body(void *arg) {
    first_ran++;
    return arg;
}

static int first_step_with_nth_failing(long nth) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    first_ran = 0;
    aloop_task_t *t = aloop_spawn(loop, first_body, loop);
    assert_non_null(t);
    aloop__test_fail_alloc(nth, 1);
    assert_int_equal(aloop_run(loop), 0);
    int failed = aloop__test_alloc_count() >= (unsigned long)nth;
    aloop__test_fail_alloc(0, 0);
    void *r = NULL;
    if (failed) {
        assert_int_equal(aloop_future_result(t, &r), -ENOMEM);
        assert_int_equal(first_ran, 0);
    } else {
        assert_int_equal(aloop_future_result(t, &r), 0);
        assert_ptr_equal(r, loop);
    }
    aloop_release(t);
    /* The loop is fine: the next task gets its stack and runs. */
    t = aloop_spawn(loop, first_body, loop);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    return failed;
}

static void test_first_step_without_a_stack_completes_enomem(void **state) {
    (void)state;
    long nth = 1;
    while (first_step_with_nth_failing(nth)) nth++;
    /* coroutine record, stack chunk record, stack mapping (+ ucontext) */
    assert_true(nth - 1 >= 3);
}

/* The public hook (aloop_test.h installs a counting allocator with it
 * before the first test): every allocation goes through it, and it is
 * fixed once a loop exists. */
static void test_allocator_hook(void **state) {
    (void)state;
    test_fail_alloc(0, 0);
    aloop_t *loop = vloop();
    aloop_future_t *f = aloop_future_new(loop);
    assert_true(test_alloc_count() >= 2); /* the loop, the future */
    test_fail_alloc(1, 1);
    assert_null(aloop_future_new(loop));
    assert_int_equal(errno, ENOMEM);
    test_fail_alloc(0, 0);
    assert_int_equal(aloop_set_allocator(malloc, NULL, free), -EINVAL);
    assert_int_equal(aloop_set_allocator(malloc, realloc, free), -EBUSY);
    assert_int_equal(aloop_set_allocator(NULL, NULL, NULL), -EBUSY);
    aloop_release(f);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocator_hook),
        cmocka_unit_test(test_scenario_without_failures),
        cmocka_unit_test(test_each_single_allocation_fails),
        cmocka_unit_test(test_every_allocation_from_nth_fails),
        cmocka_unit_test(test_constructors_report_enomem),
        cmocka_unit_test(test_first_step_without_a_stack_completes_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

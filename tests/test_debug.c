/*
 * test_debug.c - debug mode (src/debug.c): warnings through the handler,
 * slow steps, lost errors, loops freed with tasks, double releases caught
 * by the quarantine, aloop_dump.
 */
#include "aloop_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- helpers */

typedef struct warnings {
    int count;
    char last[512];
    char all[4096];
} warnings_t;

static void collect(aloop_t *loop, const char *msg, void *arg) {
    warnings_t *w = arg;
    assert_non_null(loop);
    w->count++;
    snprintf(w->last, sizeof w->last, "%s", msg);
    size_t used = strlen(w->all);
    snprintf(w->all + used, sizeof w->all - used, "%s\n", msg);
}

static aloop_t *debug_loop(warnings_t *w) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .flags = ALOOP_DEBUG};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    memset(w, 0, sizeof *w);
    aloop_set_warning_handler(loop, collect, w);
    return loop;
}

static void busy_wait(double seconds) {
    double end = aloop__monotonic() + seconds;
    while (aloop__monotonic() < end) {
    }
}

/* ---- slow steps */

static void *hog(void *arg) {
    (void)arg;
    aloop_yield();
    busy_wait(0.15); /* > ALOOP_SLOW_STEP of wall time without suspending */
    aloop_yield();
    return NULL;
}

static void *polite(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) aloop_sleep(0.5);
    return NULL;
}

static void test_slow_step_names_the_task(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *t = aloop_spawn(loop, hog, NULL);
    assert_int_equal(aloop_task_set_name(t, "hog"), 0);
    aloop_release(aloop_spawn(loop, polite, NULL));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "task 'hog'"));
    assert_non_null(strstr(w.last, "slow step"));
    aloop_release(t);
    aloop_free(loop);
}

static void *slow_then_return(void *arg) {
    (void)arg;
    busy_wait(0.12);
    return NULL;
}

static void test_slow_last_step_is_reported(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *t = aloop_spawn(loop, slow_then_return, NULL);
    aloop_task_set_name(t, "finisher");
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "task 'finisher'"));
    aloop_release(t);
    aloop_free(loop);
}

/* A task whose calls never suspend is paused by its budget every
 * ALOOP_COOP_BUDGET calls, so each of its steps is short; its run time
 * still adds up, and is reported while it runs, not only once it finally
 * suspends (not only when the task returns). */
typedef struct busy_reader {
    warnings_t *w;
    int warned_during;
} busy_reader_t;

static void *busy_reader(void *arg) {
    busy_reader_t *b = arg;
    aloop_event_t *ev = aloop_event_new(aloop_current());
    aloop_event_set(ev);
    for (int i = 0; i < 4000 && !b->w->count; i++) {
        aloop_event_wait(ev); /* never suspends */
        busy_wait(0.0002);    /* a slice of 128 calls: >= 26 ms */
    }
    b->warned_during = b->w->count > 0;
    aloop_event_free(ev);
    return NULL;
}

static void test_slow_through_budget_slices(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    busy_reader_t b = {.w = &w};
    aloop_task_t *t = aloop_spawn(loop, busy_reader, &b);
    aloop_task_set_name(t, "reader");
    assert_int_equal(aloop_run(loop), 0);
    assert_true(b.warned_during);
    assert_non_null(strstr(w.all, "task 'reader'"));
    assert_non_null(strstr(w.all, "budget"));
    aloop_release(t);
    aloop_free(loop);
}

static void test_no_slow_warning_without_debug(void **state) {
    (void)state;
    warnings_t w = {0};
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    if (loop->flags & ALOOP_DEBUG) { /* ALOOP_DEBUG=1 in the environment */
        aloop_free(loop);
        skip();
    }
    aloop_set_warning_handler(loop, collect, &w);
    aloop_release(aloop_spawn(loop, slow_then_return, NULL));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(w.count, 0);
    aloop_free(loop);
}

/* ---- lost errors */

static void *failing(void *arg) {
    (void)arg;
    aloop_sleep(1);
    return aloop_fail(-EIO);
}

static void test_unretrieved_error_is_reported(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *t = aloop_spawn(loop, failing, NULL);
    aloop_task_set_name(t, "doomed");
    aloop_release(t); /* detached: nobody will look at its error */
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "task 'doomed' failed"));
    assert_non_null(strstr(w.last, "nobody retrieved"));

    /* A plain future failed and dropped. */
    aloop_future_t *f = aloop_future_new(loop);
    assert_int_equal(aloop_future_set_error(f, -EPIPE), 0);
    aloop_release(f);
    assert_int_equal(w.count, 2);
    assert_non_null(strstr(w.last, "future"));
    aloop_free(loop);
}

static void test_retrieved_error_is_not_reported(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *t = aloop_spawn(loop, failing, NULL);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(aloop_future_result(t, NULL), -EIO);
    aloop_release(t);
    aloop_future_t *f = aloop_future_new(loop);
    aloop_cancel(f); /* cancelled is not "failed" */
    aloop_release(f);
    assert_int_equal(w.count, 0);
    aloop_free(loop);
}

/* ---- loop freed with tasks */

static void *sleeper(void *arg) {
    (void)arg;
    aloop_sleep(100);
    return NULL;
}

static void test_free_with_pending_tasks_warns(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_release(aloop_spawn(loop, sleeper, NULL));
    aloop_release(aloop_spawn(loop, sleeper, NULL));
    aloop_stop(loop);
    aloop_run(loop); /* starts them; both suspend */
    assert_int_equal(loop->task_count, 2);
    aloop_free(loop);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "2 unfinished task"));
}

/* ---- task handles never released: a leak valgrind finds, reported at free */

static void *quick(void *arg) {
    (void)arg;
    return NULL;
}

static void test_free_with_unreleased_task_handles_warns(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *kept = aloop_spawn(loop, quick, NULL);
    aloop_task_set_name(kept, "kept");
    aloop_release(aloop_spawn(loop, quick, NULL)); /* released: not reported */
    assert_int_equal(aloop_run(loop), 0);
    aloop_free(loop);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "1 task handle(s) were never released (first: 'kept')"));
    aloop_release(kept); /* still valid, detached */

    loop = debug_loop(&w); /* every handle released: silent */
    aloop_release(aloop_spawn(loop, quick, NULL));
    assert_int_equal(aloop_run(loop), 0);
    aloop_free(loop);
    assert_int_equal(w.count, 0);
}

/* ---- double release */

static void test_double_release_of_future_is_caught(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_future_t *f = aloop_future_new(loop);
    aloop_release(f);
    assert_int_equal(w.count, 0);
    aloop_release(f); /* one too many: reported, not a use-after-free */
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "released more often than retained"));
    aloop_free(loop);
}

static void test_double_release_of_task_is_caught(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    aloop_task_t *t = aloop_spawn(loop, quick, NULL);
    aloop_task_set_name(t, "twice");
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_release(t);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "task 'twice' released more often"));
    aloop_free(loop);
}

/* The quarantine is bounded: many frees later, memory use stays flat. */
static void test_quarantine_is_bounded(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    for (int i = 0; i < ALOOP_QUARANTINE_MAX + 100; i++) aloop_release(aloop_future_new(loop));
    assert_int_equal(loop->debug.quarantine_len, ALOOP_QUARANTINE_MAX);
    assert_int_equal(w.count, 0);
    aloop_free(loop); /* LSan: the quarantine is freed with the loop */
}

/* ---- environment */

static void test_env_turns_debug_on(void **state) {
    (void)state;
    const char *old = getenv("ALOOP_DEBUG");
    setenv("ALOOP_DEBUG", "1", 1);
    aloop_t *on = aloop_new();
    setenv("ALOOP_DEBUG", "0", 1);
    aloop_t *off = aloop_new();
    if (old) setenv("ALOOP_DEBUG", old, 1); else unsetenv("ALOOP_DEBUG");
    assert_true(on->flags & ALOOP_DEBUG);
    assert_false(off->flags & ALOOP_DEBUG);
    aloop_free(on);
    aloop_free(off);
}

/* ---- aloop_dump */

typedef struct dump_ctx {
    aloop_task_t *target;
} dump_ctx_t;

static void *awaiter(void *arg) {
    dump_ctx_t *c = arg;
    aloop_await(c->target, NULL);
    return NULL;
}

static void test_dump_lists_tasks(void **state) {
    (void)state;
    warnings_t w;
    aloop_t *loop = debug_loop(&w);
    dump_ctx_t c;
    c.target = aloop_spawn(loop, sleeper, NULL);
    aloop_task_set_name(c.target, "napper");
    aloop_task_t *a = aloop_spawn(loop, awaiter, &c);
    aloop_task_set_name(a, "watcher");
    aloop_stop(loop);
    aloop_run(loop); /* one pass: both have suspended */
    aloop_task_t *late = aloop_spawn(loop, quick, NULL);
    aloop_task_set_name(late, "latecomer");
    aloop_cancel(late);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    aloop_dump(loop, out);
    fclose(out);
    assert_non_null(strstr(text, "3 unfinished task(s)"));
    assert_non_null(strstr(text, "task 'napper' #1: suspended"));
    assert_non_null(strstr(text, "task 'watcher' #2: suspended, awaiting task 'napper'"));
    assert_non_null(strstr(text, "task 'latecomer' #3: not started, 1 cancel request(s)"));
    assert_non_null(strstr(text, "spawned at test_debug+0x"));
    free(text);

    aloop_release(c.target);
    aloop_release(a);
    aloop_release(late);
    aloop_free(loop);
}

static void *dump_self(void *arg) {
    char **text = arg;
    size_t len;
    FILE *out = open_memstream(text, &len);
    aloop_dump(aloop_current(), out);
    fclose(out);
    return NULL;
}

static void test_dump_from_inside_shows_running(void **state) {
    (void)state;
    char *text = NULL;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    assert_int_equal(aloop_main_with(&cfg, dump_self, &text, NULL), 0);
    assert_non_null(text);
    assert_non_null(strstr(text, "task 'Task-1' #1: running"));
    free(text);
    aloop_dump(NULL, stdout); /* no-op */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_step_names_the_task),
        cmocka_unit_test(test_slow_last_step_is_reported),
        cmocka_unit_test(test_slow_through_budget_slices),
        cmocka_unit_test(test_no_slow_warning_without_debug),
        cmocka_unit_test(test_unretrieved_error_is_reported),
        cmocka_unit_test(test_retrieved_error_is_not_reported),
        cmocka_unit_test(test_free_with_pending_tasks_warns),
        cmocka_unit_test(test_free_with_unreleased_task_handles_warns),
        cmocka_unit_test(test_double_release_of_future_is_caught),
        cmocka_unit_test(test_double_release_of_task_is_caught),
        cmocka_unit_test(test_quarantine_is_bounded),
        cmocka_unit_test(test_env_turns_debug_on),
        cmocka_unit_test(test_dump_lists_tasks),
        cmocka_unit_test(test_dump_from_inside_shows_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * aloop_test.h - helpers the cmocka tests share. Include after cmocka.h and
 * internal.h.
 */
#ifndef ALOOP_TEST_H
#define ALOOP_TEST_H

/* A loop on the virtual clock: timing logic without wall-clock waits. */
static inline aloop_t *vloop(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    return loop;
}

/* The running loop's clock. */
static inline double now(void) { return aloop_time(aloop_current()); }

/* aloop_spawn that must succeed. */
static inline aloop_task_t *spawn(aloop_t *loop, aloop_task_fn fn, const void *arg) {
    aloop_task_t *t = aloop_spawn(loop, fn, (void *)arg);
    assert_non_null(t);
    return t;
}

/* Runs the loop dry (it must end cleanly) and drops the tasks' references. */
static inline void run_and_release(aloop_t *loop, aloop_task_t **ts, size_t n) {
    assert_int_equal(aloop_run(loop), 0);
    for (size_t i = 0; i < n; i++) aloop_release(ts[i]);
}

/* Misuse aborts in debug mode (src/debug.c): a test of what misuse
 * returns normally skips when ALOOP_DEBUG=1 is in the environment. */
static inline void skip_in_debug_env(void) {
    const char *v = getenv("ALOOP_DEBUG");
    if (v && *v && strcmp(v, "0") != 0) skip();
}

/* For call_later: cancels the future or task given as arg. */
static inline void cancel_cb(void *f) { aloop_cancel(f); }

#endif

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

#endif

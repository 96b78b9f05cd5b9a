/*
 * aloop_test.h - what every cmocka test includes first: cmocka and the
 * headers it needs before it, the public API, and helpers the tests share.
 * White-box tests include "internal.h" after it (tests/CMakeLists.txt says
 * which tests may).
 *
 * ctest runs each test of a program on its own (one entry per test, see
 * tests/CMakeLists.txt) by setting CMOCKA_TEST_FILTER to the test's name;
 * cmocka 1.1 does not read that variable itself, so the runner below does.
 */
#ifndef ALOOP_TEST_H
#define ALOOP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>
#if defined(__linux__)
#include <dirent.h>
#endif

#include "aloop.h"

/* The same as base_internal.h's, for API tests (an identical redefinition
 * is allowed when a white-box test includes both). */
#ifndef ALOOP_UNUSED
#define ALOOP_UNUSED(x) ((void)(x))
#endif

/* Allocation failure through the public allocator hook
 * (aloop_set_allocator, installed before the first test runs):
 * test_fail_alloc(nth, count) makes the nth allocation from now (1 = the
 * next) and the count - 1 after it fail (count < 0: every one after it);
 * test_fail_alloc(0, 0) turns it off. test_alloc_count() is the number of
 * allocations since the last test_fail_alloc, for sweeping nth;
 * test_free_count() the number of blocks freed since then. Task stacks
 * and slabs are mmap'd, not allocated: only white-box tests (alloc.c's
 * aloop__test_fail_alloc) reach those. */
static unsigned long test_allocs_, test_frees_;
static long test_fail_nth_, test_fail_left_;
/* Pool workers allocate too: the counters are atomic (relaxed is enough,
 * a failure is armed only while one thread allocates). */
#define TEST_LOAD_(v) __atomic_load_n(&(v), __ATOMIC_RELAXED)
#define TEST_STORE_(v, x) __atomic_store_n(&(v), (x), __ATOMIC_RELAXED)
static inline int test_alloc_fails_(void) {
    unsigned long n = __atomic_add_fetch(&test_allocs_, 1, __ATOMIC_RELAXED);
    long nth = TEST_LOAD_(test_fail_nth_);
    if (!nth || (long)n < nth) return 0;
    long left = TEST_LOAD_(test_fail_left_);
    do {
        if (!left) return 0;
    } while (left > 0 && !__atomic_compare_exchange_n(&test_fail_left_, &left, left - 1, 0,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    errno = ENOMEM;
    return 1;
}
static inline void *test_malloc_(size_t n) { return test_alloc_fails_() ? NULL : malloc(n); }
static inline void *test_realloc_(void *p, size_t n) {
    return test_alloc_fails_() ? NULL : realloc(p, n);
}
static inline void test_free_(void *p) {
    if (p) __atomic_add_fetch(&test_frees_, 1, __ATOMIC_RELAXED);
    free(p);
}
static inline void test_fail_alloc(long nth, long count) {
    TEST_STORE_(test_allocs_, 0);
    TEST_STORE_(test_frees_, 0);
    TEST_STORE_(test_fail_nth_, nth);
    TEST_STORE_(test_fail_left_, count);
}
static inline unsigned long test_alloc_count(void) { return TEST_LOAD_(test_allocs_); }
static inline unsigned long test_free_count(void) { return TEST_LOAD_(test_frees_); }

/* cmocka_run_group_tests, with the filter from the environment. A filter
 * that names no test of the group fails: a test renamed in the source but
 * not in the build would otherwise pass by running nothing. */
static inline int aloop_test_run_group(const char *group, const struct CMUnitTest *tests,
                                       size_t n, CMFixtureFunction setup,
                                       CMFixtureFunction teardown) {
    (void)aloop_set_allocator(test_malloc_, test_realloc_, test_free_); /* -EBUSY: set already */
    const char *filter = getenv("CMOCKA_TEST_FILTER");
    if (filter && *filter) {
        size_t found = 0;
        for (size_t i = 0; i < n; i++) found += strcmp(tests[i].name, filter) == 0;
        if (!found) {
            printf("no test named %s in %s\n", filter, group);
            return 1;
        }
        cmocka_set_test_filter(filter);
    }
    return _cmocka_run_group_tests(group, tests, n, setup, teardown);
}
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(tests, setup, teardown) \
    aloop_test_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

/* A test that is one call of a case several tests share (each cmocka test
 * is its own function, and its own ctest entry):
 *     ALOOP_TEST_CASE(test_copy_cancel_source_wait, run_cancel_relay(0, 0)) */
#define ALOOP_TEST_CASE(name, call) \
    static void name(void **state) {  \
        (void)state;                  \
        call;                         \
    }

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
static inline int debug_env(void) {
    const char *v = getenv("ALOOP_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}
static inline void skip_in_debug_env(void) {
    if (debug_env()) skip();
}

/* Built with ThreadSanitizer: its runtime runs a thread of its own. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ALOOP_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(ALOOP_TEST_TSAN)
#define ALOOP_TEST_TSAN 1
#endif
#ifndef ALOOP_TEST_TSAN
#define ALOOP_TEST_TSAN 0
#endif

/* A loop reports -EDEADLK only when the process has no thread besides its
 * own and its pool's (threads of other code could still post to it). Under
 * an emulator (qemu-user runs threads of its own) or where threads cannot
 * be counted, the loop rightly waits instead, so a test that expects the
 * report checks this first, before it starts any thread of its own. */
static inline int deadlocks_detectable(void) {
#if ALOOP_TEST_TSAN
    return 0; /* TSan's background thread (started with the first
                 pthread_create) counts as a thread that could post work */
#elif defined(__linux__)
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n == 1;
#else
    return 0;
#endif
}

/* CPU time (user + system) this process has used, in seconds: for tests
 * that check a back-off does not spin. */
static inline double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* A trace of what tasks did, for tests that check the order of events
 * (define ALOOP_TEST_TRACE before including this file): note() appends a
 * formatted piece, trace_reset() empties it, expect_trace() runs the loop
 * dry, releases the tasks and compares the trace with want. */
#ifdef ALOOP_TEST_TRACE
static char trace[512];
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static inline void note(const char *fmt, ...) {
    va_list ap;
    size_t len = strlen(trace);
    va_start(ap, fmt);
    vsnprintf(trace + len, sizeof trace - len, fmt, ap);
    va_end(ap);
}
static inline void trace_reset(void) { trace[0] = 0; }
static inline void expect_trace(aloop_t *loop, aloop_task_t **ts, size_t n, const char *want) {
    run_and_release(loop, ts, n);
    assert_string_equal(trace, want);
}
#endif

/* For call_later: cancels the future or task given as arg. */
static inline void cancel_cb(void *f) { aloop_cancel(f); }

#endif

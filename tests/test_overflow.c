/*
 * test_overflow.c - a task that overflows its stack dies with a message that
 * names the task and its stack size (coro.c's SIGSEGV handler on the
 * alternate stack, fault address in the guard page), never silently
 * corrupting its neighbour's memory. Each crash happens in a child process;
 * the parent reads the child's stderr and checks how it died.
 */
#include "aloop_test.h"

#include <alloca.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Frames the compiler must keep (no inlining into the caller). */
#define NOINLINE __attribute__((noinline))
/* A task's stack when aloop_config_t.stack_size is 0 (aloop.h). */
#define DEFAULT_STACK_KIB 256u

typedef struct crash {
    int status;
    char err[2048];
} crash_t;

/* Runs fn in a child with stderr captured. */
static void in_child(void (*fn)(void), crash_t *out) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        /* cmocka catches SIGSEGV to report a failed test and carry on: in
         * the child that would resume the test runner. Back to the default,
         * which the loop's overflow handler then wraps (it is installed
         * once per process, by the first loop: here, since the parent makes
         * no loop before these tests). */
        signal(SIGSEGV, SIG_DFL);
        fn();
        _exit(0);
    }
    close(fds[1]);
    memset(out, 0, sizeof *out);
    size_t got = 0;
    ssize_t n;
    while (got < sizeof out->err - 1 &&
           (n = read(fds[0], out->err + got, sizeof out->err - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    assert_int_equal(waitpid(pid, &out->status, 0), pid);
}

/* Each frame keeps a live 512-byte buffer, and the recursion is not a tail
 * call, so no compiler can turn it into a loop. */
static NOINLINE unsigned recurse(unsigned depth) {
    volatile char pad[512];
    pad[0] = (char)depth;
    pad[sizeof pad - 1] = (char)(depth >> 8);
    if (depth == 0) return 0;
    return recurse(depth - 1) + (unsigned)pad[0] + (unsigned)pad[sizeof pad - 1];
}

static void *deep(void *arg) {
    (void)arg;
    /* 1,000,000 frames of > 512 bytes: far beyond 64 KiB, or 256 KiB. */
    return (void *)(uintptr_t)recurse(1000000);
}

static void overflow_named_task(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 64 * 1024};
    aloop_t *loop = aloop_new_with(&cfg);
    aloop_task_t *t = aloop_spawn(loop, deep, NULL);
    aloop_task_set_name(t, "recursive-descent");
    aloop_run(loop);
    fputs("survived\n", stderr);
}

static void test_overflow_names_task_and_stack_size(void **state) {
    (void)state;
    crash_t c;
    in_child(overflow_named_task, &c);
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_non_null(strstr(c.err, "stack overflow in task 'recursive-descent'"));
    assert_non_null(strstr(c.err, "(stack size 64 KiB)"));
    assert_null(strstr(c.err, "survived"));
}

/* The second of several tasks, default stack size, default name. */
static void *shallow(void *arg) {
    (void)arg;
    aloop_sleep(1);
    return NULL;
}

static void overflow_among_others(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    aloop_release(aloop_spawn(loop, shallow, NULL));
    aloop_release(aloop_spawn(loop, deep, NULL));
    aloop_release(aloop_spawn(loop, shallow, NULL));
    aloop_run(loop);
    fputs("survived\n", stderr);
}

static void test_overflow_default_stack_among_other_tasks(void **state) {
    (void)state;
    crash_t c;
    in_child(overflow_among_others, &c);
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_non_null(strstr(c.err, "stack overflow in task 'Task-2'"));
    char want[64];
    snprintf(want, sizeof want, "(stack size %u KiB)", DEFAULT_STACK_KIB);
    assert_non_null(strstr(c.err, want));
}

/* A frame bigger than a page at the very end of a stack: its first store
 * (at its lowest address) lands 13 to 14 KiB below the stack. With a one-page
 * guard that was the top of the neighbouring slot's stack, written without
 * a fault; the guard gap below every stack (64 KiB) makes it a report. */
static NOINLINE void frame_of_16k(void) {
    volatile char buf[16 * 1024];
    buf[0] = 1;
    buf[sizeof buf - 1] = 1;
}

/* The edge task's stack. Its first frame starts at most ENTRY_FRAMES
 * bytes below the top (the coroutine's entry frames: about 200). */
#define EDGE_STACK (64u * 1024u)
#define ENTRY_FRAMES 1024u

static void *to_the_edge(void *arg) {
    (void)arg;
    /* 2 to 3 KiB of stack left */
    volatile char *fill = alloca(EDGE_STACK - ENTRY_FRAMES - 2048);
    fill[0] = 0;
    frame_of_16k();
    return fill[0] ? arg : NULL; /* keeps the alloca alive past the call */
}

static void *neighbour(void *arg) {
    (void)arg;
    aloop_sleep(1);
    return NULL;
}

static void big_frame_at_the_edge(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = EDGE_STACK};
    aloop_t *loop = aloop_new_with(&cfg);
    /* The neighbour gets the slot below the edge task's (slots are handed
     * out in address order; each task gets its stack at its first step). */
    aloop_release(aloop_spawn(loop, neighbour, NULL));
    aloop_task_t *t = aloop_spawn(loop, to_the_edge, NULL);
    aloop_task_set_name(t, "edge");
    aloop_run(loop);
    fputs("survived\n", stderr);
}

static void test_16k_frame_at_the_end_of_a_stack_is_caught(void **state) {
    (void)state;
    crash_t c;
    in_child(big_frame_at_the_edge, &c);
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_non_null(strstr(c.err, "stack overflow in task 'edge'"));
    assert_null(strstr(c.err, "survived"));
}

/* A loop created on one thread and run on another: the thread that runs it
 * gets the alternate signal stack the report needs (else: a bare SIGSEGV). */
static void *run_loop_thread(void *loop) {
    aloop_run(loop);
    return NULL;
}

static void overflow_on_another_thread(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 64 * 1024};
    aloop_t *loop = aloop_new_with(&cfg);
    aloop_task_t *t = aloop_spawn(loop, deep, NULL);
    aloop_task_set_name(t, "elsewhere");
    pthread_t th;
    if (pthread_create(&th, NULL, run_loop_thread, loop) != 0) _exit(3);
    pthread_join(th, NULL);
    fputs("survived\n", stderr);
}

static void test_loop_run_on_another_thread_reports_overflow(void **state) {
    (void)state;
    crash_t c;
    in_child(overflow_on_another_thread, &c);
    assert_true(WIFSIGNALED(c.status));
    assert_int_equal(WTERMSIG(c.status), SIGABRT);
    assert_non_null(strstr(c.err, "stack overflow in task 'elsewhere'"));
    assert_null(strstr(c.err, "survived"));
}

/* A segfault that is not an overflow is not reported as one: the process
 * dies of it as it would without libaloop (or the sanitizer reports it). */
static void *null_deref(void *arg) {
    volatile int *volatile p = arg;
    return (void *)(intptr_t)*p;
}

static void plain_segfault_in_task(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    aloop_release(aloop_spawn(loop, null_deref, NULL));
    aloop_run(loop);
    fputs("survived\n", stderr);
}

static void test_other_segfaults_are_not_overflows(void **state) {
    (void)state;
    crash_t c;
    in_child(plain_segfault_in_task, &c);
    assert_false(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
    assert_null(strstr(c.err, "stack overflow"));
    assert_null(strstr(c.err, "survived"));
}

/* Deep but bounded recursion that fits is fine: the guard is only a page. */
static void *fits(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)(recurse(50) + 1); /* ~30 KiB of 64 KiB */
}

static void test_recursion_within_the_stack_is_fine(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 64 * 1024};
    void *r = NULL;
    assert_int_equal(aloop_main_with(&cfg, fits, NULL, &r), 0);
    assert_non_null(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_names_task_and_stack_size),
        cmocka_unit_test(test_overflow_default_stack_among_other_tasks),
        cmocka_unit_test(test_other_segfaults_are_not_overflows),
        /* (before any test that makes a loop in this process: the handler
         * is installed once per process, and children inherit that) */
        cmocka_unit_test(test_16k_frame_at_the_end_of_a_stack_is_caught),
        cmocka_unit_test(test_loop_run_on_another_thread_reports_overflow),
        cmocka_unit_test(test_recursion_within_the_stack_is_fine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

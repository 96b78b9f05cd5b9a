/* Tests for src/coro.c: stacks, context switches, coroutine reuse. */
#include "aloop_test.h"

#include "internal.h"

#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static aloop_t *vloop_with(size_t stack, unsigned flags) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = stack, .flags = flags};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    return loop;
}

/* Uses most of a 256 KiB stack: pages are committed on demand. */
static void *big_frame(void *arg) {
    volatile char buf[200 * 1024];
    memset((char *)buf, (int)(intptr_t)arg, sizeof buf);
    aloop_yield();
    long sum = 0;
    for (size_t i = 0; i < sizeof buf; i += 4096) sum += buf[i];
    return (void *)sum;
}

static void test_default_stack_holds_200k(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0, 0);
    aloop_task_t *a = aloop_spawn(loop, big_frame, (void *)1);
    aloop_task_t *b = aloop_spawn(loop, big_frame, (void *)2);
    aloop_run(loop);
    void *ra, *rb;
    assert_int_equal(aloop_future_result(a, &ra), 0);
    assert_int_equal(aloop_future_result(b, &rb), 0);
    assert_int_equal((long)ra, 50);
    assert_int_equal((long)rb, 100);
    aloop_release(a);
    aloop_release(b);
    aloop_free(loop);
}

/* Locals in callee-saved registers and on the stack, integer and floating
 * point, must survive every switch. */
static void *keep_state(void *arg) {
    long seed = (long)(intptr_t)arg;
    long a = seed, b = seed * 3, c = seed * 7, d = seed ^ 0x5555, e = seed + 11;
    double x = (double)seed * 0.5, y = (double)seed / 3.0;
    for (int i = 0; i < 100; i++) {
        aloop_yield();
        a += 1; b += 2; c += 3; d ^= i; e -= 1; x += 1.0; y *= 1.0;
    }
    long d_expected = seed ^ 0x5555;
    for (int i = 0; i < 100; i++) d_expected ^= i;
    int ok = a == seed + 100 && b == seed * 3 + 200 && c == seed * 7 + 300 && d == d_expected &&
             e == seed + 11 - 100 && x == (double)seed * 0.5 + 100.0 && y == (double)seed / 3.0;
    return (void *)(intptr_t)ok;
}

static void test_registers_survive_switches(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0, 0);
    enum { N = 50 };
    aloop_task_t *t[N];
    for (int i = 0; i < N; i++) t[i] = aloop_spawn(loop, keep_state, (void *)(intptr_t)(i * 1000 + 1));
    aloop_run(loop);
    for (int i = 0; i < N; i++) {
        void *ok;
        assert_int_equal(aloop_future_result(t[i], &ok), 0);
        assert_int_equal((intptr_t)ok, 1);
        aloop_release(t[i]);
    }
    aloop_free(loop);
}

static void *trivial(void *arg) { return arg; }

static void *spawn_await_many(void *arg) {
    (void)arg;
    for (intptr_t i = 0; i < 10000; i++) {
        aloop_task_t *t = aloop_spawn(aloop_current(), trivial, (void *)i);
        void *r;
        if (aloop_await(t, &r) != 0 || (intptr_t)r != i) return aloop_fail(-EIO);
        aloop_release(t);
    }
    return NULL;
}

/* Finished coroutines are parked and reused: 10,000 sequential
 * spawn+await pairs need only one coroutine besides the parent's. */
static void test_coroutines_are_reused(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0, 0);
    aloop_task_t *t = aloop_spawn(loop, spawn_await_many, NULL);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    assert_true(loop->coros.idle_count <= 2);
    aloop_release(t);
    aloop_free(loop);
}

static void test_without_guard_pages(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(32 * 1024, ALOOP_NO_GUARD_PAGES);
    aloop_task_t *t = aloop_spawn(loop, keep_state, (void *)5);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
}

/* More coroutines than the idle pool keeps: the extra ones are unmapped
 * from the loop's context (a coroutine cannot free its own stack). */
static void *sleep_a_bit(void *arg) {
    aloop_sleep((double)(intptr_t)arg);
    return NULL;
}

static void test_idle_pool_is_bounded(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(16 * 1024, 0);
    for (intptr_t i = 0; i < ALOOP_IDLE_CORO_MAX + 500; i++)
        aloop_release(aloop_spawn(loop, sleep_a_bit, (void *)(i % 3)));
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(loop->coros.idle_count, ALOOP_IDLE_CORO_MAX);
    aloop_free(loop);
}

/* After a flood, parked coroutines give their deep stack pages back: all
 * but the first ALOOP_IDLE_HOT_BYTES worth keep only the pages around
 * their parked frame (mincore: resident pages). The ones beyond the idle
 * pool's bound are freed, and their slots hold no memory either. */
static aloop_event_t *flood_gate;

static void *deep_then_wait(void *arg) {
    (void)arg;
    volatile char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = (char)i;
    aloop_event_wait(flood_gate);
    return NULL;
}

static size_t resident_pages(char *lo, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, count = 0;
    unsigned char *vec = malloc(n);
    assert_int_equal(mincore(lo, n * page, vec), 0);
    for (size_t i = 0; i < n; i++) count += vec[i] & 1;
    free(vec);
    return count;
}

static void test_parked_stacks_give_pages_back(void **state) {
    (void)state;
    aloop_t *loop = vloop_with(0, 0);
    flood_gate = aloop_event_new(loop);
    enum { N = 200 };
    for (int i = 0; i < N; i++) aloop_release(aloop_spawn(loop, deep_then_wait, NULL));
    assert_int_equal(aloop_run_once(loop, 0), 1); /* all deep, all waiting */
    aloop_event_set(flood_gate);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(loop->coros.idle_count, N);
    size_t hot = ALOOP_IDLE_HOT_BYTES / loop->coros.stack_size, deep = 0, shallow = 0;
    for (aloop_coro_t *co = loop->coros.idle; co; co = co->next_idle) {
        /* everything but the top 16 KiB (the parked frames) */
        size_t r = resident_pages(co->stack_lo, co->stack_size - 16 * 1024);
        if (r) deep++;
        else shallow++;
    }
    assert_true(deep <= hot);
    assert_true(shallow >= N - hot);
    aloop_event_free(flood_gate);
    aloop_free(loop);
}

/* A real mmap failure (no address space left: RLIMIT_AS) at a task's first
 * step completes that task with -ENOMEM, and the loop goes on (it is freed
 * normally). In a child process; skipped under ASan, whose shadow memory
 * needs the address space. */
static void *says_hello(void *arg) { return arg; }

static void first_step_without_address_space(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .stack_size = 1024 * 1024};
    aloop_t *loop = aloop_new_with(&cfg);
    if (!loop) _exit(10);
    aloop_task_t *t = aloop_spawn(loop, says_hello, loop);
    if (!t) _exit(11);
    /* Room for the loop's small allocations, not for a 64-stack chunk
     * (64 x (1 MiB + 64 KiB) of address space). */
    struct rlimit rl;
    long pages = 0, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) _exit(12);
    fclose(f);
    rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 8u * 1024 * 1024;
    if (setrlimit(RLIMIT_AS, &rl) < 0) _exit(13);
    if (aloop_run(loop) != 0) _exit(14);
    if (aloop_future_result(t, NULL) != -ENOMEM) _exit(15);
    aloop_release(t);
    aloop_free(loop);
    _exit(0);
}

static void test_first_step_without_address_space(void **state) {
    (void)state;
#if defined(ALOOP_ASAN)
    skip();
#endif
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) first_step_without_address_space();
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_stack_holds_200k),
        cmocka_unit_test(test_registers_survive_switches),
        cmocka_unit_test(test_coroutines_are_reused),
        cmocka_unit_test(test_without_guard_pages),
        cmocka_unit_test(test_idle_pool_is_bounded),
        cmocka_unit_test(test_parked_stacks_give_pages_back),
        cmocka_unit_test(test_first_step_without_address_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

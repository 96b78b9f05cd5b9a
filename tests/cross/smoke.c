/*
 * smoke.c - a self-checking smoke test for cross builds (run under qemu by
 * .ci/cross-aarch64.sh), no cmocka needed: spawn, await, yield, sleep,
 * cancel, queue, gather on the virtual clock, plus the things a context
 * switch gets wrong first: callee-saved registers (x19-x28, d8-d15 on
 * aarch64) across every kind of suspension, stack alignment at task entry,
 * deep recursion on a task stack, many tasks at once.
 * Prints "N passed, M failed"; exits 1 if anything failed.
 */
#include "aloop.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (cond) {                                                           \
            passed++;                                                         \
        } else {                                                              \
            failed++;                                                         \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__,        \
                    __LINE__, __func__, #cond);                               \
        }                                                                     \
    } while (0)

static aloop_t *vloop(void) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *loop = aloop_new_with(&cfg);
    if (!loop) {
        perror("aloop_new_with");
        exit(2);
    }
    return loop;
}

/* Runs fn(arg) as the one top-level task and returns its result. */
static void *run_main(aloop_t *loop, aloop_task_fn fn, void *arg) {
    aloop_task_t *t = aloop_spawn(loop, fn, arg);
    CHECK(t != NULL);
    if (!t) return NULL;
    CHECK(aloop_run_until_complete(loop, t) == 0);
    void *v = NULL;
    CHECK(aloop_future_result(t, &v) == 0);
    aloop_release(t);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Registers                                                                */
/* ------------------------------------------------------------------------ */

#if defined(__aarch64__)
/* int regs_survive(int (*fn)(void), uint64_t seed)
 * Loads x19..x28 with seed+19..seed+28 and d8..d15 with the bit patterns
 * seed+108..seed+115, calls fn, and returns how many of the 18 no longer
 * hold their value. fn suspends the task: every other task, the scheduler
 * and the switch run meanwhile and must leave them as they were. */
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".type regs_survive,%function\n"
        "regs_survive:\n"
        "    hint #34\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    mov x29, sp\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x1, [sp, #160]\n"
        "    add x19, x1, #19\n    add x20, x1, #20\n    add x21, x1, #21\n"
        "    add x22, x1, #22\n    add x23, x1, #23\n    add x24, x1, #24\n"
        "    add x25, x1, #25\n    add x26, x1, #26\n    add x27, x1, #27\n"
        "    add x28, x1, #28\n"
        "    add x9, x1, #108\n    fmov d8, x9\n"
        "    add x9, x1, #109\n    fmov d9, x9\n"
        "    add x9, x1, #110\n    fmov d10, x9\n"
        "    add x9, x1, #111\n    fmov d11, x9\n"
        "    add x9, x1, #112\n    fmov d12, x9\n"
        "    add x9, x1, #113\n    fmov d13, x9\n"
        "    add x9, x1, #114\n    fmov d14, x9\n"
        "    add x9, x1, #115\n    fmov d15, x9\n"
        "    blr x0\n"
        "    ldr x1, [sp, #160]\n"
        "    mov x0, #0\n"
        "    add x9, x1, #19\n    cmp x19, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #20\n    cmp x20, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #21\n    cmp x21, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #22\n    cmp x22, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #23\n    cmp x23, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #24\n    cmp x24, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #25\n    cmp x25, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #26\n    cmp x26, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #27\n    cmp x27, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #28\n    cmp x28, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #108\n    fmov x10, d8\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #109\n    fmov x10, d9\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #110\n    fmov x10, d10\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #111\n    fmov x10, d11\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #112\n    fmov x10, d12\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #113\n    fmov x10, d13\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #114\n    fmov x10, d14\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    add x9, x1, #115\n    fmov x10, d15\n    cmp x10, x9\n    cinc x0, x0, ne\n"
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size regs_survive, .-regs_survive\n"
        ".popsection\n");
int regs_survive(int (*fn)(void), uint64_t seed);
#define HAVE_REGS_SURVIVE 1

static uintptr_t stack_pointer(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}
#endif

/* ------------------------------------------------------------------------ */
/* The tests                                                                */
/* ------------------------------------------------------------------------ */

static void *add_one(void *arg) {
    return (void *)((uintptr_t)arg + 1);
}

static void *spawn_and_await(void *arg) {
    (void)arg;
    aloop_task_t *t = aloop_spawn(aloop_current(), add_one, (void *)41);
    void *v = NULL;
    CHECK(aloop_await(t, &v) == 0);
    CHECK((uintptr_t)v == 42);
    aloop_release(t);
    return (void *)7;
}

static void test_spawn_await(void) {
    aloop_t *loop = vloop();
    CHECK((uintptr_t)run_main(loop, spawn_and_await, NULL) == 7);
    aloop_free(loop);
}

/* Two tasks yielding in turn interleave strictly. */
static char trace[64];
static size_t trace_len;

static void *yielder(void *arg) {
    for (int i = 0; i < 3; i++) {
        trace[trace_len++] = *(const char *)arg;
        CHECK(aloop_yield() == 0);
    }
    return NULL;
}

static void test_yield_interleaves(void) {
    aloop_t *loop = vloop();
    trace_len = 0;
    aloop_release(aloop_spawn(loop, yielder, "a"));
    aloop_release(aloop_spawn(loop, yielder, "b"));
    CHECK(aloop_run(loop) == 0);
    trace[trace_len] = '\0';
    CHECK(strcmp(trace, "ababab") == 0);
    aloop_free(loop);
}

/* Sleeps finish in deadline order, on virtual time. */
static double woke_at[3];

static void *sleeper(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    CHECK(aloop_sleep(0.5 * (double)(3 - i)) == 0);
    woke_at[i] = aloop_time(aloop_current());
    return NULL;
}

static void test_sleep_virtual_clock(void) {
    aloop_t *loop = vloop();
    double t0 = aloop_time(loop);
    for (uintptr_t i = 0; i < 3; i++) aloop_release(aloop_spawn(loop, sleeper, (void *)i));
    CHECK(aloop_run(loop) == 0);
    CHECK(woke_at[2] - t0 > 0.49 && woke_at[2] - t0 < 0.51);
    CHECK(woke_at[1] - t0 > 0.99 && woke_at[1] - t0 < 1.01);
    CHECK(woke_at[0] - t0 > 1.49 && woke_at[0] - t0 < 1.51);
    aloop_free(loop);
}

static void *sleep_long(void *arg) {
    (void)arg;
    int rc = aloop_sleep(10.0);
    return (void *)(intptr_t)rc;
}

static void *cancel_after_one_second(void *arg) {
    (void)arg;
    aloop_t *loop = aloop_current();
    double t0 = aloop_time(loop);
    aloop_task_t *t = aloop_spawn(loop, sleep_long, NULL);
    CHECK(aloop_sleep(1.0) == 0);
    CHECK(aloop_cancel(t) == 1);
    CHECK(aloop_await(t, NULL) == -ECANCELED);
    CHECK(aloop_future_cancelled(t));
    double took = aloop_time(loop) - t0;
    CHECK(took > 0.99 && took < 1.01);
    aloop_release(t);
    return NULL;
}

static void test_cancel(void) {
    aloop_t *loop = vloop();
    run_main(loop, cancel_after_one_second, NULL);
    aloop_free(loop);
}

/* A bounded queue between a producer and a consumer keeps order. */
static void *producer(void *arg) {
    aloop_queue_t *q = arg;
    for (uintptr_t i = 1; i <= 100; i++) {
        CHECK(aloop_queue_put(q, (void *)i) == 0);
        if (i % 10 == 0) CHECK(aloop_sleep(0.01) == 0);
    }
    return NULL;
}

static void *consumer(void *arg) {
    aloop_queue_t *q = arg;
    uintptr_t expect = 1, sum = 0;
    for (int i = 0; i < 100; i++) {
        void *v = NULL;
        if (aloop_queue_get(q, &v) != 0) break;
        if ((uintptr_t)v != expect++) return (void *)0;
        sum += (uintptr_t)v;
    }
    return (void *)sum;
}

static void test_queue(void) {
    aloop_t *loop = vloop();
    aloop_queue_t *q = aloop_queue_new(loop, 2);
    CHECK(q != NULL);
    aloop_task_t *p = aloop_spawn(loop, producer, q);
    aloop_task_t *c = aloop_spawn(loop, consumer, q);
    CHECK(aloop_run(loop) == 0);
    void *sum = NULL;
    CHECK(aloop_future_result(c, &sum) == 0);
    CHECK((uintptr_t)sum == 5050);
    aloop_release(p);
    aloop_release(c);
    aloop_queue_free(q);
    aloop_free(loop);
}

/* gather: results in input order, all children run concurrently. */
static void *sleep_then_square(void *arg) {
    uintptr_t n = (uintptr_t)arg;
    CHECK(aloop_sleep(0.1 * (double)(4 - n)) == 0);
    return (void *)(n * n);
}

static void *gather_three(void *arg) {
    (void)arg;
    aloop_t *loop = aloop_current();
    double t0 = aloop_time(loop);
    aloop_future_t *fs[3];
    for (uintptr_t i = 0; i < 3; i++) fs[i] = aloop_spawn(loop, sleep_then_square, (void *)(i + 1));
    void *res[3] = {0};
    CHECK(aloop_gather(fs, 3, res, NULL, 0) == 0);
    CHECK((uintptr_t)res[0] == 1 && (uintptr_t)res[1] == 4 && (uintptr_t)res[2] == 9);
    double took = aloop_time(loop) - t0;
    CHECK(took > 0.29 && took < 0.31); /* the longest, not the sum */
    for (int i = 0; i < 3; i++) aloop_release(fs[i]);
    return NULL;
}

static void test_gather(void) {
    aloop_t *loop = vloop();
    run_main(loop, gather_three, NULL);
    aloop_free(loop);
}

/* Deep recursion on a task stack, suspending at the bottom: every frame's
 * locals must still be there after other tasks ran on their own stacks. */
static unsigned long recurse(unsigned depth, unsigned long seed) {
    volatile unsigned char pad[200];
    for (size_t i = 0; i < sizeof pad; i++) pad[i] = (unsigned char)(seed + i);
    unsigned long below;
    if (depth == 0) {
        CHECK(aloop_yield() == 0);
        below = 0;
    } else {
        below = recurse(depth - 1, seed * 31 + depth);
    }
    unsigned long sum = below;
    for (size_t i = 0; i < sizeof pad; i++) {
        if (pad[i] != (unsigned char)(seed + i)) return 0xdeadUL;
        sum += pad[i];
    }
    return sum;
}

static void *deep(void *arg) {
    return (void *)(uintptr_t)recurse(400, (uintptr_t)arg); /* ~100 KiB of frames */
}

static void test_deep_recursion(void) {
    aloop_t *loop = vloop();
    aloop_task_t *t[4];
    for (uintptr_t i = 0; i < 4; i++) t[i] = aloop_spawn(loop, deep, (void *)(i + 1));
    CHECK(aloop_run(loop) == 0);
    /* The same computation without any switch in between. */
    for (uintptr_t i = 0; i < 4; i++) {
        void *v = NULL;
        CHECK(aloop_future_result(t[i], &v) == 0);
        CHECK((uintptr_t)v != 0xdeadUL);
        aloop_release(t[i]);
    }
    void *first = NULL, *again = NULL;
    aloop_t *loop2 = vloop();
    aloop_task_t *a = aloop_spawn(loop2, deep, (void *)1);
    aloop_task_t *b = aloop_spawn(loop2, deep, (void *)1);
    CHECK(aloop_run(loop2) == 0);
    CHECK(aloop_future_result(a, &first) == 0 && aloop_future_result(b, &again) == 0);
    CHECK(first == again);
    aloop_release(a);
    aloop_release(b);
    aloop_free(loop2);
    aloop_free(loop);
}

/* Many tasks at once, each sleeping a different virtual time: they finish
 * in deadline order and the clock ends at the longest. */
enum { MANY = 3000 };
static unsigned finished_order[MANY], finished_count;

static void *many_sleeper(void *arg) {
    uintptr_t i = (uintptr_t)arg;
    /* A permutation of 0..MANY-1 (7919 is prime, coprime with MANY). */
    unsigned slot = (unsigned)((i * 7919) % MANY);
    if (aloop_sleep(0.001 * (double)(slot + 1)) != 0) return NULL;
    finished_order[finished_count++] = slot;
    return NULL;
}

static void test_many_tasks(void) {
    aloop_t *loop = vloop();
    finished_count = 0;
    double t0 = aloop_time(loop);
    for (uintptr_t i = 0; i < MANY; i++) {
        aloop_task_t *t = aloop_spawn(loop, many_sleeper, (void *)i);
        if (!t) break;
        aloop_release(t);
    }
    CHECK(aloop_run(loop) == 0);
    CHECK(finished_count == MANY);
    int sorted = 1;
    for (unsigned i = 0; i < finished_count; i++) sorted &= finished_order[i] == i;
    CHECK(sorted);
    double took = aloop_time(loop) - t0;
    CHECK(took > 0.001 * MANY - 0.01 && took < 0.001 * MANY + 0.01);
    aloop_free(loop);
}

#ifdef HAVE_REGS_SURVIVE
static aloop_queue_t *regs_queue;

static int suspend_by_yield(void) {
    return aloop_yield();
}
static int suspend_by_sleep(void) {
    return aloop_sleep(0.001);
}
static int suspend_by_queue_get(void) {
    void *v;
    return aloop_queue_get(regs_queue, &v);
}

struct regs_job {
    uint64_t seed;
    int (*suspend)(void);
    int bad; /* registers found changed, over all rounds */
};

static void *regs_task(void *arg) {
    struct regs_job *j = arg;
    /* First step of the task: sp as the entry point got it, 16-aligned. */
    if (stack_pointer() % 16 != 0) j->bad += 100;
    for (uint64_t round = 0; round < 20; round++)
        j->bad += regs_survive(j->suspend, j->seed + (round << 32));
    return NULL;
}

/* Feeds the queue so that its getters wake one by one. */
static void *regs_feeder(void *arg) {
    for (int i = 0; i < 20 * (int)(uintptr_t)arg; i++) {
        if (aloop_queue_put(regs_queue, NULL) != 0) break;
        if (aloop_yield() != 0) break;
    }
    return NULL;
}

static aloop_t *regs_loop;
static int regs_run_rc = -1;

static int run_regs_loop(void) {
    regs_run_rc = aloop_run(regs_loop);
    return 0;
}

static void test_registers_survive_switches(void) {
    aloop_t *loop = vloop();
    regs_queue = aloop_queue_new(loop, 0);
    CHECK(regs_queue != NULL);
    enum { PER_KIND = 8 };
    int (*kinds[3])(void) = {suspend_by_yield, suspend_by_sleep, suspend_by_queue_get};
    struct regs_job jobs[3 * PER_KIND];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < PER_KIND; i++) {
            struct regs_job *j = &jobs[k * PER_KIND + i];
            j->seed = 0x5a5a000000000000ull + ((uint64_t)(k * PER_KIND + i) << 40);
            j->suspend = kinds[k];
            j->bad = 0;
            aloop_release(aloop_spawn(loop, regs_task, j));
        }
    }
    aloop_release(aloop_spawn(loop, regs_feeder, (void *)(uintptr_t)PER_KIND));
    /* The main context's registers too: the whole run, with its hundreds
     * of switches out of and back into main, happens inside one call. */
    regs_loop = loop;
    CHECK(regs_survive(run_regs_loop, 0x1234ull << 40) == 0);
    CHECK(regs_run_rc == 0);
    int bad = 0;
    for (int i = 0; i < 3 * PER_KIND; i++) bad += jobs[i].bad;
    CHECK(bad == 0);
    aloop_queue_free(regs_queue);
    aloop_free(loop);
}
#endif

int main(void) {
    test_spawn_await();
    test_yield_interleaves();
    test_sleep_virtual_clock();
    test_cancel();
    test_queue();
    test_gather();
    test_deep_recursion();
    test_many_tasks();
#ifdef HAVE_REGS_SURVIVE
    test_registers_survive_switches();
#else
    printf("register checks: not written for this architecture, skipped\n");
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

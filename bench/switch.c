/*
 * switch.c - how fast the scheduler hands the CPU from task to task.
 *
 *   raw_pair     the floor: two hand-made contexts switching to each other
 *                with the library's own switch routine (one pair = there
 *                and back = 2 switches), no scheduler at all;
 *   yield        two tasks calling aloop_yield() in turn (ns per yield);
 *   spawn_await  a task spawning a trivial task and awaiting it, over and
 *                over (steady state: coroutines come from the idle pool);
 *   spawn_batch  spawn 1,000 trivial tasks, then await them all;
 *   spawn_cold   the same in a fresh loop, where every spawn has to map and
 *                prepare a new stack (the first-spawn cost).
 *
 * Every figure is the median of several rounds. Prints a human table and
 * one `RESULT name=... unit=ns value=...` line per figure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

#define ROUNDS 5

/* The asm switch lives in the static library only when the library was
 * built with it (not under -DALOOP_CONTEXT=ucontext): a weak reference lets
 * this program fall back to swapcontext, which is then the real floor. */
extern void aloop__ctx_swap(void **save_sp, void *load_sp) __attribute__((weak));

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ------------------------------------------------------------------------ */
/* The raw floor                                                            */
/* ------------------------------------------------------------------------ */

#define RAW_STACK (64 * 1024)

static struct {
    void *main_sp, *co_sp;      /* asm switch */
    ucontext_t main_uc, co_uc;  /* swapcontext fallback */
    int use_asm;
} raw;

/* The coroutine side: switch straight back, for ever. */
static void raw_entry(void) {
    for (;;) {
        if (raw.use_asm)
            aloop__ctx_swap(&raw.co_sp, raw.main_sp);
        else
            swapcontext(&raw.co_uc, &raw.main_uc);
    }
}

/* Lays out, at the top of the stack, the frame aloop__ctx_swap pops, so
 * that the first switch "returns" into raw_entry with an ABI-aligned stack
 * pointer (as if raw_entry had just been called). */
static void *raw_frame(char *stack) {
    uintptr_t top = ((uintptr_t)stack + RAW_STACK) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* r15 r14 r13 r12 rbx rbp rip; after popping them rsp = top - 8, which
     * is where a call would have left it. */
    uintptr_t *f = (uintptr_t *)top - 8;
    memset(f, 0, 8 * sizeof *f);
    f[6] = (uintptr_t)raw_entry;
    return f;
#elif defined(__aarch64__)
    /* x19..x30 and d8..d15: 20 words; `br x30` with sp = top. */
    uintptr_t *f = (uintptr_t *)top - 20;
    memset(f, 0, 20 * sizeof *f);
    f[11] = (uintptr_t)raw_entry;
    return f;
#else
    (void)top;
    return NULL;
#endif
}

static void raw_setup(char *stack) {
    raw.use_asm = aloop__ctx_swap != NULL && raw_frame(stack) != NULL;
    if (raw.use_asm) {
        raw.co_sp = raw_frame(stack);
        return;
    }
    getcontext(&raw.co_uc);
    raw.co_uc.uc_stack.ss_sp = stack;
    raw.co_uc.uc_stack.ss_size = RAW_STACK;
    raw.co_uc.uc_link = NULL;
    makecontext(&raw.co_uc, raw_entry, 0);
}

/* ns per pair of switches (main -> coroutine -> main). */
static double bench_raw_pair(long n) {
    char *stack = mmap(NULL, RAW_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    raw_setup(stack);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (raw.use_asm)
            aloop__ctx_swap(&raw.main_sp, raw.co_sp);
        else
            swapcontext(&raw.main_uc, &raw.co_uc);
    }
    double ns = (now_ns() - t0) / (double)n;
    /* The coroutine is parked inside its loop; its stack can simply go. */
    munmap(stack, RAW_STACK);
    return ns;
}

/* ------------------------------------------------------------------------ */
/* Through the scheduler                                                    */
/* ------------------------------------------------------------------------ */

static aloop_t *new_loop(void) {
    aloop_t *loop = aloop_new();
    if (!loop) {
        perror("aloop_new");
        exit(1);
    }
    return loop;
}

static void check(int rc, const char *what) {
    if (rc < 0) {
        fprintf(stderr, "switch: %s: %s\n", what, aloop_strerror(rc));
        exit(1);
    }
}

static void *yielder(void *arg) {
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) check(aloop_yield(), "aloop_yield");
    return NULL;
}

/* ns per aloop_yield, two tasks taking turns. */
static double bench_yield(long n) {
    aloop_t *loop = new_loop();
    long each = n / 2;
    aloop_task_t *a = aloop_spawn(loop, yielder, &each);
    aloop_task_t *b = aloop_spawn(loop, yielder, &each);
    if (!a || !b) check(-ENOMEM, "aloop_spawn");
    double t0 = now_ns();
    check(aloop_run(loop), "aloop_run");
    double ns = (now_ns() - t0) / (double)(2 * each);
    aloop_release(a);
    aloop_release(b);
    aloop_free(loop);
    return ns;
}

static void *trivial(void *arg) { return arg; }

struct spawn_job {
    long n;     /* tasks to spawn */
    long batch; /* spawned before awaiting (1 = spawn, await, repeat) */
    double ns;  /* out: ns per task */
};

static void spawn_await_batch(aloop_t *loop, aloop_task_t **ts, long batch) {
    for (long j = 0; j < batch; j++) {
        ts[j] = aloop_spawn(loop, trivial, NULL);
        if (!ts[j]) check(-ENOMEM, "aloop_spawn");
    }
    for (long j = 0; j < batch; j++) {
        check(aloop_await(ts[j], NULL), "aloop_await");
        aloop_release(ts[j]);
    }
}

static void *spawner(void *arg) {
    struct spawn_job *job = arg;
    aloop_t *loop = aloop_current();
    aloop_task_t **ts = malloc((size_t)job->batch * sizeof *ts);
    if (!ts) check(-ENOMEM, "malloc");
    double t0 = now_ns();
    for (long i = 0; i < job->n; i += job->batch) spawn_await_batch(loop, ts, job->batch);
    job->ns = (now_ns() - t0) / (double)job->n;
    free(ts);
    return NULL;
}

/* ns per spawned-and-awaited task; warm = run a round first so every
 * coroutine comes from the idle pool. */
static double bench_spawn(long n, long batch, int warm) {
    aloop_t *loop = new_loop();
    struct spawn_job job = {.n = batch * 4, .batch = batch};
    if (warm) {
        aloop_task_t *w = aloop_spawn(loop, spawner, &job);
        check(aloop_run_until_complete(loop, w), "warm-up");
        aloop_release(w);
    }
    job.n = n;
    aloop_task_t *t = aloop_spawn(loop, spawner, &job);
    check(aloop_run_until_complete(loop, t), "spawn round");
    aloop_release(t);
    aloop_free(loop);
    return job.ns;
}

/* ------------------------------------------------------------------------ */

struct figure {
    const char *name, *what;
    double ns;
};

static int run_only(const char *name, long n) {
    double ns;
    if (!strcmp(name, "raw_pair")) ns = bench_raw_pair(n * 4);
    else if (!strcmp(name, "yield")) ns = bench_yield(n * 4);
    else if (!strcmp(name, "spawn_await")) ns = bench_spawn(n, 1, 1);
    else if (!strcmp(name, "spawn_batch")) ns = bench_spawn(n - n % 1000, 1000, 1);
    else if (!strcmp(name, "spawn_cold")) {
        ns = 0;
        for (long r = 0; r < n / 1000; r++) ns += bench_spawn(1000, 1000, 0) / (double)(n / 1000);
    }
    else return 2;
    printf("RESULT name=%s unit=ns value=%.1f\n", name, ns);
    return 0;
}

static void usage(void) {
    puts("usage: switch [--quick] [-n N] [--only FIGURE]\n"
         "  Measures the raw two-context switch pair, aloop_yield between two\n"
         "  tasks and spawn+await of trivial tasks (default N = 1,000,000;\n"
         "  --quick = 200,000). Prints a table and RESULT lines.");
}

int main(int argc, char **argv) {
    long n = 1000000;
    const char *only = NULL; /* for profiling: run one figure only */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--quick")) {
            n = 200000;
        } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            n = atol(argv[++i]);
        } else {
            usage();
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (n < 2000) n = 2000;
    if (only) return run_only(only, n);

    double raw_v[ROUNDS], yield_v[ROUNDS], seq_v[ROUNDS], batch_v[ROUNDS], cold_v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        raw_v[r] = bench_raw_pair(n * 4);
        yield_v[r] = bench_yield(n * 4);
        seq_v[r] = bench_spawn(n, 1, 1);
        batch_v[r] = bench_spawn(n - n % 1000, 1000, 1);
        cold_v[r] = bench_spawn(1000, 1000, 0);
    }
    struct figure figs[] = {
        {"raw_pair", "raw switch pair (2 switches)", median(raw_v, ROUNDS)},
        {"yield", "aloop_yield, 2 tasks", median(yield_v, ROUNDS)},
        {"spawn_await", "spawn + await, one at a time", median(seq_v, ROUNDS)},
        {"spawn_batch", "spawn 1000, await 1000", median(batch_v, ROUNDS)},
        {"spawn_cold", "spawn + await, fresh stacks", median(cold_v, ROUNDS)},
    };
    size_t nfig = sizeof figs / sizeof figs[0];
    double floor = figs[0].ns;

    printf("switch: n=%ld, median of %d rounds, switch=%s\n", n, ROUNDS,
           raw.use_asm ? "asm" : "swapcontext");
    printf("  %-32s %10s %10s\n", "figure", "ns", "x raw pair");
    for (size_t i = 0; i < nfig; i++)
        printf("  %-32s %10.1f %10.2f\n", figs[i].what, figs[i].ns, figs[i].ns / floor);
    for (size_t i = 0; i < nfig; i++)
        printf("RESULT name=%s unit=ns value=%.1f\n", figs[i].name, figs[i].ns);
    printf("RESULT name=yield_vs_raw unit=ratio value=%.2f\n", figs[1].ns / floor);
    return 0;
}

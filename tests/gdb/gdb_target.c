/*
 * gdb_target.c - a program for tests/gdb/test_gdb.py: tasks suspended in
 * several primitives (a sleep, a queue, an event, a lock, an await), one
 * not started, and the program waiting on stdin outside its loop until the
 * test closes it. Prints "ready PID" when it is there. --no-guard: no
 * guard pages (gcore cannot save stacks with guard regions inside).
 */
#include <aloop.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#define NOINLINE __attribute__((noinline))

/* ASan's shadow memory makes a gcore of this process take minutes. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static aloop_queue_t *q;
static aloop_event_t *ev;
static aloop_lock_t *lock;

static NOINLINE void *napper(void *arg) {
    int rc = aloop_sleep(3600);
    return (void *)((char *)arg + rc);
}
static NOINLINE void *getter(void *arg) {
    void *x = arg;
    int rc = aloop_queue_get(q, &x);
    return (char *)x + rc;
}
static NOINLINE void *waiter(void *arg) {
    int rc = aloop_event_wait(ev);
    return (char *)arg + rc;
}
static NOINLINE void *holder(void *arg) {
    int rc = aloop_lock_acquire(lock);
    rc += aloop_sleep(3600);
    return (char *)arg + rc;
}
static NOINLINE void *locker(void *arg) {
    int rc = aloop_lock_acquire(lock);
    return (char *)arg + rc;
}
static NOINLINE void *awaiter(void *arg) {
    int rc = aloop_await(arg, NULL);
    return (char *)arg + rc;
}

/* The live test's breakpoint: every task is where it will stay. */
NOINLINE void aloop_gdb_target_ready(void);
NOINLINE void aloop_gdb_target_ready(void) { __asm__ volatile(""); }

static aloop_task_t *spawn(aloop_t *loop, aloop_task_fn fn, void *arg, const char *name) {
    aloop_task_t *t = aloop_spawn(loop, fn, arg);
    if (t) aloop_task_set_name(t, name);
    return t;
}

int main(int argc, char **argv) {
#if defined(__linux__) && defined(PR_SET_PTRACER)
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); /* gdb -p, under Yama */
#endif
    /* --no-guard: stacks without guard pages, for gcore (test_gdb.py) */
    aloop_config_t cfg = {0};
    if (argc > 1 && strcmp(argv[1], "--no-guard") == 0) cfg.flags = ALOOP_NO_GUARD_PAGES;
    aloop_t *loop = aloop_new_with(&cfg);
    if (!loop) return 1;
    q = aloop_queue_new(loop, 1);
    ev = aloop_event_new(loop);
    lock = aloop_lock_new(loop);
    aloop_task_t *nap = spawn(loop, napper, NULL, "napper");
    spawn(loop, getter, NULL, "getter");
    spawn(loop, waiter, NULL, "waiter");
    spawn(loop, holder, NULL, "holder");
    spawn(loop, locker, NULL, "locker");
    spawn(loop, awaiter, nap, "awaiter");
    if (aloop_run_once(loop, 0) != 1) return 1; /* each runs and waits */
    spawn(loop, napper, NULL, "unborn");
    aloop_gdb_target_ready();
    printf("ready %d%s\n", (int)getpid(), SANITIZED ? " sanitized" : "");
    fflush(stdout);
    char c;
    if (read(0, &c, 1) < 0) return 1; /* until the test closes stdin */
    return 0; /* the loop and its tasks go with the process */
}

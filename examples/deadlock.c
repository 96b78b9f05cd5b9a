/*
 * deadlock - a program that hangs, to find out why (guide: "Debugging a
 * hung program").
 *
 * Two tellers move money between two accounts, each account behind an
 * aloop_lock. Teller A locks "alice" then "bob"; teller B locks "bob" then
 * "alice". Each pauses between its two locks (an audit), so both hold one
 * and wait for the other for ever. A heartbeat task keeps the loop busy, so
 * the loop cannot tell that the tellers are stuck: the process hangs, as
 * real servers do (their listeners keep the loop alive).
 *
 *   deadlock              hangs; try kill -USR1 with ALOOP_DUMP_SIGNAL=USR1,
 *                         or gdb -p PID and `aloop tasks`
 *   deadlock --watchdog   a watchdog task notices that no transfer finished
 *                         for 5 s, prints aloop_dump, and the program cancels
 *                         its tasks and exits with 1
 *
 * Built with frame pointers and -rdynamic so that the dumps name its
 * functions (examples/CMakeLists.txt).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getpid */
#include <aloop.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORTED __attribute__((noinline, visibility("default")))

typedef struct account {
    const char *name;
    long balance;
    aloop_lock_t *lock;
} account_t;

typedef struct transfer {
    account_t *from, *to;
    long amount;
} transfer_t;

static long transfers_done;
static int stuck; /* the watchdog gave up */

void *teller(void *arg);
int transfer(account_t *from, account_t *to, long amount);
void *heartbeat(void *arg);
void *watchdog(void *arg);

EXPORTED int transfer(account_t *from, account_t *to, long amount) {
    int rc = aloop_lock_acquire(from->lock);
    if (rc < 0) return rc;
    aloop_sleep(0.1); /* the audit: long enough for the other teller to start */
    rc = aloop_lock_acquire(to->lock); /* the other teller holds it: stuck */
    if (rc == 0) {
        from->balance -= amount;
        to->balance += amount;
        aloop_lock_release(to->lock);
        transfers_done++;
    }
    aloop_lock_release(from->lock);
    return rc;
}

EXPORTED void *teller(void *arg) {
    transfer_t *t = arg;
    int rc = transfer(t->from, t->to, t->amount);
    printf("%s -> %s: %s\n", t->from->name, t->to->name, rc == 0 ? "done" : aloop_strerror(rc));
    return NULL;
}

EXPORTED void *heartbeat(void *arg) {
    (void)arg;
    for (;;)
        if (aloop_sleep(1) < 0) return NULL;
}

/* The dump from code: what a program can do when it notices that it makes
 * no progress. */
EXPORTED void *watchdog(void *arg) {
    (void)arg;
    long seen = -1;
    while (seen != transfers_done) {
        seen = transfers_done;
        if (aloop_sleep(5) < 0) return NULL;
    }
    fprintf(stderr, "watchdog: no transfer finished in 5 s; the tasks are:\n");
    aloop_dump(aloop_current(), stderr);
    stuck = 1;
    aloop_stop(aloop_current());
    return NULL;
}

int main(int argc, char **argv) {
    int with_watchdog = argc > 1 && strcmp(argv[1], "--watchdog") == 0;
    if (argc > 1 && !with_watchdog) {
        fprintf(stderr, "usage: deadlock [--watchdog]\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    aloop_t *loop = aloop_new();
    if (!loop) return 1;
    account_t alice = {"alice", 100, aloop_lock_new(loop)};
    account_t bob = {"bob", 100, aloop_lock_new(loop)};
    transfer_t a = {&alice, &bob, 10}, b = {&bob, &alice, 20};
    aloop_task_t *tasks[4] = {aloop_spawn(loop, teller, &a), aloop_spawn(loop, teller, &b),
                              aloop_spawn(loop, heartbeat, NULL), NULL};
    aloop_task_set_name(tasks[0], "teller-A");
    aloop_task_set_name(tasks[1], "teller-B");
    aloop_task_set_name(tasks[2], "heartbeat");
    if (with_watchdog) {
        tasks[3] = aloop_spawn(loop, watchdog, NULL);
        aloop_task_set_name(tasks[3], "watchdog");
    }
    printf("pid %d: moving money...\n", (int)getpid());
    fflush(stdout);
    aloop_run(loop); /* without the watchdog, never returns: the tellers wait for each other */
    /* The watchdog stopped the loop: cancel the stuck tasks (each gives back
     * the lock it holds) and clean up. */
    for (int i = 0; i < 4; i++)
        if (tasks[i]) aloop_cancel(tasks[i]);
    aloop_run(loop);
    for (int i = 0; i < 4; i++)
        if (tasks[i]) aloop_release(tasks[i]);
    aloop_lock_free(alice.lock);
    aloop_lock_free(bob.lock);
    aloop_free(loop);
    return stuck ? 1 : 0;
}

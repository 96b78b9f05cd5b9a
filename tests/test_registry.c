/* Tests for src/core/registry.c: the loops alive in the process. A loop
 * freed on one thread while another thread posts to it, while a dump
 * signal writes to its wake-up fd, while another loop reading SIGCHLD
 * kicks it, or while its pool job completes: nothing touches the loop, nor its fd number, once aloop_free
 * has taken it out (ASan would report a use after free; a write to the
 * reused fd number is caught below). And the registry after fork. */
#include "aloop_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "registry_internal.h"

/* ---- posts from other threads while the loop is freed ------------------- */

#define POSTERS 3

typedef struct post_race {
    aloop_t *loop;
    atomic_int ran;        /* callbacks that ran */
    atomic_int accepted;   /* posts that were told 0 */
    atomic_int started;    /* posters with one post accepted */
} post_race_t;

static void count_run(void *arg) { atomic_fetch_add(&((post_race_t *)arg)->ran, 1); }

static void *poster_main(void *arg) {
    post_race_t *r = arg;
    int first = 1;
    for (;;) {
        int rc = aloop_call_soon_threadsafe(r->loop, count_run, r);
        if (rc == -EPIPE) return NULL; /* freed: the only other answer */
        assert_int_equal(rc, 0);
        atomic_fetch_add(&r->accepted, 1);
        if (first) atomic_fetch_add(&r->started, 1);
        first = 0;
    }
}

static void test_posts_while_freed_on_another_thread(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) {
        post_race_t r = {.loop = aloop_new()};
        assert_non_null(r.loop);
        pthread_t th[POSTERS];
        for (int i = 0; i < POSTERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, poster_main, &r), 0);
        while (atomic_load(&r.started) < POSTERS) sched_yield(); /* all of them in flight */
        aloop_free(r.loop);
        for (int i = 0; i < POSTERS; i++) pthread_join(th[i], NULL);
        /* every accepted post ran (aloop_free runs them), none after */
        assert_int_equal(atomic_load(&r.ran), atomic_load(&r.accepted));
        assert_int_equal(aloop__loops_hold(r.loop), 0);
    }
}

/* ---- dump requests while the loop is freed ------------------------------ */

typedef struct dump_race {
    atomic_int stop;
    atomic_uint raised;
} dump_race_t;

/* Raises the dump signal at itself: its handler runs on this thread, in
 * parallel with the freeing one, and has run when raise returns. */
static void *dump_signaller(void *arg) {
    dump_race_t *d = arg;
    while (!atomic_load(&d->stop)) {
        raise(SIGUSR1);
        atomic_fetch_add(&d->raised, 1);
    }
    return NULL;
}

static void test_dump_request_while_freed(void **state) {
    (void)state;
    int err = open("/dev/null", O_WRONLY); /* the loops' dumps go to stderr */
    int saved_err = dup(2);
    assert_true(err >= 0 && saved_err >= 0);
    dup2(err, 2);
    assert_int_equal(aloop_dump_on_signal(SIGUSR1), 0);
    dump_race_t d = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dump_signaller, &d), 0);
    for (int round = 0; round < 50; round++) {
        aloop_t *loop = aloop_new();
        assert_non_null(loop);
        int wake = aloop__async_wake_fd(loop);
        unsigned before = atomic_load(&d.raised);
        while (atomic_load(&d.raised) < before + 2) sched_yield(); /* handlers in flight */
        aloop_free(loop);
        /* The number is free now: whoever gets it next must not receive
         * a handler's write meant for the freed loop. */
        int p[2];
        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        if (p[0] == wake) { /* the pipe took the freed number: its read end moves away */
            int moved = fcntl(p[0], F_DUPFD_CLOEXEC, wake + 1);
            assert_true(moved > wake);
            close(p[0]);
            p[0] = moved;
        }
        if (p[1] != wake) assert_int_equal(dup2(p[1], wake), wake);
        before = atomic_load(&d.raised);
        while (atomic_load(&d.raised) < before + 2) sched_yield(); /* whole handlers since */
        char buf[16];
        assert_int_equal(read(p[0], buf, sizeof buf), -1);
        assert_int_equal(errno, EAGAIN);
        if (p[1] != wake) close(wake);
        close(p[0]);
        close(p[1]);
    }
    atomic_store(&d.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(aloop_dump_on_signal(0), 0);
    dup2(saved_err, 2);
    close(saved_err);
    close(err);
}

/* ---- SIGCHLD read by one loop while another is freed -------------------- */

static void *spawn_and_wait(void *arg) {
    int *n = arg;
    char *argv[] = {"true", NULL};
    for (int i = 0; i < *n; i++) {
        aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, NULL);
        assert_non_null(p);
        int status = -1;
        assert_int_equal(aloop_process_wait(p, &status), 0);
        assert_int_equal(status, 0);
        aloop_process_free(p);
    }
    return NULL;
}

typedef struct chld_race {
    atomic_int done;
} chld_race_t;

/* Loops that come and go, each on the SIGCHLD path with a child of its own. */
static void *short_lived_loops(void *arg) {
    chld_race_t *c = arg;
    int one = 1;
    for (int round = 0; round < 30; round++) {
        aloop_t *loop = aloop_new();
        assert_non_null(loop);
        aloop_task_t *t = aloop_spawn(loop, spawn_and_wait, &one);
        assert_non_null(t);
        assert_int_equal(aloop_run_until_complete(loop, t), 0);
        aloop_release(t);
        aloop_free(loop);
    }
    atomic_store(&c->done, 1);
    return NULL;
}

static void *spawn_until_done(void *arg) {
    chld_race_t *c = arg;
    int one = 1;
    while (!atomic_load(&c->done)) spawn_and_wait(&one); /* reads SIGCHLDs, kicks the others */
    return NULL;
}

static void test_sigchld_while_freed(void **state) {
    (void)state;
    setenv("ALOOP_NO_PIDFD", "1", 1);
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    chld_race_t c = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, short_lived_loops, &c), 0);
    aloop_task_t *t = aloop_spawn(loop, spawn_until_done, &c);
    assert_non_null(t);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    pthread_join(th, NULL);
    aloop_free(loop);
    unsetenv("ALOOP_NO_PIDFD");
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* every child reaped */
    assert_int_equal(errno, ECHILD);
}

/* ---- a pool job that completes while its loop is freed ------------------ */

typedef struct job_race {
    int gate[2];          /* the job blocks until a byte comes */
    atomic_int started;
    atomic_int handled;   /* results freed: by the task or by discard */
} job_race_t;

static void *gated_job(void *arg) {
    job_race_t *r = arg;
    atomic_store(&r->started, 1);
    char c;
    ssize_t n = read(r->gate[0], &c, 1);
    (void)n;
    return malloc(16);
}

static void discard_result(void *result, void *arg) {
    free(result);
    atomic_fetch_add(&((job_race_t *)arg)->handled, 1);
}

static void *job_caller(void *arg) {
    job_race_t *r = arg;
    void *result = NULL;
    if (aloop_run_in_thread_with(gated_job, r, discard_result, &result) == 0) {
        free(result);
        atomic_fetch_add(&r->handled, 1);
    }
    return NULL;
}

static void *open_gate(void *arg) {
    job_race_t *r = arg;
    ssize_t n = write(r->gate[1], "x", 1); /* races the free on the main thread */
    (void)n;
    return NULL;
}

static void test_pool_completion_while_freed(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) {
        job_race_t r = {0};
        assert_int_equal(pipe(r.gate), 0);
        aloop_t *loop = aloop_new();
        assert_non_null(loop);
        aloop_task_t *t = aloop_spawn(loop, job_caller, &r);
        assert_non_null(t);
        while (!atomic_load(&r.started)) assert_true(aloop_run_once(loop, 0) >= 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, open_gate, &r), 0);
        aloop_release(t);
        aloop_free(loop); /* cancels the caller; the job finishes during or before */
        pthread_join(th, NULL);
        /* a job still running after the pool's grace is left to its worker,
         * which discards the result when it ends */
        while (!atomic_load(&r.handled)) sched_yield();
        assert_int_equal(atomic_load(&r.handled), 1); /* its result freed exactly once */
        close(r.gate[0]);
        close(r.gate[1]);
    }
}

/* ---- the rule itself ---------------------------------------------------- */

/* Alive from aloop_new to aloop_free; a hold keeps the lock shared, so
 * holds of two threads run in parallel. */
static void *hold_elsewhere(void *arg) {
    int ok = aloop__loops_hold(arg);
    if (ok) aloop__loops_release();
    return (void *)(intptr_t)ok;
}

static void test_alive_from_new_to_free(void **state) {
    (void)state;
    aloop_t *a = aloop_new(), *b = aloop_new();
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(aloop__loops_hold(NULL), 0);
    assert_int_equal(aloop__loops_hold(a), 1);
    pthread_t th;
    void *res = NULL;
    assert_int_equal(pthread_create(&th, NULL, hold_elsewhere, b), 0);
    pthread_join(th, &res); /* another thread's hold while this one holds */
    assert_int_equal((intptr_t)res, 1);
    aloop__loops_release();
    aloop_free(a);
    assert_int_equal(aloop__loops_hold(a), 0);
    assert_int_equal(aloop_call_soon_threadsafe(a, count_run, NULL), -EPIPE);
    assert_int_equal(aloop__loops_hold(b), 1);
    aloop__loops_release();
    aloop_free(b);
}

/* A fork while another thread holds a loop: the child's registry is free
 * (its loops can be freed, new ones made), and so is the parent's once the
 * hold ends. */
typedef struct fork_hold {
    aloop_t *loop;
    atomic_int holding, release;
} fork_hold_t;

static void *hold_until_told(void *arg) {
    fork_hold_t *f = arg;
    assert_int_equal(aloop__loops_hold(f->loop), 1);
    atomic_store(&f->holding, 1);
    while (!atomic_load(&f->release)) sched_yield();
    aloop__loops_release();
    return NULL;
}

static void *fork_child_check(void *arg) {
    aloop_t *parent_loop = arg;
    pid_t pid = fork(); /* waits for the hold to end (pthread_atfork) */
    assert_true(pid >= 0);
    if (pid == 0) {
        aloop_t *mine = aloop_new();
        int ok = mine && aloop__loops_hold(parent_loop) == 1;
        if (ok) aloop__loops_release();
        aloop_free(mine);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return (void *)(intptr_t)(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_fork_while_held(void **state) {
    (void)state;
    fork_hold_t f = {.loop = aloop_new()};
    assert_non_null(f.loop);
    pthread_t holder, forker;
    assert_int_equal(pthread_create(&holder, NULL, hold_until_told, &f), 0);
    while (!atomic_load(&f.holding)) sched_yield();
    assert_int_equal(pthread_create(&forker, NULL, fork_child_check, f.loop), 0);
    atomic_store(&f.release, 1);
    void *ok = NULL;
    pthread_join(forker, &ok);
    pthread_join(holder, NULL);
    assert_int_equal((intptr_t)ok, 1);
    aloop_free(f.loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alive_from_new_to_free),
        cmocka_unit_test(test_posts_while_freed_on_another_thread),
        cmocka_unit_test(test_dump_request_while_freed),
        cmocka_unit_test(test_sigchld_while_freed),
        cmocka_unit_test(test_pool_completion_while_freed),
        cmocka_unit_test(test_fork_while_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

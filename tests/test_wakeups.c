/*
 * test_wakeups.c - white-box tests of the core's wake-up protocol (sched.c:
 * aloop__wait_in and friends, io.c's fd generations): what a waiter that
 * was woken but has not run yet sees when its object is freed or closed
 * before it runs.
 *
 * One table: for every primitive a task can wait on, a waiter suspends, a
 * second task wakes it (grants it the object, or makes its fd ready) and in
 * the same step frees or closes the object, so the waiter is woken but not
 * run. The waiter must then return the documented result without touching
 * freed memory (ASan) or an fd number that now belongs to someone else.
 * (A child process's exit is seen by the poll, not caused by a task: there
 * a task that waited first is woken first and frees the handle.)
 *
 * Signal waits (the core's wait on several lists) have their own rows
 * below: a signal is read by the poll, not granted by a task, so a library
 * listener (process.c's kind) wakes a task just before the signal's
 * waiters. Not covered here: worker jobs (threadpool.c, see
 * test_threadpool.c).
 */
#include "aloop_test.h"

#include "internal.h"
#include "backend_internal.h"
#include "signal_internal.h"

#include <signal.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct wk {
    aloop_lock_t *lock;
    aloop_event_t *ev;
    aloop_semaphore_t *sem;
    aloop_cond_t *cond;
    aloop_queue_t *q;
    aloop_stream_t *stream;
    aloop_barrier_t *barrier;
    aloop_process_t *proc;
    int sv[2];     /* the waiter's socket pair */
    int nv[2];     /* the pair that takes over the fd number */
    char buf[256 * 1024];
    void *item;
    int rc;        /* the waiter's result */
    int done;
} wk_t;

typedef struct wk_case {
    const char *name;
    void (*setup)(wk_t *k);         /* in a task, before the waiter runs */
    int (*wait)(wk_t *k);           /* the waiter's call */
    void (*wake_and_free)(wk_t *k); /* wakes the waiter, frees / closes */
    int expect;
    void (*check)(wk_t *k);         /* after the waiter returned (may be NULL) */
} wk_case_t;

static const char SECRET[] = "SECRET for the new connection";

static void pair(int sv[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
}

/* A new connection lands on the number fd had: the lowest free one. */
static void reuse_number(wk_t *k, int fd) {
    pair(k->nv);
    assert_int_equal(k->nv[0], fd);
    assert_int_equal(send(k->nv[1], SECRET, sizeof SECRET, 0), (ssize_t)sizeof SECRET);
}

/* The new connection's data is all there: the old waiter did not read it. */
static void check_secret_kept(wk_t *k) {
    char got[64];
    assert_int_equal(recv(k->nv[0], got, sizeof got, MSG_DONTWAIT), (ssize_t)sizeof SECRET);
    assert_memory_equal(got, SECRET, sizeof SECRET);
    close(k->nv[0]);
    close(k->nv[1]);
    close(k->sv[1]);
}

/* Nothing the old writer had was sent to the new connection's peer. */
static void check_nothing_sent(wk_t *k) {
    char got[64];
    ssize_t n = recv(k->nv[1], got, sizeof got, MSG_DONTWAIT);
    assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    close(k->nv[0]);
    close(k->nv[1]);
    close(k->sv[1]);
}

/* ---- lock: woken as the owner, freed */
static void lock_setup(wk_t *k) {
    assert_non_null(k->lock = aloop_lock_new(aloop_current()));
    assert_int_equal(aloop_lock_acquire(k->lock), 0);
}
static int lock_wait(wk_t *k) { return aloop_lock_acquire(k->lock); }
static void lock_free_now(wk_t *k) {
    aloop_lock_release(k->lock); /* the waiter owns it now */
    aloop_lock_free(k->lock);
}

/* ---- barrier: the round completes (the waiter is released with its
 * arrival index), freed: a released waiter never touches it again */
static void bar_setup(wk_t *k) { assert_non_null(k->barrier = aloop_barrier_new(aloop_current(), 2)); }
static int bar_wait(wk_t *k) { return aloop_barrier_wait(k->barrier); }
static void bar_free_now(wk_t *k) {
    assert_int_equal(aloop_barrier_wait(k->barrier), 1); /* the last one: does not suspend */
    aloop_barrier_free(k->barrier);
}

/* ---- child process: reaped, freed by a task the reap woke first (it
 * waited first); the waiter is woken but has not run: the handle stays
 * until it has left, with the status */
static void *proc_first_waiter(void *arg) {
    wk_t *k = arg;
    assert_int_equal(aloop_process_wait(k->proc, NULL), 0);
    aloop_process_free(k->proc);
    return NULL;
}
static void proc_setup(wk_t *k) {
    char *argv[] = {"cat", NULL};
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE};
    assert_non_null(k->proc = aloop_process_spawn(aloop_current(), argv, &o));
    aloop_release(spawn(aloop_current(), proc_first_waiter, k));
    aloop_yield(); /* it waits first */
}
static int proc_wait(wk_t *k) {
    int status = -1;
    int rc = aloop_process_wait(k->proc, &status);
    return rc == 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1000;
}
static void proc_free_later(wk_t *k) {
    assert_int_equal(aloop_close(aloop_process_take_fd(k->proc, 0)), 0); /* cat exits */
}

/* ---- semaphore: woken with a unit, freed */
static void sem_setup(wk_t *k) { assert_non_null(k->sem = aloop_semaphore_new(aloop_current(), 0)); }
static int sem_wait(wk_t *k) { return aloop_semaphore_acquire(k->sem); }
static void sem_free_now(wk_t *k) {
    aloop_semaphore_release(k->sem);
    aloop_semaphore_free(k->sem);
}

/* ---- event: woken by set, freed (the waiter never touches it again) */
static void ev_setup(wk_t *k) { assert_non_null(k->ev = aloop_event_new(aloop_current())); }
static int ev_wait(wk_t *k) { return aloop_event_wait(k->ev); }
static void ev_free_now(wk_t *k) {
    aloop_event_set(k->ev);
    aloop_event_free(k->ev);
}

/* ---- condition with its own lock: notify_all, release, free:
 * the waiter must not take the freed lock again */
static void cond_setup(wk_t *k) { assert_non_null(k->cond = aloop_cond_new(aloop_current(), NULL)); }
static int cond_wait(wk_t *k) {
    aloop_lock_t *l = aloop_cond_lock(k->cond);
    assert_int_equal(aloop_lock_acquire(l), 0);
    return aloop_cond_wait(k->cond);
}
static void cond_free_now(wk_t *k) {
    aloop_lock_t *l = aloop_cond_lock(k->cond);
    assert_int_equal(aloop_lock_acquire(l), 0);
    assert_int_equal(aloop_cond_notify_all(k->cond), 1);
    aloop_lock_release(l);
    aloop_cond_free(k->cond);
}

/* ---- condition on the caller's lock: the lock lives on; not held */
static void cond_ext_setup(wk_t *k) {
    assert_non_null(k->lock = aloop_lock_new(aloop_current()));
    assert_non_null(k->cond = aloop_cond_new(aloop_current(), k->lock));
}
static void cond_ext_free_now(wk_t *k) {
    assert_int_equal(aloop_lock_acquire(k->lock), 0);
    aloop_cond_notify_all(k->cond);
    aloop_lock_release(k->lock);
    aloop_cond_free(k->cond);
}
static void cond_ext_check(wk_t *k) {
    assert_false(aloop_lock_locked(k->lock));
    aloop_lock_free(k->lock);
}

/* ---- queue getter: handed an item, queue freed: the item is its own */
static void qget_setup(wk_t *k) { assert_non_null(k->q = aloop_queue_new(aloop_current(), 0)); }
static int qget_wait(wk_t *k) { return aloop_queue_get(k->q, &k->item); }
static void qget_free_now(wk_t *k) {
    assert_int_equal(aloop_queue_put_nowait(k->q, (void *)SECRET), 0);
    aloop_queue_free(k->q);
}
static void qget_check(wk_t *k) { assert_ptr_equal(k->item, SECRET); }

/* ---- queue putter: granted a slot, queue freed */
static void qput_setup(wk_t *k) {
    assert_non_null(k->q = aloop_queue_new(aloop_current(), 1));
    assert_int_equal(aloop_queue_put_nowait(k->q, k), 0);
}
static int qput_wait(wk_t *k) { return aloop_queue_put(k->q, k); }
static void qput_free_now(wk_t *k) {
    void *item;
    assert_int_equal(aloop_queue_get_nowait(k->q, &item), 0); /* a slot for the putter */
    aloop_queue_free(k->q);
}

/* ---- queue joiner: woken by the last task_done, queue freed */
static void qjoin_setup(wk_t *k) {
    assert_non_null(k->q = aloop_queue_new(aloop_current(), 0));
    assert_int_equal(aloop_queue_put_nowait(k->q, k), 0);
}
static int qjoin_wait(wk_t *k) { return aloop_queue_join(k->q); }
static void qjoin_free_now(wk_t *k) {
    void *item;
    assert_int_equal(aloop_queue_get_nowait(k->q, &item), 0);
    aloop_queue_task_done(k->q);
    aloop_queue_free(k->q);
}

/* ---- fd read: woken readable, aloop_close, the number reused */
static void rd_setup(wk_t *k) { pair(k->sv); }
static int rd_wait(wk_t *k) {
    ssize_t n = aloop_read(k->sv[0], k->buf, sizeof k->buf);
    return n < 0 ? (int)n : 0;
}
static void rd_close_now(wk_t *k) {
    int fd = k->sv[0];
    aloop__io_ready(aloop_current(), fd, ALOOP__IO_READ); /* the poll says: readable */
    assert_int_equal(aloop_close(fd), 0);
    reuse_number(k, fd);
}

/* ---- fd write: a writer inside aloop_write_all woken writable, closed,
 * the number reused: nothing of the old data may reach the new peer */
static void wr_setup(wk_t *k) {
    pair(k->sv);
    memset(k->buf, 'x', sizeof k->buf);
    while (send(k->sv[0], k->buf, sizeof k->buf, MSG_DONTWAIT) > 0) {
    }
}
static int wr_wait(wk_t *k) {
    ssize_t n = aloop_write_all(k->sv[0], k->buf, sizeof k->buf);
    return n < 0 ? (int)n : 0;
}
static void wr_close_now(wk_t *k) {
    int fd = k->sv[0];
    aloop__io_ready(aloop_current(), fd, ALOOP__IO_WRITE);
    assert_int_equal(aloop_close(fd), 0);
    pair(k->nv);
    assert_int_equal(k->nv[0], fd);
}

/* ---- stream: a reader woken readable, aloop_stream_close, number reused */
static void st_setup(wk_t *k) {
    pair(k->sv);
    assert_non_null(k->stream = aloop_stream_new(aloop_current(), k->sv[0], 0));
}
static int st_wait(wk_t *k) {
    ssize_t n = aloop_stream_readexactly(k->stream, k->buf, 10);
    return n < 0 ? (int)n : 0;
}
static void st_close_now(wk_t *k) {
    int fd = k->sv[0];
    aloop__io_ready(aloop_current(), fd, ALOOP__IO_READ);
    assert_int_equal(aloop_stream_close(k->stream), 0);
    reuse_number(k, fd);
}

static const wk_case_t cases[] = {
    {"lock", lock_setup, lock_wait, lock_free_now, -EPIPE, NULL},
    {"semaphore", sem_setup, sem_wait, sem_free_now, -EPIPE, NULL},
    {"event", ev_setup, ev_wait, ev_free_now, 0, NULL},
    {"barrier", bar_setup, bar_wait, bar_free_now, 0, NULL},
    {"child process", proc_setup, proc_wait, proc_free_later, 0, NULL},
    {"cond (own lock)", cond_setup, cond_wait, cond_free_now, -EPIPE, NULL},
    {"cond (caller's lock)", cond_ext_setup, cond_wait, cond_ext_free_now, -EPIPE, cond_ext_check},
    {"queue get", qget_setup, qget_wait, qget_free_now, 0, qget_check},
    {"queue put", qput_setup, qput_wait, qput_free_now, -EPIPE, NULL},
    {"queue join", qjoin_setup, qjoin_wait, qjoin_free_now, 0, NULL},
    {"fd read", rd_setup, rd_wait, rd_close_now, -EBADF, check_secret_kept},
    {"fd write", wr_setup, wr_wait, wr_close_now, -EBADF, check_nothing_sent},
    {"stream read", st_setup, st_wait, st_close_now, -EBADF, check_secret_kept},
};

typedef struct run {
    const wk_case_t *c;
    wk_t *k;
} run_t;

static void *waiter(void *arg) {
    run_t *r = arg;
    r->k->rc = r->c->wait(r->k);
    r->k->done = 1;
    return NULL;
}

static void *driver(void *arg) {
    run_t *r = arg;
    r->c->setup(r->k);
    aloop_task_t *w = aloop_spawn(aloop_current(), waiter, r);
    assert_non_null(w);
    aloop_yield(); /* the waiter runs and suspends */
    assert_false(r->k->done);
    r->c->wake_and_free(r->k); /* one step: the waiter is woken, not run */
    assert_false(r->k->done);
    assert_int_equal(aloop_await(w, NULL), 0);
    aloop_release(w);
    return NULL;
}

static void test_free_or_close_while_woken(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static wk_t k;
        memset(&k, 0, sizeof k);
        run_t r = {&cases[i], &k};
        aloop_t *loop = vloop();
        aloop_task_t *d = spawn(loop, driver, &r);
        run_and_release(loop, &d, 1);
        aloop_free(loop);
        print_message("%-22s -> %d\n", cases[i].name, k.rc);
        assert_true(k.done);
        assert_int_equal(k.rc, cases[i].expect);
        if (cases[i].check) cases[i].check(&k);
    }
}

/* Woken with a grant, then cancelled before it ran: the core's undo hands
 * the grant on, so the next waiter gets the lock. */
typedef struct taker {
    aloop_lock_t *lock;
    int rc;
} taker_t;

static void *lock_taker(void *arg) {
    taker_t *t = arg;
    t->rc = aloop_lock_acquire(t->lock);
    if (t->rc == 0) aloop_lock_release(t->lock);
    return NULL;
}

static void *undo_driver(void *arg) {
    taker_t *ts = arg;
    assert_int_equal(aloop_lock_acquire(ts[0].lock), 0);
    aloop_task_t *a = aloop_spawn(aloop_current(), lock_taker, &ts[0]);
    aloop_task_t *b = aloop_spawn(aloop_current(), lock_taker, &ts[1]);
    aloop_yield(); /* both wait, a first */
    aloop_lock_release(ts[0].lock); /* a owns it now, but has not run */
    aloop_cancel(a);
    aloop_await(a, NULL);
    assert_int_equal(aloop_await(b, NULL), 0);
    aloop_release(a);
    aloop_release(b);
    return NULL;
}

static void test_cancel_after_grant_hands_on(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_lock_t *lock = aloop_lock_new(loop);
    taker_t ts[2] = {{lock, 1}, {lock, 1}};
    aloop_task_t *d = spawn(loop, undo_driver, ts);
    run_and_release(loop, &d, 1);
    assert_int_equal(ts[0].rc, -ECANCELED);
    assert_int_equal(ts[1].rc, 0);
    assert_false(aloop_lock_locked(lock));
    aloop_lock_free(lock);
    aloop_free(loop);
}

/* aloop_stream_close after aloop_free: the stream forgot the loop; closing
 * it closes the fd and frees it (ASan: no use of the freed loop). */
static void test_stream_close_after_loop_free(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    aloop_t *loop = vloop();
    aloop_stream_t *s = aloop_stream_new(loop, sv[0], 0);
    assert_non_null(s);
    aloop_free(loop);
    assert_int_equal(aloop_stream_close(s), 0);
    assert_int_equal(fcntl(sv[0], F_GETFD), -1); /* closed */
    close(sv[1]);
}

/* close(2) (not aloop_close) on an fd a task waits on: documented misuse.
 * Both backends wake the waiter with -EBADF: poll(2) says POLLNVAL at
 * once; epoll forgets the fd silently, so the loop checks waited fds after
 * ALOOP_FD_SWEEP (1 s) without events (else epoll would hang for ever and
 * poll(2) return 0). */
static void *close2_waiter(void *arg) {
    int *fds = arg;
    return (void *)(intptr_t)aloop_wait_readable(fds[0], -1);
}

static void *close2_driver(void *arg) {
    int *fds = arg;
    aloop_task_t *w = aloop_spawn(aloop_current(), close2_waiter, fds);
    aloop_yield();
    close(fds[0]); /* behind the loop's back */
    void *r;
    assert_int_equal(aloop_await(w, &r), 0);
    aloop_release(w);
    return r;
}

static void test_close2_wakes_waiter_with_ebadf(void **state) {
    (void)state;
    int sv[2];
    pair(sv);
    aloop_t *loop = vloop();
    aloop_task_t *d = spawn(loop, close2_driver, sv);
    assert_int_equal(aloop_run(loop), 0);
    void *r;
    assert_int_equal(aloop_future_result(d, &r), 0);
    assert_int_equal((intptr_t)r, -EBADF);
    aloop_release(d);
    aloop_free(loop);
    close(sv[1]);
}

/* close(2), then the number reused by a file the loop never saw: epoll can
 * tell (the new file is not in its set); poll(2) polls whatever the number
 * is now, so the case is skipped there (documented in the guide). */
static void *reuse2_driver(void *arg) {
    int *fds = arg;
    aloop_task_t *w = aloop_spawn(aloop_current(), close2_waiter, fds);
    aloop_yield();
    int old = fds[0];
    close(old);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds + 2), 0);
    assert_int_equal(fds[2], old); /* a new file under the waited number */
    void *r;
    assert_int_equal(aloop_await(w, &r), 0);
    aloop_release(w);
    return r;
}

static void test_close2_and_reuse_on_epoll(void **state) {
    (void)state;
    int fds[4];
    pair(fds);
    aloop_t *loop = vloop();
    if (aloop_backend_fd(loop) == -ENOTSUP) { /* poll(2): not detectable */
        aloop_free(loop);
        close(fds[0]);
        close(fds[1]);
        skip();
    }
    aloop_task_t *d = spawn(loop, reuse2_driver, fds);
    assert_int_equal(aloop_run(loop), 0);
    void *r;
    assert_int_equal(aloop_future_result(d, &r), 0);
    assert_int_equal((intptr_t)r, -EBADF);
    aloop_release(d);
    aloop_free(loop);
    close(fds[1]);
    close(fds[2]);
    close(fds[3]);
}

/* ---- signals. The victim waits for SIGUSR1 or SIGUSR2 (one entry on
 * each signal's list); `first` is woken by a library listener on SIGUSR1,
 * which runs before the signal's waiters wake, so in the step the signal
 * is read, `first` runs before the victim. */
typedef struct sigk {
    aloop_task_t *victim;
    aloop_event_t *ev;  /* set by the listener */
    int peer_waits;     /* a second waiter for SIGUSR1, woken before the victim */
    int stop;           /* first stops the loop instead of cancelling the victim */
    int rc, peer_rc;    /* the victim's and the peer's results */
} sigk_t;
static sigk_t *sigk_now;

static void sig_listener(aloop_t *loop) {
    (void)loop;
    aloop_event_set(sigk_now->ev);
}

static void *sig_victim(void *arg) {
    sigk_t *k = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    k->rc = aloop_signal_wait_any(&set);
    return NULL;
}

static void *sig_peer(void *arg) {
    sigk_t *k = arg;
    k->peer_rc = aloop_signal_wait(SIGUSR1);
    return NULL;
}

static void *sig_first(void *arg) {
    sigk_t *k = arg;
    assert_int_equal(aloop_event_wait(k->ev), 0);
    aloop__signal_unsubscribe(aloop_current(), SIGUSR1);
    if (k->stop)
        aloop_stop(aloop_current());
    else
        aloop_cancel(k->victim);
    return NULL;
}

/* Runs until the victim (and the peer) wait, then raises SIGUSR1. */
static aloop_t *sig_setup(sigk_t *k) {
    aloop_t *loop = vloop();
    sigk_now = k;
    assert_non_null(k->ev = aloop_event_new(loop));
    assert_int_equal(aloop__signal_subscribe(loop, SIGUSR1, sig_listener), 0);
    aloop_release(aloop_spawn(loop, sig_first, k));
    if (k->peer_waits) aloop_release(aloop_spawn(loop, sig_peer, k));
    assert_non_null(k->victim = aloop_spawn(loop, sig_victim, k));
    k->rc = k->peer_rc = 1;
    assert_int_equal(aloop_run_once(loop, 0), 1); /* all wait */
    assert_int_equal(k->rc, 1);
    raise(SIGUSR1); /* blocked by the waits: read by the next poll */
    return loop;
}

static void *wait_usr1(void *arg) {
    (void)arg;
    return (void *)(intptr_t)aloop_signal_wait(SIGUSR1);
}

static void *usr1_within_10s(void *arg) {
    int *rc = arg;
    aloop_task_t *w = aloop_spawn(aloop_current(), wait_usr1, NULL);
    void *r = NULL;
    *rc = aloop_wait_for(w, 10, &r);
    if (*rc == 0) *rc = (int)(intptr_t)r;
    aloop_release(w);
    return NULL;
}

/* A new wait for SIGUSR1, limited to 10 s of virtual time: 0 if the
 * signal is pending, -ETIMEDOUT if none comes. */
static int next_usr1_wait(aloop_t *loop) {
    int rc = 1;
    aloop_task_t *t = spawn(loop, usr1_within_10s, &rc);
    run_and_release(loop, &t, 1);
    return rc;
}

static void sig_teardown(aloop_t *loop, sigk_t *k) {
    aloop_release(k->victim);
    aloop_event_free(k->ev);
    aloop_free(loop);
}

/* Woken by the signal, cancelled before it ran: -ECANCELED, and the
 * signal is not lost: as no other task received it, it is raised again
 * for the next wait (once). Had another task received it, it is not. */
static void test_signal_grant_then_cancel(void **state) {
    (void)state;
    sigk_t k = {0};
    aloop_t *loop = sig_setup(&k);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(k.rc, -ECANCELED);
    assert_int_equal(next_usr1_wait(loop), 0);
    assert_int_equal(next_usr1_wait(loop), -ETIMEDOUT); /* not twice */
    sig_teardown(loop, &k);

    sigk_t p = {.peer_waits = 1};
    loop = sig_setup(&p);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(p.rc, -ECANCELED);
    assert_int_equal(p.peer_rc, 0);
    assert_int_equal(next_usr1_wait(loop), -ETIMEDOUT);
    sig_teardown(loop, &p);
}

/* Woken by the signal, the loop freed before it ran: aloop_free cancels
 * it (-ECANCELED) and the signal, raised again, reaches the process's own
 * disposition once the loop unblocks it (as any signal left pending). */
static volatile sig_atomic_t usr1_handled;
static void count_usr1(int signo) {
    (void)signo;
    usr1_handled++;
}

static void test_signal_grant_then_free(void **state) {
    (void)state;
    struct sigaction sa = {.sa_handler = count_usr1}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    usr1_handled = 0;
    sigk_t k = {.stop = 1};
    aloop_t *loop = sig_setup(&k);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(k.rc, 1); /* woken, not run */
    assert_int_equal(usr1_handled, 0);
    sig_teardown(loop, &k);
    assert_int_equal(k.rc, -ECANCELED);
    assert_int_equal(usr1_handled, 1);
    sigaction(SIGUSR1, &old, NULL);
}

/* Cancelled while waiting for two signals: both entries leave their
 * lists (nothing keeps the loop alive, the signals are no longer read),
 * so a signal raised afterwards is kept for the next wait. */
static void test_signal_cancel_before_grant(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    sigk_t k = {.rc = 1};
    assert_non_null(k.victim = aloop_spawn(loop, sig_victim, &k));
    assert_int_equal(aloop_run_once(loop, 0), 1);
    aloop_cancel(k.victim);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(k.rc, -ECANCELED);
    assert_int_equal(aloop_run_once(loop, 0), 0); /* no work left */
    raise(SIGUSR1);
    assert_int_equal(next_usr1_wait(loop), 0);
    aloop_release(k.victim);
    aloop_free(loop);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_or_close_while_woken),
        cmocka_unit_test(test_cancel_after_grant_hands_on),
        cmocka_unit_test(test_stream_close_after_loop_free),
        cmocka_unit_test(test_close2_wakes_waiter_with_ebadf),
        cmocka_unit_test(test_close2_and_reuse_on_epoll),
        cmocka_unit_test(test_signal_grant_then_cancel),
        cmocka_unit_test(test_signal_grant_then_free),
        cmocka_unit_test(test_signal_cancel_before_grant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

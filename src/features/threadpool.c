/*
 * threadpool.c - everything that crosses threads: the worker pool behind
 * aloop_run_in_thread, aloop_call_soon_threadsafe, and the loop's wake-up
 * fd (an eventfd on Linux, a non-blocking pipe elsewhere).
 *
 * Threads and the loop share only the struct below, under one mutex:
 *   todo:  jobs waiting for a worker          (loop -> workers)
 *   done:  finished jobs                      (workers -> loop)
 *   soon:  callbacks from other threads       (any thread -> loop)
 * A producer appends under the mutex, then sets `signalled` and, if it was
 * the first to do so since the loop last drained, writes the wake-up fd. The
 * poller watches that fd with an internal hook, so a loop blocked in
 * epoll_wait wakes up; aloop__async_drain then collects everything.
 *
 * Job lifetime: a job is heap-allocated; its `state` (under the mutex) says
 * who has it: queued on todo (the loop may still take it back), running on
 * a worker, or done (on the done list, the loop's again). The waiting task
 * keeps a pointer to it. If the task is cancelled while the job is queued,
 * the loop unlinks and frees it: it never runs. If it is running, `task` is
 * cleared (loop thread only, workers never read it) and the job is
 * "orphaned": when it comes back, the loop hands its result to the job's
 * discard function (aloop_run_in_thread_with) and frees it. The task's
 * stack is never touched by a worker.
 *
 * Lanes: name lookups (net.c) may block for as long as a DNS server takes,
 * so they run in a lane of their own: at most `size` lookups and at most
 * `size` other jobs run at once, on up to 2 * size workers. A worker takes
 * the oldest job whose lane has room, so slow lookups never hold back file
 * I/O or run_in_thread, nor the reverse.
 *
 * Workers start lazily (one more whenever a job would otherwise queue behind
 * busy workers, up to the pool size) with every signal blocked, so that
 * process-directed signals reach the loop's signalfd instead of them.
 * aloop_free cancels every task first, which takes every queued job back,
 * so it only waits for the jobs already running, while they keep finishing;
 * their results go to discard on the freeing thread before aloop_free
 * returns. A job still running after a quiet ALOOP_POOL_FREE_GRACE (stuck
 * in a blocking system call) is left to its worker, detached, which hands
 * its result to discard when it ends; the last such worker frees the pool
 * record (the loop itself is gone by then).
 */
#include "internal.h"
#include "pipe_internal.h"
#include "registry_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
/* ALOOP_NO_EVENTFD forces the pipe (to test the portable path on Linux). */
#if defined(__linux__) && !defined(ALOOP_NO_EVENTFD)
#define ALOOP_EVENTFD 1
#include <sys/eventfd.h>
#endif

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct pool_job {
    aloop_list_t link;       /* on todo while queued (under mu) */
    struct pool_job *next;   /* on done once finished (under mu) */
    void *(*fn)(void *);
    void *arg;
    void (*discard)(void *result, void *arg); /* for an orphaned result; may be NULL */
    void *result;
    aloop_wait_t *wait;      /* loop thread only: the caller's record, NULL once orphaned */
    int state;               /* JOB_*, under mu */
    int lane;                /* ALOOP__LANE_* */
} pool_job_t;

typedef aloop_post_t soon_item_t;

/* One worker thread's record (in the pool's array). */
typedef struct pool_worker {
    struct aloop_pool *pool;
    pthread_t th;
    int busy; /* running a job (under mu) */
} pool_worker_t;

/* aloop_free waits for running jobs while they keep finishing; once none
 * has finished for this long, the ones still running are left to their
 * (detached) workers. */
#define ALOOP_POOL_FREE_GRACE 1.0

/* A singly linked FIFO. */
#define FIFO(type) struct { type *head, **tail; }
#define FIFO_INIT(q) ((q).head = NULL, (q).tail = &(q).head)
#define FIFO_PUSH(q, item) ((item)->next = NULL, *(q).tail = (item), (q).tail = &(item)->next)

struct aloop_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    int rfd, wfd;            /* wake-up fd (rfd == wfd for an eventfd) */
    atomic_int signalled;    /* set by producers, cleared by the drain */
    atomic_int stop_req;     /* aloop_stop from another thread */

    /* under mu */
    aloop_list_t todo;       /* pool_job_t by link, oldest first */
    FIFO(pool_job_t) done;
    FIFO(soon_item_t) soon;
    size_t queued;           /* jobs on todo */
    size_t lane_queued[ALOOP__LANES];   /* ... by lane */
    unsigned lane_running[ALOOP__LANES]; /* jobs on a worker now, by lane */
    unsigned idle;           /* workers waiting for work */
    int stopping;
    unsigned running;        /* jobs on a worker now */
    pthread_cond_t finished; /* a job finished (aloop_free waits on it) */
    /* aloop_free left running jobs behind: their workers finish them on
     * their own, hand the results to discard, and the last one out frees
     * the pool (if the loop is gone by then: loop_gone) */
    int detached;
    unsigned detached_alive;
    int loop_gone;

    /* loop thread only */
    size_t inflight;         /* jobs submitted, not yet collected */
    pool_worker_t *workers;
    unsigned nthreads, size;
};

/* ------------------------------------------------------------------------ */
/* The wake-up fd                                                           */
/* ------------------------------------------------------------------------ */

static void wakeup(struct aloop_pool *a) {
    if (atomic_exchange(&a->signalled, 1)) return; /* already pending */
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(a->wfd, &one, a->rfd == a->wfd ? sizeof one : 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, so the loop will wake anyway */
}

/* Poller hook: empties the wake-up fd; aloop__async_drain does the work. */
static void wakeup_hook(aloop_t *loop, int fd) {
    ALOOP_UNUSED(loop);
    char buf[64];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break; /* EAGAIN: empty */
    }
}

/* The fd is also where the dump signal wakes the loop (the registry has
 * it: aloop__async_wake_fd). */
static int make_wakeup_fd(struct aloop_pool *a) {
#ifdef ALOOP_EVENTFD
    a->rfd = a->wfd = aloop__fd_high(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (a->rfd < 0) return -errno;
#else
    int p[2];
    int rc = aloop__pipe(p);
    if (rc < 0) return rc;
    a->rfd = p[0];
    a->wfd = p[1];
#endif
    return 0;
}

static void close_wakeup_fd(aloop_t *loop, struct aloop_pool *a) {
    aloop__io_forget(loop, a->rfd);
    close(a->rfd);
    if (a->wfd != a->rfd) close(a->wfd);
}

int aloop__async_wake_fd(const aloop_t *loop) { return loop->pool->wfd; }

/* What the core calls (internal.h, loop->xthread). */
static const aloop_xthread_ops_t xthread_ops = {
    aloop__async_pending, aloop__async_drain, aloop__async_alone, aloop__async_stop};

int aloop__async_init(aloop_t *loop) {
    struct aloop_pool *a = aloop__calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    int rc = make_wakeup_fd(a);
    if (rc < 0) goto fail;
    rc = aloop__io_hook(loop, a->rfd, wakeup_hook);
    if (rc < 0) {
        close_wakeup_fd(loop, a);
        goto fail;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_cond_init(&a->finished, NULL);
    atomic_init(&a->signalled, 0);
    atomic_init(&a->stop_req, 0);
    aloop__list_init(&a->todo);
    FIFO_INIT(a->done);
    FIFO_INIT(a->soon);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a->size = cpus > 0 ? (unsigned)cpus : 1;
    loop->pool = a;
    loop->xthread = &xthread_ops;
    return 0;
fail:
    aloop__free(a);
    return rc;
}

/* A finished job nobody waits for any more: its result goes to discard. */
static void job_orphaned(pool_job_t *j) {
    if (j->discard) j->discard(j->result, j->arg);
    aloop__free(j);
}

/* A post that will never run: its owner hears of it through drop (posts
 * embedded in a larger record, aloop_run_threadsafe's), or it is freed
 * (aloop_call_soon_threadsafe's). */
static void post_drop(soon_item_t *s) {
    if (s->drop)
        s->drop(s->arg);
    else if (!s->embedded)
        aloop__free(s);
}

void aloop__async_close(aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    if (!a) return;
    /* Callbacks accepted before the loop left the registry (their callers
     * were told 0) still run. */
    atomic_store(&a->signalled, 1);
    aloop__async_drain(loop);
}

/* Under mu: waits for the running jobs while they keep finishing; returns
 * with the ones still running after a quiet ALOOP_POOL_FREE_GRACE. */
static void wait_running_jobs(struct aloop_pool *a) {
    while (a->running) {
        unsigned before = a->running;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double end = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + ALOOP_POOL_FREE_GRACE;
        ts.tv_sec = (time_t)end;
        ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
        int rc = 0;
        while (a->running == before && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&a->finished, &a->mu, &ts);
        if (a->running == before) return; /* nothing finished for a while */
    }
}

static void pool_destroy(struct aloop_pool *a) {
    pthread_cond_destroy(&a->finished);
    pthread_cond_destroy(&a->work);
    pthread_mutex_destroy(&a->mu);
    aloop__free(a->workers);
    aloop__free(a);
}

void aloop__async_free(aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    if (!a) return;
    aloop__async_close(loop); /* a no-op when aloop_free already did it */
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    /* Every task is gone (aloop_free cancelled them, which took their queued
     * jobs back), so todo is empty; workers finish what they run and exit. */
    while (!aloop__list_empty(&a->todo))
        aloop__free(ALOOP_CONTAINER_OF(aloop__list_pop_front(&a->todo), pool_job_t, link));
    pthread_cond_broadcast(&a->work);
    wait_running_jobs(a);
    if (a->running) { /* stuck (a blocking read, a hung NFS open...) */
        a->detached = 1;
        a->detached_alive = a->running;
    }
    pthread_mutex_unlock(&a->mu);
    /* A worker busy now stays busy until it exits: no job is left to take. */
    for (unsigned i = 0; i < a->nthreads; i++) {
        if (a->detached && a->workers[i].busy)
            pthread_detach(a->workers[i].th);
        else
            pthread_join(a->workers[i].th, NULL);
    }
    /* Every job that came back is orphaned; callbacks that never ran are
     * dropped like call_soon's. */
    for (pool_job_t *j = a->done.head; j;) {
        pool_job_t *next = j->next;
        job_orphaned(j);
        j = next;
    }
    for (soon_item_t *s = a->soon.head; s;) {
        soon_item_t *next = s->next;
        post_drop(s);
        s = next;
    }
    close_wakeup_fd(loop, a); /* detached workers never write it */
    loop->pool = NULL;
    loop->xthread = NULL;
    pthread_mutex_lock(&a->mu);
    a->loop_gone = 1;
    int last = a->detached_alive == 0;
    pthread_mutex_unlock(&a->mu);
    if (last) pool_destroy(a);
}

void aloop__async_counts(aloop_t *loop, size_t *queued, size_t *running) {
    struct aloop_pool *a = loop->pool;
    *queued = *running = 0;
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    *queued = a->queued;
    *running = a->running;
    pthread_mutex_unlock(&a->mu);
}

size_t aloop__async_pending(const aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    if (!a) return 0;
    return a->inflight + (size_t)atomic_load(&a->signalled);
}

int aloop__async_ready(const aloop_t *loop) {
    return loop->pool && atomic_load(&loop->pool->signalled);
}

void aloop__async_drain(aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    if (!a || !atomic_exchange(&a->signalled, 0)) return;
    pthread_mutex_lock(&a->mu);
    pool_job_t *jobs = a->done.head;
    soon_item_t *soon = a->soon.head;
    FIFO_INIT(a->done);
    FIFO_INIT(a->soon);
    pthread_mutex_unlock(&a->mu);
    while (jobs) {
        pool_job_t *j = jobs;
        jobs = j->next;
        a->inflight--;
        if (j->wait)
            aloop__wake(j->wait, 0); /* the task reads the result and frees j */
        else
            job_orphaned(j); /* its task was cancelled while it ran */
    }
    if (atomic_exchange(&a->stop_req, 0)) aloop_stop(loop);
    while (soon) {
        soon_item_t *s = soon;
        soon = s->next;
        void (*cb)(void *) = s->cb;
        void *arg = s->arg;
        if (!s->embedded) aloop__free(s); /* an embedded one may be reused by cb */
        cb(arg);
    }
}

void aloop__post(aloop_t *loop, aloop_post_t *p) {
    struct aloop_pool *a = loop->pool;
    pthread_mutex_lock(&a->mu);
    FIFO_PUSH(a->soon, p);
    pthread_mutex_unlock(&a->mu);
    wakeup(a);
}

int aloop_call_soon_threadsafe(aloop_t *loop, void (*cb)(void *), void *arg) {
    if (!loop || !cb) return -EINVAL;
    soon_item_t *s = aloop__malloc(sizeof *s);
    if (!s) return -ENOMEM;
    *s = (soon_item_t){.cb = cb, .arg = arg};
    /* Held from the check until the wake-up write is done: the loop is
     * never freed under us (registry_internal.h). */
    if (!aloop__loops_hold(loop)) {
        aloop__free(s);
        return -EPIPE;
    }
    struct aloop_pool *a = loop->pool;
    pthread_mutex_lock(&a->mu);
    FIFO_PUSH(a->soon, s);
    pthread_mutex_unlock(&a->mu);
    wakeup(a);
    aloop__loops_release();
    return 0;
}

void aloop__async_stop(aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    atomic_store(&a->stop_req, 1);
    wakeup(a);
}

/* Threads of the process: the entries of /proc/self/task, or 0 where that
 * cannot be known. */
static size_t process_threads(void) {
#if defined(__linux__)
    DIR *d = opendir("/proc/self/task");
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
#else
    return 0;
#endif
}

/* Threads of the library that never post work to a loop (process.c's
 * reapers of children outliving their loop): process-wide, as they are. */
static atomic_uint helper_threads;

void aloop__helper_threads(int delta) {
    if (delta > 0)
        atomic_fetch_add(&helper_threads, 1u);
    else
        atomic_fetch_sub(&helper_threads, 1u);
}

int aloop__async_alone(const aloop_t *loop) {
    struct aloop_pool *a = loop->pool;
    size_t n = process_threads();
    /* this thread + the pool's workers (they only exit in aloop_free) +
     * the library's helpers */
    return n != 0 && n <= 1u + (a ? a->nthreads : 0u) + atomic_load(&helper_threads);
}

/* ------------------------------------------------------------------------ */
/* The worker pool                                                          */
/* ------------------------------------------------------------------------ */

/* The oldest queued job whose lane has room, or NULL. Under mu. */
static pool_job_t *next_job(struct aloop_pool *a) {
    for (aloop_list_t *l = a->todo.next; l != &a->todo; l = l->next) {
        pool_job_t *j = ALOOP_CONTAINER_OF(l, pool_job_t, link);
        if (a->lane_running[j->lane] < a->size) return j;
    }
    return NULL;
}

/* Queued jobs that could start now if a worker were free. Under mu. */
static size_t startable(const struct aloop_pool *a) {
    size_t n = 0;
    for (int l = 0; l < ALOOP__LANES; l++) {
        size_t room = a->size - a->lane_running[l];
        n += a->lane_queued[l] < room ? a->lane_queued[l] : room;
    }
    return n;
}

static void *worker_main(void *p) {
    pool_worker_t *me = p;
    struct aloop_pool *a = me->pool;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        pool_job_t *j;
        while (!(j = next_job(a)) && !a->stopping) {
            a->idle++;
            pthread_cond_wait(&a->work, &a->mu);
            a->idle--;
        }
        if (a->stopping) break; /* aloop_free: nothing is left to take */
        aloop__list_remove(&j->link);
        j->state = JOB_RUNNING;
        a->queued--;
        a->lane_queued[j->lane]--;
        a->lane_running[j->lane]++;
        a->running++;
        me->busy = 1;
        pthread_mutex_unlock(&a->mu);

        j->result = j->fn(j->arg);

        pthread_mutex_lock(&a->mu);
        j->state = JOB_DONE;
        a->running--;
        a->lane_running[j->lane]--;
        pthread_cond_broadcast(&a->finished);
        if (a->detached) { /* aloop_free has left: nobody collects it */
            int last = --a->detached_alive == 0 && a->loop_gone;
            pthread_mutex_unlock(&a->mu);
            if (last) pool_destroy(a);
            job_orphaned(j); /* last: the program may wait for this discard */
            return NULL;
        }
        me->busy = 0;
        FIFO_PUSH(a->done, j);
        /* wake the loop without holding the mutex longer than needed */
        pthread_mutex_unlock(&a->mu);
        wakeup(a);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Starts one more worker (signals blocked, so they go to the loop). */
static int start_worker(struct aloop_pool *a) {
    if (!a->workers) {
        a->workers = aloop__calloc((size_t)a->size * ALOOP__LANES, sizeof *a->workers);
        if (!a->workers) return -ENOMEM;
    }
    pool_worker_t *w = &a->workers[a->nthreads];
    w->pool = a;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->th, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) return -rc;
    a->nthreads++;
    return 0;
}

int aloop_set_thread_pool_size(aloop_t *loop, unsigned n) {
    if (!loop || !n || !loop->pool) return -EINVAL;
    struct aloop_pool *a = loop->pool;
    if (a->workers) return -EBUSY; /* sized once, before the first job */
    a->size = n;
    return 0;
}

typedef struct pool_wait {
    aloop_wait_t wait;
    pool_job_t *job;
    uint8_t dropped;  /* taken back from the queue: fn never runs */
    uint8_t orphaned; /* running: its result will go to discard */
} pool_wait_t;

/* The caller is cancelled while suspended: take the job back if no worker
 * has it yet (it never runs), else orphan it. */
static void pool_wait_cancel(aloop_wait_t *w) {
    pool_wait_t *pw = ALOOP_CONTAINER_OF(w, pool_wait_t, wait);
    struct aloop_pool *a = w->task->fut.loop->pool;
    pool_job_t *j = pw->job;
    pthread_mutex_lock(&a->mu);
    int queued = j->state == JOB_QUEUED;
    if (queued) {
        aloop__list_remove(&j->link);
        a->queued--;
        a->lane_queued[j->lane]--;
    }
    pthread_mutex_unlock(&a->mu);
    if (queued) {
        a->inflight--;
        aloop__free(j);
        pw->dropped = 1;
    } else {
        j->wait = NULL; /* the loop hands its result to discard when it is back */
        pw->orphaned = 1;
    }
}

int aloop_run_in_thread_with(void *(*fn)(void *), void *arg,
                             void (*discard)(void *result, void *arg), void **result) {
    return aloop__run_in_lane(ALOOP__LANE_JOBS, fn, arg, discard, result);
}

int aloop__run_in_lane(int lane, void *(*fn)(void *), void *arg,
                       void (*discard)(void *result, void *arg), void **result) {
    if (result) *result = NULL;
    if (!fn) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) {
        /* -ECANCELED always means "arg is discard's": fn never ran */
        if (err == -ECANCELED && discard) discard(NULL, arg);
        return err;
    }
    struct aloop_pool *a = t->fut.loop->pool;
    pool_job_t *j = aloop__malloc(sizeof *j);
    if (!j) return -ENOMEM;
    *j = (pool_job_t){.fn = fn, .arg = arg, .discard = discard, .state = JOB_QUEUED,
                      .lane = lane};

    pthread_mutex_lock(&a->mu);
    a->lane_queued[lane]++; /* counted before it is queued, for startable() */
    /* workers not running a job (idle, or started and not waiting yet) */
    unsigned free_workers = a->nthreads - a->running;
    int need_worker = startable(a) > free_workers && a->nthreads < a->size * ALOOP__LANES;
    a->lane_queued[lane]--;
    pthread_mutex_unlock(&a->mu);
    if (need_worker) {
        int rc = start_worker(a);
        if (rc < 0 && a->nthreads == 0) {
            aloop__free(j);
            return rc;
        }
        /* otherwise the job waits for a busy worker */
    }
    pthread_mutex_lock(&a->mu);
    aloop__list_push_back(&a->todo, &j->link);
    a->queued++;
    a->lane_queued[lane]++;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    a->inflight++;

    pool_wait_t pw = {.wait = {.cancel = pool_wait_cancel, .what = "aloop_run_in_thread"},
                      .job = j};
    j->wait = &pw.wait;
    int rc = aloop__suspend(t, &pw.wait);
    if (pw.orphaned) return -ECANCELED;
    if (pw.dropped) {
        /* In the caller's own step, not in the cancel hook: discard is
         * user code. */
        if (discard) discard(NULL, arg);
        return -ECANCELED;
    }
    if (rc < 0) {
        /* Done, but cancelled before this task ran again: nobody will take
         * the result, so it goes to discard like any orphan's. */
        job_orphaned(j);
        return rc;
    }
    if (result) *result = j->result;
    aloop__free(j);
    return 0;
}

int aloop_run_in_thread(void *(*fn)(void *), void *arg, void **result) {
    return aloop_run_in_thread_with(fn, arg, NULL, result);
}

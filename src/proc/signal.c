/*
 * signal.c - aloop_signal_wait: tasks waiting for signals.
 *
 * Linux: the first wait for a signal blocks it in the calling thread (the
 * loop's) and opens a signalfd for it; the fd is watched by the poller with
 * an internal hook only while some task waits for that signal. A signal
 * that arrives while nobody waits stays pending in the kernel (blocked) and
 * wakes the next waiter; every task waiting when it is read wakes up. The
 * thread pool's workers block every signal, so a process-directed signal
 * can only land here - provided the program's other threads (if any) block
 * it too, as with any signalfd user. aloop_free closes the fds, unblocks
 * what it blocked and raises again a signal still pending there, so it is
 * delivered as if the loop had never blocked it (see slot_close).
 *
 * Elsewhere: a self-pipe. A handler (installed by the first wait for that
 * signal) writes the signal number to a process-wide non-blocking pipe,
 * whose read end the loop watches while any task waits. A signal arriving
 * while nobody waits for it is dropped.
 *
 * Besides tasks, the library itself may listen to a signal
 * (aloop__signal_subscribe: process.c's SIGCHLD fallback). A subscribed
 * signal is opened and watched exactly as one a task waits for, for as long
 * as the subscription lasts, and its hook runs before the tasks wake.
 *
 * A wait is the core's wait on several lists (aloop__wait_any): one entry
 * per signal it waits for, each on its signal's slot; the first of its
 * signals read wins and the core takes the other entries off. A signal
 * read for tasks that are all cancelled before they run is raised again
 * (sig_undo), so it is not lost: it stays pending for the next wait.
 */
#include "internal.h"
#include "pipe_internal.h"
#include "signal_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
/* ALOOP_NO_SIGNALFD forces the self-pipe (to test it on Linux). */
#if defined(__linux__) && !defined(ALOOP_NO_SIGNALFD)
#include <sys/signalfd.h>
#define ALOOP_SIGNALFD 1
#endif

#ifndef NSIG
#define NSIG 65
#endif

/* One signal a task waits for: on that signal's slot. */
typedef struct sig_entry {
    aloop_wait_t wait; /* wait.link: in the slot's waiters, then its woken */
    int signo;
    unsigned seq;      /* the slot's delivery that woke it */
} sig_entry_t;

typedef struct sig_slot {
    aloop_list_t waiters; /* sig_entry_t.wait.link */
    aloop_list_t woken;   /* entries woken whose task has not run yet */
    size_t nwaiters;     /* entries on waiters */
    unsigned seq;        /* deliveries to tasks so far */
    unsigned taken;      /* the last delivery a woken task ran with */
    aloop_signal_hook_fn internal; /* library subscriber (process.c: SIGCHLD) */
    uint8_t open;        /* fd / handler set up */
    uint8_t we_blocked;  /* restore the mask at aloop_free */
#ifdef ALOOP_SIGNALFD
    int fd;
#endif
} sig_slot_t;

/* loop->signals: allocated by the first wait, freed by aloop_free. */
typedef struct aloop_signals {
    sig_slot_t slots[NSIG];
    size_t total; /* waiting tasks + internal subscribers, all signals */
} sig_state_t;

/* The slot is watched while a task waits for it or the library listens. */
static int slot_wanted(const sig_slot_t *slot) { return slot->nwaiters || slot->internal; }

static sig_state_t *state_get(aloop_t *loop) {
    sig_state_t *st = loop->signals;
    if (st) return st;
    st = aloop__calloc(1, sizeof *st);
    if (!st) return NULL;
    for (int i = 0; i < NSIG; i++) {
        aloop__list_init(&st->slots[i].waiters);
        aloop__list_init(&st->slots[i].woken);
#ifdef ALOOP_SIGNALFD
        st->slots[i].fd = -1;
#endif
    }
    loop->signals = st;
    return st;
}

static void entry_left(aloop_t *loop, sig_slot_t *slot);

/* Wakes every task waiting for signo (the core takes each off the other
 * signals it waited for). */
static void deliver(aloop_t *loop, int signo) {
    sig_state_t *st = loop->signals;
    if (!st || signo <= 0 || signo >= NSIG) return;
    sig_slot_t *slot = &st->slots[signo];
    if (slot->internal) slot->internal(loop);
    if (aloop__list_empty(&slot->waiters)) return;
    slot->seq++;
    aloop_wait_t *w;
    while ((w = aloop__wake_first(&slot->waiters, signo)) != NULL) {
        ALOOP_CONTAINER_OF(w, sig_entry_t, wait)->seq = slot->seq;
        entry_left(loop, slot);
    }
}

#ifdef ALOOP_SIGNALFD
/* ---- Linux: one signalfd per signal ------------------------------------ */

static void signalfd_hook(aloop_t *loop, int fd) {
    struct signalfd_siginfo si;
    ssize_t n;
    do {
        n = read(fd, &si, sizeof si);
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof si) deliver(loop, (int)si.ssi_signo);
}

static int slot_open(aloop_t *loop, sig_slot_t *slot, int signo) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, signo);
    int rc = pthread_sigmask(SIG_BLOCK, &set, &old);
    if (rc) return -rc;
    slot->we_blocked = !sigismember(&old, signo);
    slot->fd = aloop__fd_high(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (slot->fd < 0) {
        rc = -errno;
        if (slot->we_blocked) pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        return rc;
    }
    aloop__io_forget(loop, slot->fd);
    slot->open = 1;
    return 0;
}

static int slot_watch(aloop_t *loop, sig_slot_t *slot) {
    return aloop__io_hook(loop, slot->fd, signalfd_hook);
}

static void slot_unwatch(aloop_t *loop, sig_slot_t *slot) { aloop__io_unhook(loop, slot->fd); }

/* A signal that arrived after the last wait for it and is still pending is
 * not lost: once unblocked it is raised again, so the process's own
 * disposition handles it (the default action for SIGINT/SIGTERM ends the
 * process, as it would have without the loop). A signal the program had
 * blocked itself stays pending for it. */
static void slot_close(aloop_t *loop, sig_slot_t *slot, int signo) {
    int pending = 0;
    if (slot->we_blocked) {
        struct signalfd_siginfo si;
        while (read(slot->fd, &si, sizeof si) == (ssize_t)sizeof si) pending = 1;
    }
    aloop__io_forget(loop, slot->fd);
    close(slot->fd);
    slot->fd = -1;
    if (slot->we_blocked) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, signo);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        if (pending) raise(signo);
    }
    slot->open = 0;
}

#else
/* ---- elsewhere: a process-wide self-pipe ------------------------------- */

static int pipe_fds[2] = {-1, -1};
static pthread_once_t pipe_once = PTHREAD_ONCE_INIT;
/* The handler is process-wide, loops are not: it is installed by the first
 * loop that opens a signal and the disposition from before it restored by
 * the last one that closes it. */
static pthread_mutex_t handler_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned handler_users[NSIG];
static struct sigaction handler_old[NSIG];

static void pipe_create(void) {
    int p[2];
    if (aloop__pipe(p) < 0) return;
    pipe_fds[0] = p[0];
    pipe_fds[1] = p[1];
}

static void on_signal(int signo) {
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t n = write(pipe_fds[1], &b, 1); /* full pipe: dropped */
    (void)n;
    errno = saved;
}

static void selfpipe_hook(aloop_t *loop, int fd) {
    unsigned char buf[64];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) deliver(loop, buf[i]);
}

static int slot_open(aloop_t *loop, sig_slot_t *slot, int signo) {
    ALOOP_UNUSED(loop);
    pthread_once(&pipe_once, pipe_create);
    if (pipe_fds[0] < 0) return -EMFILE;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | (signo == SIGCHLD ? SA_NOCLDSTOP : 0);
    int rc = 0;
    pthread_mutex_lock(&handler_mu);
    if (handler_users[signo] == 0 && sigaction(signo, &sa, &handler_old[signo]) < 0) rc = -errno;
    if (rc == 0) handler_users[signo]++;
    pthread_mutex_unlock(&handler_mu);
    if (rc < 0) return rc;
    slot->open = 1;
    return 0;
}

/* All signals share the pipe: watch it while any task waits. */
static int slot_watch(aloop_t *loop, sig_slot_t *slot) {
    ALOOP_UNUSED(slot);
    sig_state_t *st = loop->signals;
    return st->total ? 0 : aloop__io_hook(loop, pipe_fds[0], selfpipe_hook);
}

static void slot_unwatch(aloop_t *loop, sig_slot_t *slot) {
    ALOOP_UNUSED(slot);
    if (!loop->signals->total) aloop__io_unhook(loop, pipe_fds[0]);
}

static void slot_close(aloop_t *loop, sig_slot_t *slot, int signo) {
    pthread_mutex_lock(&handler_mu);
    if (--handler_users[signo] == 0) sigaction(signo, &handler_old[signo], NULL);
    pthread_mutex_unlock(&handler_mu);
    aloop__io_forget(loop, pipe_fds[0]); /* the pipe itself lives on */
    slot->open = 0;
}
#endif

/* ---- common ------------------------------------------------------------ */

/* An entry left the slot's waiters; a slot nobody wants any more is no
 * longer watched, so its next signal stays pending for the next wait. */
static void entry_left(aloop_t *loop, sig_slot_t *slot) {
    slot->nwaiters--;
    loop->signals->total--;
    if (!slot_wanted(slot)) slot_unwatch(loop, slot);
}

static sig_slot_t *entry_slot(aloop_wait_t *w) {
    return &w->task->fut.loop->signals->slots[ALOOP_CONTAINER_OF(w, sig_entry_t, wait)->signo];
}

/* Cancelled while waiting, or another of the task's signals came first. */
static void sig_withdraw(aloop_wait_t *w) { entry_left(w->task->fut.loop, entry_slot(w)); }

/* Woken by a delivery, cancelled before it ran. The delivery is lost only
 * if no task received it: then the last of its cancelled receivers raises
 * the signal again (pending in the loop's thread, or through the
 * self-pipe's handler), for the next wait. */
static void sig_undo(aloop_wait_t *w) {
    sig_entry_t *e = ALOOP_CONTAINER_OF(w, sig_entry_t, wait);
    sig_slot_t *slot = entry_slot(w);
    if (slot->taken == e->seq) return;
    for (aloop_list_t *n = slot->woken.next; n != &slot->woken; n = n->next)
        if (ALOOP_CONTAINER_OF(n, sig_entry_t, wait.link)->seq == e->seq) return;
    raise(e->signo);
}

/* Opens the slot if needed and makes sure the poller watches it, before
 * a waiter or subscriber is added. */
static int slot_prepare(aloop_t *loop, sig_slot_t *slot, int signo) {
    if (!slot->open) {
        int rc = slot_open(loop, slot, signo);
        if (rc < 0) return rc;
    }
    return slot_wanted(slot) ? 0 : slot_watch(loop, slot);
}

int aloop__signal_subscribe(aloop_t *loop, int signo, aloop_signal_hook_fn fn) {
    if (signo <= 0 || signo >= NSIG || !fn) return -EINVAL;
    sig_state_t *st = state_get(loop);
    if (!st) return -ENOMEM;
    sig_slot_t *slot = &st->slots[signo];
    if (slot->internal) return slot->internal == fn ? 0 : -EBUSY;
    int rc = slot_prepare(loop, slot, signo);
    if (rc < 0) return rc;
    slot->internal = fn;
    st->total++;
    return 0;
}

void aloop__signal_unsubscribe(aloop_t *loop, int signo) {
    sig_state_t *st = loop->signals;
    if (!st || signo <= 0 || signo >= NSIG || !st->slots[signo].internal) return;
    sig_slot_t *slot = &st->slots[signo];
    slot->internal = NULL;
    st->total--;
    if (!slot_wanted(slot)) slot_unwatch(loop, slot);
}

/* Puts an entry of w on the slot of each of signos[0..n) (e has room),
 * then suspends: the signal read first, -ECANCELED, or an error. */
static int wait_signals(aloop_task_impl_t *t, const char *what, sig_entry_t *e,
                        const int *signos, int n) {
    aloop_t *loop = t->fut.loop;
    sig_state_t *st = state_get(loop);
    if (!st) return -ENOMEM;
    aloop_wait_t w = {.what = what};
    for (int i = 0; i < n; i++) {
        sig_slot_t *slot = &st->slots[signos[i]];
        int rc = slot_prepare(loop, slot, signos[i]);
        if (rc < 0) {
            aloop__wait_any_drop(&w);
            return rc;
        }
        e[i] = (sig_entry_t){.wait = {.withdraw = sig_withdraw, .undo = sig_undo}, .signo = signos[i]};
        aloop__wait_add(t, &w, &e[i].wait, &slot->waiters, &slot->woken);
        slot->nwaiters++;
        st->total++;
    }
    aloop__io_hold(loop, 1); /* a signal wait keeps the loop alive */
    int rc = aloop__wait_any(t, &w);
    aloop__io_hold(loop, -1);
    for (int i = 0; rc > 0 && i < n; i++) /* the delivery rc is taken (sig_undo) */
        if (e[i].signo == rc) st->slots[rc].taken = e[i].seq;
    return rc;
}

int aloop_signal_wait(int signo) {
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    sig_entry_t e;
    int rc = wait_signals(t, "aloop_signal_wait", &e, &signo, 1);
    return rc > 0 ? 0 : rc;
}

/* Signals a loop cannot wait for: uncatchable, or raised by the faulting
 * instruction in the thread that runs it (a signalfd never sees those). */
static int unwaitable(int signo) {
    return signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV || signo == SIGBUS ||
           signo == SIGFPE || signo == SIGILL;
}

#define SIG_ENTRIES_LOCAL 4 /* SIGINT + SIGTERM and the like: no allocation */

int aloop_signal_wait_any(const sigset_t *set) {
    if (!set) return -EINVAL;
    int signos[NSIG], n = 0;
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(set, s) != 1) continue;
        if (unwaitable(s)) return -EINVAL;
        signos[n++] = s;
    }
    if (!n) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    sig_entry_t local[SIG_ENTRIES_LOCAL];
    sig_entry_t *e = n <= SIG_ENTRIES_LOCAL ? local : aloop__malloc((size_t)n * sizeof *e);
    if (!e) return -ENOMEM;
    int rc = wait_signals(t, "aloop_signal_wait_any", e, signos, n);
    if (e != local) aloop__free(e);
    return rc;
}

void aloop__signal_free(aloop_t *loop) {
    sig_state_t *st = loop->signals;
    if (!st) return;
    for (int signo = 1; signo < NSIG; signo++)
        if (st->slots[signo].open) slot_close(loop, &st->slots[signo], signo);
    aloop__free(st);
    loop->signals = NULL;
}

/*
 * dumpsig.c - a dump of every loop on demand: aloop_dump_on_signal(signo)
 * and ALOOP_DUMP_SIGNAL=USR1, Go's SIGQUIT goroutine dump for aloop.
 *
 * The signal arrives on any thread, at any point, while the loops run on
 * their own threads: the handler itself can neither lock nor look at a
 * loop. It only bumps aloop__dump_requests (each loop compares it with the
 * count it last dumped at, at every drain: debug.c) and writes to every
 * loop's wake-up fd, so that a loop asleep in its poller wakes for it. A
 * loop busy running tasks dumps at its next tick; one whose task never
 * yields dumps once that task does.
 *
 * The wake-up fds are kept in slots the handler can read without a lock:
 * a chain of fixed blocks of atomic ints (fd + 1; 0 = free), appended to
 * but never freed, so the handler never reads freed memory. A loop that
 * goes away clears its slot and then waits until no handler is between
 * reading a slot and writing to it (`in_handler`), so its fd is never
 * closed, and its number reused, under a handler's write. Registering and
 * unregistering (loop creation and freeing) take a mutex.
 *
 * Process-wide state, like the signal disposition it stands for.
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#define SLOTS_PER_BLOCK 64

typedef struct slot_block {
    int fd[SLOTS_PER_BLOCK];   /* wake-up fd + 1, 0 = free (atomic) */
    struct slot_block *next;   /* atomic; set once */
} slot_block_t;

static slot_block_t first_block;
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static int in_handler;         /* handlers between a slot read and its write */

/* The installed dump signal (0: none) and what it replaced; under slots_mu. */
static int dump_signo;
static struct sigaction dump_previous;
static int env_read;

static void on_dump_signal(int signo) {
    int saved = errno;
    ALOOP_UNUSED(signo);
    __atomic_add_fetch(&aloop__dump_requests, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&in_handler, 1, __ATOMIC_SEQ_CST);
    for (slot_block_t *b = &first_block; b; b = __atomic_load_n(&b->next, __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < SLOTS_PER_BLOCK; i++) {
            int fd = __atomic_load_n(&b->fd[i], __ATOMIC_SEQ_CST) - 1;
            if (fd < 0) continue;
            /* 8 bytes: an eventfd takes nothing less; a pipe takes it too. */
            uint64_t one = 1;
            ssize_t n = write(fd, &one, sizeof one);
            ALOOP_UNUSED(n); /* EAGAIN: it is full, so the loop wakes anyway */
        }
    }
    __atomic_sub_fetch(&in_handler, 1, __ATOMIC_SEQ_CST);
    errno = saved;
}

int aloop__dumpsig_register(int wake_fd) {
    int rc = 0;
    pthread_mutex_lock(&slots_mu);
    slot_block_t *b = &first_block, *last = b;
    for (; b; last = b, b = b->next) {
        for (int i = 0; i < SLOTS_PER_BLOCK; i++) {
            if (b->fd[i]) continue;
            __atomic_store_n(&b->fd[i], wake_fd + 1, __ATOMIC_SEQ_CST);
            goto out;
        }
    }
    /* Every slot taken: one more block, kept for the life of the process
     * (a handler may be walking the chain at any moment). */
    b = aloop__calloc(1, sizeof *b);
    if (!b) {
        rc = -ENOMEM;
        goto out;
    }
    b->fd[0] = wake_fd + 1;
    __atomic_store_n(&last->next, b, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&slots_mu);
    return rc;
}

void aloop__dumpsig_unregister(int wake_fd) {
    pthread_mutex_lock(&slots_mu);
    for (slot_block_t *b = &first_block; b; b = b->next)
        for (int i = 0; i < SLOTS_PER_BLOCK; i++)
            if (b->fd[i] == wake_fd + 1) __atomic_store_n(&b->fd[i], 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&slots_mu);
    /* A handler that read the slot before it was cleared is still counted
     * here: the fd stays open until it is done (a few write calls). */
    while (__atomic_load_n(&in_handler, __ATOMIC_SEQ_CST)) sched_yield();
}

/* Signals a dump may not take: uncatchable, or the synchronous faults
 * (their handlers must stay the program's, and the overflow report's). */
static int signo_valid(int signo) {
    if (signo <= 0 || signo >= NSIG) return 0;
    switch (signo) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL:
        return 0;
    default:
        return 1;
    }
}

/* Under slots_mu. */
static int install(int signo) {
    if (dump_signo) {
        sigaction(dump_signo, &dump_previous, NULL);
        dump_signo = 0;
    }
    if (!signo) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, &dump_previous) < 0) return -errno;
    dump_signo = signo;
    return 0;
}

int aloop_dump_on_signal(int signo) {
    if (signo != 0 && !signo_valid(signo)) return -EINVAL;
    pthread_mutex_lock(&slots_mu);
    int rc = install(signo);
    env_read = 1; /* the program's choice wins over the environment's */
    pthread_mutex_unlock(&slots_mu);
    return rc;
}

/* "USR1", "SIGUSR1" or a number; 0 if it names no signal we take. */
static int parse_signal(const char *s) {
    static const struct { const char *name; int signo; } names[] = {
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
        {"INT", SIGINT}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH},
    };
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].signo;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end && v > 0 && v < NSIG && signo_valid((int)v)) return (int)v;
    return 0;
}

void aloop__dumpsig_from_env(void) {
    pthread_mutex_lock(&slots_mu);
    if (!env_read) {
        env_read = 1;
        const char *v = getenv("ALOOP_DUMP_SIGNAL");
        int signo = v && *v ? parse_signal(v) : 0;
        if (signo)
            install(signo);
        else if (v && *v)
            fprintf(stderr, "aloop: ALOOP_DUMP_SIGNAL=%s names no signal a dump can use; "
                    "ignored\n", v);
    }
    pthread_mutex_unlock(&slots_mu);
}

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
 * The wake-up fds are the loop registry's (registry_internal.h), which
 * walks them without a lock and makes a loop that goes away wait until no
 * handler can still be writing to its fd.
 *
 * Process-wide state, like the signal disposition it stands for.
 */
#include "internal.h"
#include "registry_internal.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;

/* The installed dump signal (0: none) and what it replaced; under install_mu. */
static int dump_signo;
static struct sigaction dump_previous;
static int env_read;

static void on_dump_signal(int signo) {
    int saved = errno;
    ALOOP_UNUSED(signo);
    __atomic_add_fetch(&aloop__dump_requests, 1, __ATOMIC_SEQ_CST);
    aloop__loops_wake_all();
    errno = saved;
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

/* Under install_mu. */
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
    pthread_mutex_lock(&install_mu);
    int rc = install(signo);
    env_read = 1; /* the program's choice wins over the environment's */
    pthread_mutex_unlock(&install_mu);
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
    pthread_mutex_lock(&install_mu);
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
    pthread_mutex_unlock(&install_mu);
}

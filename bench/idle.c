/*
 * idle.c - what idle connections cost: N tasks each waiting in aloop_read
 * on its own connection, nothing arriving, measured for T seconds.
 *
 * Prints the process's CPU time (user + system, getrusage) over the idle
 * spell. Two kinds of connections:
 *
 *   idle [-n N] [-t T]          Unix-socket connections accepted by the
 *                               library (aloop_accept): a server's case
 *   idle --own [-n N] [-t T]    socketpair()s the program made itself
 *   idle --flood [-n N]         resident memory (RSS) before N library-
 *                               accepted connections, while their handlers
 *                               (each touching 16 KiB of its stack, as a
 *                               handler with buffers on its stack does) wait,
 *                               and after they have all closed
 *
 * N defaults to 10,000, T to 5 s. RLIMIT_NOFILE is raised to what N needs
 * (one fd per connection, two with --own; raising the hard limit needs
 * CAP_SYS_RESOURCE). Run it under `strace -c -f` for the system calls.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long n_conns = 10000;
static double idle_s = 5.0;
static int own, flood;
static long waiting;     /* reader tasks parked in aloop_read */
static int *peer_fds;    /* --own: the far ends (never waited on) */
static aloop_task_t **readers;

static void die(const char *what, long err) {
    fprintf(stderr, "idle: %s: %s\n", what, aloop_strerror((int)err));
    exit(1);
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident set in MiB. */
static double rss_mib(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) die("/proc/self/statm", -EIO);
    fclose(f);
    return (double)pages_resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

/* A handler's stack buffers (the compiler must not drop them). */
static void __attribute__((noinline)) use_stack(void) {
    volatile char buf[16384];
    for (size_t i = 0; i < sizeof buf; i += 64) buf[i] = (char)i;
}

static void *reader(void *arg) {
    int fd = (int)(intptr_t)arg;
    char c;
    if (flood) use_stack();
    waiting++;
    ssize_t n = aloop_read(fd, &c, 1);
    waiting--;
    aloop_close(fd);
    return (void *)(intptr_t)n;
}

static void spawn_reader(long i, int fd) {
    readers[i] = aloop_spawn(aloop_current(), reader, (void *)(intptr_t)fd);
    if (!readers[i]) die("aloop_spawn", -ENOMEM);
}

/* Library-made connections: a Unix listener the library accepts on; a
 * child process connects (so that the peers' fds are not this process's:
 * twice as many connections fit under RLIMIT_NOFILE) and holds them until
 * it is killed. */
static pid_t connector = -1;

static void connect_all(const struct sockaddr_un *sa) {
    for (long i = 0; i < n_conns; i++) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (const struct sockaddr *)sa, sizeof *sa) < 0) _exit(1);
    }
    pause();
    _exit(0);
}

static void make_accepted(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/aloop-idle-%d.sock", (int)getpid());
    unlink(path);
    int lfd = aloop_unix_listen(path, -1);
    if (lfd < 0) die("aloop_unix_listen", lfd);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    connector = fork();
    if (connector < 0) die("fork", -errno);
    if (connector == 0) connect_all(&sa);
    for (long i = 0; i < n_conns; i++) {
        int fd = aloop_accept(lfd, NULL, NULL);
        if (fd < 0) die("aloop_accept", fd);
        spawn_reader(i, fd);
    }
    aloop_close(lfd);
    unlink(path);
}

static void make_own(void) {
    for (long i = 0; i < n_conns; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair", -errno);
        peer_fds[i] = sv[1];
        spawn_reader(i, sv[0]);
    }
}

static void *flood_bench(void) {
    double before = rss_mib();
    make_accepted();
    while (waiting < n_conns) aloop_yield();
    double peak = rss_mib();
    kill(connector, SIGKILL); /* EOF everywhere: every handler ends */
    waitpid(connector, NULL, 0);
    for (long i = 0; i < n_conns; i++) {
        aloop_await(readers[i], NULL);
        aloop_release(readers[i]);
    }
    aloop_sleep(0.1); /* the loop settles (closing, parking) */
    double after = rss_mib();
    printf("%ld connections: RSS %.1f MiB before, %.1f MiB while open, %.1f MiB after all closed\n", n_conns,
           before, peak, after);
    printf("RESULT name=flood_rss_open_%ld unit=MiB value=%.1f\n", n_conns, peak);
    printf("RESULT name=flood_rss_after_%ld unit=MiB value=%.1f\n", n_conns, after);
    return NULL;
}

static void *bench(void *arg) {
    (void)arg;
    if (flood) return flood_bench();
    if (own)
        make_own();
    else
        make_accepted();
    while (waiting < n_conns) aloop_yield();
    aloop_sleep(0.5); /* settle: the registrations' first poll */
    double c0 = cpu_s(), w0 = wall_s();
    aloop_sleep(idle_s);
    double cpu = cpu_s() - c0, wall = wall_s() - w0;
    printf("%ld idle %s connections, %.1f s: CPU %.4f s (%.2f%% of one core)\n", n_conns,
           own ? "program-made (socketpair)" : "library-accepted (Unix)", wall, cpu, 100.0 * cpu / wall);
    printf("RESULT name=idle_%s_%ld unit=cpu_ms_per_s value=%.3f\n", own ? "own" : "accepted", n_conns,
           1000.0 * cpu / wall);
    /* EOF: every reader returns */
    if (own)
        for (long i = 0; i < n_conns; i++) close(peer_fds[i]);
    else {
        kill(connector, SIGKILL);
        waitpid(connector, NULL, 0);
    }
    for (long i = 0; i < n_conns; i++) {
        aloop_await(readers[i], NULL);
        aloop_release(readers[i]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n_conns = atol(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc)
            idle_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--own"))
            own = 1;
        else if (!strcmp(argv[i], "--flood"))
            flood = 1;
        else if (!strcmp(argv[i], "--quick"))
            n_conns = 1000, idle_s = 1.0;
        else {
            fprintf(stderr, "usage: idle [--own | --flood] [-n CONNS] [-t SECONDS] [--quick]\n");
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)((own ? 2 : 1) * n_conns + 64);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (rl.rlim_max < want) rl.rlim_max = want; /* needs CAP_SYS_RESOURCE */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("setrlimit(RLIMIT_NOFILE): too many connections", -errno);
    }
    peer_fds = calloc((size_t)n_conns, sizeof *peer_fds);
    readers = calloc((size_t)n_conns, sizeof *readers);
    if (!peer_fds || !readers) die("calloc", -ENOMEM);
    int rc = aloop_main(bench, NULL, NULL);
    if (rc < 0) die("aloop_main", rc);
    free(peer_fds);
    free(readers);
    return 0;
}

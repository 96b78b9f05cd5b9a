/*
 * sim.c - simulation: seeded fault injection at the library's system-call
 * boundary (sys_internal.h), so that the paths real kernels take rarely (a
 * short write, an EINTR, a readiness that turns out to be EAGAIN, a late
 * connect, a reset, a failed allocation) run on demand, reproducibly.
 *
 * One generator per loop (xoshiro256**, seeded through splitmix64; the
 * loop's is loop->sim). Every decision draws from it in program order, on
 * the loop's own thread, so the same seed, faults and program give the same
 * decisions; with the virtual clock and no outside peer, the same events.
 * Faults are only ever drawn for calls made while a loop is current on the
 * thread (worker threads never draw). This file knows nothing of loops:
 * core/sys_internal.h passes the loop's generator in.
 *
 * Eligible calls, per fault:
 *   short     recv/send on SOCK_STREAM sockets, read/write on pipes and
 *             character devices: fewer bytes, at least 1;
 *   eintr     every call of the layer: fails with EINTR and does nothing
 *             (connect: after the real call, which goes on in the
 *             background as the kernel's does); never twice in a row;
 *   spurious  every wait for readiness: reported ready at once (after a
 *             pass through the ready queue); never twice in a row;
 *   delay     every readiness a task waited for, every accept and connect,
 *             except those with a deadline of their own: held back 1 to 8
 *             passes through the ready queue (everything ready runs
 *             first). Passes, not seconds: on the virtual clock time does
 *             not move while anything is ready, so a sleep would never end
 *             beside a task that keeps yielding;
 *   reset     recv/send on SOCK_STREAM sockets: the connection is shut down
 *             both ways and the call fails with ECONNRESET (recv) or EPIPE
 *             (send); later calls see what a reset connection gives;
 *   enomem    the library's allocations (alloc.c) fail.
 */
#include "sim_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_DEFAULT_RATE 0.05
#define SIM_DELAY_MAX_PASSES 8

/* ---- the generator */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t next(aloop_sim_t *s) { return aloop__sim_next(s); }
static int hit(aloop_sim_t *s) { return aloop__sim_hit(s); }

/* Uniform in [0, n), n > 0 (the modulo bias is far below what matters). */
static uint64_t below(aloop_sim_t *s, uint64_t n) { return next(s) % n; }

/* ---- configuration */

static const struct {
    const char *name;
    unsigned bits;
} fault_names[] = {
    {"benign", ALOOP_SIM_BENIGN}, {"short", ALOOP_SIM_SHORT_IO}, {"eintr", ALOOP_SIM_EINTR},
    {"spurious", ALOOP_SIM_SPURIOUS}, {"delay", ALOOP_SIM_DELAY}, {"reset", ALOOP_SIM_RESET},
    {"enomem", ALOOP_SIM_ENOMEM},
};
#define NFAULT_NAMES (sizeof fault_names / sizeof fault_names[0])

/* "short,eintr,...": the bits, or -1 for an unknown name. */
static long parse_faults(const char *p, const char *end) {
    unsigned bits = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t n = (size_t)(stop - p), i;
        for (i = 0; i < NFAULT_NAMES; i++)
            if (strlen(fault_names[i].name) == n && memcmp(fault_names[i].name, p, n) == 0) break;
        if (i == NFAULT_NAMES) return -1;
        bits |= fault_names[i].bits;
        p = comma ? comma + 1 : end;
    }
    return (long)bits;
}

/* ALOOP_SIM=SEED[:FAULTS[:RATE]] into *seed, *faults, *rate: 0, or -1 if
 * malformed. FAULTS defaults to benign, RATE to 0 (the default rate). */
static int parse_env(const char *v, uint64_t *seed, unsigned *faults, double *rate) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 0);
    if (end == v || errno || (*end && *end != ':')) return -1;
    *seed = s;
    *faults = ALOOP_SIM_BENIGN;
    *rate = 0;
    if (!*end) return 0;
    const char *f = end + 1, *colon = strchr(f, ':');
    const char *fend = colon ? colon : f + strlen(f);
    long bits = parse_faults(f, fend);
    if (bits < 0) return -1;
    *faults = (unsigned)bits;
    if (!colon) return 0;
    double r = strtod(colon + 1, &end);
    if (end == colon + 1 || *end || !(r >= 0 && r <= 1)) return -1;
    *rate = r;
    return 0;
}

int aloop__sim_config_valid(const aloop_config_t *cfg) {
    return !(cfg->sim_faults & ~(unsigned)ALOOP_SIM_ALL) && cfg->sim_rate >= 0 &&
           cfg->sim_rate <= 1;
}

void aloop__sim_init(aloop_sim_t *s, const aloop_config_t *cfg) {
    uint64_t seed = cfg->sim_seed;
    unsigned faults = cfg->sim_faults;
    double rate = cfg->sim_rate;
    const char *v = seed ? NULL : getenv("ALOOP_SIM");
    if (v && *v && parse_env(v, &seed, &faults, &rate) < 0) {
        fprintf(stderr, "aloop: ALOOP_SIM=%s: expected SEED[:FAULTS[:RATE]] (FAULTS: a comma "
                "list of short,eintr,spurious,delay,benign,reset,enomem; RATE in 0..1); "
                "ignored\n", v);
        seed = 0;
    }
    memset(s, 0, sizeof *s);
    if (!seed) return;
    s->seed = seed;
    s->faults = faults;
    s->rate = rate > 0 ? rate : SIM_DEFAULT_RATE;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->s[i] = splitmix64(&x);
}

/* ---- the replay line */

void aloop__sim_replay(const aloop_sim_t *s, char *buf, size_t n) {
    char faults[80] = "";
    unsigned left = s->faults;
    for (size_t i = 0; i < NFAULT_NAMES; i++) {
        if ((left & fault_names[i].bits) != fault_names[i].bits) continue;
        left &= ~fault_names[i].bits;
        size_t at = strlen(faults);
        snprintf(faults + at, sizeof faults - at, "%s%s", at ? "," : "", fault_names[i].name);
    }
    char rate[32];
    snprintf(rate, sizeof rate, "%g", s->rate);
    if (strtod(rate, NULL) != s->rate) snprintf(rate, sizeof rate, "%.17g", s->rate);
    snprintf(buf, n, "replay: ALOOP_SIM=%llu:%s:%s", (unsigned long long)s->seed, faults, rate);
}

/* ---- the system calls */

static int want(const aloop_sim_t *s, unsigned fault) { return (s->faults & fault) != 0; }

/* EINTR instead of the call: never twice in a row, so that the library's
 * retry always gets through. */
static int interrupt(aloop_sim_t *s) {
    if (!want(s, ALOOP_SIM_EINTR)) return 0;
    if (s->interrupted || !hit(s)) {
        s->interrupted = 0;
        return 0;
    }
    s->interrupted = 1;
    errno = EINTR;
    return 1;
}

static int stream_socket(int fd) {
    int type = 0;
    socklen_t n = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n) == 0 && type == SOCK_STREAM;
}

/* A byte stream that is not a socket: a pipe, a FIFO or a tty. */
static int byte_stream(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode));
}

/* Before a read or write on a stream (stream: it may move fewer bytes,
 * sock: it is a stream socket): 0 with *len possibly shortened, or -1 with
 * errno set (EINTR, or the reset's err). */
static int before_io(aloop_sim_t *s, int fd, size_t *len, int sock, int err) {
    if (interrupt(s)) return -1;
    if (!want(s, ALOOP_SIM_SHORT_IO | ALOOP_SIM_RESET)) return 0;
    int stream = sock ? stream_socket(fd) : byte_stream(fd);
    if (sock && stream && want(s, ALOOP_SIM_RESET) && hit(s)) {
        shutdown(fd, SHUT_RDWR);
        errno = err;
        return -1;
    }
    if (stream && *len > 1 && want(s, ALOOP_SIM_SHORT_IO) && hit(s))
        *len = 1 + (size_t)below(s, *len - 1);
    return 0;
}

ssize_t aloop__sim_recv(aloop_sim_t *sim, int fd, void *buf, size_t len, int flags) {
    if (before_io(sim, fd, &len, 1, ECONNRESET) < 0) return -1;
    return recv(fd, buf, len, flags);
}

ssize_t aloop__sim_send(aloop_sim_t *sim, int fd, const void *buf, size_t len, int flags) {
    if (before_io(sim, fd, &len, 1, EPIPE) < 0) return -1;
    return send(fd, buf, len, flags);
}

ssize_t aloop__sim_read(aloop_sim_t *sim, int fd, void *buf, size_t len) {
    if (before_io(sim, fd, &len, 0, 0) < 0) return -1;
    return read(fd, buf, len);
}

ssize_t aloop__sim_write(aloop_sim_t *sim, int fd, const void *buf, size_t len) {
    if (before_io(sim, fd, &len, 0, 0) < 0) return -1;
    return write(fd, buf, len);
}

/* Datagrams keep their size: only eintr applies. */
ssize_t aloop__sim_recvmsg(aloop_sim_t *sim, int fd, struct msghdr *m, int flags) {
    if (interrupt(sim)) return -1;
    return recvmsg(fd, m, flags);
}

ssize_t aloop__sim_sendto(aloop_sim_t *sim, int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *to, socklen_t tolen) {
    if (interrupt(sim)) return -1;
    return sendto(fd, buf, len, flags, to, tolen);
}

int aloop__sim_accept(aloop_sim_t *sim, int lfd, struct sockaddr *addr, socklen_t *len, int flags) {
    if (interrupt(sim)) return -1;
#if defined(__linux__) || defined(__FreeBSD__)
    return accept4(lfd, addr, len, flags);
#else
    (void)flags;
    return accept(lfd, addr, len);
#endif
}

/* An interrupted connect goes on in the background (the kernel's rule), so
 * the real call is made first and its success or EINPROGRESS becomes
 * EINTR: the library must then wait for the outcome. */
int aloop__sim_connect(aloop_sim_t *sim, int fd, const struct sockaddr *addr, socklen_t len) {
    int rc = connect(fd, addr, len);
    if (rc == 0 || errno == EINPROGRESS) {
        int err = errno;
        if (interrupt(sim)) return -1;
        errno = err;
    }
    return rc;
}

/* ---- the waits */

int aloop__sim_spurious(aloop_sim_t *s) {
    if (!want(s, ALOOP_SIM_SPURIOUS)) return 0;
    s->woken = !s->woken && hit(s);
    return s->woken;
}

unsigned aloop__sim_delay(aloop_sim_t *s) {
    if (!want(s, ALOOP_SIM_DELAY) || !hit(s)) return 0;
    return 1 + (unsigned)below(s, SIM_DELAY_MAX_PASSES);
}

/*
 * sim_internal.h - simulation's part of the loop (loop->sim): the seeded
 * generator every fault decision draws from, and what to inject. A leaf, so
 * that alloc.c can draw too; core/sim.c has the rest, and the system-call
 * layer that consults it is core/sys_internal.h.
 */
#ifndef ALOOP_SIM_INTERNAL_H
#define ALOOP_SIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "aloop.h"

#define ALOOP_SIM_ALL 0x3fu /* every ALOOP_SIM_* bit (aloop.h) */

typedef struct aloop_sim {
    /* ALOOP_SIM_* faults to inject; 0 = none, and then every hook of the
     * layer costs one load and one predicted branch */
    unsigned faults;
    uint64_t seed;        /* 0 = simulation off */
    double rate;          /* probability per eligible call */
    uint64_t s[4];        /* xoshiro256** state, from splitmix64(seed) */
    uint64_t draws;       /* decisions drawn so far */
    /* the last eligible call failed with EINTR / the last wait was woken
     * spuriously: the next one is not (the library's retry gets through) */
    uint8_t interrupted, woken;
    uint8_t reported;     /* the replay line was printed */
} aloop_sim_t;

/* xoshiro256**: the next 64 random bits. */
static inline uint64_t aloop__sim_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t aloop__sim_next(aloop_sim_t *s) {
    uint64_t *q = s->s;
    uint64_t r = aloop__sim_rotl(q[1] * 5, 7) * 9, t = q[1] << 17;
    q[2] ^= q[0];
    q[3] ^= q[1];
    q[1] ^= q[2];
    q[0] ^= q[3];
    q[2] ^= t;
    q[3] = aloop__sim_rotl(q[3], 45);
    s->draws++;
    return r;
}

/* One decision: 1 with probability s->rate. */
static inline int aloop__sim_hit(aloop_sim_t *s) {
    return (double)(aloop__sim_next(s) >> 11) * 0x1.0p-53 < s->rate;
}

/* ---- sim.c */
/* cfg's sim_faults and sim_rate are valid. */
int aloop__sim_config_valid(const aloop_config_t *cfg);
/* From cfg, or ALOOP_SIM when cfg->sim_seed is 0 (loop creation). */
void aloop__sim_init(aloop_sim_t *s, const aloop_config_t *cfg);
/* "replay: ALOOP_SIM=SEED:FAULTS:RATE" into buf (n bytes). */
void aloop__sim_replay(const aloop_sim_t *s, char *buf, size_t n);
/* The system calls with faults drawn from s (the layer in front of them:
 * core/sys_internal.h). Same results as the calls: -1 + errno. */
ssize_t aloop__sim_recv(aloop_sim_t *s, int fd, void *buf, size_t len, int flags);
ssize_t aloop__sim_send(aloop_sim_t *s, int fd, const void *buf, size_t len, int flags);
ssize_t aloop__sim_read(aloop_sim_t *s, int fd, void *buf, size_t len);
ssize_t aloop__sim_write(aloop_sim_t *s, int fd, const void *buf, size_t len);
ssize_t aloop__sim_recvmsg(aloop_sim_t *s, int fd, struct msghdr *m, int flags);
ssize_t aloop__sim_sendto(aloop_sim_t *s, int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *to, socklen_t tolen);
int aloop__sim_accept(aloop_sim_t *s, int lfd, struct sockaddr *addr, socklen_t *len, int flags);
int aloop__sim_connect(aloop_sim_t *s, int fd, const struct sockaddr *addr, socklen_t len);
/* A wait for readiness begins: 1 if it is to be reported ready at once
 * (spurious; never twice in a row). */
int aloop__sim_spurious(aloop_sim_t *s);
/* Readiness, a connect or an accept came: how many passes through the
 * ready queue to hold it back, or 0. */
unsigned aloop__sim_delay(aloop_sim_t *s);

#endif /* ALOOP_SIM_INTERNAL_H */

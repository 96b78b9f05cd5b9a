/*
 * sim_internal.h - simulation's part of the loop (loop->sim, sim.c): the
 * seeded generator every fault decision draws from, and what to inject. A
 * leaf. The system-call layer that consults it is sys_internal.h.
 */
#ifndef ALOOP_SIM_INTERNAL_H
#define ALOOP_SIM_INTERNAL_H

#include <stdint.h>

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

#endif /* ALOOP_SIM_INTERNAL_H */

/*
 * barrier.c - asyncio.Barrier: `parties` tasks wait until all have arrived,
 * then all go on, and the barrier is ready for the next round.
 *
 * asyncio's barrier has a draining phase (released tasks must all leave
 * before new arrivals count towards the next round) because its waiters
 * account for themselves when they resume. Here the waker does the
 * accounting at wake-up time: every released waiter gets its arrival index
 * as the wake-up result and is off the barrier at once, so the next round
 * starts immediately with the same outcome, and a woken waiter never
 * touches the barrier again (it may be freed before the waiter runs).
 *
 * Waiters are wait records on the waiting tasks' stacks: waiting never
 * allocates.
 */
#include "internal.h"

typedef struct barrier_waiter {
    aloop_wait_t wait; /* wait.link: in b->waiters until woken or cancelled */
    aloop_barrier_t *barrier;
} barrier_waiter_t;

struct aloop_barrier {
    aloop_t *loop;
    unsigned parties;
    unsigned count;       /* arrived in this round, still waiting */
    uint8_t broken;       /* aborted: every wait fails until reset */
    aloop_list_t waiters; /* barrier_waiter_t's wait records, in arrival order */
};

aloop_barrier_t *aloop_barrier_new(aloop_t *loop, unsigned parties) {
    if (!loop || parties == 0) return aloop__null_errno(-EINVAL);
    aloop_barrier_t *b = aloop__calloc(1, sizeof *b);
    if (!b) return aloop__null_errno(-ENOMEM);
    b->loop = loop;
    b->parties = parties;
    aloop__list_init(&b->waiters);
    return b;
}

/* Wakes every waiter with result(i) = its arrival index (release) or err. */
static void wake_all(aloop_barrier_t *b, int err) {
    int i = 0;
    while (aloop__wake_first(&b->waiters, err ? err : i)) i++;
    b->count = 0;
}

/* Cancelled while the round fills: the task no longer counts as arrived. */
static void waiter_withdraw(aloop_wait_t *wait) {
    ALOOP_CONTAINER_OF(wait, barrier_waiter_t, wait)->barrier->count--;
}

int aloop_barrier_wait(aloop_barrier_t *b) {
    if (aloop__use_on(b, "aloop_barrier_wait") < 0) return -EINVAL;
    int err;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (b->broken) return -EPIPE;
    unsigned index = b->count;
    if (index + 1 == b->parties) {
        wake_all(b, 0); /* indices 0 .. parties-2, in arrival order */
        return (int)index;
    }
    b->count++;
    /* A cancel takes the task off the count (withdraw). Woken records are
     * not kept (woken == NULL): a released waiter never touches the barrier
     * again. -ECANCELED also when the round completed just before the
     * cancel: the others went on, as in asyncio; there is nothing to undo. */
    barrier_waiter_t w = {.wait = {.withdraw = waiter_withdraw, .what = "aloop_barrier_wait"},
                          .barrier = b};
    return aloop__wait_in(t, &w.wait, &b->waiters, NULL);
}

int aloop_barrier_abort(aloop_barrier_t *b) {
    if (aloop__use_on(b, "aloop_barrier_abort") < 0) return -EINVAL;
    b->broken = 1;
    wake_all(b, -EPIPE);
    return 0;
}

int aloop_barrier_reset(aloop_barrier_t *b) {
    if (aloop__use_on(b, "aloop_barrier_reset") < 0) return -EINVAL;
    wake_all(b, -EPIPE); /* the round under way is broken for its waiters */
    b->broken = 0;
    return 0;
}

unsigned aloop_barrier_parties(const aloop_barrier_t *b) { return b ? b->parties : 0; }

unsigned aloop_barrier_n_waiting(const aloop_barrier_t *b) { return b ? b->count : 0; }

int aloop_barrier_broken(const aloop_barrier_t *b) { return b && b->broken; }

void aloop_barrier_free(aloop_barrier_t *b) {
    if (!b) return;
    wake_all(b, -EPIPE);
    aloop__free(b);
}

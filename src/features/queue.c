/*
 * queue.c - asyncio.Queue, LifoQueue and PriorityQueue, with Python 3.13's
 * shutdown().
 *
 * Storage: FIFO queues use a ring buffer, LIFO queues an array used as a
 * stack, priority queues a binary min-heap ordered by (cmp, sequence number)
 * so equal items come out in the order they were put. A bounded queue
 * allocates its storage once (up to PREALLOC_MAX slots); unbounded ones grow
 * by doubling. In steady state no call allocates.
 *
 * Hand-off: a put that finds a getter waiting gives the item straight to it
 * (the item never touches the storage); a get that frees a slot of a full
 * queue reserves that slot for the first waiting putter. Both are counted
 * (`handed`, `reserved`) until the woken task runs, so a third task cannot
 * barge in: full() and size() say what asyncio would say, and waiters are
 * served strictly in FIFO order.
 *
 * Waiters are queue_waiter_t records on the waiting task's stack, waiting
 * through the core's wake-up protocol (aloop__wait_in): a woken getter or
 * putter (or one woken by a cancel) sits on q->woken until it runs again, so
 * that shutdown can still revoke what it was granted (result -EPIPE), and
 * aloop_queue_free can cut every record loose (aloop__waits_free). A grant
 * whose task is cancelled before it runs is given back by the core through
 * the record's undo hook (queue_undo).
 * Rules when a waiter runs again after a grant and finds itself cancelled:
 * a getter gives its item back (to the next getter, or to the front of the
 * storage), a putter passes its reserved slot to the next putter.
 */
#include "internal.h"

#define PREALLOC_MAX 65536u /* bounded queues up to this size allocate once */
#define INITIAL_CAP 16u

enum queue_kind { QUEUE_FIFO, QUEUE_LIFO, QUEUE_PRIORITY };
enum waiter_kind { WAIT_GET, WAIT_PUT, WAIT_JOIN };

typedef struct prio_entry {
    void *item;
    uint64_t seq;
} prio_entry_t;

struct aloop_queue {
    aloop_t *loop;
    uint8_t kind;
    uint8_t shutdown;
    size_t maxsize; /* 0 = unbounded */
    /* storage: FIFO ring items[head .. head+count) mod cap; LIFO stack
     * items[0 .. count); priority heap heap[0 .. count) */
    void **items;
    prio_entry_t *heap;
    size_t head, count, cap;
    uint64_t back_seq, front_seq; /* priority tie-break: put / given back (older) */
    int (*cmp)(const void *, const void *);
    size_t handed;     /* items given to woken getters that have not run yet */
    size_t reserved;   /* slots promised to woken putters */
    size_t unfinished; /* items put and not yet task_done (join) */
    aloop_list_t getters, putters, joiners, woken;
};

typedef struct queue_waiter {
    aloop_wait_t wait;
    aloop_queue_t *queue; /* for undo; NULL: freed after handing us an item */
    void *item;           /* a putter's item; the item handed to a getter */
    uint8_t kind;         /* enum waiter_kind */
} queue_waiter_t;

/* ------------------------------------------------------------------------ */
/* Storage                                                                  */
/* ------------------------------------------------------------------------ */

static int entry_before(const aloop_queue_t *q, const prio_entry_t *a, const prio_entry_t *b) {
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_push(aloop_queue_t *q, void *item, uint64_t seq) {
    size_t i = q->count++;
    prio_entry_t e = {item, seq};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_before(q, &e, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = e;
}

static void *heap_pop(aloop_queue_t *q) {
    void *top = q->heap[0].item;
    prio_entry_t last = q->heap[--q->count];
    size_t i = 0, n = q->count;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && entry_before(q, &q->heap[child + 1], &q->heap[child])) child++;
        if (!entry_before(q, &q->heap[child], &last)) break;
        q->heap[i] = q->heap[child];
        i = child;
    }
    if (n) q->heap[i] = last;
    return top;
}

/* Makes room for at least `need` stored items: doubles, capped at maxsize. */
static int storage_reserve(aloop_queue_t *q, size_t need) {
    if (ALOOP_LIKELY(need <= q->cap)) return 0;
    size_t cap = q->cap ? q->cap : INITIAL_CAP;
    while (cap < need) cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    if (q->maxsize && cap > q->maxsize) cap = q->maxsize;
    if (q->kind == QUEUE_PRIORITY) {
        if (cap > SIZE_MAX / sizeof *q->heap) return -ENOMEM;
        prio_entry_t *heap = aloop__realloc(q->heap, cap * sizeof *heap);
        if (!heap) return -ENOMEM;
        q->heap = heap;
    } else {
        if (cap > SIZE_MAX / sizeof *q->items) return -ENOMEM;
        void **items = aloop__malloc(cap * sizeof *items);
        if (!items) return -ENOMEM;
        for (size_t i = 0; i < q->count; i++) items[i] = q->items[(q->head + i) % q->cap];
        aloop__free(q->items);
        q->items = items;
        q->head = 0;
    }
    q->cap = cap;
    return 0;
}

/* The storage always has room for count + handed items (so that a handed
 * item can come back); callers reserve before adding. */
static void store_back(aloop_queue_t *q, void *item) {
    switch (q->kind) {
    case QUEUE_FIFO: {
        size_t tail = q->head + q->count;
        q->items[tail < q->cap ? tail : tail - q->cap] = item;
        q->count++;
        break;
    }
    case QUEUE_LIFO: q->items[q->count++] = item; break;
    default: heap_push(q, item, q->back_seq++); break;
    }
}

/* Stores an item given back by a cancelled getter. It was handed over
 * while the queue was empty, so it is older than every stored item: it goes
 * where the oldest item goes (the front of a FIFO, the bottom of a LIFO
 * stack, first among equals in a priority queue). Rare, so the LIFO's
 * memmove does not matter. */
static void store_oldest(aloop_queue_t *q, void *item) {
    switch (q->kind) {
    case QUEUE_FIFO:
        q->head = q->head ? q->head - 1 : q->cap - 1;
        q->items[q->head] = item;
        q->count++;
        break;
    case QUEUE_LIFO:
        memmove(q->items + 1, q->items, q->count * sizeof *q->items);
        q->items[0] = item;
        q->count++;
        break;
    default: heap_push(q, item, q->front_seq--); break;
    }
}

static void *store_take(aloop_queue_t *q) {
    switch (q->kind) {
    case QUEUE_FIFO: {
        void *item = q->items[q->head];
        if (++q->head == q->cap) q->head = 0;
        q->count--;
        return item;
    }
    case QUEUE_LIFO: return q->items[--q->count];
    default: return heap_pop(q);
    }
}

/* ------------------------------------------------------------------------ */
/* Waiters                                                                  */
/* ------------------------------------------------------------------------ */

/* Wakes the first waiter of list (NULL if none). */
static queue_waiter_t *wake_first(aloop_list_t *list, int result) {
    aloop_wait_t *w = aloop__wake_first(list, result);
    return w ? ALOOP_CONTAINER_OF(w, queue_waiter_t, wait) : NULL;
}

static void queue_undo(aloop_wait_t *w);

/* Suspends the running task as a waiter of the given kind (getters and
 * putters stay reachable through q->woken once woken; joiners never touch
 * q again). On return w->wait.result == -EPIPE if the grant was revoked or
 * the queue freed: then q must not be touched. */
static int queue_wait(aloop_queue_t *q, aloop_task_impl_t *t, aloop_list_t *list,
                      queue_waiter_t *w) {
    w->wait.undo = queue_undo;
    w->wait.what = "aloop_queue";
    w->queue = q;
    return aloop__wait_in(t, &w->wait, list, w->kind == WAIT_JOIN ? NULL : &q->woken);
}

/* ------------------------------------------------------------------------ */
/* Core operations                                                          */
/* ------------------------------------------------------------------------ */

static int queue_is_full(const aloop_queue_t *q) {
    return q->maxsize && q->count + q->handed + q->reserved >= q->maxsize;
}

/* Hands item straight to the first waiting getter, if there is one. */
static int hand_to_getter(aloop_queue_t *q, void *item) {
    if (aloop__list_empty(&q->getters)) return 0;
    queue_waiter_t *g = ALOOP_CONTAINER_OF(q->getters.next, queue_waiter_t, wait.link);
    g->item = item;
    q->handed++;
    wake_first(&q->getters, 0);
    return 1;
}

/* Adds an item to a queue that has room: straight to the first waiting
 * getter, else into the storage. -ENOMEM if an unbounded queue cannot grow. */
static int queue_add(aloop_queue_t *q, void *item) {
    if (storage_reserve(q, q->count + q->handed + 1) < 0) return -ENOMEM;
    q->unfinished++;
    if (!hand_to_getter(q, item)) store_back(q, item);
    return 0;
}

/* A slot came free (an item left, or a reserved slot was given up): the
 * first waiting putter gets it. */
static void slot_freed(aloop_queue_t *q) {
    if (!aloop__list_empty(&q->putters)) {
        q->reserved++;
        wake_first(&q->putters, 0);
    }
}

static void *queue_take(aloop_queue_t *q) {
    void *item = store_take(q);
    slot_freed(q);
    return item;
}

/* A woken getter was cancelled before it ran: its item goes to the next
 * getter, or back into the storage as its oldest item (room is
 * guaranteed). */
static void give_back(aloop_queue_t *q, void *item) {
    if (!hand_to_getter(q, item)) store_oldest(q, item);
}

/* The core's undo: a grant whose task was cancelled before it ran. A getter
 * gives its item back; a putter passes its reserved slot on. */
static void queue_undo(aloop_wait_t *w) {
    queue_waiter_t *qw = ALOOP_CONTAINER_OF(w, queue_waiter_t, wait);
    aloop_queue_t *q = qw->queue;
    if (qw->kind == WAIT_GET) {
        q->handed--;
        give_back(q, qw->item); /* still counts against maxsize */
    } else if (qw->kind == WAIT_PUT) {
        q->reserved--;
        slot_freed(q);
    }
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

static aloop_queue_t *queue_new(aloop_t *loop, size_t maxsize, int kind,
                                int (*cmp)(const void *, const void *)) {
    if (!loop || (kind == QUEUE_PRIORITY && !cmp)) return aloop__null_errno(-EINVAL);
    aloop_queue_t *q = aloop__calloc(1, sizeof *q);
    if (!q) goto nomem;
    q->loop = loop;
    q->kind = (uint8_t)kind;
    q->maxsize = maxsize;
    q->cmp = cmp;
    q->back_seq = UINT64_C(1) << 63;
    q->front_seq = q->back_seq - 1;
    aloop__list_init(&q->getters);
    aloop__list_init(&q->putters);
    aloop__list_init(&q->joiners);
    aloop__list_init(&q->woken);
    size_t initial = maxsize && maxsize <= PREALLOC_MAX ? maxsize : INITIAL_CAP;
    if (storage_reserve(q, initial) < 0) {
        aloop__free(q);
        goto nomem;
    }
    return q;
nomem:
    return aloop__null_errno(-ENOMEM);
}

aloop_queue_t *aloop_queue_new(aloop_t *loop, size_t maxsize) {
    return queue_new(loop, maxsize, QUEUE_FIFO, NULL);
}

aloop_queue_t *aloop_queue_new_lifo(aloop_t *loop, size_t maxsize) {
    return queue_new(loop, maxsize, QUEUE_LIFO, NULL);
}

aloop_queue_t *aloop_queue_new_priority(aloop_t *loop, size_t maxsize,
                                        int (*cmp)(const void *a, const void *b)) {
    return queue_new(loop, maxsize, QUEUE_PRIORITY, cmp);
}

int aloop_queue_put_nowait(aloop_queue_t *q, void *item) {
    if (aloop__use_on(q, "aloop_queue_put_nowait") < 0) return -EINVAL;
    if (q->shutdown) return -EPIPE;
    if (queue_is_full(q)) return -EAGAIN;
    return queue_add(q, item);
}

int aloop_queue_get_nowait(aloop_queue_t *q, void **item) {
    if (!q || aloop__check_loop(q->loop, "aloop_queue_get_nowait") < 0 || !item) return -EINVAL;
    if (q->count) {
        *item = queue_take(q);
        return 0;
    }
    return q->shutdown ? -EPIPE : -EAGAIN;
}

int aloop_queue_put(aloop_queue_t *q, void *item) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(q, "aloop_queue_put", &err);
    if (!t) return err;
    if (q->shutdown) return -EPIPE;
    if (ALOOP_LIKELY(!queue_is_full(q))) return queue_add(q, item);

    queue_waiter_t w = {.kind = WAIT_PUT, .item = item};
    int rc = queue_wait(q, t, &q->putters, &w);
    if (rc < 0) return rc; /* -EPIPE (shut down, freed), -ECANCELED (slot handed on) */
    q->reserved--; /* the slot reserved for us */
    return queue_add(q, item);
}

int aloop_queue_get(aloop_queue_t *q, void **item) {
    int err;
    if (!q || aloop__check_loop(q->loop, "aloop_queue_get") < 0 || !item) return -EINVAL;
    aloop_task_impl_t *t = aloop__enter(&err);
    if (!t) return err;
    if (ALOOP_LIKELY(q->count)) {
        *item = queue_take(q);
        return 0;
    }
    if (q->shutdown) return -EPIPE;

    queue_waiter_t w = {.kind = WAIT_GET};
    int rc = queue_wait(q, t, &q->getters, &w);
    if (rc < 0) return rc; /* -EPIPE (shut down, freed), -ECANCELED (item given back) */
    if (w.queue) { /* else the queue was freed after handing us the item */
        q->handed--;
        slot_freed(q); /* the handed item was using a slot until now */
    }
    *item = w.item;
    return 0;
}

size_t aloop_queue_size(const aloop_queue_t *q) { return q ? q->count + q->handed : 0; }

int aloop_queue_empty(const aloop_queue_t *q) { return q && aloop_queue_size(q) == 0; }

int aloop_queue_full(const aloop_queue_t *q) { return q && queue_is_full(q); }

void aloop_queue_task_done(aloop_queue_t *q) {
    if (aloop__use_on(q, "aloop_queue_task_done") < 0) return;
    if (q->unfinished == 0) {
        /* asyncio raises ValueError: task_done() called too many times */
        if (q->loop->flags & ALOOP_DEBUG)
            aloop__warn(q->loop, "aloop_queue_task_done called more often than items were put");
        return;
    }
    if (--q->unfinished == 0) aloop__wake_all(&q->joiners, 0);
}

int aloop_queue_join(aloop_queue_t *q) {
    int err;
    aloop_task_impl_t *t = aloop__enter_on(q, "aloop_queue_join", &err);
    if (!t) return err;
    if (q->unfinished == 0) return 0;
    queue_waiter_t w = {.kind = WAIT_JOIN};
    return queue_wait(q, t, &q->joiners, &w);
}

/* Takes back what woken waiters were granted but have not used yet:
 * reserved slots always, handed items when the shutdown is immediate. */
static void revoke_grants(aloop_queue_t *q, int immediate) {
    for (aloop_list_t *n = q->woken.next; n != &q->woken; n = n->next) {
        queue_waiter_t *w = ALOOP_CONTAINER_OF(n, queue_waiter_t, wait.link);
        if (w->wait.result != 0) continue;
        if (w->kind == WAIT_PUT) {
            q->reserved--;
            w->wait.result = -EPIPE;
        } else if (w->kind == WAIT_GET && immediate) {
            q->handed--;
            if (q->unfinished) q->unfinished--;
            w->wait.result = -EPIPE;
        }
    }
}

void aloop_queue_shutdown(aloop_queue_t *q, int immediate) {
    if (aloop__use_on(q, "aloop_queue_shutdown") < 0) return;
    q->shutdown = 1;
    revoke_grants(q, immediate);
    if (immediate) {
        while (q->count) {
            store_take(q);
            if (q->unfinished) q->unfinished--;
        }
        if (q->unfinished == 0) aloop__wake_all(&q->joiners, 0);
    }
    /* Getters only wait on an empty queue: with no put possible any more
     * they would wait for ever. Putters can never put now. */
    aloop__wake_all(&q->getters, -EPIPE);
    aloop__wake_all(&q->putters, -EPIPE);
}

void aloop_queue_free(aloop_queue_t *q) {
    if (!q) return;
    /* A getter handed an item keeps it (it is not the queue's any more);
     * every other grant is void. */
    for (aloop_list_t *n = q->woken.next; n != &q->woken;) {
        queue_waiter_t *w = ALOOP_CONTAINER_OF(n, queue_waiter_t, wait.link);
        n = n->next;
        if (w->kind == WAIT_GET && w->wait.result == 0) {
            w->queue = NULL;
            aloop__list_remove(&w->wait.link);
        }
    }
    aloop__waits_free(&q->getters, NULL, -EPIPE);
    aloop__waits_free(&q->putters, NULL, -EPIPE);
    aloop__waits_free(&q->joiners, &q->woken, -EPIPE);
    aloop__free(q->items);
    aloop__free(q->heap);
    aloop__free(q);
}

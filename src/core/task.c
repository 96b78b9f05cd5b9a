/*
 * task.c - tasks: futures driven by a coroutine. Spawning makes only the
 * task struct (from the loop's pool in steady state) and pushes it onto the
 * ready ring; the scheduler gives it a coroutine when it first runs
 * (sched.c's first-run path), so a million pending tasks cost a million
 * task structs, not a million stacks.
 *
 * Cancellation follows asyncio: aloop_cancel() counts a request and marks a
 * cancel for delivery; if the task is suspended it is woken at once with
 * -ECANCELED (its wait record is unregistered first), except in aloop_await
 * where the awaited future is cancelled instead and the task wakes when
 * that future is done. A task still counting cancel requests when it
 * returns completes as cancelled.
 */
#include "internal.h"

#include <sys/mman.h>

#if defined(ALOOP_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
#endif

/* ---- task structs: slabs.
 *
 * Spawning a million tasks and gathering them spent ~380 of its ~870
 * instructions per task in glibc's malloc/calloc/free, and its system time
 * in first-touch page faults. Task structs are therefore carved from 2 MiB
 * slabs, aligned to their size so that a task finds its slab by masking its
 * own address: taking one is a pop from the slab's free list (or the next
 * never-used slot, already zero), giving one back a push. A loop's second
 * and later slabs are flagged MADV_HUGEPAGE (one fault per 2 MiB where
 * transparent huge pages are on); the first is not, so a small program
 * does not pay a huge page for a few tasks. A slab is unmapped when its
 * last task comes back (the loop keeps one, so spawn + await does not map
 * and unmap); slabs still holding tasks when the loop is freed are
 * orphaned and unmapped by the last release.
 *
 * Under ASan tasks come from malloc instead, so that a use of a released
 * task or a leaked one is still reported; for valgrind each slot is
 * announced as a heap block (MALLOCLIKE / FREELIKE), to the same end. */
#define TASK_SLAB_SIZE ((size_t)2 << 20)
#define TASK_SLAB_SLOTS (TASK_SLAB_SIZE / sizeof(aloop_task_impl_t))

typedef struct task_slab {
    aloop_list_t all;      /* loop->slabs.all */
    aloop_list_t partial;  /* loop->slabs.partial while a slot is free */
    aloop_t *loop;         /* NULL once the loop was freed (orphan) */
    aloop_task_impl_t *free; /* given-back slots, linked through fut.live.next */
    unsigned used;         /* slots handed out */
    unsigned fresh;        /* slots [fresh, TASK_SLAB_SLOTS) never handed out */
} task_slab_t;              /* lives in slot 0 */

static int use_slabs(void) {
#if defined(ALOOP_ASAN)
    return 0;
#else
    return 1;
#endif
}

#if !defined(ALOOP_HAVE_VALGRIND)
#define VALGRIND_MALLOCLIKE_BLOCK(addr, size, rz, zeroed) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(addr, rz) ((void)0)
#define VALGRIND_MAKE_MEM_DEFINED(addr, size) ((void)0)
#endif

static task_slab_t *slab_of(aloop_task_impl_t *t) {
    return (task_slab_t *)((uintptr_t)t & ~(uintptr_t)(TASK_SLAB_SIZE - 1));
}

static int slab_full(const task_slab_t *s) {
    return !s->free && s->fresh == TASK_SLAB_SLOTS;
}

static task_slab_t *slab_new(aloop_t *loop) {
    task_slab_t *s = aloop__map_aligned(TASK_SLAB_SIZE);
    if (!s) return NULL;
#ifdef MADV_HUGEPAGE
    if (!aloop__list_empty(&loop->slabs.all)) madvise(s, TASK_SLAB_SIZE, MADV_HUGEPAGE);
#endif
    s->loop = loop;
    s->fresh = 1; /* slot 0 is this header */
    aloop__list_push_back(&loop->slabs.all, &s->all);
    aloop__list_push_front(&loop->slabs.partial, &s->partial);
    loop->slabs.count++;
    return s;
}

static aloop_task_impl_t *slab_take(aloop_t *loop) {
    task_slab_t *s;
    if (!aloop__list_empty(&loop->slabs.partial))
        s = ALOOP_CONTAINER_OF(loop->slabs.partial.next, task_slab_t, partial);
    else if (!(s = slab_new(loop)))
        return NULL;
    aloop_task_impl_t *t;
    if (s->free) {
        static const aloop_task_impl_t blank;
        t = s->free;
        VALGRIND_MAKE_MEM_DEFINED(&t->fut.live.next, sizeof t->fut.live.next);
        s->free = (aloop_task_impl_t *)(void *)t->fut.live.next;
        VALGRIND_MALLOCLIKE_BLOCK(t, sizeof *t, 0, 0);
        *t = blank;
    } else {
        t = (aloop_task_impl_t *)(void *)s + s->fresh++; /* zero since mapped */
        VALGRIND_MALLOCLIKE_BLOCK(t, sizeof *t, 0, 1);
    }
    s->used++;
    if (slab_full(s)) aloop__list_remove(&s->partial);
    return t;
}

static void slab_unmap(task_slab_t *s) {
    aloop__list_remove(&s->all);
    aloop__list_remove(&s->partial);
    if (s->loop) s->loop->slabs.count--;
    aloop__unmap(s, TASK_SLAB_SIZE);
}

static void slab_give(aloop_task_impl_t *t) {
    task_slab_t *s = slab_of(t);
    if (s->loop && slab_full(s)) aloop__list_push_front(&s->loop->slabs.partial, &s->partial);
    t->fut.live.next = (aloop_list_t *)(void *)s->free;
    s->free = t;
    VALGRIND_FREELIKE_BLOCK(t, 0);
    if (--s->used == 0 && (!s->loop || s->loop->slabs.count > 1)) slab_unmap(s);
}

static aloop_task_impl_t *task_alloc(aloop_t *loop) {
    if (!use_slabs()) return aloop__calloc(1, sizeof(aloop_task_impl_t));
    aloop_task_impl_t *t = slab_take(loop);
    if (!t) errno = ENOMEM;
    return t;
}

static void task_free(aloop_task_impl_t *t) {
    if (use_slabs())
        slab_give(t);
    else
        aloop__free(t);
}

/* future.c's hook for a task's last release (loop: NULL once detached). */
static void task_dispose(aloop_t *loop, aloop_future_t *f) {
    aloop_task_impl_t *t = aloop__task(f);
    ALOOP_UNUSED(loop);
    if (t->name) aloop__free(t->name); /* mostly NULL: skip the call */
    task_free(t);
}

void aloop__tasks_init(aloop_t *loop) {
    aloop__list_init(&loop->tasks);
    aloop__list_init(&loop->slabs.all);
    aloop__list_init(&loop->slabs.partial);
    loop->task_dispose = task_dispose;
    loop->task_label = aloop__task_label;
}

/* Loop teardown: unmaps the empty slabs; the others hold tasks the user
 * still has (detached): orphaned, unmapped by the last release. */
void aloop__task_pool_free(aloop_t *loop) {
    while (!aloop__list_empty(&loop->slabs.all)) {
        task_slab_t *s = ALOOP_CONTAINER_OF(loop->slabs.all.next, task_slab_t, all);
        if (s->used == 0) {
            slab_unmap(s);
            continue;
        }
        aloop__list_remove(&s->all);
        aloop__list_remove(&s->partial);
        s->loop = NULL;
        loop->slabs.count--;
    }
}

aloop_task_t *aloop_spawn(aloop_t *loop, aloop_task_fn fn, void *arg) {
    if (!loop || !fn) return aloop__null_errno(-EINVAL);
    if (aloop__foreign_thread(loop))
        return aloop__null_errno(aloop__wrong_thread(loop, "aloop_spawn"));
    aloop_task_impl_t *t = task_alloc(loop);
    if (!t) return NULL;
    if (aloop__reserve_runnable(loop) < 0) {
        task_free(t);
        return aloop__null_errno(-ENOMEM);
    }
    aloop__future_init_on(&t->fut, loop, &loop->tasks); /* unfinished: on loop->tasks */
    t->fut.run.kind = ALOOP__RUN_TASK;
    t->fut.is_task = 1;
    t->fut.refs = 2; /* the caller's and the loop's, dropped when it finishes */
    t->fn = fn;
    t->arg = arg;
    t->id = ++loop->next_task_id;
#if defined(__GNUC__)
    t->spawn_site = __builtin_return_address(0);
#endif
    loop->task_count++;
    t->queued = 1;
    aloop__make_ready(loop, &t->fut.run);
    loop->stats.tasks_spawned++;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP__HOOKED)) aloop__hook_spawn(loop, t);
    return &t->fut;
}

/* Under simulation: the replay line of the first task that fails. */
static ALOOP_NOINLINE void report_failure(aloop_task_impl_t *t, int error) {
    char name[64], what[160];
    aloop__task_label(t, name, sizeof name); /* allocates nothing */
    snprintf(what, sizeof what, "task '%s' failed: %s", name, aloop_strerror(error));
    aloop__sim_report(t->fut.loop, what);
}

void aloop__task_finish(aloop_task_impl_t *t, void *result) {
    aloop_t *loop = t->fut.loop;
    int state = ALOOP__DONE, error = 0;
    if (ALOOP_UNLIKELY(t->timeouts != NULL)) t->timeouts->task_done(t);
    int failed = t->fut.error; /* aloop_fail's, kept there while pending */
    if (failed && !(failed == -ECANCELED && t->cancel_requests)) {
        error = failed;
        result = NULL;
    } else if (t->cancel_requests > 0 || failed) {
        state = ALOOP__CANCELLED;
        error = -ECANCELED;
        result = NULL;
    }
    t->fut.error = 0;
    if (ALOOP_UNLIKELY(loop->sim.seed) && error && error != -ECANCELED) report_failure(t, error);
    aloop__list_remove(&t->fut.live); /* from loop->tasks to loop->futures */
    aloop__list_push_back(&loop->futures, &t->fut.live);
    loop->task_count--;
    t->coro = NULL;
    t->must_cancel = 0;
    aloop__future_complete(&t->fut, state, error, result);
    aloop__release_runnable(loop);
    loop->stats.tasks_done++;
    if (ALOOP_UNLIKELY(loop->flags & ALOOP__HOOKED)) aloop__hook_done(loop, t);
    aloop_release(&t->fut);
}

int aloop__task_cancel(aloop_task_impl_t *t) {
    if (t->fut.state != ALOOP__PENDING) return 0;
    t->cancel_requests++;
    t->must_cancel = 1;
    aloop_wait_t *w = t->wait;
    if (!w) return 1; /* running, ready, or not started: delivered at the next suspension */
    if (w->awaiting) {
        aloop_cancel(w->awaiting);
        return 1;
    }
    if (w->cancel) w->cancel(w);
    aloop__wake(w, -ECANCELED);
    return 1;
}

int aloop_cancel(aloop_future_t *f) {
    if (!f) return -EINVAL;
    if (f->is_task) return aloop__task_cancel(aloop__task(f));
    if (f->state != ALOOP__PENDING || !f->loop) return 0;
    aloop__future_complete(f, ALOOP__CANCELLED, -ECANCELED, NULL);
    return 1;
}

int aloop_task_uncancel(aloop_task_t *f) {
    if (!f || !f->is_task) return -EINVAL;
    aloop_task_impl_t *t = aloop__task(f);
    if (t->cancel_requests > 0) t->cancel_requests--;
    if (t->cancel_requests == 0) t->must_cancel = 0;
    return t->cancel_requests;
}

int aloop_task_cancelling(const aloop_task_t *f) {
    if (!f || !f->is_task) return -EINVAL;
    return ((const aloop_task_impl_t *)(const void *)f)->cancel_requests;
}

void *aloop_fail(ssize_t err) {
    aloop_task_impl_t *t = aloop__current_task();
    /* until it completes; an err that is no errno at all is -EINVAL too */
    if (t) t->fut.error = err < 0 && err >= -INT_MAX ? (int)err : -EINVAL;
    return NULL;
}

int aloop_task_set_name(aloop_task_t *f, const char *name) {
    if (!f || !f->is_task || !name) return -EINVAL;
    char *copy = aloop__strdup(name);
    if (!copy) return -ENOMEM;
    aloop_task_impl_t *t = aloop__task(f);
    aloop__free(t->name);
    t->name = copy;
    return 0;
}

/* "Task-<id>" into buf without stdio (the overflow report calls this from
 * a signal handler). */
static void default_name(const aloop_task_impl_t *t, char *buf, size_t n) {
    char digits[24], *p = digits + sizeof digits;
    unsigned long long v = (unsigned long long)t->id;
    *--p = '\0';
    do *--p = (char)('0' + v % 10); while ((v /= 10) != 0);
    size_t at = 0;
    if (!n) return;
    for (const char *s = "Task-"; *s && at + 1 < n; s++) buf[at++] = *s;
    for (; *p && at + 1 < n; p++) buf[at++] = *p;
    buf[at] = '\0';
}

void aloop__task_label(const void *task, char *buf, size_t n) {
    const aloop_task_impl_t *t = task;
    size_t at = 0;
    if (!n) return;
    if (!t) {
        buf[0] = '\0';
        return;
    }
    if (!t->name) {
        default_name(t, buf, n);
        return;
    }
    for (const char *s = t->name; *s && at + 1 < n; s++) buf[at++] = *s;
    buf[at] = '\0';
}

/* The default name is made the first time it is asked for (most tasks
 * never are), so it costs the task struct one pointer, not a buffer. */
const char *aloop_task_name(const aloop_task_t *f) {
    if (!f || !f->is_task) return NULL;
    aloop_task_impl_t *t = aloop__task((aloop_future_t *)f);
    if (t->name) return t->name;
    char buf[32];
    default_name(t, buf, sizeof buf);
    t->name = aloop__strdup(buf);
    return t->name ? t->name : "Task"; /* out of memory: a name, if not its own */
}

size_t aloop_all_tasks(aloop_t *loop, aloop_task_t **out, size_t cap) {
    if (!loop) return 0;
    size_t n = 0;
    for (aloop_list_t *l = loop->tasks.next; l != &loop->tasks; l = l->next, n++) {
        if (n < cap && out) out[n] = &ALOOP_CONTAINER_OF(l, aloop_task_impl_t, fut.live)->fut;
    }
    return n;
}

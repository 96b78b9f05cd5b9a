/*
 * test_backtrace.c - aloop_task_backtrace (src/backtrace.c) and the frames
 * aloop_dump prints, through the public API as a user sees them: this
 * program is built with frame pointers and linked with -rdynamic, so its
 * own functions are named by dladdr (tests/CMakeLists.txt).
 */
#include "aloop_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

/* Exported (the build hides symbols by default; -rdynamic then puts these
 * in the dynamic symbol table, where dladdr finds them). */
#define NOINLINE __attribute__((noinline, visibility("default")))

void *bt_sleeper(void *arg);
int bt_inner_sleep(int depth);
void *bt_getter(void *arg);
void *bt_self(void *arg);
void *bt_deep(void *arg);
int bt_recurse(int depth);
void *bt_far(void *arg);

/* 1 if one of frames[0..n) is inside the function called name (by dladdr). */
static int frames_name(void **frames, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        Dl_info info;
        if (dladdr((char *)frames[i] - 1, &info) && info.dli_sname &&
            strcmp(info.dli_sname, name) == 0)
            return i + 1;
    }
    return 0;
}

NOINLINE int bt_inner_sleep(int depth) {
    int rc = aloop_sleep(10);
    return rc + depth; /* work after the call: no tail call */
}

NOINLINE void *bt_sleeper(void *arg) {
    int rc = bt_inner_sleep(1);
    return (void *)(intptr_t)(rc + (arg != NULL));
}

static void test_suspended_task_names_its_functions(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, bt_sleeper, NULL);
    assert_int_equal(aloop_run_once(loop, 0), 1); /* it runs and sleeps */
    assert_false(aloop_future_done(t));
    void *frames[64];
    int n = aloop_task_backtrace(t, frames, 64);
    assert_true(n >= 3);
    int sleep_at = frames_name(frames, n, "aloop_sleep");
    int inner_at = frames_name(frames, n, "bt_inner_sleep");
    int outer_at = frames_name(frames, n, "bt_sleeper");
    /* innermost first: the library's frames, then ours. aloop_sleep's own
     * frame may be missing (gcc -O2 on aarch64 makes it a tail call to its
     * internal twin) or be the innermost one (the switch inlined into it). */
    assert_true(inner_at >= 1);
    if (sleep_at >= 0) assert_true(inner_at > sleep_at);
    assert_true(outer_at == inner_at + 1);
    /* max bounds what is stored */
    void *two[2];
    assert_int_equal(aloop_task_backtrace(t, two, 2), 2);
    assert_ptr_equal(two[0], frames[0]);
    assert_ptr_equal(two[1], frames[1]);
    assert_int_equal(aloop_task_backtrace(t, NULL, 0), 0);
    aloop_cancel(t);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
}

typedef struct getter_ctx {
    aloop_queue_t *q;
    aloop_event_t *ev;
    int which;
} getter_ctx_t;

NOINLINE void *bt_getter(void *arg) {
    getter_ctx_t *c = arg;
    void *item = NULL;
    int rc = c->which ? aloop_event_wait(c->ev) : aloop_queue_get(c->q, &item);
    return (void *)(intptr_t)(rc + 1);
}

/* Suspended in other primitives (a queue, an event), and still after other
 * tasks ran meanwhile on other stacks. */
static void test_backtrace_in_queue_and_event(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    getter_ctx_t a = {.q = aloop_queue_new(loop, 1), .which = 0};
    getter_ctx_t b = {.ev = aloop_event_new(loop), .which = 1};
    assert_non_null(a.q);
    assert_non_null(b.ev);
    aloop_task_t *ta = aloop_spawn(loop, bt_getter, &a);
    aloop_task_t *tb = aloop_spawn(loop, bt_getter, &b);
    aloop_task_t *tc = aloop_spawn(loop, bt_sleeper, NULL);
    assert_int_equal(aloop_run_once(loop, 0), 1);
    void *frames[32];
    int n = aloop_task_backtrace(ta, frames, 32);
    assert_true(frames_name(frames, n, "aloop_queue_get") > 0);
    assert_true(frames_name(frames, n, "bt_getter") > 0);
    assert_false(frames_name(frames, n, "aloop_event_wait"));
    n = aloop_task_backtrace(tb, frames, 32);
    assert_true(frames_name(frames, n, "aloop_event_wait") > 0);
    assert_true(frames_name(frames, n, "bt_getter") > 0);
    n = aloop_task_backtrace(tc, frames, 32);
    assert_true(frames_name(frames, n, "bt_inner_sleep") > 0);
    aloop_cancel(ta);
    aloop_cancel(tb);
    aloop_cancel(tc);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(ta);
    aloop_release(tb);
    aloop_release(tc);
    aloop_queue_free(a.q);
    aloop_event_free(b.ev);
    aloop_free(loop);
}

NOINLINE void *bt_self(void *arg) {
    int *found = arg;
    void *frames[32];
    int n = aloop_task_backtrace(aloop_current_task(), frames, 32);
    /* frames[0] is in this function: the caller's own stack */
    *found = n > 0 && frames_name(frames, 1, "bt_self") == 1;
    return NULL;
}

static void test_running_task_walks_its_own_stack(void **state) {
    (void)state;
    int found = 0;
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    assert_int_equal(aloop_main_with(&cfg, bt_self, &found, NULL), 0);
    assert_true(found);
}

NOINLINE int bt_recurse(int depth) {
    if (depth == 0) return aloop_sleep(1);
    int rc = bt_recurse(depth - 1);
    return rc + 0 * depth;
}

NOINLINE void *bt_deep(void *arg) {
    return (void *)(intptr_t)bt_recurse((int)(intptr_t)arg);
}

/* A deep stack: max bounds the walk, and with room it reaches the bottom. */
static void test_deep_stack_is_bounded(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, bt_deep, (void *)(intptr_t)200);
    assert_int_equal(aloop_run_once(loop, 0), 1);
    static void *frames[400];
    assert_int_equal(aloop_task_backtrace(t, frames, 50), 50);
    int n = aloop_task_backtrace(t, frames, 400);
    assert_true(n > 200);
    assert_true(n < 400);
    int recursed = 0;
    for (int i = 0; i < n; i++) recursed += frames_name(frames + i, 1, "bt_recurse") == 1;
    assert_int_equal(recursed, 201);
    assert_true(frames_name(frames, n, "bt_deep") > 0);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
}

static void *nothing(void *arg) { return arg; }

static void test_not_started_done_and_bad_arguments(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    void *frames[8];
    aloop_task_t *t = aloop_spawn(loop, nothing, NULL);
    assert_int_equal(aloop_task_backtrace(t, frames, 8), 0); /* not started */
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_done(t));
    assert_int_equal(aloop_task_backtrace(t, frames, 8), 0); /* done */
    assert_int_equal(aloop_task_backtrace(NULL, frames, 8), -EINVAL);
    assert_int_equal(aloop_task_backtrace(t, frames, -1), -EINVAL);
    assert_int_equal(aloop_task_backtrace(t, NULL, 8), -EINVAL);
    aloop_future_t *f = aloop_future_new(loop);
    assert_int_equal(aloop_task_backtrace(f, frames, 8), -EINVAL); /* not a task */
    aloop_release(f);
    aloop_release(t);
    aloop_free(loop);
}

/* aloop_dump prints each suspended task's frames, symbolized. */
static void test_dump_prints_frames(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, bt_sleeper, NULL);
    aloop_task_set_name(t, "dreamer");
    assert_int_equal(aloop_run_once(loop, 0), 1);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    aloop_dump(loop, out);
    fclose(out);
    const char *task = strstr(text, "task 'dreamer' #1: suspended");
    assert_non_null(task);
    const char *inner = strstr(task, "bt_inner_sleep+0x");
    assert_non_null(inner);
    assert_non_null(strstr(inner, "(test_backtrace)"));
    assert_non_null(strstr(inner, "bt_sleeper+0x"));
    free(text);
    aloop_cancel(t);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
}

/* From a callback (not a task): every task's frames. */
typedef struct cb_dump {
    char *text;
    size_t len;
} cb_dump_t;

static void dump_from_callback(void *arg) {
    cb_dump_t *d = arg;
    FILE *out = open_memstream(&d->text, &d->len);
    aloop_dump(aloop_current(), out);
    fclose(out);
}

static void test_dump_from_a_callback(void **state) {
    (void)state;
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, bt_sleeper, NULL);
    cb_dump_t d = {0};
    assert_int_equal(aloop_run_once(loop, 0), 1);
    assert_non_null(aloop_call_soon(loop, dump_from_callback, &d));
    assert_int_equal(aloop_run_once(loop, 0), 1);
    assert_non_null(d.text);
    assert_non_null(strstr(d.text, "bt_inner_sleep+0x"));
    free(d.text);
    aloop_cancel(t);
    assert_int_equal(aloop_run(loop), 0);
    aloop_release(t);
    aloop_free(loop);
}

/* A loop running on another thread: its tasks' stacks change under us,
 * so asking is refused. */
typedef struct far_loop {
    aloop_t *loop;
    int ready[2];
} far_loop_t;

NOINLINE void *bt_far(void *arg) {
    far_loop_t *f = arg;
    char one = 1;
    if (write(f->ready[1], &one, 1) != 1) return NULL;
    return (void *)(intptr_t)aloop_sleep(3600);
}

static void *far_thread(void *arg) {
    far_loop_t *f = arg;
    aloop_run(f->loop); /* until aloop_stop */
    return NULL;
}

static void test_other_threads_loop_is_refused(void **state) {
    (void)state;
    far_loop_t f;
    assert_int_equal(pipe(f.ready), 0);
    f.loop = aloop_new();
    aloop_task_t *t = aloop_spawn(f.loop, bt_far, &f);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, far_thread, &f), 0);
    char c;
    assert_int_equal(read(f.ready[0], &c, 1), 1); /* it runs there now */
    void *frames[8];
    assert_int_equal(aloop_task_backtrace(t, frames, 8), -EPERM);
    aloop_stop(f.loop);
    pthread_join(th, NULL);
    assert_true(aloop_task_backtrace(t, frames, 8) > 0); /* stopped: fine now */
    aloop_cancel(t);
    assert_int_equal(aloop_run(f.loop), 0);
    aloop_release(t);
    aloop_free(f.loop);
    close(f.ready[0]);
    close(f.ready[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suspended_task_names_its_functions),
        cmocka_unit_test(test_backtrace_in_queue_and_event),
        cmocka_unit_test(test_running_task_walks_its_own_stack),
        cmocka_unit_test(test_deep_stack_is_bounded),
        cmocka_unit_test(test_not_started_done_and_bad_arguments),
        cmocka_unit_test(test_dump_prints_frames),
        cmocka_unit_test(test_dump_from_a_callback),
        cmocka_unit_test(test_other_threads_loop_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

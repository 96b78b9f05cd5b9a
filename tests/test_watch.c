/* Tests for src/watch.c: callback fd watches (aloop_add_reader / writer). */
#include "aloop_test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>


typedef struct watch_ctx {
    aloop_t *loop;
    int fds[2];     /* socketpair: fds[0] is watched, fds[1] is the peer */
    int calls_a, calls_b, wcalls;
    int consume;    /* reader reads what is there */
    int remove_at;  /* reader removes itself on this call (0 = never) */
    int remove_writer; /* reader removes the writer watch */
    char log[64];
} watch_ctx_t;

static watch_ctx_t *new_ctx(void) {
    watch_ctx_t *c = calloc(1, sizeof *c);
    c->loop = vloop();
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fds), 0);
    fcntl(c->fds[0], F_SETFL, O_NONBLOCK);
    return c;
}

static void free_ctx(watch_ctx_t *c) {
    aloop_free(c->loop);
    close(c->fds[0]);
    close(c->fds[1]);
    free(c);
}

static void reader_a(int fd, void *arg) {
    watch_ctx_t *c = arg;
    assert_int_equal(fd, c->fds[0]);
    c->calls_a++;
    strcat(c->log, "a");
    if (c->consume) {
        char buf[64];
        while (read(fd, buf, sizeof buf) > 0) {}
    }
    if (c->remove_writer) assert_int_equal(aloop_remove_writer(c->loop, fd), 1);
    if (c->remove_at && c->calls_a == c->remove_at) assert_int_equal(aloop_remove_reader(c->loop, fd), 1);
}

static void reader_b(int fd, void *arg) {
    watch_ctx_t *c = arg;
    c->calls_b++;
    strcat(c->log, "b");
    assert_int_equal(aloop_remove_reader(c->loop, fd), 1);
}

static void writer(int fd, void *arg) {
    watch_ctx_t *c = arg;
    c->wcalls++;
    strcat(c->log, "w");
    assert_int_equal(aloop_remove_writer(c->loop, fd), 1);
}

static void send_byte(void *arg) {
    watch_ctx_t *c = arg;
    assert_int_equal(write(c->fds[1], "x", 1), 1);
}

/* Level-triggered: called each iteration while data is left unread; a
 * callback that removes its own watch is not called again; the watch keeps
 * the loop alive until then (the data only arrives at t = 5). */
static void test_reader_runs_until_removed(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    c->remove_at = 3;
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), 0);
    aloop_call_later(c->loop, 5, send_byte, c);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(c->calls_a, 3);
    assert_true(aloop_time(c->loop) == 5.0);
    assert_int_equal(aloop_remove_reader(c->loop, c->fds[0]), 0); /* already gone */
    free_ctx(c);
}

/* A second add replaces the first: only the new callback runs. */
static void test_add_replaces(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), 0);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_b, c), 0);
    send_byte(c);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(c->calls_a, 0);
    assert_int_equal(c->calls_b, 1);
    free_ctx(c);
}

/* Reader and writer on one fd; the reader removes the writer while the
 * writer's callback is already due in the same iteration: it does not run. */
static void test_remove_other_direction_while_due(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    c->consume = 1;
    c->remove_writer = 1;
    c->remove_at = 1;
    send_byte(c);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), 0);
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_string_equal(c->log, "a");
    assert_int_equal(c->wcalls, 0);
    /* a writer alone: a connected socket is writable at once */
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(c->wcalls, 1);
    free_ctx(c);
}

/* A direction belongs to a callback or to a waiting task, never both. */
static void *wait_read(void *arg) {
    watch_ctx_t *c = arg;
    return (void *)(intptr_t)aloop_wait_readable(c->fds[0], -1);
}

static void test_busy_against_a_waiting_task(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    aloop_task_t *t = spawn(c->loop, wait_read, c);
    assert_int_equal(aloop_run_once(c->loop, 0), 1); /* t now waits */
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), -EBUSY);
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0); /* other direction */
    send_byte(c);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(aloop_future_result(t, NULL), 0);
    assert_int_equal(c->wcalls, 1);
    aloop_release(t);
    /* and the other way round: a task cannot wait where a callback watches */
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_b, c), 0);
    t = spawn(c->loop, wait_read, c);
    /* one iteration: t fails at once, and reader_b (the byte is still
     * unread) runs and removes itself: nothing is left */
    assert_int_equal(aloop_run_once(c->loop, 0), 0);
    assert_true(aloop_future_done(t));
    void *r;
    aloop_future_result(t, &r);
    assert_int_equal((intptr_t)r, -EBUSY);
    aloop_release(t);
    assert_int_equal(c->calls_b, 1);
    free_ctx(c);
}

/* aloop_close removes the watches: nothing keeps the loop, no call. */
static void test_close_removes_watches(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    send_byte(c);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), 0);
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0);
    int fd = c->fds[0];
    assert_int_equal(aloop_close(fd), 0);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(c->calls_a + c->wcalls, 0);
    assert_int_equal(aloop_remove_reader(c->loop, fd), 0);
    c->fds[0] = dup(c->fds[1]); /* for free_ctx */
    free_ctx(c);
}

/* Closing the fd from inside its own callback. */
static void close_in_cb(int fd, void *arg) {
    watch_ctx_t *c = arg;
    c->calls_a++;
    assert_int_equal(aloop_close(fd), 0);
    c->fds[0] = -1;
}

static void test_close_inside_callback(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    send_byte(c);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], close_in_cb, c), 0);
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0);
    assert_int_equal(aloop_run(c->loop), 0);
    assert_int_equal(c->calls_a, 1);
    assert_int_equal(c->wcalls, 0); /* due in the same iteration, but gone */
    c->fds[0] = dup(c->fds[1]);
    free_ctx(c);
}

/* aloop_free with watches left (one of them due): no leak (ASan). */
static void test_free_with_watches(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    send_byte(c);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], reader_a, c), 0);
    assert_int_equal(aloop_add_writer(c->loop, c->fds[0], writer, c), 0);
    assert_int_equal(aloop_run_once(c->loop, 0), 1);
    free_ctx(c);
}

static void test_bad_arguments(void **state) {
    (void)state;
    watch_ctx_t *c = new_ctx();
    assert_int_equal(aloop_add_reader(NULL, c->fds[0], reader_a, c), -EINVAL);
    assert_int_equal(aloop_add_reader(c->loop, c->fds[0], NULL, c), -EINVAL);
    assert_int_equal(aloop_add_writer(c->loop, -1, writer, c), -EBADF);
    assert_int_equal(aloop_remove_reader(NULL, c->fds[0]), -EINVAL);
    assert_int_equal(aloop_remove_writer(c->loop, -1), -EBADF);
    assert_int_equal(aloop_remove_writer(c->loop, 100000), 0);
    char path[] = "/tmp/aloop-watch-XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    int rc = aloop_add_reader(c->loop, file, reader_a, c);
    assert_true(rc == -EPERM || rc == 0); /* poll(2) accepts regular files */
    if (rc == 0) assert_int_equal(aloop_remove_reader(c->loop, file), 1);
    close(file);
    assert_int_equal(aloop_run(c->loop), 0);
    free_ctx(c);
}

static aloop_handle_t *give_up_timer;

static void count_and_remove(int fd, void *arg) {
    watch_ctx_t *c = arg;
    c->calls_b++;
    assert_int_equal(aloop_remove_reader(c->loop, fd), 1);
    aloop_handle_cancel(give_up_timer);
}

static void give_up(void *arg) { aloop_stop(arg); }

/* Watches p[0], lets a poll register it, optionally removes the watch,
 * close(2)s the pipe and opens a new one that gets the same number, and
 * watches that. The kernel dropped the old file's registration; the new
 * watch must fire all the same, and the old callback never. */
static void reused_number_case(int remove_first) {
    watch_ctx_t *c = new_ctx();
    int p[2], q[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(aloop_add_reader(c->loop, p[0], reader_a, c), 0);
    assert_int_equal(aloop_run_once(c->loop, 0), 1); /* nothing ready yet */
    if (remove_first) assert_int_equal(aloop_remove_reader(c->loop, p[0]), 1);
    int old = p[0];
    close(p[0]);
    close(p[1]);
    assert_int_equal(pipe(q), 0);
    assert_int_equal(q[0], old);
    assert_int_equal(write(q[1], "x", 1), 1);
    assert_int_equal(aloop_add_reader(c->loop, q[0], count_and_remove, c), 0);
    give_up_timer = aloop_call_later(c->loop, 10, give_up, c->loop);
    assert_int_equal(aloop_run(c->loop), 0);
    aloop_remove_reader(c->loop, q[0]);
    assert_int_equal(c->calls_b, 1);
    assert_int_equal(c->calls_a, 0);
    close(q[0]);
    close(q[1]);
    free_ctx(c);
}

/* The pattern of libraries that close their own sockets (curl, c-ares):
 * remove the watch, close(2) the fd, open a new one that gets the same
 * number, watch it. */
ALOOP_TEST_CASE(test_readd_on_reused_number, reused_number_case(1))

/* The same without the remove: the program close(2)s an fd it still
 * watches and watches the new file under that number (a replacement of the
 * watch, for the loop). */
ALOOP_TEST_CASE(test_replace_on_reused_number, reused_number_case(0))

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_runs_until_removed),
        cmocka_unit_test(test_add_replaces),
        cmocka_unit_test(test_remove_other_direction_while_due),
        cmocka_unit_test(test_busy_against_a_waiting_task),
        cmocka_unit_test(test_close_removes_watches),
        cmocka_unit_test(test_close_inside_callback),
        cmocka_unit_test(test_free_with_watches),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_readd_on_reused_number),
        cmocka_unit_test(test_replace_on_reused_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

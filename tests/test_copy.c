/*
 * test_copy.c - fd to fd copies (src/net/copy.c): aloop_copy and
 * aloop_sendfile with sockets, pipes and regular files, byte-exact, with
 * *copied exact on every return and nothing dropped by a cancel.
 */
#include "aloop_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG (8u << 20)

static unsigned char pat(size_t i) { return (unsigned char)(i ^ (i >> 8) ^ (i >> 17)); }

static void fill_pat(unsigned char *b, size_t from, size_t n) {
    for (size_t i = 0; i < n; i++) b[i] = pat(from + i);
}

/* A temporary regular file holding pat(0 .. n). */
static int pat_file(size_t n) {
    char path[] = "/tmp/aloop-copy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    unsigned char *buf = malloc(n ? n : 1);
    fill_pat(buf, 0, n);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    free(buf);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static int tmp_file(void) {
    char path[] = "/tmp/aloop-copy-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Counts mismatches of fd's bytes from offset 0 against pat(at ..). */
static size_t check_file(int fd, size_t at, int *bad) {
    unsigned char buf[65536];
    size_t n = 0;
    ssize_t k;
    while ((k = pread(fd, buf, sizeof buf, (off_t)n)) > 0) {
        for (ssize_t i = 0; i < k; i++) *bad += buf[i] != pat(at + n + (size_t)i);
        n += (size_t)k;
    }
    return n;
}

typedef struct job {
    int in_fd, out_fd;   /* the copy's ends */
    int feed_fd;         /* the producer writes pat(0 .. total) here, then closes it */
    int sink_fd;         /* the sink reads and checks here until EOF */
    size_t total, n, copied, sunk;
    off_t offset;
    int use_sendfile, keep_out, rc, bad;
} job_t;

static void *producer(void *arg) {
    job_t *j = arg;
    unsigned char *buf = malloc(65536);
    for (size_t off = 0; off < j->total;) {
        size_t k = j->total - off < 65536 ? j->total - off : 65536;
        fill_pat(buf, off, k);
        if (aloop_write_all(j->feed_fd, buf, k) < 0) break;
        off += k;
    }
    free(buf);
    aloop_close(j->feed_fd);
    return NULL;
}

static void *copier(void *arg) {
    job_t *j = arg;
    j->copied = 999;
    j->rc = j->use_sendfile ? aloop_sendfile(j->out_fd, j->in_fd, j->offset, j->n, &j->copied)
                            : aloop_copy(j->out_fd, j->in_fd, j->n, &j->copied);
    if (j->sink_fd >= 0 && !j->keep_out) aloop_close(j->out_fd); /* the sink sees EOF */
    /* a failed copy (a reset under simulation) drops its source as a relay
     * does, or the producer waits for ever on a full socket. The sources
     * with a producer are sockets, but for the pipe into a file, whose
     * copy meets no reset. */
    if (j->rc < 0 && j->feed_fd >= 0) shutdown(j->in_fd, SHUT_RDWR);
    return NULL;
}

static void *sink(void *arg) {
    job_t *j = arg;
    unsigned char *buf = malloc(65536);
    ssize_t k;
    while ((k = aloop_read(j->sink_fd, buf, 65536)) > 0) {
        for (ssize_t i = 0; i < k; i++) j->bad += buf[i] != pat((size_t)j->offset + j->sunk + (size_t)i);
        j->sunk += (size_t)k;
    }
    free(buf);
    return NULL;
}

static void run_job(job_t *j) {
    aloop_t *loop = vloop();
    aloop_task_t *ts[3];
    size_t n = 0;
    if (j->feed_fd >= 0) ts[n++] = spawn(loop, producer, j);
    ts[n++] = spawn(loop, copier, j);
    if (j->sink_fd >= 0) ts[n++] = spawn(loop, sink, j);
    run_and_release(loop, ts, n);
    aloop_free(loop);
}

/* j ran to the end and moved n bytes: all copied, all received by the
 * sink, in order. */
static void assert_moved(const job_t *j, size_t n) {
    assert_int_equal(j->rc, 0);
    assert_int_equal(j->copied, n);
    assert_int_equal(j->sunk, n);
    assert_int_equal(j->bad, 0);
}

static void sockpair(int *sv) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); }

/* A regular file into a socket (sendfile): 8 MiB byte-exact; the file's
 * offset moves to the end. */
static void test_file_to_socket(void **state) {
    (void)state;
    int sv[2];
    sockpair(sv);
    job_t j = {.in_fd = pat_file(BIG), .out_fd = sv[0], .feed_fd = -1, .sink_fd = sv[1]};
    run_job(&j);
    assert_moved(&j, BIG);
    assert_int_equal(lseek(j.in_fd, 0, SEEK_CUR), (off_t)BIG);
    close(j.in_fd);
    close(sv[1]);
}

/* From the file's current offset, n bytes; the offset advances by n. */
static void test_file_offset_and_n(void **state) {
    (void)state;
    int sv[2];
    sockpair(sv);
    job_t j = {.in_fd = pat_file(100000), .out_fd = sv[0], .feed_fd = -1, .sink_fd = sv[1],
               .n = 5000, .offset = 1000};
    assert_int_equal(lseek(j.in_fd, 1000, SEEK_SET), 1000);
    run_job(&j);
    assert_moved(&j, 5000);
    assert_int_equal(lseek(j.in_fd, 0, SEEK_CUR), 6000);
    close(j.in_fd);
    close(sv[1]);
}

/* A pipe into a regular file (splice), and a socket into a socket (peek). */
static void test_pipe_to_file(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int out = tmp_file();
    job_t j = {.in_fd = p[0], .out_fd = out, .feed_fd = p[1], .sink_fd = -1, .total = BIG};
    run_job(&j);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.copied, BIG);
    int bad = 0;
    assert_int_equal(check_file(out, 0, &bad), BIG);
    assert_int_equal(bad, 0);
    close(out);
    close(p[0]);
}

static void test_socket_to_socket(void **state) {
    (void)state;
    int a[2], b[2];
    sockpair(a);
    sockpair(b);
    job_t j = {.in_fd = a[0], .out_fd = b[0], .feed_fd = a[1], .sink_fd = b[1], .total = BIG};
    run_job(&j);
    assert_moved(&j, BIG);
    close(a[0]);
    close(b[1]);
}

static void test_socket_to_pipe(void **state) {
    (void)state;
    int a[2], p[2];
    sockpair(a);
    assert_int_equal(pipe(p), 0);
    job_t j = {.in_fd = a[0], .out_fd = p[1], .feed_fd = a[1], .sink_fd = p[0], .total = BIG};
    run_job(&j);
    assert_moved(&j, BIG);
    close(a[0]);
    close(p[0]);
}

/* Cancelled while the destination is full: *copied is exactly what the
 * destination got, and the rest is still in the source, in order. For a
 * socket source (peek: nothing taken until written) and a pipe source
 * (splice). */
typedef struct cjob {
    job_t j;
    aloop_task_t *copier;
} cjob_t;

static void *cancel_probe(void *arg) {
    cjob_t *c = arg;
    aloop_sleep(0.1); /* part went, the destination is full: the copy waits */
    aloop_cancel(c->copier);
    return NULL;
}

static void run_cancel(int src_is_pipe, int out_is_pipe) {
    cjob_t c = {0};
    int s[2], d[2];
    if (src_is_pipe) assert_int_equal(pipe(s), 0);
    else sockpair(s);
    if (out_is_pipe) {
        assert_int_equal(pipe(d), 0);
        int w = d[1];
        d[1] = d[0];
        d[0] = w;
        assert_true(fcntl(d[0], F_SETPIPE_SZ, 4096) > 0);
    } else {
        sockpair(d);
    }
    size_t avail = 60000;
    unsigned char *buf = malloc(avail);
    fill_pat(buf, 0, avail);
    assert_int_equal(write(s[1], buf, avail), (ssize_t)avail);
    free(buf);
    int small = 4096; /* the destination takes only part of the source */
    if (!out_is_pipe)
        assert_int_equal(setsockopt(d[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    c.j = (job_t){.in_fd = s[0], .out_fd = d[0], .feed_fd = -1, .sink_fd = d[1], .keep_out = 1};
    aloop_t *loop = vloop();
    aloop_task_t *ts[2];
    c.copier = ts[0] = spawn(loop, copier, &c.j);
    ts[1] = spawn(loop, cancel_probe, &c);
    run_and_release(loop, ts, 2);
    aloop_free(loop);
    assert_int_equal(c.j.rc, -ECANCELED);
    fcntl(d[1], F_SETFL, fcntl(d[1], F_GETFL) | O_NONBLOCK);
    int bad = 0;
    size_t got = 0;
    unsigned char b2[4096];
    ssize_t k;
    while ((k = read(d[1], b2, sizeof b2)) > 0) {
        for (ssize_t i = 0; i < k; i++) bad += b2[i] != pat(got + (size_t)i);
        got += (size_t)k;
    }
    assert_int_equal(got, c.j.copied);
    assert_true(got > 0 && got < avail);
    fcntl(s[0], F_SETFL, fcntl(s[0], F_GETFL) | O_NONBLOCK);
    size_t rest = 0;
    while ((k = read(s[0], b2, sizeof b2)) > 0) {
        for (ssize_t i = 0; i < k; i++) bad += b2[i] != pat(got + rest + (size_t)i);
        rest += (size_t)k;
    }
    assert_int_equal(got + rest, avail);
    assert_int_equal(bad, 0);
    close(s[0]);
    close(s[1]);
    close(d[0]);
    close(d[1]);
}

ALOOP_TEST_CASE(test_cancel_socket_source, run_cancel(0, 0))

/* splice into a small pipe */
ALOOP_TEST_CASE(test_cancel_pipe_source, run_cancel(1, 1))

ALOOP_TEST_CASE(test_cancel_socket_to_pipe, run_cancel(0, 1))

/* aloop_sendfile: offset and n, n == 0 to the end, an offset at or past
 * the end (0 bytes), the file's own offset untouched. */
static void test_sendfile(void **state) {
    (void)state;
    int sv[2];
    sockpair(sv);
    int f = pat_file(300000);
    job_t j = {.in_fd = f, .out_fd = sv[0], .feed_fd = -1, .sink_fd = sv[1], .use_sendfile = 1,
               .offset = 12345};
    run_job(&j);
    assert_moved(&j, 300000 - 12345);
    assert_int_equal(lseek(f, 0, SEEK_CUR), 0);
    close(sv[1]);
    sockpair(sv);
    j = (job_t){.in_fd = f, .out_fd = sv[0], .feed_fd = -1, .sink_fd = sv[1], .use_sendfile = 1,
                .offset = 7, .n = 1000};
    run_job(&j);
    assert_int_equal(j.copied, 1000);
    assert_int_equal(j.sunk, 1000);
    assert_int_equal(j.bad, 0);
    close(sv[1]);
    sockpair(sv);
    j = (job_t){.in_fd = f, .out_fd = sv[0], .feed_fd = -1, .sink_fd = sv[1], .use_sendfile = 1,
                .offset = 400000};
    run_job(&j);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.copied, 0);
    assert_int_equal(j.sunk, 0);
    close(sv[1]);
    close(f);
}

static void *bad_args(void *arg) {
    int *rc = arg;
    int sv[2], p[2];
    sockpair(sv);
    assert_int_equal(pipe(p), 0);
    size_t n = 5;
    rc[0] = aloop_sendfile(sv[0], p[0], 0, 0, &n); /* not a regular file */
    rc[1] = (int)n;
    int f = pat_file(10);
    rc[2] = aloop_sendfile(sv[0], f, -1, 0, NULL);
    n = 5;
    rc[3] = aloop_copy(-1, f, 0, &n);
    rc[4] = (int)n;
    rc[5] = aloop_sendfile(sv[0], -1, 0, 0, NULL);
    close(f);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    return NULL;
}

static void test_bad_args(void **state) {
    (void)state;
    int rc[6];
    assert_int_equal(aloop_main(bad_args, rc, NULL), 0);
    assert_int_equal(rc[0], -EINVAL);
    assert_int_equal(rc[1], 0);
    assert_int_equal(rc[2], -EINVAL);
    assert_int_equal(rc[3], -EBADF);
    assert_int_equal(rc[4], 0);
    assert_int_equal(rc[5], -EBADF);
    assert_int_equal(aloop_copy(1, 0, 0, NULL), -EPERM); /* outside a task */
}

/* The destination's reader goes away midway: -EPIPE/-ECONNRESET with
 * *copied no more than was sent; the source's end midway: 0 and the count. */
static void *early_closer(void *arg) {
    job_t *j = arg;
    unsigned char buf[1000];
    j->sunk = (size_t)aloop_read(j->sink_fd, buf, sizeof buf);
    aloop_close(j->sink_fd);
    return NULL;
}

static void test_errors_midway(void **state) {
    (void)state;
    int a[2], b[2];
    sockpair(a);
    sockpair(b);
    job_t j = {.in_fd = a[0], .out_fd = b[0], .feed_fd = a[1], .sink_fd = b[1], .total = BIG,
               .keep_out = 1};
    aloop_t *loop = vloop();
    aloop_task_t *ts[3] = {spawn(loop, producer, &j), spawn(loop, copier, &j),
                           spawn(loop, early_closer, &j)};
    assert_int_equal(aloop_run_until_complete(loop, ts[1]), 0);
    assert_true(j.rc == -EPIPE || j.rc == -ECONNRESET);
    assert_true(j.copied >= j.sunk && j.copied < BIG);
    aloop_close(a[0]); /* the producer's writes fail now */
    assert_int_equal(aloop_run(loop), 0);
    for (int i = 0; i < 3; i++) aloop_release(ts[i]);
    aloop_free(loop);
    close(b[0]);
    /* the source ends after 777 bytes of n = 10000 */
    sockpair(a);
    sockpair(b);
    j = (job_t){.in_fd = a[0], .out_fd = b[0], .feed_fd = a[1], .sink_fd = b[1], .total = 777,
                .n = 10000};
    run_job(&j);
    assert_moved(&j, 777);
    close(a[0]);
    close(b[1]);
}

/* The program's blocking fds that a copy made non-blocking are blocking
 * again once the loop lets them go (aloop_free here). */
static void *copy_blocking_main(void *arg) {
    int *fds = arg; /* a pipe's read end, a socket */
    fds[2] = aloop_copy(fds[1], fds[0], 0, NULL);
    fds[3] = (fcntl(fds[0], F_GETFL) & O_NONBLOCK) != 0;
    return NULL;
}

static void test_blocking_mode_restored(void **state) {
    (void)state;
    int p[2], sv[2];
    assert_int_equal(pipe(p), 0);
    sockpair(sv);
    assert_int_equal(write(p[1], "abc", 3), 3);
    close(p[1]);
    int fds[4] = {p[0], sv[0], 1, 0};
    assert_int_equal(aloop_main(copy_blocking_main, fds, NULL), 0);
    assert_int_equal(fds[2], 0);
    assert_int_equal(fds[3], 1); /* non-blocking while the library used it */
    assert_int_equal(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    char b[4];
    assert_int_equal(read(sv[1], b, sizeof b), 3);
    close(p[0]);
    close(sv[0]);
    close(sv[1]);
}

/* A copy whose source and destination never block (/dev/zero to
 * /dev/null) is paused by its cooperative budget; meanwhile another task
 * closes the destination through the library and its number goes to
 * another file. The copy must stop with -EBADF and never write to that
 * number. */
typedef struct yield_close {
    int out, in, other;
    int rc;
    size_t copied;
} yield_close_t;

static void *close_out_and_reuse(void *arg) {
    yield_close_t *y = arg;
    assert_int_equal(aloop_close(y->out), 0);
    assert_int_equal(dup2(y->other, y->out), y->out); /* the number is another file now */
    return NULL;
}

static void *copy_through_budget_yield(void *arg) {
    yield_close_t *y = arg;
    aloop_task_t *closer = aloop_spawn(aloop_current(), close_out_and_reuse, y); /* runs at our yield */
    assert_non_null(closer);
    y->rc = aloop_copy(y->out, y->in, 16u << 20, &y->copied);
    assert_int_equal(aloop_await(closer, NULL), 0);
    aloop_release(closer);
    return NULL;
}

static void test_copy_stops_when_closed_during_budget_yield(void **state) {
    (void)state;
    char path[] = "/tmp/aloop-test-copy-XXXXXX";
    yield_close_t y = {.out = open("/dev/null", O_WRONLY | O_CLOEXEC),
                       .in = open("/dev/zero", O_RDONLY | O_CLOEXEC), .other = mkstemp(path)};
    assert_true(y.out >= 0 && y.in >= 0 && y.other >= 0);
    unlink(path);
    aloop_t *loop = vloop();
    aloop_task_t *t = aloop_spawn(loop, copy_through_budget_yield, &y);
    assert_non_null(t);
    assert_int_equal(aloop_run_until_complete(loop, t), 0);
    aloop_release(t);
    aloop_free(loop);
    assert_int_equal(y.rc, -EBADF);
    assert_true(y.copied > 0 && y.copied < 16u << 20); /* what /dev/null got */
    assert_int_equal(lseek(y.other, 0, SEEK_END), 0); /* not a byte went to the new file */
    close(y.out);
    close(y.in);
    close(y.other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_to_socket),
        cmocka_unit_test(test_file_offset_and_n),
        cmocka_unit_test(test_pipe_to_file),
        cmocka_unit_test(test_socket_to_socket),
        cmocka_unit_test(test_socket_to_pipe),
        cmocka_unit_test(test_cancel_socket_source),
        cmocka_unit_test(test_cancel_pipe_source),
        cmocka_unit_test(test_cancel_socket_to_pipe),
        cmocka_unit_test(test_copy_stops_when_closed_during_budget_yield),
        cmocka_unit_test(test_sendfile),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_errors_midway),
        cmocka_unit_test(test_blocking_mode_restored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

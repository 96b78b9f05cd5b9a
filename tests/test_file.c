/*
 * test_file.c - regular files off the loop (src/file.c): aloop_read and
 * aloop_write_all on regular files run on the worker pool in chunks, and
 * the loop keeps running meanwhile; cancellation; aloop_read_file and
 * aloop_write_file.
 *
 * "The loop keeps running" is asserted by counts, not by time: a ticker
 * task counts its turns, and every read or write call must let it run.
 */
#include "aloop_test.h"


#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define MB (1u << 20)

static int run_task(void *(*fn)(void *), void *arg) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    return aloop_main_with(&cfg, fn, arg, NULL);
}

static unsigned char pattern(size_t i) { return (unsigned char)((i * 7 + i / 4096) & 0xff); }

/* An unlinked temporary file holding n pattern bytes, offset 0. */
static int pattern_file(size_t n) {
    char path[] = "/tmp/aloop_file_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) b[i] = pattern(i);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    free(b);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

/* ---- the loop runs while a file is read or written ------------------------ */

typedef struct ticker_ctx {
    long ticks;
    int stop;
} ticker_ctx_t;

static void *ticker(void *arg) {
    ticker_ctx_t *tc = arg;
    while (!tc->stop) {
        tc->ticks++;
        if (aloop_yield() < 0) break;
    }
    return NULL;
}

typedef struct big_ctx {
    ticker_ctx_t tc;
    int fd;
    size_t size;
    int calls;
    int calls_without_tick;
    int ok;
} big_ctx_t;

static void *big_reader(void *arg) {
    big_ctx_t *c = arg;
    unsigned char *buf = malloc(c->size);
    size_t got = 0;
    for (;;) {
        long before = c->tc.ticks;
        ssize_t n = aloop_read(c->fd, buf + got, c->size - got + 1);
        c->calls++;
        if (c->tc.ticks == before) c->calls_without_tick++;
        if (n <= 0) {
            assert_int_equal(n, 0);
            break;
        }
        assert_true((size_t)n <= MB); /* one chunk per call */
        got += (size_t)n;
    }
    assert_int_equal(got, c->size);
    c->ok = 1;
    for (size_t i = 0; i < got; i++)
        if (buf[i] != pattern(i)) {
            c->ok = 0;
            break;
        }
    free(buf);
    c->tc.stop = 1;
    return NULL;
}

/* 20 MB read with aloop_read: 21 calls (20 chunks, then EOF), and the
 * ticker ran during every one of them. */
static void test_read_20mb_keeps_loop_running(void **state) {
    (void)state;
    big_ctx_t c = {.size = 20 * MB};
    c.fd = pattern_file(c.size);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, ticker, &c.tc), spawn(loop, big_reader, &c)};
    run_and_release(loop, ts, 2);
    print_message("%d reads, %ld ticks\n", c.calls, c.tc.ticks);
    assert_true(c.ok);
    assert_int_equal(c.calls, 21);
    assert_int_equal(c.calls_without_tick, 0);
    assert_true(c.tc.ticks >= c.calls);
    aloop_free(loop);
    close(c.fd);
}

static void *big_writer(void *arg) {
    big_ctx_t *c = arg;
    unsigned char *buf = malloc(c->size);
    for (size_t i = 0; i < c->size; i++) buf[i] = pattern(i);
    long before = c->tc.ticks;
    assert_int_equal(aloop_write_all(c->fd, buf, c->size), (ssize_t)c->size);
    c->calls_without_tick = c->tc.ticks - before < 5; /* 5 chunks, a tick each at least */
    free(buf);
    c->tc.stop = 1;
    return NULL;
}

static void test_write_all_keeps_loop_running(void **state) {
    (void)state;
    big_ctx_t c = {.size = 5 * MB};
    c.fd = pattern_file(0);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, ticker, &c.tc), spawn(loop, big_writer, &c)};
    run_and_release(loop, ts, 2);
    assert_int_equal(c.calls_without_tick, 0);
    assert_int_equal(lseek(c.fd, 0, SEEK_CUR), (off_t)c.size); /* the offset moved */
    unsigned char *back = malloc(c.size);
    assert_int_equal(pread(c.fd, back, c.size, 0), (ssize_t)c.size);
    for (size_t i = 0; i < c.size; i++)
        if (back[i] != pattern(i)) fail_msg("byte %zu differs", i);
    free(back);
    aloop_free(loop);
    close(c.fd);
}

/* ---- cancellation ----------------------------------------------------------- */

typedef struct cancel_ctx {
    int fd;
    unsigned char *buf;
    ssize_t rc;
    aloop_task_t *victim;
} cancel_ctx_t;

static void *cancelled_reader(void *arg) {
    cancel_ctx_t *c = arg;
    c->rc = aloop_read(c->fd, c->buf, MB);
    return NULL;
}

static void *read_canceller(void *arg) {
    cancel_ctx_t *c = arg;
    aloop_cancel(c->victim); /* the reader's job is queued or running */
    assert_int_equal(aloop_yield(), 0);
    assert_int_equal(c->rc, -ECANCELED);
    for (size_t i = 0; i < MB; i++)
        if (c->buf[i] != 0xAA) fail_msg("the caller's buffer was written at %zu", i);
    free(c->buf); /* a worker writing into it now would be a use after free (ASan) */
    c->buf = NULL;
    /* nothing consumed: the offset stayed, the next read gets byte 0 on */
    assert_int_equal(lseek(c->fd, 0, SEEK_CUR), 0);
    unsigned char b[16];
    assert_int_equal(aloop_read(c->fd, b, sizeof b), 16);
    for (size_t i = 0; i < 16; i++) assert_int_equal(b[i], pattern(i));
    return NULL;
}

static void test_cancelled_read_consumes_nothing(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) { /* queued or running: both must hold */
        cancel_ctx_t c = {.fd = pattern_file(2 * MB)};
        c.buf = malloc(MB);
        memset(c.buf, 0xAA, MB);
        aloop_t *loop = vloop();
        c.victim = spawn(loop, cancelled_reader, &c);
        aloop_task_t *k = spawn(loop, read_canceller, &c);
        aloop_task_t *ts[] = {c.victim, k};
        run_and_release(loop, ts, 2);
        aloop_free(loop); /* waits for a job still running */
        close(c.fd);
    }
}

static void *cancelled_writer(void *arg) {
    cancel_ctx_t *c = arg;
    c->rc = aloop_write_all(c->fd, c->buf, 4 * MB);
    return NULL;
}

static void *cancel_after_first_chunk(void *arg) {
    cancel_ctx_t *c = arg;
    struct stat st;
    while (fstat(c->fd, &st) == 0 && st.st_size < (off_t)MB) assert_int_equal(aloop_yield(), 0);
    aloop_cancel(c->victim);
    return NULL;
}

/* A cancelled write_all: -ECANCELED; whole chunks of the data landed (the
 * one a worker had started, and those before), nothing else. */
static void test_cancelled_write(void **state) {
    (void)state;
    cancel_ctx_t c = {.fd = pattern_file(0)};
    c.buf = malloc(4 * MB);
    for (size_t i = 0; i < 4 * MB; i++) c.buf[i] = pattern(i);
    for (int early = 0; early < 2; early++) {
        assert_int_equal(ftruncate(c.fd, 0), 0);
        assert_int_equal(lseek(c.fd, 0, SEEK_SET), 0);
        c.rc = 1;
        aloop_t *loop = vloop();
        c.victim = spawn(loop, cancelled_writer, &c);
        aloop_task_t *k = NULL;
        if (early) /* before the first chunk was handed to a worker */
            assert_non_null(aloop_call_soon(loop, cancel_cb, c.victim));
        else /* once the first chunk is in the file */
            k = spawn(loop, cancel_after_first_chunk, &c);
        assert_int_equal(aloop_run(loop), 0);
        assert_int_equal(c.rc, -ECANCELED);
        aloop_release(c.victim);
        if (k) aloop_release(k);
        aloop_free(loop); /* waits for a chunk still being written */
        struct stat st;
        assert_int_equal(fstat(c.fd, &st), 0);
        print_message("cancelled %s: %lld bytes landed\n", early ? "at once" : "after a chunk",
                      (long long)st.st_size);
        assert_true(st.st_size % MB == 0 && st.st_size < 4 * (off_t)MB);
        /* "at once" races with the writer's first step, which hands the
         * first chunk to the pool before the call_soon cancel runs: a
         * worker may already have started it (it then lands whole) */
        assert_true(early ? st.st_size <= (off_t)MB : st.st_size >= (off_t)MB);
        unsigned char *back = malloc((size_t)st.st_size + 1);
        assert_int_equal(pread(c.fd, back, (size_t)st.st_size, 0), st.st_size);
        assert_memory_equal(back, c.buf, (size_t)st.st_size);
        free(back);
    }
    free(c.buf);
    close(c.fd);
}

/* ---- one reader per fd, stale "regular file" knowledge -------------------- */

static void *busy_second(void *arg) {
    cancel_ctx_t *c = arg;
    unsigned char b[8];
    c->rc = aloop_read(c->fd, b, sizeof b); /* the first one is on the pool */
    return NULL;
}

static void *busy_first(void *arg) {
    cancel_ctx_t *c = arg;
    unsigned char *b = malloc(MB);
    aloop_task_t *second = aloop_spawn(aloop_current(), busy_second, c);
    assert_int_equal(aloop_read(c->fd, b, MB), (ssize_t)MB);
    assert_int_equal(aloop_await(second, NULL), 0);
    aloop_release(second);
    free(b);
    return NULL;
}

static void test_one_reader_per_fd(void **state) {
    (void)state;
    cancel_ctx_t c = {.fd = pattern_file(MB)};
    assert_int_equal(run_task(busy_first, &c), 0);
    assert_int_equal(c.rc, -EBUSY);
    close(c.fd);
}

/* The fd was a regular file, was closed with close(2), and its number now
 * is a pipe: read it as a pipe. */
static void *reuse_task(void *arg) {
    (void)arg;
    int fd = pattern_file(64);
    char b[8];
    assert_int_equal(aloop_read(fd, b, sizeof b), 8);
    close(fd);
    int p[2];
    assert_int_equal(pipe(p), 0);
    if (p[0] != fd) {
        print_message("pipe got fd %d, not %d; skipped\n", p[0], fd);
    } else {
        assert_int_equal(write(p[1], "pipe", 4), 4);
        for (ssize_t got = 0, n; got < 4; got += n) /* a read may be short */
            assert_true((n = aloop_read(p[0], b + got, 4 - (size_t)got)) > 0);
        assert_memory_equal(b, "pipe", 4);
    }
    aloop_close(p[0]);
    aloop_close(p[1]);
    return NULL;
}

static void test_number_reused_by_a_pipe(void **state) {
    (void)state;
    assert_int_equal(run_task(reuse_task, NULL), 0);
}

/* Streams read regular files through the same pool path. */
static void *stream_lines_task(void *arg) {
    int fd = *(int *)arg;
    aloop_stream_t *st = aloop_stream_new(aloop_current(), fd, 0);
    assert_non_null(st);
    char line[64];
    long lines = 0;
    ssize_t n;
    while ((n = aloop_stream_readline(st, line, sizeof line)) > 0) {
        char want[64];
        snprintf(want, sizeof want, "line %ld\n", lines);
        assert_string_equal(line, want);
        lines++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(lines, 300000);
    aloop_stream_close(st);
    return NULL;
}

static void test_stream_over_file(void **state) {
    (void)state;
    char path[] = "/tmp/aloop_lines_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    FILE *f = fdopen(dup(fd), "w");
    for (long i = 0; i < 300000; i++) fprintf(f, "line %ld\n", i); /* ~3.4 MB */
    fclose(f);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    assert_int_equal(run_task(stream_lines_task, &fd), 0);
}

/* ---- aloop_read_file, aloop_write_file ------------------------------------- */

static char tmpdir[64];

static void *whole_files_task(void *arg) {
    (void)arg;
    char path[128];
    snprintf(path, sizeof path, "%s/f.txt", tmpdir);
    assert_int_equal(aloop_write_file(path, "hello\nworld\n", 12), 0);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(aloop_read_file(path, &data, &len), 0);
    assert_int_equal(len, 12);
    assert_string_equal(data, "hello\nworld\n"); /* NUL-terminated */
    free(data);
    /* a shorter write truncates */
    assert_int_equal(aloop_write_file(path, "hi", 2), 0);
    assert_int_equal(aloop_read_file(path, &data, &len), 0);
    assert_int_equal(len, 2);
    assert_string_equal(data, "hi");
    free(data);
    /* empty */
    assert_int_equal(aloop_write_file(path, NULL, 0), 0);
    assert_int_equal(aloop_read_file(path, &data, NULL), 0);
    assert_string_equal(data, "");
    free(data);
    /* big, through the chunked writer */
    size_t big = 3 * MB + 17;
    unsigned char *b = malloc(big);
    for (size_t i = 0; i < big; i++) b[i] = pattern(i);
    assert_int_equal(aloop_write_file(path, b, big), 0);
    assert_int_equal(aloop_read_file(path, &data, &len), 0);
    assert_int_equal(len, big);
    assert_memory_equal(data, b, big);
    free(data);
    free(b);
    /* a file whose size stat does not know */
    assert_int_equal(aloop_read_file("/proc/self/status", &data, &len), 0);
    assert_true(len > 0 && strstr(data, "Name:") != NULL);
    free(data);
    /* errors */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/file", tmpdir);
    assert_int_equal(aloop_read_file(missing, &data, &len), -ENOENT);
    assert_int_equal(aloop_write_file(missing, "x", 1), -ENOENT);
    assert_int_equal(aloop_read_file(tmpdir, &data, &len), -EISDIR);
    assert_int_equal(aloop_write_file(tmpdir, "x", 1), -EISDIR);
    assert_int_equal(aloop_read_file(NULL, &data, &len), -EINVAL);
    assert_int_equal(aloop_read_file(path, NULL, &len), -EINVAL);
    assert_int_equal(aloop_write_file(path, NULL, 3), -EINVAL);
    /* cancellation: -ECANCELED, the pool's result is freed (ASan) */
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_read_file(path, &data, &len), -ECANCELED);
    aloop_cancel(aloop_current_task());
    assert_int_equal(aloop_write_file(path, "x", 1), -ECANCELED);
    aloop_task_uncancel(aloop_current_task());
    aloop_task_uncancel(aloop_current_task());
    unlink(path);
    return NULL;
}

static void test_whole_files(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aloop_wf_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    assert_int_equal(run_task(whole_files_task, NULL), 0);
    void *data;
    assert_int_equal(aloop_read_file("/etc/hostname", &data, NULL), -EPERM);
    assert_int_equal(aloop_write_file("/tmp/x", "x", 1), -EPERM);
    rmdir(tmpdir);
}

static void *read_file_victim(void *arg) {
    char *path = arg;
    void *data = NULL;
    size_t len;
    int rc = aloop_read_file(path, &data, &len);
    assert_int_equal(rc, -ECANCELED);
    return NULL;
}

/* Cancelled while the worker reads: the result is freed when it comes back
 * (ASan: no leak), also when the loop is freed first. */
static void test_read_file_cancelled_while_running(void **state) {
    (void)state;
    char path[] = "/tmp/aloop_rf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8 * MB), 0);
    close(fd);
    for (int free_first = 0; free_first < 2; free_first++) {
        aloop_t *loop = vloop();
        aloop_task_t *t = spawn(loop, read_file_victim, path);
        aloop_stop(loop);
        aloop_run(loop); /* the task waits for the pool */
        if (!free_first) {
            aloop_cancel(t);
            assert_int_equal(aloop_run(loop), 0);
        }
        aloop_free(loop);
        assert_true(aloop_future_done(t));
        aloop_release(t);
    }
    unlink(path);
}

/* ---- allocation failures ---------------------------------------------------- */

static void *oom_reads(void *arg) {
    int fd = *(int *)arg;
    lseek(fd, 0, SEEK_SET);
    char b[64];
    ssize_t n = aloop_read(fd, b, sizeof b);
    if (n == -ENOMEM) return aloop_fail(-ENOMEM);
    assert_int_equal(n, 64);
    void *data;
    size_t len;
    int rc = aloop_read_file("/proc/self/status", &data, &len);
    if (rc == -ENOMEM) return aloop_fail(rc);
    assert_int_equal(rc, 0);
    free(data);
    /* the loop-side paths of character devices */
    rc = aloop_read_file("/dev/null", &data, &len);
    if (rc == -ENOMEM) return aloop_fail(rc);
    assert_int_equal(rc, 0);
    free(data);
    rc = aloop_write_file("/dev/full", "x", 1);
    if (rc == -ENOMEM) return aloop_fail(rc);
    assert_int_equal(rc, -ENOSPC);
    return NULL;
}

static void test_enomem_sweep(void **state) {
    (void)state;
    int fd = pattern_file(4096);
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    int failures = 0;
    for (long nth = 1; nth < 200; nth++) {
        test_fail_alloc(nth, 1);
        int rc = aloop_main_with(&cfg, oom_reads, &fd, NULL);
        unsigned long count = test_alloc_count();
        test_fail_alloc(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        if (rc) failures++;
        if ((unsigned long)nth > count) break;
    }
    assert_true(failures > 0);
    close(fd);
}

/* aloop_close while the read's job runs, the number reused by another
 * file at once: the read says -EBADF and hands over nothing (guide §15). */
typedef struct closer_ctx {
    int fd;
    int reused;
} closer_ctx_t;

static void *close_and_reuse(void *arg) {
    closer_ctx_t *c = arg;
    assert_int_equal(aloop_close(c->fd), 0);
    c->reused = pattern_file(16); /* the lowest free number: the same one */
    assert_int_equal(c->reused, c->fd);
    return NULL;
}

static void *read_while_closed(void *arg) {
    closer_ctx_t *c = arg;
    aloop_task_t *closer = aloop_spawn(aloop_current(), close_and_reuse, c);
    char buf[64];
    memset(buf, 0, sizeof buf);
    ssize_t n = aloop_read(c->fd, buf, sizeof buf); /* the closer runs meanwhile */
    assert_int_equal(aloop_await(closer, NULL), 0);
    aloop_release(closer);
    assert_int_equal(n, -EBADF);
    assert_int_equal(buf[0], 0);
    /* the new file is untouched and read normally */
    assert_int_equal(aloop_read(c->reused, buf, sizeof buf), 16);
    assert_int_equal((unsigned char)buf[1], pattern(1));
    aloop_close(c->reused);
    return NULL;
}

static void test_closed_while_job_runs_is_ebadf(void **state) {
    (void)state;
    closer_ctx_t c = {.fd = pattern_file(4096)};
    assert_int_equal(run_task(read_while_closed, &c), 0);
}

/* ---- whole files that are not regular files ------------------------------ */

static void *square_in_thread(void *arg) {
    intptr_t v = (intptr_t)arg;
    return (void *)(v * v);
}

static void make_fifo(char *path, size_t size) {
    snprintf(path, size, "/tmp/aloop_fifo_%d_%p", (int)getpid(), (void *)path);
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
}

typedef struct fifo_ctx {
    char path[96];
    void *data;
    size_t len;
    int rc;
} fifo_ctx_t;

static void *fifo_reader(void *arg) {
    fifo_ctx_t *c = arg;
    c->rc = aloop_read_file(c->path, &c->data, &c->len);
    return NULL;
}

/* A FIFO with no writer: the read waits in the loop (no worker is held:
 * a pool of one still runs other jobs) and a cancel ends it. */
static void *fifo_cancel_main(void *arg) {
    fifo_ctx_t *c = arg;
    assert_int_equal(aloop_set_thread_pool_size(aloop_current(), 1), 0);
    aloop_task_t *r = aloop_spawn(aloop_current(), fifo_reader, c);
    assert_int_equal(aloop_sleep(5), 0);
    assert_int_equal(aloop_future_done(r), 0);
    void *res = NULL;
    assert_int_equal(aloop_run_in_thread(square_in_thread, (void *)(intptr_t)9, &res), 0);
    assert_int_equal((intptr_t)res, 81);
    aloop_cancel(r);
    assert_int_equal(aloop_await(r, NULL), -ECANCELED);
    aloop_release(r);
    assert_int_equal(c->rc, -ECANCELED);
    return NULL;
}

static void test_read_file_fifo_without_writer_cancels(void **state) {
    (void)state;
    fifo_ctx_t c = {.rc = 1};
    make_fifo(c.path, sizeof c.path);
    assert_int_equal(run_task(fifo_cancel_main, &c), 0);
    unlink(c.path);
}

/* The same with spurious readiness (simulation, several seeds): a wake-up
 * with nothing to read is not a writer coming (taken for a writer that came
 * and went, it would make the reader read EOF and return an empty file). */
static void test_read_file_fifo_spurious_wakeup(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        fifo_ctx_t c = {.rc = 1};
        make_fifo(c.path, sizeof c.path);
        aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .sim_seed = seed,
                              .sim_faults = ALOOP_SIM_SPURIOUS, .sim_rate = 0.3};
        assert_int_equal(aloop_main_with(&cfg, fifo_cancel_main, &c, NULL), 0);
        unlink(c.path);
    }
}

/* aloop_write_file into a FIFO that aloop_read_file reads: both on the
 * loop, whichever opens first. */
static void *fifo_writer(void *arg) {
    fifo_ctx_t *c = arg;
    return (void *)(intptr_t)aloop_write_file(c->path, "through the fifo", 16);
}

static void *fifo_pair_main(void *arg) {
    fifo_ctx_t *c = arg;
    aloop_task_t *w = aloop_spawn(aloop_current(), fifo_writer, c);
    aloop_task_t *r = aloop_spawn(aloop_current(), fifo_reader, c);
    void *wrc;
    assert_int_equal(aloop_await(w, &wrc), 0);
    assert_int_equal((intptr_t)wrc, 0);
    assert_int_equal(aloop_await(r, NULL), 0);
    aloop_release(w);
    aloop_release(r);
    assert_int_equal(c->rc, 0);
    assert_int_equal(c->len, 16);
    assert_string_equal(c->data, "through the fifo");
    free(c->data);
    return NULL;
}

static void test_write_file_into_read_file_through_fifo(void **state) {
    (void)state;
    fifo_ctx_t c = {.rc = 1};
    make_fifo(c.path, sizeof c.path);
    assert_int_equal(run_task(fifo_pair_main, &c), 0);
    unlink(c.path);
}

/* Character devices behave as read(2) and write(2) do on them. */
static void *devices_main(void *arg) {
    (void)arg;
    assert_int_equal(aloop_write_file("/dev/null", "abc", 3), 0);
    assert_int_equal(aloop_write_file("/dev/full", "abc", 3), -ENOSPC);
    void *data = (void *)1;
    size_t len = 7;
    assert_int_equal(aloop_read_file("/dev/null", &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    return NULL;
}

static void test_whole_files_on_devices(void **state) {
    (void)state;
    assert_int_equal(run_task(devices_main, NULL), 0);
}

/* aloop_write_file into a FIFO that nobody reads: it waits in the loop,
 * trying the open again, holds no worker, and a cancel ends it; the loop
 * is then freed at once (nothing stuck on the pool). Then a reader comes,
 * and the next write goes through. */
static void *fifo_write_cancel_main(void *arg) {
    fifo_ctx_t *c = arg;
    aloop_task_t *w = aloop_spawn(aloop_current(), fifo_writer, c);
    assert_int_equal(aloop_sleep(5), 0);
    assert_int_equal(aloop_future_done(w), 0);
    aloop_cancel(w);
    assert_int_equal(aloop_await(w, NULL), -ECANCELED);
    aloop_release(w);
    /* a reader now: the writer that follows opens and writes */
    aloop_task_t *r = aloop_spawn(aloop_current(), fifo_reader, c);
    assert_int_equal(aloop_sleep(0.01), 0);
    assert_int_equal(aloop_write_file(c->path, "late", 4), 0);
    assert_int_equal(aloop_await(r, NULL), 0);
    aloop_release(r);
    assert_int_equal(c->rc, 0);
    assert_string_equal(c->data, "late");
    free(c->data);
    return NULL;
}

static void test_write_file_fifo_without_reader_cancels(void **state) {
    (void)state;
    fifo_ctx_t c = {.rc = 1};
    make_fifo(c.path, sizeof c.path);
    assert_int_equal(run_task(fifo_write_cancel_main, &c), 0);
    unlink(c.path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_20mb_keeps_loop_running),
        cmocka_unit_test(test_write_all_keeps_loop_running),
        cmocka_unit_test(test_cancelled_read_consumes_nothing),
        cmocka_unit_test(test_cancelled_write),
        cmocka_unit_test(test_one_reader_per_fd),
        cmocka_unit_test(test_number_reused_by_a_pipe),
        cmocka_unit_test(test_stream_over_file),
        cmocka_unit_test(test_whole_files),
        cmocka_unit_test(test_read_file_cancelled_while_running),
        cmocka_unit_test(test_enomem_sweep),
        cmocka_unit_test(test_closed_while_job_runs_is_ebadf),
        cmocka_unit_test(test_read_file_fifo_without_writer_cancels),
        cmocka_unit_test(test_read_file_fifo_spurious_wakeup),
        cmocka_unit_test(test_write_file_into_read_file_through_fifo),
        cmocka_unit_test(test_whole_files_on_devices),
        cmocka_unit_test(test_write_file_fifo_without_reader_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

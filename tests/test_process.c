/*
 * test_process.c - child processes (src/process.c).
 *
 * Real children (sh, cat, sleep) on the monotonic clock: nothing here
 * asserts a duration. Each scenario runs twice, once with the loop
 * watching its children through pidfds and once through SIGCHLD
 * (ALOOP_NO_PIDFD=1), and asserts which path it took. After every
 * scenario no child of this process may be left, zombie or not, except
 * where a test keeps one on purpose and says so.
 */
#include "aloop_test.h"

#include "internal.h"
#include "process_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

/* Children of this process in /proc: how many, and how many are zombies. */
static int count_children(int *zombies) {
    int n = 0, z = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0) continue;
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'); /* comm may hold spaces */
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2) continue;
        if (ppid != getpid()) continue;
        n++;
        if (state == 'Z') z++;
    }
    closedir(d);
    if (zombies) *zombies = z;
    return n;
}

static void assert_no_children(void) {
    int z;
    assert_int_equal(count_children(&z), 0);
    assert_int_equal(z, 0);
}

/* Polls (outside any loop) until the children have gone; bounded. */
static void wait_no_children(void) {
    for (int i = 0; i < 1000 && count_children(NULL) > 0; i++) usleep(10000);
    assert_no_children();
}

static int use_fallback; /* the current round: 1 = SIGCHLD path */

static aloop_t *new_loop(void) {
    if (use_fallback)
        setenv("ALOOP_NO_PIDFD", "1", 1);
    else
        unsetenv("ALOOP_NO_PIDFD");
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    return loop;
}

/* pidfds work here (not under valgrind, which does not know the call). */
static int have_pidfd(void) {
#if defined(SYS_pidfd_open) && !defined(ALOOP_NO_PIDFD) /* the build switch */
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0) return 0;
    close(fd);
    return 1;
#else
    return 0;
#endif
}

/* Asserts the loop took the path of this round (after its first spawn). */
static void assert_path(aloop_t *loop) {
    assert_int_equal(aloop__process_uses_pidfd(loop), use_fallback ? 0 : have_pidfd());
}

/* Runs fn(arg) as the only task of a fresh loop, then frees the loop. */
static void run_task(aloop_task_fn fn, void *arg) {
    aloop_t *loop = new_loop();
    aloop_task_t *t = spawn(loop, fn, arg);
    assert_int_equal(aloop_run(loop), 0);
    assert_true(aloop_future_done(t));
    assert_int_equal(aloop_future_result(t, NULL), 0);
    aloop_release(t);
    if (aloop__process_uses_pidfd(loop) >= 0) assert_path(loop);
    aloop_free(loop);
}

/* Each scenario, on both wake-up paths; no child may outlive it. */
#define BOTH_PATHS(name)                                  \
    static void test_##name(void **state) {               \
        (void)state;                                      \
        for (use_fallback = 0; use_fallback < 2; use_fallback++) { \
            name##_round();                               \
            assert_no_children();                         \
        }                                                 \
        unsetenv("ALOOP_NO_PIDFD");                       \
    }

static aloop_process_t *spawn_sh(const char *script, const aloop_process_opts_t *o) {
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, o);
    assert_non_null(p);
    return p;
}

/* Reads fd to EOF (inside a task) into buf; returns the length. */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        assert_true(len < cap);
        ssize_t n = aloop_read(fd, buf + len, cap - 1 - len);
        assert_true(n >= 0);
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* ---- exit statuses ---------------------------------------------------- */

static void *exit_codes_task(void *arg) {
    (void)arg;
    aloop_process_t *p = spawn_sh("exit 3", NULL);
    assert_path(aloop_current());
    assert_true(aloop_process_pid(p) > 0);
    int st = -1;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    /* a second wait returns at once with the same status */
    int st2 = -1;
    assert_int_equal(aloop_process_wait(p, &st2), 0);
    assert_int_equal(st2, st);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);

    p = spawn_sh("kill -TERM $$; sleep 5", NULL);
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_int_equal(aloop_process_kill(p, SIGTERM), -ESRCH); /* reaped */
    aloop_process_free(p);
    return NULL;
}
static void exit_codes_round(void) { run_task(exit_codes_task, NULL); }
BOTH_PATHS(exit_codes)

/* Several tasks waiting for the same child all get its status. */
static void *waiter_task(void *arg) {
    int st = -1;
    assert_int_equal(aloop_process_wait(arg, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    return NULL;
}
static void *several_waiters_task(void *arg) {
    (void)arg;
    aloop_process_t *p = spawn_sh("exit 7", NULL);
    aloop_task_t *t[3];
    for (int i = 0; i < 3; i++) t[i] = spawn(aloop_current(), waiter_task, p);
    assert_int_equal(aloop_gather(t, 3, NULL, NULL, 0), 0);
    for (int i = 0; i < 3; i++) aloop_release(t[i]);
    aloop_process_free(p);
    return NULL;
}
static void several_waiters_round(void) { run_task(several_waiters_task, NULL); }
BOTH_PATHS(several_waiters)

/* ---- exec failures ------------------------------------------------------ */

static void exec_failures_round(void) {
    aloop_t *loop = new_loop();
    char *missing[] = {"/nonexistent/aloop-no-such-program", NULL};
    errno = 0;
    assert_null(aloop_process_spawn(loop, missing, NULL));
    assert_int_equal(errno, ENOENT);
    assert_path(loop);

    char *unknown[] = {"aloop-no-such-program-in-path", NULL};
    errno = 0;
    assert_null(aloop_process_spawn(loop, unknown, NULL));
    assert_int_equal(errno, ENOENT);

    /* a file without execute permission */
    char path[] = "/tmp/aloop-noexec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    chmod(path, 0644);
    char *noexec[] = {path, NULL};
    errno = 0;
    assert_null(aloop_process_spawn(loop, noexec, NULL));
    if (geteuid() != 0) assert_int_equal(errno, EACCES); /* root may run anything */
    unlink(path);

    /* a directory is not a program */
    char *dir[] = {"/tmp", NULL};
    errno = 0;
    assert_null(aloop_process_spawn(loop, dir, NULL));
    assert_int_equal(errno, EACCES);

    /* a cwd that does not exist */
    aloop_process_opts_t o = {.cwd = "/nonexistent/aloop-dir"};
    char *sh[] = {"sh", "-c", "exit 0", NULL};
    errno = 0;
    assert_null(aloop_process_spawn(loop, sh, &o));
    assert_int_equal(errno, ENOENT);

    /* the child's PATH (envp) is the one searched */
    char *env[] = {"PATH=/nonexistent", NULL};
    aloop_process_opts_t oe = {.envp = env};
    errno = 0;
    assert_null(aloop_process_spawn(loop, sh, &oe));
    assert_int_equal(errno, ENOENT);

    /* bad arguments */
    errno = 0;
    assert_null(aloop_process_spawn(NULL, sh, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(aloop_process_spawn(loop, NULL, NULL));
    char *empty[] = {"", NULL};
    assert_null(aloop_process_spawn(loop, empty, NULL));
    char *none[] = {NULL};
    assert_null(aloop_process_spawn(loop, none, NULL));
    aloop_process_opts_t bad = {.stdin_mode = ALOOP_STDIO_STDOUT};
    errno = 0;
    assert_null(aloop_process_spawn(loop, sh, &bad));
    assert_int_equal(errno, EINVAL);
    bad = (aloop_process_opts_t){.stderr_mode = 9};
    assert_null(aloop_process_spawn(loop, sh, &bad));
    bad = (aloop_process_opts_t){.stdout_mode = -1};
    assert_null(aloop_process_spawn(loop, sh, &bad));
    aloop_free(loop);
}
BOTH_PATHS(exec_failures)

/* ---- stdio modes --------------------------------------------------------- */

static void *stdio_modes_task(void *arg) {
    (void)arg;
    char buf[4096];
    /* stdin and stdout piped: cat echoes */
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE};
    char *cat[] = {"cat", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), cat, &o);
    assert_non_null(p);
    assert_true(aloop_process_stdin(p) > 2 && aloop_process_stdout(p) > 2);
    assert_int_equal(aloop_process_stderr(p), -1);
    for (int i = 0; i < 2; i++) { /* parent ends: close-on-exec, non-blocking */
        int fd = i ? aloop_process_stdout(p) : aloop_process_stdin(p);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    }
    assert_int_equal(aloop_write_all(aloop_process_stdin(p), "hello\n", 6), 6);
    int fd = aloop_process_take_fd(p, 0);
    assert_true(fd >= 0);
    assert_int_equal(aloop_process_stdin(p), -1);
    assert_int_equal(aloop_process_take_fd(p, 0), -EBADF);
    assert_int_equal(aloop_close(fd), 0);
    assert_int_equal(read_all(aloop_process_stdout(p), buf, sizeof buf), 6);
    assert_string_equal(buf, "hello\n");
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    aloop_process_free(p);

    /* /dev/null: stdin reads EOF at once, stdout goes nowhere */
    o = (aloop_process_opts_t){.stdin_mode = ALOOP_STDIO_NULL, .stdout_mode = ALOOP_STDIO_NULL,
                               .stderr_mode = ALOOP_STDIO_PIPE};
    p = spawn_sh("cat; echo out; echo err >&2; readlink /proc/self/fd/0 >&2", &o);
    assert_int_equal(aloop_process_stdout(p), -1);
    read_all(aloop_process_stderr(p), buf, sizeof buf);
    assert_string_equal(buf, "err\n/dev/null\n");
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_int_equal(st, 0);
    aloop_process_free(p);

    /* inherit: the child's stdin is ours */
    char mine[256];
    ssize_t n = readlink("/proc/self/fd/0", mine, sizeof mine - 2);
    if (n > 0) {
        mine[n++] = '\n';
        mine[n] = '\0';
        o = (aloop_process_opts_t){.stdout_mode = ALOOP_STDIO_PIPE};
        p = spawn_sh("readlink /proc/self/fd/0", &o);
        read_all(aloop_process_stdout(p), buf, sizeof buf);
        assert_string_equal(buf, mine);
        assert_int_equal(aloop_process_wait(p, NULL), 0);
        aloop_process_free(p);
    }

    /* stderr merged into stdout, in order */
    o = (aloop_process_opts_t){.stdout_mode = ALOOP_STDIO_PIPE, .stderr_mode = ALOOP_STDIO_STDOUT};
    p = spawn_sh("echo a; echo b >&2; echo c", &o);
    assert_int_equal(aloop_process_stderr(p), -1);
    read_all(aloop_process_stdout(p), buf, sizeof buf);
    assert_string_equal(buf, "a\nb\nc\n");
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    return NULL;
}
static void stdio_modes_round(void) { run_task(stdio_modes_task, NULL); }
BOTH_PATHS(stdio_modes)

/* Our stdin closed: the child's end of the stdin pipe lands on fd 0 and
 * must still reach the child (moved, not left close-on-exec). */
static void *low_fds_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_NULL};
    char *cat[] = {"cat", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), cat, &o);
    if (!p) fail_msg("spawn with fd 0 closed: %s", strerror(errno));
    char buf[64];
    assert_int_equal(aloop_process_communicate(p, "low\n", 4, NULL, NULL, NULL, NULL, NULL), 0);
    aloop_process_free(p);
    p = aloop_process_spawn(aloop_current(), cat, &o);
    assert_non_null(p);
    char *out;
    int st;
    assert_int_equal(aloop_process_communicate(p, "low\n", 4, &out, NULL, NULL, NULL, &st), 0);
    snprintf(buf, sizeof buf, "%s", out);
    free(out);
    assert_string_equal(buf, "low\n");
    assert_int_equal(st, 0);
    aloop_process_free(p);
    return NULL;
}
static void low_fds_round(void) {
    /* fd 0 must be open now (the test runner may have closed it), so that
     * the loop's own fds are not the ones we close below */
    int had0 = fcntl(0, F_GETFD) >= 0;
    if (!had0) assert_int_equal(open("/dev/null", O_RDONLY), 0);
    aloop_t *loop = new_loop();
    aloop_task_t *t = spawn(loop, low_fds_task, NULL);
    int saved = dup(0);
    assert_true(saved > 2);
    close(0);
    int rc = aloop_run(loop);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    if (!had0) close(0);
    assert_int_equal(rc, 0);
    assert_int_equal(aloop_future_result(t, NULL), 0);
    aloop_release(t);
    aloop_free(loop);
}
BOTH_PATHS(low_fds)

/* ---- streams -------------------------------------------------------------- */

static void *stream_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdout_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = spawn_sh("printf 'one\\ntwo\\nlast'", &o);
    aloop_stream_t *s = aloop_stream_new(aloop_current(), aloop_process_take_fd(p, 1), 0);
    assert_non_null(s);
    char line[64];
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 4);
    assert_string_equal(line, "one\n");
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 4);
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 4);
    assert_memory_equal(line, "last", 4);
    assert_int_equal(aloop_stream_readline(s, line, sizeof line), 0);
    assert_int_equal(aloop_stream_close(s), 0);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p); /* the stream owned the fd: not closed twice */
    return NULL;
}
static void stream_round(void) { run_task(stream_task, NULL); }
BOTH_PATHS(stream)

/* ---- communicate ------------------------------------------------------------ */

#define MIB (1024u * 1024u)

static void *communicate_task(void *arg) {
    (void)arg;
    char *in = malloc(MIB);
    assert_non_null(in);
    for (size_t i = 0; i < MIB; i++) in[i] = (char)('a' + i % 26);
    /* the child fills stderr before it reads stdin: a writer that fed
     * stdin before draining would deadlock */
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = spawn_sh("head -c 1048576 /dev/zero | tr '\\000' e >&2; cat", &o);
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    int st = -1;
    assert_int_equal(aloop_process_communicate(p, in, MIB, &out, &outlen, &err, &errlen, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(outlen, MIB);
    assert_memory_equal(out, in, MIB);
    assert_int_equal(out[MIB], '\0');
    assert_int_equal(errlen, MIB);
    for (size_t i = 0; i < MIB; i++)
        if (err[i] != 'e') fail_msg("stderr byte %zu is %d", i, err[i]);
    assert_int_equal(err[MIB], '\0');
    free(out);
    free(err);
    /* pipes are closed afterwards; a second communicate just waits */
    assert_int_equal(aloop_process_stdin(p), -1);
    assert_int_equal(aloop_process_stdout(p), -1);
    assert_int_equal(aloop_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL, &st), 0);
    assert_null(out);
    aloop_process_free(p);

    /* out NULL: stdout is still drained, so the chatty child finishes */
    p = spawn_sh("head -c 1048576 /dev/zero; echo done >&2", &o);
    assert_int_equal(aloop_process_communicate(p, NULL, 0, NULL, NULL, &err, &errlen, &st), 0);
    assert_string_equal(err, "done\n");
    assert_int_equal(errlen, 5);
    free(err);
    aloop_process_free(p);

    /* a child that exits without reading its input is not an error */
    p = spawn_sh("exit 4", &o);
    assert_int_equal(aloop_process_communicate(p, in, MIB, &out, &outlen, NULL, NULL, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 4);
    assert_string_equal(out, "");
    assert_int_equal(outlen, 0);
    free(out);
    aloop_process_free(p);

    /* input but no stdin pipe */
    aloop_process_opts_t no_in = {.stdout_mode = ALOOP_STDIO_PIPE};
    p = spawn_sh("echo x", &no_in);
    assert_int_equal(aloop_process_communicate(p, "x", 1, &out, NULL, NULL, NULL, NULL), -EPIPE);
    assert_null(out);
    assert_int_equal(aloop_process_communicate(p, NULL, 1, NULL, NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(aloop_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL, NULL), 0);
    assert_string_equal(out, "x\n");
    free(out);
    aloop_process_free(p);
    free(in);
    return NULL;
}
static void communicate_round(void) { run_task(communicate_task, NULL); }
BOTH_PATHS(communicate)

/* Cancelled while feeding a child that never reads: the call returns
 * -ECANCELED, nothing leaks, the child runs on until we kill it. */
static void *communicate_cancel_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = spawn_sh("exec sleep 30", &o);
    static char big[4 * 1024 * 1024];
    aloop_task_t *self = aloop_current_task();
    aloop_handle_t *h = aloop_call_later(aloop_current(), 0.05, cancel_cb, self);
    assert_non_null(h);
    char *out = (char *)1, *err = (char *)1;
    assert_int_equal(aloop_process_communicate(p, big, sizeof big, &out, NULL, &err, NULL, NULL),
                     -ECANCELED);
    assert_null(out);
    assert_null(err);
    assert_int_equal(aloop_task_uncancel(self), 0);
    assert_int_equal(aloop_process_kill(p, 0), 0); /* still running */
    assert_int_equal(aloop_process_kill(p, SIGKILL), 0);
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    aloop_process_free(p);
    return NULL;
}
static void communicate_cancel_round(void) { run_task(communicate_cancel_task, NULL); }
BOTH_PATHS(communicate_cancel)

/* What the child wrote before a cancel (a timeout scope's, here) comes
 * back with the error. The scope is entered with no deadline and
 * rescheduled to "now" once the child has written everything and the
 * drains have read it all (its pipes are empty): no timing involved. */
typedef struct partial {
    aloop_process_t *p;
    int ready_fd; /* the child writes a byte here after its output */
    aloop_timeout_t *to;
} partial_t;

static void *partial_expire_task(void *arg) {
    partial_t *pt = arg;
    assert_int_equal(aloop_wait_readable(pt->ready_fd, -1), 0);
    int n;
    for (int i = 0; i < 2; i++)
        while (ioctl(i == 0 ? aloop_process_stdout(pt->p) : aloop_process_stderr(pt->p), FIONREAD,
                     &n) == 0 && n > 0)
            assert_int_equal(aloop_yield(), 0); /* the drains read it */
    assert_int_equal(aloop_timeout_reschedule(pt->to, aloop_time(aloop_current())), 0);
    return NULL;
}

static void *communicate_partial_task(void *arg) {
    (void)arg;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_PIPE, .extra_fds = &ready[1],
                              .n_extra_fds = 1};
    aloop_process_t *p = spawn_sh("printf 'so far'; printf 'e' >&2; printf r >&3; exec sleep 30", &o);
    close(ready[1]);
    aloop_timeout_t to;
    partial_t pt = {p, ready[0], &to};
    assert_int_equal(aloop_timeout_enter(&to, INFINITY), 0);
    aloop_task_t *x = spawn(aloop_current(), partial_expire_task, &pt);
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    int rc = aloop_process_communicate(p, "in", 2, &out, &outlen, &err, &errlen, NULL);
    assert_int_equal(rc, -ECANCELED);
    assert_int_equal(aloop_timeout_exit(&to, rc), -ETIMEDOUT);
    assert_non_null(out);
    assert_int_equal(outlen, 6);
    assert_string_equal(out, "so far");
    assert_non_null(err);
    assert_int_equal(errlen, 1);
    assert_string_equal(err, "e");
    free(out);
    free(err);
    assert_int_equal(aloop_await(x, NULL), 0);
    aloop_release(x);
    /* cancelled before anything was read: NULL, 0 */
    aloop_cancel(aloop_current_task());
    out = err = (char *)1;
    outlen = errlen = 7;
    assert_int_equal(aloop_process_communicate(p, NULL, 0, &out, &outlen, &err, &errlen, NULL),
                     -ECANCELED);
    assert_int_equal(aloop_task_uncancel(aloop_current_task()), 0);
    assert_null(out);
    assert_null(err);
    assert_int_equal(outlen, 0);
    assert_int_equal(errlen, 0);
    assert_int_equal(aloop_process_kill(p, SIGKILL), 0);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    close(ready[0]);
    return NULL;
}
static void communicate_partial_round(void) { run_task(communicate_partial_task, NULL); }
BOTH_PATHS(communicate_partial)

/* A child that outlives its loop is reaped by a helper thread, which is not
 * a thread that could post work: a later loop stuck for good still reports
 * -EDEADLK (it slept instead while the helper lived). */
static void *await_never(void *arg) {
    aloop_await(arg, NULL);
    return NULL;
}
static void reaper_not_counted_round(void) {
    int detectable = deadlocks_detectable();
    aloop_t *loop = new_loop();
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE};
    char *cat[] = {"cat", NULL};
    aloop_process_t *held = aloop_process_spawn(loop, cat, &o);
    assert_non_null(held);
    aloop_free(loop); /* cat runs on: a reaper thread waits for it */
    loop = new_loop();
    aloop_future_t *never = aloop_future_new(loop);
    assert_non_null(never);
    aloop_task_t *t = spawn(loop, await_never, never);
    int rc = 1;
    for (int i = 0; i < 200 && rc >= 0; i++) rc = aloop_run_once(loop, 0.01);
    if (detectable) assert_int_equal(rc, -EDEADLK);
    aloop_release(t);
    aloop_release(never);
    aloop_free(loop);
    aloop_process_free(held); /* closes cat's stdin: it exits, the reaper reaps it */
    wait_no_children();
}
BOTH_PATHS(reaper_not_counted)

/* ---- many children -------------------------------------------------------------- */

#define MANY 100

static void *one_child(void *arg) {
    int i = (int)(intptr_t)arg;
    char script[32];
    snprintf(script, sizeof script, "exit %d", i % 50);
    aloop_process_t *p = spawn_sh(script, NULL);
    int st = -1;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), i % 50);
    aloop_process_free(p);
    return NULL;
}

static void *many_task(void *arg) {
    (void)arg;
    aloop_task_t *t[MANY];
    for (int i = 0; i < MANY; i++) t[i] = spawn(aloop_current(), one_child, (void *)(intptr_t)i);
    assert_int_equal(aloop_gather(t, MANY, NULL, NULL, 0), 0);
    for (int i = 0; i < MANY; i++) aloop_release(t[i]);
    assert_no_children();
    /* spawned and freed at once, never waited for: reaped all the same */
    for (int i = 0; i < MANY; i++) aloop_process_free(spawn_sh("exit 0", NULL));
    for (int i = 0; i < 1000 && count_children(NULL) > 0; i++) assert_int_equal(aloop_sleep(0.01), 0);
    assert_no_children();
    return NULL;
}
static void many_round(void) { run_task(many_task, NULL); }
BOTH_PATHS(many)

/* ---- cancel, kill ------------------------------------------------------------------ */

static void *cancel_wait_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = spawn_sh("read x; exit 5", &o); /* runs until stdin closes */
    aloop_task_t *self = aloop_current_task();
    aloop_handle_t *h = aloop_call_later(aloop_current(), 0.02, cancel_cb, self);
    assert_non_null(h);
    assert_int_equal(aloop_process_wait(p, NULL), -ECANCELED);
    assert_int_equal(aloop_task_uncancel(self), 0);
    assert_int_equal(aloop_process_kill(p, 0), 0); /* left running */
    /* a pending cancel: the wait returns at once */
    aloop_cancel(self);
    assert_int_equal(aloop_process_wait(p, NULL), -ECANCELED);
    aloop_task_uncancel(self);
    assert_int_equal(aloop_close(aloop_process_take_fd(p, 0)), 0);
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    aloop_process_free(p);
    return NULL;
}
static void cancel_wait_round(void) { run_task(cancel_wait_task, NULL); }
BOTH_PATHS(cancel_wait)

static void *kill_task(void *arg) {
    (void)arg;
    char *argv[] = {"sleep", "30", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, NULL);
    assert_non_null(p);
    assert_int_equal(aloop_process_kill(p, 0), 0);
    assert_int_equal(aloop_process_kill(p, -1), -EINVAL);
    assert_int_equal(aloop_process_kill(p, 100000), -EINVAL);
    assert_int_equal(aloop_process_kill(NULL, SIGTERM), -EINVAL);
    assert_int_equal(aloop_process_kill(p, SIGKILL), 0);
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(aloop_process_kill(p, SIGKILL), -ESRCH);
    aloop_process_free(p);
    return NULL;
}
static void kill_round(void) { run_task(kill_task, NULL); }

/* A new process group: killing the group reaches the shell's children,
 * which would otherwise hold the pipe open after the shell died. The group
 * is empty once its members are reaped: this process is a subreaper here,
 * so the orphaned sleep comes back to it (init need not reap promptly). */
static void *kill_group_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdout_mode = ALOOP_STDIO_PIPE, .flags = ALOOP_PROCESS_NEW_GROUP};
    aloop_process_t *p = spawn_sh("sleep 30; echo never", &o);
    assert_int_equal(getpgid(aloop_process_pid(p)), aloop_process_pid(p));
    aloop_process_opts_t plain = {0};
    aloop_process_t *q = spawn_sh("exit 0", &plain);
    assert_int_equal(aloop_process_kill_group(q, SIGTERM), -EINVAL);
    assert_int_equal(aloop_process_wait(q, NULL), 0);
    aloop_process_free(q);
    assert_int_equal(aloop_process_kill_group(p, SIGTERM), 0);
    char buf[64];
    assert_int_equal(read_all(aloop_process_stdout(p), buf, sizeof buf), 0); /* EOF: sleep died too */
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    while (waitpid(-1, NULL, 0) > 0) { /* sleep, orphaned to this subreaper */
    }
    assert_int_equal(aloop_process_kill_group(p, SIGTERM), -ESRCH);
    aloop_process_free(p);
    o.flags = 8;
    char *argv[] = {"true", NULL};
    errno = 0;
    assert_null(aloop_process_spawn(aloop_current(), argv, &o));
    assert_int_equal(errno, EINVAL);
    return NULL;
}
static void kill_group_round(void) {
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    run_task(kill_group_task, NULL);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}
BOTH_PATHS(kill_group)
BOTH_PATHS(kill)

/* A process (not our child) that runs with the given pid, made by writing
 * ns_last_pid (root only) from a helper that then exits. It echoes each
 * byte written to *to_it back on *from_it, and exits when *to_it closes.
 * Returns 0 where that cannot be arranged (then nothing is left). */
static int stranger_at(pid_t pid, int *to_it, int *from_it) {
    int a[2], b[2], st[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    assert_int_equal(pipe(st), 0);
    pid_t h = fork();
    assert_true(h >= 0);
    if (h == 0) {
        char ok = 0;
        for (int i = 0; i < 200 && !ok; i++) {
            int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
            if (fd < 0) break;
            char num[32];
            int len = snprintf(num, sizeof num, "%d", (int)pid - 1);
            ssize_t w = write(fd, num, (size_t)len);
            close(fd);
            if (w != len) break;
            pid_t s = fork();
            if (s == 0) {
                close(a[1]); /* so that it sees EOF when the test closes its end */
                close(b[0]);
                close(st[1]);
                char c;
                while (read(a[0], &c, 1) == 1)
                    if (write(b[1], &c, 1) != 1) break;
                _exit(0);
            }
            if (s == pid) ok = 1;
            else if (s > 0) {
                kill(s, SIGKILL);
                waitpid(s, NULL, 0);
            }
        }
        if (write(st[1], &ok, 1) != 1) _exit(1);
        _exit(0);
    }
    assert_int_equal(waitpid(h, NULL, 0), h);
    char ok = 0;
    assert_int_equal(read(st[0], &ok, 1), 1);
    close(st[0]);
    close(st[1]);
    close(a[0]);
    close(b[1]);
    *to_it = a[1];
    *from_it = b[0];
    if (!ok) {
        close(a[1]);
        close(b[0]);
    }
    return ok;
}

/* The child was reaped behind the loop's back (a waitpid(-1) elsewhere in
 * the program) and its pid given to a stranger: aloop_process_kill must
 * say -ESRCH and leave the stranger alone. */
static void *kill_stranger_task(void *arg) {
    (void)arg;
    char *argv[] = {"true", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, NULL);
    assert_non_null(p);
    pid_t pid = aloop_process_pid(p);
    assert_int_equal(waitpid(pid, NULL, 0), pid); /* not the loop: it does not know */
    int to, from;
    int have = stranger_at(pid, &to, &from);
    if (!have) print_message("no stranger at pid %d (not root?): only -ESRCH checked\n", (int)pid);
    assert_int_equal(aloop_process_kill(p, SIGKILL), -ESRCH);
    if (have) {
        char c = 'x';
        assert_int_equal(write(to, &c, 1), 1);
        c = 0;
        assert_int_equal(read(from, &c, 1), 1); /* it lives: it answers */
        assert_int_equal(c, 'x');
        close(to); /* it exits */
        close(from);
    }
    assert_int_equal(aloop_process_wait(p, NULL), -ECHILD);
    aloop_process_free(p);
    return NULL;
}
static void kill_stranger_round(void) { run_task(kill_stranger_task, NULL); }
BOTH_PATHS(kill_stranger)

/* The leader exits (and is reaped) while a member of its group lives on:
 * kill_group still reaches the member; -ESRCH once the group is empty.
 * This process is a subreaper here, so the orphaned member comes back to
 * it (reaped below) instead of to init. */
static void *kill_group_orphans_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdout_mode = ALOOP_STDIO_PIPE, .flags = ALOOP_PROCESS_NEW_GROUP};
    aloop_process_t *p = spawn_sh("sleep 30 & echo $!", &o);
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char line[32];
    size_t len = 0;
    ssize_t n;
    while (!memchr(line, '\n', len) && (n = aloop_read(aloop_process_stdout(p), line + len,
                                                         sizeof line - 1 - len)) > 0)
        len += (size_t)n;
    line[len] = '\0';
    pid_t member = (pid_t)atoi(line);
    assert_true(member > 0);
    assert_int_equal(aloop_process_kill(p, SIGTERM), -ESRCH); /* the leader is gone */
    assert_int_equal(aloop_process_kill_group(p, SIGTERM), 0);
    char buf[8];
    assert_int_equal(read_all(aloop_process_stdout(p), buf, sizeof buf), 0); /* the member died */
    assert_int_equal(waitpid(member, &st, 0), member);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    assert_int_equal(aloop_process_kill_group(p, SIGTERM), -ESRCH);
    assert_int_equal(aloop_process_kill_group(p, 0), -ESRCH);
    aloop_process_free(p);
    return NULL;
}
static void kill_group_orphans_round(void) {
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    run_task(kill_group_orphans_task, NULL);
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}
BOTH_PATHS(kill_group_orphans)

/* ---- cwd, envp ------------------------------------------------------------------------ */

static void *cwd_env_task(void *arg) {
    (void)arg;
    char buf[256];
    aloop_process_opts_t o = {.stdout_mode = ALOOP_STDIO_PIPE, .cwd = "/tmp"};
    char *pwd[] = {"sh", "-c", "pwd -P", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), pwd, &o);
    assert_non_null(p);
    read_all(aloop_process_stdout(p), buf, sizeof buf);
    char real[256];
    assert_non_null(realpath("/tmp", real));
    strcat(real, "\n");
    assert_string_equal(buf, real);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);

    /* a relative program path is the child's: taken from its cwd */
    char dir[] = "/tmp/aloop-cwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char script[64];
    snprintf(script, sizeof script, "%s/run.sh", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho ran in \"$(pwd -P)\"\n", f);
    fclose(f);
    chmod(script, 0755);
    char *rel[] = {"./run.sh", NULL};
    o = (aloop_process_opts_t){.stdout_mode = ALOOP_STDIO_PIPE, .cwd = dir};
    p = aloop_process_spawn(aloop_current(), rel, &o);
    assert_non_null(p);
    read_all(aloop_process_stdout(p), buf, sizeof buf);
    char want[300];
    assert_non_null(realpath(dir, real));
    snprintf(want, sizeof want, "ran in %s\n", real);
    assert_string_equal(buf, want);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    errno = 0;
    assert_null(aloop_process_spawn(aloop_current(), rel, NULL)); /* not in our cwd */
    assert_int_equal(errno, ENOENT);
    unlink(script);
    rmdir(dir);

    char *env[] = {"ALOOP_TEST_VAR=from envp", "PATH=/usr/bin:/bin", NULL};
    o = (aloop_process_opts_t){.stdout_mode = ALOOP_STDIO_PIPE, .envp = env};
    p = spawn_sh("echo \"$ALOOP_TEST_VAR\"; env | wc -l", &o);
    read_all(aloop_process_stdout(p), buf, sizeof buf);
    /* just our two variables (sh may add PWD and the like: at most a few) */
    assert_memory_equal(buf, "from envp\n", 10);
    assert_true(atoi(buf + 10) >= 2 && atoi(buf + 10) <= 5);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    return NULL;
}
static void cwd_env_round(void) { run_task(cwd_env_task, NULL); }
BOTH_PATHS(cwd_env)

/* ---- signals: the child starts clean ------------------------------------------------------ */

static void *sig_waiter(void *arg) {
    *(int *)arg = aloop_signal_wait(SIGUSR1);
    return NULL;
}

static unsigned long long status_mask(const char *status, const char *field) {
    const char *l = strstr(status, field);
    assert_non_null(l);
    return strtoull(l + strlen(field), NULL, 16);
}

static void *sigmask_task(void *arg) {
    (void)arg;
    int sig_rc = 1;
    aloop_task_t *w = spawn(aloop_current(), sig_waiter, &sig_rc);
    /* The waiter blocks SIGUSR1 in our thread (signalfd), or installs a
     * handler for it (the self-pipe build, ALOOP_NO_SIGNALFD). */
    assert_int_equal(aloop_yield(), 0);
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    assert_true(sigismember(&cur, SIGUSR1) || sa.sa_handler != SIG_DFL);
    aloop_process_opts_t o = {.stdout_mode = ALOOP_STDIO_PIPE};
    char *argv[] = {"cat", "/proc/self/status", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, &o);
    assert_non_null(p);
    char buf[8192];
    read_all(aloop_process_stdout(p), buf, sizeof buf);
    assert_int_equal(status_mask(buf, "SigBlk:"), 0);
    /* Every signal a program can use starts at SIG_DFL (SIGPIPE, which
     * the library ignores, included). glibc's posix_spawn leaves its own
     * two internal signals (32, 33: below SIGRTMIN, unusable through libc)
     * ignored in the child; nothing can be done about those from here. */
    unsigned long long usable = 0;
    for (int s = 1; s <= 64; s++)
        if (s < 32 || s >= SIGRTMIN) usable |= 1ull << (s - 1);
    assert_int_equal(status_mask(buf, "SigIgn:") & usable, 0);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    aloop_cancel(w);
    assert_int_equal(aloop_await(w, NULL), -ECANCELED);
    assert_int_equal(sig_rc, -ECANCELED);
    aloop_release(w);
    return NULL;
}
static void sigmask_round(void) { run_task(sigmask_task, NULL); }
BOTH_PATHS(sigmask)

/* ---- lifetimes ------------------------------------------------------------------------------ */

static void *free_while_waiting_child(void *arg) {
    int st = -1;
    assert_int_equal(aloop_process_wait(arg, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    return NULL;
}

/* aloop_process_free while another task waits: the wait completes, the
 * struct goes once it has. Misuse gets errors. */
static void *lifetimes_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE};
    aloop_process_t *p = spawn_sh("read x; exit 2", &o);
    aloop_task_t *w = spawn(aloop_current(), free_while_waiting_child, p);
    assert_int_equal(aloop_yield(), 0);
    aloop_process_free(p); /* closes stdin: the child exits */
    assert_int_equal(aloop_await(w, NULL), 0);
    aloop_release(w);
    assert_int_equal(aloop_process_wait(NULL, NULL), -EINVAL);
    assert_int_equal(aloop_process_pid(NULL), -EINVAL);
    assert_int_equal(aloop_process_stdout(NULL), -EINVAL);
    assert_int_equal(aloop_process_take_fd(NULL, 1), -EINVAL);
    aloop_process_free(NULL);
    return NULL;
}
static void lifetimes_round(void) {
    run_task(lifetimes_task, NULL);
    /* outside a task */
    aloop_t *loop = new_loop();
    char *argv[] = {"true", NULL};
    aloop_process_t *p = aloop_process_spawn(loop, argv, NULL);
    assert_non_null(p);
    assert_int_equal(aloop_process_wait(p, NULL), -EPERM);
    assert_int_equal(aloop_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL, NULL), -EPERM);
    assert_int_equal(aloop_process_take_fd(p, 3), -EINVAL);
    aloop_process_free(p);
    aloop_free(loop); /* reaps it (exited or not) */
    wait_no_children();
}
BOTH_PATHS(lifetimes)

/* A wait from a task of another loop is refused. */
static void *other_loop_task(void *arg) {
    assert_int_equal(aloop_process_wait(arg, NULL), -EINVAL);
    return NULL;
}
/* aloop_free with children still running: not killed, reaped when they
 * exit (by a reaper thread), never zombies. The handle still held is
 * detached: wait/kill say -ECHILD/-ESRCH, free works. */
static void free_loop_round(void) {
    aloop_t *loop = new_loop();
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE};
    char *cat[] = {"cat", NULL};
    aloop_process_t *held = aloop_process_spawn(loop, cat, &o);
    assert_non_null(held);
    char *sl[] = {"sleep", "30", NULL};
    aloop_process_t *orphan = aloop_process_spawn(loop, sl, NULL);
    assert_non_null(orphan);
    int opid = aloop_process_pid(orphan), hpid = aloop_process_pid(held);
    aloop_process_free(orphan);
    char *tr[] = {"true", NULL};
    aloop_process_t *done = aloop_process_spawn(loop, tr, NULL);
    assert_non_null(done);
    aloop_process_free(done);
    aloop_free(loop);
    assert_int_equal(kill(opid, 0), 0); /* both run on */
    assert_int_equal(kill(hpid, 0), 0);
    assert_int_equal(aloop_process_kill(held, SIGTERM), -ESRCH);
    if (!debug_env()) run_task(other_loop_task, held); /* misuse: -EINVAL, or an abort */
    kill(opid, SIGKILL);
    aloop_process_free(held); /* closes cat's stdin: it exits */
    wait_no_children();
}
BOTH_PATHS(free_loop)

static void other_loop_round(void) {
    skip_in_debug_env(); /* misuse aborts then (test_misuse checks that) */
    aloop_t *a = new_loop();
    char *argv[] = {"true", NULL};
    aloop_process_t *p = aloop_process_spawn(a, argv, NULL);
    assert_non_null(p);
    run_task(other_loop_task, p);
    aloop_process_free(p);
    aloop_free(a);
    wait_no_children();
}
BOTH_PATHS(other_loop)

/* ---- the child's fds ------------------------------------------------------------- */

/* The fd numbers the child's shell holds, as "0 1 2 ..." (ls runs as a
 * child of the shell, so its own fds are not in the list; the shell waits
 * for it, so the list does not change meanwhile). */
static void child_fds(const aloop_process_opts_t *base, char *out, size_t cap) {
    aloop_process_opts_t o = *base;
    o.stdout_mode = ALOOP_STDIO_PIPE;
    aloop_process_t *p = spawn_sh("ls /proc/$$/fd; true", &o); /* no pipeline: no pipe of its own */
    char *s = NULL;
    int st;
    assert_int_equal(aloop_process_communicate(p, NULL, 0, &s, NULL, NULL, NULL, &st), 0);
    assert_int_equal(st, 0);
    for (char *c = s; *c; c++)
        if (*c == '\n') *c = ' ';
    snprintf(out, cap, "%s", s);
    free(s);
    aloop_process_free(p);
}

static void *child_fds_task(void *arg) {
    (void)arg;
    int pp[2], q[2];
    assert_int_equal(pipe(pp), 0); /* plain pipe(): not close-on-exec */
    assert_int_equal(pipe(q), 0);
    char got[256];
    aloop_process_opts_t o = {0};
    child_fds(&o, got, sizeof got);
    assert_string_equal(got, "0 1 2 "); /* the program's pipe stays its own */
    o.flags = ALOOP_PROCESS_KEEP_FDS;
    child_fds(&o, got, sizeof got);
    char want[64];
    snprintf(want, sizeof want, " %d ", pp[1]);
    assert_non_null(strstr(got, want)); /* plain inheritance */
    /* extra fds arrive as 3, 4, ... in the order given, whatever their
     * numbers here (q[1] may well be 4 or 5 already) */
    int extra[2] = {q[1], pp[1]};
    aloop_process_opts_t e = {.extra_fds = extra, .n_extra_fds = 2};
    child_fds(&e, got, sizeof got);
    assert_string_equal(got, "0 1 2 3 4 ");
    e.stdout_mode = ALOOP_STDIO_NULL;
    aloop_process_t *p = spawn_sh("printf q >&3; printf p >&4", &e);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    char c = 0;
    assert_int_equal(read(q[0], &c, 1), 1);
    assert_int_equal(c, 'q');
    assert_int_equal(read(pp[0], &c, 1), 1);
    assert_int_equal(c, 'p');
    /* bad extra fds */
    char *argv[] = {"true", NULL};
    close(q[1]);
    int closed = 1000;
    assert_true(fcntl(closed, F_GETFD) < 0);
    e.extra_fds = &closed;
    e.n_extra_fds = 1;
    errno = 0;
    assert_null(aloop_process_spawn(aloop_current(), argv, &e));
    assert_int_equal(errno, EBADF);
    e.extra_fds = NULL;
    errno = 0;
    assert_null(aloop_process_spawn(aloop_current(), argv, &e));
    assert_int_equal(errno, EINVAL);
    close(pp[0]);
    close(pp[1]);
    close(q[0]);
    return NULL;
}
static void child_fds_round(void) { run_task(child_fds_task, NULL); }
BOTH_PATHS(child_fds)

/* A new session: the child leads its session and its group. */
static void *new_session_task(void *arg) {
    (void)arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .flags = ALOOP_PROCESS_NEW_SESSION};
    char *cat[] = {"cat", NULL};
    aloop_process_t *p = aloop_process_spawn(aloop_current(), cat, &o);
    assert_non_null(p);
    pid_t pid = aloop_process_pid(p);
    assert_int_equal(getsid(pid), pid);
    assert_int_equal(getpgid(pid), pid);
    assert_true(getsid(0) != pid);
    assert_int_equal(aloop_process_kill_group(p, 0), 0);
    assert_int_equal(aloop_close(aloop_process_take_fd(p, 0)), 0);
    int st;
    assert_int_equal(aloop_process_wait(p, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    aloop_process_free(p);
    o.flags = ALOOP_PROCESS_NEW_SESSION | ALOOP_PROCESS_NEW_GROUP; /* the same */
    p = aloop_process_spawn(aloop_current(), cat, &o);
    assert_non_null(p);
    assert_int_equal(getsid(aloop_process_pid(p)), aloop_process_pid(p));
    assert_int_equal(aloop_close(aloop_process_take_fd(p, 0)), 0);
    assert_int_equal(aloop_process_wait(p, NULL), 0);
    aloop_process_free(p);
    return NULL;
}
static void new_session_round(void) { run_task(new_session_task, NULL); }
BOTH_PATHS(new_session)

static void *communicate_plain(void *arg) {
    int rc = aloop_process_communicate(arg, "x", 1, NULL, NULL, NULL, NULL, NULL);
    return rc == 0 ? NULL : (void *)1;
}

/* In a forked copy of this process whose fds 0 and 1 are closed: a loop's
 * fds must not take those numbers, and a child with stdin piped, stdout
 * inherited (closed here) and stderr to stdout gets /dev/null on 1 and 2,
 * never one of the library's fds (once the write end of its own stdin,
 * so that communicate never saw the end of it). Exit codes say what
 * failed; alarm bounds a hang. */
static int closed_stdio_child(int report_fd) {
    alarm(60);
    close(0);
    close(1);
    aloop_t *loop = new_loop();
    if (fcntl(0, F_GETFD) >= 0 || fcntl(1, F_GETFD) >= 0) return 10; /* a loop fd on 0/1 */
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_STDOUT,
                              .extra_fds = &report_fd,
                              .n_extra_fds = 1};
    /* the shell's own 1 and 2, read before any redirection of its own */
    char *argv[] = {"sh", "-c",
                    "cat >/dev/null; a=$(readlink /proc/$$/fd/1); b=$(readlink /proc/$$/fd/2);"
                    " echo \"$a $b\" >&3",
                    NULL};
    aloop_process_t *p = aloop_process_spawn(loop, argv, &o);
    if (!p) return 11;
    if (fcntl(0, F_GETFD) >= 0 || fcntl(1, F_GETFD) >= 0) return 12; /* a pipe end on 0/1 */
    aloop_task_t *t = aloop_spawn(loop, communicate_plain, p);
    if (!t || aloop_run(loop) != 0 || aloop_future_result(t, NULL) != 0) return 13;
    aloop_release(t);
    aloop_process_free(p);
    aloop_free(loop);
    return 0;
}

static void closed_stdio_round(void) {
    int rep[2];
    assert_int_equal(pipe(rep), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        _exit(closed_stdio_child(rep[1]));
    }
    close(rep[1]);
    char buf[256];
    size_t len = 0;
    ssize_t n;
    while ((n = read(rep[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
    buf[len] = '\0';
    close(rep[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(buf, "/dev/null /dev/null\n");
}
BOTH_PATHS(closed_stdio)

/* ---- several loops on several threads ----------------------------------- */

#define LOOPS 4
#define PER_LOOP 300

typedef struct loop_run {
    pthread_t th;
    int waited; /* children whose wait returned with exit status 0 */
} loop_run_t;

/* cmocka's asserts must stay on the main thread: count, check there. */
static void *spawn_and_wait_task(void *arg) {
    loop_run_t *r = arg;
    char *argv[] = {"/bin/true", NULL};
    for (int i = 0; i < PER_LOOP; i++) {
        aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, NULL);
        if (!p) break;
        int st = -1;
        if (aloop_process_wait(p, &st) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) r->waited++;
        aloop_process_free(p);
    }
    return NULL;
}

static void *loop_thread(void *arg) {
    aloop_t *loop = aloop_new();
    if (!loop) return NULL;
    aloop_task_t *t = aloop_spawn(loop, spawn_and_wait_task, arg);
    if (t) {
        aloop_run(loop);
        aloop_release(t);
    }
    aloop_free(loop);
    return NULL;
}

/* Loops on several threads, each with children of its own: whichever
 * thread reads a SIGCHLD (one may stand for the exits of several loops'
 * children), every loop must learn of its own children's exits. Every
 * thread blocks SIGCHLD (inherited from this one), as the guide asks of
 * a program using the SIGCHLD path with signalfd. The loops end in any
 * order (the self-pipe's handler must outlive the first). A lost exit
 * shows as a wait that never returns. */
static void many_loops_round(void) {
    sigset_t chld, old;
    sigemptyset(&chld);
#if defined(__linux__) && !defined(ALOOP_NO_SIGNALFD)
    sigaddset(&chld, SIGCHLD); /* the self-pipe's handler needs it unblocked */
#endif
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &chld, &old), 0);
    if (use_fallback)
        setenv("ALOOP_NO_PIDFD", "1", 1);
    else
        unsetenv("ALOOP_NO_PIDFD");
    loop_run_t r[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        r[i].waited = 0;
        assert_int_equal(pthread_create(&r[i].th, NULL, loop_thread, &r[i]), 0);
    }
    for (int i = 0; i < LOOPS; i++) assert_int_equal(pthread_join(r[i].th, NULL), 0);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    for (int i = 0; i < LOOPS; i++) assert_int_equal(r[i].waited, PER_LOOP);
}
BOTH_PATHS(many_loops)

/* ---- allocation failures --------------------------------------------------------------------- */

typedef struct alloc_ctx {
    int violations;
    char what[128];
} alloc_ctx_t;

static void bad(alloc_ctx_t *c, const char *call, long got) {
    if (c->violations++ == 0) snprintf(c->what, sizeof c->what, "%s returned %ld", call, got);
}

static void *alloc_task(void *arg) {
    alloc_ctx_t *c = arg;
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_PIPE, .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_PIPE};
    char *argv[] = {"cat", NULL};
    errno = 0;
    aloop_process_t *p = aloop_process_spawn(aloop_current(), argv, &o);
    if (!p) {
        if (errno != ENOMEM) bad(c, "spawn", -errno);
        return NULL;
    }
    char *out = NULL, *err = NULL;
    int st = -1;
    int rc = aloop_process_communicate(p, "abc", 3, &out, NULL, &err, NULL, &st);
    if (rc == 0 && (strcmp(out, "abc") || strcmp(err, "") || st != 0)) bad(c, "communicate output", 0);
    if (rc != 0 && rc != -ENOMEM) bad(c, "communicate", rc);
    /* on failure: what was read so far (a prefix), NULL when nothing */
    if (rc != 0 && ((out && (!*out || strncmp(out, "abc", strlen(out)))) || err))
        bad(c, "communicate outputs on failure", rc);
    free(out);
    free(err);
    if (rc != 0) {
        int fd = aloop_process_take_fd(p, 0); /* cat exits at EOF */
        if (fd >= 0) aloop_close(fd);
        rc = aloop_process_wait(p, &st); /* no allocation: must work */
        if (rc != 0) bad(c, "wait", rc);
    }
    aloop_process_free(p);
    return NULL;
}

static void alloc_round(long nth, long count) {
    alloc_ctx_t c = {0};
    aloop_t *loop = new_loop();
    aloop__test_fail_alloc(nth, count);
    aloop_task_t *t = aloop_spawn(loop, alloc_task, &c);
    if (t) {
        aloop_run(loop);
        assert_true(aloop_future_done(t));
        aloop_release(t);
    }
    aloop__test_fail_alloc(0, 0);
    aloop_free(loop);
    if (c.violations) fail_msg("nth %ld count %ld: %s", nth, count, c.what);
    wait_no_children();
}

static void allocation_failures_round(void) {
    /* the count of the scenario, taken by one clean run */
    aloop_t *loop = new_loop();
    aloop__test_fail_alloc(LONG_MAX, 0);
    alloc_ctx_t c = {0};
    aloop_task_t *t = spawn(loop, alloc_task, &c);
    aloop_run(loop);
    aloop_release(t);
    long n = (long)aloop__test_alloc_count();
    aloop__test_fail_alloc(0, 0);
    aloop_free(loop);
    assert_int_equal(c.violations, 0);
    assert_true(n > 3);
    for (long nth = 1; nth <= n + 1; nth++) {
        alloc_round(nth, 1);
        alloc_round(nth, -1);
    }
}
BOTH_PATHS(allocation_failures)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_several_waiters),
        cmocka_unit_test(test_exec_failures),
        cmocka_unit_test(test_stdio_modes),
        cmocka_unit_test(test_low_fds),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_communicate),
        cmocka_unit_test(test_communicate_cancel),
        cmocka_unit_test(test_communicate_partial),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_cancel_wait),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_kill_group),
        cmocka_unit_test(test_kill_stranger),
        cmocka_unit_test(test_kill_group_orphans),
        cmocka_unit_test(test_cwd_env),
        cmocka_unit_test(test_sigmask),
        cmocka_unit_test(test_lifetimes),
        cmocka_unit_test(test_free_loop),
        cmocka_unit_test(test_reaper_not_counted),
        cmocka_unit_test(test_other_loop),
        cmocka_unit_test(test_many_loops),
        cmocka_unit_test(test_child_fds),
        cmocka_unit_test(test_new_session),
        cmocka_unit_test(test_closed_stdio),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

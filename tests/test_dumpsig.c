/*
 * test_dumpsig.c - aloop_dump_on_signal and ALOOP_DUMP_SIGNAL
 * (src/features/dumpsig.c): the dump appears after the signal, from a busy
 * loop and from one asleep in its poller on another thread; the previous
 * disposition comes back; bad signals are refused.
 */
#include "aloop_test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* stderr into a temporary file while a test looks at what is printed. */
typedef struct captured {
    FILE *file;
    int saved;
} captured_t;

static void capture_start(captured_t *c) {
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fileno(c->file), 2), 2);
}

static long captured_size(captured_t *c) {
    struct stat st;
    fflush(stderr);
    return fstat(fileno(c->file), &st) == 0 ? (long)st.st_size : -1;
}

/* Stops capturing; returns what was printed (free it). */
static char *capture_end(captured_t *c) {
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    long n = captured_size(c);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    rewind(c->file);
    assert_int_equal(fread(text, 1, (size_t)n, c->file), (size_t)n);
    fclose(c->file);
    return text;
}

/* ---- a busy loop dumps at its next tick */

typedef struct busy_ctx {
    aloop_event_t *ev;
    captured_t *cap;
    int yields;
} busy_ctx_t;

static void *event_waiter(void *arg) {
    busy_ctx_t *c = arg;
    return (void *)(intptr_t)aloop_event_wait(c->ev);
}

static void *signaller(void *arg) {
    busy_ctx_t *c = arg;
    raise(SIGUSR1);
    /* The dump comes at the loop's next step, not inside the handler: keep
     * the loop turning until it is there. */
    while (captured_size(c->cap) == 0 && c->yields < 100000) {
        aloop_yield();
        c->yields++;
    }
    aloop_event_set(c->ev);
    return NULL;
}

static void test_signal_dumps_the_loop(void **state) {
    (void)state;
    captured_t cap;
    assert_int_equal(aloop_dump_on_signal(SIGUSR1), 0);
    aloop_t *loop = vloop();
    busy_ctx_t c = {.ev = aloop_event_new(loop), .cap = &cap};
    aloop_task_t *w = aloop_spawn(loop, event_waiter, &c);
    aloop_task_set_name(w, "patient");
    aloop_task_t *s = aloop_spawn(loop, signaller, &c);
    capture_start(&cap);
    int rc = aloop_run(loop);
    char *text = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_true(c.yields > 0);     /* not printed from the handler itself */
    assert_true(c.yields < 100000);
    const char *dump = strstr(text, "aloop: dump on signal\n");
    assert_non_null(dump);
    const char *task = strstr(dump, "task 'patient' #1: suspended, in ");
    assert_non_null(task);
    assert_non_null(strstr(task, "aloop_event_wait+0x")); /* its stack */
    assert_non_null(strstr(dump, "task 'Task-2' #2: ready"));
    free(text);
    aloop_release(w);
    aloop_release(s);
    aloop_event_free(c.ev);
    aloop_free(loop);
    assert_int_equal(aloop_dump_on_signal(0), 0);
}

/* ---- a loop asleep in its poller, on another thread, wakes for it */

typedef struct sleeper_ctx {
    aloop_t *loop;
    int ready_fd; /* written once the task is about to sleep */
} sleeper_ctx_t;

static void *long_sleep(void *arg) {
    sleeper_ctx_t *c = arg;
    char one = 1;
    assert_int_equal(write(c->ready_fd, &one, 1), 1);
    aloop_sleep(3600);
    return NULL;
}

static void *run_thread(void *arg) {
    sleeper_ctx_t *c = arg;
    aloop_task_t *t = aloop_spawn(c->loop, long_sleep, c);
    aloop_task_set_name(t, "dozer");
    aloop_run(c->loop); /* until aloop_stop */
    aloop_release(t);
    return NULL;
}

/* Reads fd until `needle` was seen (at most 30 s, a safety net only). */
static int read_until(int fd, const char *needle, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    while (!strstr(buf, needle) && used + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 30000) != 1) return 0;
        ssize_t n = read(fd, buf + used, cap - 1 - used);
        if (n <= 0) return 0;
        used += (size_t)n;
        buf[used] = '\0';
    }
    return strstr(buf, needle) != NULL;
}

static void test_sleeping_loop_on_another_thread_wakes_to_dump(void **state) {
    (void)state;
    int ready[2], err[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(err), 0);
    assert_int_equal(aloop_dump_on_signal(SIGUSR2), 0);
    sleeper_ctx_t c = {.loop = aloop_new(), .ready_fd = ready[1]};
    assert_non_null(c.loop);
    fflush(stderr);
    int saved = dup(2);
    assert_int_equal(dup2(err[1], 2), 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &c), 0);
    char one;
    assert_int_equal(read(ready[0], &one, 1), 1);
    kill(getpid(), SIGUSR2); /* whichever thread takes it, the loop wakes */
    static char text[65536];
    int seen = read_until(err[0], "task 'dozer' #1: suspended, in aloop_sleep", text, sizeof text);
    aloop_stop(c.loop); /* from another thread: it stops at its next drain */
    pthread_join(th, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_true(seen);
    assert_non_null(strstr(text, "aloop: dump on signal\n"));
    aloop_free(c.loop);
    assert_int_equal(aloop_dump_on_signal(0), 0);
    close(ready[0]);
    close(ready[1]);
    close(err[0]);
    close(err[1]);
}

/* ---- dispositions */

static void (*handler_of(int signo))(int) {
    struct sigaction sa;
    assert_int_equal(sigaction(signo, NULL, &sa), 0);
    return sa.sa_handler;
}

static void test_stop_gives_the_previous_disposition_back(void **state) {
    (void)state;
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_DFL);
    assert_int_equal(aloop_dump_on_signal(SIGUSR1), 0);
    assert_true(handler_of(SIGUSR1) != SIG_IGN);
    /* a second signal replaces the first, whose disposition comes back */
    assert_int_equal(aloop_dump_on_signal(SIGUSR2), 0);
    assert_true(handler_of(SIGUSR1) == SIG_IGN);
    assert_true(handler_of(SIGUSR2) != SIG_DFL);
    assert_int_equal(aloop_dump_on_signal(0), 0);
    assert_true(handler_of(SIGUSR2) == SIG_DFL);
    assert_int_equal(aloop_dump_on_signal(0), 0); /* twice: nothing to undo */
    raise(SIGUSR1); /* ignored again: the process lives on */
    signal(SIGUSR1, SIG_DFL);
}

static void test_bad_signals_are_refused(void **state) {
    (void)state;
    int bad[] = {-1, NSIG, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(aloop_dump_on_signal(bad[i]), -EINVAL);
    assert_true(handler_of(SIGSEGV) != SIG_IGN);
}

/* ---- ALOOP_DUMP_SIGNAL, in a fresh process (this program run again with
 * --env-child VALUE): it is read once per process, and not at all once
 * the program called aloop_dump_on_signal. */

static void *raise_usr2(void *arg) {
    captured_t *cap = arg;
    raise(SIGUSR2);
    for (int i = 0; i < 100000 && captured_size(cap) == 0; i++) aloop_yield();
    return NULL;
}

static int env_child(const char *value) {
    setenv("ALOOP_DUMP_SIGNAL", value, 1);
    captured_t cap;
    capture_start(&cap);
    aloop_t *loop = vloop();
    int armed = handler_of(SIGUSR2) != SIG_DFL;
    if (armed) {
        aloop_task_t *t = aloop_spawn(loop, raise_usr2, &cap);
        aloop_run(loop);
        aloop_release(t);
    }
    aloop_free(loop);
    char *text = capture_end(&cap);
    int ok = armed ? strstr(text, "aloop: dump on signal") != NULL
                   : strstr(text, "names no signal") != NULL;
    free(text);
    return ok ? 0 : 1;
}

static void test_environment_arms_the_dump(void **state) {
    (void)state;
    const char *values[] = {"USR2", "SIGUSR2", "BOGUS"};
    for (size_t i = 0; i < 3; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            execl("/proc/self/exe", "test_dumpsig", "--env-child", values[i], (char *)NULL);
            _exit(127);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--env-child") == 0) return env_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_dumps_the_loop),
        cmocka_unit_test(test_sleeping_loop_on_another_thread_wakes_to_dump),
        cmocka_unit_test(test_stop_gives_the_previous_disposition_back),
        cmocka_unit_test(test_bad_signals_are_refused),
        cmocka_unit_test(test_environment_arms_the_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

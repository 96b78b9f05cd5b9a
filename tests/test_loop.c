/* Tests for src/loop.c: creating and freeing loops. */
#include "aloop_test.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* In a child: with every fd in use, aloop_new fails with the real error
 * (EMFILE from epoll_create1 or the wake-up fd), not ENOMEM; with one fd
 * free it still fails (the loop needs two: backend and wake-up, or the
 * wake-up alone with poll(2)) and leaks nothing; with fds back it works.
 * Exit status: 0 = as expected, else the step that went wrong. */
static int emfile_child(void) {
    aloop_t *probe_loop = aloop_new();
    if (!probe_loop) return 9;
    int backend_has_fd = aloop_backend_fd(probe_loop) >= 0; /* not poll(2) */
    aloop_free(probe_loop);
    struct rlimit rl = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return 10;
    int last = -1;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break;
        last = fd;
    }
    if (errno != EMFILE || last < 0) return 11;
    errno = 0;
    if (aloop_new() != NULL) return 12;
    if (errno != EMFILE) return 13;
    close(last); /* one free fd: the backend or the wake-up fd gets it */
    errno = 0;
    aloop_t *loop = aloop_new();
    if (!backend_has_fd) {
        if (!loop) return 14; /* poll(2) needs no fd of its own */
        aloop_free(loop);
    } else if (loop != NULL || errno != EMFILE) {
        return 15;
    }
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the fd was given back */
    if (probe < 0) return 16;
    close(probe);
    for (int fd = 3; fd <= last; fd++) close(fd);
    loop = aloop_new();
    if (!loop) return 17;
    aloop_free(loop);
    return 0;
}

static void test_new_reports_the_real_error(void **state) {
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(emfile_child());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_new_rejects_bad_config(void **state) {
    (void)state;
    aloop_config_t cfg = {.clock = 12345};
    errno = 0;
    assert_null(aloop_new_with(&cfg));
    assert_int_equal(errno, EINVAL);
}

/* ALOOP_CLOCK=virtual in the environment makes every new loop virtual, so
 * a program's timeline can be tested without waiting; anything else leaves
 * the config's choice. */
static void *sleep_an_hour(void *arg) {
    (void)arg;
    return (void *)(long)aloop_sleep(3600);
}

/* A fresh loop's virtual clock stands still while real time passes; the
 * monotonic one moves with it. */
static int clock_is_virtual(aloop_t *loop) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    return aloop_time(loop) == 0.0;
}

static void test_env_clock_virtual(void **state) {
    (void)state;
    const char *old = getenv("ALOOP_CLOCK");
    setenv("ALOOP_CLOCK", "virtual", 1);
    aloop_t *virt = aloop_new();
    void *rc = (void *)1;
    assert_int_equal(aloop_main(sleep_an_hour, NULL, &rc), 0); /* at once */
    assert_null(rc);
    setenv("ALOOP_CLOCK", "monotonic", 1);
    aloop_t *mono = aloop_new();
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    aloop_t *asked = aloop_new_with(&cfg);
    unsetenv("ALOOP_CLOCK");
    aloop_t *plain = aloop_new();
    if (old) setenv("ALOOP_CLOCK", old, 1);
    assert_true(clock_is_virtual(virt));
    assert_false(clock_is_virtual(mono));
    assert_true(clock_is_virtual(asked)); /* the config's choice stands */
    assert_false(clock_is_virtual(plain));
    aloop_free(virt);
    aloop_free(mono);
    aloop_free(asked);
    aloop_free(plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_reports_the_real_error),
        cmocka_unit_test(test_new_rejects_bad_config),
        cmocka_unit_test(test_env_clock_virtual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for src/pipe.c: both ends non-blocking and close-on-exec. */
#include "aloop_test.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "pipe_internal.h"

static void test_pipe_ends_nonblocking_cloexec(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(aloop__pipe(p), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(fcntl(p[i], F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(p[i], F_GETFD) & FD_CLOEXEC);
    }
    char c = 'x';
    assert_int_equal(read(p[0], &c, 1), -1); /* empty: does not block */
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(p[0]);
    close(p[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_ends_nonblocking_cloexec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

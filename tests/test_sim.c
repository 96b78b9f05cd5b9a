/* Simulation (src/sim.c): seeded fault injection at the library's system
 * calls, and deterministic replay. API tests: only aloop.h. */
#include "aloop_test.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>

/* A simulated loop on the virtual clock. */
static aloop_t *sim_loop(uint64_t seed, unsigned faults, double rate) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL, .sim_seed = seed,
                          .sim_faults = faults, .sim_rate = rate};
    aloop_t *loop = aloop_new_with(&cfg);
    assert_non_null(loop);
    return loop;
}

/* ---- configuration */

static void test_config_and_seed(void **state) {
    (void)state;
    unsetenv("ALOOP_SIM");
    aloop_t *loop = aloop_new();
    assert_non_null(loop);
    assert_true(aloop_sim_seed(loop) == 0); /* off by default */
    aloop_free(loop);
    loop = sim_loop(42, ALOOP_SIM_BENIGN, 0.5);
    assert_true(aloop_sim_seed(loop) == 42);
    aloop_free(loop);
    assert_true(aloop_sim_seed(NULL) == 0);
    aloop_config_t bad[] = {
        {.sim_seed = 1, .sim_faults = 0x40u},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = 1.5},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = -0.1},
        {.sim_seed = 1, .sim_faults = ALOOP_SIM_BENIGN, .sim_rate = NAN},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_null(aloop_new_with(&bad[i]));
        assert_int_equal(errno, EINVAL);
    }
}

/* ALOOP_SIM applies to loops whose config has no seed of its own; a
 * malformed value is ignored (and said so on stderr). */
static void test_environment(void **state) {
    (void)state;
    struct {
        const char *env;
        uint64_t seed;
    } cases[] = {
        {"7", 7}, {"0x10:short,eintr", 16}, {"99:benign:0.25", 99}, {"5:reset,enomem:1", 5},
        {"0", 0}, {"x", 0}, {"3:nonsense", 0}, {"3:short:2", 0}, {"3:short:0.5junk", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("ALOOP_SIM", cases[i].env, 1);
        aloop_t *loop = aloop_new();
        assert_non_null(loop);
        assert_true(aloop_sim_seed(loop) == cases[i].seed);
        aloop_free(loop);
    }
    setenv("ALOOP_SIM", "7", 1);
    aloop_t *loop = sim_loop(11, 0, 0); /* the config's own seed wins */
    assert_true(aloop_sim_seed(loop) == 11);
    aloop_free(loop);
    unsetenv("ALOOP_SIM");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_seed),
        cmocka_unit_test(test_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

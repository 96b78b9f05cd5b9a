// header_cxx.cpp - aloop.h must be usable from C++ (extern "C", no C-only
// constructs): this links against the shared library, so a missing
// extern "C" shows up as unresolved mangled names.
#include <aloop.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

static void *answer(void *arg) {
    static int value = 42;
    (void)arg;
    if (aloop_sleep(0.5) != 0) return aloop_fail(-EIO);
    return &value;
}

int main() {
    aloop_config_t cfg = aloop_config_t();
    cfg.clock = ALOOP_CLOCK_VIRTUAL;
    if (std::strcmp(aloop_version(), ALOOP_EXPECT_VERSION) != 0) {
        std::fprintf(stderr, "library says %s, build says %s\n", aloop_version(), ALOOP_EXPECT_VERSION);
        return 1;
    }
    void *result = nullptr;
    int rc = aloop_main_with(&cfg, answer, nullptr, &result);
    if (rc != 0 || result == nullptr || *static_cast<int *>(result) != 42) {
        std::fprintf(stderr, "aloop_main_with: %s\n", aloop_strerror(rc));
        return 1;
    }
    std::puts("ok");
    return 0;
}

/*
 * header_c99.c - aloop.h must compile as strict C99 (this file is built
 * with -std=c99 -Wpedantic) and the library it links must report the
 * version the build system was configured with: a header, a project()
 * VERSION and a library that disagree fail here.
 */
#include <aloop.h>

#include <stdio.h>
#include <string.h>

static void *answer(void *arg) {
    (void)arg;
    return (void *)(size_t)42;
}

int main(void) {
    void *result = NULL;
    aloop_config_t cfg = {0};
    cfg.clock = ALOOP_CLOCK_VIRTUAL;
    if (strcmp(aloop_version(), ALOOP_EXPECT_VERSION) != 0) {
        fprintf(stderr, "library says %s, build says %s\n", aloop_version(), ALOOP_EXPECT_VERSION);
        return 1;
    }
    if (aloop_main_with(&cfg, answer, NULL, &result) != 0 || result != (void *)(size_t)42) {
        fprintf(stderr, "aloop_main_with failed\n");
        return 1;
    }
    puts("ok");
    return 0;
}

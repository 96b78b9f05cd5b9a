/*
 * error.c - error text and the version string.
 */
#include "aloop.h"

#include <errno.h>
#include <string.h>

#define ALOOP_STR2(x) #x
#define ALOOP_STR(x) ALOOP_STR2(x)

const char *aloop_version(void) {
    return ALOOP_STR(ALOOP_VERSION_MAJOR) "." ALOOP_STR(ALOOP_VERSION_MINOR) "." ALOOP_STR(
        ALOOP_VERSION_PATCH);
}

const char *aloop_strerror(int err) {
    if (err < 0) err = -err;
    switch (err) {
    case 0: return "success";
    case ECANCELED: return "operation cancelled";
    case ETIMEDOUT: return "timed out";
    case EPERM: return "not allowed here (suspending call outside a task?)";
    case EDEADLK: return "no progress possible (nothing left to wake a waiter)";
    case EPIPE: return "shut down or broken pipe";
    default: return strerror(err);
    }
}

/*
 * error.c - error text, the version string, and the misuse policy's report.
 */
#include "aloop.h"
#include "error_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALOOP_STR2(x) #x
#define ALOOP_STR(x) ALOOP_STR2(x)

const char *aloop_version(void) {
    return ALOOP_STR(ALOOP_VERSION_MAJOR) "." ALOOP_STR(ALOOP_VERSION_MINOR) "." ALOOP_STR(
        ALOOP_VERSION_PATCH);
}

const char *aloop_strerror(ssize_t value) {
    if (value < 0) value = -value;
    if (value > INT_MAX) return "unknown error";
    int err = (int)value;
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

/* ---- misuse */

/* The one misuse policy.
 *
 * Misuse is a call the program should never make in that situation, as
 * opposed to a bad argument value (NULL, NaN, a negative delay: plain
 * -EINVAL, always) or a state the caller cannot foresee (a done future:
 * -EINVAL, a full queue: -EAGAIN). The rules:
 *
 *   a suspending call outside a task                          -EPERM
 *   a loop used from a thread other than the one running it   -EPERM
 *   re-entering a running loop (aloop_run inside it)          -EPERM
 *   an object of another loop (or of a freed one)             -EINVAL
 *   aloop_free from inside the running loop                   ignored
 *
 * Normally the call fails with that errno and changes nothing. In debug
 * mode (ALOOP_DEBUG) it prints what went wrong and aborts instead: a
 * mistake found at its first occurrence, with a core dump, beats an error
 * code that a careless caller drops. Debug mode is a loop's: a misuse that
 * involves no loop (a suspending call while no loop runs on the thread)
 * can only answer with its errno. Calls that cannot return an error (void
 * ones) print the message and do nothing.
 *
 * One exception, above: releasing a future more often than it was
 * retained. Without debug mode the memory is already gone, so we abort; in
 * debug mode the quarantine keeps it, so it is reported and ignored.
 */

int aloop__misuse_at(int debug, int err, const char *call, const char *fmt, ...) {
    if (err && !debug) return err;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "aloop: %s: %s%s\n", call, msg, debug ? "" : "; ignored");
    if (debug) abort();
    return err;
}

int aloop__wrong_thread_at(int debug, const void *loop, const char *call) {
    return aloop__misuse_at(debug, -EPERM, call,
                            "loop %p is running on another thread; only "
                            "aloop_call_soon_threadsafe may be called from here",
                            loop);
}

int aloop__foreign_loop_at(int debug, const void *owner, const void *here, const char *call) {
    if (!owner) return aloop__misuse_at(debug, -EINVAL, call, "the object's loop was freed");
    return aloop__misuse_at(debug, -EINVAL, call, "the object belongs to loop %p, not to loop %p",
                            owner, here);
}

void *aloop__null_errno(int err) {
    errno = -err;
    return NULL;
}

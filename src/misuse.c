/*
 * misuse.c - the one misuse policy.
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
 * One exception, in debug.c: releasing a future more often than it was
 * retained. Without debug mode the memory is already gone, so we abort; in
 * debug mode the quarantine keeps it, so it is reported and ignored.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

int aloop__misuse(const aloop_t *loop, int err, const char *call, const char *fmt, ...) {
    int debug = loop && (loop->flags & ALOOP_DEBUG);
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

int aloop__wrong_thread(const aloop_t *loop, const char *call) {
    return aloop__misuse(loop, -EPERM, call,
                         "loop %p is running on another thread; only "
                         "aloop_call_soon_threadsafe may be called from here",
                         (const void *)loop);
}

int aloop__foreign_loop(const aloop_t *owner, const aloop_t *here, const char *call) {
    if (!owner)
        return aloop__misuse(here, -EINVAL, call, "the object's loop was freed");
    return aloop__misuse(owner, -EINVAL, call, "the object belongs to loop %p, not to loop %p",
                         (const void *)owner, (const void *)here);
}

void *aloop__null_errno(int err) {
    errno = -err;
    return NULL;
}

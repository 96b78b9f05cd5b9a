/*
 * error_internal.h - the misuse policy's reporting and the constructors'
 * errno (error.c). A leaf: the caller says whether its loop is in debug
 * mode; internal.h wraps these in the loop-aware helpers every module uses
 * (aloop__misuse, aloop__wrong_thread, aloop__foreign_loop).
 */
#ifndef ALOOP_ERROR_INTERNAL_H
#define ALOOP_ERROR_INTERNAL_H

/* Misuse (the rules are listed in error.c). Returns err (-EPERM /
 * -EINVAL); with debug set it prints "aloop: <call>: <message>" and aborts.
 * err == 0: the call cannot report an error; the message is printed and
 * the caller does nothing. */
int aloop__misuse_at(int debug, int err, const char *call, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* The two misuses every module checks (debug: the loop concerned is in
 * debug mode): a loop used from a thread that does not run it (-EPERM);
 * an object of loop `owner` used with loop `here`, or after its loop was
 * freed (owner NULL) (-EINVAL). */
int aloop__wrong_thread_at(int debug, const void *loop, const char *call);
int aloop__foreign_loop_at(int debug, const void *owner, const void *here, const char *call);

/* Constructors fail through here: sets errno to -err, returns NULL. */
void *aloop__null_errno(int err);

#endif /* ALOOP_ERROR_INTERNAL_H */

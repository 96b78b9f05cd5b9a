/* Temporary: poller and cross-thread seams with no fds, until io lands. */
#include "internal.h"
#include <time.h>
int aloop__poller_init(aloop_t *loop) { ALOOP_UNUSED(loop); return 0; }
void aloop__poller_free(aloop_t *loop) { ALOOP_UNUSED(loop); }
int aloop__poller_poll(aloop_t *loop, double timeout) {
    ALOOP_UNUSED(loop);
    if (timeout > 0) {
        struct timespec ts = {(time_t)timeout, (long)((timeout - (double)(time_t)timeout) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return 0;
}
size_t aloop__poller_pending(const aloop_t *loop) { ALOOP_UNUSED(loop); return 0; }
int aloop__async_init(aloop_t *loop) { ALOOP_UNUSED(loop); return 0; }
void aloop__async_free(aloop_t *loop) { ALOOP_UNUSED(loop); }
void aloop__async_drain(aloop_t *loop) { ALOOP_UNUSED(loop); }
size_t aloop__async_pending(const aloop_t *loop) { ALOOP_UNUSED(loop); return 0; }

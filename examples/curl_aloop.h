/*
 * curl_aloop.h - libcurl's multi socket interface on an aloop loop.
 *
 * A small adapter meant to be copied into your program (it is not part of
 * libaloop): libcurl tells us which sockets to watch and when it next needs
 * a timeout; we turn those into aloop_add_reader/add_writer watches and an
 * aloop_call_later timer, and hand every finished transfer to the task
 * that waits for it as a future. Any callback-driven C library (c-ares,
 * hiredis, libssh2, ...) plugs into aloop the same way.
 *
 *     curl_aloop_t *ca = curl_aloop_new(loop);
 *     ...in a task:
 *     CURL *easy = curl_easy_init();
 *     curl_easy_setopt(easy, CURLOPT_URL, url);
 *     int rc = curl_aloop_perform(ca, easy);   // suspends this task only
 *     // rc: a CURLcode (0 = CURLE_OK), or -ECANCELED / -ENOMEM
 *
 * Everything runs on the loop's thread; curl's callbacks run from aloop's
 * fd watches and timer, never from another thread.
 */
#ifndef CURL_ALOOP_H
#define CURL_ALOOP_H

#include <aloop.h>
#include <curl/curl.h>

typedef struct curl_aloop curl_aloop_t;

/* A multi handle driven by loop. NULL + errno (ENOMEM, EINVAL). */
curl_aloop_t *curl_aloop_new(aloop_t *loop);

/* The multi handle, for curl_multi_setopt (CURLMOPT_MAX_HOST_CONNECTIONS,
 * ...). Do not change its SOCKET* and TIMER* options. */
CURLM *curl_aloop_multi(curl_aloop_t *ca);

/* Starts the transfer of easy as a task and returns it (a task is a
 * future): it completes with the transfer's CURLcode as its result
 * ((void *)(intptr_t)code), or fails with -ENOMEM / -EBUSY (easy already in
 * a transfer). Cancelling it (aloop_cancel, cancelling a task that awaits
 * it, an aloop_wait_for timeout) aborts the transfer; once the task is done
 * curl no longer uses easy. The caller owns the task's reference; easy
 * stays the caller's (clean it up once the task is done). Uses easy's
 * CURLOPT_PRIVATE. NULL + errno (ENOMEM, EINVAL). */
aloop_task_t *curl_aloop_start(curl_aloop_t *ca, CURL *easy);

/* Inside a task: start + await. Returns the CURLcode (>= 0), or -ECANCELED
 * (the task was cancelled; the transfer is aborted), -ENOMEM, -EPERM
 * outside a task. */
int curl_aloop_perform(curl_aloop_t *ca, CURL *easy);

/* Aborts the transfers still running (their futures are cancelled), then
 * frees the multi handle. Call on the loop's thread, before aloop_free. */
void curl_aloop_free(curl_aloop_t *ca);

#endif

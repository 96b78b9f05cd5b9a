/*
 * curl-fetch - fetch many URLs concurrently with libcurl on an aloop loop.
 *
 *     curl-fetch [--timeout SECS] URL...
 *
 * One task per URL; each awaits its transfer as a future (curl_aloop.c,
 * the adapter between libcurl's multi socket interface and aloop's fd
 * watches and timers). HTTPS, redirects, HTTP/2 and proxies come with
 * curl. With --timeout, a transfer still running after SECS is cancelled
 * (aloop_wait_for), which takes it out of curl at once. The results are
 * printed in the order of the arguments; the exit status is 0 when every
 * URL answered with a 2xx status.
 */
#include "curl_aloop.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fetch {
    curl_aloop_t *ca;
    const char *url;
    double timeout;  /* < 0: none */
    size_t bytes;
    long status;     /* HTTP status, 0 if none */
    int rc;          /* CURLcode (>= 0) or -errno */
} fetch_t;

static size_t count_bytes(char *data, size_t size, size_t n, void *arg) {
    (void)data;
    ((fetch_t *)arg)->bytes += size * n;
    return size * n;
}

static void *fetch_one(void *arg) {
    fetch_t *f = arg;
    CURL *easy = curl_easy_init();
    if (!easy) {
        f->rc = -ENOMEM;
        return NULL;
    }
    curl_easy_setopt(easy, CURLOPT_URL, f->url);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, count_bytes);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in resolves */
    if (f->timeout < 0) {
        f->rc = curl_aloop_perform(f->ca, easy);
    } else {
        aloop_task_t *t = curl_aloop_start(f->ca, easy);
        void *code = NULL;
        f->rc = t ? aloop_wait_for(t, f->timeout, &code) : -errno;
        if (f->rc == 0) f->rc = (int)(intptr_t)code;
        aloop_release(t);
    }
    if (f->rc == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(easy); /* the transfer is over or cancelled: curl let go */
    return NULL;
}

typedef struct job {
    fetch_t *fetches;
    int n;
} job_t;

static void *fetch_all(void *arg) {
    job_t *job = arg;
    aloop_task_t **tasks = calloc((size_t)job->n, sizeof *tasks);
    if (!tasks) return aloop_fail(-ENOMEM);
    int spawned = 0;
    for (; spawned < job->n; spawned++) {
        tasks[spawned] = aloop_spawn(aloop_current(), fetch_one, &job->fetches[spawned]);
        if (!tasks[spawned]) break;
    }
    int rc = aloop_gather(tasks, (size_t)spawned, NULL, NULL, ALOOP_RETURN_ERRORS);
    for (int i = 0; i < spawned; i++) aloop_release(tasks[i]);
    free(tasks);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

static int usage(FILE *out, int rc) {
    fprintf(out, "usage: curl-fetch [--timeout SECS] URL...\n"
                 "Fetches the URLs concurrently (libcurl on aloop) and prints, per URL in\n"
                 "argument order, its HTTP status and size, or the error.\n");
    return rc;
}

int main(int argc, char **argv) {
    double timeout = -1;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            char *end;
            timeout = strtod(argv[++i], &end);
            if (*end || !(timeout > 0)) return usage(stderr, 2);
        } else {
            return usage(stderr, 2);
        }
    }
    if (i == argc) return usage(stderr, 2);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;

    aloop_t *loop = aloop_new();
    curl_aloop_t *ca = loop ? curl_aloop_new(loop) : NULL;
    if (!ca) {
        perror("curl-fetch");
        return 1;
    }
    job_t job = {.n = argc - i, .fetches = calloc((size_t)(argc - i), sizeof(fetch_t))};
    for (int k = 0; k < job.n; k++)
        job.fetches[k] = (fetch_t){.ca = ca, .url = argv[i + k], .timeout = timeout};
    aloop_task_t *t = aloop_spawn(loop, fetch_all, &job);
    int rc = t ? aloop_run_until_complete(loop, t) : -ENOMEM;
    aloop_release(t);

    int ok = rc == 0;
    for (int k = 0; k < job.n; k++) {
        fetch_t *f = &job.fetches[k];
        if (f->rc == CURLE_OK) {
            printf("%s: HTTP %ld, %zu bytes\n", f->url, f->status, f->bytes);
            if (f->status < 200 || f->status > 299) ok = 0;
        } else if (f->rc == -ETIMEDOUT) {
            printf("%s: timed out after %g s (transfer cancelled)\n", f->url, timeout);
            ok = 0;
        } else {
            printf("%s: error: %s\n", f->url,
                   f->rc > 0 ? curl_easy_strerror((CURLcode)f->rc) : aloop_strerror(f->rc));
            ok = 0;
        }
    }
    curl_aloop_free(ca);
    aloop_free(loop);
    free(job.fetches);
    curl_global_cleanup();
    return ok ? 0 : 1;
}

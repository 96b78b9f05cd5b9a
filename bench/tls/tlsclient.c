/* tlsclient - the libaloop client side of bench/tls: tlsload's work done
 * with aloop-tls (aloop_open_tls_connection, aloop_stream_write/read), so
 * that the client's CPU per handshake or per MB can be set beside
 * tlsload's (plain OpenSSL) against the same server.
 *
 *   tlsclient --connect HOST:PORT [--mode new|reuse|bulk] [-c N]
 *             [--seconds S] [--warmup S] [--path /NAME]
 *
 * -c N tasks on one loop, each: connect + handshake, "GET /NAME
 * HTTP/1.0", read to EOF, close; then again. new: the config's session
 * cache is off, every handshake is full; reuse: it is on (the default), so
 * every connection after the first resumes (aloop_tls_resumed counts
 * them). No certificate check (aloop_tls_config_set_verify 0), as tlsload.
 * The suite and group are OpenSSL's defaults unless OPENSSL_CONF says
 * otherwise (bench/tls/run points it at a file that asks for what tlsload
 * offers). Prints one line as tlsload does (ops, rate, MBps, reused,
 * client_cpu: us per handshake or ms per MB).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>
#include <aloop_tls.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

typedef struct run {
    const char *host, *port, *path;
    int bulk, reuse, nconn;
    double seconds, warmup;
    aloop_tls_config_t *cfg;
    int measuring, stop;
    unsigned long long ops, reused, bytes, failed;
    const char *version;
} run_t;

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* One connection: 0 when the answer was read to its end. */
static int fetch(run_t *r, char *buf, size_t cap)
{
    aloop_stream_t *s;
    int rc = aloop_open_tls_connection(r->host, r->port, r->cfg, 10.0, &s);
    if (rc < 0)
        return rc;
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", r->path);
    ssize_t got = aloop_stream_write(s, req, (size_t)n);
    while (got > 0) {
        got = aloop_stream_read(s, buf, cap);
        if (got > 0 && r->measuring)
            r->bytes += (unsigned long long)got;
    }
    if (got == 0 && r->measuring) {
        r->ops++;
        r->reused += (unsigned long long)aloop_tls_resumed(s);
    }
    if (r->version == NULL)
        r->version = aloop_tls_version(s); /* a static string of OpenSSL's */
    aloop_stream_close(s);
    return got == 0 ? 0 : (int)got;
}

static void *worker(void *arg)
{
    run_t *r = arg;
    enum { CAP = 64 * 1024 };
    char *buf = malloc(CAP);
    while (buf != NULL && !r->stop) {
        int rc = fetch(r, buf, CAP);
        if (rc < 0 && !r->stop && r->failed++ == 0)
            fprintf(stderr, "tlsclient: first failure: %s (%s)\n", strerror(-rc), aloop_tls_error());
        if (r->failed > 100 && r->failed > r->ops)
            break;
    }
    free(buf);
    return NULL;
}

static void *main_task(void *arg)
{
    run_t *r = arg;
    char buf[4096];
    if (fetch(r, buf, sizeof buf) < 0) { /* the first alone: a session to resume */
        fprintf(stderr, "tlsclient: the first connection failed: %s\n", aloop_tls_error());
        exit(1);
    }
    aloop_task_t **tasks = calloc((size_t)r->nconn, sizeof *tasks);
    for (int i = 0; tasks != NULL && i < r->nconn; i++)
        tasks[i] = aloop_spawn(aloop_current(), worker, r);
    aloop_sleep(r->warmup);
    r->measuring = 1;
    double t0 = aloop_time(aloop_current()), c0 = cpu_now();
    aloop_sleep(r->seconds);
    r->measuring = 0;
    double el = aloop_time(aloop_current()) - t0, cpu = cpu_now() - c0;
    r->stop = 1;
    for (int i = 0; tasks != NULL && i < r->nconn; i++) {
        if (tasks[i] != NULL) {
            aloop_cancel(tasks[i]);
            aloop_await(tasks[i], NULL);
            aloop_release(tasks[i]);
        }
    }
    free(tasks);
    double per = r->bulk ? (double)r->bytes / 1e6 : (double)r->ops;
    printf("ops=%llu seconds=%.3f rate=%.1f MBps=%.1f reused=%llu failed=%llu", r->ops, el,
           (double)r->ops / el, (double)r->bytes / 1e6 / el, r->reused, r->failed);
    if (per > 0)
        printf(" client_cpu=%.2f", cpu / per * (r->bulk ? 1e3 : 1e6));
    printf(" version=%s\n", r->version != NULL ? r->version : "?");
    return NULL;
}

int main(int argc, char **argv)
{
    run_t r = {.path = "/small", .nconn = 8, .seconds = 3, .warmup = 0.5};
    const char *target = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--connect") == 0)
            target = v;
        else if (strcmp(a, "--mode") == 0)
            r.bulk = strcmp(v, "bulk") == 0, r.reuse = strcmp(v, "reuse") == 0;
        else if (strcmp(a, "-c") == 0)
            r.nconn = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            r.seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            r.warmup = atof(v);
        else if (strcmp(a, "--path") == 0)
            r.path = v;
        else
            target = NULL, i = argc;
    }
    char host[256];
    char *colon = NULL;
    if (target != NULL && strlen(target) < sizeof host) {
        strcpy(host, target);
        colon = strrchr(host, ':');
    }
    if (colon == NULL || r.nconn < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: tlsclient --connect HOST:PORT [--mode new|reuse|bulk] [-c N]\n"
                        "  [--seconds S] [--warmup S] [--path /NAME]\n");
        return 2;
    }
    *colon = '\0';
    r.host = host;
    r.port = colon + 1;
    r.cfg = aloop_tls_client_config_new();
    if (r.cfg == NULL || aloop_tls_config_set_verify(r.cfg, 0) < 0 ||
        aloop_tls_config_set_session_cache(r.cfg, r.reuse) < 0) {
        fprintf(stderr, "tlsclient: config: %s\n", strerror(errno));
        return 1;
    }
    int rc = aloop_main(main_task, &r, NULL);
    aloop_tls_config_free(r.cfg);
    return rc == 0 ? 0 : 1;
}

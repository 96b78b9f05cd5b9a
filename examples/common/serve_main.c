/*
 * serve_main.c - N loops on N threads, a listener each, graceful shutdown
 * on SIGINT/SIGTERM (see serve_main.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "serve_main.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Stopping                                                                 */
/* ------------------------------------------------------------------------ */

/* On loop i's thread: loop 0 asks it to stop. */
static void stop_this_loop(void *arg) {
    serve_loop_t *l = arg;
    l->stop_requested = 1;
    if (l->stop) aloop_event_set(l->stop);
}

/* On loop 0: every other loop shuts down the same way. Posting never waits;
 * a loop we cannot tell would keep the process up, so say so. */
static void tell_other_loops_to_stop(serve_loop_t *l0) {
    for (unsigned i = 1; i < l0->n; i++) {
        int rc = aloop_call_soon_threadsafe(l0->all[i].loop, stop_this_loop, &l0->all[i]);
        if (rc < 0)
            fprintf(stderr, "%s: cannot stop loop %u: %s\n", l0->cfg->name, i, aloop_strerror(rc));
    }
}

/* The user insists: end the process by that signal now. aloop_signal_wait
 * keeps the signal blocked in this thread, so it is raised with the default
 * action and then unblocked. */
static void die_by_signal(const char *name, int signo) {
    fprintf(stderr, "%s: second signal during shutdown; exiting now\n", name);
    signal(signo, SIG_DFL);
    raise(signo);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    _exit(128 + signo); /* not reached */
}

/* Loop 0: the first SIGINT/SIGTERM starts the graceful shutdown; the
 * watcher keeps running during it, so a second one is not lost. */
static void *signal_main(void *arg) {
    serve_loop_t *l0 = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        int signo = aloop_signal_wait_any(&set);
        if (signo < 0) {
            if (signo != -ECANCELED)
                fprintf(stderr, "%s: cannot wait for SIGINT/SIGTERM: %s\n", l0->cfg->name,
                        aloop_strerror(signo));
            return NULL;
        }
        if (l0->signals++ > 0) die_by_signal(l0->cfg->name, signo);
        aloop_event_set(l0->stop);
        tell_other_loops_to_stop(l0);
    }
}

void serve_stop_task(aloop_task_t *t) {
    if (!t) return;
    aloop_cancel(t);
    aloop_await(t, NULL);
    aloop_release(t);
}

/* ------------------------------------------------------------------------ */
/* One loop                                                                 */
/* ------------------------------------------------------------------------ */

/* "listening on 127.0.0.1:8080" (IPv6 as [::1]:8080), from the bound socket. */
static void print_listening(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    if (ss.ss_family == AF_INET6) printf("listening on [%s]:%s\n", host, serv);
    else printf("listening on %s:%s\n", host, serv);
    fflush(stdout);
}

/* One loop's main task: serves its listener until told to stop (by a
 * signal on loop 0, by loop 0 on the others). */
static void *loop_main(void *arg) {
    serve_loop_t *l = arg;
    aloop_t *loop = aloop_current();
    int watch = l->index == 0;
    l->stop = aloop_event_new(loop);
    if (l->stop && l->stop_requested) aloop_event_set(l->stop);
    aloop_task_t *sig = NULL;
    int ok = l->stop != NULL;
    if (ok && watch) {
        sig = aloop_spawn(loop, signal_main, l);
        ok = sig != NULL;
    }
    aloop_server_t *server = ok ? l->cfg->start(l) : NULL;
    if (server) {
        aloop_yield(); /* the watcher registers before anyone can signal us */
        if (watch) print_listening(l->fd);
        aloop_event_wait(l->stop);
        /* the signal watcher stays up meanwhile: a second signal is fatal */
        l->cfg->shutdown(l, server);
    } else {
        fprintf(stderr, "%s: out of memory\n", l->cfg->name);
        aloop_close(l->fd);
        if (watch) tell_other_loops_to_stop(l);
    }
    serve_stop_task(sig);
    aloop_event_free(l->stop);
    l->stop = NULL;
    return server ? NULL : aloop_fail(-ENOMEM);
}

/* Loops 1..N-1: each thread runs its loop until its loop_main returns. */
static void *loop_thread(void *arg) {
    serve_loop_t *l = arg;
    int rc = aloop_run_until_complete(l->loop, l->task);
    return (void *)(intptr_t)rc;
}

/* N listeners on one port: the first picks it (port 0 = any), the others
 * join it with SO_REUSEPORT; one loop gets a plain listener. A task on loop
 * 0 (a host name may need its pool). */
static void *open_listeners(void *arg) {
    serve_loop_t *all = arg;
    const serve_config_t *cfg = all[0].cfg;
    char bound[NI_MAXSERV];
    snprintf(bound, sizeof bound, "%s", cfg->port);
    for (unsigned i = 0; i < all[0].n; i++) {
        int fd = all[0].n == 1 ? aloop_tcp_listen(cfg->host, cfg->port, SOMAXCONN)
                               : aloop_tcp_listen_with(cfg->host, bound, SOMAXCONN,
                                                       ALOOP_LISTEN_REUSEPORT);
        if (fd < 0) {
            fprintf(stderr, "%s: cannot listen on %s:%s: %s\n", cfg->name, cfg->host, bound,
                    aloop_strerror(fd));
            while (i-- > 0) {
                aloop_close(all[i].fd);
                all[i].fd = -1;
            }
            return aloop_fail(fd);
        }
        all[i].fd = fd;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (i == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
            getnameinfo((struct sockaddr *)&ss, len, NULL, 0, bound, sizeof bound, NI_NUMERICSERV);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* All loops                                                                */
/* ------------------------------------------------------------------------ */

/* Frees what a failed start-up made (made loops, their unstarted tasks,
 * the listeners no task owns yet). */
static int undo_start(serve_loop_t *all, unsigned made, int rc) {
    for (unsigned i = 0; i < made; i++) {
        if (all[i].fd >= 0 && !all[i].task) aloop_close(all[i].fd);
        aloop_release(all[i].task);
        aloop_free(all[i].loop); /* cancels the tasks that never ran */
    }
    free(all);
    return rc;
}

/* Starts loops 1..N-1 on threads of their own, SIGINT/SIGTERM blocked there
 * so the signals reach loop 0's watcher: how many loops run (loop 0 counts). */
static unsigned start_threads(serve_loop_t *all, unsigned n) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    unsigned started = 1;
    for (; started < n; started++)
        if (pthread_create(&all[started].thread, NULL, loop_thread, &all[started]) != 0) break;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

int serve_main(const serve_config_t *cfg) {
    unsigned n = cfg->loops;
    serve_loop_t *all = calloc(n, sizeof *all);
    if (!all) return -ENOMEM;
    unsigned made = 0;
    int rc = 0;
    for (; made < n; made++) {
        serve_loop_t *l = &all[made];
        *l = (serve_loop_t){.cfg = cfg, .fd = -1, .index = made, .all = all, .n = n};
        l->loop = aloop_new();
        if (!l->loop) break;
        if (cfg->pool_size) aloop_set_thread_pool_size(l->loop, cfg->pool_size);
    }
    if (made < n) {
        fprintf(stderr, "%s: out of memory\n", cfg->name);
        rc = -ENOMEM;
    } else {
        aloop_task_t *t = aloop_spawn(all[0].loop, open_listeners, all);
        rc = t ? aloop_run_until_complete(all[0].loop, t) : -ENOMEM;
        aloop_release(t);
    }
    for (unsigned i = 0; rc == 0 && i < made; i++) {
        all[i].task = aloop_spawn(all[i].loop, loop_main, &all[i]);
        if (!all[i].task) rc = -ENOMEM;
    }
    if (rc < 0) return undo_start(all, made, rc);
    unsigned started = start_threads(all, n);
    if (started < n) {
        /* stop at once: loop 0 tells the loops that run; the loops that got
         * no thread are freed below, which cancels their servers unstarted */
        fprintf(stderr, "%s: cannot start a thread for loop %u\n", cfg->name, started);
        rc = -EAGAIN;
        all[0].n = started;
        all[0].stop_requested = 1;
        tell_other_loops_to_stop(&all[0]);
        for (unsigned i = started; i < n; i++) aloop_close(all[i].fd);
    }
    int rc0 = aloop_run_until_complete(all[0].loop, all[0].task);
    if (rc == 0) rc = rc0;
    for (unsigned i = 1; i < started; i++) {
        void *trc = NULL;
        pthread_join(all[i].thread, &trc);
        if (rc == 0 && (intptr_t)trc < 0) rc = (int)(intptr_t)trc;
    }
    for (unsigned i = 0; i < n; i++) {
        aloop_release(all[i].task);
        aloop_free(all[i].loop);
    }
    free(all);
    return rc;
}

/*
 * serve_main.h - the start-up the example servers (httpd, fibserver, chat)
 * share: N loops on N threads (loop 0 on the calling thread), each with its
 * own listener on the same port (the first picks it, port 0 = any; the
 * others join it with SO_REUSEPORT; one loop gets a plain listener), each
 * running the program's server. Loop 0 prints "listening on HOST:PORT"
 * once every loop is ready to be signalled, waits for SIGINT / SIGTERM and
 * tells every loop to shut down gracefully; a second signal during the
 * shutdown ends the process at once, by that signal.
 *
 * What differs from one program to the next is two callbacks: how a loop
 * starts serving its listener, and how it shuts down.
 */
#ifndef SERVE_MAIN_H
#define SERVE_MAIN_H

#include <aloop.h>

#include <pthread.h>

typedef struct serve_loop serve_loop_t;

typedef struct serve_config {
    const char *name;   /* the program's name: prefixes what it reports */
    const char *host;
    const char *port;
    unsigned loops;     /* >= 1 */
    unsigned pool_size; /* worker threads per loop; 0 = the library's default */
    /* On loop l's thread, in its main task: start serving l->fd, which it
     * owns from now on (aloop_serve takes it). NULL = out of memory, having
     * closed nothing: the helper closes l->fd and reports. */
    aloop_server_t *(*start)(serve_loop_t *l);
    /* Once told to stop: end the server gracefully and free it. */
    void (*shutdown)(serve_loop_t *l, aloop_server_t *server);
    void *arg;          /* for the callbacks (l->cfg->arg) */
} serve_config_t;

/* One loop, its thread and its listener. The first four fields are for the
 * callbacks; the rest is the helper's. */
struct serve_loop {
    const serve_config_t *cfg;
    aloop_t *loop;
    int fd;                 /* its listener */
    unsigned index;         /* 0 = the calling thread's loop */
    serve_loop_t *all;      /* every loop (loop 0 tells the others to stop) */
    unsigned n;
    pthread_t thread;
    aloop_task_t *task;     /* its main task */
    aloop_event_t *stop;
    int stop_requested;     /* loop 0 said stop (maybe before stop existed) */
    unsigned signals;       /* loop 0: SIGINT/SIGTERM received */
};

/* Runs the servers until SIGINT/SIGTERM has shut them all down: 0, or
 * -errno once it has said on stderr what went wrong. */
int serve_main(const serve_config_t *cfg);

/* Cancels t (if any), waits for it and drops the reference. */
void serve_stop_task(aloop_task_t *t);

#endif

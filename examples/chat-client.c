/*
 * chat-client - a terminal client for examples/chat: stdin and the socket
 * in one single-threaded loop, one task for each direction.
 *
 *     ./chat-client [HOST [PORT]]        (default 127.0.0.1 8888)
 *
 * The "keyboard" task copies lines from stdin to the server; the "screen"
 * task copies lines from the server to stdout. When the server closes the
 * connection the keyboard task is cancelled; when stdin ends (Ctrl-D) the
 * client sends /quit and waits for the server to say goodbye.
 *
 * stdin is used through a dup() of fd 0: the loop makes it non-blocking,
 * which changes the terminal's open file description shared with the
 * shell, so the original flags are restored on exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <aloop.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INPUT_MAX_LINE 4096        /* longest line we send */
#define SERVER_MAX_LINE (64 * 1024) /* longest line we print (a long /who) */
#define CONNECT_TIMEOUT 5.0

typedef struct chat_conn {
    aloop_stream_t *server;
    aloop_stream_t *keyboard;
} chat_conn_t;

/* stdin -> server, until EOF on stdin (then /quit) or cancellation. */
static void *keyboard_main(void *arg) {
    chat_conn_t *conn = arg;
    char line[INPUT_MAX_LINE + 1];
    for (;;) {
        ssize_t n = aloop_stream_readline(conn->keyboard, line, sizeof line);
        if (n == -EMSGSIZE) {
            fprintf(stderr, "* line too long (max %d bytes), not sent\n", INPUT_MAX_LINE);
            continue;
        }
        if (n == 0) { /* Ctrl-D: leave politely; the screen task sees the goodbye */
            aloop_stream_write(conn->server, "/quit\n", 6);
            return NULL;
        }
        if (n < 0) return NULL;
        if (line[n - 1] != '\n') line[n++] = '\n'; /* last line of a file without one */
        if (aloop_stream_write(conn->server, line, (size_t)n) < 0) return NULL;
    }
}

/* server -> stdout, until the server closes the connection. */
static void *screen_main(void *arg) {
    chat_conn_t *conn = arg;
    char *line = malloc(SERVER_MAX_LINE + 1);
    if (!line) return aloop_fail(-ENOMEM);
    for (;;) {
        ssize_t n = aloop_stream_readline(conn->server, line, SERVER_MAX_LINE + 1);
        if (n == -EMSGSIZE) {
            fputs("* (a line too long to show was skipped)\n", stdout);
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "* disconnected%s%s\n", n < 0 ? ": " : "",
                    n < 0 ? aloop_strerror(n) : "");
            break;
        }
        fwrite(line, 1, (size_t)n, stdout);
        if (line[n - 1] != '\n') fputc('\n', stdout);
        fflush(stdout);
    }
    free(line);
    return NULL;
}

typedef struct client_args {
    const char *host, *port;
    int stdin_copy;
} client_args_t;

static void *client_main(void *arg) {
    client_args_t *a = arg;
    aloop_t *loop = aloop_current();
    int fd = aloop_tcp_connect(a->host, a->port, CONNECT_TIMEOUT);
    if (fd < 0) {
        fprintf(stderr, "chat-client: cannot connect to %s:%s: %s\n", a->host, a->port,
                fd == -ENOENT ? "name not found" : aloop_strerror(fd));
        return aloop_fail(fd);
    }
    chat_conn_t conn = {
        .server = aloop_stream_new(loop, fd, SERVER_MAX_LINE),
        .keyboard = aloop_stream_new(loop, a->stdin_copy, INPUT_MAX_LINE),
    };
    aloop_task_t *screen = NULL, *keyboard = NULL;
    if (conn.server && conn.keyboard) {
        screen = aloop_spawn(loop, screen_main, &conn);
        keyboard = screen ? aloop_spawn(loop, keyboard_main, &conn) : NULL;
    }
    int rc = keyboard ? aloop_await(screen, NULL) : -ENOMEM;
    if (screen) { /* the server is gone (or we failed): stop reading stdin */
        aloop_cancel(screen);
        aloop_await(screen, NULL);
        aloop_release(screen);
    }
    if (keyboard) {
        aloop_cancel(keyboard);
        aloop_await(keyboard, NULL);
        aloop_release(keyboard);
    }
    if (conn.server) aloop_stream_close(conn.server);
    else aloop_close(fd);
    if (conn.keyboard) aloop_stream_close(conn.keyboard);
    else close(a->stdin_copy);
    return rc < 0 ? aloop_fail(rc) : NULL;
}

int main(int argc, char **argv) {
    if (argc > 3 || (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))) {
        fprintf(argc > 3 ? stderr : stdout, "usage: %s [HOST [PORT]]   (default 127.0.0.1 8888)\n",
                argv[0]);
        return argc > 3 ? 2 : 0;
    }
    client_args_t a = {
        .host = argc > 1 ? argv[1] : "127.0.0.1",
        .port = argc > 2 ? argv[2] : "8888",
        .stdin_copy = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3),
    };
    if (a.stdin_copy < 0) {
        perror("chat-client: stdin");
        return 1;
    }
    int stdin_flags = fcntl(STDIN_FILENO, F_GETFL);
    int rc = aloop_main(client_main, &a, NULL);
    if (stdin_flags >= 0) fcntl(STDIN_FILENO, F_SETFL, stdin_flags);
    return rc < 0 ? 1 : 0;
}

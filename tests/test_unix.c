/*
 * test_unix.c - Unix-domain sockets (src/unix.c): paths and abstract
 * names, stale and live socket files, connect errors, full backlogs,
 * cancellation.
 *
 * Paths are made under a fresh temporary directory, abstract names carry
 * the pid so parallel runs do not meet.
 */
#include "aloop_test.h"


#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char dir[64];

static int setup_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/aloop_unix_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void abstract_name(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "@aloop-test-%d-%s", (int)getpid(), name);
}

static int run_task(void *(*fn)(void *), void *arg) {
    aloop_config_t cfg = {.clock = ALOOP_CLOCK_VIRTUAL};
    return aloop_main_with(&cfg, fn, arg, NULL);
}

/* The address of a path (which must fit). */
static struct sockaddr_un sun_of(const char *path) {
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sun.sun_path);
    memcpy(sun.sun_path, path, strlen(path) + 1);
    return sun;
}

static ino_t inode_of(const char *path) {
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

/* ---- arguments ------------------------------------------------------------ */

static void test_bad_args(void **state) {
    (void)state;
    assert_int_equal(aloop_unix_listen(NULL, 1), -EINVAL);
    assert_int_equal(aloop_unix_listen("", 1), -EINVAL);
    assert_int_equal(aloop_unix_connect(NULL, 1), -EINVAL);
    assert_int_equal(aloop_unix_connect("/tmp/x", 0.0 / 0.0), -EINVAL);
    assert_int_equal(aloop_unix_connect("/tmp/x", 1), -EPERM); /* outside a task */
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    longp[0] = '/';
    assert_int_equal(aloop_unix_listen(longp, 1), -ENAMETOOLONG);
    struct sockaddr_un sun;
    /* exactly as long as sun_path holds, with its NUL: fits; one more: not */
    char edge[sizeof sun.sun_path + 1];
    size_t fits = sizeof sun.sun_path - 1;
    snprintf(edge, sizeof edge, "%s/", dir);
    size_t used = strlen(edge);
    memset(edge + used, 'b', fits - used);
    edge[fits] = '\0';
    int fd = aloop_unix_listen(edge, 1);
    assert_true(fd >= 0);
    aloop_close(fd);
    unlink(edge);
    edge[fits] = 'b';
    edge[fits + 1] = '\0';
    assert_int_equal(aloop_unix_listen(edge, 1), -ENAMETOOLONG);
    /* abstract: a NUL and up to sizeof sun_path - 1 name bytes */
    char abs[sizeof sun.sun_path + 2];
    int k = snprintf(abs, sizeof abs, "@aloop-%d-", (int)getpid());
    memset(abs + k, 'c', sizeof sun.sun_path + 1 - (size_t)k);
    abs[sizeof sun.sun_path + 1] = '\0';
    assert_int_equal(aloop_unix_listen(abs, 1), -ENAMETOOLONG); /* one too many */
    abs[sizeof sun.sun_path] = '\0';                             /* just fits */
    fd = aloop_unix_listen(abs, 1);
    assert_true(fd >= 0);
    aloop_close(fd);
}

/* ---- echo over a path and an abstract name ----------------------------- */

typedef struct echo_ctx {
    const char *path;
    int lfd;
    int rc[3];
} echo_ctx_t;

static void *echo_server(void *arg) {
    echo_ctx_t *c = arg;
    int fd = aloop_accept(c->lfd, NULL, NULL);
    c->rc[0] = fd < 0 ? fd : 0;
    if (fd < 0) return NULL;
    char buf[64];
    ssize_t n;
    while ((n = aloop_read(fd, buf, sizeof buf)) > 0) aloop_write_all(fd, buf, (size_t)n);
    aloop_close(fd);
    return NULL;
}

static void *echo_client(void *arg) {
    echo_ctx_t *c = arg;
    int fd = aloop_unix_connect(c->path, 5);
    c->rc[1] = fd < 0 ? fd : 0;
    if (fd < 0) return NULL;
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(aloop_write_all(fd, "ping", 4), 4);
    char buf[8];
    size_t got = 0;
    while (got < 4) {
        ssize_t n = aloop_read(fd, buf + got, sizeof buf - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    c->rc[2] = got == 4 && memcmp(buf, "ping", 4) == 0;
    aloop_close(fd);
    return NULL;
}

static void echo_over(const char *path) {
    echo_ctx_t c = {.path = path};
    c.lfd = aloop_unix_listen(path, 4);
    assert_true(c.lfd >= 0);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, echo_server, &c), spawn(loop, echo_client, &c)};
    run_and_release(loop, ts, 2);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 1);
    aloop_close(c.lfd);
    aloop_free(loop);
}

static void test_echo_path(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "echo.sock");
    echo_over(path);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode)); /* the file stays after close */
    unlink(path);
}

static void test_echo_abstract(void **state) {
    (void)state;
    char name[108];
    abstract_name(name, sizeof name, "echo");
    echo_over(name);
}

/* "@name" is exactly the name's bytes: the address length is
 * offsetof(sun_path) + 1 + strlen(name), and a socket bound with the same
 * name padded with NULs to the full sun_path is a different address. */
static void *abstract_exact_task(void *arg) {
    (void)arg;
    char name[108], longer[108];
    abstract_name(name, sizeof name, "x");
    abstract_name(longer, sizeof longer, "xy"); /* name is a prefix of it */
    int a = aloop_unix_listen(name, 1);
    int b = aloop_unix_listen(longer, 1);
    assert_true(a >= 0 && b >= 0);
    struct sockaddr_un sun;
    socklen_t len = sizeof sun;
    assert_int_equal(getsockname(a, (struct sockaddr *)&sun, &len), 0);
    size_t n = strlen(name) - 1;
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 1 + n);
    assert_int_equal(sun.sun_path[0], '\0');
    assert_memory_equal(sun.sun_path + 1, name + 1, n);
    assert_int_equal(aloop_unix_listen(name, 1), -EADDRINUSE); /* taken: abstract names are never stale */

    /* the padded form is another name: connecting to it is refused */
    char padded_name[108];
    abstract_name(padded_name, sizeof padded_name, "padded");
    int raw = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un full = {.sun_family = AF_UNIX};
    memcpy(full.sun_path + 1, padded_name + 1, strlen(padded_name) - 1);
    assert_int_equal(bind(raw, (struct sockaddr *)&full, sizeof full), 0);
    assert_int_equal(listen(raw, 1), 0);
    assert_int_equal(aloop_unix_connect(padded_name, 1), -ECONNREFUSED);
    int c = aloop_unix_connect(name, 1);
    assert_true(c >= 0);
    aloop_close(c);
    close(raw);
    aloop_close(a);
    aloop_close(b);
    return NULL;
}

static void test_abstract_exact(void **state) {
    (void)state;
    assert_int_equal(run_task(abstract_exact_task, NULL), 0);
}

/* ---- stale and live socket files ------------------------------------------ */

static void test_live_listener_kept(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "live.sock");
    int a = aloop_unix_listen(path, 4);
    assert_true(a >= 0);
    ino_t ino = inode_of(path);
    assert_int_equal(aloop_unix_listen(path, 4), -EADDRINUSE);
    assert_true(inode_of(path) == ino); /* left alone */
    /* and it still works: a connection reaches the first listener */
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = sun_of(path);
    assert_int_equal(connect(c, (struct sockaddr *)&sun, sizeof sun), 0);
    int s = accept(a, NULL, NULL);
    assert_true(s >= 0);
    close(s);
    close(c);
    aloop_close(a);
    unlink(path);
}

/* A live listener whose backlog is full is still alive. */
static void test_full_listener_kept(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "full.sock");
    int a = aloop_unix_listen(path, 1);
    assert_true(a >= 0);
    struct sockaddr_un sun = sun_of(path);
    int cs[8], n = 0;
    for (; n < 8; n++) {
        cs[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(cs[n], (struct sockaddr *)&sun, sizeof sun) < 0) {
            assert_int_equal(errno, EAGAIN);
            close(cs[n]);
            break;
        }
    }
    assert_true(n < 8); /* the backlog is full now */
    ino_t ino = inode_of(path);
    assert_int_equal(aloop_unix_listen(path, 4), -EADDRINUSE);
    assert_true(inode_of(path) == ino);
    for (int i = 0; i < n; i++) close(cs[i]);
    aloop_close(a);
    unlink(path);
}

static void test_stale_file_replaced(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "stale.sock");
    /* a listener that died without removing its file */
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = sun_of(path);
    assert_int_equal(bind(dead, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(dead, 1), 0);
    close(dead);
    int fd = aloop_unix_listen(path, 4);
    assert_true(fd >= 0); /* the echo below goes through the new file */
    echo_ctx_t c = {.path = path, .lfd = fd};
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, echo_server, &c), spawn(loop, echo_client, &c)};
    run_and_release(loop, ts, 2);
    assert_int_equal(c.rc[2], 1);
    aloop_close(fd);
    aloop_free(loop);
    /* closed with aloop_close the file stays and is stale: replaced again */
    fd = aloop_unix_listen(path, 4);
    assert_true(fd >= 0);
    aloop_close(fd);
    unlink(path);
}

static void test_not_a_socket_kept(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "data.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    assert_int_equal(aloop_unix_listen(path, 4), -EADDRINUSE);
    f = fopen(path, "r");
    char buf[16] = {0};
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "precious");
    unlink(path);
    /* a directory that does not exist */
    path_in_dir(path, sizeof path, "no/such/dir.sock");
    assert_int_equal(aloop_unix_listen(path, 4), -ENOENT);
}

/* ---- connect errors, full backlog, cancel ---------------------------------- */

typedef struct conn_ctx {
    char path[128];
    int lfd;
    int rc[4];
    double when[4];
    aloop_task_t *waiter;
} conn_ctx_t;

static void *connect_errors_task(void *arg) {
    conn_ctx_t *c = arg;
    char missing[128];
    path_in_dir(missing, sizeof missing, "missing.sock");
    assert_int_equal(aloop_unix_connect(missing, 1), -ENOENT);
    char stale[128];
    path_in_dir(stale, sizeof stale, "refused.sock");
    int dead = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = sun_of(stale);
    assert_int_equal(bind(dead, (struct sockaddr *)&sun, sizeof sun), 0);
    close(dead); /* never listened */
    assert_int_equal(aloop_unix_connect(stale, 1), -ECONNREFUSED);
    unlink(stale);
    char nobody[108];
    abstract_name(nobody, sizeof nobody, "nobody");
    assert_int_equal(aloop_unix_connect(nobody, 1), -ECONNREFUSED);
    (void)c;
    return NULL;
}

static void test_connect_errors(void **state) {
    (void)state;
    assert_int_equal(run_task(connect_errors_task, NULL), 0);
}

/* Fills the listener's backlog with plain connects; returns how many. */
static int fill_backlog(const char *path, int *cs, int max) {
    struct sockaddr_un sun = sun_of(path);
    int n = 0;
    for (; n < max; n++) {
        cs[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(cs[n], (struct sockaddr *)&sun, sizeof sun) < 0) {
            close(cs[n]);
            break;
        }
    }
    return n;
}

static void *backlog_timeout_task(void *arg) {
    conn_ctx_t *c = arg;
    double t0 = now();
    c->rc[0] = aloop_unix_connect(c->path, 2.0);
    c->when[0] = now() - t0;
    /* timeout 0 still tries once */
    c->rc[1] = aloop_unix_connect(c->path, 0);
    return NULL;
}

static void *backlog_waiter(void *arg) {
    conn_ctx_t *c = arg;
    c->rc[2] = aloop_unix_connect(c->path, -1); /* until the backlog has room */
    c->when[2] = now();
    if (c->rc[2] >= 0) aloop_close(c->rc[2]);
    return NULL;
}

static void *backlog_acceptor(void *arg) {
    conn_ctx_t *c = arg;
    assert_int_equal(aloop_sleep(5), 0);
    int fd = aloop_accept(c->lfd, NULL, NULL); /* room for one more */
    assert_true(fd >= 0);
    aloop_close(fd);
    return NULL;
}

static void test_full_backlog(void **state) {
    (void)state;
    conn_ctx_t c = {0};
    path_in_dir(c.path, sizeof c.path, "backlog.sock");
    c.lfd = aloop_unix_listen(c.path, 1);
    assert_true(c.lfd >= 0);
    int cs[16];
    int n = fill_backlog(c.path, cs, 16);
    assert_true(n < 16);
    aloop_t *loop = vloop();
    aloop_task_t *ts[] = {spawn(loop, backlog_timeout_task, &c), spawn(loop, backlog_waiter, &c),
                          spawn(loop, backlog_acceptor, &c)};
    run_and_release(loop, ts, 3);
    assert_int_equal(c.rc[0], -ETIMEDOUT);
    assert_true(c.when[0] >= 2.0 && c.when[0] < 2.01); /* on time, virtual clock */
    assert_int_equal(c.rc[1], -ETIMEDOUT);
    assert_true(c.rc[2] >= 0); /* got in once the acceptor made room */
    assert_true(c.when[2] >= 5.0 && c.when[2] < 5.2);
    for (int i = 0; i < n; i++) close(cs[i]);
    aloop_close(c.lfd);
    aloop_free(loop);
    unlink(c.path);
}

static void *cancelled_connector(void *arg) {
    conn_ctx_t *c = arg;
    c->rc[0] = aloop_unix_connect(c->path, -1);
    return NULL;
}

/* Cancelled while waiting for room in the backlog: -ECANCELED, and the
 * socket it made is closed (the next socket gets the same fd number). */
static void test_cancel_while_connecting(void **state) {
    (void)state;
    conn_ctx_t c = {0};
    path_in_dir(c.path, sizeof c.path, "cancel.sock");
    c.lfd = aloop_unix_listen(c.path, 1);
    int cs[16];
    int n = fill_backlog(c.path, cs, 16);
    aloop_t *loop = vloop();
    int probe = dup(0);
    close(probe); /* the lowest free fd number now */
    aloop_task_t *t = spawn(loop, cancelled_connector, &c);
    aloop_handle_t *h = aloop_call_later(loop, 3, cancel_cb, t);
    assert_non_null(h);
    assert_int_equal(aloop_run(loop), 0);
    assert_int_equal(c.rc[0], -ECANCELED);
    assert_true(aloop_time(loop) >= 3 && aloop_time(loop) < 3.2);
    int again = dup(0);
    assert_int_equal(again, probe);
    close(again);
    aloop_release(t);
    for (int i = 0; i < n; i++) close(cs[i]);
    aloop_close(c.lfd);
    aloop_free(loop);
    unlink(c.path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_echo_path),
        cmocka_unit_test(test_echo_abstract),
        cmocka_unit_test(test_abstract_exact),
        cmocka_unit_test(test_live_listener_kept),
        cmocka_unit_test(test_full_listener_kept),
        cmocka_unit_test(test_stale_file_replaced),
        cmocka_unit_test(test_not_a_socket_kept),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_full_backlog),
        cmocka_unit_test(test_cancel_while_connecting),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}

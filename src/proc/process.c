/*
 * process.c - child processes: spawn, pipes, wait, kill, communicate
 * (asyncio.create_subprocess_exec, uv_spawn).
 *
 * Spawning. posix_spawn(p): glibc implements it with clone(CLONE_VM |
 * CLONE_VFORK), so its cost does not grow with the parent's size the way
 * fork's page-table copy does, and it reports exec failures (ENOENT,
 * EACCES) as its own return value: a program that cannot run makes
 * aloop_process_spawn fail, and the half-born child has already been
 * reaped by the C library. Where it does not (older C libraries,
 * valgrind), the check made before spawning (can_exec) still catches the
 * usual cases; the PATH search is ours, so that the child's PATH counts. The child gets an empty signal mask and every
 * signal at its default disposition (POSIX_SPAWN_SETSIGMASK/SETSIGDEF):
 * aloop_signal_wait blocks signals in the loop's thread and the library
 * ignores SIGPIPE, and neither must leak into programs we start. Pipes are
 * created close-on-exec; the child's ends are dup2'ed onto 0/1/2 (which
 * clears close-on-exec on the copies only). The parent's ends are
 * non-blocking. Anything that fails after the child exists kills and reaps
 * it before the error is returned: a failed spawn leaves no child.
 *
 * Reaping. Each child is reaped by the loop as soon as the loop sees it
 * exit, whether or not anybody waits, so no child of ours stays a zombie
 * while the loop runs. How the loop sees it:
 *  - pidfd (Linux >= 5.3): one pidfd per child, watched by the poller with
 *    an internal hook; readable = exited, then waitpid(pid, WNOHANG).
 *  - fallback (no pidfd, or ALOOP_NO_PIDFD=1 in the environment when the
 *    loop's first child is spawned, or the ALOOP_NO_PIDFD build define):
 *    SIGCHLD through signal.c (signalfd, or the self-pipe), and on each one
 *    waitpid(pid, WNOHANG) for each of our children. Never waitpid(-1):
 *    that would steal the children of other libraries in the process.
 *    SIGCHLD is subscribed to before the first spawn, so an early exit is
 *    never missed. SIGCHLD is process-wide and not queued: one signal may
 *    stand for the exits of several loops' children, and whichever loop's
 *    thread reads it consumes it. So the loops on this path are listed
 *    process-wide (each loop's SIGCHLD state is in the loop registry,
 *    registry_internal.h), and the loop that reads a SIGCHLD kicks every
 *    other one through that loop's kick fd (an eventfd, or a pipe), whose
 *    hook reaps that loop's own children.
 *
 * Lifetimes. Every aloop_process_t of a loop is on loop->procs->all until
 * destroyed. aloop_process_free closes the pipes; the struct itself lives
 * on (orphaned) until the child is reaped, then goes. A call in progress
 * (wait, communicate) holds a `users` count so a free from another task
 * never pulls the struct from under it. aloop_free (aloop__process_free,
 * once every task is gone) reaps children that have exited, hands each
 * one still running to a small detached thread that blocks in
 * waitpid(pid) for it (the child is neither killed nor left a zombie),
 * frees orphans and detaches the handles the user still holds: on those,
 * wait and communicate are misuse (-EINVAL, an object of a freed loop),
 * kill returns -ESRCH, aloop_process_free closes the pipes and frees.
 */
#include "internal.h"
#include "process_internal.h"
#include "signal_internal.h"

#include "pipe_internal.h"
#include "registry_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif
#if defined(SYS_pidfd_open) && !defined(ALOOP_NO_PIDFD)
#define ALOOP_HAVE_PIDFD 1
#endif
#if defined(__linux__) && !defined(ALOOP_NO_EVENTFD)
#include <sys/eventfd.h>
#define ALOOP_KICK_EVENTFD 1
#endif
#ifndef NSIG
#define NSIG 65
#endif

extern char **environ;

struct aloop_process {
    aloop_t *loop;            /* NULL once the loop was freed (detached) */
    aloop_list_t link;        /* loop->procs->all */
    aloop_list_t waiters;     /* wait records of the tasks in aloop_process_wait */
    int pid;
    int pidfd;                /* the child's pidfd where there is one, else -1:
                               * watched until reaped (pidfd path), and
                               * how it is signalled; a group leader's is
                               * kept after the reap to signal the group */
    int fds[3];               /* parent ends of the pipes, -1 when none */
    int status;               /* waitpid status, once reaped */
    int wait_error;           /* -ECHILD if somebody else reaped our child */
    unsigned users;           /* calls in progress on this process */
    uint8_t reaped;
    uint8_t orphaned;         /* aloop_process_free was called */
    uint8_t group;            /* leads its own process group */
    uint8_t watched;          /* pidfd is in the poller (pidfd path) */
    uint8_t group_gone;       /* kill(-pid) found the group empty after the reap */
};

struct aloop_procs {
    aloop_list_t all;         /* every aloop_process_t of this loop */
    aloop_process_t **byfd;   /* pidfd -> process, for the poller hook */
    size_t nbyfd;
    uint8_t use_pidfd;        /* else SIGCHLD + waitpid(pid, WNOHANG) */
    /* SIGCHLD path only: */
    int kick[2];              /* read, write end (the same fd for an eventfd) */
    atomic_int kicked;        /* a kick is written and not yet read */
};

/* ------------------------------------------------------------------------ */
/* Reaping                                                                  */
/* ------------------------------------------------------------------------ */

static void process_destroy(aloop_process_t *p) {
    aloop__list_remove(&p->link);
    if (p->pidfd >= 0) close(p->pidfd); /* unwatched by now */
    aloop__free(p);
}

/* Frees p once nothing refers to it any more: the user let go of it (or
 * the loop is gone and the user let go) and no call is in progress. */
static void maybe_destroy(aloop_process_t *p) {
    if (p->orphaned && !p->users && (p->reaped || !p->loop)) process_destroy(p);
}

static void pidfd_unwatch(aloop_process_t *p) {
    if (!p->watched) return;
    struct aloop_procs *ps = p->loop ? p->loop->procs : NULL;
    if (ps && (size_t)p->pidfd < ps->nbyfd) ps->byfd[p->pidfd] = NULL;
    if (p->loop) aloop__io_forget(p->loop, p->pidfd);
    p->watched = 0;
}

static void pidfd_close(aloop_process_t *p) {
    pidfd_unwatch(p);
    if (p->pidfd >= 0) close(p->pidfd);
    p->pidfd = -1;
}

/* The child is gone: record it, stop watching, wake every waiter. */
static void mark_reaped(aloop_process_t *p, int status, int error) {
    p->reaped = 1;
    p->status = status;
    p->wait_error = error;
    pidfd_unwatch(p);
    if (!p->group || p->orphaned) pidfd_close(p); /* else kept for kill_group */
    /* each waiter held the loop (process_wait); the core wakes them */
    size_t n = aloop__wake_all(&p->waiters, 0);
    if (n) aloop__io_hold(p->loop, -(int)n);
    maybe_destroy(p);
}

/* waitpid(pid, WNOHANG): 1 if p is reaped now (or was), 0 if it runs on. */
static int try_reap(aloop_process_t *p) {
    if (p->reaped) return 1;
    int st = 0;
    pid_t r;
    do {
        r = waitpid(p->pid, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return 0;
    /* ECHILD: somebody else (a waitpid(-1) elsewhere) took our child. */
    mark_reaped(p, r < 0 ? 0 : st, r < 0 ? -errno : 0);
    return 1;
}

/* Blocking reap of a child we are giving up on (failed spawn). */
static void kill_and_reap(pid_t pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

#ifdef ALOOP_HAVE_PIDFD
static void pidfd_hook(aloop_t *loop, int fd) {
    struct aloop_procs *ps = loop->procs;
    aloop_process_t *p = (size_t)fd < ps->nbyfd ? ps->byfd[fd] : NULL;
    if (!p || !try_reap(p)) {
        /* Readable but not reapable (cannot happen for an exited child):
         * stop watching rather than spin; SIGCHLD-less, the next wait
         * call's own waitpid still finds the exit. */
        if (p) pidfd_unwatch(p);
        else aloop__io_forget(loop, fd);
    }
}
#endif

/* Reaps whichever of loop's children have exited. */
static void reap_exited(aloop_t *loop) {
    aloop_list_t *n = loop->procs->all.next;
    while (n != &loop->procs->all) {
        aloop_process_t *p = ALOOP_CONTAINER_OF(n, aloop_process_t, link);
        n = n->next; /* p may be destroyed by try_reap */
        if (!p->reaped) try_reap(p);
    }
}

/* Any thread: makes ps's loop look for exits of its children. With the
 * loop held (aloop__loops_each_chld), so ps (and its fd) cannot go
 * meanwhile. */
static void kick(void *arg) {
    struct aloop_procs *ps = arg;
    if (atomic_exchange(&ps->kicked, 1)) return; /* one is on its way */
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(ps->kick[1], &one, ps->kick[0] == ps->kick[1] ? sizeof one : 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, so the loop will wake anyway */
}

/* The other loops on the SIGCHLD path: their children may have exited. */
static void kick_others(struct aloop_procs *self) { aloop__loops_each_chld(kick, self); }

/* Poller hook of the kick fd. Cleared before the reap: a kick that comes
 * during it writes again, so no exit falls between. */
static void kick_hook(aloop_t *loop, int fd) {
    char buf[64];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    }
    atomic_store(&loop->procs->kicked, 0);
    reap_exited(loop);
}

/* SIGCHLD (fallback): one signal may stand for several exits, of this
 * loop's children and of other loops'. */
static void sigchld_hook(aloop_t *loop) {
    kick_others(loop->procs);
    reap_exited(loop);
}

static int kick_open(aloop_t *loop, struct aloop_procs *ps) {
#ifdef ALOOP_KICK_EVENTFD
    ps->kick[0] = ps->kick[1] = aloop__fd_high(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (ps->kick[0] < 0) return -errno;
#else
    int rc = aloop__pipe(ps->kick);
    if (rc < 0) return rc;
#endif
    aloop__io_forget(loop, ps->kick[0]); /* the number may have been used before */
    int rc2 = aloop__io_hook(loop, ps->kick[0], kick_hook);
    if (rc2 < 0) {
        aloop__io_forget(loop, ps->kick[0]);
        close(ps->kick[0]);
        if (ps->kick[1] != ps->kick[0]) close(ps->kick[1]);
        return rc2;
    }
    return 0;
}

static void kick_close(aloop_t *loop, struct aloop_procs *ps) {
    aloop__io_forget(loop, ps->kick[0]);
    close(ps->kick[0]);
    if (ps->kick[1] != ps->kick[0]) close(ps->kick[1]);
}

/* Joins the SIGCHLD path: the kick fd, then the list, then the signal (so
 * that no SIGCHLD read by this loop is missed by the others). */
static int chld_join(aloop_t *loop, struct aloop_procs *ps) {
    int rc = kick_open(loop, ps);
    if (rc < 0) return rc;
    atomic_init(&ps->kicked, 0);
    aloop__loops_set_chld(loop, ps);
    rc = aloop__signal_subscribe(loop, SIGCHLD, sigchld_hook);
    if (rc < 0) {
        aloop__loops_set_chld(loop, NULL);
        kick_close(loop, ps);
    }
    return rc;
}

/* Leaves it. A SIGCHLD this loop read last may have been for the others:
 * they look once more. */
static void chld_leave(aloop_t *loop, struct aloop_procs *ps) {
    aloop__signal_unsubscribe(loop, SIGCHLD);
    aloop__loops_set_chld(loop, NULL); /* a no-op once aloop_free has begun */
    kick_others(ps);
    kick_close(loop, ps);
}

#ifdef ALOOP_HAVE_PIDFD
static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
#endif

static int env_no_pidfd(void) {
    const char *v = getenv("ALOOP_NO_PIDFD");
    return v && *v && strcmp(v, "0") != 0;
}

/* The loop's process state, created on the first spawn. The wake-up path
 * is chosen here, once per loop. */
static struct aloop_procs *state_get(aloop_t *loop, int *err) {
    if (loop->procs) return loop->procs;
    struct aloop_procs *ps = aloop__calloc(1, sizeof *ps);
    if (!ps) {
        *err = -ENOMEM;
        return NULL;
    }
    aloop__list_init(&ps->all);
#ifdef ALOOP_HAVE_PIDFD
    if (!env_no_pidfd()) {
        int fd = pidfd_open_(getpid());
        if (fd >= 0) {
            close(fd);
            ps->use_pidfd = 1;
        }
    }
#else
    (void)env_no_pidfd;
#endif
    loop->procs = ps;
    if (!ps->use_pidfd) {
        int rc = chld_join(loop, ps);
        if (rc < 0) {
            loop->procs = NULL;
            aloop__free(ps);
            *err = rc;
            return NULL;
        }
    }
    return ps;
}

int aloop__process_uses_pidfd(const aloop_t *loop) {
    return loop->procs ? loop->procs->use_pidfd : -1;
}

/* Opens p's pidfd where there is one (on the SIGCHLD path too: signals go
 * through it) and, on the pidfd path, starts watching p's exit. 0, or
 * -errno (the caller kills the child). */
static int watch_child(aloop_t *loop, aloop_process_t *p) {
    struct aloop_procs *ps = loop->procs;
#ifdef ALOOP_HAVE_PIDFD
    int fd = aloop__fd_high(pidfd_open_(p->pid));
    if (fd < 0) return ps->use_pidfd ? -errno : 0; /* SIGCHLD path: kill(pid) then */
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* pidfds are close-on-exec already */
    p->pidfd = fd;
    if (!ps->use_pidfd) return 0; /* SIGCHLD is already subscribed */
    if ((size_t)fd >= ps->nbyfd) {
        size_t n = ps->nbyfd ? ps->nbyfd : 64;
        while (n <= (size_t)fd) n *= 2;
        aloop_process_t **t = aloop__realloc(ps->byfd, n * sizeof *t);
        if (!t) {
            pidfd_close(p);
            return -ENOMEM;
        }
        memset(t + ps->nbyfd, 0, (n - ps->nbyfd) * sizeof *t);
        ps->byfd = t;
        ps->nbyfd = n;
    }
    aloop__io_forget(loop, fd); /* the number may have been used before */
    int rc = aloop__io_hook(loop, fd, pidfd_hook);
    if (rc < 0) {
        aloop__io_forget(loop, fd);
        pidfd_close(p);
        return rc;
    }
    ps->byfd[fd] = p;
    p->watched = 1;
    return 0;
#else
    ALOOP_UNUSED(p);
    return ps->use_pidfd ? -ENOSYS : 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* Spawning                                                                 */
/* ------------------------------------------------------------------------ */

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

/* What the child gets on 0, 1, 2 (child[i]), what the parent keeps
 * (parent[i]), and the copies of extra_fds (extra[j], for the child's
 * 3 + j); -1 where nothing. Every one of these fds is close-on-exec and
 * at or above 3 (extra ones at or above 3 + n_extra), so that no dup2 of
 * the plan overwrites a source that a later one reads. */
typedef struct stdio_plan {
    int child[3];
    int parent[3];
    int *extra;
    size_t nextra;
} stdio_plan_t;

static void plan_close(stdio_plan_t *sp, int parent_too) {
    for (int i = 0; i < 3; i++) {
        if (sp->child[i] >= 0) close(sp->child[i]);
        sp->child[i] = -1;
        if (parent_too && sp->parent[i] >= 0) close(sp->parent[i]);
        if (parent_too) sp->parent[i] = -1;
    }
    for (size_t j = 0; j < sp->nextra; j++)
        if (sp->extra[j] >= 0) close(sp->extra[j]);
    aloop__free(sp->extra);
    sp->extra = NULL;
    sp->nextra = 0;
}

/* The parent's fd i, if the child can inherit it: open and not
 * close-on-exec. A closed one, or one of the library's (close-on-exec,
 * e.g. where the program closed its stdout and a loop's fd got the
 * number), gives the child /dev/null instead. */
static int inheritable(int i) {
    int fl = fcntl(i, F_GETFD);
    return fl >= 0 && !(fl & FD_CLOEXEC);
}

static int open_null(int i) {
    int fd = aloop__fd_high(open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
    return fd < 0 ? -errno : fd;
}

static int plan_stdio(stdio_plan_t *sp, int i, int mode) {
    if (mode == ALOOP_STDIO_PIPE) {
        int pp[2];
        if (pipe2(pp, O_CLOEXEC) < 0) return -errno;
        /* stdin: the child reads pp[0]; stdout/stderr: it writes pp[1] */
        int c = aloop__fd_high(i == 0 ? pp[0] : pp[1]);
        int e = errno;
        int pa = aloop__fd_high(i == 0 ? pp[1] : pp[0]);
        if (c < 0 || pa < 0) {
            if (c >= 0) close(c);
            if (pa >= 0) close(pa);
            return -(c < 0 ? e : errno);
        }
        sp->child[i] = c;
        sp->parent[i] = pa;
        return set_nonblock(pa);
    }
    if (mode == ALOOP_STDIO_NULL || (mode == ALOOP_STDIO_INHERIT && !inheritable(i))) {
        int fd = open_null(i);
        if (fd < 0) return fd;
        sp->child[i] = fd;
    }
    return 0;
}

static int plan_make(stdio_plan_t *sp, const int mode[3], const aloop_process_opts_t *o) {
    for (int i = 0; i < 3; i++) sp->child[i] = sp->parent[i] = -1;
    sp->extra = NULL;
    sp->nextra = 0;
    for (int i = 0; i < 3; i++) {
        int rc = plan_stdio(sp, i, mode[i]);
        if (rc < 0) return rc;
    }
    if (!o->n_extra_fds) return 0;
    if (!(sp->extra = aloop__malloc(o->n_extra_fds * sizeof *sp->extra))) return -ENOMEM;
    int floor = 3 + (int)o->n_extra_fds;
    for (size_t j = 0; j < o->n_extra_fds; j++) {
        sp->extra[j] = fcntl(o->extra_fds[j], F_DUPFD_CLOEXEC, floor);
        if (sp->extra[j] < 0) return -errno;
        sp->nextra = j + 1;
    }
    return 0;
}

/* Every fd from `from` up is closed in the child, close-on-exec or not
 * (the default; ALOOP_PROCESS_KEEP_FDS keeps them): closefrom in the
 * child where the C library has it, else one close action per fd open
 * now and inheritable (an fd another thread opens meanwhile without
 * O_CLOEXEC may then slip through). Positive errno. */
static int add_close_rest(posix_spawn_file_actions_t *fa, int from) {
#ifdef ALOOP_HAVE_SPAWN_CLOSEFROM
    return posix_spawn_file_actions_addclosefrom_np(fa, from);
#else
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = from; fd < (int)max; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || (fl & FD_CLOEXEC)) continue;
        int rc = posix_spawn_file_actions_addclose(fa, fd);
        if (rc) return rc;
    }
    return 0;
#endif
}

static int actions_make(posix_spawn_file_actions_t *fa, const stdio_plan_t *sp,
                        const aloop_process_opts_t *o) {
    int rc = posix_spawn_file_actions_init(fa);
    if (rc) return -rc;
    for (int i = 0; i < 3 && !rc; i++)
        if (sp->child[i] >= 0) rc = posix_spawn_file_actions_adddup2(fa, sp->child[i], i);
    if (!rc && o->stderr_mode == ALOOP_STDIO_STDOUT) rc = posix_spawn_file_actions_adddup2(fa, 1, 2);
    for (size_t j = 0; j < sp->nextra && !rc; j++)
        rc = posix_spawn_file_actions_adddup2(fa, sp->extra[j], 3 + (int)j);
    if (!rc && !(o->flags & ALOOP_PROCESS_KEEP_FDS)) rc = add_close_rest(fa, 3 + (int)sp->nextra);
    if (!rc && o->cwd) {
#ifdef ALOOP_HAVE_SPAWN_CHDIR
        rc = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
#else
        rc = ENOSYS;
#endif
    }
    if (rc) posix_spawn_file_actions_destroy(fa);
    return -rc;
}

static int attr_make(posix_spawnattr_t *attr, unsigned flags) {
    int rc = posix_spawnattr_init(attr);
    if (rc) return -rc;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    rc = posix_spawnattr_setsigmask(attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(attr, &all);
    short f = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (flags & ALOOP_PROCESS_NEW_SESSION) {
        /* a session leader leads its own group too (setpgid would fail) */
#ifdef POSIX_SPAWN_SETSID
        f |= POSIX_SPAWN_SETSID;
#else
        if (!rc) rc = ENOSYS;
#endif
    } else if (flags & ALOOP_PROCESS_NEW_GROUP) {
        f |= POSIX_SPAWN_SETPGROUP;
        if (!rc) rc = posix_spawnattr_setpgroup(attr, 0);
    }
    if (!rc) rc = posix_spawnattr_setflags(attr, f);
    if (rc) posix_spawnattr_destroy(attr);
    return -rc;
}

static const char *env_get(char *const *envp, const char *name) {
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

/* Whether the child will be able to exec path: 0 or an errno value.
 * posix_spawn reports exec failures itself on glibc, but not everywhere
 * (older C libraries, valgrind, which turns the vfork into a fork): the
 * child then just exits 127. Checking first makes "cannot run" an error
 * of the spawn on every platform, and skips PATH entries without paying
 * for a child. A relative path is looked up from the child's cwd. */
static int can_exec(const char *cwd, const char *path) {
    char buf[PATH_MAX];
    if (cwd && path[0] != '/') {
        if (snprintf(buf, sizeof buf, "%s/%s", cwd, path) >= (int)sizeof buf) return ENAMETOOLONG;
        path = buf;
    }
    struct stat st;
    if (stat(path, &st) < 0) return errno;
    if (!S_ISREG(st.st_mode)) return EACCES; /* what execve says of a directory */
    return faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0 ? 0 : errno;
}

static int can_enter(const char *dir) {
    struct stat st;
    if (stat(dir, &st) < 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    return faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) == 0 ? 0 : errno;
}

/* execvp's search, with PATH taken from the child's environment (as
 * Python and libuv do) when one is given. Positive errno. */
static int spawn_search(pid_t *pid, const char *file, const aloop_process_opts_t *o,
                        const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                        char *const argv[], char *const envp[]) {
    const char *path = o->envp ? env_get(o->envp, "PATH") : getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    size_t flen = strlen(file);
    int err = ENOENT;
    char buf[PATH_MAX];
    for (const char *d = path;; d++) {
        const char *end = strchr(d, ':');
        size_t dlen = end ? (size_t)(end - d) : strlen(d);
        if (dlen + 2 + flen < sizeof buf) {
            if (dlen) memcpy(buf, d, dlen);
            else buf[dlen++] = '.'; /* empty entry = current directory */
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            int rc = can_exec(o->cwd, buf);
            if (rc == 0) rc = posix_spawn(pid, buf, fa, attr, argv, envp);
            if (rc == 0) return 0;
            if (rc == EACCES) err = EACCES;
            else if (rc != ENOENT && rc != ENOTDIR && rc != ELOOP && rc != ENAMETOOLONG) return rc;
        }
        if (!end) return err;
        d = end;
    }
}

static int spawn_exec(pid_t *pid, char *const argv[], const aloop_process_opts_t *o,
                      const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr) {
    char *const *envp = o->envp ? o->envp : environ;
    int rc = o->cwd ? can_enter(o->cwd) : 0;
    if (rc) return rc;
    if (!strchr(argv[0], '/')) return spawn_search(pid, argv[0], o, fa, attr, argv, envp);
    if ((rc = can_exec(o->cwd, argv[0])) != 0) return rc;
    return posix_spawn(pid, argv[0], fa, attr, argv, envp);
}

#define ALOOP_PROCESS_FLAGS \
    ((unsigned)ALOOP_PROCESS_NEW_GROUP | ALOOP_PROCESS_NEW_SESSION | ALOOP_PROCESS_KEEP_FDS)
#define ALOOP_EXTRA_FDS_MAX 4096u /* beyond any RLIMIT_NOFILE left to fill */

static int opts_valid(const aloop_process_opts_t *o) {
    return o->stdin_mode >= 0 && o->stdin_mode <= ALOOP_STDIO_NULL && o->stdout_mode >= 0 &&
           o->stdout_mode <= ALOOP_STDIO_NULL && o->stderr_mode >= 0 &&
           o->stderr_mode <= ALOOP_STDIO_STDOUT && !(o->flags & ~ALOOP_PROCESS_FLAGS) &&
           (o->extra_fds || !o->n_extra_fds) && o->n_extra_fds <= ALOOP_EXTRA_FDS_MAX;
}

/* Everything that can fail before the child exists; then the spawn. */
static int spawn_child(pid_t *pid, stdio_plan_t *sp, char *const argv[],
                       const aloop_process_opts_t *o) {
    const int mode[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
    int rc = plan_make(sp, mode, o);
    if (rc < 0) return rc;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if ((rc = actions_make(&fa, sp, o)) < 0) return rc;
    if ((rc = attr_make(&attr, o->flags)) < 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    rc = -spawn_exec(pid, argv, o, &fa, &attr);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

aloop_process_t *aloop_process_spawn(aloop_t *loop, char *const argv[],
                                     const aloop_process_opts_t *opts) {
    static const aloop_process_opts_t inherit = {0};
    const aloop_process_opts_t *o = opts ? opts : &inherit;
    if (!loop || !argv || !argv[0] || !argv[0][0] || !opts_valid(o))
        return aloop__null_errno(-EINVAL);
    if (aloop__foreign_thread(loop))
        return aloop__null_errno(aloop__wrong_thread(loop, "aloop_process_spawn"));
    int rc = 0;
    if (!state_get(loop, &rc)) return aloop__null_errno(rc);
    aloop_process_t *p = aloop__calloc(1, sizeof *p);
    if (!p) return NULL;
    stdio_plan_t sp;
    pid_t pid = -1;
    rc = spawn_child(&pid, &sp, argv, o);
    plan_close(&sp, rc < 0);
    if (rc < 0) {
        aloop__free(p);
        return aloop__null_errno(rc);
    }
    p->loop = loop;
    p->pid = pid;
    p->group = (o->flags & (ALOOP_PROCESS_NEW_GROUP | ALOOP_PROCESS_NEW_SESSION)) != 0;
    p->pidfd = -1;
    aloop__list_init(&p->waiters);
    for (int i = 0; i < 3; i++) {
        p->fds[i] = sp.parent[i];
        if (p->fds[i] >= 0) aloop__io_forget(loop, p->fds[i]); /* reused number */
    }
    aloop__list_push_back(&loop->procs->all, &p->link);
    if ((rc = watch_child(loop, p)) < 0) {
        kill_and_reap(pid);
        for (int i = 0; i < 3; i++)
            if (p->fds[i] >= 0) close(p->fds[i]);
        process_destroy(p);
        return aloop__null_errno(rc);
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* Accessors, kill, free                                                    */
/* ------------------------------------------------------------------------ */

int aloop_process_pid(const aloop_process_t *p) { return p ? p->pid : -EINVAL; }
int aloop_process_stdin(const aloop_process_t *p) { return p ? p->fds[0] : -EINVAL; }
int aloop_process_stdout(const aloop_process_t *p) { return p ? p->fds[1] : -EINVAL; }
int aloop_process_stderr(const aloop_process_t *p) { return p ? p->fds[2] : -EINVAL; }

int aloop_process_take_fd(aloop_process_t *p, int which) {
    if (!p || which < 0 || which > 2) return -EINVAL;
    int fd = p->fds[which];
    if (fd < 0) return -EBADF;
    p->fds[which] = -1;
    return fd;
}

static void close_fd(aloop_process_t *p, int which) {
    int fd = p->fds[which];
    if (fd < 0) return;
    p->fds[which] = -1;
    aloop__io_forget(p->loop, fd); /* wakes a task reading it with -EBADF */
    close(fd);
}

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1u << 2) /* Linux 6.9 */
#endif

/* pidfd_send_signal: 0, -errno; -ENOSYS where there is no such call. */
static int pidfd_signal(int fd, int signo, unsigned flags) {
#if defined(ALOOP_HAVE_PIDFD) && defined(SYS_pidfd_send_signal)
    return syscall(SYS_pidfd_send_signal, fd, signo, NULL, flags) < 0 ? -errno : 0;
#else
    ALOOP_UNUSED(fd);
    ALOOP_UNUSED(signo);
    ALOOP_UNUSED(flags);
    return -ENOSYS;
#endif
}

/* A pid names the child only while the child is unreaped, by us or by a
 * waitpid(-1) elsewhere in the program; after that it may be anybody's.
 * The pidfd names the child itself: once the child is gone it gives
 * ESRCH, never a stranger. Without one, waitpid(pid, WNOHANG) first tells
 * whether the pid is still our unreaped child (ECHILD: somebody took it). */
int aloop_process_kill(aloop_process_t *p, int signo) {
    if (!p || signo < 0 || signo >= NSIG) return -EINVAL;
    if (!p->loop || p->reaped) return -ESRCH;
    if (p->pidfd >= 0) {
        int rc = pidfd_signal(p->pidfd, signo, 0);
        if (rc != -ENOSYS) return rc;
    }
    if (try_reap(p)) return -ESRCH;
    return kill(p->pid, signo) < 0 ? -errno : 0;
}

/* The group outlives its leader while any member lives, and its id (the
 * leader's pid) cannot be reused meanwhile. The pidfd reaches the group
 * of the leader's own struct pid (Linux 6.9: PIDFD_SIGNAL_PROCESS_GROUP),
 * which a process that later gets the same number is not: ESRCH once the
 * group is empty, never a stranger. Elsewhere kill(-pid); once it found
 * the group empty after the leader's reap, -ESRCH for good. */
int aloop_process_kill_group(aloop_process_t *p, int signo) {
    if (!p || !p->group || signo < 0 || signo >= NSIG) return -EINVAL;
    if (!p->loop) return -ESRCH;
    if (p->pidfd >= 0) {
        int rc = pidfd_signal(p->pidfd, signo, PIDFD_SIGNAL_PROCESS_GROUP);
        if (rc != -EINVAL && rc != -ENOSYS) return rc; /* EINVAL: before 6.9 */
    }
    if (p->group_gone) return -ESRCH;
    if (kill(-p->pid, signo) == 0) return 0;
    int rc = -errno;
    if (rc == -ESRCH && p->reaped) p->group_gone = 1;
    return rc;
}

void aloop_process_free(aloop_process_t *p) {
    if (!p || p->orphaned) return;
    for (int i = 0; i < 3; i++) close_fd(p, i);
    p->orphaned = 1;
    if (p->reaped) pidfd_close(p); /* a group leader's, kept for kill_group */
    if (!p->loop) {
        process_destroy(p);
        return;
    }
    maybe_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

/* Cancelled while waiting (the core took the record off p->waiters): the
 * wait no longer holds the loop. */
static void wait_withdraw(aloop_wait_t *w) { aloop__io_hold(w->task->fut.loop, -1); }

/* The caller is t, past aloop__enter; p is checked. */
static int process_wait(aloop_task_impl_t *t, aloop_process_t *p, int *status) {
    if (!p->reaped) try_reap(p); /* already exited: no trip through the poller */
    int rc = 0;
    if (!p->reaped) {
        aloop_wait_t w = {.withdraw = wait_withdraw, .what = "aloop_process_wait"};
        aloop__io_hold(t->fut.loop, 1); /* a wait for a child keeps the loop alive */
        p->users++;
        rc = aloop__wait_in(t, &w, &p->waiters, NULL);
        p->users--;
    }
    if (rc == 0) {
        rc = p->wait_error;
        if (!rc && status) *status = p->status;
    }
    maybe_destroy(p); /* freed by aloop_process_free while we waited */
    return rc;
}

/* Common checks of the suspending calls: t or NULL with *err. */
static aloop_task_impl_t *enter(aloop_process_t *p, const char *call, int *err) {
    return aloop__enter_on(p, call, err); /* p->loop is NULL once its loop was freed */
}

int aloop_process_wait(aloop_process_t *p, int *status) {
    int err;
    aloop_task_impl_t *t = enter(p, "aloop_process_wait", &err);
    if (!t) return err;
    return process_wait(t, p, status);
}

/* ------------------------------------------------------------------------ */
/* communicate                                                              */
/* ------------------------------------------------------------------------ */

/* One output pipe read to EOF by a helper task; kept or thrown away. */
typedef struct drain {
    int fd;
    int keep;
    int err;
    char *buf;
    size_t len, cap;
} drain_t;

#define DRAIN_CHUNK 65536u

static void *drain_task(void *arg) {
    drain_t *d = arg;
    char scratch[4096];
    for (;;) {
        char *dst = scratch;
        size_t room = sizeof scratch;
        if (d->keep) {
            if (d->cap - d->len < DRAIN_CHUNK / 4 + 1) { /* +1: the final NUL */
                size_t n = d->cap ? d->cap * 2 : DRAIN_CHUNK;
                char *b = aloop__realloc(d->buf, n);
                if (!b) {
                    d->err = -ENOMEM;
                    return NULL;
                }
                d->buf = b;
                d->cap = n;
            }
            dst = d->buf + d->len;
            room = d->cap - d->len - 1;
        }
        ssize_t n = aloop_read(d->fd, dst, room);
        if (n == 0) break;
        if (n < 0) {
            d->err = (int)n;
            return NULL;
        }
        if (d->keep) d->len += (size_t)n;
    }
    if (d->keep && !d->buf && !(d->buf = aloop__malloc(1))) d->err = -ENOMEM;
    if (d->keep && d->buf) d->buf[d->len] = '\0';
    return NULL;
}

/* Writes `in` to stdin, then closes it. A child that does not read all of
 * it (it exited, or closed its stdin) is not an error, as in asyncio. */
static int feed_stdin(aloop_process_t *p, const void *in, size_t inlen) {
    if (p->fds[0] < 0) return 0;
    if (inlen) {
        ssize_t n = aloop_write_all(p->fds[0], in, inlen);
        if (n < 0 && n != -EPIPE && n != -ECONNRESET) return (int)n;
    }
    close_fd(p, 0);
    return 0;
}

/* Ends the helper tasks: awaits each (cancelling it first if we failed),
 * so that none outlives the call. rc is the status so far. */
static int drains_finish(aloop_task_t *task[2], drain_t d[2], int rc) {
    for (int i = 0; i < 2; i++) {
        if (!task[i]) continue;
        if (rc < 0) aloop_cancel(task[i]);
        int r;
        /* A cancel of ours while awaiting cancels the helper too (await
         * semantics); one that was pending returns at once: then cancel
         * the helper ourselves. Either way, wait until it has ended. */
        while ((r = aloop_await(task[i], NULL)) == -ECANCELED && !aloop_future_done(task[i])) {
            if (rc == 0) rc = -ECANCELED;
            aloop_cancel(task[i]);
        }
        if (rc == 0 && r < 0) rc = r;
        if (rc == 0 && d[i].err < 0) rc = d[i].err;
        aloop_release(task[i]);
        task[i] = NULL;
    }
    return rc;
}

/* What was read goes to the caller: after success all of it ("" when
 * nothing), after an error what was read so far (NULL when nothing), so
 * that a timeout does not lose a child's last words. The drain always
 * leaves a byte of room for the NUL. */
static void hand_out(drain_t *d, int ok, char **out, size_t *outlen) {
    if (out && d->buf && (ok || d->len)) {
        d->buf[d->len] = '\0';
        *out = d->buf;
        if (outlen) *outlen = d->len;
        d->buf = NULL;
    }
    aloop__free(d->buf);
    d->buf = NULL;
}

int aloop_process_communicate(aloop_process_t *p, const void *in, size_t inlen, char **out,
                              size_t *outlen, char **err, size_t *errlen, int *status) {
    if (out) *out = NULL;
    if (outlen) *outlen = 0;
    if (err) *err = NULL;
    if (errlen) *errlen = 0;
    if (!in && inlen) return -EINVAL;
    int rc;
    aloop_task_impl_t *t = enter(p, "aloop_process_communicate", &rc);
    if (!t) return rc;
    if (inlen && p->fds[0] < 0) return -EPIPE; /* nowhere to send it */
    p->users++;
    drain_t d[2] = {{.fd = p->fds[1], .keep = out != NULL}, {.fd = p->fds[2], .keep = err != NULL}};
    aloop_task_t *task[2] = {NULL, NULL};
    rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        if (d[i].fd >= 0 && !(task[i] = aloop_spawn(t->fut.loop, drain_task, &d[i]))) rc = -ENOMEM;
    if (rc == 0) rc = feed_stdin(p, in, inlen);
    rc = drains_finish(task, d, rc);
    if (rc == 0) {
        close_fd(p, 1); /* both at EOF: nothing more will come */
        close_fd(p, 2);
        rc = process_wait(t, p, status);
    }
    hand_out(&d[0], rc == 0, out, outlen);
    hand_out(&d[1], rc == 0, err, errlen);
    p->users--;
    maybe_destroy(p);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* aloop_free                                                               */
/* ------------------------------------------------------------------------ */

/* Counted among the library's helper threads while it runs, so that a
 * loop's deadlock check does not take it for a thread that could post work
 * (it counts itself in only once it exists, and out before it ends: the
 * count never exceeds the reapers in /proc/self/task). */
static void *reaper_main(void *arg) {
    pid_t pid = (pid_t)(intptr_t)arg;
    aloop__helper_threads(1);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    aloop__helper_threads(-1);
    return NULL;
}

/* A child still running when its loop is freed: a detached thread blocks
 * in waitpid for it, so it is neither killed nor left a zombie. */
static void reap_later(pid_t pid) {
    pthread_attr_t a;
    pthread_t th;
    sigset_t all, old;
    if (pthread_attr_init(&a)) goto fail;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN > 65536 ? PTHREAD_STACK_MIN : 65536);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread blocks every signal */
    int rc = pthread_create(&th, &a, reaper_main, (void *)(intptr_t)pid);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (!rc) return;
fail:
    fprintf(stderr, "aloop: no thread to reap child %d; it stays a zombie once it exits\n",
            (int)pid);
}

void aloop__process_free(aloop_t *loop) {
    struct aloop_procs *ps = loop->procs;
    if (!ps) return;
    while (!aloop__list_empty(&ps->all)) {
        aloop_process_t *p = ALOOP_CONTAINER_OF(ps->all.next, aloop_process_t, link);
        aloop__list_remove(&p->link);
        aloop__list_init(&p->waiters); /* no task is left to wait */
        p->users = 1;                  /* keeps p while we look at it */
        if (!try_reap(p)) reap_later(p->pid);
        pidfd_close(p); /* detached: kill says -ESRCH */
        for (int i = 0; i < 3; i++)
            if (p->fds[i] >= 0) aloop__io_forget(loop, p->fds[i]);
        p->users = 0;
        p->loop = NULL;
        if (p->orphaned) process_destroy(p);
    }
    if (!ps->use_pidfd) chld_leave(loop, ps);
    aloop__free(ps->byfd);
    aloop__free(ps);
    loop->procs = NULL;
}

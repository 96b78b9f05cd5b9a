/*
 * parallel - xargs -P / GNU parallel in miniature: runs a shell command
 * template once per argument, at most N at a time, and streams every
 * child's output as it comes, one whole line at a time, tagged with the
 * argument that produced it.
 *
 *     parallel -j 4 --timeout 10 'gzip -9 {}' ::: *.log
 *     ls *.c | parallel 'wc -l {}'
 *
 * The executors lecture's point, made with processes: the loop's single
 * thread only waits, so N children that each take one second finish in
 * about (count / N) seconds, while their output is read, tagged and
 * printed as it arrives. What it shows of libaloop:
 *  - aloop_process_spawn with stdout piped and stderr merged into it
 *    (2>&1), stdin from /dev/null, and a process group per child so that
 *    a timeout (or Ctrl-C) stops the whole pipeline the shell started;
 *  - the pipe wrapped in a stream (aloop_process_take_fd +
 *    aloop_stream_readline): lines, never partial ones;
 *  - a timeout scope around "read everything, then wait for the exit";
 *  - a semaphore that bounds the children running at once, a task group
 *    that owns the per-child tasks, aloop_signal_wait for SIGINT.
 */
#define _POSIX_C_SOURCE 200809L

#include <aloop.h>

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (64u * 1024u)
#define KILL_GRACE 2.0 /* seconds between SIGTERM and SIGKILL */

struct run;

typedef struct job {
    struct run *run;
    const char *arg;
    char *arg_copy;        /* arg, when read from stdin */
    char *cmd;
    aloop_process_t *proc; /* while running */
    int spawn_error;       /* -errno if it could not start */
    int status;            /* waitpid status */
    int timed_out;
    double secs;           /* how long it ran */
} job_t;

typedef struct run {
    const char *template;
    unsigned jobs;
    double timeout; /* INFINITY: none */
    job_t **all;
    size_t njobs, cap;
    aloop_semaphore_t *slots;
    int interrupted;
} run_t;

/* ---- the command ---------------------------------------------------------- */

/* The argument never enters the command line: sh gets it as $1
 * (sh -c COMMAND sh ARG), so no argument is ever parsed as shell code,
 * whatever quotes the template puts around {}. What replaces {} depends on
 * the quoting at that point of the template: "$1" outside quotes, $1
 * inside double quotes, '"$1"' inside single quotes (close, expand,
 * reopen). */
static const char *param_for(char quote) {
    return quote == '\'' ? "'\"$1\"'" : quote == '"' ? "$1" : "\"$1\"";
}

/* The quoting state after the character at c (0, '\'' or '"'); *skip is
 * 2 when c starts a backslash escape (outside single quotes). */
static char scan(char quote, const char *c, int *skip) {
    *skip = 1;
    if (quote != '\'' && c[0] == '\\' && c[1]) *skip = 2;
    else if (!quote && (c[0] == '\'' || c[0] == '"')) quote = c[0];
    else if (quote && c[0] == quote) quote = 0;
    return quote;
}

/* The template with every {} replaced by a reference to $1, or " "$1""
 * appended when there is no {}. Two passes: measure, then fill. */
static char *build_command(const char *tpl) {
    char *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        int used = 0;
        char quote = 0;
        for (const char *c = tpl; *c;) {
            const char *add = c;
            size_t len;
            int skip;
            if (c[0] == '{' && c[1] == '}') {
                add = param_for(quote);
                len = strlen(add);
                c += 2;
                used = 1;
            } else {
                quote = scan(quote, c, &skip);
                len = (size_t)skip;
                c += skip;
            }
            if (out) memcpy(out + n, add, len);
            n += len;
        }
        if (!used) {
            if (out) memcpy(out + n, " \"$1\"", 5);
            n += 5;
        }
        if (out) {
            out[n] = '\0';
            return out;
        }
        if (!(out = malloc(n + 1))) return NULL;
    }
    return out;
}

/* ---- one child ------------------------------------------------------------ */

/* One line, tagged, in one write: lines of different children never mix. */
static void print_line(const char *arg, const char *line, size_t len) {
    int nl = len > 0 && line[len - 1] == '\n';
    printf("[%s] %.*s%s", arg, (int)len, line, nl ? "" : "\n");
}

/* Reads the child's output to EOF, then waits for its exit. */
static int read_and_wait(aloop_stream_t *s, job_t *j, char *buf) {
    for (;;) {
        ssize_t n = aloop_stream_readline(s, buf, MAX_LINE + 1);
        if (n == -EMSGSIZE) {
            printf("[%s] (a line longer than %u bytes, dropped)\n", j->arg, MAX_LINE);
            continue;
        }
        if (n < 0) return (int)n;
        if (n == 0) break;
        print_line(j->arg, buf, (size_t)n);
    }
    return aloop_process_wait(j->proc, &j->status);
}

/* After a timeout: SIGTERM to the child's group, SIGKILL if it lingers. */
static void stop_child(job_t *j) {
    aloop_process_kill_group(j->proc, SIGTERM);
    aloop_timeout_t grace;
    int rc = aloop_timeout_enter(&grace, KILL_GRACE);
    if (rc == 0) rc = aloop_timeout_exit(&grace, aloop_process_wait(j->proc, &j->status));
    if (rc == 0) return;
    aloop_process_kill_group(j->proc, SIGKILL);
    aloop_process_wait(j->proc, &j->status);
}

static void *job_task(void *arg) {
    job_t *j = arg;
    aloop_t *loop = aloop_current();
    double start = aloop_time(loop);
    char *argv[] = {"sh", "-c", j->cmd, "sh", (char *)j->arg, NULL}; /* arg is $1 */
    aloop_process_opts_t o = {.stdin_mode = ALOOP_STDIO_NULL,
                              .stdout_mode = ALOOP_STDIO_PIPE,
                              .stderr_mode = ALOOP_STDIO_STDOUT,
                              .flags = ALOOP_PROCESS_NEW_GROUP};
    j->proc = aloop_process_spawn(loop, argv, &o);
    if (!j->proc) {
        j->spawn_error = -errno;
        aloop_semaphore_release(j->run->slots);
        return NULL;
    }
    aloop_stream_t *s = aloop_stream_new(loop, aloop_process_take_fd(j->proc, 1), MAX_LINE);
    char *buf = malloc(MAX_LINE + 1);
    int rc = -ENOMEM;
    aloop_timeout_t to;
    if (s && buf && (rc = aloop_timeout_enter(&to, j->run->timeout)) == 0)
        rc = aloop_timeout_exit(&to, read_and_wait(s, j, buf));
    if (rc == -ETIMEDOUT) j->timed_out = 1;
    if (rc < 0) stop_child(j); /* timed out, interrupted, or out of memory */
    j->secs = aloop_time(loop) - start;
    if (s) aloop_stream_close(s);
    free(buf);
    aloop_process_free(j->proc);
    j->proc = NULL;
    aloop_semaphore_release(j->run->slots);
    return NULL;
}

/* ---- the run ---------------------------------------------------------------- */

/* Ctrl-C: no new children; the running ones (each in its own process
 * group, so the terminal's SIGINT did not reach them) get SIGTERM. */
static void *sigint_task(void *arg) {
    run_t *r = arg;
    if (aloop_signal_wait(SIGINT) < 0) return NULL;
    r->interrupted = 1;
    fprintf(stderr, "parallel: interrupted, stopping the children\n");
    for (size_t i = 0; i < r->njobs; i++)
        if (r->all[i]->proc) aloop_process_kill_group(r->all[i]->proc, SIGTERM);
    return NULL;
}

static job_t *add_job(run_t *r, const char *arg) {
    if (r->njobs == r->cap) {
        size_t n = r->cap ? r->cap * 2 : 64;
        job_t **a = realloc(r->all, n * sizeof *a);
        if (!a) return NULL;
        r->all = a;
        r->cap = n;
    }
    job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->run = r;
    j->arg = arg;
    if (!(j->cmd = build_command(r->template))) {
        free(j);
        return NULL;
    }
    r->all[r->njobs++] = j;
    return j;
}

/* Takes a slot (waits while N children run), then starts the job. */
static int start_job(run_t *r, aloop_group_t *g, const char *arg) {
    int rc = aloop_semaphore_acquire(r->slots);
    if (rc < 0) return rc;
    job_t *j = r->interrupted ? NULL : add_job(r, arg);
    if (!j || !aloop_group_spawn(g, job_task, j)) {
        aloop_semaphore_release(r->slots);
        return r->interrupted ? -EINTR : -ENOMEM;
    }
    return 0;
}

typedef struct main_args {
    run_t *run;
    char **args; /* NULL: read them from stdin, one per line */
    int nargs;
} main_args_t;

/* Arguments from stdin, one per line (without its newline). */
static int start_from_stdin(run_t *r, aloop_group_t *g) {
    aloop_stream_t *in = aloop_stream_new(aloop_current(), STDIN_FILENO, MAX_LINE);
    if (!in) return -ENOMEM;
    char *line = malloc(MAX_LINE + 1);
    int rc = line ? 0 : -ENOMEM;
    while (rc == 0) {
        ssize_t n = aloop_stream_readline(in, line, MAX_LINE + 1);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        if (line[n - 1] == '\n') line[--n] = '\0';
        char *arg = strdup(line);
        rc = arg ? start_job(r, g, arg) : -ENOMEM;
        if (rc == 0)
            r->all[r->njobs - 1]->arg_copy = arg; /* the job owns it */
        else
            free(arg);
    }
    free(line);
    aloop_stream_close(in);
    return rc;
}

static void *main_task(void *arg) {
    main_args_t *m = arg;
    run_t *r = m->run;
    aloop_t *loop = aloop_current();
    aloop_group_t *g = aloop_group_new(loop);
    aloop_task_t *sig = aloop_spawn(loop, sigint_task, r);
    r->slots = aloop_semaphore_new(loop, r->jobs);
    int rc = g && sig && r->slots ? 0 : -ENOMEM;
    if (rc == 0 && m->args) {
        for (int i = 0; i < m->nargs && rc == 0; i++) rc = start_job(r, g, m->args[i]);
    } else if (rc == 0) {
        rc = start_from_stdin(r, g);
    }
    if (rc < 0 && rc != -EINTR) fprintf(stderr, "parallel: %s\n", aloop_strerror(rc));
    if (g) {
        aloop_group_wait(g);
        aloop_group_free(g);
    }
    if (sig) {
        aloop_cancel(sig);
        aloop_release(sig);
    }
    if (r->slots) aloop_semaphore_free(r->slots);
    return NULL;
}

/* ---- report ------------------------------------------------------------------- */

static int report(const run_t *r, double wall) {
    double sum = 0;
    size_t failed = 0;
    for (size_t i = 0; i < r->njobs; i++) {
        const job_t *j = r->all[i];
        sum += j->secs;
        char what[96];
        if (j->spawn_error)
            snprintf(what, sizeof what, "not started: %s", aloop_strerror(j->spawn_error));
        else if (WIFEXITED(j->status))
            snprintf(what, sizeof what, "exit %d", WEXITSTATUS(j->status));
        else if (WIFSIGNALED(j->status))
            snprintf(what, sizeof what, "killed by signal %d (%s)", WTERMSIG(j->status),
                     strsignal(WTERMSIG(j->status)));
        else
            snprintf(what, sizeof what, "status %#x", j->status);
        int ok = !j->spawn_error && !j->timed_out && WIFEXITED(j->status) && !WEXITSTATUS(j->status);
        failed += !ok;
        printf("parallel: [%s] %s%s, %.2f s\n", j->arg, what,
               j->timed_out ? " after --timeout" : "", j->secs);
    }
    printf("parallel: %zu job(s), %zu failed; wall %.2f s, children's times summed %.2f s",
           r->njobs, failed, wall, sum);
    if (wall > 0 && r->njobs) printf(" (x%.1f)", sum / wall);
    printf("\n");
    return failed || r->interrupted ? 1 : 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: parallel [-j N] [--timeout SECS] [--] TEMPLATE [::: ARG...]\n"
            "Runs the shell command TEMPLATE (sh -c) once per ARG, at most N at a time\n"
            "(default: the number of CPUs). {} in TEMPLATE stands for the argument,\n"
            "passed to sh as \"$1\" (never run as code, whatever the quotes around {});\n"
            "without {} it is appended. Without ::: the\n"
            "arguments are read from stdin, one per line.\n"
            "Each line a child prints (stdout and stderr together) is shown as it\n"
            "comes, whole, as \"[ARG] line\". At the end: each child's exit status and\n"
            "how long it ran, then the wall time against the children's times summed.\n"
            "  -j, --jobs N      at most N children at once\n"
            "  --timeout SECS    SIGTERM to a child (its whole process group) running\n"
            "                    longer than SECS, SIGKILL %.0f s later\n"
            "  -h, --help        this text\n"
            "Exit status: 0 if every child exited 0, 1 otherwise, 2 on a usage error.\n",
            KILL_GRACE);
}

static double wall_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_positive(const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v > 0)) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    run_t r = {.jobs = cpus > 0 ? (unsigned)cpus : 1, .timeout = INFINITY};
    main_args_t m = {.run = &r};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        double v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-j") || !strcmp(a, "--jobs")) && i + 1 < argc &&
                   parse_positive(argv[i + 1], &v) == 0 && v <= 100000 && v == (unsigned)v) {
            r.jobs = (unsigned)v;
            i++;
        } else if (!strcmp(a, "--timeout") && i + 1 < argc && parse_positive(argv[i + 1], &v) == 0) {
            r.timeout = v;
            i++;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "parallel: bad option or value: %s\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    r.template = argv[i++];
    if (i < argc) {
        if (strcmp(argv[i], ":::")) {
            fprintf(stderr, "parallel: expected ::: after the template, got %s\n", argv[i]);
            return 2;
        }
        m.args = argv + i + 1;
        m.nargs = argc - i - 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines as they come, even into a pipe */
    double t0 = wall_clock();
    int rc = aloop_main(main_task, &m, NULL);
    double wall = wall_clock() - t0;
    if (rc < 0) {
        fprintf(stderr, "parallel: %s\n", aloop_strerror(rc));
        return 1;
    }
    int status = report(&r, wall);
    for (size_t k = 0; k < r.njobs; k++) {
        free(r.all[k]->cmd);
        free(r.all[k]->arg_copy);
        free(r.all[k]);
    }
    free(r.all);
    return status;
}

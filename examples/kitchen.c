/*
 * kitchen - the course's three-course meal, in C.
 *
 *   appetizer:   2 minutes of preparation,  3 minutes of cooking
 *   main course: 5 minutes of preparation, 10 minutes of cooking
 *   dessert:     3 minutes of preparation,  5 minutes of cooking
 *
 * Preparation is work of the cook: one item at a time (an aloop_lock is the
 * cook's hands). Cooking is waiting: the oven does it while the cook
 * prepares the next item. So:
 *   - one course after another takes 2+3 + 5+10 + 3+5 = 28 minutes;
 *   - overlapping cooking with the next preparation takes 17 minutes;
 *   - preparing the main course first takes 15 minutes.
 * The overlapped meals are task groups: one task per course.
 *
 * One minute of the story is --scale seconds (default 0.1), so the whole
 * program runs in 6 s; ALOOP_CLOCK=virtual in the environment runs it on the
 * loop's virtual clock instead: it finishes at once with the same timeline.
 */
#include <aloop.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct course {
    const char *name;
    double prep, cook; /* minutes */
} course_t;

static const course_t APPETIZER = {"appetizer", 2, 3};
static const course_t MAIN_COURSE = {"main course", 5, 10};
static const course_t DESSERT = {"dessert", 3, 5};

static double scale = 0.1; /* seconds per minute */
static double start;       /* loop time when the current meal started */
static aloop_lock_t *cook; /* held while the cook prepares something */

static double minutes(void) { return (aloop_time(aloop_current()) - start) / scale; }

static void say(const course_t *c, const char *what, double how_long) {
    if (how_long > 0)
        printf("  [%4.1f min] %-11s %s (%g min)\n", minutes(), c->name, what, how_long);
    else
        printf("  [%4.1f min] %-11s %s\n", minutes(), c->name, what);
    fflush(stdout);
}

/* One course: the cook prepares it (alone), then it cooks (unattended). */
static void *make_course(void *arg) {
    const course_t *c = arg;
    int rc = aloop_lock_acquire(cook);
    if (rc < 0) return aloop_fail(rc);
    say(c, "preparing", c->prep);
    rc = aloop_sleep(c->prep * scale);
    aloop_lock_release(cook);
    if (rc < 0) return aloop_fail(rc);
    say(c, "cooking", c->cook);
    rc = aloop_sleep(c->cook * scale);
    if (rc < 0) return aloop_fail(rc);
    say(c, "ready", 0);
    return NULL;
}

/* Each course is finished before the next one is started. */
static int sequential_meal(const course_t *const *courses, size_t n) {
    for (size_t i = 0; i < n; i++) {
        aloop_task_t *t = aloop_spawn(aloop_current(), make_course, (void *)courses[i]);
        if (!t) return -ENOMEM;
        int rc = aloop_await(t, NULL);
        aloop_release(t);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Every course is a task of one group; the cook's lock serialises the
 * preparations in the order the tasks were spawned. */
static int overlapped_meal(const course_t *const *courses, size_t n) {
    aloop_group_t *g = aloop_group_new(aloop_current());
    if (!g) return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!aloop_group_spawn(g, make_course, (void *)courses[i])) rc = -ENOMEM;
    int wait_rc = aloop_group_wait(g);
    aloop_group_free(g);
    return rc ? rc : wait_rc;
}

typedef struct meal {
    const char *title, *label;
    int (*cook_it)(const course_t *const *, size_t);
    const course_t *order[3];
    double total; /* minutes */
} meal_t;

static void *dinner(void *arg) {
    meal_t *meals = arg;
    for (meal_t *m = meals; m->title; m++) {
        printf("%s\n", m->title);
        start = aloop_time(aloop_current());
        int rc = m->cook_it(m->order, 3);
        if (rc < 0) return aloop_fail(rc);
        m->total = minutes();
        printf("  %s total: %.1f minutes (%.2f s)\n\n", m->label, m->total, m->total * scale);
    }
    return NULL;
}

static void usage(FILE *to) {
    fprintf(to,
            "usage: kitchen [--scale SECONDS]\n"
            "Cooks the course's three-course meal three ways and prints how long each took:\n"
            "one course after another (28 min), cooking overlapped with the next\n"
            "preparation (17 min), and the main course prepared first (15 min).\n"
            "  --scale SECONDS  real seconds per minute of the story (default 0.1)\n"
            "  --help           this text\n"
            "ALOOP_CLOCK=virtual in the environment: the same timeline, no waiting\n");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            char *end;
            scale = strtod(argv[++i], &end);
            if (*end || !(scale > 0)) {
                fprintf(stderr, "kitchen: --scale needs a positive number of seconds\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    meal_t meals[] = {
        {"One course after another:", "Sequential", sequential_meal,
         {&APPETIZER, &MAIN_COURSE, &DESSERT}, 0},
        {"Overlapped: cook one course while preparing the next:", "Overlapped", overlapped_meal,
         {&APPETIZER, &MAIN_COURSE, &DESSERT}, 0},
        {"Overlapped, main course prepared first:", "Main-course-first", overlapped_meal,
         {&MAIN_COURSE, &APPETIZER, &DESSERT}, 0},
        {0},
    };
    aloop_t *loop = aloop_new();
    if (!loop || !(cook = aloop_lock_new(loop))) {
        fprintf(stderr, "kitchen: out of memory\n");
        return 1;
    }
    aloop_task_t *t = aloop_spawn(loop, dinner, meals);
    int rc = t ? aloop_run_until_complete(loop, t) : -ENOMEM;
    aloop_release(t);
    aloop_lock_free(cook);
    aloop_free(loop);
    if (rc < 0) {
        fprintf(stderr, "kitchen: %s\n", aloop_strerror(rc));
        return 1;
    }
    printf("Overlapping saved %.1f minutes; preparing the main course first saved %.1f more.\n",
           meals[0].total - meals[1].total, meals[1].total - meals[2].total);
    return 0;
}

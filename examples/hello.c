/* hello - the README's example: two tasks, a queue, a timeout. */
#include <aloop.h>
#include <stdio.h>

static void *producer(void *q) {
    for (long i = 1; i <= 3; i++) {
        aloop_sleep(0.1);                       /* suspends this task only */
        aloop_queue_put(q, (void *)i);
    }
    aloop_queue_put(q, NULL);                   /* end of stream */
    return NULL;
}

static void *consumer(void *q) {
    void *item;
    while (aloop_queue_get(q, &item) == 0 && item)
        printf("got %ld at %.1f s\n", (long)item, aloop_time(aloop_current()));
    return NULL;
}

static void *main_task(void *arg) {
    aloop_queue_t *q = aloop_queue_new(aloop_current(), 1);
    aloop_task_t *t[2] = {aloop_spawn(aloop_current(), producer, q),
                          aloop_spawn(aloop_current(), consumer, q)};
    int rc = aloop_wait_for(t[1], 5.0, NULL);   /* 0, or -ETIMEDOUT after 5 s */
    aloop_release(t[0]);
    aloop_release(t[1]);
    aloop_queue_free(q);
    printf("done: %s\n", aloop_strerror(rc));
    return arg;
}

int main(void) { return aloop_main(main_task, NULL, NULL) == 0 ? 0 : 1; }

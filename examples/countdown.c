#include <aloop.h>
#include <stdio.h>
static void *count(void *arg) {
    for (int n = 3; n > 0; n--) {
        if (aloop_sleep(0.1) < 0) return NULL;
        printf("%s = %d\n", (char *)arg, n);
    }
    return arg;
}
static void *main_task(void *arg) {
    (void)arg;
    aloop_task_t *a = aloop_spawn(aloop_current(), count, "A");
    aloop_task_t *b = aloop_spawn(aloop_current(), count, "B");
    void *r;
    aloop_await(a, &r); printf("a -> %s\n", (char*)r);
    aloop_await(b, &r); printf("b -> %s\n", (char*)r);
    aloop_release(a); aloop_release(b);
    return NULL;
}
int main(void) { return aloop_main(main_task, NULL, NULL); }

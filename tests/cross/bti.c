/*
 * bti.c - aloop__ctx_swap under branch target enforcement (aarch64 BTI).
 *
 * With BTI on, an indirect branch (`br`, `blr`) must land on a `bti`
 * instruction, so a switch that ends in `br x30` faults on its first return
 * into a caller. Debian's libc is not built for BTI, and BTI is only
 * enforced when every object linked in is marked, so this program uses no
 * libc at all: it is linked with -nostdlib -static -z force-bti against
 * coro.o alone (its other references left unresolved and never called) and
 * run under `qemu-aarch64 -cpu max`, which emulates BTI. See
 * .ci/cross-aarch64.sh. Exit status 0 and "bti: ok" on success; SIGILL if
 * the switch is not BTI-clean.
 */
#if !defined(__aarch64__)
#error "aarch64 only"
#endif

typedef unsigned long word_t;

void aloop__ctx_swap(void **save_sp, void *load_sp);
int main(void);

static void *main_sp, *co_sp;
static char co_stack[16384] __attribute__((aligned(16)));
static int entered;

/* Called through a pointer: the switch's own entry must be a landing pad. */
static void (*volatile swap_via_pointer)(void **, void *) = aloop__ctx_swap;

static long sys_write(int fd, const char *s, word_t n) {
    register long x8 __asm__("x8") = 64, x0 __asm__("x0") = fd;
    register long x1 __asm__("x1") = (long)s, x2 __asm__("x2") = (long)n;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}

static void say(const char *s) {
    word_t n = 0;
    while (s[n]) n++;
    sys_write(1, s, n);
}

/* The coroutine: first reached by the switch's return, then it switches
 * back and forth, once directly and once through the pointer. */
static void co_entry(void) {
    for (;;) {
        entered++;
        if (entered % 2)
            aloop__ctx_swap(&co_sp, main_sp);
        else
            swap_via_pointer(&co_sp, main_sp);
    }
}

int main(void) {
    /* The frame aloop__ctx_swap pops: 20 words, x30 (index 11) the entry. */
    word_t *f = (word_t *)(co_stack + sizeof co_stack) - 20;
    for (int i = 0; i < 20; i++) f[i] = 0;
    f[11] = (word_t)co_entry;
    co_sp = f;
    for (int i = 0; i < 4; i++) {
        if (i % 2)
            swap_via_pointer(&main_sp, co_sp);
        else
            aloop__ctx_swap(&main_sp, co_sp);
    }
    say(entered == 4 ? "bti: ok\n" : "bti: wrong number of switches\n");
    return entered == 4 ? 0 : 1;
}

/* No crt: enter main with a clean frame chain, exit with its status. */
__asm__(".pushsection .text\n"
        ".globl _start\n"
        ".type _start,%function\n"
        "_start:\n"
        "    mov x29, #0\n"
        "    mov x30, #0\n"
        "    bl main\n"
        "    mov x8, #93\n"
        "    svc 0\n"
        ".size _start, .-_start\n"
        ".popsection\n");

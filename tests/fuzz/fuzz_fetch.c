/*
 * fuzz_fetch.c - libFuzzer target for fetch's response-head parser
 * (examples/fetch.c, compiled into this file with main() renamed; the
 * parser is pure, no loop).
 *
 * Input: a response head as a server would send it (any bytes: the parser
 * is given exactly what aloop_stream_readuntil would hand it, NUL bytes
 * included). Checked: a head that parses has a status in 100..599, never
 * both a chunked coding and a Content-Length, and a Content-Length that is
 * the number its digits say (every Content-Length field of the head
 * agreeing); one that does not parse says why. Anything else aborts.
 */
#define main fetch_program_main
int fetch_program_main(int argc, char **argv);
#include "../../examples/fetch.c"
#undef main

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_fetch: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* The Content-Length a valid head declares, found independently of the
 * parser: the first field's first number (the parser accepted them all as
 * equal). -1 if none. */
static long long declared_length(const char *head) {
    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (p[2] == '\r' && p[3] == '\n') break; /* the end of the head */
        if (strncasecmp(p + 2, "Content-Length:", 15) != 0) continue;
        const char *v = p + 17;
        while (*v == ' ' || *v == '\t') v++;
        return strtoll(v, NULL, 10);
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > HEADER_MAX) return 0;
    char *head = malloc(size + 1);
    if (!head) return 0;
    memcpy(head, data, size);
    head[size] = '\0';
    response_t r;
    const char *what = NULL;
    int rc = parse_head(head, size, &r, &what);
    CHECK(rc == 0 || rc == -EPROTO);
    if (rc < 0) {
        CHECK(what != NULL);
    } else {
        CHECK(what == NULL);
        CHECK(r.status >= 100 && r.status <= 599);
        CHECK(!(r.chunked && r.length >= 0));
        CHECK(r.length >= -1);
        if (!r.chunked) CHECK(r.length == declared_length(head));
    }
    free(head);
    return 0;
}

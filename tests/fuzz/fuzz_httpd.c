/*
 * fuzz_httpd.c - libFuzzer target for the file server's request parser
 * (examples/httpd/parse.c, compiled into this file: it is pure, no loop).
 *
 * Input: bytes 0-7 are the size of the resource a Range is taken against;
 * the rest is a request head as a client would send it, cut into lines at
 * '\n' the way the server reads it. Every line goes through the parser as
 * the server would feed it (the request line, then fields until the empty
 * line), then the whole-head checks, the target's path, the Range and the
 * dates. Checked: the path never has an empty, "." or ".." segment, a
 * leading '/', a backslash or a control byte; a 206 range lies inside the
 * resource; statuses are the documented ones. Anything else aborts.
 */
#include "../../examples/httpd/parse.c"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_httpd: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static void check_path(const char *target) {
    char path[HTTP_MAX_PATH + 1];
    int st = http_target_path(target, path, sizeof path);
    CHECK(st == 0 || st == 400 || st == 403 || st == 414);
    if (st) return;
    size_t len = strlen(path);
    CHECK(len <= HTTP_MAX_PATH);
    CHECK(len == 0 || (path[0] != '/' && path[len - 1] != '/'));
    CHECK(!strstr(path, "//") && !strchr(path, '\\'));
    for (size_t i = 0; i < len; i++)
        CHECK((unsigned char)path[i] >= 0x20 && path[i] != 0x7f);
    /* no segment is "." or ".." */
    const char *seg = path;
    while (len && *seg) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        CHECK(n > 0);
        CHECK(!(n == 1 && seg[0] == '.') && !(n == 2 && seg[0] == '.' && seg[1] == '.'));
        seg = end ? end + 1 : seg + n;
    }
}

static void check_range(const char *value, uint64_t size) {
    uint64_t first = 0, count = 0;
    int st = http_parse_range(value, size, &first, &count);
    CHECK(st == 200 || st == 206 || st == 416);
    if (st == 206) {
        CHECK(count > 0 && first < size && count <= size - first);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t rsize = 0;
    for (size_t i = 0; i < 8 && i < size; i++) rsize = rsize << 8 | data[i];
    if (size < 8) return 0;
    data += 8;
    size -= 8;
    static http_request_t r;
    http_request_init(&r);
    int st = -1, lineno = 0;
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) + 1 : size - off;
        if (len > HTTP_MAX_LINE) break; /* the reader answers 414 / 431 itself */
        const char *line = (const char *)data + off;
        off += len;
        if (lineno++ == 0) {
            st = http_parse_request_line(&r, line, len);
            CHECK(st == 0 || st == 400 || st == 505);
            if (st) break;
            CHECK(r.method >= HTTP_GET && r.method <= HTTP_OTHER);
            CHECK(strlen(r.target) > 0 && strlen(r.target) < sizeof r.target);
            continue;
        }
        if (len == 1 || (len == 2 && line[0] == '\r')) {
            st = http_request_check(&r);
            CHECK(st == 0 || st == 400 || st == 413);
            CHECK(http_keep_alive(&r) == 0 || http_keep_alive(&r) == 1);
            break;
        }
        st = http_parse_field(&r, line, len);
        CHECK(st == 0 || st == 400 || st == 431);
        if (st) break;
    }
    if (r.method) check_path(r.target);
    if (r.has_range && !r.range_too_long) check_range(r.range, rsize);
    /* the raw bytes as a target, a range and a date too */
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_path(s);
    check_range(s, rsize);
    time_t t;
    if (http_parse_date(s, &t) == 0) {
        char out[30];
        http_format_date(t, out);
        CHECK(strlen(out) == 29);
    }
    free(s);
    return 0;
}

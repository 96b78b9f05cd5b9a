/*
 * parse.c - the request parser (RFC 9110 semantics, RFC 9112 syntax), pure:
 * bytes in, a request or a status out. It is strict where leniency lets two
 * parsers disagree about where a request ends (smuggling): single spaces
 * in the request line, no whitespace before a field's colon, no folded
 * lines, no bare CR, one Content-Length of digits only, never
 * Content-Length beside Transfer-Encoding.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm */
#endif
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void http_request_init(http_request_t *r) {
    r->method = 0;
    r->minor = 1;
    r->target[0] = '\0';
    r->line_len = 0;
    r->line[0] = '\0';
    r->n_headers = 0;
    r->head_bytes = 0;
    r->has_host = r->conn_close = r->conn_keep_alive = 0;
    r->has_length = 0;
    r->content_length = 0;
    r->has_te = r->te_chunked_last = 0;
    r->has_range = r->range_too_long = 0;
    r->range[0] = '\0';
    r->has_ims = 0;
    r->if_modified_since = 0;
    r->has_if_range = 0;
    r->if_range[0] = '\0';
}

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Strips the line ending: the content's length, or -1 without a final LF
 * or with a CR anywhere else. */
static ssize_t line_content(const char *line, size_t len) {
    if (len == 0 || line[len - 1] != '\n') return -1;
    len--;
    if (len && line[len - 1] == '\r') len--;
    if (memchr(line, '\r', len) || memchr(line, '\n', len)) return -1;
    return (ssize_t)len;
}

int http_parse_request_line(http_request_t *r, const char *line, size_t len) {
    ssize_t n = line_content(line, len);
    if (n < 0) return 400;
    if (len > HTTP_MAX_LINE) return 414;
    r->head_bytes = len;
    r->line_len = (size_t)n;
    size_t keep = (size_t)n < sizeof r->line - 1 ? (size_t)n : sizeof r->line - 1;
    memcpy(r->line, line, keep);
    r->line[keep] = '\0';
    for (size_t i = 0; i < keep; i++) /* the log shows it: nothing that fools a terminal */
        if ((unsigned char)r->line[i] < 0x20 || (unsigned char)r->line[i] >= 0x7f) r->line[i] = '?';

    const char *p = line, *end = line + n;
    const char *sp1 = memchr(p, ' ', (size_t)(end - p));
    if (!sp1 || sp1 == p || sp1 - p > 15) return 400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) return 400;
    size_t mlen = (size_t)(sp1 - p);
    if (mlen == 3 && memcmp(p, "GET", 3) == 0) r->method = HTTP_GET;
    else if (mlen == 4 && memcmp(p, "HEAD", 4) == 0) r->method = HTTP_HEAD;
    else r->method = HTTP_OTHER;

    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t) return 400;
    for (const char *q = t; q < sp2; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= 0x20 || c >= 0x7f) return 400; /* RFC 3986: no controls, no raw non-ASCII */
    }
    memcpy(r->target, t, (size_t)(sp2 - t));
    r->target[sp2 - t] = '\0';

    const char *v = sp2 + 1;
    if (end - v != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) ||
        v[6] != '.' || !is_digit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1') return 505; /* 0.9, 2, 3: not over this syntax */
    r->minor = v[7] == '0' ? 0 : 1;
    return 0;
}

/* Trims optional whitespace (SP, HTAB) from both ends of [*s, *e). */
static void trim_ows(const char **s, const char **e) {
    while (*s < *e && (**s == ' ' || **s == '\t')) (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) (*e)--;
}

static int name_is(const char *name, size_t len, const char *want) {
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Each comma-separated element of [s, e), trimmed, to fn. */
static void each_token(const char *s, const char *e, void (*fn)(http_request_t *, const char *, size_t),
                       http_request_t *r) {
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        const char *ts = s;
        trim_ows(&ts, &te);
        if (te > ts) fn(r, ts, (size_t)(te - ts));
        s = c ? c + 1 : e;
    }
}

static void connection_token(http_request_t *r, const char *t, size_t len) {
    if (name_is(t, len, "close")) r->conn_close = 1;
    else if (name_is(t, len, "keep-alive")) r->conn_keep_alive = 1;
}

static void te_token(http_request_t *r, const char *t, size_t len) {
    /* a coding may carry parameters ("gzip;q=1"): only its name counts */
    const char *semi = memchr(t, ';', len);
    if (semi) len = (size_t)(semi - t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t')) len--;
    r->te_chunked_last = name_is(t, len, "chunked");
}

static int copy_value(char *dst, size_t cap, const char *s, const char *e) {
    size_t len = (size_t)(e - s);
    if (len >= cap) return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

int http_parse_field(http_request_t *r, const char *line, size_t len) {
    ssize_t n = line_content(line, len);
    if (n < 0) return 400;
    if (len > HTTP_MAX_LINE) return 431;
    if (++r->n_headers > HTTP_MAX_HEADERS) return 431;
    r->head_bytes += len;
    if (r->head_bytes > HTTP_MAX_HEAD) return 431;
    if (n == 0) return 400; /* the empty line ends the head: the caller's to see */
    if (line[0] == ' ' || line[0] == '\t') return 400; /* obs-fold */
    const char *end = line + n;
    const char *colon = memchr(line, ':', (size_t)n);
    if (!colon || colon == line) return 400;
    for (const char *q = line; q < colon; q++)
        if (!is_tchar((unsigned char)*q)) return 400; /* includes "Name :" */
    const char *vs = colon + 1, *ve = end;
    for (const char *q = vs; q < ve; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 400;
    }
    trim_ows(&vs, &ve);
    const char *name = line;
    size_t nlen = (size_t)(colon - line);

    if (name_is(name, nlen, "host")) {
        if (r->has_host++) return 400;
    } else if (name_is(name, nlen, "content-length")) {
        if (r->has_length++ || vs == ve || ve - vs > 18) return 400;
        uint64_t v = 0;
        for (const char *q = vs; q < ve; q++) {
            if (!is_digit((unsigned char)*q)) return 400;
            v = v * 10 + (uint64_t)(*q - '0');
        }
        r->content_length = v;
    } else if (name_is(name, nlen, "transfer-encoding")) {
        r->has_te = 1;
        r->te_chunked_last = 0;
        each_token(vs, ve, te_token, r);
    } else if (name_is(name, nlen, "connection")) {
        each_token(vs, ve, connection_token, r);
    } else if (name_is(name, nlen, "range")) {
        /* a second Range is as good as several ranges: ignored */
        if (r->has_range++ || copy_value(r->range, sizeof r->range, vs, ve) < 0)
            r->range_too_long = 1;
    } else if (name_is(name, nlen, "if-modified-since")) {
        char date[64];
        time_t t;
        if (!r->has_ims && copy_value(date, sizeof date, vs, ve) == 0 &&
            http_parse_date(date, &t) == 0) {
            r->has_ims = 1; /* an invalid date is ignored (RFC 9110 §13.1.3) */
            r->if_modified_since = t;
        }
    } else if (name_is(name, nlen, "if-range")) {
        if (r->has_if_range++ || copy_value(r->if_range, sizeof r->if_range, vs, ve) < 0)
            r->if_range[0] = '\0'; /* matches nothing: the range is ignored */
    }
    return 0;
}

int http_request_check(const http_request_t *r) {
    if (r->minor == 1 && !r->has_host) return 400; /* RFC 9112 §3.2 */
    if (r->has_te && r->has_length) return 400;    /* RFC 9112 §6.1: a smuggling shape */
    if (r->has_te && !r->te_chunked_last) return 400; /* RFC 9112 §6.3 */
    if (r->has_te) return 413;
    if (r->has_length && r->content_length > HTTP_MAX_BODY) return 413;
    return 0;
}

int http_keep_alive(const http_request_t *r) {
    if (r->conn_close) return 0;
    return r->minor >= 1 || r->conn_keep_alive;
}

/* ------------------------------------------------------------------------ */
/* Targets                                                                  */
/* ------------------------------------------------------------------------ */

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes one segment [s, e) into seg (cap bytes): its length, or -status. */
static ssize_t decode_segment(const char *s, const char *e, char *seg, size_t cap) {
    size_t len = 0;
    for (const char *p = s; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            int hi = e - p > 2 ? hex_value((unsigned char)p[1]) : -1;
            int lo = hi >= 0 ? hex_value((unsigned char)p[2]) : -1;
            if (lo < 0) return -400;
            c = (unsigned char)(hi * 16 + lo);
            p += 2;
        }
        if (c == '/' || c == '\\') return -403; /* a separator smuggled into a name */
        if (c < 0x20 || c == 0x7f) return -400; /* NUL and friends: no file is called that */
        if (len + 1 >= cap) return -414;
        seg[len++] = (char)c;
    }
    seg[len] = '\0';
    return (ssize_t)len;
}

int http_target_path(const char *target, char *out, size_t cap) {
    if (cap > HTTP_MAX_PATH + 1) cap = HTTP_MAX_PATH + 1;
    const char *p = target;
    if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
        p = strchr(p, ':') + 3; /* absolute-form: the authority goes, the path stays */
        const char *slash = strchr(p, '/');
        if (!slash) {
            if (strpbrk(p, "?#\\")) return strchr(p, '\\') ? 403 : 400;
            p = "/";
        } else {
            p = slash;
        }
    }
    if (*p != '/') return 400;
    if (strchr(p, '#')) return 400; /* a fragment is never sent */
    const char *end = strchr(p, '?');
    if (!end) end = p + strlen(p);
    for (const char *q = p; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c <= 0x20 || c >= 0x7f) return 400;
        if (c == '\\') return 403;
    }
    size_t len = 0;
    out[0] = '\0';
    char seg[HTTP_MAX_PATH + 1];
    while (p < end) {
        p++; /* the '/' */
        const char *s = p;
        while (p < end && *p != '/') p++;
        ssize_t n = decode_segment(s, p, seg, sizeof seg);
        if (n < 0) return (int)-n;
        if (n == 0 || strcmp(seg, ".") == 0) continue;
        if (strcmp(seg, "..") == 0) return 403;
        size_t need = len + (len > 0) + (size_t)n;
        if (need + 1 > cap) return 414;
        if (len > 0) out[len++] = '/';
        memcpy(out + len, seg, (size_t)n + 1);
        len += (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Ranges                                                                   */
/* ------------------------------------------------------------------------ */

/* Digits at *p, saturating at UINT64_MAX: 0, or -1 if there are none. */
static int parse_u64(const char **p, uint64_t *v) {
    const char *s = *p;
    uint64_t x = 0;
    while (is_digit((unsigned char)**p)) {
        unsigned d = (unsigned)(**p - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
        (*p)++;
    }
    *v = x;
    return *p > s ? 0 : -1;
}

int http_parse_range(const char *value, uint64_t size, uint64_t *first, uint64_t *count) {
    const char *p = value;
    const char *eq = strchr(p, '=');
    if (!eq || eq == p) return 416;
    for (const char *q = p; q < eq; q++)
        if (!is_tchar((unsigned char)*q)) return 416;
    if (!name_is(p, (size_t)(eq - p), "bytes")) return 200; /* a unit we do not know */
    p = eq + 1;
    if (strchr(p, ',')) return 200; /* several ranges: the whole resource instead */
    while (*p == ' ' || *p == '\t') p++;
    uint64_t a, b;
    if (*p == '-') {
        p++;
        if (parse_u64(&p, &b) < 0) return 416;
        while (*p == ' ' || *p == '\t') p++;
        if (*p || b == 0 || size == 0) return 416;
        if (b > size) b = size;
        *first = size - b;
        *count = b;
        return 206;
    }
    if (parse_u64(&p, &a) < 0 || *p++ != '-') return 416;
    int has_last = parse_u64(&p, &b) == 0;
    while (*p == ' ' || *p == '\t') p++;
    if (*p) return 416;
    if (has_last && b < a) return 416;
    if (a >= size) return 416;
    if (!has_last || b >= size) b = size - 1;
    *first = a;
    *count = b - a + 1;
    return 206;
}

/* ------------------------------------------------------------------------ */
/* Dates                                                                    */
/* ------------------------------------------------------------------------ */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

static int month_index(const char *m) {
    for (int i = 0; i < 12; i++)
        if (strcmp(m, months[i]) == 0) return i;
    return -1;
}

int http_parse_date(const char *s, time_t *t) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char wday[16], mon[4];
    int day, year, hh, mm, ss, used = -1;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(s, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wday, &day, mon, &year, &hh,
               &mm, &ss, &used) == 7 && used > 0 && s[used] == '\0') {
    } else if (used = -1, sscanf(s, "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", wday, &day,
                                 mon, &year, &hh, &mm, &ss, &used) == 7 && used > 0 &&
               s[used] == '\0') {
        year += year < 70 ? 2000 : 1900; /* RFC 850: two digits */
    } else if (used = -1, sscanf(s, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wday, mon, &day,
                                 &hh, &mm, &ss, &year, &used) == 7 && used > 0 &&
               s[used] == '\0') {
    } else {
        return -1;
    }
    int m = month_index(mon);
    if (m < 0 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900 ||
        hh < 0 || mm < 0 || ss < 0)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = m;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *t = timegm(&tm);
    return 0;
}

void http_format_date(time_t t, char out[30]) {
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof tm);
    char buf[80];
    /* unsigned and bounded, so the compiler can see that 80 bytes suffice */
    snprintf(buf, sizeof buf, "%.3s, %02u %.3s %04u %02u:%02u:%02u GMT", days[(unsigned)tm.tm_wday % 7],
             (unsigned)tm.tm_mday % 100u, months[(unsigned)tm.tm_mon % 12],
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
    memcpy(out, buf, 29);
    out[29] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Words                                                                    */
/* ------------------------------------------------------------------------ */

const char *http_reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

const char *http_mime_type(const char *path) {
    static const struct { const char *ext, *type; } types[] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
        {"js", "text/javascript"},            {"json", "application/json"},
        {"xml", "application/xml"},           {"svg", "image/svg+xml"},
        {"png", "image/png"},                 {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},               {"gif", "image/gif"},
        {"webp", "image/webp"},               {"ico", "image/x-icon"},
        {"pdf", "application/pdf"},           {"wasm", "application/wasm"},
        {"woff2", "font/woff2"},              {"mp4", "video/mp4"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

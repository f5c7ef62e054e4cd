/* h1 — see h1.h. */
#include "http/h1.h"

#include <string.h>
#include <strings.h>

#define LINE_MAX_CHUNKED 4096    /* a chunk-size line with its extensions */
#define TRAILERS_MAX 8192        /* all trailer lines of a chunked body */

/* RFC 9110 tchar: the characters of a token (method, field name), one bit
 * per ASCII character: 0-9, A-Z, a-z and !#$%&'*+-.^_`|~ (test_h1 checks
 * the bits against that list). */
static inline int tchar(unsigned char c)
{
    static const uint64_t below_64 = UINT64_C(0x03ff6cfa00000000), below_128 = UINT64_C(0x57ffffffc7fffffe);
    return c < 64 ? (int)(below_64 >> c & 1) : c < 128 ? (int)(below_128 >> (c - 64) & 1) : 0;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int h1_unescape(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (*p != '%') {
            *w++ = *p;
            continue;
        }
        int hi = hexval((unsigned char)p[1]), lo = hi < 0 ? -1 : hexval((unsigned char)p[2]);
        if (lo < 0 || (hi | lo) == 0)
            return -1;
        *w++ = (char)(hi * 16 + lo);
        p += 2;
    }
    *w = 0;
    return 0;
}

/* Copies src[0..n) to out, decoding '+' and valid %XX escapes other than %00
 * (anything else is kept as sent, for the caller's validation to refuse). */
static void query_decode(const char *src, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n && w + 1 < cap; i++) {
        char c = src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < n) {
            int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi | lo)) {
                c = (char)(hi * 16 + lo);
                i += 2;
            }
        }
        out[w++] = c;
    }
    if (cap)
        out[w] = 0;
}

const char *h1_query(const char *query, const char *name, char *out, size_t cap)
{
    if (!query || !cap)
        return NULL;
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        char key[64];
        query_decode(p, klen, key, sizeof key);
        if (klen < sizeof key && !strcmp(key, name)) {
            if (eq)
                query_decode(eq + 1, len - klen - 1, out, cap);
            else
                out[0] = 0;
            return out;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

const char *h1_header(const struct h1_req *h, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < h->nfields; i++)
        if (h->fields[i].name_len == n && !strcasecmp(h->fields[i].name, name))
            return h->fields[i].value;
    return NULL;
}

/* Whether the comma-separated list v holds token t (case-insensitive). */
static int has_token(const char *v, const char *t)
{
    size_t tl = strlen(t);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && !strncasecmp(v, t, tl))
            return 1;
        v += n;
    }
    return 0;
}

/* The request line, NUL-terminated at its end: "METHOD /target HTTP/1.x". */
static int request_line(struct h1_req *h, char *line)
{
    char *p = line;
    while (tchar((unsigned char)*p))
        p++;
    if (p == line || *p != ' ')
        return H1_BAD;
    *p++ = 0;
    h->method = line;
    char *target = p;
    while ((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '#')
        p++;
    if (p == target || *p != ' ' || *target != '/')
        return H1_BAD;
    *p++ = 0;
    if (strncmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' || p[7] > '9' || p[8])
        return H1_BAD;
    if (p[5] != '1')
        return H1_VERSION;
    h->minor = p[7] - '0';
    char *q = strchr(target, '?');
    if (q) {
        *q = 0;
        h->query = q + 1;
    }
    h->path = target;
    return h1_unescape(target) ? H1_BAD : 0;
}

/* One field line, NUL-terminated at eol. Every character of it is looked
 * at: a NUL or a CR inside it is refused like any other control. */
static int field_line(struct h1_req *h, char *line, char *eol, int *hosts, int *te)
{
    char *p = line;
    while (tchar((unsigned char)*p))
        p++;
    if (p == line || *p != ':')
        return H1_BAD;   /* also obsolete folding: a line that starts with whitespace */
    size_t name_len = (size_t)(p - line);
    *p++ = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    char *v = p, *end = p;
    for (; p < eol; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 && c != '\t')
            return H1_BAD;   /* DEL passes: what a value may hold is the application's to say */
        if (c != ' ' && c != '\t')
            end = p + 1;
    }
    *end = 0;
    if (h->nfields == H1_MAX_FIELDS)
        return H1_TOO_LARGE;
    h->fields[h->nfields++] = (struct h1_field){.name = line, .value = v, .name_len = name_len};

#define IS(name) (name_len == sizeof name - 1 && !strcasecmp(line, name))
    if (IS("content-length")) {
        if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
            return H1_BAD;
        int64_t n = 0;
        for (; *v; v++)
            n = n * 10 + (*v - '0');
        if (h->content_length >= 0 && h->content_length != n)
            return H1_BAD;
        h->content_length = n;
    } else if (IS("transfer-encoding")) {
        if ((*te)++ || strcasecmp(v, "chunked"))
            return H1_NOT_IMPLEMENTED;
        h->chunked = 1;
    } else if (IS("host")) {
        ++*hosts;
    } else if (IS("connection")) {
        if (has_token(v, "close"))
            h->keep_alive = -1;
        else if (has_token(v, "keep-alive") && !h->keep_alive)
            h->keep_alive = 1;
    } else if (IS("expect")) {
        if (strcasecmp(v, "100-continue"))
            return H1_EXPECTATION;
        h->expect_continue = 1;
    }
#undef IS
    return 0;
}

int h1_parse(struct h1_req *h, char *buf, size_t len, size_t max)
{
    if (len > max)
        len = max;
    size_t start = 0;
    while (start < len && (buf[start] == '\r' || buf[start] == '\n'))
        start++;   /* empty lines before a request line are ignored (RFC 9112 2.2) */
    /* The head ends at an empty line: LF LF, or LF CR LF. */
    size_t end = 0;
    for (const char *lf = buf + start; (lf = memchr(lf, '\n', (size_t)(buf + len - lf))); lf++) {
        size_t i = (size_t)(lf - buf);
        if (i + 1 < len && buf[i + 1] == '\n') {
            end = i + 2;
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            end = i + 3;
            break;
        }
    }
    if (!end)
        return len >= max ? H1_TOO_LARGE : H1_PARTIAL;

    memset(h, 0, sizeof *h);
    h->content_length = -1;
    int hosts = 0, te = 0, first = 1;
    char *p = buf + start, *stop = buf + end;
    for (;;) {
        char *lf = memchr(p, '\n', (size_t)(stop - p));
        char *eol = lf;
        if (eol > p && eol[-1] == '\r')
            eol--;
        *eol = 0;
        if (eol == p)
            break;   /* the empty line */
        /* A bare CR or a NUL inside a line fails either: neither is a token
         * character, a target's or a version's, nor allowed in a value. */
        int rc = first ? request_line(h, p) : field_line(h, p, eol, &hosts, &te);
        if (rc)
            return rc;
        first = 0;
        p = lf + 1;
    }
    if (first)
        return H1_BAD;
    if (h->chunked && (h->content_length >= 0 || h->minor == 0))
        return H1_BAD;
    if (hosts > 1 || (h->minor >= 1 && hosts != 1))
        return H1_BAD;
    if (h->minor == 0)
        h->expect_continue = 0;
    h->keep_alive = h->keep_alive < 0 ? 0 : h->minor >= 1 ? 1 : h->keep_alive;
    return (int)end;
}

/* ---- chunked bodies -------------------------------------------------------- */

enum { C_SIZE, C_SIZE_MORE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LINE, C_END_LF,
       C_DONE };

int h1_chunked_done(const struct h1_chunked *st) { return st->state == C_DONE; }

long h1_chunked(struct h1_chunked *st, const char *src, size_t n, char *dst, size_t *out)
{
    size_t i = 0, w = 0;
    while (i < n && st->state != C_DONE) {
        unsigned char c = (unsigned char)src[i];
        switch (st->state) {
        case C_SIZE:
        case C_SIZE_MORE: {
            int v = hexval(c);
            if (v >= 0) {
                if (st->left >> 56)
                    return -1;   /* more than 2^60 - 1 */
                st->left = st->left * 16 + (uint64_t)v;
                st->state = C_SIZE_MORE;
            } else if (st->state == C_SIZE) {
                return -1;
            } else if (c == ';' || c == ' ' || c == '\t') {
                st->state = C_EXT;
            } else if (c == '\r') {
                st->state = C_SIZE_LF;
            } else if (c == '\n') {
                st->state = st->left ? C_DATA : C_TRAILER;
                st->line = 0;
            } else {
                return -1;
            }
            i++;
            break;
        }
        case C_EXT:
            if (++st->line > LINE_MAX_CHUNKED)
                return -1;
            if (c == '\n') {
                st->state = st->left ? C_DATA : C_TRAILER;
                st->line = 0;
            } else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
                return -1;
            }
            i++;
            break;
        case C_SIZE_LF:
            if (c != '\n')
                return -1;
            st->state = st->left ? C_DATA : C_TRAILER;
            st->line = 0;
            i++;
            break;
        case C_DATA: {
            size_t take = n - i;
            if (take > st->left)
                take = (size_t)st->left;
            memmove(dst + w, src + i, take);
            w += take;
            i += take;
            st->left -= take;
            if (!st->left)
                st->state = C_DATA_CR;
            break;
        }
        case C_DATA_CR:
            if (c == '\r')
                st->state = C_DATA_LF;
            else if (c == '\n')
                st->state = C_SIZE;
            else
                return -1;
            i++;
            break;
        case C_DATA_LF:
            if (c != '\n')
                return -1;
            st->state = C_SIZE;
            i++;
            break;
        case C_TRAILER:
            if (c == '\r') {
                st->state = C_END_LF;
            } else if (c == '\n') {
                st->state = C_DONE;
            } else {
                st->state = C_TRAILER_LINE;
                continue;
            }
            i++;
            break;
        case C_TRAILER_LINE:
            if (++st->line > TRAILERS_MAX || (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
                return -1;
            if (c == '\n')
                st->state = C_TRAILER;
            i++;
            break;
        case C_END_LF:
            if (c != '\n')
                return -1;
            st->state = C_DONE;
            i++;
            break;
        }
    }
    *out = w;
    return (long)i;
}

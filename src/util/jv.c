/* jv — JSON into an arena (see jv.h). */
#include "util/jv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/arena.h"
#include "util/err.h"
#include "util/text.h"

#define PAIRWISE_MAX 16   /* objects up to this size check duplicate names pairwise */

struct jp {
    struct arena *a;
    const unsigned char *p, *end;
    int depth;
};

static void skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int literal(struct jp *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
        return -1;
    j->p += n;
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80)
        return o[0] = (unsigned char)cp, 1;
    if (cp < 0x800)
        return o[0] = (unsigned char)(0xc0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string, the opening quote already consumed. The decoded text is never
 * longer than its source, so one allocation of the source's length holds it. */
static int string(struct jp *j, const char **out, size_t *out_len)
{
    const unsigned char *start = j->p, *q = start;
    while (q < j->end && *q != '"' && *q != '\\' && *q >= 0x20 && *q < 0x80)
        q++;
    if (q < j->end && *q == '"') {   /* plain ASCII: the common case, copied as is */
        *out = arena_strndup(j->a, (const char *)start, (size_t)(q - start));
        *out_len = (size_t)(q - start);
        j->p = q + 1;
        return 0;
    }
    const unsigned char *close = q;
    while (close < j->end && *close != '"')
        close += *close == '\\' && close + 1 < j->end ? 2 : 1;
    unsigned char *buf = arena_alloc(j->a, (size_t)(close - start) + 1), *o = buf;
    memcpy(o, start, (size_t)(q - start));
    o += q - start;
    for (const unsigned char *p = q;;) {
        if (p >= j->end)
            return ERR_INVALID_JSON;
        unsigned c = *p;
        if (c == '"') {
            *o = 0;
            *out = (const char *)buf;
            *out_len = (size_t)(o - buf);
            j->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            return ERR_INVALID_JSON;
        if (c >= 0x80) {
            size_t n = text_utf8_len(p, j->end);
            if (!n)
                return ERR_INVALID_JSON;
            memcpy(o, p, n);
            o += n, p += n;
            continue;
        }
        if (c != '\\') {
            *o++ = (unsigned char)c, p++;
            continue;
        }
        if (j->end - p < 2)
            return ERR_INVALID_JSON;
        unsigned e = p[1], cp;
        p += 2;
        switch (e) {
        case '"': case '\\': case '/': *o++ = (unsigned char)e; continue;
        case 'b': *o++ = '\b'; continue;
        case 'f': *o++ = '\f'; continue;
        case 'n': *o++ = '\n'; continue;
        case 'r': *o++ = '\r'; continue;
        case 't': *o++ = '\t'; continue;
        case 'u': break;
        default: return ERR_INVALID_JSON;
        }
        if (j->end - p < 4 || hex4(p, &cp))
            return ERR_INVALID_JSON;
        p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return ERR_INVALID_JSON;   /* a low surrogate first */
        if (cp >= 0xd800 && cp <= 0xdbff) {
            unsigned lo;
            if (j->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return ERR_INVALID_JSON;
            p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (!cp)
            return ERR_INVALID_JSON;   /* U+0000 (jansson: only with JSON_ALLOW_NUL) */
        o += put_utf8(o, cp);   /* 6 or 12 source bytes make at most 4 */
    }
}

static int number(struct jp *j, struct jv *v)
{
    const unsigned char *s = j->p, *p = s;
    int neg = p < j->end && *p == '-', real = 0;
    p += neg;
    if (p >= j->end || *p < '0' || *p > '9')
        return ERR_INVALID_JSON;
    if (*p == '0')
        p++;
    else
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    if (p < j->end && *p == '.') {
        real = 1, p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return ERR_INVALID_JSON;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        real = 1, p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return ERR_INVALID_JSON;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    if (real) {   /* strtod needs a terminated copy; the C locale reads '.' */
        char *copy = arena_strndup(j->a, (const char *)s, (size_t)(p - s));
        v->kind = JV_REAL;
        v->d = strtod(copy, NULL);
        return isinf(v->d) ? ERR_INVALID_JSON : 0;
    }
    /* Accumulated as a negative number, whose range is the wider one. */
    int64_t acc = 0;
    for (const unsigned char *d = s + neg; d < p; d++) {
        int digit = *d - '0';
        if (acc < (INT64_MIN + digit) / 10)
            return ERR_INVALID_JSON;
        acc = acc * 10 - digit;
    }
    if (!neg && acc == INT64_MIN)
        return ERR_INVALID_JSON;
    v->kind = JV_INT;
    v->i = neg ? acc : -acc;
    return 0;
}

static int key_cmp(const void *x, const void *y)
{
    const struct jv *a = *(const struct jv *const *)x, *b = *(const struct jv *const *)y;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static int same_key(const struct jv *a, const struct jv *b)
{
    return a->key_len == b->key_len && !memcmp(a->key, b->key, a->key_len);
}

static int has_duplicates(struct jp *j, struct jv *o)
{
    if (o->len <= PAIRWISE_MAX) {
        for (const struct jv *m = o->first; m; m = m->next)
            for (const struct jv *n = m->next; n; n = n->next)
                if (same_key(m, n))
                    return 1;
        return 0;
    }
    struct jv **by_name = arena_alloc(j->a, o->len * sizeof *by_name);
    size_t i = 0;
    for (struct jv *m = o->first; m; m = m->next)
        by_name[i++] = m;
    qsort(by_name, o->len, sizeof *by_name, key_cmp);
    for (i = 1; i < o->len; i++)
        if (same_key(by_name[i - 1], by_name[i]))
            return 1;
    return 0;
}

static int value(struct jp *j, struct jv *v);

/* An array or an object, its opening bracket already consumed. */
static int container(struct jp *j, struct jv *v, int object)
{
    unsigned char close = object ? '}' : ']';
    struct jv **tail = &v->first;
    v->kind = object ? JV_OBJECT : JV_ARRAY;
    if (++j->depth > JV_MAX_DEPTH)
        return ERR_INVALID_JSON;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++, j->depth--;
        return 0;
    }
    for (;;) {
        struct jv *m = arena_alloc(j->a, sizeof *m);
        if (object) {
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != '"' || string(j, &m->key, &m->key_len))
                return ERR_INVALID_JSON;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return ERR_INVALID_JSON;
        }
        int rc = value(j, m);
        if (rc)
            return rc;
        *tail = m, tail = &m->next, v->len++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close)
            break;
        return ERR_INVALID_JSON;
    }
    j->p++, j->depth--;
    return object && has_duplicates(j, v) ? ERR_INVALID_JSON : 0;
}

static int value(struct jp *j, struct jv *v)
{
    skip_ws(j);
    if (j->p >= j->end)
        return ERR_INVALID_JSON;
    switch (*j->p) {
    case '{': j->p++; return container(j, v, 1);
    case '[': j->p++; return container(j, v, 0);
    case '"': j->p++; v->kind = JV_STRING; return string(j, &v->s, &v->len);
    case 't': v->kind = JV_BOOL, v->b = 1; return literal(j, "true") ? ERR_INVALID_JSON : 0;
    case 'f': v->kind = JV_BOOL, v->b = 0; return literal(j, "false") ? ERR_INVALID_JSON : 0;
    case 'n': v->kind = JV_NULL; return literal(j, "null") ? ERR_INVALID_JSON : 0;
    default: return number(j, v);
    }
}

int jv_parse(struct arena *a, const char *text, size_t len, struct jv **out)
{
    struct jp j = {a, (const unsigned char *)text, (const unsigned char *)text + len, 0};
    struct jv *v = arena_alloc(a, sizeof *v);
    *out = NULL;
    int rc = value(&j, v);
    skip_ws(&j);
    if (rc || j.p != j.end)
        return ERR_INVALID_JSON;
    *out = v;
    return 0;
}

const struct jv *jv_get(const struct jv *o, const char *key)
{
    if (!o || o->kind != JV_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const struct jv *m = o->first; m; m = m->next)
        if (m->key_len == n && !memcmp(m->key, key, n))
            return m;
    return NULL;
}

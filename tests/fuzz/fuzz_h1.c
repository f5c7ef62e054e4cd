/* fuzz_h1 — the HTTP/1.1 parser alone (src/http/h1.c): h1_parse, h1_header,
 * h1_query, h1_unescape and the chunked decoder, with no server.
 *
 * Input: byte 0 chooses (bits 0-1) the head cap passed to h1_parse: the input's
 * length, more, less, or 16384; (bit 2) chunked-only mode, where the rest is a
 * chunked body with no head; (bit 3) decoding the bytes after a head as chunked
 * even when it does not say so. Byte 1 seeds the piece sizes of the
 * incremental decoding. The rest is the request.
 *
 * Properties checked, beyond "no crash, no leak, no UB" (each buffer has the
 * exact size of its bytes, so a read past the end is an ASan report):
 *  - h1_parse returns PARTIAL (buffer untouched) only under the cap, 431 only
 *    at the cap or past 64 fields, and otherwise a head length <= len and
 *    <= max ending at an empty line; the bytes after it are untouched; the
 *    same head alone with max = its length parses to the same length, and one
 *    byte less is PARTIAL;
 *  - method, path, query, field names and values are NUL-terminated inside
 *    the head; the method and names are tokens, values trimmed and free of
 *    controls but HTAB; the path is the raw target decoded, the query raw;
 *  - content_length, chunked, keep_alive, expect_continue and the Host rule
 *    agree with the fields, as h1.h says; h1_header finds the first field of a
 *    name in any case;
 *  - h1_query agrees with a reference (decoded names, '+', %XX but %00,
 *    truncation to cap, nothing written past it); h1_unescape too;
 *  - h1_chunked gives the same result whole, one byte at a time and in random
 *    pieces, in place (dst == src) or not; it takes all its input but when the
 *    body ended, writes nothing past what it reports nor over input it has not
 *    consumed; it agrees with a reference decoder on bodies of a strict subset
 *    of the grammar, and refuses what no body may hold.
 */
#include <strings.h>

#include "fuzz.h"
#include "http/h1.h"

static int tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hex(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* ---- references -------------------------------------------------------------- */

/* RFC 3986 percent-decoding, refusing %00: -1, or the length written to out. */
static long ref_unescape(const char *s, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[w++] = s[i];
            continue;
        }
        if (i + 2 >= n)
            return -1;
        int hi = hex((unsigned char)s[i + 1]), lo = hex((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -1;
        out[w++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return (long)w;
}

/* Form decoding: '+' is a space, valid %XX but %00 a byte, anything else as sent. */
static size_t ref_form(const char *s, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = i + 2 < n ? hex((unsigned char)s[i + 1]) : -1, lo = i + 2 < n ? hex((unsigned char)s[i + 2]) : -1;
        if (s[i] == '+') {
            out[w++] = ' ';
        } else if (s[i] == '%' && hi >= 0 && lo >= 0 && (hi || lo)) {
            out[w++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = s[i];
        }
    }
    return w;
}

/* The value h1_query should give: 1 and *want (full length wl) when present. */
static int ref_query(const char *q, const char *name, char *want, size_t *wl)
{
    char key[64];
    for (const char *p = q; *p;) {   /* no pair after a last '&' */
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        size_t kl = klen < 64 ? ref_form(p, klen, key) : 0;   /* longer names never match */
        if (klen < 64 && kl == strlen(name) && !memcmp(key, name, kl)) {
            *wl = eq ? ref_form(eq + 1, len - klen - 1, want) : 0;
            return 1;
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

/* Whether comma-separated v holds token t, as RFC 9110 lists are read. */
static int ref_token(const char *v, const char *t)
{
    for (const char *p = v;;) {
        size_t len = strcspn(p, ",");
        const char *a = p, *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == strlen(t) && !strncasecmp(a, t, strlen(t)))
            return 1;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

enum { REF_DONE, REF_MORE, REF_BAD, REF_OTHER };

/* The chunked grammar of RFC 9112 7.1, CRLF or a bare LF ending each line:
 * REF_DONE with *used for a body whose size lines are hex digits (a value
 * below 2^60) with an optional ";ext" of visible bytes and HTAB (< 200), and
 * whose trailer lines hold visible bytes and HTAB (< 2000 in all); REF_MORE
 * when the input ends inside such a body; REF_BAD at the first byte no body
 * may have there (a size that is not hex or too large, a control byte, data
 * not followed by a line end, CR without LF after a size, data or the
 * trailers); REF_OTHER when it leaves the strict subset for what the decoder
 * may tolerate (whitespace before an extension, a bare CR inside an
 * extension or a trailer, long extensions or trailers). *outn: the data
 * bytes before the end or stop. */
static int ref_chunked(const unsigned char *s, size_t n, unsigned char *out, size_t *outn, size_t *used)
{
    size_t i = 0, w = 0, trailers = 0;
#define STOP(r) return *outn = w, (r)
#define NEED(k)              \
    do {                     \
        if (i + (k) > n)     \
            STOP(REF_MORE);  \
    } while (0)
/* at a CR or LF: a line end; a CR without LF is `bare` */
#define EOL(bare)                  \
    do {                           \
        if (s[i] == '\r') {        \
            i++;                   \
            NEED(1);               \
            if (s[i] != '\n')      \
                STOP(bare);        \
        }                          \
        i++;                       \
    } while (0)
#define CTL(c) (((c) < 0x20 && (c) != '\t') || (c) == 0x7f)
    for (;;) {
        uint64_t size = 0;
        int digits = 0;
        for (;; i++, digits++) {
            NEED(1);
            if (hex(s[i]) < 0)
                break;
            if (size >> 56)
                STOP(REF_BAD);   /* 2^60 or more */
            size = size * 16 + (uint64_t)hex(s[i]);
        }
        if (!digits)
            STOP(REF_BAD);
        if (s[i] == ';') {
            for (size_t ext = 0;; ext++) {
                i++;
                NEED(1);
                if (s[i] == '\r' || s[i] == '\n')
                    break;
                if (CTL(s[i]))
                    STOP(REF_BAD);
                if (ext >= 200)
                    STOP(REF_OTHER);
            }
            EOL(REF_OTHER);   /* a bare CR in an extension may pass as one of its bytes */
        } else if (s[i] == '\r' || s[i] == '\n') {
            EOL(REF_BAD);
        } else {
            STOP(s[i] == ' ' || s[i] == '\t' ? REF_OTHER : REF_BAD);
        }
        if (!size)
            break;
        for (; size; size--) {
            NEED(1);
            out[w++] = s[i++];
        }
        NEED(1);
        if (s[i] != '\r' && s[i] != '\n')
            STOP(REF_BAD);
        EOL(REF_BAD);
    }
    for (;;) {
        NEED(1);
        if (s[i] == '\r' || s[i] == '\n') {
            EOL(REF_BAD);
            *used = i;
            STOP(REF_DONE);
        }
        for (;; i++) {
            NEED(1);
            if (s[i] == '\r' || s[i] == '\n')
                break;
            if (CTL(s[i]))
                STOP(REF_BAD);
            if (++trailers >= 2000)
                STOP(REF_OTHER);
        }
        EOL(REF_OTHER);   /* a bare CR in a trailer line may pass too */
    }
#undef CTL
#undef EOL
#undef NEED
#undef STOP
}

/* ---- chunked ----------------------------------------------------------------- */

struct dec {
    long rc;          /* -1, or the input consumed */
    int done;
    size_t outn;
};

static uint32_t rng;

static size_t next_piece(void)
{
    rng = rng * 1103515245u + 12345u;
    uint32_t r = rng >> 16;
    return r % 4 ? r % 9 + 1 : r % 300 + 1;   /* mostly short, sometimes long */
}

/* Decodes src[0..n) in place, piece by piece: mode 0 whole, 1 byte by byte,
 * 2 random pieces. The output lands at the front of a copy (returned in *out). */
static struct dec decode_in_place(const unsigned char *src, size_t n, int mode, unsigned char **out)
{
    unsigned char *b = malloc(n ? n : 1);
    if (!b)
        abort();
    memcpy(b, src, n);
    struct h1_chunked st = {0};
    size_t r = 0, w = 0;
    struct dec d = {0};
    while (r < n && !h1_chunked_done(&st)) {
        size_t want = mode == 0 ? n - r : mode == 1 ? 1 : next_piece();
        if (want > n - r)
            want = n - r;
        size_t o = (size_t)-1;
        long rc = h1_chunked(&st, (char *)b + r, want, (char *)b + w, &o);
        if (rc < 0) {
            d.rc = -1;
            break;
        }
        FUZZ_CHECK((size_t)rc <= want, "consumed %ld of %zu", rc, want);
        FUZZ_CHECK(o <= (size_t)rc, "wrote %zu for %ld consumed", o, rc);
        FUZZ_CHECK((size_t)rc == want || h1_chunked_done(&st), "took %ld of %zu and is not done", rc, want);
        r += (size_t)rc;
        w += o;
    }
    if (d.rc == 0) {
        /* what was not consumed is as it came */
        FUZZ_CHECK(!memcmp(b + r, src + r, n - r), "input past offset %zu changed", r);
        d.rc = (long)r;
        d.done = h1_chunked_done(&st);
        d.outn = w;
        if (d.done) {   /* once done, nothing more is taken */
            size_t o = 7;
            FUZZ_CHECK(h1_chunked(&st, (char *)b + r, n - r, (char *)b + w, &o) == 0 && o == 0,
                       "took input after the end");
        }
    }
    *out = b;
    return d;
}

static void check_chunked(const unsigned char *src, size_t n, uint8_t seed)
{
    /* Whole, into a separate buffer whose tail must keep its canary. */
    size_t cap = n + 16;
    unsigned char *dst = malloc(cap);
    if (!dst)
        abort();
    memset(dst, 0xA5, cap);
    struct h1_chunked st = {0};
    size_t o = (size_t)-1;
    long rc = h1_chunked(&st, (const char *)src, n, (char *)dst, &o);
    struct dec whole = {.rc = rc < 0 ? -1 : rc, .done = rc >= 0 && h1_chunked_done(&st), .outn = rc >= 0 ? o : 0};
    if (rc >= 0) {
        FUZZ_CHECK((size_t)rc <= n && o <= (size_t)rc, "consumed %ld, wrote %zu of %zu", rc, o, n);
        FUZZ_CHECK((size_t)rc == n || whole.done, "took %ld of %zu and is not done", rc, n);
        for (size_t i = o; i < cap; i++)
            FUZZ_CHECK(dst[i] == 0xA5, "wrote at %zu past its output of %zu", i, o);
    }

    /* The same in place, whole, byte by byte (short bodies) and in pieces. */
    rng = seed * 2654435761u + 1;
    for (int mode = 0; mode < 3; mode++) {
        if (mode == 1 && n > 4096)
            continue;
        unsigned char *b;
        struct dec d = decode_in_place(src, n, mode, &b);
        FUZZ_CHECK(d.rc == whole.rc && d.done == whole.done && d.outn == whole.outn,
                   "mode %d: rc %ld done %d out %zu, whole: rc %ld done %d out %zu", mode, d.rc, d.done, d.outn,
                   whole.rc, whole.done, whole.outn);
        if (d.rc >= 0)
            FUZZ_CHECK(!memcmp(b, dst, d.outn), "mode %d decoded other bytes", mode);
        free(b);
    }

    /* A body in the strict subset: as the reference decodes it. */
    unsigned char *ref = malloc(n ? n : 1);
    if (!ref)
        abort();
    size_t refn = 0, used = 0;
    int r = ref_chunked(src, n, ref, &refn, &used);
    if (r == REF_DONE)
        FUZZ_CHECK(whole.rc == (long)used && whole.done && whole.outn == refn && !memcmp(dst, ref, refn),
                   "valid body of %zu bytes (%zu data): rc %ld done %d out %zu", used, refn, whole.rc, whole.done,
                   whole.outn);
    else if (r == REF_MORE)
        FUZZ_CHECK(whole.rc == (long)n && !whole.done && whole.outn == refn && !memcmp(dst, ref, refn),
                   "a valid prefix of %zu bytes (%zu data): rc %ld done %d out %zu", n, refn, whole.rc, whole.done,
                   whole.outn);
    else if (r == REF_BAD)
        FUZZ_CHECK(whole.rc == -1, "a malformed body (%zu data bytes before the fault) accepted: rc %ld done %d",
                   refn, whole.rc, whole.done);
    free(ref);
    free(dst);
}

/* ---- query and unescape ------------------------------------------------------ */

static void check_query_name(const char *q, const char *name)
{
    static const size_t caps[] = {1, 2, 5, 64, 4096};
    char *want = malloc(strlen(q) + 1);
    if (!want)
        abort();
    size_t wl = 0;
    int present = ref_query(q, name, want, &wl);
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        size_t cap = caps[c];
        char *out = malloc(cap + 8);
        if (!out)
            abort();
        memset(out, 0x5A, cap + 8);
        const char *got = h1_query(q, name, out, cap);
        FUZZ_CHECK(!got == !present, "h1_query(\"%s\", \"%s\") present %d, reference %d", q, name, !!got, present);
        if (got) {
            size_t n = wl < cap - 1 ? wl : cap - 1;
            FUZZ_CHECK(got == out && out[n] == 0 && !memcmp(out, want, n),
                       "h1_query(\"%s\", \"%s\", cap %zu) = \"%s\"", q, name, cap, got);
            for (size_t i = cap; i < cap + 8; i++)
                FUZZ_CHECK(out[i] == 0x5A, "h1_query wrote past cap %zu", cap);
        }
        free(out);
    }
    FUZZ_CHECK(!h1_query(q, name, want, 0), "h1_query with cap 0");
    free(want);
}

static void check_query(const char *q)
{
    check_query_name(q, "");
    check_query_name(q, "a");
    /* the first few names as they decode, and the first raw */
    char name[128];
    const char *p = q;
    for (int k = 0; k < 4; k++) {
        size_t len = strcspn(p, "&=");
        if (len < 64) {
            name[ref_form(p, len, name)] = 0;
            check_query_name(q, name);
            if (!k) {
                memcpy(name, p, len);
                name[len] = 0;
                check_query_name(q, name);
            }
        }
        p += strcspn(p, "&");
        if (!*p)
            break;
        p++;
    }
}

static void check_unescape(const char *s)
{
    size_t n = strlen(s);
    char *copy = fuzz_strndup((const uint8_t *)s, n), *want = malloc(n + 1);
    if (!want)
        abort();
    long wl = ref_unescape(s, n, want);
    int rc = h1_unescape(copy);
    FUZZ_CHECK((rc == 0) == (wl >= 0), "h1_unescape(\"%s\") = %d", s, rc);
    if (!rc)
        FUZZ_CHECK(strlen(copy) == (size_t)wl && !memcmp(copy, want, (size_t)wl), "h1_unescape(\"%s\") = \"%s\"", s,
                   copy);
    free(copy);
    free(want);
}

/* ---- heads ------------------------------------------------------------------- */

/* s lies in [lo, hi) and is NUL-terminated there. */
static void check_str(const char *s, const char *lo, const char *hi, const char *what)
{
    FUZZ_CHECK(s >= lo && s < hi, "%s points outside the head", what);
    FUZZ_CHECK(memchr(s, 0, (size_t)(hi - s)), "%s is not NUL-terminated inside the head", what);
}

static void check_head(const struct h1_req *h, const char *buf, const uint8_t *orig, int rc)
{
    const char *end = buf + rc;
    /* the head ends at an empty line */
    FUZZ_CHECK(rc >= 2 && orig[rc - 1] == '\n' &&
                   (orig[rc - 2] == '\n' || (rc >= 3 && orig[rc - 2] == '\r' && orig[rc - 3] == '\n')),
               "a head of %d bytes that does not end with an empty line", rc);

    check_str(h->method, buf, end, "method");
    size_t ml = strlen(h->method);
    FUZZ_CHECK(ml > 0, "empty method");
    for (size_t i = 0; i < ml; i++)
        FUZZ_CHECK(tchar((unsigned char)h->method[i]), "method '%s' is not a token", h->method);
    size_t moff = (size_t)(h->method - buf);
    FUZZ_CHECK(!memcmp(orig + moff, h->method, ml) && orig[moff + ml] == ' ', "method is not as sent");

    /* the path: the raw target up to '?' or ' ', decoded */
    check_str(h->path, buf, end, "path");
    FUZZ_CHECK(h->path[0] == '/', "path '%s'", h->path);
    size_t poff = (size_t)(h->path - buf), praw = 0;
    FUZZ_CHECK(poff == moff + ml + 1, "the target does not follow the method");
    while (orig[poff + praw] != '?' && orig[poff + praw] != ' ')
        praw++;
    char *dec = malloc(praw + 1);
    if (!dec)
        abort();
    long dl = ref_unescape((const char *)orig + poff, praw, dec);
    FUZZ_CHECK(dl >= 0 && (size_t)dl == strlen(h->path) && !memcmp(dec, h->path, (size_t)dl),
               "path '%s' is not the target decoded", h->path);
    free(dec);
    if (h->query) {
        check_str(h->query, buf, end, "query");
        size_t qoff = (size_t)(h->query - buf), ql = strlen(h->query);
        FUZZ_CHECK(qoff == poff + praw + 1 && orig[qoff - 1] == '?', "query is not after the first '?'");
        FUZZ_CHECK(!memcmp(orig + qoff, h->query, ql) && orig[qoff + ql] == ' ', "query is not raw");
    } else {
        FUZZ_CHECK(orig[poff + praw] == ' ', "a '?' but no query");
    }
    FUZZ_CHECK(h->minor >= 0 && h->minor <= 9, "minor %d", h->minor);

    FUZZ_CHECK(h->nfields >= 0 && h->nfields <= H1_MAX_FIELDS, "%d fields", h->nfields);
    int hosts = 0, cls = 0, tes = 0, expects = 0, closes = 0, ka = 0;
    for (int i = 0; i < h->nfields; i++) {
        const char *n = h->fields[i].name, *v = h->fields[i].value;
        check_str(n, buf, end, "field name");
        check_str(v, buf, end, "field value");
        size_t nl = strlen(n), vl = strlen(v);
        FUZZ_CHECK(nl > 0, "an empty field name");
        for (size_t k = 0; k < nl; k++)
            FUZZ_CHECK(tchar((unsigned char)n[k]), "field name '%s' is not a token", n);
        for (size_t k = 0; k < vl; k++)
            FUZZ_CHECK((unsigned char)v[k] >= 0x20 || v[k] == '\t', "a control in the value of %s", n);
        FUZZ_CHECK(!vl || (v[0] != ' ' && v[0] != '\t' && v[vl - 1] != ' ' && v[vl - 1] != '\t'),
                   "the value of %s is not trimmed", n);
        /* h1_header: the first of that name, in any case */
        int first = i;
        for (int j = 0; j < i; j++)
            if (!strcasecmp(h->fields[j].name, n)) {
                first = j;
                break;
            }
        FUZZ_CHECK(h1_header(h, n) == h->fields[first].value, "h1_header(%s) is not its first field", n);
        char upper[256];
        if (nl < sizeof upper) {
            for (size_t k = 0; k <= nl; k++)
                upper[k] = (char)(n[k] >= 'a' && n[k] <= 'z' ? n[k] - 32 : n[k]);
            FUZZ_CHECK(h1_header(h, upper) == h->fields[first].value, "h1_header(%s) depends on case", upper);
        }
        if (!strcasecmp(n, "host")) {
            hosts++;
        } else if (!strcasecmp(n, "content-length")) {
            cls++;
            FUZZ_CHECK(vl >= 1 && vl <= 18 && strspn(v, "0123456789") == vl && strtoll(v, NULL, 10) == h->content_length,
                       "Content-Length '%s' but content_length %lld", v, (long long)h->content_length);
        } else if (!strcasecmp(n, "transfer-encoding")) {
            tes++;
            FUZZ_CHECK(!strcasecmp(v, "chunked"), "Transfer-Encoding '%s' accepted", v);
        } else if (!strcasecmp(n, "expect")) {
            expects++;
            FUZZ_CHECK(!strcasecmp(v, "100-continue"), "Expect '%s' accepted", v);
        } else if (!strcasecmp(n, "connection")) {
            closes |= ref_token(v, "close");
            ka |= ref_token(v, "keep-alive");
        }
    }
    FUZZ_CHECK(!h1_header(h, "x-not-sent\x01"), "h1_header found a name no field has");
    FUZZ_CHECK(h->minor >= 1 ? hosts == 1 : hosts <= 1, "HTTP/1.%d with %d Host fields", h->minor, hosts);
    FUZZ_CHECK((h->content_length >= 0) == (cls > 0), "content_length %lld with %d fields",
               (long long)h->content_length, cls);
    FUZZ_CHECK(h->chunked == (tes == 1) && tes <= 1, "chunked %d with %d Transfer-Encoding fields", h->chunked, tes);
    FUZZ_CHECK(!h->chunked || (h->content_length < 0 && h->minor >= 1), "chunked with a length or in 1.0");
    FUZZ_CHECK(h->expect_continue == (expects > 0 && h->minor >= 1), "expect_continue %d", h->expect_continue);
    int keep = closes ? 0 : h->minor >= 1 ? 1 : ka;
    FUZZ_CHECK(h->keep_alive == keep, "keep_alive %d, reference %d", h->keep_alive, keep);
}

static int parse_copy(const uint8_t *orig, size_t len, size_t max, struct h1_req *h)
{
    char *b = malloc(len ? len : 1);
    if (!b)
        abort();
    memcpy(b, orig, len);
    int rc = h1_parse(h, b, len, max);
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t mode = fz_u8(&f), seed = fz_u8(&f);
    const uint8_t *in;
    size_t len = fz_rest(&f, &in);

    /* h1_unescape and h1_query on the input as a string */
    size_t sl = len < 1024 ? len : 1024;
    const uint8_t *nul = memchr(in, 0, sl);
    char *s = fuzz_strndup(in, nul ? (size_t)(nul - in) : sl);
    check_unescape(s);
    check_query(s);
    free(s);

    if (mode & 4) {
        check_chunked(in, len, seed);
        return 0;
    }

    size_t max = (mode & 3) == 0 ? len : (mode & 3) == 1 ? len + 1 + seed : (mode & 3) == 2 ? len * seed / 256 + 1 : 16384;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        abort();
    memcpy(buf, in, len);
    static struct h1_req h;
    memset(&h, 0x5A, sizeof h);
    int rc = h1_parse(&h, buf, len, max);
    size_t seen = len < max ? len : max;
    if (rc == H1_PARTIAL) {
        FUZZ_CHECK(len < max, "PARTIAL with %zu bytes at a cap of %zu", len, max);
        FUZZ_CHECK(!memcmp(buf, in, len), "PARTIAL changed the buffer");
    } else if (rc == H1_TOO_LARGE) {
        size_t lines = 0;
        for (size_t i = 0; i < seen; i++)
            lines += in[i] == '\n';
        FUZZ_CHECK(len >= max || lines > H1_MAX_FIELDS + 1, "431 for %zu bytes under a cap of %zu, %zu lines", len, max,
                   lines);
    } else if (rc < 0) {
        FUZZ_CHECK(rc == H1_BAD || rc == H1_EXPECTATION || rc == H1_NOT_IMPLEMENTED || rc == H1_VERSION,
                   "h1_parse returned %d", rc);
    } else {
        FUZZ_CHECK((size_t)rc <= seen, "a head of %d bytes in %zu (cap %zu)", rc, len, max);
        FUZZ_CHECK(!memcmp(buf + rc, in + rc, len - (size_t)rc), "bytes after the head changed");
        check_head(&h, buf, in, rc);
        if (h.query)
            check_query(h.query);
        /* The head alone, in a buffer of its size and with the cap at it; one byte less. */
        struct h1_req h2;
        FUZZ_CHECK(parse_copy(in, (size_t)rc, (size_t)rc, &h2) == rc, "the head alone parses differently");
        FUZZ_CHECK(h2.nfields == h.nfields && h2.content_length == h.content_length && h2.keep_alive == h.keep_alive,
                   "the head alone reads differently");
        FUZZ_CHECK(parse_copy(in, (size_t)rc - 1, max, &h2) == H1_PARTIAL, "a head less its last byte is not PARTIAL");
        if (h.chunked || (mode & 8))
            check_chunked(in + rc, len - (size_t)rc, seed);
    }
    free(buf);
    return 0;
}

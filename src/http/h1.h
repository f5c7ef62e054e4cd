/* h1 — HTTP/1.1 request heads and chunked bodies (RFC 9112), parsed in place.
 *
 * Pure: no I/O and no allocation. net.c feeds it what it reads from a socket;
 * fuzz_h1.c feeds it anything. The parser NUL-terminates the method, path,
 * query, field names and values inside the caller's buffer, so what it points
 * to lives as long as that buffer.
 *
 * Strict where leniency smuggles requests: a field name followed by
 * whitespace, obsolete line folding, Content-Length with Transfer-Encoding,
 * Content-Lengths that disagree, a transfer coding other than chunked, and any
 * C0 control character but HTAB in a value are refused. A bare LF ends a line as
 * CRLF does.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define H1_MAX_FIELDS 64

/* Errors are negative HTTP statuses, so a caller answers -rc. */
enum {
    H1_PARTIAL = 0,            /* the head is not complete yet */
    H1_BAD = -400,
    H1_EXPECTATION = -417,     /* an Expect other than 100-continue */
    H1_TOO_LARGE = -431,       /* the head did not fit in max bytes, or too many fields */
    H1_NOT_IMPLEMENTED = -501, /* a transfer coding other than chunked */
    H1_VERSION = -505,         /* not HTTP/1.0 or HTTP/1.1 */
};

struct h1_field {
    const char *name, *value;  /* value without surrounding whitespace */
    size_t name_len;
};

struct h1_req {
    const char *method;
    char *path;                /* percent-decoded; "/v1/sims/1" */
    const char *query;         /* raw, after '?'; NULL when the target has none */
    int minor;                 /* HTTP/1.minor */
    int nfields;
    struct h1_field fields[H1_MAX_FIELDS];
    int64_t content_length;    /* -1: none was sent */
    int chunked;
    int keep_alive;            /* by version and Connection */
    int expect_continue;
};

/* Parses the head at the start of buf[0..len). Returns its length (> 0) once
 * its empty line has arrived, H1_PARTIAL while it may still (len < max), or an
 * error. On success buf is modified in place and h points into it. */
int h1_parse(struct h1_req *h, char *buf, size_t len, size_t max);

/* The value of the first field named name (case-insensitive), or NULL. */
const char *h1_header(const struct h1_req *h, const char *name);

/* The percent- and '+'-decoded value of the query argument name, written to
 * out (NUL-terminated, truncated to cap); NULL when absent. "a" in "?a&b=1" is
 * present with an empty value. An escape that is not valid, and %00, are kept
 * as sent, for the caller's validation to refuse. */
const char *h1_query(const char *query, const char *name, char *out, size_t cap);

/* Decodes a percent-encoded string in place; -1 on a bad escape or %00. */
int h1_unescape(char *s);

/* A chunked body, decoded incrementally and in place. Zero it to start. */
struct h1_chunked {
    int state;
    uint64_t left;             /* data bytes left in this chunk */
    size_t line;               /* bytes of the current size or trailer line */
};

/* Decodes src[0..n): data bytes are moved to dst (dst <= src is allowed; the
 * output never overtakes the input). *out receives how many. Returns the
 * input bytes consumed: all n, or fewer when the body ended inside them (the
 * rest belongs to the next request), or -1 when the body is malformed.
 * h1_chunked_done() tells when the last chunk and its trailers have passed. */
long h1_chunked(struct h1_chunked *st, const char *src, size_t n, char *dst, size_t *out);
int h1_chunked_done(const struct h1_chunked *st);

/* h1: request heads parsed in place (h1_parse, h1_header, h1_query,
 * h1_unescape) and chunked bodies decoded incrementally (h1_chunked), against
 * the contract of src/http/h1.h. Pure functions: no server, no database. */
#include "testutil.h"

#include "http/h1.h"

#define MAX 16384      /* the server's head cap (server.c HEAD_MAX) */
#define OK 1           /* a row's want: the whole text is one head */

static char buf[4 * MAX];
static struct h1_req req;

/* Parses len bytes of text, copied into buf, with the cap MAX. */
static int parse_n(const char *text, size_t len)
{
    assert_true(len <= sizeof buf);
    memcpy(buf, text, len);
    return h1_parse(&req, buf, len, MAX);
}

static int parse(const char *text) { return parse_n(text, strlen(text)); }

/* rc as a row expects it: OK stands for strlen(text). */
static void expect(size_t row, const char *text, int want)
{
    int rc = parse(text);
    if (want == OK)
        want = (int)strlen(text);
    if (rc != want)
        print_error("row %zu: %d, want %d: \"%s\"\n", row, rc, want, text);
    assert_int_equal(rc, want);
}

/* ---- heads ------------------------------------------------------------------ */

static void test_complete_request(void **state)
{
    const char head[] = "POST /v1/sims/8986%30/topups?lang=ru&x HTTP/1.1\r\n"
                        "Host: api.example\r\n"
                        "Content-Type:application/json\r\n"
                        "Content-Length: 5\r\n"
                        "X-Empty:\r\n"
                        "X-Spaces: \t a  b \t \r\n"
                        "\r\n";
    const char body[] = "{\"a\"}GET";
    char text[256];
    snprintf(text, sizeof text, "%s%s", head, body);
    int rc = parse(text);
    assert_int_equal(rc, (int)strlen(head));
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/v1/sims/89860/topups");
    assert_string_equal(req.query, "lang=ru&x");
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nfields, 5);
    assert_string_equal(req.fields[0].name, "Host");
    assert_string_equal(req.fields[0].value, "api.example");
    assert_string_equal(req.fields[1].value, "application/json");   /* no space after the colon */
    assert_string_equal(req.fields[3].name, "X-Empty");
    assert_string_equal(req.fields[3].value, "");
    assert_string_equal(req.fields[4].value, "a  b");                /* inner whitespace kept */
    assert_int_equal(req.content_length, 5);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    /* Every pointer lies inside the head; the body is not touched. */
    assert_true(req.method >= buf && req.path < buf + rc && req.query < buf + rc);
    for (int i = 0; i < req.nfields; i++)
        assert_true(req.fields[i].name > buf && req.fields[i].value < buf + rc);
    assert_memory_equal(buf + rc, body, strlen(body));
}

static void test_defaults(void **state)
{
    assert_int_equal(parse("GET /healthz HTTP/1.0\r\n\r\n"), 25);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/healthz");
    assert_null(req.query);            /* no '?' at all */
    assert_int_equal(req.minor, 0);
    assert_int_equal(req.nfields, 0);
    assert_int_equal(req.content_length, -1);
    assert_false(req.keep_alive);
    assert_null(h1_header(&req, "Host"));
}

/* Every proper prefix of a head is H1_PARTIAL and leaves the buffer as it was. */
static void test_every_prefix_is_partial(void **state)
{
    const char *heads[] = {
        "GET /v1/sims/1?a=%41 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",                          /* bare LFs */
        "GET / HTTP/1.1\r\nHost: x\n\r\n",                      /* mixed */
        "\r\n\r\nPOST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", /* leading empty lines */
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: \r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t n = strlen(heads[i]);
        for (size_t k = 0; k < n; k++) {
            memset(&req, 0x5a, sizeof req);
            int rc = parse_n(heads[i], k);
            if (rc != H1_PARTIAL)
                print_error("head %zu, prefix %zu: %d\n", i, k, rc);
            assert_int_equal(rc, H1_PARTIAL);
            assert_memory_equal(buf, heads[i], k);
        }
        assert_int_equal(parse(heads[i]), (int)n);
    }
}

static void test_line_endings(void **state)
{
    const struct {
        const char *text;
        int want;
    } rows[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", OK},
        {"GET / HTTP/1.1\nHost: x\n\n", OK},                     /* bare LF ends a line */
        {"GET / HTTP/1.1\r\nHost: x\n\n", OK},
        {"GET / HTTP/1.1\nHost: x\r\n\r\n", OK},
        {"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", OK},           /* empty lines before the request line */
        {"\n\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", OK},
        {"GET / HTTP/1.1\rHost: x\r\n\r\n", H1_BAD},             /* a bare CR inside a line */
        {"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", H1_BAD},
        {"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", H1_BAD},         /* CR CR LF */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        expect(i, rows[i].text, rows[i].want);
    /* Only leading empty lines are skipped: the head is still all of them. */
    assert_int_equal(parse("\r\n\r\nGET / HTTP/1.0\r\n\r\nGET"), 22);
    assert_string_equal(req.method, "GET");
    /* Nothing but empty lines is no head yet. */
    assert_int_equal(parse("\r\n\r\n\r\n"), H1_PARTIAL);
}

static void test_request_line(void **state)
{
    const struct {
        const char *line;
        int want, minor;
    } rows[] = {
        {"GET / HTTP/1.1", OK, 1},
        {"GET / HTTP/1.0", OK, 0},
        {"GET / HTTP/1.2", OK, 2},                 /* a later 1.x is served as 1.1 (RFC 9110 2.5) */
        {"GET / HTTP/1.9", OK, 9},
        {"DELETE /v1/tokens/3 HTTP/1.1", OK, 1},
        {"M-SEARCH!~ / HTTP/1.1", OK, 1},          /* any token is a method */
        {"GET / HTTP/2.0", H1_VERSION, 0},
        {"GET / HTTP/0.9", H1_VERSION, 0},
        {"GET / HTTP/3.0", H1_VERSION, 0},
        {"GET / HTTP/1.10", H1_BAD, 0},            /* one digit each */
        {"GET / HTTP/11", H1_BAD, 0},
        {"GET / HTTP/1", H1_BAD, 0},
        {"GET / HTTP/1.", H1_BAD, 0},
        {"GET / http/1.1", H1_BAD, 0},             /* the name is case-sensitive */
        {"GET / HTTP/1.1 ", H1_BAD, 0},            /* trailing space */
        {"GET /", H1_BAD, 0},                      /* HTTP/0.9 style */
        {"GET  / HTTP/1.1", H1_BAD, 0},            /* two spaces */
        {"GET\t/ HTTP/1.1", H1_BAD, 0},
        {" GET / HTTP/1.1", H1_BAD, 0},
        {"G@T / HTTP/1.1", H1_BAD, 0},             /* not a token */
        {"GET * HTTP/1.1", H1_BAD, 0},             /* origin form only */
        {"GET http://x/ HTTP/1.1", H1_BAD, 0},
        {"GET /a#frag HTTP/1.1", H1_BAD, 0},       /* no fragment on the wire */
        {"GET /a\x7f HTTP/1.1", H1_BAD, 0},        /* DEL in the target */
        {"GET /caf\xc3\xa9 HTTP/1.1", H1_BAD, 0},  /* raw UTF-8 must be percent-encoded */
        {"GET", H1_BAD, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "%s\r\nHost: x\r\n\r\n", rows[i].line);
        expect(i, text, rows[i].want);
        if (rows[i].want == OK)
            assert_int_equal(req.minor, rows[i].minor);
    }
}

static void test_target(void **state)
{
    const struct {
        const char *target, *path, *query;   /* path NULL: refused with 400 */
    } rows[] = {
        {"/v1/sims/%38%39", "/v1/sims/89", NULL},
        {"/%7e%7E", "/~~", NULL},                  /* hex in either case */
        {"/a%2Fb", "/a/b", NULL},                  /* decoded before routing */
        {"/a+b", "/a+b", NULL},                    /* '+' is a space only in a query */
        {"/%25", "/%", NULL},
        {"/a%00b", NULL, NULL},                    /* a NUL would cut the path */
        {"/a%zz", NULL, NULL},
        {"/a%4", NULL, NULL},
        {"/a%", NULL, NULL},
        {"/a%%41", NULL, NULL},
        {"/p?a=1&b=%00", "/p", "a=1&b=%00"},       /* the query stays raw */
        {"/p%3Fx?y", "/p?x", "y"},                 /* an encoded '?' is part of the path */
        {"/p?", "/p", ""},                         /* empty, not absent */
        {"/p??x=?", "/p", "?x=?"},
        {"/%zz?a", NULL, NULL},                    /* the path is checked even with a query */
        {"/?%zz", "/", "%zz"},                     /* the query is the application's to refuse */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", rows[i].target);
        expect(i, text, rows[i].path ? OK : H1_BAD);
        if (!rows[i].path)
            continue;
        assert_string_equal(req.path, rows[i].path);
        if (rows[i].query)
            assert_string_equal(req.query, rows[i].query);
        else
            assert_null(req.query);
    }
}

static void test_unescape(void **state)
{
    const struct {
        const char *in, *out;   /* out NULL: -1 */
    } rows[] = {
        {"", ""},
        {"abc", "abc"},
        {"%41%62%63", "Abc"},
        {"%e4%B8%ad", "\xe4\xb8\xad"},   /* bytes, not characters */
        {"%0a", "\n"},                    /* any byte but NUL */
        {"%ff", "\xff"},
        {"%00", NULL},
        {"a%0", NULL},
        {"%g0", NULL},
        {"%0g", NULL},
        {"%", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char s[32];
        snprintf(s, sizeof s, "%s", rows[i].in);
        int rc = h1_unescape(s);
        assert_int_equal(rc, rows[i].out ? 0 : -1);
        if (rows[i].out)
            assert_string_equal(s, rows[i].out);
    }
}

static void test_query(void **state)
{
    char long_key[80], long_query[96];
    memset(long_key, 'k', 63);
    long_key[63] = 0;
    snprintf(long_query, sizeof long_query, "%s=ok", long_key);
    const struct {
        const char *query, *name;
        size_t cap;
        const char *want;   /* NULL: absent */
    } rows[] = {
        {"a=1&b=2", "b", 32, "2"},
        {"a=1&b=2", "a", 32, "1"},
        {"a=1&b=2", "c", 32, NULL},
        {"q=hello+world", "q", 32, "hello world"},   /* '+' is a space */
        {"q=%41%62c", "q", 32, "Abc"},
        {"q=%2B%26%3D", "q", 32, "+&="},             /* encoded delimiters are data */
        {"q=%00x", "q", 32, "%00x"},                 /* %00 kept as sent, for validation to refuse */
        {"q=%zz%4", "q", 32, "%zz%4"},               /* bad escapes too */
        {"q=50%", "q", 32, "50%"},
        {"q=%4", "q", 32, "%4"},
        {"a&b=1", "a", 32, ""},                      /* present without '=': empty */
        {"a=&b=1", "a", 32, ""},
        {"b=1&a", "a", 32, ""},
        {"a=1&a=2", "a", 32, "1"},                   /* the first wins */
        {"a=b=c", "a", 32, "b=c"},                   /* the first '=' splits */
        {"first+name=x", "first name", 32, "x"},     /* names are decoded too */
        {"%61=1", "a", 32, "1"},
        {"ab=1", "a", 32, NULL},                     /* not a prefix match */
        {"a=1", "ab", 32, NULL},
        {"A=1", "a", 32, NULL},                      /* case-sensitive */
        {"&&a=1&", "a", 32, "1"},                    /* empty pairs skipped */
        {"", "a", 32, NULL},
        {"=1", "", 32, "1"},
        {"a=abcdef", "a", 4, "abc"},                 /* truncated to cap */
        {"a=abcdef", "a", 1, ""},
        {"a=%41%42%43", "a", 3, "AB"},               /* truncation counts decoded bytes */
        {"a=1", "a", 0, NULL},                       /* no room at all */
        {long_query, long_key, 32, "ok"},            /* a 63-byte name is the longest */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[64];
        memset(out, '#', sizeof out);
        const char *got = h1_query(rows[i].query, rows[i].name, out, rows[i].cap);
        if (!rows[i].want != !got || (got && strcmp(got, rows[i].want)))
            print_error("row %zu: \"%s\" [%s]: %s\n", i, rows[i].query, rows[i].name, got ? got : "NULL");
        if (!rows[i].want) {
            assert_null(got);
            continue;
        }
        assert_ptr_equal(got, out);
        assert_string_equal(got, rows[i].want);
        assert_true(strlen(got) < rows[i].cap);
        assert_int_equal(out[rows[i].cap], '#');   /* nothing past cap */
    }
    char out[8];
    assert_null(h1_query(NULL, "a", out, sizeof out));
    /* A name of 64 bytes or more never matches. */
    char key64[96], q64[128];
    memset(key64, 'k', 64);
    key64[64] = 0;
    snprintf(q64, sizeof q64, "%s=x", key64);
    assert_null(h1_query(q64, key64, out, sizeof out));
}

static void test_header_lookup(void **state)
{
    assert_true(parse("GET / HTTP/1.1\r\ncontent-TYPE: a/b\r\nHost: x\r\nX-Dup: 1\r\nx-dup: 2\r\nX-E:\r\n\r\n") > 0);
    assert_string_equal(h1_header(&req, "Content-Type"), "a/b");
    assert_string_equal(h1_header(&req, "CONTENT-TYPE"), "a/b");
    assert_string_equal(h1_header(&req, "content-type"), "a/b");
    assert_string_equal(h1_header(&req, "HOST"), "x");
    assert_string_equal(h1_header(&req, "X-DUP"), "1");   /* the first of two */
    assert_string_equal(h1_header(&req, "x-e"), "");      /* present and empty */
    assert_null(h1_header(&req, "Content"));              /* no prefix match */
    assert_null(h1_header(&req, "Content-Type2"));
    assert_null(h1_header(&req, "X-Missing"));
    assert_int_equal(req.nfields, 5);                    /* duplicates are all kept */
    assert_string_equal(req.fields[3].value, "2");
}

static void test_keep_alive(void **state)
{
    const struct {
        int minor;
        const char *fields;   /* field lines, CRLF-terminated */
        int want;
    } rows[] = {
        {1, "", 1},                                           /* 1.1: persistent by default */
        {1, "Connection: close\r\n", 0},
        {1, "Connection: Close\r\n", 0},                      /* tokens are case-insensitive */
        {1, "Connection: keep-alive, close\r\n", 0},
        {1, "Connection: close\r\nConnection: keep-alive\r\n", 0},   /* close wins, in any order */
        {1, "Connection: keep-alive\r\nConnection: close\r\n", 0},
        {1, "Connection: upgrade\r\n", 1},
        {1, "Connection: closed\r\n", 1},                     /* a token, not a prefix */
        {1, "Connection: \"close\"\r\n", 1},
        {1, "Connection: x-close\r\n", 1},
        {1, "Proxy-Connection: close\r\n", 1},                /* another field */
        {0, "", 0},                                           /* 1.0: closes by default */
        {0, "Connection: keep-alive\r\n", 1},
        {0, "Connection: Keep-Alive\r\n", 1},
        {0, "Connection: foo, keep-alive\r\n", 1},
        {0, "Connection:  ,keep-alive\t, \r\n", 1},           /* empty list elements, whitespace */
        {0, "Connection: keep-alive, close\r\n", 0},
        {0, "Connection: close\r\nConnection: keep-alive\r\n", 0},
        {0, "Connection: keep-alives\r\n", 0},
        {0, "Connection: keep alive\r\n", 0},
        {0, "Keep-Alive: timeout=5\r\n", 0},                  /* the parameters field is not the token */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "GET / HTTP/1.%d\r\nHost: x\r\n%s\r\n", rows[i].minor, rows[i].fields);
        expect(i, text, OK);
        if (req.keep_alive != rows[i].want)
            print_error("row %zu: keep_alive %d\n", i, req.keep_alive);
        assert_int_equal(req.keep_alive, rows[i].want);
    }
}

static void test_host(void **state)
{
    const struct {
        const char *text;
        int want;
    } rows[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", OK},
        {"GET / HTTP/1.1\r\nhOsT: x\r\n\r\n", OK},
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", OK},                 /* empty is allowed (RFC 9110 7.2) */
        {"GET / HTTP/1.1\r\n\r\n", H1_BAD},                       /* required in 1.1 */
        {"GET / HTTP/1.2\r\n\r\n", H1_BAD},                       /* and later */
        {"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", H1_BAD}, /* never twice, even equal */
        {"GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", H1_BAD},
        {"GET / HTTP/1.1\r\nX-Host: x\r\n\r\n", H1_BAD},
        {"GET / HTTP/1.0\r\n\r\n", OK},                           /* optional in 1.0 */
        {"GET / HTTP/1.0\r\nHost: x\r\n\r\n", OK},
        {"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", H1_BAD}, /* but not twice */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        expect(i, rows[i].text, rows[i].want);
}

static void test_content_length(void **state)
{
    const struct {
        const char *fields;
        int want;
        int64_t length;
    } rows[] = {
        {"", OK, -1},                                             /* none was sent */
        {"Content-Length: 5\r\n", OK, 5},
        {"Content-Length: 0\r\n", OK, 0},
        {"content-length:005\r\n", OK, 5},                        /* leading zeros */
        {"Content-Length:  7 \t\r\n", OK, 7},                     /* OWS around it */
        {"Content-Length: 5\r\nContent-Length: 5\r\n", OK, 5},    /* equal duplicates */
        {"Content-Length: 5\r\nContent-Length: 05\r\n", OK, 5},   /* equal as numbers */
        {"Content-Length: 999999999999999999\r\n", OK, INT64_C(999999999999999999)},   /* 18 digits */
        {"Content-Length: 1000000000000000000\r\n", H1_BAD, 0},   /* 19 digits */
        {"Content-Length: 0000000000000000001\r\n", H1_BAD, 0},   /* 19 digits, however small */
        {"Content-Length: 99999999999999999999\r\n", H1_BAD, 0},  /* past int64 */
        {"Content-Length: 5\r\nContent-Length: 6\r\n", H1_BAD, 0},/* they disagree */
        {"Content-Length: 6\r\nContent-Length: 5\r\n", H1_BAD, 0},
        {"Content-Length: 5, 5\r\n", H1_BAD, 0},                  /* no lists */
        {"Content-Length:\r\n", H1_BAD, 0},
        {"Content-Length: -1\r\n", H1_BAD, 0},
        {"Content-Length: +1\r\n", H1_BAD, 0},
        {"Content-Length: 1 2\r\n", H1_BAD, 0},
        {"Content-Length: 0x10\r\n", H1_BAD, 0},
        {"Content-Length: 1e3\r\n", H1_BAD, 0},
        {"Content-Length: ５\r\n", H1_BAD, 0},                    /* a fullwidth digit */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "POST / HTTP/1.1\r\nHost: x\r\n%s\r\n", rows[i].fields);
        expect(i, text, rows[i].want);
        if (rows[i].want == OK)
            assert_int_equal(req.content_length, rows[i].length);
    }
}

static void test_transfer_encoding(void **state)
{
    const struct {
        int minor;
        const char *fields;
        int want, chunked;
    } rows[] = {
        {1, "Transfer-Encoding: chunked\r\n", OK, 1},
        {1, "transfer-encoding: Chunked \r\n", OK, 1},
        {2, "Transfer-Encoding: chunked\r\n", OK, 1},
        {1, "Transfer-Encoding: gzip\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: identity\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: gzip, chunked\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: chunked, chunked\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding:\r\n", H1_NOT_IMPLEMENTED, 0},
        {1, "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", H1_BAD, 0},   /* smuggling */
        {1, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", H1_BAD, 0},
        {1, "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", H1_BAD, 0},
        {0, "Transfer-Encoding: chunked\r\n", H1_BAD, 0},                        /* not in 1.0 */
        {0, "Transfer-Encoding: gzip\r\n", H1_NOT_IMPLEMENTED, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "POST / HTTP/1.%d\r\nHost: x\r\n%s\r\n", rows[i].minor, rows[i].fields);
        expect(i, text, rows[i].want);
        if (rows[i].want == OK) {
            assert_int_equal(req.chunked, rows[i].chunked);
            assert_int_equal(req.content_length, -1);
        }
    }
}

static void test_expect(void **state)
{
    const struct {
        int minor;
        const char *fields;
        int want, cont;
    } rows[] = {
        {1, "", OK, 0},
        {1, "Expect: 100-continue\r\n", OK, 1},
        {1, "expect: 100-Continue\r\n", OK, 1},      /* case-insensitive */
        {1, "Expect:  100-continue \r\n", OK, 1},
        {1, "Expect: 100-continue, foo\r\n", H1_EXPECTATION, 0},
        {1, "Expect: foo\r\n", H1_EXPECTATION, 0},
        {1, "Expect: 200-ok\r\n", H1_EXPECTATION, 0},
        {1, "Expect:\r\n", H1_EXPECTATION, 0},
        {0, "Expect: 100-continue\r\n", OK, 0},      /* 1.0 clients cannot expect it: ignored */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "POST / HTTP/1.%d\r\nHost: x\r\nContent-Length: 3\r\n%s\r\n", rows[i].minor,
                 rows[i].fields);
        expect(i, text, rows[i].want);
        if (rows[i].want == OK)
            assert_int_equal(req.expect_continue, rows[i].cont);
    }
}

static void test_field_syntax(void **state)
{
    const struct {
        const char *fields;
        int want;
    } rows[] = {
        {"X-A: 1\r\n", OK},
        {"X-A:1\r\n", OK},
        {"!#$%&'*+-.^_`|~09az: 1\r\n", OK},          /* every tchar */
        {"X-A: a\tb\r\n", OK},                       /* HTAB in a value */
        {"X-A: a\x7f" "b\r\n", OK},                  /* DEL passes */
        {"X-A: caf\xc3\xa9\r\n", OK},                /* obs-text passes */
        {"X-A : 1\r\n", H1_BAD},                     /* whitespace before the colon */
        {"X-A\t: 1\r\n", H1_BAD},
        {"Host : y\r\n", H1_BAD},
        {"X-A: 1\r\n 2\r\n", H1_BAD},                /* obsolete line folding */
        {"X-A: 1\r\n\t2\r\n", H1_BAD},
        {" X-A: 1\r\n", H1_BAD},
        {": 1\r\n", H1_BAD},                         /* empty name */
        {"X-A 1\r\n", H1_BAD},                       /* no colon */
        {"X(A): 1\r\n", H1_BAD},                     /* not a token */
        {"X\xc3\xa9: 1\r\n", H1_BAD},
        {"X-A: a\x01" "b\r\n", H1_BAD},              /* C0 controls */
        {"X-A: \x1f\r\n", H1_BAD},
        {"X-A: a\x0b" "b\r\n", H1_BAD},
        {"X-A: a\x1b[0m\r\n", H1_BAD},
        {"X-A: a\rb\r\n", H1_BAD},                   /* bare CR */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", rows[i].fields);
        expect(i, text, rows[i].want);
    }
    assert_true(parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f" "b\r\n\r\n") > 0);
    assert_string_equal(h1_header(&req, "X-A"), "a\x7f" "b");
    /* A NUL byte anywhere in the head. */
    const char nul_value[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    assert_int_equal(parse_n(nul_value, sizeof nul_value - 1), H1_BAD);
    const char nul_name[] = "GET / HTTP/1.1\r\nHost: x\r\nX\0A: b\r\n\r\n";
    assert_int_equal(parse_n(nul_name, sizeof nul_name - 1), H1_BAD);
    const char nul_target[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(parse_n(nul_target, sizeof nul_target - 1), H1_BAD);
}

/* Every byte in a field name: accepted exactly when it is a tchar (RFC 9110
 * 5.6.2), which h1.c keeps as bits. ':' ends the name, so it is left out. */
static void test_every_token_char(void **state)
{
    const char *specials = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        if (c == ':')
            continue;
        int token = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c && strchr(specials, c));
        char text[64];
        int n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\nX?Y: 1\r\n\r\n");
        text[strchr(text, '?') - text] = (char)c;
        int rc = parse_n(text, (size_t)n);
        if ((rc > 0) != token)
            print_error("byte 0x%02x: %d\n", c, rc);
        assert_int_equal(rc > 0, token);
        if (token)
            assert_int_equal(req.fields[1].name_len, 3);
    }
}

static void test_too_large(void **state)
{
    /* A head that has not ended: PARTIAL under the cap, 431 once it is reached. */
    static char big[MAX + 64];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', sizeof big - (size_t)n);
    memcpy(buf, big, MAX);
    assert_int_equal(h1_parse(&req, buf, MAX - 1, MAX), H1_PARTIAL);
    assert_int_equal(h1_parse(&req, buf, MAX, MAX), H1_TOO_LARGE);
    memcpy(buf, big, sizeof big);
    assert_int_equal(h1_parse(&req, buf, sizeof big, MAX), H1_TOO_LARGE);   /* len > max */

    /* A head of exactly max bytes fits; one byte over does not, even when complete. */
    const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t hl = strlen(head);
    memcpy(buf, head, hl);
    assert_int_equal(h1_parse(&req, buf, hl, hl), (int)hl);
    memcpy(buf, head, hl);
    assert_int_equal(h1_parse(&req, buf, hl, hl - 1), H1_TOO_LARGE);
    memcpy(buf, head, hl);
    assert_int_equal(h1_parse(&req, buf, hl + 1, hl), (int)hl);             /* more bytes after it */
    /* Leading empty lines count toward the cap. */
    const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    memcpy(buf, lead, sizeof lead - 1);
    assert_int_equal(h1_parse(&req, buf, sizeof lead - 1, sizeof lead - 2), H1_TOO_LARGE);

    /* H1_MAX_FIELDS fields fit; one more is 431 however short the head. */
    for (int extra = 0; extra <= 1; extra++) {
        char text[4096];
        int k = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (int i = 1; i < H1_MAX_FIELDS + extra; i++)
            k += snprintf(text + k, sizeof text - (size_t)k, "X-%d: %d\r\n", i, i);
        snprintf(text + k, sizeof text - (size_t)k, "\r\n");
        expect((size_t)extra, text, extra ? H1_TOO_LARGE : OK);
        if (!extra) {
            assert_int_equal(req.nfields, H1_MAX_FIELDS);
            assert_string_equal(h1_header(&req, "x-63"), "63");
        }
    }
}

/* ---- chunked bodies --------------------------------------------------------- */

static const char NEXT[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";   /* the next request's bytes */

/* Sizes from sizeof: a row may hold a NUL. */
#define BODY(enc, dec) {enc, sizeof enc - 1, dec, sizeof dec - 1}
static const struct {
    const char *enc;
    size_t enc_len;
    const char *dec;
    size_t dec_len;
} bodies[] = {
    /* RFC 9112's example shape: extensions with and without BWS, a quoted
     * value, CRLF inside the data, trailers */
    BODY("4;ext=1\r\nWiki\r\n5\r\npedia\r\nE ; name=\"q;x\"\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
         "Wikipedia in\r\n\r\nchunks."),
    BODY("4\nWiki\n5\npedia\n0\n\n", "Wikipedia"),                        /* bare LFs */
    BODY("000A\r\n0123456789\r\nb\r\nabcdefghijk\r\n00\r\n\r\n", "0123456789abcdefghijk"),   /* hex, zeros */
    BODY("1\r\n\0\r\n1\r\n\n\r\n0;last\r\n\r\n", "\0\n"),                /* any byte is data */
    BODY("0\r\n\r\n", ""),                                                /* empty */
    BODY("0\r\nA: 1\nB: 2\r\n\n", ""),                                    /* trailers alone */
};

/* Decodes body i followed by NEXT in place (output written over the input at
 * the front of the same buffer), feeding piece(k) bytes at the k-th call.
 * Checks the output, that the body's length was consumed, and that the next
 * request's bytes are untouched. */
static void decode_in_place(size_t i, size_t (*piece)(size_t k, size_t arg), size_t arg)
{
    static char b[512];
    size_t el = bodies[i].enc_len, n = el + strlen(NEXT);
    memcpy(b, bodies[i].enc, el);
    memcpy(b + el, NEXT, strlen(NEXT));
    struct h1_chunked st = {0};
    size_t r = 0, w = 0;
    for (size_t k = 0; r < n && !h1_chunked_done(&st); k++) {
        size_t want = piece(k, arg);
        if (want > n - r)
            want = n - r;
        size_t out = 999;
        long rc = h1_chunked(&st, b + r, want, b + w, &out);
        if (rc < 0)
            print_error("body %zu, arg %zu: -1 at call %zu (offset %zu)\n", i, arg, k, r);
        assert_true(rc >= 0 && (size_t)rc <= want);
        assert_true(out <= (size_t)rc);
        if ((size_t)rc < want)
            assert_true(h1_chunked_done(&st));   /* fewer only when the body ended */
        r += (size_t)rc;
        w += out;
        assert_true(w <= r);
    }
    assert_true(h1_chunked_done(&st));
    assert_int_equal(r, el);
    assert_int_equal(w, bodies[i].dec_len);
    if (w)
        assert_memory_equal(b, bodies[i].dec, w);
    assert_memory_equal(b + el, NEXT, strlen(NEXT));
    /* Once done, nothing more is taken. */
    size_t out = 999;
    assert_int_equal(h1_chunked(&st, b + r, n - r, b + w, &out), 0);
    assert_int_equal(out, 0);
}

static size_t whole(size_t k, size_t arg) { return (size_t)-1; }
static size_t bytewise(size_t k, size_t arg) { return 1; }
static size_t cut_at(size_t k, size_t arg) { return k ? (size_t)-1 : arg; }   /* two pieces: arg, the rest */

static void test_chunked_splits(void **state)
{
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        decode_in_place(i, whole, 0);
        decode_in_place(i, bytewise, 0);
        for (size_t at = 0; at <= bodies[i].enc_len + strlen(NEXT); at++)
            decode_in_place(i, cut_at, at);
    }
}

/* The decoder into a separate buffer: nothing written past what it reports. */
static void test_chunked_writes_only_its_output(void **state)
{
    const char *enc = bodies[0].enc;
    char dst[256];
    memset(dst, '#', sizeof dst);
    struct h1_chunked st = {0};
    size_t out = 0;
    long rc = h1_chunked(&st, enc, strlen(enc), dst, &out);
    assert_int_equal(rc, (long)strlen(enc));
    assert_int_equal(out, strlen(bodies[0].dec));
    assert_memory_equal(dst, bodies[0].dec, out);
    for (size_t j = out; j < sizeof dst; j++)
        assert_int_equal(dst[j], '#');
    /* Mid-chunk: a data prefix is delivered at once. */
    st = (struct h1_chunked){0};
    assert_int_equal(h1_chunked(&st, "a\r\n0123", 7, dst, &out), 7);
    assert_int_equal(out, 4);
    assert_false(h1_chunked_done(&st));
    assert_int_equal(h1_chunked(&st, "456789\r\n0\r\n\r\nX", 14, dst + 4, &out), 13);
    assert_int_equal(out, 6);
    assert_memory_equal(dst, "0123456789", 10);
    assert_true(h1_chunked_done(&st));
    /* The largest size is accepted (and is not done). */
    st = (struct h1_chunked){0};
    assert_int_equal(h1_chunked(&st, "fffffffffffffff\r\nab", 19, dst, &out), 19);
    assert_int_equal(out, 2);
    assert_false(h1_chunked_done(&st));
}

static void test_chunked_malformed(void **state)
{
    static char long_trailer[9000 + 16], long_ext[5000 + 16];
    snprintf(long_trailer, sizeof long_trailer, "0\r\nX: %0*d\r\n\r\n", 9000, 0);
    snprintf(long_ext, sizeof long_ext, "1;%0*d\r\na\r\n0\r\n\r\n", 5000, 0);
    const char *rows[] = {
        "x\r\n",                            /* not hex */
        "\r\n",                             /* no size */
        ";a\r\n0\r\n\r\n",                  /* an extension without a size */
        " 4\r\nWiki\r\n0\r\n\r\n",          /* whitespace before the size */
        "-1\r\n",
        "+1\r\n",
        "0x4\r\nWiki\r\n0\r\n\r\n",
        "4\rX",                             /* CR without LF after the size */
        "4@\r\nWiki\r\n0\r\n\r\n",          /* junk after the size */
        "4\r\nWikiX\r\n0\r\n\r\n",          /* data longer than its size */
        "4\r\nWiki\rX\r\n0\r\n\r\n",        /* CR without LF after the data */
        "4\r\nWiki0\r\n\r\n",               /* no line end after the data at all */
        "1000000000000000\r\n",             /* 16 hex digits: 2^60, too large */
        "ffffffffffffffffffff\r\n",
        "4;a\x01\r\nWiki\r\n0\r\n\r\n",     /* a control in an extension */
        "4;a\x7f\r\nWiki\r\n0\r\n\r\n",     /* DEL too */
        "0\r\nX: \x01\r\n\r\n",             /* a control in a trailer */
        "0\r\nX: \x7f\r\n\r\n",
        "0\r\n\rX",                         /* CR without LF after the trailers */
        long_trailer,                       /* trailers past 8 KiB */
        long_ext,                           /* a size line past 4 KiB */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = strlen(rows[i]);
        static char dst[10000];
        struct h1_chunked st = {0};
        size_t out = 0;
        long rc = h1_chunked(&st, rows[i], n, dst, &out);
        if (rc != -1)
            print_error("row %zu: %ld (done %d)\n", i, rc, h1_chunked_done(&st));
        assert_int_equal(rc, -1);
        /* Byte by byte: accepted up to some byte, then refused there. */
        st = (struct h1_chunked){0};
        size_t k = 0;
        for (; k < n; k++) {
            rc = h1_chunked(&st, rows[i] + k, 1, dst, &out);
            if (rc < 0)
                break;
            assert_int_equal(rc, 1);
        }
        assert_true(k < n);
    }
    /* 15 hex digits with leading zeros in front are still 15 digits of value. */
    struct h1_chunked st = {0};
    size_t out;
    char dst[8];
    assert_int_equal(h1_chunked(&st, "0000000000000000000001\r\nz", 25, dst, &out), 25);
    assert_int_equal(out, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_request),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_prefix_is_partial),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_field_syntax), cmocka_unit_test(test_every_token_char),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_chunked_splits),
        cmocka_unit_test(test_chunked_writes_only_its_output),
        cmocka_unit_test(test_chunked_malformed),
    };
    return cmocka_run_group_tests_name("h1", tests, NULL, NULL);
}

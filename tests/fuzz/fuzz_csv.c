/* fuzz_csv — the SIM import parser (csv_parse_sims, src/api/csv.c) and the
 * identifier validators the import applies to each field.
 *
 * Input: the CSV text as POST /v1/sims/import receives it.
 * Properties checked, beyond "no crash, no leak, no UB":
 *  - a text with a NUL byte is refused; a refused text produces no callback;
 *  - every non-blank data line is reported exactly once, in order, with its
 *    1-based line number (row() or bad()), and blank lines are not reported;
 *  - each field is a NUL-terminated string inside the buffer without a
 *    line end (LF, CRLF or a lone CR) and, on a line without a double quote,
 *    without a comma, leading spaces or trailing spaces; iccid is never NULL and the optional
 *    columns are present on every row or on none;
 *  - sim_iccid_valid / sim_msisdn_valid / sim_imsi_valid agree with a
 *    reference written from docs/API.md and src/core/sim.h.
 */
#include <ctype.h>

#include "api/csv.h"
#include "core/sim.h"
#include "fuzz.h"
#include "util/err.h"

struct seen {
    const char *buf;
    size_t len;
    int *lines;        /* line numbers reported, in order */
    size_t nlines;
    int has[3];        /* msisdn, imsi, lang presence on the first row; -1 before */
    const uint8_t *quoted;   /* by line number: whether the line holds a '"' */
    size_t nquoted;
};

static int ref_digits(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return 0;
    return n >= min && n <= max;
}

static int ref_iccid(const char *s)
{
    if (!ref_digits(s, 18, 20))
        return 0;
    int sum = 0;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        int d = s[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static int ref_msisdn(const char *s) { return s[0] == '+' && s[1] && s[1] != '0' && ref_digits(s + 1, 8, 15); }
static int ref_imsi(const char *s) { return ref_digits(s, 6, 15); }

static void check_field(struct seen *sn, int line, const char *f, const char *what)
{
    FUZZ_CHECK(f >= sn->buf && f <= sn->buf + sn->len, "%s points outside the buffer", what);
    size_t n = strnlen(f, (size_t)(sn->buf + sn->len - f) + 1);
    FUZZ_CHECK(f + n <= sn->buf + sn->len, "%s is not NUL-terminated inside the buffer", what);
    FUZZ_CHECK(!memchr(f, '\n', n) && !memchr(f, '\r', n), "%s '%s' holds a line end", what, f);
    if ((size_t)line < sn->nquoted && sn->quoted[line])
        return;   /* quoted: a comma and spaces may be text */
    FUZZ_CHECK(!memchr(f, ',', n), "%s '%s' holds a separator", what, f);
    FUZZ_CHECK(!n || (f[0] != ' ' && f[n - 1] != ' ' && f[n - 1] != '\r'), "%s '%s' is not trimmed", what, f);
}

/* The bytes of the line at p (up to end) before its LF, CRLF or lone CR;
 * *next: where the next one begins (end after the last). */
static size_t line_len(const uint8_t *p, const uint8_t *end, const uint8_t **next)
{
    size_t len = 0;
    while (p + len < end && p[len] != '\n' && p[len] != '\r')
        len++;
    *next = p + len + (p + len < end) + (p + len + 1 < end && p[len] == '\r' && p[len + 1] == '\n');
    return len;
}

/* quoted[i]: whether line i (1-based) holds a double quote. */
static size_t quoted_lines(const uint8_t *data, size_t size, uint8_t **out)
{
    size_t n = 2;
    for (const uint8_t *p = data, *next; p < data + size; p = next, n++)
        line_len(p, data + size, &next);
    *out = calloc(n, 1);
    if (!*out)
        abort();
    size_t line = 1;
    for (const uint8_t *p = data, *next; p < data + size; p = next, line++)
        (*out)[line] = memchr(p, '"', line_len(p, data + size, &next)) != NULL;
    return n;
}

static void note_line(struct seen *sn, int line)
{
    FUZZ_CHECK(line >= 2, "line %d reported", line);
    FUZZ_CHECK(!sn->nlines || line > sn->lines[sn->nlines - 1], "line %d after line %d", line,
               sn->lines[sn->nlines - 1]);
    sn->lines = realloc(sn->lines, (sn->nlines + 1) * sizeof *sn->lines);
    if (!sn->lines)
        abort();
    sn->lines[sn->nlines++] = line;
}

static void on_row(void *arg, const struct csv_row *r)
{
    struct seen *sn = arg;
    note_line(sn, r->line);
    FUZZ_CHECK(r->iccid, "row at line %d without an iccid", r->line);
    const char *opt[3] = {r->msisdn, r->imsi, r->lang};
    for (int i = 0; i < 3; i++) {
        if (sn->has[i] < 0)
            sn->has[i] = opt[i] != NULL;
        FUZZ_CHECK(sn->has[i] == (opt[i] != NULL), "optional column %d present on some rows only", i);
    }
    check_field(sn, r->line, r->iccid, "iccid");
    FUZZ_CHECK(!!sim_iccid_valid(r->iccid) == ref_iccid(r->iccid), "sim_iccid_valid('%s') = %d", r->iccid,
               sim_iccid_valid(r->iccid));
    if (r->msisdn) {
        check_field(sn, r->line, r->msisdn, "msisdn");
        FUZZ_CHECK(!!sim_msisdn_valid(r->msisdn) == ref_msisdn(r->msisdn), "sim_msisdn_valid('%s') = %d",
                   r->msisdn, sim_msisdn_valid(r->msisdn));
    }
    if (r->imsi) {
        check_field(sn, r->line, r->imsi, "imsi");
        FUZZ_CHECK(!!sim_imsi_valid(r->imsi) == ref_imsi(r->imsi), "sim_imsi_valid('%s') = %d", r->imsi,
                   sim_imsi_valid(r->imsi));
    }
    if (r->lang) {
        check_field(sn, r->line, r->lang, "language");
        int ref = !strcmp(r->lang, "zh") || !strcmp(r->lang, "en") || !strcmp(r->lang, "ru");
        FUZZ_CHECK(!!sim_lang_valid(r->lang) == ref, "sim_lang_valid('%s')", r->lang);
    }
}

static void on_bad(void *arg, int line) { note_line(arg, line); }

/* The data lines that must be reported: every line after the header (lines
 * end at LF, CRLF or a lone CR) that is not made of spaces only (a last empty
 * segment after a line end is no line). */
static size_t expected_lines(const uint8_t *data, size_t size, int **out)
{
    size_t off = size >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3) ? 3 : 0;
    const uint8_t *end = data + size, *p;
    size_t n = 0;
    *out = NULL;
    line_len(data + off, end, &p);
    for (int lineno = 2; p < end; lineno++) {
        const uint8_t *next;
        size_t len = line_len(p, end, &next);
        int blank = 1;
        for (size_t i = 0; i < len && blank; i++)
            blank = p[i] == ' ';
        if (!blank) {
            *out = realloc(*out, (n + 1) * sizeof **out);
            if (!*out)
                abort();
            (*out)[n++] = lineno;
        }
        p = next;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    uint8_t *quoted;
    size_t nquoted = quoted_lines(data, size, &quoted);
    struct seen sn = {.buf = text, .len = size, .has = {-1, -1, -1}, .quoted = quoted, .nquoted = nquoted};
    const char *param = NULL;
    int rc = csv_parse_sims(text, size, &param, on_row, on_bad, &sn);
    int has_nul = memchr(data, 0, size) != NULL;
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID_CSV, "csv_parse_sims returned %d", rc);
    if (has_nul)
        FUZZ_CHECK(rc == ERR_INVALID_CSV, "a text with a NUL byte was accepted");
    if (rc) {
        FUZZ_CHECK(sn.nlines == 0, "refused (%d) after %zu callbacks", rc, sn.nlines);
    } else {
        FUZZ_CHECK(param == NULL, "accepted with param '%s'", param);
        int *want;
        size_t nwant = expected_lines(data, size, &want);
        FUZZ_CHECK(nwant == sn.nlines, "%zu data lines reported, %zu expected", sn.nlines, nwant);
        for (size_t i = 0; i < nwant; i++)
            FUZZ_CHECK(want[i] == sn.lines[i], "line %d reported where %d was expected", sn.lines[i], want[i]);
        free(want);
    }
    free(sn.lines);
    free(quoted);
    free(text);
    return 0;
}

#include "api/csv.h"

#include <string.h>

#include "util/err.h"

/* Splits a line into fields at commas, in place; returns the field count
 * (fields past max are counted, not kept). Spaces around a field and a
 * trailing CR go. A field in double quotes (RFC 4180) loses them; inside, ""
 * is one quote and a comma is text. */
static int split(char *line, char **cols, int max)
{
    int n = 0;
    char *r = line;
    for (;;) {
        while (*r == ' ')
            r++;
        char *field = r, *w = r, *kept = r;   /* kept: the end of what trimming may not cut */
        if (*r == '"') {
            for (r++; *r; r++) {
                if (*r == '"' && r[1] != '"') {   /* the closing quote */
                    r++;
                    break;
                }
                if (*r == '"')                    /* "" is one quote */
                    r++;
                *w++ = *r;
            }
            kept = w;
        }
        while (*r && *r != ',')
            *w++ = *r++;
        while (w > kept && (w[-1] == ' ' || w[-1] == '\r'))
            w--;
        int last = !*r;
        *w = 0;   /* w <= r: at most the separator is overwritten */
        if (n < max)
            cols[n] = field;
        n++;
        if (last)
            return n;
        r++;
    }
}

/* Ends the line at s where an LF, a CRLF or a lone CR (old Mac files) ends
 * it; returns the next line, or NULL after the last. */
static char *cut_line(char *s)
{
    char *e = s + strcspn(s, "\r\n");
    if (!*e)
        return NULL;
    int crlf = e[0] == '\r' && e[1] == '\n';
    *e = 0;
    return e + 1 + crlf;
}

int csv_parse_sims(char *text, size_t len, const char **param, void (*row)(void *arg, const struct csv_row *r),
                   void (*bad)(void *arg, int line), void *arg)
{
    enum { C_ICCID, C_MSISDN, C_IMSI, C_LANG, C__N };
    static const char *const names[C__N] = {"iccid", "msisdn", "imsi", "language"};
    char *cols[CSV_MAX_COLS];
    int idx[C__N] = {-1, -1, -1, -1};
    *param = NULL;
    if (strlen(text) != len)
        return ERR_INVALID_CSV;   /* a NUL byte inside: not text */
    if (!strncmp(text, "\xEF\xBB\xBF", 3))
        text += 3;
    char *next = cut_line(text);
    int ncols = split(text, cols, CSV_MAX_COLS);
    if (ncols > CSV_MAX_COLS)
        return ERR_INVALID_CSV;
    for (int i = 0; i < ncols; i++) {
        int known = !cols[i][0];   /* an unnamed column (a spreadsheet's trailing commas) is not read */
        for (int k = 0; k < C__N; k++)
            if (!strcmp(cols[i], names[k]) && idx[k] < 0)
                idx[k] = i, known = 1;
        if (!known) {
            *param = cols[i];
            return ERR_INVALID_CSV;
        }
    }
    if (idx[C_ICCID] < 0) {
        *param = "iccid";
        return ERR_INVALID_CSV;
    }
    for (int lineno = 2; next && *next; lineno++) {
        char *line = next;
        next = cut_line(line);
        if (!line[strspn(line, " ")])
            continue;
        if (split(line, cols, CSV_MAX_COLS) != ncols) {
            bad(arg, lineno);
            continue;
        }
        struct csv_row r = {
            .line = lineno,
            .iccid = cols[idx[C_ICCID]],
            .msisdn = idx[C_MSISDN] >= 0 ? cols[idx[C_MSISDN]] : NULL,
            .imsi = idx[C_IMSI] >= 0 ? cols[idx[C_IMSI]] : NULL,
            .lang = idx[C_LANG] >= 0 ? cols[idx[C_LANG]] : NULL,
        };
        row(arg, &r);
    }
    return 0;
}

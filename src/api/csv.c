#include "api/csv.h"

#include <string.h>

#include "util/err.h"

/* Splits a line at commas, trimming spaces and a trailing CR; returns the field count. */
static int split(char *line, char **cols, int max)
{
    int n = 0;
    for (char *p = line;; p++) {
        if (n < max)
            cols[n] = p;
        n++;
        p = strchr(p, ',');
        if (!p)
            break;
        *p = 0;
    }
    for (int i = 0; i < n && i < max; i++) {
        char *s = cols[i], *e = s + strlen(s);
        while (*s == ' ')
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\r'))
            *--e = 0;
        cols[i] = s;
    }
    return n;
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
    char *next = strchr(text, '\n');
    if (next)
        *next++ = 0;
    int ncols = split(text, cols, CSV_MAX_COLS);
    if (ncols > CSV_MAX_COLS)
        return ERR_INVALID_CSV;
    for (int i = 0; i < ncols; i++) {
        int known = 0;
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
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (!line[strspn(line, " \r")])
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

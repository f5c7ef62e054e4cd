/* csv — the SIM import format: a header line naming the columns (iccid
 * required; msisdn, imsi, language optional; any order), then one SIM a line.
 * Fields may be quoted as RFC 4180 has it ("" for a quote, a comma inside is
 * text), as spreadsheets and vendor files write them; a line is still one
 * row, since no field of ours holds a newline. A UTF-8 BOM, CRLF or CR line ends,
 * spaces around fields, blank lines and columns without a name (whose fields
 * are not read) are tolerated. */
#pragma once
#include <stddef.h>

#define CSV_MAX_COLS 16

struct csv_row {
    int line;                                   /* 1-based, as an editor shows it */
    const char *iccid, *msisdn, *imsi, *lang;   /* NULL when the column is absent */
};

/* Parses text (len bytes, NUL-terminated, modified in place). Calls row() for
 * each data line with the right number of fields and bad() for each line
 * without. Returns 0, or ERR_INVALID_CSV with *param naming the offending
 * header column (NULL if none) when the header is unusable. */
int csv_parse_sims(char *text, size_t len, const char **param, void (*row)(void *arg, const struct csv_row *r),
                   void (*bad)(void *arg, int line), void *arg);

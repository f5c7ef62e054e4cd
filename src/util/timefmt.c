#include "util/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void timefmt_rfc3339(int64_t t, char out[TIMEFMT_LEN])
{
    /* Four-digit years only: outside them the form would not fit. */
    if (t < TIMEFMT_MIN)
        t = TIMEFMT_MIN;
    if (t > TIMEFMT_MAX)
        t = TIMEFMT_MAX;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, TIMEFMT_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, TIMEFMT_LEN, "1000-01-01T00:00:00Z");
}

int timefmt_parse(const char *s, int64_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (strlen(s) != 20)
        return -1;
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    *t = (int64_t)timegm(&tm);
    char back[TIMEFMT_LEN];
    timefmt_rfc3339(*t, back);   /* only the canonical spelling: no 02-30, no :60, no 4-digit games */
    return strcmp(back, s) ? -1 : 0;
}

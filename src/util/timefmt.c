#include "util/timefmt.h"

#include <string.h>
#include <time.h>

static void put2(char *p, int v) { p[0] = (char)('0' + v / 10), p[1] = (char)('0' + v % 10); }

/* By hand, not gmtime_r + strftime: every top-up prints four of these on the
 * writer, and glibc's gmtime_r takes the time-zone lock each time. The date
 * is the civil-from-days rule on 400-year eras that start on 1 March (so the
 * leap day ends a year): 146097 days an era, 1460/36524/146096 the days at
 * which the 4-, 100- and 400-year corrections fall. */
void timefmt_rfc3339(int64_t t, char out[TIMEFMT_LEN])
{
    /* Four-digit years only: outside them the form would not fit. */
    if (t < TIMEFMT_MIN)
        t = TIMEFMT_MIN;
    if (t > TIMEFMT_MAX)
        t = TIMEFMT_MAX;
    int64_t days = t / 86400, sec = t % 86400;
    if (sec < 0)
        sec += 86400, days--;
    int64_t z = days + 719468;   /* days since 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;   /* 0 = March */
    int day = (int)(doy - (153 * mp + 2) / 5 + 1), month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    put2(out, year / 100);
    put2(out + 2, year % 100);
    out[4] = '-';
    put2(out + 5, month);
    out[7] = '-';
    put2(out + 8, day);
    out[10] = 'T';
    put2(out + 11, (int)(sec / 3600));
    out[13] = ':';
    put2(out + 14, (int)(sec / 60 % 60));
    out[16] = ':';
    put2(out + 17, (int)(sec % 60));
    out[19] = 'Z';
    out[20] = 0;
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

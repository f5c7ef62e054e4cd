/* timefmt — Unix seconds <-> RFC 3339 UTC ("2026-11-24T21:05:00Z"). */
#pragma once
#include <stdint.h>

#define TIMEFMT_LEN 21   /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */
#define TIMEFMT_MIN INT64_C(-30610224000)   /* 1000-01-01T00:00:00Z */
#define TIMEFMT_MAX INT64_C(253402300799)   /* 9999-12-31T23:59:59Z */

/* Times outside [TIMEFMT_MIN, TIMEFMT_MAX] are written as the nearest bound. */
void timefmt_rfc3339(int64_t t, char out[TIMEFMT_LEN]);
/* Returns 0 and sets *t, or -1 for anything but the exact form above. */
int timefmt_parse(const char *s, int64_t *t);

#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum log_level level = LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level l) { level = l; }

void log_msg(enum log_level l, const char *fmt, ...)
{
    if (l < level)
        return;
    char ts[32], msg[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[l], msg);
}

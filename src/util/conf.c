#include "util/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum kind { K_INT, K_CURRENCY, K_RULE };

static const struct key {
    const char *name;
    enum kind kind;
    size_t off;
    int64_t min, max;
} keys[] = {
#define I(field, lo, hi) {#field, K_INT, offsetof(struct conf, field), lo, hi}
    {"currency", K_CURRENCY, offsetof(struct conf, currency), 0, 0},
    I(topup_min, 1, INT64_C(1) << 40),
    I(topup_max, 1, INT64_C(1) << 40),
    I(daily_cap, 1, INT64_C(1) << 42),
    I(validity_days, 1, 3650),
    {"validity_rule", K_RULE, offsetof(struct conf, validity_rule), 0, 0},
    I(validity_max_days, 0, 3650),
    I(grace_days, 0, 3650),
    I(retention_days, 0, 3650),
    I(reactivation_fee, 0, INT64_C(1) << 40),
    I(tz_offset_minutes, -720, 840),
    I(sweep_interval, 1, 86400),
    I(max_body, 1024, 1 << 20),
    I(max_import_body, 1024, INT64_C(1) << 30),
    I(http_threads, 0, 256),
    I(max_connections, 4, 100000),
    I(max_connections_per_address, 0, 100000),
    I(request_timeout, 1, 3600),
    I(batch_max, 1, 100000),
    I(commit_delay_us, 0, 100000),
    I(cache_mb, 2, 65536),
    I(log_max_mb, 1, 1 << 20),
    I(writer_nice, -20, 0),
    I(queue_max, 1, 10000000),
    I(queue_delay_ms, 1, 600000),
    I(shed_cpu_percent, 1, 101),
    I(shed_target_ms, 0, 10000),
    I(shed_p99_ms, 0, 10000),
    I(shed_park_ms, 0, 10000),
    I(shed_flood_ms, 1, 60000),
    I(shed_flood_min, 1, 1000000),
    I(shed_refuse_ms, 1, 60000),
    I(auth_fail_per_minute, 1, 1000000),
    I(token_rate, 1, 100000000),
    I(address_rate, 1, 100000000),
#undef I
};

static const char *rules[] = {"extend", "reset", "max"};

void conf_defaults(struct conf *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->currency, "CNY");
    c->topup_min = 100;           /* 1 CNY */
    c->topup_max = 200000;        /* 2,000 CNY */
    c->daily_cap = 500000;        /* 5,000 CNY */
    c->validity_days = 30;
    c->validity_rule = VALIDITY_EXTEND;
    c->validity_max_days = 365;   /* without it, 1 CNY a month kept a number forever and 12 bought a year */
    c->grace_days = 30;
    c->retention_days = 90;
    c->reactivation_fee = 0;
    c->tz_offset_minutes = 480;   /* Asia/Shanghai */
    c->sweep_interval = 60;
    c->max_body = 64 * 1024;
    c->max_import_body = 256 * 1024 * 1024;
    c->http_threads = 0;          /* one per processor */
    c->max_connections = 4096;
    c->max_connections_per_address = 1024;   /* a quarter: no one address locks the others out */
    c->request_timeout = 30;      /* net.h: why */
    c->batch_max = 1000;
    c->commit_delay_us = 1000;    /* engine.c: why */
    c->cache_mb = 256;            /* README: why this much */
    c->log_max_mb = 512;          /* engine.c: why */
    c->writer_nice = -5;          /* engine.c: why */
    c->queue_max = 20000;
    c->queue_delay_ms = 100;
    c->shed_cpu_percent = 90;
    c->shed_target_ms = 3;
    c->shed_p99_ms = 10;
    c->shed_park_ms = 2;          /* net.h: the ready stack; README: why */
    c->shed_flood_ms = 50;
    c->shed_flood_min = 256;
    c->shed_refuse_ms = 1000;
    c->auth_fail_per_minute = 30;
    c->token_rate = 100000;
    c->address_rate = 100000;
}

#define NKEYS (sizeof keys / sizeof keys[0])

static int key_index(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name))
            return (int)i;
    return -1;
}

int conf_set(struct conf *c, const char *key, const char *value, char *eb, size_t el)
{
    int i = key_index(key);
    if (i >= 0) {
        const struct key *k = &keys[i];
        void *p = (char *)c + k->off;
        if (k->kind == K_CURRENCY) {
            if (strlen(value) != 3 || !isupper((unsigned char)value[0]) ||
                !isupper((unsigned char)value[1]) || !isupper((unsigned char)value[2])) {
                snprintf(eb, el, "%s: expected a 3-letter ISO 4217 code", key);
                return -1;
            }
            memcpy(p, value, 4);
            c->currency_set = 1;
            return 0;
        }
        if (k->kind == K_RULE) {
            for (int r = 0; r < 3; r++)
                if (!strcmp(value, rules[r])) {
                    *(int *)p = r;
                    return 0;
                }
            snprintf(eb, el, "%s: expected extend, reset or max", key);
            return -1;
        }
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < k->min || v > k->max) {
            snprintf(eb, el, "%s: expected an integer in [%lld, %lld]", key,
                     (long long)k->min, (long long)k->max);
            return -1;
        }
        *(int64_t *)p = v;
        return 0;
    }
    snprintf(eb, el, "unknown configuration key '%s'", key);
    return -1;
}

/* Keys that hold only together: lo <= hi (lo < hi when strict), each alone
 * in bounds. off_zero: 0 in lo (1) or in hi (2) turns its feature off, and
 * the pair then holds anyway. */
static const struct order {
    const char *lo, *hi;
    size_t lo_off, hi_off;
    int strict, off_zero;
    const char *why;
} orders[] = {
#define O(lo, hi, strict, off_zero, why) \
    {#lo, #hi, offsetof(struct conf, lo), offsetof(struct conf, hi), strict, off_zero, why}
    O(topup_min, topup_max, 0, 0, "every top-up would be refused"),
    O(topup_min, daily_cap, 0, 0, "every top-up would pass the daily cap"),
    O(shed_park_ms, shed_refuse_ms, 1, 1, "a request would be refused before it could be parked"),
    O(validity_days, validity_max_days, 0, 2, "a first top-up would give less than validity_days"),
#undef O
};

int conf_check(const struct conf *c, char *eb, size_t el)
{
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
        const struct order *o = &orders[i];
        int64_t lo = *(const int64_t *)((const char *)c + o->lo_off);
        int64_t hi = *(const int64_t *)((const char *)c + o->hi_off);
        if ((o->off_zero == 1 && !lo) || (o->off_zero == 2 && !hi) || lo < hi || (!o->strict && lo == hi))
            continue;
        snprintf(eb, el, "%s (%lld) must be %s %s (%lld): %s", o->lo, (long long)lo,
                 o->strict ? "below" : "at most", o->hi, (long long)hi, o->why);
        return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int conf_set_pair(struct conf *c, const char *pair, char *eb, size_t el)
{
    char buf[512];
    if (strlen(pair) >= sizeof buf) {
        snprintf(eb, el, "configuration line too long");
        return -1;
    }
    strcpy(buf, pair);
    char *eq = strchr(buf, '=');
    if (!eq) {
        snprintf(eb, el, "expected key=value, got '%s'", pair);
        return -1;
    }
    *eq = 0;
    return conf_set(c, trim(buf), trim(eq + 1), eb, el);
}

/* The format README's Configuration section describes; the error names the
 * file and the line. */
int conf_load_file(struct conf *c, const char *path, char *eb, size_t el)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(eb, el, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {   /* a directory opens, and reads as nothing */
        snprintf(eb, el, "%s: not a regular file", path);
        fclose(f);
        return -1;
    }
    char line[CONF_LINE_MAX + 2];   /* the line, its newline, the NUL */
    int set_on[NKEYS] = {0};        /* the line each key was set on */
    int n = 0, rc = 0;
    char sub[400];
    while (!rc && fgets(line, sizeof line, f)) {
        n++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {   /* fgets would hand the rest on as a line */
            snprintf(eb, el, "%s:%d: line longer than %d bytes", path, n, CONF_LINE_MAX);
            rc = -1;
            break;
        }
        char *s = n == 1 && !strncmp(line, "\xEF\xBB\xBF", 3) ? line + 3 : line;   /* an editor's UTF-8 BOM */
        for (char *h = strchr(s, '#'); h; h = strchr(h + 1, '#'))
            if (h == s || isspace((unsigned char)h[-1])) {   /* no value holds a '#' */
                *h = 0;
                break;
            }
        s = trim(s);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(eb, el, "%s:%d: expected key = value, got '%s'", path, n, s);
            rc = -1;
            break;
        }
        *eq = 0;
        const char *key = trim(s), *value = trim(eq + 1);
        int k = key_index(key);
        if (k >= 0 && set_on[k]) {
            snprintf(eb, el, "%s:%d: %s is set again (first on line %d)", path, n, key, set_on[k]);
            rc = -1;
        } else if (conf_set(c, key, value, sub, sizeof sub)) {
            snprintf(eb, el, "%s:%d: %s", path, n, sub);
            rc = -1;
        } else {
            set_on[k] = n;
        }
    }
    if (!rc && ferror(f)) {
        snprintf(eb, el, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

int64_t conf_day_start(const struct conf *c, int64_t t)
{
    int64_t off = c->tz_offset_minutes * 60, local = t + off;
    int64_t day = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    return day * 86400 - off;
}

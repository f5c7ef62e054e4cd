/* conf — deployment configuration, table-driven.
 *
 * Defaults are those of DESIGN.md; files of `key = value` lines (--config,
 * in the order given) and then every `--set key=value` flag override them,
 * wherever the flags stand among the files. Every key has a
 * type and bounds; a bad value is refused with a message naming the key.
 * Money is in minor units of `currency` (CNY: fen). Durations are in seconds
 * unless the key says days.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

enum validity_rule {
    VALIDITY_EXTEND,   /* max(now, active_until) + validity_days (default) */
    VALIDITY_RESET,    /* now + validity_days */
    VALIDITY_MAX,      /* max(active_until, now + validity_days) */
};

struct conf {
    char currency[4];            /* ISO 4217, the wallet unit */
    int currency_set;            /* named by a file or a flag; else a database's own is taken */
    int64_t topup_min;           /* per top-up, minor units */
    int64_t topup_max;
    int64_t daily_cap;           /* per SIM per local day */
    int64_t validity_days;
    int validity_rule;
    int64_t validity_max_days;   /* active_until never passes now + this by a top-up; 0: no bound */
    int64_t grace_days;          /* active_until .. +grace: grace */
    int64_t retention_days;      /* after grace: expired, then terminated */
    int64_t reactivation_fee;    /* charged when an expired SIM is topped up */
    int64_t tz_offset_minutes;   /* where the "day" of the daily cap starts */
    int64_t sweep_interval;      /* seconds between lifecycle sweeps */
    int64_t max_body;            /* bytes of a JSON request body */
    int64_t max_import_body;     /* bytes of a CSV import */
    int64_t http_threads;        /* 0: one per online processor */
    int64_t max_connections;
    int64_t max_connections_per_address;   /* from one client address; 0: no limit */
    int64_t request_timeout;     /* seconds a request may take to arrive from its first byte (net.h) */
    int64_t batch_max;           /* commands per group commit */
    int64_t commit_delay_us;     /* a batch of 2+ stays open this long for more (engine.h E8); 0: never */
    int64_t cache_mb;            /* the writer's page cache, MiB */
    int64_t log_max_mb;          /* the log's bound: past it the writer waits for the checkpointer (engine.h E7) */
    int64_t writer_nice;         /* the writer's and syncer's nice value, below the other threads' 0 */
    int64_t queue_max;           /* commands waiting before 503 overloaded */
    int64_t queue_delay_ms;      /* ... or once the oldest has waited this long */
    int64_t shed_cpu_percent;    /* CPUs busier than this: admit only what they carry (loadshed.h); 101: never */
    int64_t shed_target_ms;      /* ... with at least this latency's worth of commands in flight */
    int64_t shed_p99_ms;         /* ... cut while more than 1% of admitted commands take longer; 0: never */
    int64_t shed_park_ms;        /* in a flood, a request not read this long waits unread (net.h); 0: no stack */
    int64_t shed_flood_ms;       /* a flood: more requests waiting than are answered in this long */
    int64_t shed_flood_min;      /* ... and more than this many */
    int64_t shed_refuse_ms;      /* a request not read this long is read and refused */
    int64_t auth_fail_per_minute;   /* failed authentications per client address */
    int64_t token_rate;          /* requests per second per token (burst: 2 s worth) */
    int64_t address_rate;        /* token-authenticated requests per second per address */
};

void conf_defaults(struct conf *c);
/* Sets one key from text. On failure returns -1 and writes a message to errbuf. */
int conf_set(struct conf *c, const char *key, const char *value, char *errbuf, size_t errlen);
/* Parses "key=value". */
int conf_set_pair(struct conf *c, const char *pair, char *errbuf, size_t errlen);
/* Applies a file of `key = value` lines (README, Configuration: the format):
 * a UTF-8 BOM first is skipped; blank lines, and from a '#' at the start or
 * after a blank to the end of the line, are skipped; each key at most once; a
 * line at most CONF_LINE_MAX bytes besides its newline. Not a regular file, a
 * read error or a bad line: -1, the message naming the file and the line;
 * the lines before a bad one stay applied. */
#define CONF_LINE_MAX 512
int conf_load_file(struct conf *c, const char *path, char *errbuf, size_t errlen);
/* Checks the keys that must agree with each other, once all are set:
 * topup_min <= topup_max, topup_min <= daily_cap, and shed_park_ms <
 * shed_refuse_ms unless parking is off. -1 with a message naming both keys. */
int conf_check(const struct conf *c, char *errbuf, size_t errlen);
/* Start of the local day that contains t (Unix seconds). */
int64_t conf_day_start(const struct conf *c, int64_t t);

/* err, i18n, conf, timefmt: the error list and its messages in three
 * languages, Accept-Language, configuration keys, the local day, RFC 3339. */
#include "testutil.h"

#include <time.h>

#include "util/i18n.h"
#include "util/timefmt.h"

static void test_error_list(void **state)
{
    assert_true(ERR__COUNT > 40);
    for (int e = 0; e < ERR__COUNT; e++) {
        const char *code = err_code(e);
        assert_non_null(code);
        assert_true(strlen(code) > 0);
        for (const char *p = code; *p; p++)   /* stable API codes are snake_case */
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        assert_in_range(err_status(e), 200, 599);
        assert_true(e == ERR_OK ? err_status(e) == 200 : err_status(e) >= 400);
        char key[96];
        snprintf(key, sizeof key, "error.%s", code);
        assert_string_equal(err_key(e), key);
        for (int o = 0; o < e; o++)
            if (!strcmp(code, err_code(o))) {
                print_error("errors %d and %d share the code %s\n", o, e, code);
                fail();
            }
    }
    /* Out of range is an internal error, fatal. */
    assert_int_equal(err_status(-1), 500);
    assert_int_equal(err_status(ERR__COUNT), 500);
    assert_string_equal(err_code(ERR__COUNT), "internal_error");
    assert_true(err_is_fatal(ERR__COUNT));
}

/* Which errors roll back the whole batch (F in ERR_MAP). */
static void test_fatal_flags(void **state)
{
    const struct {
        int err, fatal;
    } rows[] = {
        {ERR_STORAGE, 1},               /* the database failed */
        {ERR_WRITES_HALTED, 1},         /* after a failed commit */
        {ERR_OUTCOME_UNKNOWN, 1},       /* the commit itself failed */
        {ERR_INTERNAL, 1},              /* a bug: do not keep half of it */
        {ERR_OK, 0},
        {ERR_INSUFFICIENT_BALANCE, 0},  /* domain errors: the command alone */
        {ERR_CONSTRAINT, 0},
        {ERR_TRANSFER_EXISTS, 0},
        {ERR_OVERLOADED, 0},            /* refused before running */
        {ERR_SHUTTING_DOWN, 0},
        {-1, 1},                        /* not an error we know */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(err_is_fatal(rows[i].err), rows[i].fatal);
    int fatal = 0;
    for (int e = 0; e < ERR__COUNT; e++)
        fatal += err_is_fatal(e);
    assert_int_equal(fatal, 4);
}

/* Every error has a message in every catalogue; zh and ru are translations. */
static void test_messages(void **state)
{
    assert_int_equal(i18n_init(), 0);
    assert_int_equal(i18n_init(), 0);   /* idempotent */
    for (int e = 0; e < ERR__COUNT; e++) {
        const char *key = err_key(e);
        const char *en = i18n_text(LANG_EN, key), *zh = i18n_text(LANG_ZH, key), *ru = i18n_text(LANG_RU, key);
        if (!strcmp(en, key) || !strcmp(zh, key) || !strcmp(ru, key))
            print_error("%s: missing in a catalogue\n", key);
        assert_string_not_equal(en, key);
        assert_string_not_equal(zh, key);
        assert_string_not_equal(ru, key);
        assert_true(strlen(en) > 1 && strlen(zh) > 1 && strlen(ru) > 1);
        if (e != ERR_OK) {
            if (!strcmp(zh, en) || !strcmp(ru, en))
                print_error("%s: not translated\n", key);
            assert_string_not_equal(zh, en);
            assert_string_not_equal(ru, en);
        }
    }
    /* Fallbacks: an unknown key is itself; an unknown language is English. */
    assert_string_equal(i18n_text(LANG_RU, "no.such.key"), "no.such.key");
    assert_string_equal(i18n_text((enum lang)7, err_key(ERR_SIM_NOT_FOUND)), i18n_text(LANG_EN, err_key(ERR_SIM_NOT_FOUND)));
}

static void test_pick_language(void **state)
{
    const struct {
        const char *header;
        enum lang want;
    } rows[] = {
        {"ru-RU,ru;q=0.9,en;q=0.8", LANG_RU},         /* a Russian browser */
        {"zh-CN,zh;q=0.9,en;q=0.8", LANG_ZH},         /* a Chinese browser */
        {"en-US,en;q=0.9", LANG_EN},                  /* an English one */
        {"fr", LANG_EN},                              /* none of ours: English */
        {"fr-FR,fr;q=0.9,ru;q=0.5", LANG_RU},         /* the first of ours by quality */
        {"en;q=0.5, zh;q=0.9", LANG_ZH},              /* quality, not order */
        {"en;q=0.5,ru;q=0.6,zh;q=0.4", LANG_RU},      /* three qualities */
        {"zh, ru", LANG_ZH},                          /* equal quality: the first */
        {"ru;q=0, zh;q=0.1", LANG_ZH},                /* q=0 means not acceptable */
        {"ru;q=0", LANG_EN},                          /* nothing acceptable: English */
        {"ZH-tw", LANG_ZH},                           /* tags are case-insensitive */
        {"rus", LANG_EN},                             /* a prefix of a tag is not the tag */
        {"zhx-CN", LANG_EN},                          /* nor is a longer primary tag */
        {"*", LANG_EN},                               /* anything: English */
        {"ru ;q=0.9, en;q=0.5", LANG_RU},             /* whitespace before the ; (RFC 9110 OWS) */
        {" zh\t; q=0.7 ,en;q=0.6", LANG_ZH},           /* and around the q */
        {"zh;q=0.9, ru;q=1.5", LANG_ZH},              /* a q past 1 is malformed: ignored */
        {"zh;q=0.9, ru;q=0.9999", LANG_ZH},           /* more than three decimals too */
        {"zh;q=0.9, ru;q=x", LANG_ZH},                /* and one that is no number */
        {"en;q=0, *", LANG_ZH},                       /* English refused: the wildcard takes another */
        {"ru;q=0.5, *;q=0.8", LANG_EN},               /* the wildcard's q for those not named */
        {"zh-CN;q=0.3, zh;q=0.8, ru;q=0.5", LANG_ZH}, /* a language takes its highest q */
        {"ru;q=1.0, zh", LANG_RU},                    /* 1.0 is 1: the first of equals */
        {"ru;level=1;q=0.4, zh;q=0.3", LANG_RU},      /* other parameters are ignored */
        {"", LANG_EN},                                /* empty */
        {NULL, LANG_EN},                              /* no header */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum lang got = i18n_pick(rows[i].header);
        if (got != rows[i].want)
            print_error("row %zu (%s): %s\n", i, rows[i].header ? rows[i].header : "NULL", i18n_code(got));
        assert_int_equal(got, rows[i].want);
    }
    for (int l = 0; l < LANG__COUNT; l++)
        assert_int_equal(i18n_parse(i18n_code((enum lang)l)), l);
    assert_int_equal(i18n_parse("fr"), -1);
    assert_int_equal(i18n_parse(NULL), -1);
}

static void test_conf_set(void **state)
{
    const struct {
        const char *key, *value;
        int ok;
    } rows[] = {
        {"currency", "RUB", 1},                    /* an ISO 4217 code */
        {"currency", "rub", 0},                    /* lower case */
        {"currency", "RUBL", 0},                   /* four letters */
        {"currency", "R1B", 0},                    /* a digit */
        {"currency", "", 0},                       /* empty */
        {"topup_min", "1", 1},                     /* the lowest */
        {"topup_min", "0", 0},                     /* below the range */
        {"topup_max", "1099511627776", 1},         /* 2^40: the highest */
        {"topup_max", "1099511627777", 0},         /* above */
        {"daily_cap", "500000", 1},
        {"daily_cap", "5e5", 0},                   /* not an integer */
        {"daily_cap", "500000 ", 0},               /* trailing garbage */
        {"daily_cap", "", 0},                      /* empty */
        {"daily_cap", "99999999999999999999999", 0},/* overflows int64 */
        {"validity_days", "3650", 1},
        {"validity_days", "3651", 0},
        {"validity_days", "-1", 0},
        {"validity_rule", "reset", 1},
        {"validity_rule", "max", 1},
        {"validity_rule", "extend", 1},
        {"validity_rule", "EXTEND", 0},            /* case matters */
        {"validity_rule", "forever", 0},
        {"grace_days", "0", 1},                    /* no grace is allowed */
        {"tz_offset_minutes", "-720", 1},          /* UTC-12 */
        {"tz_offset_minutes", "840", 1},           /* UTC+14 */
        {"tz_offset_minutes", "841", 0},
        {"tz_offset_minutes", "-721", 0},
        {"reactivation_fee", "0", 1},
        {"batch_max", "0", 0},
        {"writer_nice", "-20", 1},                 /* the highest priority */
        {"writer_nice", "0", 1},                   /* as the other threads */
        {"writer_nice", "1", 0},                   /* below them: never wanted */
        {"writer_nice", "-21", 0},
        {"no_such_key", "1", 0},                   /* unknown keys are refused */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct conf c;
        conf_defaults(&c);
        char eb[256] = "";
        int rc = conf_set(&c, rows[i].key, rows[i].value, eb, sizeof eb);
        if ((rc == 0) != rows[i].ok)
            print_error("row %zu: %s=%s: %d (%s)\n", i, rows[i].key, rows[i].value, rc, eb);
        assert_int_equal(rc == 0, rows[i].ok);
        if (!rows[i].ok) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(eb, rows[i].key));   /* the message names the key */
        }
    }
    /* Values land in the right field. */
    struct conf c;
    char eb[256];
    conf_defaults(&c);
    assert_int_equal(conf_set(&c, "currency", "RUB", eb, sizeof eb), 0);
    assert_string_equal(c.currency, "RUB");
    assert_int_equal(conf_set(&c, "validity_rule", "max", eb, sizeof eb), 0);
    assert_int_equal(c.validity_rule, VALIDITY_MAX);
    assert_int_equal(conf_set(&c, "tz_offset_minutes", "-300", eb, sizeof eb), 0);
    assert_int_equal(c.tz_offset_minutes, -300);
    assert_int_equal(conf_set_pair(&c, " daily_cap = 12345 ", eb, sizeof eb), 0);
    assert_int_equal(c.daily_cap, 12345);
    assert_int_equal(conf_set_pair(&c, "daily_cap", eb, sizeof eb), -1);   /* no '=' */
    assert_int_equal(c.daily_cap, 12345);
    /* A refused value leaves the old one. */
    assert_int_equal(conf_set(&c, "grace_days", "x", eb, sizeof eb), -1);
    assert_int_equal(c.grace_days, 30);

    /* A file: comments and blank lines skipped, the failing line named. */
    char path[] = "/tmp/topup-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# topup\n\ncurrency = KZT\nreactivation_fee=700\nvalidity_days = 0\ngrace_days = 1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    conf_defaults(&c);
    assert_int_equal(conf_load_file(&c, path, eb, sizeof eb), -1);
    assert_non_null(strstr(eb, ":5:"));
    assert_non_null(strstr(eb, "validity_days"));
    assert_string_equal(c.currency, "KZT");
    assert_int_equal(c.reactivation_fee, 700);
    assert_int_equal(c.grace_days, 30);   /* the line after the error is not applied */
    unlink(path);
    assert_int_equal(conf_load_file(&c, path, eb, sizeof eb), -1);   /* gone */
    /* A directory opens and reads as nothing: it was an empty configuration. */
    assert_int_equal(conf_load_file(&c, "/tmp", eb, sizeof eb), -1);
    assert_non_null(strstr(eb, "/tmp: not a regular file"));
}

/* The file format, line by line: what loads and what is refused, naming
 * the line. */
static void test_conf_file_format(void **state)
{
    static char long_line[CONF_LINE_MAX + 64], longest[CONF_LINE_MAX + 64];
    /* a comment as long as a line may be, and one byte over (split in two, its tail was a line of its own) */
    snprintf(longest, sizeof longest, "#%0*d\ntopup_min = 150\n", CONF_LINE_MAX - 1, 0);
    snprintf(long_line, sizeof long_line, "topup_min = 150\n#%0*d= x\n", CONF_LINE_MAX, 0);
    const struct {
        const char *text;
        int64_t topup_min;   /* after the load */
        const char *error;   /* NULL: loads */
    } rows[] = {
        {"topup_min = 150\n", 150, NULL},
        {"topup_min=150", 150, NULL},                                  /* no spaces, no final newline */
        {"\xEF\xBB\xBFtopup_min = 150\n", 150, NULL},                  /* a BOM, as some editors save */
        {"daily_cap = 1\n\xEF\xBB\xBFtopup_min = 150\n", 100, ":2: unknown"},  /* only first: not text */
        {"topup_min = 150 # 1.50 CNY\n", 150, NULL},                   /* an inline comment */
        {"topup_min = 150\t# tab\n", 150, NULL},
        {"  # indented comment\n\n\t\ntopup_min = 150\n", 150, NULL},
        {"topup_min = 150#x\n", 100, ":1: topup_min: expected an integer"},   /* '#' without a blank */
        {"validity_rule = max # not extend\n", 100, NULL},
        {"currency = RUB # roubles\n", 100, NULL},
        {"topup_min = 150\ntopup_min = 200\n", 150, ":2: topup_min is set again (first on line 1)"},
        {"topup_min = 150\n# topup_min = 200\n", 150, NULL},         /* a commented-out one is not set */
        {longest, 150, NULL},
        {long_line, 150, ":2: line longer than 512 bytes"},
        {"topup_min 150\n", 100, ":1: expected key = value, got 'topup_min 150'"},
        {"= 150\n", 100, ":1: unknown configuration key ''"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char path[] = "/tmp/topup-conf-XXXXXX", eb[512] = "";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, rows[i].text, strlen(rows[i].text)), (ssize_t)strlen(rows[i].text));
        close(fd);
        struct conf c;
        conf_defaults(&c);
        int rc = conf_load_file(&c, path, eb, sizeof eb);
        unlink(path);
        if ((rc == 0) != !rows[i].error || (rows[i].error && !strstr(eb, rows[i].error)) ||
            c.topup_min != rows[i].topup_min)
            print_error("row %zu: %d (%s), topup_min %lld\n", i, rc, eb, (long long)c.topup_min);
        assert_int_equal(rc, rows[i].error ? -1 : 0);
        if (rows[i].error)
            assert_non_null(strstr(eb, rows[i].error));
        assert_int_equal(c.topup_min, rows[i].topup_min);
    }
}

/* Keys that must agree: each alone in bounds, together refused. */
static void test_conf_check(void **state)
{
    const struct {
        const char *pairs[2];
        const char *names;   /* both keys the message names; NULL: accepted */
    } rows[] = {
        {{NULL, NULL}, NULL},                                              /* the defaults agree */
        {{"topup_min=5000", "topup_max=100"}, "topup_min topup_max"},      /* every top-up refused */
        {{"topup_min=5000", "topup_max=5000"}, NULL},                      /* one amount only: allowed */
        {{"topup_min=600000", "topup_max=700000"}, "topup_min daily_cap"}, /* above the default cap */
        {{"daily_cap=99", NULL}, "topup_min daily_cap"},                   /* below the default min */
        {{"daily_cap=100", NULL}, NULL},                                   /* one minimum a day */
        {{"topup_max=600000", NULL}, NULL},                                /* above the cap: the cap bounds it */
        {{"shed_park_ms=1000", "shed_refuse_ms=1000"}, "shed_park_ms shed_refuse_ms"},
        {{"shed_park_ms=999", "shed_refuse_ms=1000"}, NULL},
        {{"shed_park_ms=0", "shed_refuse_ms=1"}, NULL},                    /* parking off */
        {{"validity_days=400", NULL}, "validity_days validity_max_days"},  /* past the bound of 365 */
        {{"validity_days=400", "validity_max_days=400"}, NULL},
        {{"validity_days=400", "validity_max_days=0"}, NULL},              /* no bound */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct conf c;
        char eb[256] = "";
        conf_defaults(&c);
        for (int k = 0; k < 2; k++)
            if (rows[i].pairs[k])
                assert_int_equal(conf_set_pair(&c, rows[i].pairs[k], eb, sizeof eb), 0);
        int rc = conf_check(&c, eb, sizeof eb);
        if ((rc == 0) != !rows[i].names)
            print_error("row %zu: %d (%s)\n", i, rc, eb);
        assert_int_equal(rc, rows[i].names ? -1 : 0);
        if (rows[i].names) {
            char names[64];
            snprintf(names, sizeof names, "%s", rows[i].names);
            *strchr(names, ' ') = 0;
            assert_non_null(strstr(eb, names));
            assert_non_null(strstr(eb, names + strlen(names) + 1));
        }
    }
}

/* The start of the local day containing t, for several offsets. */
static void test_day_start(void **state)
{
    const int64_t H = 3600, D = TU_DAY;
    const struct {
        int64_t tz;   /* minutes */
        int64_t t, want;
    } rows[] = {
        {0, TU_T0, TU_T0},                          /* UTC midnight is the start */
        {0, TU_T0 + D - 1, TU_T0},                  /* the last second of the day */
        {0, TU_T0 - 1, TU_T0 - D},                  /* the second before: the day before */
        {480, TU_T0, TU_T0 - 8 * H},                /* Shanghai: 08:00 local, the day began 16:00Z */
        {480, TU_T0 + 16 * H - 1, TU_T0 - 8 * H},   /* 23:59:59 local */
        {480, TU_T0 + 16 * H, TU_T0 + 16 * H},      /* local midnight */
        {180, TU_T0 + 21 * H, TU_T0 + 21 * H},      /* Moscow midnight is 21:00Z */
        {180, TU_T0 + 20 * H, TU_T0 - 3 * H},
        {-300, TU_T0, TU_T0 - 19 * H},              /* New York: 19:00 the day before */
        {-300, TU_T0 + 5 * H, TU_T0 + 5 * H},       /* local midnight 05:00Z */
        {330, TU_T0, TU_T0 - 330 * 60},             /* India, half an hour: 05:30 local */
        {840, TU_T0 + 10 * H, TU_T0 + 10 * H},      /* Kiribati, UTC+14 */
        {-720, TU_T0 + 11 * H, TU_T0 - 12 * H},     /* UTC-12 */
        {0, 0, 0},                                  /* the epoch */
        {0, -1, -D},                                /* before the epoch, rounding down */
        {480, -8 * H - 1, -D - 8 * H},              /* before the epoch with an offset */
    };
    struct conf c;
    conf_defaults(&c);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        c.tz_offset_minutes = rows[i].tz;
        int64_t got = conf_day_start(&c, rows[i].t);
        if (got != rows[i].want)
            print_error("row %zu: %+lld s\n", i, (long long)(got - rows[i].want));
        assert_int_equal(got, rows[i].want);
        assert_true(got <= rows[i].t && rows[i].t < got + D);
    }
}

static void test_arena_text(void **state)
{
    struct arena a;
    arena_init(&a);
    struct arena_text t;
    arena_text_init(&t, &a, 4);   /* a small first guess: it grows */
    arena_text_cat(&t, "{\"n\":", NULL);
    arena_text_int(&t, 0);
    arena_text_cat(&t, ",\"min\":", NULL);
    arena_text_int(&t, INT64_MIN);
    arena_text_cat(&t, ",\"max\":", NULL);
    arena_text_int(&t, INT64_MAX);
    arena_text_cat(&t, ",", "\"s\":\"", "", "x", "\"}", NULL);
    size_t len = 0;
    const char *out = arena_text_end(&t, &len);
    const char *want = "{\"n\":0,\"min\":-9223372036854775808,\"max\":9223372036854775807,\"s\":\"x\"}";
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    arena_text_init(&t, &a, 0);
    assert_string_equal(arena_text_end(&t, NULL), "");
    arena_free(&a);
    (void)state;
}

static void test_timefmt(void **state)
{
    const struct {
        int64_t t;
        const char *s;
    } rows[] = {
        {0, "1970-01-01T00:00:00Z"},                 /* the epoch */
        {TU_T0, "2026-01-01T00:00:00Z"},             /* the tests' T0 */
        {1795555500, "2026-11-24T21:25:00Z"},
        {951782400, "2000-02-29T00:00:00Z"},         /* a leap day */
        {4107542399, "2100-02-28T23:59:59Z"},        /* 2100 is not a leap year */
        {2147483648, "2038-01-19T03:14:08Z"},        /* past 32-bit time */
        {-1, "1969-12-31T23:59:59Z"},                /* before the epoch */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[TIMEFMT_LEN];
        timefmt_rfc3339(rows[i].t, out);
        assert_string_equal(out, rows[i].s);
        int64_t back = 0;
        assert_int_equal(timefmt_parse(rows[i].s, &back), 0);
        assert_int_equal(back, rows[i].t);
    }
    /* The same text as the C library's over the whole range, and a round trip. */
    for (int64_t t = TIMEFMT_MIN; t <= TIMEFMT_MAX; t += 86400 * 97 + 3607) {
        char out[TIMEFMT_LEN], want[TIMEFMT_LEN];
        time_t tt = (time_t)t;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        assert_true(strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm) == 20);
        timefmt_rfc3339(t, out);
        assert_string_equal(out, want);
    }
    char edge[TIMEFMT_LEN];
    timefmt_rfc3339(TIMEFMT_MIN - 1, edge);
    assert_string_equal(edge, "1000-01-01T00:00:00Z");
    timefmt_rfc3339(TIMEFMT_MAX + 1, edge);
    assert_string_equal(edge, "9999-12-31T23:59:59Z");
    /* Round trip over many instants. */
    for (int64_t t = 0; t < INT64_C(4102444800); t += 7777777) {
        char out[TIMEFMT_LEN];
        int64_t back = -1;
        timefmt_rfc3339(t, out);
        assert_int_equal(timefmt_parse(out, &back), 0);
        assert_int_equal(back, t);
    }
    const char *bad[] = {
        "2026-11-24T21:05:00",        /* no Z */
        "2026-11-24T21:05:00+00:00",  /* an offset, not the exact form */
        "2026-11-24 21:05:00Z",       /* a space for T */
        "2026-11-24T21:05Z",          /* no seconds */
        "2026-13-01T00:00:00Z",       /* month 13 */
        "2026-11-24T25:00:00Z",       /* hour 25 */
        "2026-11-24T21:05:00Zx",      /* trailing */
        "x026-11-24T21:05:00Z",       /* a letter */
        "",                           /* empty */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 42;
        if (timefmt_parse(bad[i], &t) != -1)
            print_error("accepted: %s\n", bad[i]);
        assert_int_equal(timefmt_parse(bad[i], &t), -1);
        assert_int_equal(t, 42);
    }
}

/* timefmt_parse is exact (a regression, fixed in 005bc3d): strptime skipped
 * leading blanks and took one-digit fields, and timegm normalised days and
 * seconds that do not exist, so each of these was taken for another instant. */
static void test_timefmt_not_exact(void **state)
{
    const char *bad[] = {
        "2026-02-30T00:00:00Z",   /* becomes 2026-03-02 */
        "2025-02-29T00:00:00Z",   /* not a leap year: 2025-03-01 */
        "2026-11-24T21:05:60Z",   /* becomes 21:06:00 */
        " 2026-1-24T21:05:00Z",   /* blank and a one-digit month: 2026-01-24 */
        "  26-11-24T21:05:00Z",   /* the year 26 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 0;
        if (timefmt_parse(bad[i], &t) != -1)
            print_error("accepted: '%s'\n", bad[i]);
        assert_int_equal(timefmt_parse(bad[i], &t), -1);
    }
}

static void test_arena(void **state)
{
    struct arena a;
    arena_init(&a);
    char *s = arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    char *big = arena_alloc(&a, 100000);   /* larger than a chunk */
    for (int i = 0; i < 100000; i++)
        assert_int_equal(big[i], 0);       /* zeroed */
    for (int i = 0; i < 1000; i++) {
        void *p = arena_alloc(&a, (size_t)i % 37 + 1);
        assert_int_equal((uintptr_t)p % 16, 0);
    }
    assert_string_equal(arena_printf(&a, "%s-%d", "x", 42), "x-42");
    assert_string_equal(arena_strndup(&a, "abcdef", 3), "abc");
    assert_string_equal(s, "hello");       /* earlier allocations stay put */
    assert_true(a.total >= 100000);
    arena_free(&a);
    assert_int_equal(a.total, 0);
    assert_null(a.head);
    assert_string_equal(arena_strdup(&a, "again"), "again");   /* reusable */
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_list),
        cmocka_unit_test(test_fatal_flags),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_pick_language),
        cmocka_unit_test(test_conf_set),
        cmocka_unit_test(test_conf_check),
        cmocka_unit_test(test_conf_file_format),
        cmocka_unit_test(test_day_start),
        cmocka_unit_test(test_arena_text),
        cmocka_unit_test(test_timefmt),
        cmocka_unit_test(test_timefmt_not_exact),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}

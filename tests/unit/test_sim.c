/* sim: identifiers, the lifecycle rule over the injected clock, validity
 * rules, creation, settlement (forfeiture), the sweeper and suspension. */
#include "testutil.h"

#include "core/plan.h"
#include "core/record.h"
#include "core/topup.h"

STORE_SQL(Q_STORED_STATE, "SELECT state = 'terminated' FROM sims WHERE id = ?");
STORE_SQL(Q_CHECK_AT, "SELECT COALESCE(check_at, 0) FROM sims WHERE id = ?");
STORE_SQL(Q_CHECK_QUEUE_AT, "SELECT id FROM sims INDEXED BY sims_check WHERE check_at IS NOT NULL "
                           "ORDER BY check_at, check_seq LIMIT 1 OFFSET ?");
STORE_SQL(Q_CHECK_SEQ, "SELECT COALESCE(check_seq, 0) FROM sims WHERE id = ?");
STORE_SQL(Q_DUE_INDEX_ENTRIES, "SELECT COUNT(*) FROM sims INDEXED BY sims_check WHERE check_at <= ?");
STORE_SQL(Q_BUNDLES_FORFEITED, "SELECT COUNT(*) FROM bundles WHERE sim_id = ? AND state = 'forfeited'");

static void test_iccid(void **state)
{
    const struct {
        const char *s;
        int valid;
    } rows[] = {
        {"8944110068256270054", 1},     /* 19 digits, published example */
        {"8986001234567890120", 1},     /* 19 digits */
        {"89701991234567890127", 1},    /* 20 digits */
        {"89860012345678901238", 1},    /* 20 digits */
        {"898600123456789016", 1},      /* 18 digits: the shortest allowed */
        {"8944110068256270055", 0},     /* check digit off by one */
        {"8944110068256270050", 0},     /* check digit zeroed */
        {"8944110068256270045", 0},     /* two digits swapped (54 -> 45) */
        {"89701991234567890128", 0},    /* 20 digits, wrong check digit */
        {"89860012345678905", 0},       /* 17 digits, Luhn-valid: too short */
        {"897010123456789012342", 0},   /* 21 digits, Luhn-valid: too long */
        {"8944110068256270O54", 0},     /* letter O for zero */
        {"89441100682562700A4", 0},     /* a hex digit */
        {"8944 1100682562700", 0},      /* a space */
        {"+8944110068256270054", 0},    /* a sign */
        {"8944110068256270054\n", 0},   /* a trailing newline */
        {"", 0},                        /* empty */
        {NULL, 0},                      /* absent */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (sim_iccid_valid(rows[i].s) != rows[i].valid)
            print_error("row %zu: %s\n", i, rows[i].s ? rows[i].s : "NULL");
        assert_int_equal(sim_iccid_valid(rows[i].s), rows[i].valid);
    }
    /* Of the ten possible last digits exactly one completes a valid ICCID. */
    char iccid[ICCID_MAX + 2] = "897010000000000123";
    int valid = 0;
    for (char d = '0'; d <= '9'; d++) {
        iccid[18] = d;
        iccid[19] = 0;
        valid += sim_iccid_valid(iccid);
    }
    assert_int_equal(valid, 1);
    /* The test helper's ICCIDs are valid. */
    for (int n = 1; n < 200; n++) {
        tu_iccid(n, iccid);
        assert_true(sim_iccid_valid(iccid));
    }
}

static void test_msisdn_imsi(void **state)
{
    const struct {
        const char *s;
        int valid;
    } msisdn[] = {
        {"+8613812345678", 1},     /* China mobile, 13 digits */
        {"+79161234567", 1},       /* Russia, 11 digits */
        {"+12345678", 1},          /* 8 digits: the shortest allowed */
        {"+123456789012345", 1},   /* 15 digits: the longest E.164 allows */
        {"+1234567", 0},           /* 7 digits */
        {"+1234567890123456", 0},  /* 16 digits */
        {"8613812345678", 0},      /* no '+' */
        {"+0613812345678", 0},     /* country code cannot start with 0 */
        {"+86 13812345678", 0},    /* a space */
        {"+86-13812345678", 0},    /* a dash */
        {"++8613812345678", 0},    /* two signs */
        {"+", 0},                  /* sign only */
        {"", 0},                   /* empty */
        {NULL, 0},                 /* absent */
    };
    for (size_t i = 0; i < sizeof msisdn / sizeof msisdn[0]; i++) {
        if (sim_msisdn_valid(msisdn[i].s) != msisdn[i].valid)
            print_error("msisdn row %zu\n", i);
        assert_int_equal(sim_msisdn_valid(msisdn[i].s), msisdn[i].valid);
    }
    const struct {
        const char *s;
        int valid;
    } imsi[] = {
        {"250991234567890", 1},    /* 15 digits */
        {"460001234567890", 1},    /* China */
        {"250991", 1},             /* 6 digits: the shortest allowed */
        {"25099", 0},              /* 5 digits */
        {"2509912345678901", 0},   /* 16 digits */
        {"25099123456789A", 0},    /* a letter */
        {"", 0},                   /* empty */
        {NULL, 0},                 /* absent */
    };
    for (size_t i = 0; i < sizeof imsi / sizeof imsi[0]; i++) {
        if (sim_imsi_valid(imsi[i].s) != imsi[i].valid)
            print_error("imsi row %zu\n", i);
        assert_int_equal(sim_imsi_valid(imsi[i].s), imsi[i].valid);
    }
    /* Languages and state names. */
    assert_true(sim_lang_valid("zh") && sim_lang_valid("en") && sim_lang_valid("ru"));
    assert_false(sim_lang_valid("fr") || sim_lang_valid("EN") || sim_lang_valid("") || sim_lang_valid(NULL));
    for (int st = 0; st < SIM__COUNT; st++)
        assert_int_equal(sim_state_parse(sim_state_name(st)), st);
    assert_int_equal(sim_state_parse("dormant"), -1);
    assert_string_equal(sim_state_name(SIM__COUNT), "unknown");
}

/* sim_state_at over the injected clock. U is active_until; G and R are the
 * grace and retention windows of the row. */
static void test_state_at(void **state)
{
    const int64_t U = TU_T0 + 30 * TU_DAY;
    const struct {
        int stored;
        int64_t until, now;
        int64_t grace, retention;   /* days */
        int want;
    } rows[] = {
        /* never activated: stays inactive whatever the time */
        {SIM_INACTIVE, 0, TU_T0 + 10000 * TU_DAY, 30, 90, SIM_INACTIVE},
        /* well inside validity */
        {SIM_ACTIVE, U, TU_T0, 30, 90, SIM_ACTIVE},
        /* last second of validity */
        {SIM_ACTIVE, U, U - 1, 30, 90, SIM_ACTIVE},
        /* at active_until: grace begins */
        {SIM_ACTIVE, U, U, 30, 90, SIM_GRACE},
        /* last second of grace */
        {SIM_ACTIVE, U, U + 30 * TU_DAY - 1, 30, 90, SIM_GRACE},
        /* grace over: expired */
        {SIM_ACTIVE, U, U + 30 * TU_DAY, 30, 90, SIM_EXPIRED},
        /* last second of retention */
        {SIM_GRACE, U, U + 120 * TU_DAY - 1, 30, 90, SIM_EXPIRED},
        /* retention over: terminated */
        {SIM_EXPIRED, U, U + 120 * TU_DAY, 30, 90, SIM_TERMINATED},
        /* an active SIM nobody swept for a year goes straight to terminated */
        {SIM_ACTIVE, U, U + 365 * TU_DAY, 30, 90, SIM_TERMINATED},
        /* other windows: 7 days of grace, 14 of retention */
        {SIM_ACTIVE, U, U + 7 * TU_DAY, 7, 14, SIM_EXPIRED},
        {SIM_ACTIVE, U, U + 21 * TU_DAY - 1, 7, 14, SIM_EXPIRED},
        {SIM_ACTIVE, U, U + 21 * TU_DAY, 7, 14, SIM_TERMINATED},
        /* no grace: expired at active_until */
        {SIM_ACTIVE, U, U, 0, 90, SIM_EXPIRED},
        /* no grace, no retention: terminated at active_until */
        {SIM_ACTIVE, U, U, 0, 0, SIM_TERMINATED},
        /* stored grace but validity extended (e.g. read before a top-up was saved): the clock wins */
        {SIM_GRACE, U, U - 1, 30, 90, SIM_ACTIVE},
        /* suspended does not move with time */
        {SIM_SUSPENDED, U, U + 1000 * TU_DAY, 30, 90, SIM_SUSPENDED},
        /* terminated is final, even if the clock reads earlier */
        {SIM_TERMINATED, U, TU_T0, 30, 90, SIM_TERMINATED},
    };
    struct conf cf;
    conf_defaults(&cf);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct sim s = {.state = rows[i].stored, .active_until = rows[i].until};
        cf.grace_days = rows[i].grace;
        cf.retention_days = rows[i].retention;
        int got = sim_state_at(&s, rows[i].now, &cf);
        if (got != rows[i].want)
            print_error("row %zu: %s, want %s\n", i, sim_state_name(got), sim_state_name(rows[i].want));
        assert_int_equal(got, rows[i].want);
    }
    /* The window ends that the rule uses. */
    struct sim s = {.state = SIM_ACTIVE, .active_until = U};
    conf_defaults(&cf);
    assert_int_equal(sim_grace_until(&s, &cf), U + 30 * TU_DAY);
    assert_int_equal(sim_terminate_at(&s, &cf), U + 120 * TU_DAY);
    s.active_until = 0;
    assert_int_equal(sim_grace_until(&s, &cf), 0);
    assert_int_equal(sim_terminate_at(&s, &cf), 0);
}

/* sim_check_at: the stored check_at while it is still ahead and not after
 * the next change; else the next change; none for states time cannot move. */
static void test_check_at(void **state)
{
    const int64_t U = TU_T0 + 30 * TU_DAY, G = U + 30 * TU_DAY, R = G + 90 * TU_DAY;
    const struct {
        int stored;
        int64_t check, now, want;
    } rows[] = {
        {SIM_INACTIVE, 0, TU_T0, 0},                    /* nothing coming */
        {SIM_ACTIVE, 0, TU_T0, U},                      /* first activation: its validity */
        {SIM_ACTIVE, U - TU_DAY, TU_T0, U - TU_DAY},    /* earlier than needed, still ahead: kept */
        {SIM_ACTIVE, U, TU_T0, U},
        {SIM_ACTIVE, U + 1, TU_T0, U},                  /* later than the change: pulled in */
        {SIM_ACTIVE, TU_T0, TU_T0, U},                  /* come (the sweeper's turn): moved on */
        {SIM_GRACE, U, U, G},
        {SIM_EXPIRED, G, G, R},
        {SIM_SUSPENDED, U, TU_T0, 0},                   /* time does not move it */
        {SIM_TERMINATED, R, R, 0},
    };
    struct conf cf;
    conf_defaults(&cf);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct sim s = {.state = rows[i].stored, .active_until = U, .check_at = rows[i].check};
        int64_t got = sim_check_at(&s, rows[i].now, &cf);
        if (got != rows[i].want)
            print_error("row %zu: %lld, want %lld\n", i, (long long)got, (long long)rows[i].want);
        assert_int_equal(got, rows[i].want);
    }
}

/* sim_validity_after_topup for the three rules (validity_days 30 unless the
 * row says) and under validity_max_days (365 unless the row says; 0: none). */
static void test_validity_rules(void **state)
{
    const int64_t N = TU_T0 + 100 * TU_DAY, D = TU_DAY;
    const struct {
        int rule;
        int64_t until;   /* 0: never activated */
        int64_t days;
        int64_t want;
        int64_t max_days;   /* 0 in the row: the default, 365 */
    } rows[] = {
        /* extend: inactive SIM counts from now */
        {VALIDITY_EXTEND, 0, 30, N + 30 * D, 0},
        /* extend: active SIM adds to what is left */
        {VALIDITY_EXTEND, N + 10 * D, 30, N + 40 * D, 0},
        /* extend: SIM in grace restarts from now, lost days are not given back */
        {VALIDITY_EXTEND, N - 5 * D, 30, N + 30 * D, 0},
        /* extend: a short validity */
        {VALIDITY_EXTEND, N + 10 * D, 1, N + 11 * D, 0},
        /* reset: inactive */
        {VALIDITY_RESET, 0, 30, N + 30 * D, 0},
        /* reset: active SIM loses what was left */
        {VALIDITY_RESET, N + 10 * D, 30, N + 30 * D, 0},
        /* reset: even when more was left than it gives */
        {VALIDITY_RESET, N + 40 * D, 30, N + 30 * D, 0},
        /* reset: grace */
        {VALIDITY_RESET, N - 5 * D, 30, N + 30 * D, 0},
        /* max: inactive */
        {VALIDITY_MAX, 0, 30, N + 30 * D, 0},
        /* max: 10 days left, the top-up gives 30 from now */
        {VALIDITY_MAX, N + 10 * D, 30, N + 30 * D, 0},
        /* max: 40 days left, kept */
        {VALIDITY_MAX, N + 40 * D, 30, N + 40 * D, 0},
        /* max: grace */
        {VALIDITY_MAX, N - 5 * D, 30, N + 30 * D, 0},
        /* the bound: extended up to now + 365 days, no further */
        {VALIDITY_EXTEND, N + 350 * D, 30, N + 365 * D, 0},
        {VALIDITY_EXTEND, N + 335 * D, 30, N + 365 * D, 0},
        {VALIDITY_EXTEND, N + 334 * D, 30, N + 364 * D, 0},
        /* a validity already past the bound (set before it) is kept, not cut */
        {VALIDITY_EXTEND, N + 400 * D, 30, N + 400 * D, 0},
        {VALIDITY_MAX, N + 400 * D, 30, N + 400 * D, 0},
        /* another bound; and none (-1 here: 0 in the configuration) */
        {VALIDITY_EXTEND, N + 50 * D, 30, N + 60 * D, 60},
        {VALIDITY_EXTEND, N + 400 * D, 30, N + 430 * D, -1},
    };
    struct conf cf;
    conf_defaults(&cf);
    assert_int_equal(cf.validity_max_days, 365);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cf.validity_rule = rows[i].rule;
        cf.validity_days = rows[i].days;
        cf.validity_max_days = rows[i].max_days < 0 ? 0 : rows[i].max_days ? rows[i].max_days : 365;
        struct sim s = {.state = rows[i].until ? SIM_ACTIVE : SIM_INACTIVE, .active_until = rows[i].until};
        int64_t got = sim_validity_after_topup(&s, N, &cf);
        if (got != rows[i].want)
            print_error("row %zu: %+lld s from the expected\n", i, (long long)(got - rows[i].want));
        assert_int_equal(got, rows[i].want);
    }
}

static void test_create(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    struct sim got = tu_sim_get(t, s.iccid);
    assert_int_equal(got.id, s.id);
    assert_string_equal(got.msisdn, s.msisdn);
    assert_string_equal(got.imsi, s.imsi);
    assert_string_equal(got.lang, "en");
    assert_int_equal(got.state, SIM_INACTIVE);
    assert_int_equal(got.active_until, 0);
    assert_int_equal(got.created_at, TU_T0);
    struct account w = tu_account(t, s.wallet_id);
    assert_string_equal(w.unit, "CNY");
    assert_string_equal(w.kind, "wallet");
    assert_int_equal(w.flags, LEDGER_NO_OVERDRAFT);
    assert_int_equal(tu_sim_balance(t, &s), 0);
    assert_int_equal(sim_get_by_id(&t->tx, s.id, &got), 0);
    assert_string_equal(got.iccid, s.iccid);

    /* The same SIM again: existed, same row, no second wallet. */
    struct sim again = {0};
    strcpy(again.iccid, s.iccid);
    strcpy(again.msisdn, s.msisdn);
    strcpy(again.imsi, s.imsi);
    strcpy(again.lang, "en");
    int existed = 0;
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &again, &existed)), 0);
    assert_int_equal(existed, 1);
    assert_int_equal(again.id, s.id);
    assert_int_equal(again.wallet_id, s.wallet_id);

    /* The same ICCID again: a field given and different conflicts; a field
     * left empty is no claim and cannot conflict. */
    const struct {
        const char *msisdn, *imsi, *lang;   /* NULL: as stored */
        int want;
    } other[] = {
        {"+79160000999", NULL, NULL, ERR_SIM_EXISTS},    /* another MSISDN */
        {NULL, "250990000000999", NULL, ERR_SIM_EXISTS}, /* another IMSI */
        {NULL, NULL, "ru", ERR_SIM_EXISTS},              /* another language */
        {"", NULL, NULL, 0},                             /* MSISDN left empty */
        {NULL, "", NULL, 0},                             /* IMSI left empty */
        {NULL, NULL, "", 0},                             /* language left empty */
        {"", "", "", 0},                                 /* only the ICCID */
        {"", "250990000000999", "", ERR_SIM_EXISTS},     /* empty fields do not hide a conflicting one */
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        struct sim o = again;
        if (other[i].msisdn)
            strcpy(o.msisdn, other[i].msisdn);
        if (other[i].imsi)
            strcpy(o.imsi, other[i].imsi);
        if (other[i].lang)
            strcpy(o.lang, other[i].lang);
        existed = -1;
        int rc = TU_CMD(t, sim_create(&t->tx, &o, &existed));
        if (rc != other[i].want)
            print_error("row %zu: %s\n", i, err_code(rc));
        assert_int_equal(rc, other[i].want);
        assert_int_equal(existed, !other[i].want);
        if (!rc) {   /* filled from the stored SIM */
            assert_int_equal(o.id, s.id);
            assert_string_equal(o.msisdn, s.msisdn);
            assert_string_equal(o.imsi, s.imsi);
            assert_string_equal(o.lang, "en");
        }
    }
    got = tu_sim_get(t, s.iccid);
    assert_string_equal(got.msisdn, s.msisdn);   /* nothing was overwritten */
    assert_string_equal(got.imsi, s.imsi);

    /* Another ICCID with a taken MSISDN. */
    struct sim dup = {0};
    tu_iccid(900, dup.iccid);
    strcpy(dup.msisdn, s.msisdn);
    strcpy(dup.lang, "zh");
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &dup, &existed)), ERR_MSISDN_TAKEN);
    assert_int_equal(sim_get(&t->tx, dup.iccid, &got), ERR_SIM_NOT_FOUND);

    /* SIMs without an MSISDN do not collide with each other; no language is en. */
    for (int n = 901; n <= 902; n++) {
        struct sim bare = {0};
        tu_iccid(n, bare.iccid);
        if (n == 901)
            strcpy(bare.lang, "ru");
        assert_int_equal(TU_CMD(t, sim_create(&t->tx, &bare, &existed)), 0);
        assert_int_equal(existed, 0);
        got = tu_sim_get(t, bare.iccid);
        assert_string_equal(got.msisdn, "");
        assert_string_equal(got.imsi, "");
        assert_string_equal(got.lang, n == 901 ? "ru" : "en");
    }
    assert_int_equal(sim_get(&t->tx, "8944110068256270054", &got), ERR_SIM_NOT_FOUND);
    assert_int_equal(sim_get_by_id(&t->tx, 424242, &got), ERR_SIM_NOT_FOUND);

    /* By its number: the same SIM, balance and all; a number nobody has is no SIM. */
    assert_true(s.msisdn[0] == '+');
    assert_int_equal(sim_get(&t->tx, s.msisdn, &got), 0);
    assert_int_equal(got.id, s.id);
    assert_string_equal(got.iccid, s.iccid);
    assert_int_equal(got.balance, tu_sim_balance(t, &s));
    assert_int_equal(sim_get(&t->tx, "+8613999999999", &got), ERR_SIM_NOT_FOUND);
    assert_int_equal(sim_get(&t->tx, "+", &got), ERR_SIM_NOT_FOUND);
    tu_ledger_ok(t);
}

/* payload (digits) completed with its Luhn check digit. */
static void iccid_of(const char *payload, char out[ICCID_MAX + 1])
{
    snprintf(out, ICCID_MAX + 1, "%s%c", payload, tu_luhn_digit(payload));
    assert_true(sim_iccid_valid(out));
}

static void test_home(void **state)
{
    char a[ICCID_MAX + 1], b[ICCID_MAX + 1], c[ICCID_MAX + 1];
    iccid_of("8986011234567890123", a);   /* 20 digits with its check digit */
    assert_int_equal(sim_home_id(a), 234567890123LL + 1);
    iccid_of("8986010000000000000", b);   /* the smallest home */
    assert_int_equal(sim_home_id(b), 1);
    iccid_of("898601999999999999", c);    /* 19 digits, the largest home */
    assert_int_equal(sim_home_id(c), SIM_HOME_MAX);
    iccid_of("89701000000000004", a);     /* 18 */
    assert_int_equal(sim_home_id(a), 4 + 1);
    assert_int_equal(sim_home_id("8986x1234567890123"), 0);
    assert_int_equal(sim_home_id(""), 0);
    (void)state;
}

/* Cards of two issuers with the same account digits: the first is at the
 * home, the second above every home; both are found, and a SIM created
 * later at a free home is at its home again. */
static void test_home_taken(void **state)
{
    struct tu *t = *state;
    const char *payload[] = {"8986011000000000042", "8970991000000000042", "8970991000000000043"};
    struct sim s[3];
    for (int i = 0; i < 3; i++) {
        memset(&s[i], 0, sizeof s[i]);
        iccid_of(payload[i], s[i].iccid);
        int existed = -1;
        assert_int_equal(TU_CMD(t, sim_create(&t->tx, &s[i], &existed)), 0);
        assert_int_equal(existed, 0);
        assert_int_equal(s[i].wallet_id, -s[i].id);
    }
    assert_int_equal(s[0].id, sim_home_id(s[0].iccid));
    assert_int_equal(sim_home_id(s[1].iccid), s[0].id);
    assert_int_equal(s[1].id, SIM_HOME_MAX + 1);
    assert_int_equal(s[2].id, sim_home_id(s[2].iccid));
    for (int i = 0; i < 3; i++) {
        struct sim got = tu_sim_get(t, s[i].iccid);
        assert_int_equal(got.id, s[i].id);
        assert_string_equal(got.iccid, s[i].iccid);
        int existed = 0;   /* created again: found, wherever it is */
        struct sim again = {0};
        strcpy(again.iccid, s[i].iccid);
        assert_int_equal(TU_CMD(t, sim_create(&t->tx, &again, &existed)), 0);
        assert_int_equal(existed, 1);
        assert_int_equal(again.id, s[i].id);
    }
    /* Another issuer's card whose home is taken, never created: not found. */
    struct sim got;
    char absent[ICCID_MAX + 1];
    iccid_of("8944111000000000042", absent);
    assert_int_equal(sim_get(&t->tx, absent, &got), ERR_SIM_NOT_FOUND);
    /* The next one above the homes comes after the last. */
    struct sim d = {0};
    iccid_of("8944111000000000043", d.iccid);
    int existed = 0;
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &d, &existed)), 0);
    assert_int_equal(d.id, SIM_HOME_MAX + 2);
    tu_ledger_ok(t);
}

/* ledger L7: a posted credit to a wallet handed to the caller reaches the
 * wallet with the SIM's row (sim_save), once, and only when asked for. */
static void test_credit_with_the_row(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    int64_t source, shop;
    assert_int_equal(ledger_system_account(&t->tx, "clearing_test", "CNY", &source), 0);
    assert_int_equal(ledger_system_account(&t->tx, "shop", "CNY", &shop), 0);
    struct transfer x = {.xid = "later:1", .debit = source, .credit = s.wallet_id, .amount = 700, .unit = "CNY",
                         .kind = "topup", .sim_id = s.id, .credit_later = &s.credit};
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &x)), 0);
    assert_int_equal(s.credit, 700);
    assert_int_equal(tu_sim_balance(t, &s), 0);   /* not in the row yet */
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &x)), 0);   /* the same xid: nothing more */
    assert_int_equal(s.credit, 700);
    x.unit = "USD";   /* a wallet's unit is still checked */
    x.xid = "later:usd";
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &x)), ERR_UNIT_MISMATCH);
    assert_int_equal(s.credit, 700);
    assert_int_equal(TU_CMD(t, sim_save(&t->tx, &s)), 0);
    assert_int_equal(s.credit, 0);
    assert_int_equal(tu_sim_balance(t, &s), 700);
    tu_ledger_ok(t);
    /* Not a wallet, or not posted: applied at once, the caller's sum untouched. */
    int64_t later = 0;
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){
                                                   .xid = "later:2", .debit = s.wallet_id, .credit = shop,
                                                   .amount = 200, .unit = "CNY", .kind = "purchase",
                                                   .credit_later = &later})),
                     0);
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){
                                                   .xid = "later:3", .debit = source, .credit = s.wallet_id,
                                                   .amount = 50, .unit = "CNY", .kind = "topup",
                                                   .flags = XFER_PENDING, .credit_later = &later})),
                     0);
    assert_int_equal(later, 0);
    assert_int_equal(tu_sim_balance(t, &s), 500);
    assert_int_equal(tu_balance(t, shop), 200);
    tu_ledger_ok(t);
}

static void topup(struct tu *t, const struct sim *s, int64_t amount)
{
    struct topup_result out;
    struct topup_req req = {.iccid = s->iccid, .amount = amount, .currency = "CNY", .channel = CHANNEL_portal,
                            .method = METHOD_alipay};
    int rc = TU_CMD(t, topup_apply(&t->tx, &req, &out));
    if (rc)
        print_error("topup: %s\n", err_code(rc));
    assert_int_equal(rc, 0);
}

static void record_kinds(void *arg, const struct record *r)
{
    char *buf = arg;
    char line[64];
    snprintf(line, sizeof line, "%s:%lld:%lld;", r->kind, (long long)r->amount, (long long)r->balance_after);
    strcat(buf, line);
}

/* Settling steps through grace and expired to terminated; termination
 * forfeits the wallet and the bundles, and the ledger still balances. */
static void test_settle_terminates(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    topup(t, &s, 5000);   /* active until T0 + 30 d */
    struct plan p = {.code = "sms50", .name_zh = "短信", .name_en = "SMS", .name_ru = "СМС", .price = 1200,
                     .currency = "CNY", .validity_days = 365, .allowance = {0, 0, 50}, .zones = "[]"};
    int existed;
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &p, &existed)), 0);
    s = tu_sim_get(t, s.iccid);
    struct bundle b;
    int64_t after;
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &p, &b, &after)), 0);
    assert_int_equal(after, 3800);
    int64_t forfeit_cny = tu_system_balance(t, "forfeiture", "CNY");
    int64_t forfeit_sms = tu_system_balance(t, "forfeiture", "sms");

    const struct {
        int64_t at;
        int changed, want;
        int64_t balance;
    } rows[] = {
        {TU_T0 + 29 * TU_DAY, 0, SIM_ACTIVE, 3800},       /* still valid */
        {TU_T0 + 30 * TU_DAY, 1, SIM_GRACE, 3800},        /* validity over */
        {TU_T0 + 45 * TU_DAY, 0, SIM_GRACE, 3800},        /* no move inside grace */
        {TU_T0 + 60 * TU_DAY, 1, SIM_EXPIRED, 3800},      /* grace over: money kept */
        {TU_T0 + 150 * TU_DAY - 1, 0, SIM_EXPIRED, 3800}, /* last second of retention */
        {TU_T0 + 150 * TU_DAY, 1, SIM_TERMINATED, 0},     /* forfeited */
        {TU_T0 + 400 * TU_DAY, 0, SIM_TERMINATED, 0},     /* final; nothing forfeited twice */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tu_at(t, rows[i].at);
        s = tu_sim_get(t, s.iccid);
        int changed = -1;
        assert_int_equal(TU_CMD(t, sim_settle(&t->tx, &s, &changed)), 0);
        if (s.state != rows[i].want)
            print_error("row %zu: %s\n", i, sim_state_name(s.state));
        assert_int_equal(changed, rows[i].changed);
        assert_int_equal(s.state, rows[i].want);
        assert_int_equal(tu_sim_get(t, s.iccid).state, rows[i].want);   /* saved */
        assert_int_equal(tu_sim_balance(t, &s), rows[i].balance);
        tu_ledger_ok(t);
    }
    assert_int_equal(tu_system_balance(t, "forfeiture", "CNY"), forfeit_cny + 3800);
    assert_int_equal(tu_system_balance(t, "forfeiture", "sms"), forfeit_sms + 50);
    assert_int_equal(tu_balance(t, b.account[SVC_SMS]), 0);
    assert_int_equal(tu_scalar_i(t, &Q_BUNDLES_FORFEITED, s.id), 1);
    char kinds[256] = "";
    int more = -1;
    assert_int_equal(record_list(&t->tx, s.id, 0, 10, record_kinds, kinds, &more), 0);
    assert_string_equal(kinds, "forfeiture:-3800:0;bundle_purchase:-1200:3800;topup:5000:5000;");
    assert_int_equal(more, 0);
}

/* A terminated SIM with an empty wallet forfeits nothing and still terminates. */
static void test_settle_empty_wallet(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    topup(t, &s, 100);
    struct plan p = {.code = "p100", .name_zh = "a", .name_en = "a", .name_ru = "a", .price = 100,
                     .currency = "CNY", .validity_days = 1, .allowance = {1000, 0, 0}, .zones = "[]"};
    int existed;
    struct bundle b;
    int64_t after = -1;
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &p, &existed)), 0);
    s = tu_sim_get(t, s.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &p, &b, &after)), 0);
    assert_int_equal(after, 0);
    tu_at(t, TU_T0 + 200 * TU_DAY);
    int changed = 0;
    assert_int_equal(TU_CMD(t, sim_settle(&t->tx, &s, &changed)), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(s.state, SIM_TERMINATED);
    assert_int_equal(tu_system_balance(t, "forfeiture", "CNY"), 0);
    assert_int_equal(tu_system_balance(t, "forfeiture", "bytes"), 1000);
    tu_ledger_ok(t);
}

/* The sweeper moves exactly the SIMs whose time has come, within its limit. */
static void test_sweep(void **state)
{
    struct tu *t = *state;
    struct sim a, b, c, d;
    tu_sim(t, &a);
    tu_sim(t, &b);
    tu_sim(t, &c);   /* never topped up: never swept */
    tu_sim(t, &d);
    topup(t, &a, 1000);              /* until T0 + 30 d */
    tu_at(t, TU_T0 + 20 * TU_DAY);
    topup(t, &b, 1000);              /* until T0 + 50 d */
    topup(t, &d, 1000);              /* until T0 + 50 d */
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &d, 1, NULL)), 0);   /* suspended: never swept */

    const struct {
        int64_t at;
        int limit, moved;
        int a, b;
    } rows[] = {
        {TU_T0 + 29 * TU_DAY, 100, 0, SIM_ACTIVE, SIM_ACTIVE},       /* nothing due */
        {TU_T0 + 30 * TU_DAY, 100, 1, SIM_GRACE, SIM_ACTIVE},        /* a's validity ends */
        {TU_T0 + 30 * TU_DAY, 100, 0, SIM_GRACE, SIM_ACTIVE},        /* swept once only */
        {TU_T0 + 49 * TU_DAY, 100, 0, SIM_GRACE, SIM_ACTIVE},        /* a inside grace, b still valid */
        {TU_T0 + 500 * TU_DAY, 1, 1, SIM_GRACE, SIM_TERMINATED},     /* both due, limit 1: the active queue goes first... */
        {TU_T0 + 500 * TU_DAY, 1, 1, SIM_TERMINATED, SIM_TERMINATED},/* ...and the next sweep takes the other */
        {TU_T0 + 500 * TU_DAY, 100, 0, SIM_TERMINATED, SIM_TERMINATED},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tu_at(t, rows[i].at);
        int moved = -1, more = -1;
        assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, rows[i].limit, &moved, &more)), 0);
        if (moved != rows[i].moved)
            print_error("row %zu: moved %d\n", i, moved);
        assert_int_equal(moved, rows[i].moved);
        if (tu_sim_get(t, a.iccid).state != rows[i].a || tu_sim_get(t, b.iccid).state != rows[i].b)
            print_error("row %zu: a %s, b %s\n", i, sim_state_name(tu_sim_get(t, a.iccid).state),
                        sim_state_name(tu_sim_get(t, b.iccid).state));
        assert_int_equal(tu_sim_get(t, a.iccid).state, rows[i].a);
        assert_int_equal(tu_sim_get(t, b.iccid).state, rows[i].b);
        assert_int_equal(tu_sim_get(t, c.iccid).state, SIM_INACTIVE);
        assert_int_equal(tu_sim_get(t, d.iccid).state, SIM_SUSPENDED);
    }
    assert_int_equal(tu_sim_balance(t, &a), 0);
    assert_int_equal(tu_sim_balance(t, &b), 0);
    assert_int_equal(tu_sim_balance(t, &d), 1000);
    assert_int_equal(tu_system_balance(t, "forfeiture", "CNY"), 2000);
    tu_ledger_ok(t);
}

/* Top-ups that extend an active SIM leave check_at (and its index entry)
 * where it was; the sweeper, finding nothing due there, moves it to the new
 * validity without touching the state; it then comes due once more. */
static void test_sweep_moves_check_on(void **state)
{
    struct tu *t = *state;
    struct sim a;
    tu_sim(t, &a);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), 0);   /* inactive: never looked at */
    topup(t, &a, 1000);                                       /* until T0 + 30 d */
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), TU_T0 + 30 * TU_DAY);
    tu_at(t, TU_T0 + 10 * TU_DAY);
    topup(t, &a, 1000);                                       /* until T0 + 60 d */
    topup(t, &a, 1000);                                       /* until T0 + 90 d */
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), TU_T0 + 30 * TU_DAY);

    int moved = -1, more = -1;
    tu_at(t, TU_T0 + 30 * TU_DAY);
    assert_int_equal(tu_scalar_i(t, &Q_DUE_INDEX_ENTRIES, t->tx.now), 1);
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(tu_sim_get(t, a.iccid).state, SIM_ACTIVE);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), TU_T0 + 90 * TU_DAY);
    assert_int_equal(tu_scalar_i(t, &Q_DUE_INDEX_ENTRIES, t->tx.now), 0);
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);   /* nothing left to look at */
    assert_int_equal(moved, 0);

    tu_at(t, TU_T0 + 90 * TU_DAY);
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(tu_sim_get(t, a.iccid).state, SIM_GRACE);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), TU_T0 + 120 * TU_DAY);   /* grace ends */

    /* Suspended: out of the index; resumed: back in at its next change. */
    struct sim s = tu_sim_get(t, a.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), 0);
    s = tu_sim_get(t, a.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), 0);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), TU_T0 + 120 * TU_DAY);
    tu_ledger_ok(t);
}

/* SIMs activated in the same second come in the sweeper's queue in the order
 * they were activated, not by id (migration 011): a new entry goes at the
 * end of the index, not among the second's earlier ones. A top-up that
 * leaves check_at where it is leaves its place in the queue too. */
static void test_check_queue_in_activation_order(void **state)
{
    struct tu *t = *state;
    struct sim s[4];
    for (int i = 0; i < 4; i++)
        tu_sim(t, &s[i]);
    const int order[4] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++)
        topup(t, &s[order[i]], 1000);
    int64_t first_seq = tu_scalar_i(t, &Q_CHECK_SEQ, s[0].id);
    topup(t, &s[0], 1000);   /* extends the validity; check_at and its place stay */
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_SEQ, s[0].id), first_seq);
    int64_t prev = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tu_scalar_i(t, &Q_CHECK_QUEUE_AT, i), s[order[i]].id);
        int64_t seq = tu_scalar_i(t, &Q_CHECK_SEQ, s[order[i]].id);
        assert_true(seq > prev);
        prev = seq;
    }
    tu_ledger_ok(t);
}

/* A copy of a SIM older than its row (here: suspended through another copy
 * meanwhile) is saved as it says, and with the check_at its state needs:
 * the row's, not the copy's, decides whether check_at moves. */
static void test_save_from_an_older_copy(void **state)
{
    struct tu *t = *state;
    struct sim a;
    tu_sim(t, &a);
    topup(t, &a, 1000);                                       /* until T0 + 30 d */
    struct sim older = tu_sim_get(t, a.iccid), other = older;
    assert_int_equal(older.check_at, TU_T0 + 30 * TU_DAY);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &other, 1, NULL)), 0);
    assert_int_equal(tu_scalar_i(t, &Q_CHECK_AT, a.id), 0);   /* suspended: never looked at */

    older.day_total = 0;
    assert_int_equal(TU_CMD(t, sim_save(&t->tx, &older)), 0);
    struct sim now = tu_sim_get(t, a.iccid);
    assert_int_equal(now.state, SIM_ACTIVE);
    assert_int_equal(now.day_total, 0);
    assert_int_equal(now.check_at, TU_T0 + 30 * TU_DAY);      /* active again: looked at when it ends */
    assert_int_equal(older.check_at, now.check_at);

    struct sim gone = older;                                  /* no such SIM: nothing saved */
    gone.id = 1 << 30;
    assert_int_equal(TU_CMD(t, sim_save(&t->tx, &gone)), ERR_SIM_NOT_FOUND);
    tu_ledger_ok(t);
}

/* A sweep that stopped at its limit says so (*more), though nothing it
 * looked at moved: SIMs topped up since they came due are looked at and move
 * nothing. The sweeper went on only while a limit's worth moved, so a run of
 * them left every SIM due behind them for the next interval (60 s for 1,000,
 * at 10M SIMs a day's lag for a day's worth). */
static void test_sweep_says_more(void **state)
{
    struct tu *t = *state;
    struct sim s[4];
    for (int i = 0; i < 4; i++) {
        tu_sim(t, &s[i]);
        topup(t, &s[i], 1000);   /* until T0 + 30 d */
    }
    tu_at(t, TU_T0 + 10 * TU_DAY);
    for (int i = 0; i < 3; i++)
        topup(t, &s[i], 1000);   /* extended; check_at stays at T0 + 30 d */
    tu_at(t, TU_T0 + 30 * TU_DAY);
    const struct {
        int moved, more;
    } rows[] = {{0, 1}, {1, 1}, {0, 0}};   /* s0 s1 nothing due; s2 nothing, s3 to grace; done */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int moved = -1, more = -1;
        assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 2, &moved, &more)), 0);
        if (moved != rows[i].moved || more != rows[i].more)
            print_error("row %zu: moved %d, more %d\n", i, moved, more);
        assert_int_equal(moved, rows[i].moved);
        assert_int_equal(more, rows[i].more);
    }
    assert_int_equal(tu_sim_get(t, s[3].iccid).state, SIM_GRACE);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_sim_get(t, s[i].iccid).state, SIM_ACTIVE);
    tu_ledger_ok(t);
}

/* sim_sweep(limit) moves at most `limit` in all, SIMs settled and bundles
 * expired together; until 005bc3d it could move twice the limit. */
static void test_sweep_limit_counts_bundles(void **state)
{
    struct tu *t = *state;
    struct sim a, b;
    tu_sim(t, &a);
    tu_sim(t, &b);
    topup(t, &a, 1000);
    topup(t, &b, 5000);
    struct plan p = {.code = "d1", .name_zh = "a", .name_en = "a", .name_ru = "a", .price = 100,
                     .currency = "CNY", .validity_days = 1, .allowance = {1000, 0, 0}, .zones = "[]"};
    int existed;
    struct bundle bu;
    int64_t after;
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &p, &existed)), 0);
    b = tu_sim_get(t, b.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &b, &p, &bu, &after)), 0);
    tu_at(t, TU_T0 + 30 * TU_DAY);   /* a's validity and b's bundle both end */
    int moved = -1, more = -1;
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 1, &moved, &more)), 0);
    assert_true(moved <= 1);
    assert_int_equal(more, 1);
}

/* Two SIMs topped up, a reservation of 300 on the first's wallet (timeout
 * seconds; 0: none), then 200 days later a sweep, which terminates both. */
static int64_t sweep_past_a_reservation(struct tu *t, int64_t timeout, struct sim *a, struct sim *b)
{
    tu_sim(t, a);
    tu_sim(t, b);
    topup(t, a, 1000);
    topup(t, b, 1000);
    int64_t charging;
    assert_int_equal(ledger_system_account(&t->tx, "charging", "CNY", &charging), 0);
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){.xid = "hold", .debit = a->wallet_id,
                                                                          .credit = charging, .amount = 300,
                                                                          .unit = "CNY", .kind = "reserve",
                                                                          .flags = XFER_PENDING,
                                                                          .timeout = timeout})),
                     0);
    tu_at(t, TU_T0 + 200 * TU_DAY);
    int moved = -1, more = -1;
    int rc = TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more));
    if (rc)
        print_error("sim_sweep: %s\n", err_code(rc));
    assert_int_equal(rc, 0);
    assert_int_equal(moved, 2);
    assert_int_equal(tu_sim_get(t, a->iccid).state, SIM_TERMINATED);
    assert_int_equal(tu_sim_get(t, b->iccid).state, SIM_TERMINATED);
    return charging;
}

/* A SIM with an open reservation of money still terminates, and the sweep
 * goes on to the next SIM. Until 005bc3d forfeit() moved the posted balance,
 * ignoring pending debits: ERR_INSUFFICIENT_BALANCE, and sim_sweep, which
 * stops at the first error, settled no SIM at all. */
static void test_sweep_with_reservation(void **state)
{
    struct sim a, b;
    sweep_past_a_reservation(*state, 0, &a, &b);
}

/* A reservation past its timeout, not yet expired by the sweep's pass over
 * pendings when its SIM terminates: forfeit() expires it (L5) where it voids
 * the others. Voiding refused it (ERR_PENDING_EXPIRED), so sim_sweep, which
 * runs first, failed every sweep from then on. */
static void test_sweep_with_reservation_past_its_time(void **state)
{
    struct tu *t = *state;
    struct sim a, b;
    int64_t charging = sweep_past_a_reservation(t, 3600, &a, &b);
    assert_int_equal(tu_sim_balance(t, &a), 0);
    assert_int_equal(tu_system_balance(t, "forfeiture", "CNY"), 2000);
    assert_int_equal(tu_account(t, charging).credits_pending, 0);
    tu_ledger_ok(t);
}

/* Suspension: refused on terminated SIMs; time does not move a suspended SIM;
 * resuming recomputes the state from the clock. */
static void test_suspend_resume(void **state)
{
    struct tu *t = *state;
    struct sim s, fresh;
    tu_sim(t, &s);
    tu_sim(t, &fresh);
    topup(t, &s, 1000);   /* until T0 + 30 d */
    s = tu_sim_get(t, s.iccid);

    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_SUSPENDED);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);   /* twice: no-op */
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_SUSPENDED);

    /* While suspended, top-ups are refused and the sweeper leaves it alone. */
    struct topup_result out;
    struct topup_req req = {.iccid = s.iccid, .amount = 500, .currency = "CNY", .channel = CHANNEL_admin,
                            .method = METHOD_adjustment};
    assert_int_equal(TU_CMD(t, topup_apply(&t->tx, &req, &out)), ERR_SIM_SUSPENDED);
    tu_at(t, TU_T0 + 35 * TU_DAY);
    int moved = -1, more = -1;
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_SUSPENDED);

    /* Resumed after validity ended: grace, not active. */
    s = tu_sim_get(t, s.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), 0);
    assert_int_equal(s.state, SIM_GRACE);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_GRACE);
    assert_int_equal(tu_sim_get(t, s.iccid).active_until, TU_T0 + 30 * TU_DAY);
    assert_int_equal(tu_sim_balance(t, &s), 1000);

    /* Resumed within validity: active. */
    tu_at(t, TU_T0 + 36 * TU_DAY);
    topup(t, &s, 100);   /* until T0 + 66 d */
    s = tu_sim_get(t, s.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), 0);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_ACTIVE);

    /* Suspending a never-activated SIM and resuming it gives it back inactive. */
    fresh = tu_sim_get(t, fresh.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &fresh, 1, NULL)), 0);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &fresh, 0, NULL)), 0);
    assert_int_equal(tu_sim_get(t, fresh.iccid).state, SIM_INACTIVE);

    /* Suspended past termination: resuming terminates it (and forfeits). */
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);
    tu_at(t, TU_T0 + 400 * TU_DAY);
    s = tu_sim_get(t, s.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), 0);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_TERMINATED);
    assert_int_equal(tu_sim_balance(t, &s), 0);
    assert_int_equal(tu_scalar_i(t, &Q_STORED_STATE, s.id), 1);

    /* Terminated: neither suspend nor resume. */
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), ERR_SIM_TERMINATED);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), ERR_SIM_TERMINATED);
    tu_ledger_ok(t);
}

/* Who and why: each suspension and resumption that changed the state is a
 * record (amount 0, the balance as it stood) with the reason given and the
 * principal; one that changed nothing adds none. */
static void record_who(void *arg, const struct record *r)
{
    char *buf = arg;
    char line[160];
    snprintf(line, sizeof line, "%s:%lld:%lld:%s:%s;", r->kind, (long long)r->amount, (long long)r->balance_after,
             r->served_by ? r->served_by : "-", r->reason ? r->reason : "-");
    strcat(buf, line);
}

static void test_suspension_records(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    topup(t, &s, 1000);
    s = tu_sim_get(t, s.iccid);
    t->tx.principal = "token:7";
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, "reported stolen, ticket 4411")), 0);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, "again")), 0);     /* already: nothing */
    t->tx.principal = "token:8";
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, NULL)), 0);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 0, "not suspended")), 0);   /* nothing */
    t->tx.principal = "test";
    topup(t, &s, 500);
    char buf[1024] = "";
    int more = -1;
    assert_int_equal(record_list(&t->tx, s.id, 0, 10, record_who, buf, &more), 0);
    assert_string_equal(buf, "topup:500:1500:test:-;resumption:0:1000:token:8:-;"
                             "suspension:0:1000:token:7:reported stolen, ticket 4411;topup:1000:1000:test:-;");
    assert_int_equal(more, 0);
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_ACTIVE);
    tu_ledger_ok(t);
}

/* Migration 014: a terminated SIM gives its number back. A new SIM may take
 * it at once, even before the sweeper reached the old one (provisioning
 * terminates it then); the old one keeps it as released_msisdn, which an
 * inventory imported again may still name. */
static void test_number_released(void **state)
{
    struct tu *t = *state;
    struct sim old, other;
    tu_sim(t, &old);
    tu_sim(t, &other);
    topup(t, &old, 1000);
    topup(t, &other, 1000);
    char number[MSISDN_MAX + 1];
    snprintf(number, sizeof number, "%s", old.msisdn);

    /* Still in grace: taken. */
    tu_at(t, TU_T0 + 40 * TU_DAY);
    struct sim fresh = {0};
    tu_iccid(800, fresh.iccid);
    snprintf(fresh.msisdn, sizeof fresh.msisdn, "%s", number);
    int existed = -1;
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &fresh, &existed)), ERR_MSISDN_TAKEN);

    /* Past retention, not yet swept: provisioning terminates the holder and takes the number. */
    tu_at(t, TU_T0 + 400 * TU_DAY);
    fresh = (struct sim){0};
    tu_iccid(800, fresh.iccid);
    snprintf(fresh.msisdn, sizeof fresh.msisdn, "%s", number);
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &fresh, &existed)), 0);
    assert_int_equal(existed, 0);
    struct sim got = tu_sim_get(t, old.iccid);
    assert_int_equal(got.state, SIM_TERMINATED);
    assert_string_equal(got.msisdn, "");
    assert_int_equal(tu_sim_balance(t, &got), 0);
    char released[MSISDN_MAX + 1];
    assert_int_equal(sim_released_msisdn(&t->tx, &got, released), 0);
    assert_string_equal(released, number);
    assert_int_equal(sim_get(&t->tx, number, &got), 0);
    assert_string_equal(got.iccid, fresh.iccid);

    /* The old card's inventory line again: it exists, number and all; a number it never had conflicts. */
    struct sim again = {0};
    snprintf(again.iccid, sizeof again.iccid, "%s", old.iccid);
    snprintf(again.msisdn, sizeof again.msisdn, "%s", number);
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &again, &existed)), 0);
    assert_int_equal(existed, 1);
    snprintf(again.msisdn, sizeof again.msisdn, "+79990000001");
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &again, &existed)), ERR_SIM_EXISTS);

    /* Swept first: the same, through the sweeper. */
    int moved = 0, more = 0;
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    got = tu_sim_get(t, other.iccid);
    assert_int_equal(got.state, SIM_TERMINATED);
    assert_string_equal(got.msisdn, "");
    assert_int_equal(sim_released_msisdn(&t->tx, &got, released), 0);
    assert_string_equal(released, other.msisdn);
    assert_int_equal(sim_get(&t->tx, other.msisdn, &got), ERR_SIM_NOT_FOUND);
    tu_ledger_ok(t);
}

/* A SIM the clock has terminated has given its number back whether or not
 * the sweeper has reached it yet: its number names no SIM (404, as after
 * the sweep), while its ICCID still names it. */
static void test_number_of_a_sim_past_retention(void **state)
{
    struct tu *t = *state;
    struct sim old, got;
    tu_sim(t, &old);
    topup(t, &old, 1000);
    tu_at(t, TU_T0 + 40 * TU_DAY);   /* in grace: still its number */
    assert_int_equal(sim_get(&t->tx, old.msisdn, &got), 0);
    assert_string_equal(got.iccid, old.iccid);
    tu_at(t, TU_T0 + 400 * TU_DAY);   /* past retention, not swept */
    assert_int_equal(sim_get(&t->tx, old.msisdn, &got), ERR_SIM_NOT_FOUND);
    assert_int_equal(sim_get(&t->tx, old.iccid, &got), 0);
    assert_int_equal(sim_state_at(&got, t->tx.now, t->tx.cf), SIM_TERMINATED);
    int moved = 0, more = 0;
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    assert_int_equal(sim_get(&t->tx, old.msisdn, &got), ERR_SIM_NOT_FOUND);
    tu_ledger_ok(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iccid),
        cmocka_unit_test(test_msisdn_imsi),
        cmocka_unit_test(test_state_at),
        cmocka_unit_test(test_check_at),
        cmocka_unit_test(test_validity_rules),
        cmocka_unit_test_setup_teardown(test_create, tu_setup, tu_teardown),
        cmocka_unit_test(test_home),
        cmocka_unit_test_setup_teardown(test_home_taken, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_credit_with_the_row, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_settle_terminates, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_settle_empty_wallet, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_check_queue_in_activation_order, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_moves_check_on, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_save_from_an_older_copy, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_limit_counts_bundles, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_says_more, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_with_reservation, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_with_reservation_past_its_time, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_suspend_resume, tu_setup, tu_teardown),
cmocka_unit_test_setup_teardown(test_suspension_records, tu_setup, tu_teardown),
cmocka_unit_test_setup_teardown(test_number_released, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_number_of_a_sim_past_retention, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests_name("sim", tests, NULL, NULL);
}

/* testutil — what every unit test needs: a fresh migrated SQLite database in a
 * temporary directory, a struct tx over it at a time the test chooses (the
 * injected clock), the default configuration, receipt keys from a fixed seed,
 * an arena, savepoint-wrapped commands and SIMs with valid ICCIDs.
 *
 * Usage: cmocka_unit_test_setup_teardown(test_x, tu_setup, tu_teardown); the
 * test gets `struct tu *t = *state;` with a write transaction already open at
 * TU_T0. Everything is released by tu_teardown (the ASan build checks it).
 *
 * Known-bug tests call TU_KNOWN_BUG() first: they are skipped unless the
 * environment has TOPUP_KNOWN_BUGS=1, so the suite stays green while the
 * report names a test that fails.
 */
#pragma once
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ledger.h"
#include "core/receipt.h"
#include "core/sim.h"
#include "core/tx.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/log.h"

#define TU_DAY INT64_C(86400)
#define TU_T0 INT64_C(1767225600)   /* 2026-01-01T00:00:00Z, 08:00 in Asia/Shanghai */

#define TU_KNOWN_BUG()                              \
    do {                                            \
        const char *kb_ = getenv("TOPUP_KNOWN_BUGS"); \
        if (!kb_ || strcmp(kb_, "1"))               \
            skip();                                 \
    } while (0)

struct tu {
    char dir[64];
    char path[96];
    struct store *st;
    struct conf cf;            /* tx.cf points here: tests may change it */
    struct receipt_keys keys;
    struct arena a;
    struct tx tx;
    int in_tx;
    int next_sim;              /* numbers ICCIDs and MSISDNs */
};

/* The Luhn check digit that completes `payload` (digits only). */
static inline char tu_luhn_digit(const char *payload)
{
    int sum = 0, dbl = 1;
    for (size_t i = strlen(payload); i-- > 0; dbl = !dbl) {
        int d = payload[i] - '0';
        if (dbl && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

/* A valid 19-digit ICCID, distinct for each n. */
static inline void tu_iccid(int n, char out[ICCID_MAX + 1])
{
    snprintf(out, ICCID_MAX + 1, "897010%012d", n);
    size_t len = strlen(out);
    out[len] = tu_luhn_digit(out);
    out[len + 1] = 0;
}

/* Raw SQL on a connection of the test's own: runs it, or fails the test
 * with SQLite's message. */
static inline void tu_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        print_error("%s: %s\n", sql, msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* The first column of the one row a query gives. */
static inline int64_t tu_sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* PRAGMA integrity_check finds nothing wrong with the database. */
static inline void tu_integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
}

static inline void tu_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static inline void tu_begin(struct tu *t)
{
    assert_false(t->in_tx);
    assert_int_equal(store_begin(t->st), 0);
    t->in_tx = 1;
}

static inline void tu_commit(struct tu *t)
{
    assert_true(t->in_tx);
    assert_int_equal(store_commit(t->st), 0);
    t->in_tx = 0;
}

static inline void tu_rollback(struct tu *t)
{
    store_rollback(t->st);
    t->in_tx = 0;
}

/* A fresh migrated database; no transaction open. */
static inline struct tu *tu_open(void)
{
    log_set_level(LOG_ERROR + 1);   /* refusals we provoke are not news */
    struct tu *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->dir, sizeof t->dir, "/tmp/topup-unit-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/topup.db", t->dir);
    assert_int_equal(store_open(&t->st, t->path, STORE_WRITER), 0);
    int applied = -1;
    assert_int_equal(store_migrate(t->st, &applied), 0);
    assert_true(applied >= 1);
    conf_defaults(&t->cf);
    unsigned char seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)(i * 7 + 1);
    receipt_keys_from_seed(&t->keys, seed);
    arena_init(&t->a);
    t->tx = (struct tx){.st = t->st, .now = TU_T0, .cf = &t->cf, .keys = &t->keys, .a = &t->a,
                        .principal = "test"};
    return t;
}

static inline void tu_close(struct tu *t)
{
    if (!t)
        return;
    if (t->in_tx)
        tu_rollback(t);
    store_close(t->st);
    arena_free(&t->a);
    tu_rm_dir(t->dir);
    free(t);
}

static inline int tu_setup(void **state)
{
    struct tu *t = tu_open();
    tu_begin(t);
    *state = t;
    return 0;
}

static inline int tu_teardown(void **state)
{
    tu_close(*state);
    *state = NULL;
    return 0;
}

/* Moves the injected clock. */
static inline void tu_at(struct tu *t, int64_t now) { t->tx.now = now; }

/* One command in its own savepoint, as the engine runs it: on error the
 * savepoint is rolled back, so a refusal leaves nothing behind. */
static inline void tu_sp_begin(struct tu *t) { assert_int_equal(store_savepoint(t->st), 0); }
static inline int tu_sp_end(struct tu *t, int rc)
{
    if (rc)
        assert_int_equal(store_rollback_to(t->st), 0);
    else
        assert_int_equal(store_release(t->st), 0);
    return rc;
}
#define TU_CMD(t, call) (tu_sp_begin(t), tu_sp_end((t), (call)))

/* A new SIM (state inactive) with a valid ICCID and a unique MSISDN. */
static inline void tu_sim(struct tu *t, struct sim *s)
{
    int n = ++t->next_sim;
    memset(s, 0, sizeof *s);
    tu_iccid(n, s->iccid);
    snprintf(s->msisdn, sizeof s->msisdn, "+7916%07d", n);
    snprintf(s->imsi, sizeof s->imsi, "25099%010u", (unsigned)n % 1000000000u);
    strcpy(s->lang, "en");
    assert_true(sim_iccid_valid(s->iccid));
    assert_true(sim_msisdn_valid(s->msisdn));
    int existed = -1;
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, s, &existed)), 0);
    assert_int_equal(existed, 0);
    assert_true(s->id > 0 && s->wallet_id == -s->id);   /* ledger L7 */
    assert_int_equal(s->state, SIM_INACTIVE);
}

static inline struct account tu_account(struct tu *t, int64_t id)
{
    struct account a;
    assert_int_equal(ledger_account_get(&t->tx, id, &a), 0);
    return a;
}

static inline int64_t tu_balance(struct tu *t, int64_t account) { struct account a = tu_account(t, account); return ledger_balance(&a); }

/* Balance of the system account "<kind>:<unit>" (creates it at 0 if absent). */
static inline int64_t tu_system_balance(struct tu *t, const char *kind, const char *unit)
{
    int64_t id;
    assert_int_equal(ledger_system_account(&t->tx, kind, unit, &id), 0);
    return tu_balance(t, id);
}

static inline int64_t tu_sim_balance(struct tu *t, const struct sim *s)
{
    int64_t b = -1;
    assert_int_equal(sim_balance(&t->tx, s, &b), 0);
    return b;
}

/* A SIM as stored. */
static inline struct sim tu_sim_get(struct tu *t, const char *iccid)
{
    struct sim s;
    assert_int_equal(sim_get(&t->tx, iccid, &s), 0);
    return s;
}

/* L2, L3, L6 hold, and per unit posted debits equal credits. */
static inline void tu_ledger_ok(struct tu *t)
{
    struct ledger_report r;
    assert_int_equal(ledger_check(&t->tx, &r), 0);
    if (r.violations)
        print_error("ledger: %d violation(s), first: %s\n", r.violations, r.first_violation);
    assert_int_equal(r.violations, 0);
    for (int i = 0; i < r.nunits; i++)
        assert_int_equal(r.units[i].debits, r.units[i].credits);
}

/* A single integer from a statement without parameters (or one int64). */
static inline int64_t tu_scalar(struct tu *t, struct store_sql *sql)
{
    struct store_q *q;
    assert_int_equal(store_one(t->st, &q, sql, ""), 0);
    int64_t v = store_i64(q, 0);
    assert_int_equal(store_end(q), 0);
    return v;
}

static inline int64_t tu_scalar_i(struct tu *t, struct store_sql *sql, int64_t arg)
{
    struct store_q *q;
    assert_int_equal(store_one(t->st, &q, sql, "i", arg), 0);
    int64_t v = store_i64(q, 0);
    assert_int_equal(store_end(q), 0);
    return v;
}

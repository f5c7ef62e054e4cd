/* plan — catalogue and bundles; see plan.h. */
#include "core/plan.h"

#include <stdio.h>
#include <string.h>

#include "core/ledger.h"
#include "core/record.h"
#include "store/store.h"
#include "util/err.h"

const char *const service_unit[SVC__COUNT] = {"bytes", "seconds", "sms"};
const char *const service_allowance[SVC__COUNT] = {"data_bytes", "voice_seconds", "sms"};

int plan_code_valid(const char *c)
{
    size_t n = 0;
    for (; c[n]; n++)
        if (!((c[n] >= 'a' && c[n] <= 'z') || (c[n] >= '0' && c[n] <= '9') || c[n] == '_' || c[n] == '-'))
            return 0;
    return n >= 1 && n <= PLAN_CODE_MAX;
}

#define PLAN_COLS "id, code, name_zh, name_en, name_ru, price, currency, validity_days, data_bytes, " \
                  "voice_seconds, sms, zones, payg, active"
STORE_SQL(SQL_PLAN_GET, "SELECT " PLAN_COLS " FROM plans WHERE code = ?");
STORE_SQL(SQL_PLAN_LIST, "SELECT " PLAN_COLS " FROM plans ORDER BY id");
STORE_SQL(SQL_PLAN_INSERT,
          "INSERT INTO plans(code, name_zh, name_en, name_ru, price, currency, validity_days, data_bytes, "
          "voice_seconds, sms, zones, payg, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)");

static void load(struct store_q *q, struct plan *p)
{
    memset(p, 0, sizeof *p);
    p->id = store_i64(q, 0);
    snprintf(p->code, sizeof p->code, "%s", store_text(q, 1));
    snprintf(p->name_zh, sizeof p->name_zh, "%s", store_text(q, 2));
    snprintf(p->name_en, sizeof p->name_en, "%s", store_text(q, 3));
    snprintf(p->name_ru, sizeof p->name_ru, "%s", store_text(q, 4));
    p->price = store_i64(q, 5);
    snprintf(p->currency, sizeof p->currency, "%s", store_text(q, 6));
    p->validity_days = store_i64(q, 7);
    for (int s = 0; s < SVC__COUNT; s++)
        p->allowance[s] = store_i64(q, 8 + s);
    snprintf(p->zones, sizeof p->zones, "%s", store_text(q, 11));
    p->payg = (int)store_i64(q, 12);
    p->active = (int)store_i64(q, 13);
}

int plan_get(struct tx *tx, const char *code, struct plan *out)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_PLAN_GET, "s", code);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_PLAN_NOT_FOUND : rc;
    load(q, out);
    return store_end(q);
}

int plan_list(struct tx *tx, void (*fn)(void *arg, const struct plan *p), void *arg)
{
    struct store_q *q = store_query(tx->st, &SQL_PLAN_LIST, "");
    while (store_next(q)) {
        struct plan p;
        load(q, &p);
        fn(arg, &p);
    }
    return store_end(q);
}

static int same_plan(const struct plan *a, const struct plan *b)
{
    return !strcmp(a->name_zh, b->name_zh) && !strcmp(a->name_en, b->name_en) && !strcmp(a->name_ru, b->name_ru) &&
           a->price == b->price && !strcmp(a->currency, b->currency) && a->validity_days == b->validity_days &&
           !memcmp(a->allowance, b->allowance, sizeof a->allowance) && !strcmp(a->zones, b->zones) &&
           a->payg == b->payg;
}

int plan_create(struct tx *tx, struct plan *p, int *existed)
{
    struct plan old;
    *existed = 0;
    int rc = plan_get(tx, p->code, &old);
    if (rc == 0) {
        if (!same_plan(&old, p))
            return ERR_PLAN_EXISTS;
        *existed = 1;
        *p = old;
        return 0;
    }
    if (rc != ERR_PLAN_NOT_FOUND)
        return rc;
    rc = store_exec(tx->st, &SQL_PLAN_INSERT, "ssssisiiiisdi", p->code, p->name_zh, p->name_en, p->name_ru,
                    p->price, p->currency, p->validity_days, p->allowance[SVC_DATA], p->allowance[SVC_VOICE],
                    p->allowance[SVC_SMS], p->zones, p->payg, tx->now);
    if (rc)
        return rc == ERR_CONSTRAINT ? ERR_PLAN_EXISTS : rc;
    p->id = store_last_id(tx->st);
    p->active = 1;
    return 0;
}

STORE_SQL(SQL_BUNDLE_INSERT,
          "INSERT INTO bundles(sim_id, plan_id, state, starts_at, expires_at, created_at) "
          "VALUES (?, ?, 'active', ?, ?, ?)");
STORE_SQL(SQL_BUNDLE_ACCOUNTS,
          "UPDATE bundles SET data_account = ?, voice_account = ?, sms_account = ? WHERE id = ?");
#define BUNDLE_COLS "b.id, b.sim_id, b.plan_id, p.code, b.state, COALESCE(b.data_account, 0), " \
    "COALESCE(b.voice_account, 0), COALESCE(b.sms_account, 0), b.starts_at, b.expires_at, " \
    "COALESCE(d.credits_posted - d.debits_posted, 0), COALESCE(v.credits_posted - v.debits_posted, 0), " \
    "COALESCE(s.credits_posted - s.debits_posted, 0) FROM bundles b JOIN plans p ON p.id = b.plan_id " \
    "LEFT JOIN accounts d ON d.id = b.data_account LEFT JOIN accounts v ON v.id = b.voice_account " \
    "LEFT JOIN accounts s ON s.id = b.sms_account"
STORE_SQL(SQL_BUNDLE_LIST, "SELECT " BUNDLE_COLS " WHERE b.sim_id = ? ORDER BY b.id");
STORE_SQL(SQL_BUNDLE_ACTIVE_OF_SIM, "SELECT " BUNDLE_COLS " WHERE b.sim_id = ? AND b.state = 'active'");
STORE_SQL(SQL_BUNDLE_DUE,
          "SELECT " BUNDLE_COLS " WHERE b.state = 'active' AND b.expires_at <= ? ORDER BY b.expires_at LIMIT ?");
STORE_SQL(SQL_BUNDLE_STATE, "UPDATE bundles SET state = ? WHERE id = ?");

static void load_bundle(struct store_q *q, struct bundle *b)
{
    memset(b, 0, sizeof *b);
    b->id = store_i64(q, 0);
    b->sim_id = store_i64(q, 1);
    b->plan_id = store_i64(q, 2);
    snprintf(b->plan_code, sizeof b->plan_code, "%s", store_text(q, 3));
    snprintf(b->state, sizeof b->state, "%s", store_text(q, 4));
    for (int s = 0; s < SVC__COUNT; s++) {
        b->account[s] = store_i64(q, 5 + s);
        b->remaining[s] = store_i64(q, 10 + s);
    }
    b->starts_at = store_i64(q, 8);
    b->expires_at = store_i64(q, 9);
}

int plan_buy(struct tx *tx, struct sim *s, const struct plan *p, struct bundle *b, int64_t *balance_after)
{
    int rc = sim_settle_for_money(tx, s);
    if (rc)
        return rc;
    if (s->state != SIM_ACTIVE)
        return ERR_SIM_NOT_ACTIVE;
    if (!p->active)
        return ERR_PLAN_NOT_SOLD;
    if (strcmp(p->currency, tx->cf->currency))
        return ERR_CURRENCY_MISMATCH;

    memset(b, 0, sizeof *b);
    b->sim_id = s->id;
    b->plan_id = p->id;
    snprintf(b->plan_code, sizeof b->plan_code, "%s", p->code);
    snprintf(b->state, sizeof b->state, "active");
    b->starts_at = tx->now;
    b->expires_at = tx->now + p->validity_days * 86400;
    rc = store_exec(tx->st, &SQL_BUNDLE_INSERT, "iiiii", s->id, p->id, b->starts_at, b->expires_at, tx->now);
    if (rc)
        return rc;
    b->id = store_last_id(tx->st);

    char xid[64];
    int64_t revenue;
    if (p->price > 0) {
        snprintf(xid, sizeof xid, "bundle:%lld:price", (long long)b->id);
        rc = ledger_system_account(tx, "revenue_plans", p->currency, &revenue);
        if (!rc)
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = s->wallet_id, .credit = revenue,
                                                        .amount = p->price, .unit = p->currency,
                                                        .kind = "plan_purchase", .sim_id = s->id});
        if (rc)
            return rc;
    }
    for (int v = 0; v < SVC__COUNT; v++) {
        if (!p->allowance[v])
            continue;
        int64_t issuer;
        rc = ledger_account_create(tx, "bundle", service_unit[v], s->id, LEDGER_NO_OVERDRAFT, &b->account[v]);
        if (!rc)
            rc = ledger_system_account(tx, "issuance", service_unit[v], &issuer);
        snprintf(xid, sizeof xid, "bundle:%lld:%s", (long long)b->id, service_unit[v]);
        if (!rc)
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = issuer, .credit = b->account[v],
                                                        .amount = p->allowance[v], .unit = service_unit[v],
                                                        .kind = "bundle_grant", .sim_id = s->id});
        if (rc)
            return rc;
        b->remaining[v] = p->allowance[v];
    }
    rc = store_exec(tx->st, &SQL_BUNDLE_ACCOUNTS, "zzzi", b->account[SVC_DATA], b->account[SVC_VOICE],
                    b->account[SVC_SMS], b->id);
    if (!rc)
        rc = sim_balance(tx, s, balance_after);
    if (!rc)
        rc = record_add(tx, &(struct record){.sim_id = s->id, .kind = "bundle_purchase", .amount = -p->price,
                                             .currency = p->currency, .balance_after = *balance_after,
                                             .bundle_id = b->id},
                        &s->head);
    return rc;
}

int bundle_list(struct tx *tx, int64_t sim_id, void (*fn)(void *arg, const struct bundle *b), void *arg)
{
    struct store_q *q = store_query(tx->st, &SQL_BUNDLE_LIST, "i", sim_id);
    while (store_next(q)) {
        struct bundle b;
        load_bundle(q, &b);
        fn(arg, &b);
    }
    return store_end(q);
}

/* Moves what is left of each bucket to <sink>:<unit> and closes the bundle. */
static int close_bundle(struct tx *tx, const struct bundle *b, const char *sink_kind, const char *state)
{
    for (int v = 0; v < SVC__COUNT; v++) {
        if (!b->account[v])
            continue;
        int rc = ledger_void_reservations(tx, b->account[v]);
        if (rc)
            return rc;
        if (b->remaining[v] <= 0)
            continue;
        int64_t sink;
        char xid[64];
        snprintf(xid, sizeof xid, "bundle:%lld:%s:%s", (long long)b->id, sink_kind, service_unit[v]);
        rc = ledger_system_account(tx, sink_kind, service_unit[v], &sink);
        if (!rc)
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = b->account[v], .credit = sink,
                                                        .amount = b->remaining[v], .unit = service_unit[v],
                                                        .kind = sink_kind, .sim_id = b->sim_id});
        if (rc)
            return rc;
    }
    return store_exec(tx->st, &SQL_BUNDLE_STATE, "si", state, b->id);
}

/* Collects rows first: a statement must not stay open while we write through others. */
static int close_many(struct tx *tx, struct store_q *q, const char *sink, const char *state, int *count)
{
    struct bundle batch[64];
    int n = 0;
    while (n < 64 && store_next(q))
        load_bundle(q, &batch[n++]);
    int rc = store_end(q);
    for (int i = 0; !rc && i < n; i++)
        rc = close_bundle(tx, &batch[i], sink, state);
    if (count)
        *count = n;
    return rc;
}

int bundle_forfeit_all(struct tx *tx, int64_t sim_id)
{
    int n;
    do {
        int rc = close_many(tx, store_query(tx->st, &SQL_BUNDLE_ACTIVE_OF_SIM, "i", sim_id), "forfeiture",
                            "forfeited", &n);
        if (rc)
            return rc;
    } while (n == 64);
    return 0;
}

int bundle_sweep(struct tx *tx, int limit, int *count)
{
    *count = 0;
    while (*count < limit) {
        int n, want = limit - *count < 64 ? limit - *count : 64;
        int rc = close_many(tx, store_query(tx->st, &SQL_BUNDLE_DUE, "id", tx->now, want), "expiry", "expired", &n);
        if (rc)
            return rc;
        *count += n;
        if (n < want)
            break;
    }
    return 0;
}

/* ledger — see ledger.h for the invariants L1..L7. */
#include "core/ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/arena.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/text.h"

/* Positive ids (L7), even when only wallets exist yet: SQLite's own pick,
 * the largest rowid plus one, would be 0 or below. */
STORE_SQL(SQL_ACCOUNT_NEW,
          "INSERT INTO accounts(id, kind, unit, sim_id, flags, name, created_at) "
          "VALUES (MAX(1, (SELECT COALESCE(MAX(id), 0) + 1 FROM accounts)), ?, ?, ?, ?, ?, ?)");
STORE_SQL(SQL_ACCOUNT_BY_NAME, "SELECT id FROM accounts WHERE name = ?");
STORE_SQL(SQL_ACCOUNT_GET,
          "SELECT id, unit, kind, flags, debits_pending, debits_posted, credits_pending, credits_posted "
          "FROM accounts WHERE id = ?");
STORE_SQL(SQL_ACCOUNT_UNIT, "SELECT unit FROM accounts WHERE id = ?");
/* L7: a wallet's totals are in its SIM's row (which gives back its room: migration 007). */
STORE_SQL(SQL_WALLET_NEW,
          "INSERT INTO accounts(id, kind, unit, sim_id, flags, created_at) VALUES (?, 'wallet', ?, ?, ?, ?)");
STORE_SQL(SQL_WALLET_GET,
          "SELECT a.id, a.unit, a.kind, a.flags, s.w_debits_pending, s.w_debits_posted, s.w_credits_pending, "
          "s.w_credits_posted FROM accounts a JOIN sims s ON s.id = -a.id WHERE a.id = ?");
STORE_SQL(SQL_WALLET_APPLY,
          "UPDATE sims SET w_debits_pending = w_debits_pending + ?, w_debits_posted = w_debits_posted + ?, "
          "w_credits_pending = w_credits_pending + ?, w_credits_posted = w_credits_posted + ?, room = NULL "
          "WHERE id = ?");
STORE_SQL(SQL_APPLY,
          "UPDATE accounts SET debits_pending = debits_pending + ?, debits_posted = debits_posted + ?, "
          "credits_pending = credits_pending + ?, credits_posted = credits_posted + ? "
          "WHERE id = ? AND unit = ?");
STORE_SQL(SQL_XFER_INSERT,
          "INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, pending_id, timeout_at, "
          "state, sim_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT(xid) DO NOTHING");
STORE_SQL(SQL_XFER_BY_XID,
          "SELECT id, debit_id, credit_id, amount, unit, kind, flags, COALESCE(pending_id, 0), state, "
          "COALESCE(timeout_at, 0) FROM transfers WHERE xid = ?");
STORE_SQL(SQL_PENDING_STATE, "UPDATE transfers SET state = ? WHERE id = ? AND flags = 1 AND state = 0");
STORE_SQL(SQL_PENDING_OF,
          "SELECT xid, unit, id, credit_id, amount, COALESCE(timeout_at, 0) FROM transfers "
          "WHERE flags = 1 AND state = 0 AND debit_id = ? ORDER BY id LIMIT 64");
STORE_SQL(SQL_PENDING_DUE,
          "SELECT id, debit_id, credit_id, amount, unit FROM transfers "
          "WHERE flags = 1 AND state = 0 AND timeout_at <= ? ORDER BY timeout_at LIMIT ?");

int64_t ledger_balance(const struct account *a) { return a->credits_posted - a->debits_posted; }
int64_t ledger_available(const struct account *a) { return ledger_balance(a) - a->debits_pending; }

int ledger_account_create(struct tx *tx, const char *kind, const char *unit, int64_t sim_id, int flags,
                          int64_t *id)
{
    int rc = store_exec(tx->st, &SQL_ACCOUNT_NEW, "ssidsi", kind, unit, sim_id, flags, (const char *)NULL,
                        tx->now);
    if (rc)
        return rc;
    *id = store_last_id(tx->st);
    return 0;
}

int ledger_wallet_create(struct tx *tx, int64_t sim_id, const char *unit)
{
    if (sim_id <= 0)
        return ERR_INVALID_PARAMETER;
    return store_exec(tx->st, &SQL_WALLET_NEW, "isidi", -sim_id, unit, sim_id, LEDGER_NO_OVERDRAFT, tx->now);
}

void ledger_cache_clear(struct ledger_cache *c)
{
    c->n = 0;
    c->next_record = 0;
}

static void remember(struct tx *tx, const char *name, const char *unit, int64_t id)
{
    struct ledger_cache *c = tx->sys;
    if (c && c->n < LEDGER_CACHE_MAX) {
        snprintf(c->e[c->n].name, sizeof c->e[c->n].name, "%s", name);
        snprintf(c->e[c->n].unit, sizeof c->e[c->n].unit, "%s", unit);
        c->e[c->n].debits = c->e[c->n].credits = 0;
        c->e[c->n++].id = id;
    }
}

/* L8: a posted move on a system account the cache knows, in its unit, is
 * summed there while the engine defers. Returns 1 when it was. */
static int defer_posted(struct tx *tx, int64_t account, const char *unit, int64_t dpost, int64_t cpost)
{
    struct ledger_cache *c = tx->sys;
    for (int i = 0; c && c->defer && i < c->n; i++)
        if (c->e[i].id == account) {
            int64_t debits, credits;
            if (strcmp(c->e[i].unit, unit) || __builtin_add_overflow(c->e[i].debits, dpost, &debits) ||
                __builtin_add_overflow(c->e[i].credits, cpost, &credits))
                return 0;   /* let the UPDATE find the mismatch, or the overflow */
            c->e[i].debits = debits;
            c->e[i].credits = credits;
            return 1;
        }
    return 0;
}

int ledger_system_account(struct tx *tx, const char *kind, const char *unit, int64_t *id)
{
    char name[40];
    text_copy(name, sizeof name, kind);
    text_cat(name, sizeof name, ":");
    text_cat(name, sizeof name, unit);
    for (int i = 0; tx->sys && i < tx->sys->n; i++)
        if (!strcmp(tx->sys->e[i].name, name)) {
            *id = tx->sys->e[i].id;
            return 0;
        }
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_ACCOUNT_BY_NAME, "s", name);
    if (rc == 0) {
        *id = store_i64(q, 0);
        remember(tx, name, unit, *id);
        return store_end(q);
    }
    if (rc != ERR_NOT_FOUND)
        return rc;
    rc = store_exec(tx->st, &SQL_ACCOUNT_NEW, "ssidsi", kind, unit, (int64_t)0, 0, name, tx->now);
    if (rc)
        return rc;
    *id = store_last_id(tx->st);
    remember(tx, name, unit, *id);
    return 0;
}

int ledger_account_get(struct tx *tx, int64_t id, struct account *a)
{
    struct store_q *q;
    int rc = ledger_flush(tx);
    if (rc)
        return rc;
    rc = store_one(tx->st, &q, id < 0 ? &SQL_WALLET_GET : &SQL_ACCOUNT_GET, "i", id);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_ACCOUNT_NOT_FOUND : rc;
    memset(a, 0, sizeof *a);
    a->id = store_i64(q, 0);
    snprintf(a->unit, sizeof a->unit, "%s", store_text(q, 1));
    snprintf(a->kind, sizeof a->kind, "%s", store_text(q, 2));
    a->flags = (int)store_i64(q, 3);
    a->debits_pending = store_i64(q, 4);
    a->debits_posted = store_i64(q, 5);
    a->credits_pending = store_i64(q, 6);
    a->credits_posted = store_i64(q, 7);
    return store_end(q);
}

/* A wallet's unit is the database's currency, which the configuration
 * matches (server_prepare_db), so it is checked without reading the account. */
static int wallet_unit(struct tx *tx, int64_t account, const char *unit)
{
    if (tx->cf && !strcmp(unit, tx->cf->currency))
        return 0;
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_ACCOUNT_UNIT, "i", account);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_ACCOUNT_NOT_FOUND : rc;
    int same = !strcmp(store_text(q, 0), unit);
    if ((rc = store_end(q)))
        return rc;
    return same ? 0 : ERR_UNIT_MISMATCH;
}

/* A wallet's totals, in its SIM's row (L7). */
static int apply_wallet(struct tx *tx, int64_t account, const char *unit, int64_t dpend, int64_t dpost,
                        int64_t cpend, int64_t cpost)
{
    int rc = wallet_unit(tx, account, unit);
    if (rc)
        return rc;
    rc = store_exec(tx->st, &SQL_WALLET_APPLY, "iiiii", dpend, dpost, cpend, cpost, -account);
    if (rc == ERR_CONSTRAINT)
        return ERR_INSUFFICIENT_BALANCE;
    if (rc)
        return rc;
    return store_changes(tx->st) == 1 ? 0 : ERR_ACCOUNT_NOT_FOUND;
}

/* Moves the four totals of an account kept in accounts; the CHECK
 * constraints enforce L3. */
static int apply_account(struct tx *tx, int64_t account, const char *unit, int64_t dpend, int64_t dpost,
                         int64_t cpend, int64_t cpost)
{
    int rc = store_exec(tx->st, &SQL_APPLY, "iiiiis", dpend, dpost, cpend, cpost, account, unit);
    if (rc == ERR_CONSTRAINT)
        return ERR_INSUFFICIENT_BALANCE;
    if (rc)
        return rc;
    if (store_changes(tx->st) == 1)
        return 0;
    struct store_q *q;
    rc = store_one(tx->st, &q, &SQL_ACCOUNT_UNIT, "i", account);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_ACCOUNT_NOT_FOUND : rc;
    store_end(q);
    return ERR_UNIT_MISMATCH;
}

/* Moves the four totals of one account: in its SIM's row (L7), in the
 * writer's cache (L8) or in accounts. */
static int apply(struct tx *tx, int64_t account, const char *unit, int64_t dpend, int64_t dpost, int64_t cpend,
                 int64_t cpost)
{
    if (account < 0)
        return apply_wallet(tx, account, unit, dpend, dpost, cpend, cpost);
    if (!dpend && !cpend && defer_posted(tx, account, unit, dpost, cpost))
        return 0;
    return apply_account(tx, account, unit, dpend, dpost, cpend, cpost);
}

int ledger_flush(struct tx *tx)
{
    struct ledger_cache *c = tx->sys;
    for (int i = 0; c && i < c->n; i++) {
        if (!c->e[i].debits && !c->e[i].credits)
            continue;
        int rc = apply_account(tx, c->e[i].id, c->e[i].unit, 0, c->e[i].debits, 0, c->e[i].credits);
        if (rc)
            return rc;
        c->e[i].debits = c->e[i].credits = 0;
    }
    return 0;
}

struct existing {
    int64_t id, debit, credit, amount, pending_id, timeout_at;
    char unit[16], kind[24];
    int flags, state;
};

static int find(struct tx *tx, const char *xid, struct existing *e)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_XFER_BY_XID, "s", xid);
    if (rc)
        return rc;
    e->id = store_i64(q, 0);
    e->debit = store_i64(q, 1);
    e->credit = store_i64(q, 2);
    e->amount = store_i64(q, 3);
    snprintf(e->unit, sizeof e->unit, "%s", store_text(q, 4));
    snprintf(e->kind, sizeof e->kind, "%s", store_text(q, 5));
    e->flags = (int)store_i64(q, 6);
    e->pending_id = store_i64(q, 7);
    e->state = (int)store_i64(q, 8);
    e->timeout_at = store_i64(q, 9);
    return store_end(q);
}

/* L4: the same xid again is a no-op only if it asks for the same thing. */
static int same_as_existing(struct tx *tx, const struct transfer *t, int64_t pending_id)
{
    struct existing e;
    int rc = find(tx, t->xid, &e);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_INTERNAL : rc;
    int same = e.flags == t->flags && !strcmp(e.kind, t->kind) && !strcmp(e.unit, t->unit);
    if (t->flags == XFER_POSTED || t->flags == XFER_PENDING)
        same = same && e.debit == t->debit && e.credit == t->credit && e.amount == t->amount;
    else
        same = same && e.pending_id == pending_id && (t->amount == 0 || e.amount == t->amount);
    return same ? 0 : ERR_TRANSFER_EXISTS;
}

/* Inserts the transfer row; *fresh is 0 when the xid was already there. */
static int insert(struct tx *tx, const struct transfer *t, int64_t debit, int64_t credit, int64_t amount,
                  int64_t pending_id, int *fresh)
{
    int64_t timeout_at = t->flags == XFER_PENDING && t->timeout > 0 ? tx->now + t->timeout : 0;
    int rc = store_exec(tx->st, &SQL_XFER_INSERT, "siiissdzzzi", t->xid, debit, credit, amount, t->unit,
                        t->kind, t->flags, pending_id, timeout_at, t->sim_id, tx->now);
    if (rc == ERR_CONSTRAINT)
        return ERR_INVALID_PARAMETER;   /* the row's CHECKs, which the callers' checks come before */
    if (rc)
        return rc;
    *fresh = store_changes(tx->st) == 1;
    return 0;
}

static int transfer_simple(struct tx *tx, const struct transfer *t)
{
    if (t->amount <= 0)
        return ERR_INVALID_AMOUNT;
    if (t->debit == t->credit)
        return ERR_INVALID_PARAMETER;
    int fresh = 0;
    int rc = insert(tx, t, t->debit, t->credit, t->amount, 0, &fresh);
    if (rc)
        return rc;
    if (!fresh)
        return same_as_existing(tx, t, 0);
    int pending = t->flags == XFER_PENDING;
    rc = apply(tx, t->debit, t->unit, pending ? t->amount : 0, pending ? 0 : t->amount, 0, 0);
    if (rc)
        return rc;
    if (t->credit_later && t->credit < 0 && !pending) {   /* the caller stores it with the SIM (L7) */
        if ((rc = wallet_unit(tx, t->credit, t->unit)) == 0)
            *t->credit_later += t->amount;
        return rc;
    }
    return apply(tx, t->credit, t->unit, 0, 0, pending ? t->amount : 0, pending ? 0 : t->amount);
}

static int transfer_resolve(struct tx *tx, const struct transfer *t)
{
    struct existing p;
    int rc = find(tx, t->pending_xid ? t->pending_xid : "", &p);
    if (rc == ERR_NOT_FOUND || (!rc && p.flags != XFER_PENDING))
        return ERR_PENDING_NOT_FOUND;
    if (rc)
        return rc;
    if (strcmp(p.unit, t->unit))
        return ERR_UNIT_MISMATCH;
    struct existing mine;
    rc = find(tx, t->xid, &mine);
    if (rc == 0)
        return same_as_existing(tx, t, p.id);
    if (rc != ERR_NOT_FOUND)
        return rc;
    if (p.state != PENDING_OPEN)
        return ERR_PENDING_CLOSED;
    if (p.timeout_at && tx->now >= p.timeout_at)
        return ERR_PENDING_EXPIRED;
    int post = t->flags == XFER_POST_PENDING;
    int64_t amount = post && t->amount ? t->amount : p.amount;
    if (amount < 0)
        return ERR_INVALID_AMOUNT;
    if (amount > p.amount)
        return ERR_POST_EXCEEDS_PENDING;
    int fresh = 0;
    rc = insert(tx, t, p.debit, p.credit, amount, p.id, &fresh);
    if (!rc)
        rc = store_exec(tx->st, &SQL_PENDING_STATE, "di", post ? PENDING_POSTED : PENDING_VOIDED, p.id);
    if (!rc)
        rc = apply(tx, p.debit, p.unit, -p.amount, post ? amount : 0, 0, 0);
    if (!rc)
        rc = apply(tx, p.credit, p.unit, 0, 0, -p.amount, post ? amount : 0);
    return rc;
}

int ledger_transfer(struct tx *tx, const struct transfer *t)
{
    if (!t->xid || !*t->xid || strlen(t->xid) > LEDGER_XID_MAX - 5 || !t->unit || !t->kind)
        return ERR_INVALID_PARAMETER;   /* 5: room for the "void:" of ledger_void_reservations */
    switch (t->flags) {
    case XFER_POSTED:
    case XFER_PENDING:
        return transfer_simple(tx, t);
    case XFER_POST_PENDING:
    case XFER_VOID_PENDING:
        return transfer_resolve(tx, t);
    default:
        return ERR_INVALID_PARAMETER;
    }
}

/* L5: a pending past its timeout releases its amount on both accounts. */
static int expire_one(struct tx *tx, int64_t id, int64_t debit, int64_t credit, int64_t amount, const char *unit)
{
    int rc = store_exec(tx->st, &SQL_PENDING_STATE, "di", PENDING_EXPIRED, id);
    if (!rc)
        rc = apply(tx, debit, unit, -amount, 0, 0, 0);
    if (!rc)
        rc = apply(tx, credit, unit, 0, 0, -amount, 0);
    return rc;
}

int ledger_expire_pending(struct tx *tx, int limit, int *count)
{
    struct due {
        int64_t id, debit, credit, amount;
        char unit[16];
    } due[64];
    *count = 0;
    while (*count < limit) {
        int n = 0;
        int want = limit - *count < 64 ? limit - *count : 64;
        struct store_q *q = store_query(tx->st, &SQL_PENDING_DUE, "id", tx->now, want);
        while (n < 64 && store_next(q)) {
            due[n].id = store_i64(q, 0);
            due[n].debit = store_i64(q, 1);
            due[n].credit = store_i64(q, 2);
            due[n].amount = store_i64(q, 3);
            snprintf(due[n].unit, sizeof due[n].unit, "%s", store_text(q, 4));
            n++;
        }
        int rc = store_end(q);
        if (rc)
            return rc;
        if (!n)
            break;
        for (int i = 0; i < n; i++) {
            if ((rc = expire_one(tx, due[i].id, due[i].debit, due[i].credit, due[i].amount, due[i].unit)))
                return rc;
            (*count)++;
        }
    }
    return 0;
}

int ledger_void_reservations(struct tx *tx, int64_t account)
{
    for (;;) {
        char xids[64][LEDGER_XID_MAX + 1], units[64][16];
        int64_t ids[64], credits[64], amounts[64], timeouts[64];
        int n = 0;
        struct store_q *q = store_query(tx->st, &SQL_PENDING_OF, "i", account);
        while (store_next(q)) {
            snprintf(xids[n], sizeof xids[n], "%s", store_text(q, 0));
            snprintf(units[n], sizeof units[n], "%s", store_text(q, 1));
            ids[n] = store_i64(q, 2), credits[n] = store_i64(q, 3), amounts[n] = store_i64(q, 4);
            timeouts[n] = store_i64(q, 5);
            n++;
        }
        int rc = store_end(q);
        for (int i = 0; !rc && i < n; i++) {
            if (timeouts[i] && tx->now >= timeouts[i]) {   /* past its time: expired, not voided (L5) */
                rc = expire_one(tx, ids[i], account, credits[i], amounts[i], units[i]);
                continue;
            }
            char xid[LEDGER_XID_MAX + 8];
            snprintf(xid, sizeof xid, "void:%.*s", LEDGER_XID_MAX, xids[i]);
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .unit = units[i], .kind = "void",
                                                        .flags = XFER_VOID_PENDING, .pending_xid = xids[i]});
        }
        if (rc || n < 64)
            return rc;
    }
}

/* ledger_check reads three streams in account id order and merges them, one
 * pass over each: the accounts, the wallets' totals from their SIMs' rows
 * (L7: SIM n's wallet is account -n, so the rows in descending id give the
 * wallets in ascending id) and the totals recomputed from the transfers.
 * Joining them in SQL looked each wallet's SIM up by id, and took 11 s at
 * 10M SIMs for each of the three queries that needed the totals. */
STORE_SQL(SQL_CHECK_ACCOUNTS, "SELECT id, unit, flags, debits_posted, credits_posted, debits_pending, credits_pending "
                              "FROM accounts ORDER BY id");
STORE_SQL(SQL_CHECK_WALLETS, "SELECT -id, w_debits_posted, w_credits_posted, w_debits_pending, w_credits_pending "
                             "FROM sims ORDER BY id DESC");
STORE_SQL(SQL_CHECK_MOVES,
          "SELECT acct, SUM(dpo), SUM(cpo), SUM(dpe), SUM(cpe) FROM ("
          "  SELECT debit_id acct, CASE WHEN flags IN (0, 2) THEN amount ELSE 0 END dpo, 0 cpo,"
          "         CASE WHEN flags = 1 AND state = 0 THEN amount ELSE 0 END dpe, 0 cpe FROM transfers"
          "  UNION ALL"
          "  SELECT credit_id, 0, CASE WHEN flags IN (0, 2) THEN amount ELSE 0 END, 0,"
          "         CASE WHEN flags = 1 AND state = 0 THEN amount ELSE 0 END FROM transfers)"
          " GROUP BY acct ORDER BY acct");

/* The four totals of an account, in the order the queries above give them. */
struct totals4 {
    int64_t v[4];   /* debits posted, credits posted, debits pending, credits pending */
};

/* A stream of (id, totals) in ascending id: the id in column 0, the totals
 * from column col on; id is INT64_MAX once it is done. */
struct stream {
    struct store_q *q;
    int col;
    int64_t id;
    struct totals4 t;
};

static void stream_next(struct stream *s)
{
    if (!store_next(s->q)) {
        s->id = INT64_MAX;
        return;
    }
    s->id = store_i64(s->q, 0);
    for (int k = 0; k < 4; k++)
        s->t.v[k] = store_i64(s->q, s->col + k);
}

/* What the check found, by invariant, reported in this order. */
enum { V_L1, V_L2, V_L3, V_L6, V_L7, V__N };
struct found {
    int n;
    char first[sizeof ((struct ledger_report *)0)->first_violation];
};

static void violation(struct found *f, const char *what, const char *unit, int64_t id)
{
    if (f->n++)
        return;
    if (id)
        snprintf(f->first, sizeof f->first, "%s account %lld", what, (long long)id);
    else
        snprintf(f->first, sizeof f->first, "%s %s", what, unit);
}

/* A unit's sums over its accounts (L2). */
struct unit_sum {
    char unit[sizeof ((struct ledger_unit_sum *)0)->unit];
    int64_t v[4], accounts;
    int overflow;
};

static int unit_cmp(const void *a, const void *b)
{
    return strcmp(((const struct unit_sum *)a)->unit, ((const struct unit_sum *)b)->unit);
}

/* The unit's entry in *units (n of them, room for *cap), added when new. */
static struct unit_sum *unit_of(struct arena *a, struct unit_sum **units, int *n, int *cap, const char *unit)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*units)[i].unit, unit))
            return &(*units)[i];
    if (*n == *cap) {
        struct unit_sum *more = arena_alloc(a, (size_t)(*cap * 2) * sizeof *more);
        memcpy(more, *units, (size_t)*n * sizeof *more);
        *units = more, *cap *= 2;
    }
    struct unit_sum *u = &(*units)[(*n)++];
    text_copy(u->unit, sizeof u->unit, unit);
    return u;
}

int ledger_check(struct tx *tx, struct ledger_report *r)
{
    memset(r, 0, sizeof *r);
    int rc = ledger_flush(tx);   /* L8: the stored totals are what is checked */
    if (rc)
        return rc;
    struct found f[V__N] = {{0}};
    int nunits = 0, cap = 8;
    struct unit_sum *units = arena_alloc(tx->a, (size_t)cap * sizeof *units);
    struct stream wallets = {.q = store_query(tx->st, &SQL_CHECK_WALLETS, ""), .col = 1};
    struct stream moves = {.q = store_query(tx->st, &SQL_CHECK_MOVES, ""), .col = 1};
    struct stream accts = {.q = store_query(tx->st, &SQL_CHECK_ACCOUNTS, ""), .col = 3};   /* after unit, flags */
    stream_next(&wallets);
    stream_next(&moves);
    for (stream_next(&accts); accts.id != INT64_MAX; stream_next(&accts)) {
        int64_t id = accts.id;
        struct totals4 t = accts.t, m = {{0}};
        if (id < 0) {   /* L7: the totals are the SIM's row's; the accounts row holds none */
            if (t.v[0] || t.v[1] || t.v[2] || t.v[3])
                violation(&f[V_L7], "totals outside its SIM's row on", "", id);
            while (wallets.id < id)   /* a SIM without a wallet row: its transfers fail L1 */
                stream_next(&wallets);
            t = wallets.id == id ? wallets.t : (struct totals4){{0}};
        }
        for (; moves.id < id; stream_next(&moves))
            violation(&f[V_L1], "transfers on a missing", "", moves.id);
        if (moves.id == id) {
            m = moves.t;
            stream_next(&moves);
        }
        struct unit_sum *u = unit_of(tx->a, &units, &nunits, &cap, store_text(accts.q, 1));
        u->accounts++;
        for (int k = 0; k < 4; k++)
            u->overflow |= __builtin_add_overflow(u->v[k], t.v[k], &u->v[k]);
        int64_t out;   /* L3, as the rows' CHECK has it: debits posted + pending <= credits posted */
        if ((store_i64(accts.q, 2) & LEDGER_NO_OVERDRAFT) &&
            (__builtin_add_overflow(t.v[0], t.v[2], &out) || out > t.v[1]))
            violation(&f[V_L3], "overdraft on", "", id);
        if (memcmp(&t, &m, sizeof t))   /* L6 */
            violation(&f[V_L6], "totals differ from transfers on", "", id);
    }
    for (; moves.id != INT64_MAX; stream_next(&moves))
        violation(&f[V_L1], "transfers on a missing", "", moves.id);
    rc = store_end(accts.q);
    int rc2 = store_end(moves.q), rc3 = store_end(wallets.q);
    rc = rc ? rc : rc2 ? rc2 : rc3;
    if (rc)
        return rc;

    qsort(units, (size_t)nunits, sizeof *units, unit_cmp);
    for (int i = 0; i < nunits; i++) {
        const struct unit_sum *u = &units[i];
        if (r->nunits < (int)(sizeof r->units / sizeof r->units[0])) {
            struct ledger_unit_sum *out = &r->units[r->nunits++];
            text_copy(out->unit, sizeof out->unit, u->unit);
            out->debits = u->v[0];
            out->credits = u->v[1];
            out->accounts = u->accounts;
        }
        if (u->overflow)
            violation(&f[V_L2], "totals overflow in", u->unit, 0);
        if (u->v[0] != u->v[1])
            violation(&f[V_L2], "posted debits differ from credits in", u->unit, 0);
        if (u->v[2] != u->v[3])
            violation(&f[V_L2], "pending debits differ from credits in", u->unit, 0);
    }
    for (int v = 0; v < V__N; v++) {
        if (f[v].n && !r->violations)
            text_copy(r->first_violation, sizeof r->first_violation, f[v].first);
        r->violations += f[v].n;
    }
    return 0;
}

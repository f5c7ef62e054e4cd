/* sim — identifiers, lifecycle rule and persistence of SIM cards. */
#include "core/sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ledger.h"
#include "core/plan.h"
#include "core/record.h"
#include "store/store.h"
#include "util/err.h"
#include "util/text.h"

static const char *const state_names[SIM__COUNT] = {"inactive", "active", "grace", "expired", "terminated",
                                                    "suspended"};

const char *sim_state_name(int st) { return st >= 0 && st < SIM__COUNT ? state_names[st] : "unknown"; }

int sim_state_parse(const char *s)
{
    for (int i = 0; i < SIM__COUNT; i++)
        if (!strcmp(s, state_names[i]))
            return i;
    return -1;
}

static int all_digits(const char *s, size_t min, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isdigit((unsigned char)s[n]))
            return 0;
    return n >= min && n <= max;
}

int sim_iccid_valid(const char *s)
{
    if (!s || !all_digits(s, 18, ICCID_MAX))
        return 0;
    int sum = 0, dbl = 0;
    for (size_t i = strlen(s); i-- > 0; dbl = !dbl) {
        int d = s[i] - '0';
        if (dbl && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

int sim_msisdn_valid(const char *s) { return s && s[0] == '+' && s[1] != '0' && all_digits(s + 1, 8, 15); }
int sim_imsi_valid(const char *s) { return s && all_digits(s, 6, IMSI_MAX); }
int sim_lang_valid(const char *s) { return s && (!strcmp(s, "zh") || !strcmp(s, "en") || !strcmp(s, "ru")); }

int64_t sim_grace_until(const struct sim *s, const struct conf *cf)
{
    return s->active_until ? s->active_until + cf->grace_days * 86400 : 0;
}

int64_t sim_terminate_at(const struct sim *s, const struct conf *cf)
{
    return s->active_until ? sim_grace_until(s, cf) + cf->retention_days * 86400 : 0;
}

/* When the clock next moves a SIM in this state (0: never). */
static int64_t next_change(const struct sim *s, const struct conf *cf)
{
    switch (s->state) {
    case SIM_ACTIVE:
        return s->active_until;
    case SIM_GRACE:
        return sim_grace_until(s, cf);
    case SIM_EXPIRED:
        return sim_terminate_at(s, cf);
    default:
        return 0;
    }
}

int64_t sim_check_at(const struct sim *s, int64_t now, const struct conf *cf)
{
    int64_t next = next_change(s, cf);
    if (!next)
        return 0;
    return s->check_at > now && s->check_at <= next ? s->check_at : next;
}

int sim_state_at(const struct sim *s, int64_t now, const struct conf *cf)
{
    if (s->state == SIM_INACTIVE || s->state == SIM_TERMINATED || s->state == SIM_SUSPENDED || !s->active_until)
        return s->state;
    if (now < s->active_until)
        return SIM_ACTIVE;
    if (now < sim_grace_until(s, cf))
        return SIM_GRACE;
    if (now < sim_terminate_at(s, cf))
        return SIM_EXPIRED;
    return SIM_TERMINATED;
}

static int64_t validity_by_rule(const struct sim *s, int64_t now, const struct conf *cf)
{
    int64_t days = cf->validity_days * 86400;
    int64_t base = s->active_until > now ? s->active_until : now;
    switch (cf->validity_rule) {
    case VALIDITY_RESET:
        return now + days;
    case VALIDITY_MAX:
        return s->active_until > now + days ? s->active_until : now + days;
    default:
        return base + days;
    }
}

int64_t sim_validity_after_topup(const struct sim *s, int64_t now, const struct conf *cf)
{
    int64_t until = validity_by_rule(s, now, cf), bound = now + cf->validity_max_days * 86400;
    if (!cf->validity_max_days || until <= bound)
        return until;
    return s->active_until > bound ? s->active_until : bound;   /* never shortened by a top-up either */
}

/* A SIM is always read with its wallet balance, which its row keeps (ledger L7). */
#define SIM_COLS "s.id, s.iccid, COALESCE(s.msisdn, ''), COALESCE(s.imsi, ''), s.lang, s.state, " \
                 "COALESCE(s.active_until, 0), s.wallet_id, s.day_start, s.day_total, s.created_at, " \
                 "COALESCE(s.check_at, 0), s.w_credits_posted - s.w_debits_posted, COALESCE(s.last_txn, 0) FROM sims s"
STORE_SQL(SQL_SIM_BY_ICCID, "SELECT " SIM_COLS " WHERE s.iccid = ?");
STORE_SQL(SQL_SIM_BY_ID, "SELECT " SIM_COLS " WHERE s.id = ?");
STORE_SQL(SQL_SIM_AT_MSISDN, "SELECT " SIM_COLS " WHERE s.msisdn = ?");
STORE_SQL(SQL_SIM_RELEASE, "UPDATE sims SET released_msisdn = msisdn, msisdn = NULL WHERE id = ? AND msisdn IS NOT NULL");
STORE_SQL(SQL_SIM_RELEASED, "SELECT COALESCE(released_msisdn, '') FROM sims WHERE id = ?");
/* The wallet is account -id (ledger L7), so the id is needed before the
 * INSERT. A SIM whose home is taken gets the next id above every home and
 * every other id (SIMs are never deleted). */
STORE_SQL(SQL_SIM_NEXT_ID, "SELECT MAX(COALESCE(MAX(id), 0) + 1, ?) FROM sims");
STORE_SQL(SQL_SIM_INSERT,
          "INSERT INTO sims(id, iccid, msisdn, imsi, lang, state, active_until, wallet_id, created_at, updated_at, "
          "room) VALUES (?, ?, ?, ?, ?, 'inactive', NULL, ?, ?, ?, zeroblob(24))");
/* check_at is named in SET only when it moves: naming it there rewrites its
 * index entry even with the value unchanged. When it moves, check_seq takes
 * the id of the record heading the chain, so that the index keeps the
 * entries of one second in the order they were made (migration 011).
 * Otherwise the row must still have the check_at of the caller's copy,
 * which the WHERE checks: a copy older than the row changes nothing, and is
 * saved again once it knows the stored one. (RETURNING would tell it too,
 * but costs SQLite a temporary table per statement: 4x the time of this
 * UPDATE, measured.) */
STORE_SQL(SQL_SIM_SAVE,
          "UPDATE sims SET state = ?, active_until = ?, day_start = ?, day_total = ?, updated_at = ?, "
          "last_txn = COALESCE(?, last_txn), w_credits_posted = w_credits_posted + ?, room = NULL "
          "WHERE id = ? AND check_at IS ?");
STORE_SQL(SQL_SIM_CHECK_OF, "SELECT COALESCE(check_at, 0) FROM sims WHERE id = ?");
STORE_SQL(SQL_SIM_SAVE_CHECK,
          "UPDATE sims SET state = ?, active_until = ?, day_start = ?, day_total = ?, updated_at = ?, check_at = ?, "
          "check_seq = ?, last_txn = COALESCE(?, last_txn), w_credits_posted = w_credits_posted + ?, room = NULL "
          "WHERE id = ?");
STORE_SQL(SQL_SIM_RECHECK, "UPDATE sims SET check_at = ? WHERE id = ?");
STORE_SQL(SQL_SIM_BALANCE, "SELECT w_credits_posted - w_debits_posted FROM sims WHERE id = ?");

static int load(struct store_q *q, struct sim *s)
{
    memset(s, 0, sizeof *s);
    s->id = store_i64(q, 0);
    text_copy(s->iccid, sizeof s->iccid, store_text(q, 1));
    text_copy(s->msisdn, sizeof s->msisdn, store_text(q, 2));
    text_copy(s->imsi, sizeof s->imsi, store_text(q, 3));
    text_copy(s->lang, sizeof s->lang, store_text(q, 4));
    s->state = sim_state_parse(store_text(q, 5));
    s->active_until = store_i64(q, 6);
    s->wallet_id = store_i64(q, 7);
    s->day_start = store_i64(q, 8);
    s->day_total = store_i64(q, 9);
    s->created_at = store_i64(q, 10);
    s->check_at = store_i64(q, 11);
    s->balance = store_i64(q, 12);
    s->head = store_i64(q, 13);
    return store_end(q);
}

int64_t sim_home_id(const char *iccid)
{
    size_t n = strlen(iccid);
    if (n < 2 || !all_digits(iccid, n, n))
        return 0;
    int64_t home = 0;
    for (size_t i = n - 1 > SIM_HOME_DIGITS ? n - 1 - SIM_HOME_DIGITS : 0; i < n - 1; i++)
        home = home * 10 + (iccid[i] - '0');
    return home + 1;
}

/* Finds the SIM at its home, else through the ICCID index. *home_free (if
 * asked) tells whether no SIM at all is at the home. */
static int find(struct tx *tx, const char *iccid, struct sim *out, int *home_free)
{
    struct store_q *q;
    int64_t home = sim_home_id(iccid);
    int rc = home ? store_one(tx->st, &q, &SQL_SIM_BY_ID, "i", home) : ERR_NOT_FOUND;
    if (home_free)
        *home_free = home && rc == ERR_NOT_FOUND;
    if (rc == 0) {
        if (!strcmp(store_text(q, 1), iccid))
            return load(q, out);
        rc = store_end(q);   /* another SIM is at the home */
    }
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    rc = store_one(tx->st, &q, &SQL_SIM_BY_ICCID, "s", iccid);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    return load(q, out);
}

/* The SIM whose row holds the number, whatever the clock says of it. */
static int holder_of(struct tx *tx, const char *msisdn, struct sim *out)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_SIM_AT_MSISDN, "s", msisdn);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    return load(q, out);
}

int sim_get(struct tx *tx, const char *ref, struct sim *out)
{
    if (ref[0] != '+')
        return find(tx, ref, out, NULL);
    /* One the clock has terminated gave its number back, swept or not (view_sim). */
    int rc = holder_of(tx, ref, out);
    return !rc && sim_state_at(out, tx->now, tx->cf) == SIM_TERMINATED ? ERR_SIM_NOT_FOUND : rc;
}

int sim_released_msisdn(struct tx *tx, const struct sim *s, char out[MSISDN_MAX + 1])
{
    out[0] = 0;
    if (sim_state_at(s, tx->now, tx->cf) != SIM_TERMINATED)
        return 0;
    if (s->msisdn[0]) {   /* its time is up, and the sweep has not reached it yet */
        text_copy(out, MSISDN_MAX + 1, s->msisdn);
        return 0;
    }
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_SIM_RELEASED, "i", s->id);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    text_copy(out, MSISDN_MAX + 1, store_text(q, 0));
    return store_end(q);
}

int sim_get_by_id(struct tx *tx, int64_t id, struct sim *out)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_SIM_BY_ID, "i", id);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    return load(q, out);
}

int sim_create(struct tx *tx, struct sim *s, int *existed)
{
    struct sim old;
    int home_free = 0;
    *existed = 0;
    int rc = find(tx, s->iccid, &old, &home_free);
    if (rc == 0) {
        /* A field left empty is not a claim about the SIM, so it cannot conflict;
         * nor can the number a terminated SIM gave back (an inventory imported again). */
        char released[MSISDN_MAX + 1] = "";
        if (s->msisdn[0] && strcmp(old.msisdn, s->msisdn) && (rc = sim_released_msisdn(tx, &old, released)))
            return rc;
        if ((s->msisdn[0] && strcmp(old.msisdn, s->msisdn) && strcmp(released, s->msisdn)) ||
            (s->imsi[0] && strcmp(old.imsi, s->imsi)) || (s->lang[0] && strcmp(old.lang, s->lang)))
            return ERR_SIM_EXISTS;
        *existed = 1;
        *s = old;
        return 0;
    }
    if (rc != ERR_SIM_NOT_FOUND)
        return rc;
    if (s->msisdn[0]) {
        /* Taken, unless by a SIM whose time is up: terminated now, it gives the number back. */
        struct sim holder;
        rc = holder_of(tx, s->msisdn, &holder);
        if (rc == 0 && sim_state_at(&holder, tx->now, tx->cf) == SIM_TERMINATED)
            rc = sim_settle(tx, &holder, NULL);
        else if (rc == 0)
            return ERR_MSISDN_TAKEN;
        if (rc && rc != ERR_SIM_NOT_FOUND)
            return rc;
    }
    if (home_free) {
        s->id = sim_home_id(s->iccid);
    } else {
        struct store_q *q;
        rc = store_one(tx->st, &q, &SQL_SIM_NEXT_ID, "i", SIM_HOME_MAX + 1);
        if (rc)
            return rc == ERR_NOT_FOUND ? ERR_INTERNAL : rc;
        s->id = store_i64(q, 0);
        if ((rc = store_end(q)))
            return rc;
    }
    s->wallet_id = -s->id;
    rc = ledger_wallet_create(tx, s->id, tx->cf->currency);
    if (rc)
        return rc;
    if (!s->lang[0])
        snprintf(s->lang, sizeof s->lang, "en");
    rc = store_exec(tx->st, &SQL_SIM_INSERT, "issssiii", s->id, s->iccid, s->msisdn[0] ? s->msisdn : NULL,
                    s->imsi[0] ? s->imsi : NULL, s->lang, s->wallet_id, tx->now, tx->now);
    if (rc)
        return rc == ERR_CONSTRAINT ? ERR_SIM_EXISTS : rc;
    s->state = SIM_INACTIVE;
    s->active_until = 0;
    s->created_at = tx->now;
    return 0;
}

/* Stores the check_at that s should have now, if it has another. */
static int move_check(struct tx *tx, struct sim *s)
{
    int64_t check = sim_check_at(s, tx->now, tx->cf);
    if (check == s->check_at)
        return 0;
    s->check_at = check;
    return store_exec(tx->st, &SQL_SIM_RECHECK, "zi", check, s->id);
}

/* sim_save's UPDATE changed nothing: the SIM is gone, or this copy's
 * check_at is older than the row's. Learns the row's and saves again. */
static int save_again(struct tx *tx, struct sim *s)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_SIM_CHECK_OF, "i", s->id);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    s->check_at = store_i64(q, 0);
    if ((rc = store_end(q)))
        return rc;
    return sim_save(tx, s);
}

int sim_save(struct tx *tx, struct sim *s)
{
    /* Any check_at between now and the next change is right, so one computed
     * from an older copy is right too: a first activation is one statement. */
    int64_t check = sim_check_at(s, tx->now, tx->cf);
    int rc;
    if (check != s->check_at) {
        s->check_at = check;
        rc = store_exec(tx->st, &SQL_SIM_SAVE_CHECK, "sziiizzzii", sim_state_name(s->state), s->active_until,
                        s->day_start, s->day_total, tx->now, check, llabs(s->link), s->link, s->credit, s->id);
        if (!rc && !store_changes(tx->st))
            rc = ERR_SIM_NOT_FOUND;
    } else {
        rc = store_exec(tx->st, &SQL_SIM_SAVE, "sziiiziiz", sim_state_name(s->state), s->active_until,
                        s->day_start, s->day_total, tx->now, s->link, s->credit, s->id, s->check_at);
        if (!rc && !store_changes(tx->st))
            return save_again(tx, s);   /* no such SIM, or the copy is older than the row */
    }
    if (!rc)
        s->link = 0, s->credit = 0;
    return rc;
}

int sim_settle_for_money(struct tx *tx, struct sim *s)
{
    int rc = sim_settle(tx, s, NULL);
    if (rc)
        return rc;
    if (s->state == SIM_TERMINATED)
        return ERR_SIM_TERMINATED;
    return s->state == SIM_SUSPENDED ? ERR_SIM_SUSPENDED : 0;
}

int sim_balance(struct tx *tx, const struct sim *s, int64_t *balance)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_SIM_BALANCE, "i", s->id);
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_SIM_NOT_FOUND : rc;
    *balance = store_i64(q, 0);
    return store_end(q);
}

/* Termination: whatever is left in the wallet and the bundles is forfeited. */
static int forfeit(struct tx *tx, struct sim *s)
{
    int64_t balance = 0, sink;
    int rc = ledger_void_reservations(tx, s->wallet_id);
    if (!rc)
        rc = sim_balance(tx, s, &balance);
    if (!rc && balance > 0) {
        char xid[48];
        snprintf(xid, sizeof xid, "sim:%lld:forfeit", (long long)s->id);
        rc = ledger_system_account(tx, "forfeiture", tx->cf->currency, &sink);
        if (!rc)
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = s->wallet_id, .credit = sink,
                                                        .amount = balance, .unit = tx->cf->currency,
                                                        .kind = "forfeiture", .sim_id = s->id});
        if (!rc)
            rc = record_add(tx, &(struct record){.sim_id = s->id, .kind = "forfeiture", .amount = -balance,
                                                 .currency = tx->cf->currency, .balance_after = 0}, &s->head);
        if (!rc)
            s->balance = 0;   /* what the caller shows (a resume's answer) */
    }
    if (!rc)
        rc = bundle_forfeit_all(tx, s->id);
    return rc;
}

int sim_settle(struct tx *tx, struct sim *s, int *changed)
{
    int target = sim_state_at(s, tx->now, tx->cf);
    if (changed)
        *changed = target != s->state;
    if (target == s->state)
        return 0;
    if (target == SIM_TERMINATED) {   /* forfeits, and gives the number back (migration 014) */
        int rc = forfeit(tx, s);
        if (!rc && s->msisdn[0])
            rc = store_exec(tx->st, &SQL_SIM_RELEASE, "i", s->id);
        if (rc)
            return rc;
        s->msisdn[0] = 0;
    }
    s->state = target;
    return sim_save(tx, s);
}

int sim_suspend(struct tx *tx, struct sim *s, int on, const char *reason)
{
    int rc = sim_settle(tx, s, NULL);
    if (rc)
        return rc;
    if (s->state == SIM_TERMINATED)
        return ERR_SIM_TERMINATED;
    if (on == (s->state == SIM_SUSPENDED))
        return 0;
    /* Resumed, time went on while suspended: recompute, terminating if it is due. */
    s->state = on ? SIM_SUSPENDED : s->active_until ? SIM_ACTIVE : SIM_INACTIVE;
    struct record r = {.sim_id = s->id, .kind = on ? "suspension" : "resumption", .currency = tx->cf->currency,
                       .balance_after = s->balance, .reason = reason};
    rc = record_insert(tx, &r, &s->link);   /* who: tx->principal */
    if (!rc)
        rc = sim_save(tx, s);
    return rc || on ? rc : sim_settle(tx, s, NULL);
}

STORE_SQL(SQL_DUE, "SELECT id FROM sims WHERE check_at <= ? LIMIT ?");

int sim_sweep(struct tx *tx, int limit, int *moved, int *more)
{
    int64_t ids[256];
    int looked = 0;
    *moved = 0;
    /* Every SIM looked at leaves with a check_at ahead of now, or none. */
    while (looked < limit) {
        int n = 0, want = limit - looked < 256 ? limit - looked : 256;
        struct store_q *q = store_query(tx->st, &SQL_DUE, "id", tx->now, want);
        while (store_next(q))
            ids[n++] = store_i64(q, 0);
        int rc = store_end(q);
        for (int i = 0; !rc && i < n; i++) {
            struct sim s;
            int changed = 0;
            rc = sim_get_by_id(tx, ids[i], &s);
            if (!rc)
                rc = sim_settle(tx, &s, &changed);   /* a change saves, and so moves check_at */
            if (!rc && !changed)
                rc = move_check(tx, &s);   /* topped up since: nothing was due */
            *moved += changed;
        }
        if (rc)
            return rc;
        looked += n;
        if (n < want)
            break;
    }
    int expired = 0, rc = 0;
    *more = looked >= limit;
    if (!*more) {
        rc = bundle_sweep(tx, limit - looked, &expired);
        *more = expired >= limit - looked;
    }
    *moved += expired;
    return rc;
}

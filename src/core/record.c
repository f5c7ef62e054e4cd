#include "core/record.h"

#include "core/ledger.h"
#include "core/receipt.h"
#include "store/store.h"
#include "util/err.h"

STORE_SQL(SQL_RECORD_NEXT_ID,
          "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM topups), (SELECT COALESCE(MAX(id), 0) FROM sim_txns)) + 1");
STORE_SQL(SQL_RECORD_ADD,
          "INSERT INTO sim_txns(id, sim_id, kind, amount, currency, balance_after, topup_id, bundle_id, receipt, "
          "channel, method, created_at, principal, reason, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
          "(SELECT last_txn FROM sims WHERE id = ?))");
STORE_SQL(SQL_RECORD_LINK, "UPDATE sims SET last_txn = ? WHERE id = ?");
STORE_SQL(SQL_RECORD_HEAD, "SELECT COALESCE(last_txn, 0) FROM sims WHERE id = ?");
STORE_SQL(SQL_RECORD_GET,
          "SELECT id, kind, amount, currency, balance_after, COALESCE(topup_id, 0), COALESCE(bundle_id, 0), "
          "receipt, channel, method, created_at, sim_id, COALESCE(prev, 0), principal, reason FROM sim_txns WHERE id = ?");
/* A top-up's record: the balance before its reactivation fee, which is a record of its own. */
STORE_SQL(SQL_RECORD_OF_TOPUP,
          "SELECT id, 'topup', amount, currency, balance_after + fee, id, 0, '', channel, method, created_at, "
          "sim_id, prev, NULLIF(principal, ''), NULL FROM topups WHERE id = ? AND prev IS NOT NULL");

/* Read once a transaction on the engine's writer (the write lock is held
 * from BEGIN to COMMIT, so no one else adds a row in between), counted on
 * from there: 5k instructions a top-up otherwise. An id taken by a command
 * that then fails is only a gap. */
int record_next_id(struct tx *tx, int64_t *id)
{
    if (tx->sys && tx->sys->next_record) {
        *id = tx->sys->next_record++;
        return 0;
    }
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_RECORD_NEXT_ID, "");
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_INTERNAL : rc;
    *id = store_i64(q, 0);
    if (tx->sys)
        tx->sys->next_record = *id + 1;
    return store_end(q);
}

int record_link(struct tx *tx, int64_t sim_id, int64_t link)
{
    return store_exec(tx->st, &SQL_RECORD_LINK, "ii", link, sim_id);
}

int record_insert(struct tx *tx, const struct record *r, int64_t *id)
{
    int rc = record_next_id(tx, id);
    if (!rc)
        rc = store_exec(tx->st, &SQL_RECORD_ADD, "iisisizzsssissi", *id, r->sim_id, r->kind, r->amount, r->currency,
                        r->balance_after, r->topup_id, r->bundle_id, r->receipt, r->channel, r->method, tx->now,
                        tx->principal, r->reason, r->sim_id);
    if (rc)
        *id = 0;
    return rc;
}

/* The record a link names (from a sim_txns row or a top-up's), q positioned
 * on it (columns as SQL_RECORD_GET's), or ERR_NOT_FOUND. */
static int fetch(struct tx *tx, int64_t link, struct store_q **q)
{
    return link > 0 ? store_one(tx->st, q, &SQL_RECORD_GET, "i", link)
                    : store_one(tx->st, q, &SQL_RECORD_OF_TOPUP, "i", -link);
}

int record_add(struct tx *tx, const struct record *r, int64_t *head)
{
    int64_t id;
    int rc = record_insert(tx, r, &id);
    if (!rc && !(rc = record_link(tx, r->sim_id, id)) && head)
        *head = id;
    return rc;
}

/* The record `id` if it exists: *sim_id and *prev set, 0; or ERR_NOT_FOUND.
 * A top-up's record is tried second: a sim_txns row written before
 * migration 010 may share its id with a top-up of then, which is no record. */
static int link_of(struct tx *tx, int64_t id, int64_t *sim_id, int64_t *prev)
{
    struct store_q *q;
    int rc = fetch(tx, id, &q);
    if (rc == ERR_NOT_FOUND)
        rc = fetch(tx, RECORD_TOPUP(id), &q);
    if (rc)
        return rc;
    *sim_id = store_i64(q, 11);
    *prev = store_i64(q, 12);
    return store_end(q);
}

int record_list(struct tx *tx, int64_t sim_id, int64_t before, int limit,
                void (*fn)(void *arg, const struct record *r), void *arg, int *more)
{
    *more = 0;
    int64_t next = 0, owner = 0, prev = 0;
    struct store_q *q;
    /* Paging from one of the SIM's own records (the usual cursor) starts at
     * the record before it; from any other id, the chain is walked from the
     * newest and the records at or above `before` are passed over. */
    int rc = before > 0 ? link_of(tx, before, &owner, &prev) : ERR_NOT_FOUND;
    if (rc && rc != ERR_NOT_FOUND)
        return rc;
    if (!rc && owner == sim_id) {
        next = prev;
    } else {
        rc = store_one(tx->st, &q, &SQL_RECORD_HEAD, "i", sim_id);
        if (rc)
            return rc == ERR_NOT_FOUND ? 0 : rc;
        next = store_i64(q, 0);
        if ((rc = store_end(q)))
            return rc;
    }
    for (int n = 0; next;) {
        int topup = next < 0;
        rc = fetch(tx, next, &q);
        if (rc)
            return rc == ERR_NOT_FOUND ? ERR_INTERNAL : rc;   /* a broken chain */
        int64_t id = store_i64(q, 0);
        next = store_i64(q, 12);
        if (before > 0 && id >= before) {
            store_end(q);
            continue;
        }
        if (n++ == limit) {
            *more = 1;
            return store_end(q);
        }
        char number[RECEIPT_NUMBER_MAX];
        if (topup)
            receipt_number(id, number);
        struct record r = {
            .id = id,
            .sim_id = sim_id,
            .kind = store_text(q, 1),
            .amount = store_i64(q, 2),
            .currency = store_text(q, 3),
            .balance_after = store_i64(q, 4),
            .topup_id = store_i64(q, 5),
            .bundle_id = store_i64(q, 6),
            .receipt = topup ? number : store_is_null(q, 7) ? NULL : store_text(q, 7),
            .channel = store_is_null(q, 8) ? NULL : store_text(q, 8),
            .method = store_is_null(q, 9) ? NULL : store_text(q, 9),
            .served_by = store_is_null(q, 13) ? NULL : store_text(q, 13),
            .reason = store_is_null(q, 14) ? NULL : store_text(q, 14),
            .created_at = store_i64(q, 10),
        };
        fn(arg, &r);
        if ((rc = store_end(q)))
            return rc;
    }
    return 0;
}

#include "core/record.h"

#include "store/store.h"

STORE_SQL(SQL_RECORD_ADD,
          "INSERT INTO sim_txns(sim_id, kind, amount, currency, balance_after, topup_id, bundle_id, receipt, "
          "channel, method, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
STORE_SQL(SQL_RECORD_LIST,
          "SELECT id, kind, amount, currency, balance_after, COALESCE(topup_id, 0), COALESCE(bundle_id, 0), "
          "receipt, channel, method, created_at FROM sim_txns WHERE sim_id = ? AND id < ? ORDER BY id DESC LIMIT ?");

int record_add(struct tx *tx, const struct record *r)
{
    return store_exec(tx->st, &SQL_RECORD_ADD, "isisizzsssi", r->sim_id, r->kind, r->amount, r->currency,
                      r->balance_after, r->topup_id, r->bundle_id, r->receipt, r->channel, r->method, tx->now);
}

int record_list(struct tx *tx, int64_t sim_id, int64_t before, int limit,
                void (*fn)(void *arg, const struct record *r), void *arg, int *more)
{
    *more = 0;
    int n = 0;
    struct store_q *q = store_query(tx->st, &SQL_RECORD_LIST, "iid", sim_id, before > 0 ? before : INT64_MAX,
                                    limit + 1);
    while (store_next(q)) {
        if (n++ == limit) {
            *more = 1;
            break;
        }
        struct record r = {
            .id = store_i64(q, 0),
            .sim_id = sim_id,
            .kind = store_text(q, 1),
            .amount = store_i64(q, 2),
            .currency = store_text(q, 3),
            .balance_after = store_i64(q, 4),
            .topup_id = store_i64(q, 5),
            .bundle_id = store_i64(q, 6),
            .receipt = store_is_null(q, 7) ? NULL : store_text(q, 7),
            .channel = store_is_null(q, 8) ? NULL : store_text(q, 8),
            .method = store_is_null(q, 9) ? NULL : store_text(q, 9),
            .created_at = store_i64(q, 10),
        };
        fn(arg, &r);
    }
    return store_end(q);
}

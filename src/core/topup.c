#include "core/topup.h"

#include <stdio.h>
#include <string.h>

#include "core/ledger.h"
#include "core/record.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/text.h"

static const char *const channels[] = {
#define X(n) #n,
    TOPUP_CHANNELS(X)
#undef X
};
static const char *const methods[] = {
#define X(n) #n,
    TOPUP_METHODS(X)
#undef X
};
/* The system account each method's money comes from (ledger_system_account). */
static const char *const clearing[] = {
#define X(n) "clearing_" #n,
    TOPUP_METHODS(X)
#undef X
};

static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return i;
    return -1;
}

int topup_channel_parse(const char *s) { return lookup(channels, CHANNEL__COUNT, s); }
int topup_method_parse(const char *s) { return lookup(methods, METHOD__COUNT, s); }
const char *topup_channel_name(int c) { return c >= 0 && c < CHANNEL__COUNT ? channels[c] : "?"; }
const char *topup_method_name(int m) { return m >= 0 && m < METHOD__COUNT ? methods[m] : "?"; }

int topup_check_amount(const struct conf *cf, int64_t amount, const char *currency)
{
    if (amount <= 0)
        return ERR_INVALID_AMOUNT;
    if (amount < cf->topup_min)
        return ERR_AMOUNT_TOO_SMALL;
    if (amount > cf->topup_max)
        return ERR_AMOUNT_TOO_LARGE;
    if (!currency || strcmp(currency, cf->currency))
        return ERR_CURRENCY_MISMATCH;
    return 0;
}

/* A top-up's id comes from the records' sequence (record.h): record_next_id
 * reads it once a transaction on the engine's writer, which holds the write
 * lock from that read to its COMMIT, and counts on from there; the ledger
 * cache it lives in is cleared on every rollback. The row is the top-up's
 * own record too (record.h): prev links it in front of the SIM's chain,
 * whose head the SIM was read with (sim.head; record_add keeps it). Its
 * receipt is not stored: the answer carries it, and it is composed from the
 * row again whenever it is fetched (receipt.h R1). */
STORE_SQL(SQL_TOPUP_INSERT,
          "INSERT INTO topups(id, sim_id, amount, currency, channel, method, fee, balance_after, active_until, "
          "reactivated, principal, created_at, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");

int topup_apply(struct tx *tx, const struct topup_req *req, struct topup_result *out)
{
    const struct conf *cf = tx->cf;
    struct sim *s = &out->sim;
    memset(out, 0, sizeof *out);
    int rc = topup_check_amount(cf, req->amount, req->currency);
    if (rc)
        return rc;
    if (req->channel < 0 || req->channel >= CHANNEL__COUNT)
        return ERR_INVALID_CHANNEL;
    if (req->method < 0 || req->method >= METHOD__COUNT)
        return ERR_INVALID_METHOD;
    rc = sim_get(tx, req->iccid, s);
    if (!rc)
        rc = sim_settle_for_money(tx, s);
    if (rc)
        return rc;

    int64_t day = conf_day_start(cf, tx->now);
    if (s->day_start != day) {
        s->day_start = day;
        s->day_total = 0;
    }
    if (s->day_total + req->amount > cf->daily_cap)
        return ERR_DAILY_LIMIT;

    int64_t before = s->balance;
    out->reactivated = s->state == SIM_GRACE || s->state == SIM_EXPIRED;
    out->fee = s->state == SIM_EXPIRED ? cf->reactivation_fee : 0;
    if (before + req->amount < out->fee)
        return ERR_INSUFFICIENT_BALANCE;
    out->balance = s->balance = before + req->amount - out->fee;
    s->active_until = sim_validity_after_topup(s, tx->now, cf);
    s->state = SIM_ACTIVE;
    s->day_total += req->amount;

    if ((rc = record_next_id(tx, &out->id)))
        return rc;
    const char *channel = topup_channel_name(req->channel), *method = topup_method_name(req->method);
    receipt_number(out->id, out->receipt_number);   /* the payload: topup_receipt, off the writer */
    rc = store_exec(tx->st, &SQL_TOPUP_INSERT, "iiisssiiidsii", out->id, s->id, req->amount, cf->currency, channel,
                    method, out->fee, out->balance, s->active_until, out->reactivated,
                    tx->principal ? tx->principal : "", tx->now, s->head);
    if (rc)
        return rc;

    char xid[48] = "topup:";
    int64_t source;
    text_cat_int(xid, sizeof xid, out->id);
    rc = ledger_system_account(tx, clearing[req->method], cf->currency, &source);
    if (!rc)
        rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = source, .credit = s->wallet_id,
                                                    .amount = req->amount, .unit = cf->currency, .kind = "topup",
                                                    .sim_id = s->id, .credit_later = out->fee ? NULL : &s->credit});
    if (!rc && out->fee) {
        int64_t revenue;
        snprintf(xid, sizeof xid, "topup:%lld:fee", (long long)out->id);
        rc = ledger_system_account(tx, "revenue_reactivation", cf->currency, &revenue);
        if (!rc)
            rc = ledger_transfer(tx, &(struct transfer){.xid = xid, .debit = s->wallet_id, .credit = revenue,
                                                        .amount = out->fee, .unit = cf->currency,
                                                        .kind = "reactivation_fee", .sim_id = s->id});
    }
    /* The top-up's row is its record; a fee's record follows it. Then the
     * SIM's row once: its state, the new head of its records and, without a
     * fee, the top-up's credit to its wallet (ledger L7). */
    struct record fee = {.sim_id = s->id, .kind = "reactivation_fee", .amount = -out->fee, .currency = cf->currency,
                         .balance_after = out->balance, .topup_id = out->id, .receipt = out->receipt_number};
    s->link = RECORD_TOPUP(out->id);
    if (!rc && out->fee && (rc = record_link(tx, s->id, s->link)) == 0)
        rc = record_insert(tx, &fee, &s->link);
    if (!rc)
        rc = sim_save(tx, s);
    return rc;
}

void topup_answer_from(struct tx *tx, const struct topup_req *req, const struct topup_result *res,
                       struct topup_answer *out)
{
    *out = (struct topup_answer){.id = res->id, .amount = req->amount, .fee = res->fee, .balance = res->balance,
                                 .active_until = res->sim.active_until, .created_at = tx->now,
                                 .reactivated = res->reactivated, .state = res->sim.state,
                                 .iccid = res->sim.iccid, .msisdn = res->sim.msisdn,
                                 .currency = tx->cf->currency, .channel = topup_channel_name(req->channel),
                                 .method = topup_method_name(req->method), .served_by = tx->principal};
}

const char *topup_receipt(struct arena *a, const struct topup_answer *v)
{
    if (v->receipt_payload)
        return v->receipt_payload;
    char number[RECEIPT_NUMBER_MAX];
    const char *payload;
    receipt_issue(a,
                  &(struct receipt_fields){.iccid = v->iccid, .msisdn = v->msisdn, .channel = v->channel,
                                           .method = v->method, .currency = v->currency, .served_by = v->served_by,
                                           .topup_id = v->id, .amount = v->amount, .fee = v->fee,
                                           .balance_after = v->balance, .active_until = v->active_until,
                                           .issued_at = v->created_at},
                  number, &payload);
    return payload;
}

/* Everything the answer and its receipt show, in one read (receipt.h R1). */
STORE_SQL(SQL_TOPUP_ANSWER,
          "SELECT t.amount, t.fee, t.balance_after, t.active_until, t.created_at, t.reactivated, s.iccid, "
          "t.currency, t.channel, t.method, COALESCE(s.msisdn, s.released_msisdn), t.principal, t.receipt, s.lang "
          "FROM topups t "
          "JOIN sims s ON s.id = t.sim_id WHERE t.id = ?");

int topup_answer_get(struct tx *tx, int64_t id, struct topup_answer *out)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_TOPUP_ANSWER, "i", id);
    if (rc)
        return rc;
    /* topup_apply leaves every SIM it credits active (and refuses the rest). */
    *out = (struct topup_answer){.id = id, .amount = store_i64(q, 0), .fee = store_i64(q, 1),
                                 .balance = store_i64(q, 2), .active_until = store_i64(q, 3),
                                 .created_at = store_i64(q, 4), .reactivated = (int)store_i64(q, 5),
                                 .state = SIM_ACTIVE, .iccid = arena_strdup(tx->a, store_text(q, 6)),
                                 .currency = arena_strdup(tx->a, store_text(q, 7)),
                                 .channel = arena_strdup(tx->a, store_text(q, 8)),
                                 .method = arena_strdup(tx->a, store_text(q, 9)),
                                 .msisdn = arena_strdup(tx->a, store_text(q, 10)),
                                 .served_by = arena_strdup(tx->a, store_text(q, 11)),
                                 .receipt_payload = store_is_null(q, 12) ? NULL   /* stored before R1 */
                                                                         : arena_strdup(tx->a, store_text(q, 12)),
                                 .lang = arena_strdup(tx->a, store_text(q, 13))};
    return store_end(q);
}

int topup_receipt_get(struct tx *tx, const char *number, const char **payload, const char **lang)
{
    int64_t id = receipt_number_topup(number);
    struct topup_answer v;
    int rc = id ? topup_answer_get(tx, id, &v) : ERR_NOT_FOUND;
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_RECEIPT_NOT_FOUND : rc;
    *payload = topup_receipt(tx->a, &v);
    if (lang)
        *lang = v.lang;
    return 0;
}

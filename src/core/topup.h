/* topup — crediting a SIM's wallet: the one atomic command behind every
 * channel (portal, agent, kiosk, voucher, admin).
 *
 * In one transaction: settle the SIM's lifecycle; refuse a terminated or
 * suspended SIM; enforce the per-top-up limits and the daily cap; credit the
 * wallet from the clearing account of the payment method; reactivate a SIM in
 * grace (free) or expired (charging the reactivation fee); extend validity by
 * the configured rule; record the top-up, its transaction records and its
 * receipt (signed when fetched). Any refusal leaves nothing behind (the caller's savepoint).
 */
#pragma once
#include <stdint.h>

#include "core/receipt.h"
#include "core/sim.h"
#include "core/tx.h"

#define TOPUP_CHANNELS(X) X(portal) X(agent) X(kiosk) X(voucher) X(admin)
#define TOPUP_METHODS(X) X(alipay) X(wechat) X(card) X(cash) X(bank_card) X(voucher) X(adjustment)

enum topup_channel {
#define X(n) CHANNEL_##n,
    TOPUP_CHANNELS(X)
#undef X
    CHANNEL__COUNT
};
enum topup_method {
#define X(n) METHOD_##n,
    TOPUP_METHODS(X)
#undef X
    METHOD__COUNT
};

int topup_channel_parse(const char *s);   /* -1 if unknown */
int topup_method_parse(const char *s);
const char *topup_channel_name(int c);
const char *topup_method_name(int m);

struct topup_req {
    const char *iccid;         /* or the MSISDN (sim_get) */
    int64_t amount;            /* minor units */
    const char *currency;
    int channel, method;
};

struct topup_result {
    int64_t id;
    struct sim sim;            /* after the top-up */
    int64_t balance;           /* wallet after, minor units */
    int64_t fee;               /* reactivation fee charged */
    int reactivated;
    char receipt_number[RECEIPT_NUMBER_MAX];
};

/* Checks amount and currency against the configuration (used by the API before
 * queueing, and again by topup_apply). */
int topup_check_amount(const struct conf *cf, int64_t amount, const char *currency);
int topup_apply(struct tx *tx, const struct topup_req *req, struct topup_result *out);

/* What a top-up's answer shows: as topup_apply leaves it (topup_answer_from)
 * or as its topups row keeps it (topup_answer_get, strings in tx->a), the
 * same either way: a repeat's answer is rendered from the row (engine.h E4). */
struct topup_answer {
    int64_t id, amount, fee, balance, active_until, created_at;
    int reactivated;
    enum sim_state state;
    const char *iccid, *msisdn, *currency, *channel, *method, *served_by;
    const char *receipt_payload;   /* as stored, or NULL: topup_receipt composes it */
    const char *lang;              /* the SIM's (topup_answer_get only) */
};
void topup_answer_from(struct tx *tx, const struct topup_req *req, const struct topup_result *res,
                       struct topup_answer *out);
int topup_answer_get(struct tx *tx, int64_t id, struct topup_answer *out);   /* ERR_NOT_FOUND */
/* The answer's receipt, canonical and unsigned (receipt.h R1), from a: the
 * one stored with the row, if any, else composed from the answer. The API
 * composes it on the HTTP thread: the writer spends nothing on it. */
const char *topup_receipt(struct arena *a, const struct topup_answer *v);
/* The receipt the number names, from its top-up's row (receipt.h R1), from
 * tx->a, and (lang not NULL) its SIM's language. ERR_RECEIPT_NOT_FOUND for
 * no such top-up, and for any string receipt_number would not have printed. */
int topup_receipt_get(struct tx *tx, const char *number, const char **payload, const char **lang);

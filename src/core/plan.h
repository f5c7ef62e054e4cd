/* plan — the catalogue of plans, and bundles: a plan bought by a SIM.
 *
 * Buying a plan is one set of ledger transfers: the price from the wallet to
 * revenue, and for each allowance the units from the issuance account of that
 * unit into a bucket account owned by the bundle. Expiry and forfeiture move
 * what is left of a bucket back out (to expiry:<unit> / forfeiture:<unit>).
 */
#pragma once
#include <stdint.h>

#include "core/sim.h"
#include "core/tx.h"

#define PLAN_CODE_MAX 32
#define PLAN_NAME_MAX 128
#define PLAN_ZONES 32   /* networks a plan may name, each at most 6 digits */
#define PLAN_ZONES_MAX (2 + PLAN_ZONES * 9)   /* their JSON text: ["310410",…] */
/* The largest price or allowance (2^50: 1 PiB, or 11 billion CNY in fen). A
 * sale moves it through a system account whose totals only grow (int64), so
 * no single sale may come near their bound; past it a sale is refused,
 * ERR_NUMBER_OVERFLOW (ledger.h L8). */
#define PLAN_QUANTITY_MAX (1LL << 50)

enum service { SVC_DATA, SVC_VOICE, SVC_SMS, SVC__COUNT };
extern const char *const service_unit[SVC__COUNT];       /* "bytes", "seconds", "sms" */
extern const char *const service_allowance[SVC__COUNT];  /* "data_bytes", "voice_seconds", "sms" */

struct plan {
    int64_t id;
    char code[PLAN_CODE_MAX + 1];
    char name_zh[PLAN_NAME_MAX + 1], name_en[PLAN_NAME_MAX + 1], name_ru[PLAN_NAME_MAX + 1];
    int64_t price;
    char currency[4];
    int64_t validity_days;
    int64_t allowance[SVC__COUNT];
    char zones[PLAN_ZONES_MAX + 1];   /* JSON array text, e.g. ["250","460"] */
    int payg;
    int active;
};

struct bundle {
    int64_t id, sim_id, plan_id;
    char plan_code[PLAN_CODE_MAX + 1];
    char state[12];
    int64_t account[SVC__COUNT];      /* 0 when the plan has no such allowance */
    int64_t remaining[SVC__COUNT];
    int64_t starts_at, expires_at;
};

int plan_code_valid(const char *code);   /* [a-z0-9_-]{1,32} */
/* Creates a plan; the same code with identical fields sets *existed; other fields: ERR_PLAN_EXISTS. */
int plan_create(struct tx *tx, struct plan *p, int *existed);
int plan_get(struct tx *tx, const char *code, struct plan *out);   /* ERR_PLAN_NOT_FOUND */
int plan_list(struct tx *tx, void (*fn)(void *arg, const struct plan *p), void *arg);

/* Buys plan for the SIM from its wallet (ERR_INSUFFICIENT_BALANCE,
 * ERR_SIM_NOT_ACTIVE, ERR_PLAN_NOT_SOLD). Settles the SIM first. */
int plan_buy(struct tx *tx, struct sim *s, const struct plan *p, struct bundle *out, int64_t *balance_after);
int bundle_list(struct tx *tx, int64_t sim_id, void (*fn)(void *arg, const struct bundle *b), void *arg);
/* Moves the units left in a SIM's active bundles to forfeiture (termination). */
int bundle_forfeit_all(struct tx *tx, int64_t sim_id);
/* Expires up to `limit` bundles past their expiry; *count receives how many. */
int bundle_sweep(struct tx *tx, int limit, int *count);

/* views — the JSON shapes of the API's objects, in one place so that every
 * route renders a SIM, a plan or a balance the same way. */
#pragma once
#include <jansson.h>

#include "core/plan.h"
#include "core/record.h"
#include "core/sim.h"
#include "core/tx.h"

json_t *view_balance(int64_t amount, const char *currency);
json_t *view_plan(const struct plan *p);
json_t *view_bundle(const struct bundle *b);
json_t *view_record(const struct record *r);
/* The SIM with its state as the clock sees it, balance and bundles (reads through tx). */
int view_sim(struct tx *tx, const struct sim *s, json_t **out);
/* Validates an ICCID path parameter: 0 or ERR_INVALID_ICCID. */
int view_iccid_param(const char *iccid);

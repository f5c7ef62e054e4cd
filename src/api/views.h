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
/* Validates the {iccid} of a /v1/sims/{iccid} path, which names the SIM by
 * its ICCID or by its MSISDN ('+' first; sim_get): 0, or ERR_INVALID_ICCID
 * or ERR_INVALID_MSISDN with *param the field to name. */
int view_sim_param(const char *ref, const char **param);

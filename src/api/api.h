/* api — one file per resource; each handler parses and validates its input,
 * reads through a reader transaction or builds a command for the engine, and
 * renders JSON. The route table (routes.c) says who may call what. */
#pragma once
#include <stddef.h>

#include "core/topup.h"
#include "http/http.h"

/* The top-up command as POST /v1/sims/{iccid}/topups queues it (c->arg is a
 * struct topup_cmd); exported so the engine benchmark runs exactly this. */
struct topup_cmd {
    struct topup_req req;
    struct topup_result res;
    struct topup_answer answer;   /* exec's, for cmd.compose */
};
int api_topup_exec(struct tx *tx, struct cmd *c);
int api_topup_render(struct tx *tx, int64_t id, const char **body, size_t *len);

extern const struct route api_routes[];
extern const size_t api_route_count;

#define TOPUP_VERSION "0.1.0"   /* /healthz and /metrics say it */
int api_health(struct req *r);
int api_metrics(struct req *r);
int api_plans_list(struct req *r);
int api_plans_create(struct req *r);
int api_sims_create(struct req *r);
int api_sims_import(struct req *r);
int api_sims_get(struct req *r);
int api_sims_suspend(struct req *r);
int api_sims_resume(struct req *r);
int api_topups_create(struct req *r);
int api_bundles_create(struct req *r);
int api_transactions_list(struct req *r);
int api_receipts_get(struct req *r);
int api_receipts_print(struct req *r);
int api_receipts_verify(struct req *r);
int api_receipts_public_key(struct req *r);
int api_ledger_check(struct req *r);
int api_test_clock(struct req *r);
int api_tokens_create(struct req *r);
int api_tokens_list(struct req *r);
int api_tokens_revoke(struct req *r);

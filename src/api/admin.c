/* Operator tools: the ledger check, and the test clock (only with --test-clock). */
#include "api/api.h"
#include "core/ledger.h"
#include "http/server.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/timefmt.h"

/* The check reads every account (4.5 s at 10M SIMs): apart from the HTTP
 * thread, in a snapshot the writer goes on beside. */
static int read_check(struct tx *tx, struct cmd *c)
{
    struct ledger_report rep;
    int rc = ledger_check(tx, &rep);
    if (rc)
        return rc;
    json_t *units = json_array(), *violations = json_array();
    for (int i = 0; i < rep.nunits; i++)
        json_array_append_new(units, json_pack("{s:s, s:I, s:I, s:I}", "unit", rep.units[i].unit, "debits",
                                               (json_int_t)rep.units[i].debits, "credits",
                                               (json_int_t)rep.units[i].credits, "accounts",
                                               (json_int_t)rep.units[i].accounts));
    if (rep.violations)
        json_array_append_new(violations, json_string(rep.first_violation));
    c->status = 200;
    c->body = json_text(tx->a, json_pack("{s:b, s:o, s:I, s:o}", "ok", rep.violations == 0, "units", units,
                                         "violation_count", (json_int_t)rep.violations, "violations", violations));
    return 0;
}

int api_ledger_check(struct req *r) { return req_read_apart(r, read_check); }

/* Moves time and sweeps everything that became due, in one command. */
static int exec_clock(struct tx *tx, struct cmd *c)
{
    struct sweep w = {.limit = 1000000};
    struct cmd sweep = {.arg = &w};
    int rc = server_sweep_exec(tx, &sweep);
    if (rc)
        return rc;
    c->status = 200;
    c->body = json_text(tx->a, json_pack("{s:o, s:i}", "now", json_time(tx->now), "moved", sweep.status));
    return 0;
}

int api_test_clock(struct req *r)
{
    static const char *const keys[] = {"advance", "now", NULL};
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    int64_t advance = 0, target = 0;
    const char *now = NULL, *bad = NULL;
    if (json_only_keys(b, keys, &bad))   /* a misspelt key moved nothing and said 200 */
        return req_error(r, ERR_INVALID_PARAMETER, bad);
    int rc = json_field_int(b, "advance", 0, &advance);
    if (rc || advance < 0 || advance > 100LL * 366 * 86400) {   /* a century at most */
        return req_error(r, rc ? rc : ERR_INVALID_PARAMETER, "advance");
    }
    rc = json_field_str(b, "now", 0, 32, &now);
    if (!rc && now && (timefmt_parse(now, &target) || target > INT64_C(4102444800)))   /* before 2100 */
        rc = ERR_INVALID_PARAMETER;
    if (rc) {
        return req_error(r, rc, "now");
    }
    if (target)
        clock_set(req_clock(r), target);
    clock_advance(req_clock(r), advance);
    r->idem_key = NULL;   /* time moves once per call, never replayed */
    return req_submit(r, exec_clock, NULL);
}

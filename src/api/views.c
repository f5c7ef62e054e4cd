#include "api/views.h"

#include <stdio.h>

#include "http/http.h"
#include "util/err.h"

json_t *view_balance(int64_t amount, const char *currency)
{
    return json_pack("{s:I, s:s}", "amount", (json_int_t)amount, "currency", currency);
}

json_t *view_plan(const struct plan *p)
{
    json_t *zones = json_loads(p->zones, 0, NULL);
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:I, s:s, s:I, s:{s:I, s:I, s:I}, s:o, s:b, s:b}", "code", p->code,
                     "name", "zh", p->name_zh, "en", p->name_en, "ru", p->name_ru, "price", (json_int_t)p->price,
                     "currency", p->currency, "validity_days", (json_int_t)p->validity_days, "allowances",
                     "data_bytes", (json_int_t)p->allowance[SVC_DATA], "voice_seconds",
                     (json_int_t)p->allowance[SVC_VOICE], "sms", (json_int_t)p->allowance[SVC_SMS], "zones",
                     zones ? zones : json_array(), "payg", p->payg, "active", p->active);
}

json_t *view_bundle(const struct bundle *b)
{
    char id[32];
    snprintf(id, sizeof id, "bu_%lld", (long long)b->id);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:I, s:I, s:I}}", "id", id, "plan", b->plan_code, "state",
                     b->state, "starts_at", json_time(b->starts_at), "expires_at", json_time(b->expires_at),
                     "remaining", "data_bytes", (json_int_t)b->remaining[SVC_DATA], "voice_seconds",
                     (json_int_t)b->remaining[SVC_VOICE], "sms", (json_int_t)b->remaining[SVC_SMS]);
}

json_t *view_record(const struct record *r)
{
    char id[32];
    snprintf(id, sizeof id, "tx_%lld", (long long)r->id);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:I, s:o}", "id", id, "kind", r->kind, "amount",
                          (json_int_t)r->amount, "currency", r->currency, "balance_after",
                          (json_int_t)r->balance_after, "created_at", json_time(r->created_at));
    if (r->topup_id) {
        snprintf(id, sizeof id, "tu_%lld", (long long)r->topup_id);
        json_object_set_new(o, "topup", json_string(id));
    }
    if (r->bundle_id) {
        snprintf(id, sizeof id, "bu_%lld", (long long)r->bundle_id);
        json_object_set_new(o, "bundle", json_string(id));
    }
    json_object_set_new(o, "receipt", r->receipt ? json_string(r->receipt) : json_null());
    json_object_set_new(o, "channel", r->channel ? json_string(r->channel) : json_null());
    json_object_set_new(o, "method", r->method ? json_string(r->method) : json_null());
    json_object_set_new(o, "served_by", r->served_by ? json_string(r->served_by) : json_null());
    json_object_set_new(o, "reason", r->reason ? json_string(r->reason) : json_null());
    return o;
}

static void add_bundle(void *arg, const struct bundle *b) { json_array_append_new(arg, view_bundle(b)); }

int view_sim(struct tx *tx, const struct sim *s, json_t **out)
{
    json_t *bundles = json_array();
    int rc = bundle_list(tx, s->id, add_bundle, bundles);
    if (rc) {
        json_decref(bundles);
        return rc;
    }
    char released[MSISDN_MAX + 1];
    if ((rc = sim_released_msisdn(tx, s, released))) {
        json_decref(bundles);
        return rc;
    }
    int holds = s->msisdn[0] && !released[0];   /* a SIM the clock has terminated has given its number back */
    *out = json_pack("{s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "iccid", s->iccid, "msisdn",
                     holds ? json_string(s->msisdn) : json_null(), "released_msisdn",
                     released[0] ? json_string(released) : json_null(), "imsi",
                     s->imsi[0] ? json_string(s->imsi) : json_null(), "language", s->lang, "state",
                     sim_state_name(sim_state_at(s, tx->now, tx->cf)), "balance",
                     view_balance(s->balance, tx->cf->currency), "active_until", json_time(s->active_until),
                     "grace_until", json_time(sim_grace_until(s, tx->cf)), "created_at", json_time(s->created_at),
                     "bundles", bundles);
    return 0;
}

int view_sim_param(const char *ref, const char **param)
{
    if (ref[0] == '+')
        return sim_msisdn_valid(ref) ? 0 : (*param = "msisdn", ERR_INVALID_MSISDN);
    return sim_iccid_valid(ref) ? 0 : (*param = "iccid", ERR_INVALID_ICCID);
}

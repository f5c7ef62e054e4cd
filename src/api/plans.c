/* /v1/plans — the catalogue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/views.h"
#include "core/plan.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/text.h"

static void add_plan(void *arg, const struct plan *p) { json_array_append_new(arg, view_plan(p)); }

int api_plans_list(struct req *r)
{
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    json_t *list = json_array();
    int rc = plan_list(&tx, add_plan, list);
    rc = req_read_end(r, &tx, rc);
    if (rc) {
        json_decref(list);
        return req_error(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o}", "data", list));
}

struct plan_cmd {
    struct plan p;
};

static int exec_create(struct tx *tx, struct cmd *c)
{
    struct plan_cmd *pc = c->arg;
    int existed = 0;
    int rc = plan_create(tx, &pc->p, &existed);
    if (rc)
        return rc;
    c->status = existed ? 200 : 201;
    c->body = json_text(tx->a, view_plan(&pc->p));
    return 0;
}

/* Copies a bounded string field into a fixed buffer. */
static int str_into(const struct jv *o, const char *key, char *dst, size_t cap)
{
    const char *v;
    int rc = json_field_str(o, key, 1, cap - 1, &v);
    if (!rc && (!*v || !text_printable(v, cap - 1)))
        rc = ERR_INVALID_PARAMETER;
    if (!rc)
        memcpy(dst, v, strlen(v) + 1);
    return rc;
}

/* zones: at most PLAN_ZONES visited networks, each an MCC (3 digits) or an
 * MCC and MNC (5 or 6), none twice. */
static int zones_valid(const struct jv *zones)
{
    if (zones->kind != JV_ARRAY || zones->len > PLAN_ZONES)
        return 0;
    jv_foreach(z, zones) {
        if (z->kind != JV_STRING || (z->len != 3 && z->len != 5 && z->len != 6) ||
            strspn(z->s, "0123456789") != z->len)   /* jv J2: NUL-terminated */
            return 0;
        for (const struct jv *y = zones->first; y != z; y = y->next)
            if (y->len == z->len && !memcmp(y->s, z->s, z->len))
                return 0;
    }
    return 1;
}

int api_plans_create(struct req *r)
{
    static const char *const keys[] = {"code", "name", "price", "currency", "validity_days", "allowances",
                                       "zones", "payg", NULL};
    static const char *const allowance_keys[] = {"data_bytes", "voice_seconds", "sms", NULL};
    static const char *const name_keys[] = {"zh", "en", "ru", NULL};
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    struct plan_cmd *pc = arena_alloc(&r->a, sizeof *pc);
    struct plan *p = &pc->p;
    const char *bad = NULL, *cur = NULL;
    int rc = json_only_keys(b, keys, &bad);
    const struct jv *name = jv_get(b, "name"), *allow = jv_get(b, "allowances"), *zones = jv_get(b, "zones");
    if (!rc && (rc = str_into(b, "code", p->code, sizeof p->code)) == 0 && !plan_code_valid(p->code))
        rc = ERR_INVALID_PARAMETER;
    if (rc && !bad)
        bad = "code";
    if (!rc && (!name || name->kind != JV_OBJECT))
        rc = name ? ERR_INVALID_PARAMETER : ERR_MISSING_PARAMETER, bad = "name";
    if (!rc && json_only_keys(name, name_keys, &bad))   /* a name in a fourth language was dropped unsaid */
        rc = ERR_INVALID_PARAMETER, bad = "name";
    if (!rc && ((rc = str_into(name, "zh", p->name_zh, sizeof p->name_zh)) ||
                (rc = str_into(name, "en", p->name_en, sizeof p->name_en)) ||
                (rc = str_into(name, "ru", p->name_ru, sizeof p->name_ru))))
        bad = "name";
    if (!rc && ((rc = json_field_int(b, "price", 1, &p->price)) || p->price < 0 || p->price > PLAN_QUANTITY_MAX))
        rc = rc ? rc : ERR_INVALID_PARAMETER, bad = "price";
    if (!rc && (rc = json_field_str(b, "currency", 0, 3, &cur)) == 0 && cur && strcmp(cur, req_conf(r)->currency))
        rc = ERR_CURRENCY_MISMATCH;
    if (rc && !bad)
        bad = "currency";
    if (!rc && ((rc = json_field_int(b, "validity_days", 1, &p->validity_days)) || p->validity_days < 1 ||
                p->validity_days > 3650))
        rc = rc ? rc : ERR_INVALID_PARAMETER, bad = "validity_days";
    if (!rc && allow && allow->kind != JV_OBJECT)
        rc = ERR_INVALID_PARAMETER, bad = "allowances";
    if (!rc && allow && json_only_keys(allow, allowance_keys, &bad))
        rc = ERR_INVALID_PARAMETER, bad = "allowances";
    for (int v = 0; !rc && allow && v < SVC__COUNT; v++)
        if ((rc = json_field_int(allow, service_allowance[v], 0, &p->allowance[v])) || p->allowance[v] < 0 ||
            p->allowance[v] > PLAN_QUANTITY_MAX)
            rc = ERR_INVALID_PARAMETER, bad = "allowances";
    if (!rc && zones && !zones_valid(zones))
        rc = ERR_INVALID_PARAMETER, bad = "zones";
    if (!rc && (rc = json_field_bool(b, "payg", 0, &p->payg)))
        bad = "payg";
    if (rc) {
        req_error(r, rc, bad);   /* bad may point into b */
        return 0;
    }
    memcpy(p->currency, req_conf(r)->currency, 4);
    json_t *list = json_array();
    if (zones)
        jv_foreach(z, zones) json_array_append_new(list, json_stringn(z->s, z->len));
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    snprintf(p->zones, sizeof p->zones, "%s", text ? text : "[]");
    free(text);
    return req_submit(r, exec_create, pc);
}

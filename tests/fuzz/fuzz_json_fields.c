/* fuzz_json_fields — what the handlers build on, without the HTTP server:
 * receipt verification (POST /v1/receipts/verify takes any JSON from anyone),
 * the request body parser (util/jv.h), the JSON field helpers of
 * src/http/json.c, the Accept-Language parser and the RFC 3339 time
 * conversions.
 *
 * Input: any bytes, usually a JSON document (the seeds are receipts and
 * request bodies). Properties checked, beyond "no crash, leak or UB":
 *  - receipt_verify never reads outside the len bytes it is given;
 *  - for any non-empty JSON object P (less "signature" and "key_id"),
 *    receipt_signed(canonical(P)) verifies with the signing key, does not with
 *    another key, and P re-serialised in any layout with that signature verifies;
 *  - jv_parse accepts what jansson accepts (JSON_DECODE_ANY and
 *    JSON_REJECT_DUPLICATES) up to JV_MAX_DEPTH deep, nothing else, and reads
 *    the same values (jv.h J1, J2);
 *  - json_field_str/int/bool and json_only_keys keep their contract (http.h);
 *  - i18n_pick returns a language of ours;
 *  - timefmt_parse accepts only the exact form and round-trips through
 *    timefmt_rfc3339; timefmt_rfc3339 writes a NUL-terminated string within
 *    TIMEFMT_LEN for any time (outside the years 1000..9999 it writes the
 *    nearest bound).
 */
#include <jansson.h>
#include <sodium.h>

#include "core/receipt.h"
#include "fuzz.h"
#include "http/http.h"
#include "util/arena.h"
#include "util/err.h"
#include "util/i18n.h"
#include "util/jv.h"
#include "util/timefmt.h"

#define YEAR1 INT64_C(-62135596800)       /* 0001-01-01T00:00:00Z */
#define YEAR1000 INT64_C(-30610224000)    /* 1000-01-01T00:00:00Z */
#define YEAR10000 INT64_C(253402300800)   /* 10000-01-01T00:00:00Z */

static struct receipt_keys keys, other;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char seed[32];
    FUZZ_CHECK(sodium_init() >= 0, "sodium_init");
    for (int i = 0; i < 32; i++)
        seed[i] = (unsigned char)(i * 7 + 1);   /* the unit tests' key */
    receipt_keys_from_seed(&keys, seed);
    seed[0] ^= 1;
    receipt_keys_from_seed(&other, seed);
    return 0;
}

static int in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(*list, key))
            return 1;
    return 0;
}

/* How deep jansson's value nests: a scalar is 0, [] is 1. */
static int depth(json_t *v)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *e;
    if (json_is_array(v))
        json_array_foreach(v, i, e) d = d > depth(e) ? d : depth(e);
    if (json_is_object(v))
        json_object_foreach(v, k, e) d = d > depth(e) ? d : depth(e);
    return json_is_array(v) || json_is_object(v) ? d + 1 : 0;
}

/* The same value, read by jansson and by jv. */
static int same(json_t *j, const struct jv *v)
{
    switch (v->kind) {
    case JV_NULL: return json_is_null(j);
    case JV_BOOL: return json_is_boolean(j) && v->b == json_is_true(j);
    case JV_INT: return json_is_integer(j) && v->i == json_integer_value(j);
    case JV_REAL: return json_is_real(j) && v->d == json_real_value(j);
    case JV_STRING:
        return json_is_string(j) && v->len == json_string_length(j) && strlen(v->s) == v->len &&
               !memcmp(v->s, json_string_value(j), v->len);
    case JV_ARRAY: {
        size_t i = 0;
        if (!json_is_array(j) || json_array_size(j) != v->len)
            return 0;
        jv_foreach(e, v) if (!same(json_array_get(j, i++), e)) return 0;
        return 1;
    }
    case JV_OBJECT:
        if (!json_is_object(j) || json_object_size(j) != v->len)
            return 0;
        jv_foreach(m, v) {
            json_t *e = strlen(m->key) == m->key_len ? json_object_get(j, m->key) : NULL;
            if (!e || !same(e, m))
                return 0;
        }
        return 1;
    }
    return 0;
}

static void check_parse(const uint8_t *data, size_t size, json_t *any)
{
    struct arena a;
    arena_init(&a);
    struct jv *v = (struct jv *)1;
    int rc = jv_parse(&a, (const char *)data, size, &v);
    FUZZ_CHECK(rc == 0 || (rc == ERR_INVALID_JSON && !v), "jv_parse rc %d", rc);
    if (memchr(data, 0, size))   /* jansson stops at a NUL as at the end; jv refuses it */
        FUZZ_CHECK(rc, "jv_parse accepted a NUL byte");
    else if (!rc)
        FUZZ_CHECK(any && same(any, v), "jv_parse read what jansson %s: %.*s", any ? "reads otherwise" : "refuses",
                   (int)(size < 200 ? size : 200), (const char *)data);
    else
        FUZZ_CHECK(!any || depth(any) > JV_MAX_DEPTH, "jv_parse refused what jansson reads: %.*s",
                   (int)(size < 200 ? size : 200), (const char *)data);
    arena_free(&a);
}

static void check_fields(json_t *o, const struct jv *jo)
{
    static const char *const probes[] = {"amount", "currency", "channel", "method", "iccid", "code", "name",
                                         "price", "payg", "advance", "now", "plan", "role", "", NULL};
    static const size_t maxlens[] = {0, 3, 16, 28, 64};
    static const char *const topup_keys[] = {"amount", "currency", "channel", "method", NULL};
    static const char *const plan_keys[] = {"code", "name", "price", "currency", "validity_days", "allowances",
                                            "zones", "payg", NULL};
    static const char *const none[] = {NULL};
    const char *key;
    json_t *v;

    for (const char *const *k = probes; *k; k++) {
        json_t *m = json_object_get(o, *k);
        for (size_t i = 0; i < sizeof maxlens / sizeof maxlens[0]; i++) {
            const char *s = "unset";
            int rc = json_field_str(jo, *k, (int)(i & 1), maxlens[i], &s);
            FUZZ_CHECK(rc == 0 || rc == ERR_MISSING_PARAMETER || rc == ERR_INVALID_PARAMETER, "str rc %d", rc);
            if (!m || json_is_null(m)) {
                FUZZ_CHECK(rc == ((i & 1) ? ERR_MISSING_PARAMETER : 0) && !s, "absent '%s': rc %d", *k, rc);
            } else if (!rc) {
                FUZZ_CHECK(json_is_string(m) && !strcmp(s, json_string_value(m)), "'%s': not the member's string", *k);
                FUZZ_CHECK(strlen(s) <= maxlens[i], "'%s': %zu bytes past maxlen %zu", *k, strlen(s), maxlens[i]);
                FUZZ_CHECK(strlen(s) == json_string_length(m), "'%s': a NUL inside passed", *k);
            } else {
                FUZZ_CHECK(rc == ERR_INVALID_PARAMETER && (!json_is_string(m) || json_string_length(m) > maxlens[i] ||
                                                           strlen(json_string_value(m)) != json_string_length(m)),
                           "'%s' refused (%d) though a string within %zu bytes", *k, rc, maxlens[i]);
            }
        }
        int64_t n = 0x5a5a;
        int rc = json_field_int(jo, *k, 1, &n);
        FUZZ_CHECK(rc ? n == 0x5a5a : json_is_integer(m) && n == json_integer_value(m), "int '%s' rc %d", *k, rc);
        int b = 7;
        rc = json_field_bool(jo, *k, 0, &b);
        FUZZ_CHECK(rc ? b == 7 : (!m || json_is_null(m)) ? b == 7 : json_is_boolean(m) && b == json_is_true(m),
                   "bool '%s' rc %d", *k, rc);
    }

    const char *const *lists[] = {topup_keys, plan_keys, none};
    for (size_t l = 0; l < 3; l++) {
        const char *bad = NULL;
        int rc = json_only_keys(jo, lists[l], &bad);
        int all_in = 1;
        json_object_foreach(o, key, v) all_in = all_in && in_list(key, lists[l]);
        FUZZ_CHECK((rc == 0) == all_in, "json_only_keys rc %d, all keys allowed: %d", rc, all_in);
        if (rc)
            FUZZ_CHECK(bad && json_object_get(o, bad) && !in_list(bad, lists[l]), "json_only_keys bad '%s'",
                       bad ? bad : "(null)");
    }
}

/* Sign canonically as the server does (receipt_signed splices key_id and
 * signature into the payload); the result must verify. */
static void check_signing(json_t *o)
{
    json_t *p = json_deep_copy(o);
    json_object_del(p, "signature");
    json_object_del(p, "key_id");
    if (!json_object_size(p)) {
        json_decref(p);   /* the server never signs an empty payload */
        return;
    }
    char *canon = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    FUZZ_CHECK(canon, "json_dumps failed on a parsed object");
    struct arena a;
    arena_init(&a);
    const char *signed_text = receipt_signed(&a, &keys, canon, strlen(canon));
    FUZZ_CHECK(receipt_verify(&keys, signed_text, strlen(signed_text)) == 1, "receipt_signed output does not verify: %s",
               signed_text);
    FUZZ_CHECK(receipt_verify(&other, signed_text, strlen(signed_text)) == 0, "verifies with another key: %s",
               signed_text);

    /* The same object in another layout, keys unsorted, with that signature. */
    json_t *s = json_loads(signed_text, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(s), "receipt_signed output is not a JSON object: %s", signed_text);
    json_object_set(p, "signature", json_object_get(s, "signature"));
    char *loose = json_dumps(p, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    FUZZ_CHECK(loose && receipt_verify(&keys, loose, strlen(loose)) == 1, "re-laid-out receipt does not verify: %s",
               loose ? loose : "(null)");
    free(loose);
    json_decref(s);
    arena_free(&a);
    free(canon);
    json_decref(p);
}

static void check_time(const uint8_t *data, size_t size, const char *text)
{
    int64_t t;
    char out[TIMEFMT_LEN + 8];
    if (!timefmt_parse(text, &t)) {
        memset(out, 'X', sizeof out);
        timefmt_rfc3339(t, out);
        FUZZ_CHECK(!strcmp(out, text), "timefmt_parse('%s') = %lld, which formats as '%.*s'", text, (long long)t,
                   TIMEFMT_LEN, out);
    }
    if (size < 8)
        return;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | data[i];
    t = (int64_t)u;
    memset(out, 'X', sizeof out);
    timefmt_rfc3339(t, out);
    FUZZ_CHECK(memchr(out, 0, TIMEFMT_LEN), "timefmt_rfc3339(%lld) left no NUL in its %d bytes: '%.*s'", (long long)t,
               TIMEFMT_LEN, TIMEFMT_LEN, out);
    if (t >= YEAR1000 && t < YEAR10000) {
        int64_t back = 0;
        FUZZ_CHECK(strlen(out) == 20 && !timefmt_parse(out, &back) && back == t, "%lld -> '%s' -> %lld", (long long)t,
                   out, (long long)back);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: reading past len is an ASan report. */
    char *exact = malloc(size ? size : 1);
    if (!exact)
        abort();
    if (size)
        memcpy(exact, data, size);
    int v = receipt_verify(&keys, exact, size);
    FUZZ_CHECK(v == 0 || v == 1, "receipt_verify returned %d", v);
    free(exact);

    json_t *o = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    check_parse(data, size, o);
    if (json_is_object(o) && depth(o) <= JV_MAX_DEPTH && !memchr(data, 0, size)) {
        struct arena a;
        struct jv *jo;
        arena_init(&a);
        FUZZ_CHECK(!jv_parse(&a, (const char *)data, size, &jo), "jv_parse");
        check_fields(o, jo);
        arena_free(&a);
        check_signing(o);
    }
    json_decref(o);

    char *text = fuzz_strndup(data, size);
    int l = i18n_pick(text);
    FUZZ_CHECK(l >= 0 && l < LANG__COUNT, "i18n_pick returned %d", l);
    check_time(data, size, text);
    free(text);
    return 0;
}

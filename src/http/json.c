/* JSON helpers for handlers (see http.h). */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/err.h"
#include "util/timefmt.h"

int json_field_str(const struct jv *o, const char *key, int required, size_t maxlen, const char **out)
{
    const struct jv *v = jv_get(o, key);
    *out = NULL;
    if (!v || v->kind == JV_NULL)
        return required ? ERR_MISSING_PARAMETER : 0;
    if (v->kind != JV_STRING || v->len > maxlen)
        return ERR_INVALID_PARAMETER;
    *out = v->s;
    return 0;
}

int json_field_int(const struct jv *o, const char *key, int required, int64_t *out)
{
    const struct jv *v = jv_get(o, key);
    if (!v || v->kind == JV_NULL)
        return required ? ERR_MISSING_PARAMETER : 0;
    if (v->kind != JV_INT)
        return ERR_INVALID_PARAMETER;
    *out = v->i;
    return 0;
}

int json_field_bool(const struct jv *o, const char *key, int required, int *out)
{
    const struct jv *v = jv_get(o, key);
    if (!v || v->kind == JV_NULL)
        return required ? ERR_MISSING_PARAMETER : 0;
    if (v->kind != JV_BOOL)
        return ERR_INVALID_PARAMETER;
    *out = v->b;
    return 0;
}

int json_only_keys(const struct jv *o, const char *const *allowed, const char **bad)
{
    jv_foreach(m, o) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, m->key);
        if (!ok) {
            *bad = m->key;
            return ERR_INVALID_PARAMETER;
        }
    }
    return 0;
}

json_t *json_time(int64_t t)
{
    if (!t)
        return json_null();
    char buf[TIMEFMT_LEN];
    timefmt_rfc3339(t, buf);
    return json_string(buf);
}

char *json_text(struct arena *a, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s)
        return arena_strdup(a, "null");
    char *copy = arena_strdup(a, s);
    free(s);
    return copy;
}

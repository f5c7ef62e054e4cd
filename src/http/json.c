/* JSON helpers for handlers (see http.h). */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "util/err.h"
#include "util/timefmt.h"

int json_field_str(json_t *o, const char *key, int required, size_t maxlen, const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        *out = NULL;
        return required ? ERR_MISSING_PARAMETER : 0;
    }
    if (!json_is_string(v) || json_string_length(v) > maxlen || strlen(json_string_value(v)) != json_string_length(v))
        return ERR_INVALID_PARAMETER;
    *out = json_string_value(v);
    return 0;
}

int json_field_int(json_t *o, const char *key, int required, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return required ? ERR_MISSING_PARAMETER : 0;
    if (!json_is_integer(v))
        return ERR_INVALID_PARAMETER;
    *out = json_integer_value(v);
    return 0;
}

int json_field_bool(json_t *o, const char *key, int required, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return required ? ERR_MISSING_PARAMETER : 0;
    if (!json_is_boolean(v))
        return ERR_INVALID_PARAMETER;
    *out = json_is_true(v);
    return 0;
}

int json_only_keys(json_t *o, const char *const *allowed, const char **bad)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, key);
        if (!ok) {
            *bad = key;
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

/* /v1/tokens — API tokens, admin only. The secret is in the answer to the
 * create call and nowhere else: never stored (only its hash), never logged,
 * never kept for idempotent replay. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/auth.h"
#include "util/err.h"
#include "util/text.h"

static json_t *id_or_null(int64_t id) { return id ? json_integer(id) : json_null(); }

static int exec_create(struct tx *tx, struct cmd *c)
{
    struct token_spec *s = c->arg;
    char secret[TOKEN_LEN + 8];
    int64_t id;
    int rc = auth_token_create(tx, s, secret, &id);
    if (rc) {
        c->err_param = rc == ERR_INVALID_PARAMETER ? "role" : rc == ERR_NOT_FOUND ? "replaces" : NULL;
        return rc;
    }
    c->status = 201;
    c->body = json_text(tx->a, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o}", "id", (json_int_t)id, "token", secret,
                                         "role", auth_role_name(s->role), "name", s->name, "replaces",
                                         id_or_null(s->replaces), "created_at", json_time(tx->now)));
    memset(secret, 0, sizeof secret);
    return 0;
}

int api_tokens_create(struct req *r)
{
    static const char *const keys[] = {"role", "name", "replaces", NULL};
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    const char *role = NULL, *name = NULL, *param = NULL;
    struct token_spec *s = arena_alloc(&r->a, sizeof *s);
    *s = (struct token_spec){.role = -1};
    int rc = json_only_keys(b, keys, &param);
    if (!rc && ((rc = json_field_int(b, "replaces", 0, &s->replaces)) || s->replaces < 0))
        rc = rc ? rc : ERR_INVALID_PARAMETER, param = "replaces";
    if (!rc && ((rc = json_field_str(b, "role", !s->replaces, 16, &role)) ||
                (role && (s->role = auth_role_parse(role)) < 0)))
        rc = rc ? rc : ERR_INVALID_PARAMETER, param = "role";
    if (!rc && ((rc = json_field_str(b, "name", 0, TOKEN_NAME_MAX, &name)) ||
                (name && !text_printable(name, TOKEN_NAME_MAX))))
        rc = rc ? rc : ERR_INVALID_PARAMETER, param = "name";
    if (rc) {
        req_error(r, rc, param);   /* param may point into b */
        return 0;
    }
    s->name = name ? arena_strdup(&r->a, name) : NULL;
    r->idem_key = NULL;   /* a replay would have to keep the secret */
    return req_submit(r, exec_create, s);
}

static void add_token(void *arg, const struct token_row *t)
{
    json_array_append_new(arg, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:o}", "id", (json_int_t)t->id, "prefix",
                                         t->prefix, "role", t->role, "name", t->name, "replaces",
                                         id_or_null(t->replaces), "created_at", json_time(t->created_at),
                                         "revoked_at", json_time(t->revoked_at)));
}

int api_tokens_list(struct req *r)
{
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    json_t *list = json_array();
    int rc = auth_token_list(&tx, add_token, list);
    rc = req_read_end(r, &tx, rc);
    if (rc) {
        json_decref(list);
        return req_error(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o}", "data", list));
}

static int exec_revoke(struct tx *tx, struct cmd *c)
{
    int64_t id = *(int64_t *)c->arg;
    int rc = auth_token_revoke(tx, id);
    if (rc)
        return rc;
    c->status = 200;
    c->body = json_text(tx->a, json_pack("{s:I, s:b}", "id", (json_int_t)id, "revoked", 1));
    return 0;
}

int api_tokens_revoke(struct req *r)
{
    char *end;
    int64_t *id = arena_alloc(&r->a, sizeof *id);
    *id = strtoll(r->params[0], &end, 10);
    if (r->params[0][0] < '1' || r->params[0][0] > '9' || *end || *id <= 0)
        return req_error(r, ERR_NOT_FOUND, NULL);
    return req_submit(r, exec_revoke, id);
}

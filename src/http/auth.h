/* auth — API tokens. A token is "tpk_" + 43 base64url characters (256 random
 * bits); only its BLAKE2b-256 hash is stored, with its role and a short public
 * prefix for lists and logs. A token is shown once, when created. */
#pragma once
#include <stdint.h>

#include "core/tx.h"
#include "http/http.h"

#define TOKEN_LEN 48   /* "tpk_" + 43 + NUL, rounded */

int auth_role_parse(const char *s);        /* ROLE_ADMIN, ROLE_OPERATOR, or -1 */
const char *auth_role_name(int role);
/* Creates a token; out receives the secret (NUL-terminated). */
int auth_token_create(struct tx *tx, int role, const char *name, char out[TOKEN_LEN + 8], int64_t *id);
/* Resolves "Bearer <token>" (or NULL: anonymous). ERR_UNAUTHENTICATED when
 * the header is malformed or the token unknown or revoked. */
int auth_resolve(struct tx *tx, const char *authorization, struct principal *out);
int auth_token_revoke(struct tx *tx, int64_t id);   /* ERR_NOT_FOUND */
int auth_token_list(struct tx *tx, void (*fn)(void *arg, int64_t id, const char *prefix, const char *role,
                                               const char *name, int64_t created_at, int64_t revoked_at),
                    void *arg);

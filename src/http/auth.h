/* auth — API tokens. A token is "tpk_" + 43 base64url characters (256 random
 * bits); only its BLAKE2b-256 hash is stored, with its role and a short public
 * prefix for lists and logs. A token is shown once, when created.
 *
 * Each HTTP thread remembers the last few tokens it resolved (by hash, never
 * the secret), so a busy client's token is not looked up on every request:
 *  A1. A token revoked through the API is refused by every request that
 *      arrives after the revocation was answered: the route calls
 *      auth_forget() once the revocation is durable, before the answer.
 *  A2. A token revoked by `topupd token revoke` while the server runs is
 *      refused by every request after the command returned: both count
 *      revocations in a shared counter, the file DB.token-epoch
 *      (auth_share). One revoked by anything else that writes the database
 *      is refused within AUTH_REMEMBER_MS. Without the counter (the file
 *      cannot be made) the server remembers nothing.
 *  A3. Unknown, malformed and revoked tokens are never remembered: a guesser
 *      pays a lookup every time (and is rate-limited per address).
 *
 * A4. Idempotency keys are scoped to a line of tokens: a token made to
 *     replace another (rotation) shares its scope, principal.scope, which is
 *     "token:" and the id of the line's first token. A retry sent under the
 *     new token of a request sent under the old one is the same request, so
 *     rotating a client's token never applies a queued or lost request twice.
 *     A token replaces one of its own role only; revoked ones too (rotation
 *     after a leak revokes first). */
#pragma once
#include <stdint.h>

#include "core/tx.h"
#include "http/http.h"

#define TOKEN_LEN 48   /* "tpk_" + 43 + NUL, rounded */
#define TOKEN_NAME_MAX 64   /* bytes of a token's name: text_printable (util/text.h) */

int auth_role_parse(const char *s);        /* ROLE_ADMIN, ROLE_OPERATOR, or -1 */
const char *auth_role_name(int role);
struct token_spec {
    int role;                /* -1, with replaces: the replaced token's */
    const char *name;        /* NULL: "", or with replaces the replaced token's */
    int64_t replaces;        /* 0, or the token this one replaces (A4) */
};
/* Creates a token; out receives the secret (NUL-terminated), s->role and
 * s->name what the token got. With s->replaces: ERR_NOT_FOUND when there is
 * no such token, ERR_INVALID_PARAMETER when s->role is another role. */
int auth_token_create(struct tx *tx, struct token_spec *s, char out[TOKEN_LEN + 8], int64_t *id);
/* Resolves "Bearer <token>" (or NULL: anonymous). ERR_UNAUTHENTICATED when
 * the header is malformed or the token unknown or revoked. */
int auth_resolve(struct tx *tx, const char *authorization, struct principal *out);

/* Maps DB.token-epoch, creating it: the server, once at start (0, or -1
 * and remembering stays off); forget=1 (the CLI, after a revocation
 * committed) also counts one more revocation in it. */
int auth_share(const char *db_path, int forget);
/* Remembering (A1-A3). auth_recall: 1 with *out filled when this thread
 * resolved the same header lately and nothing was forgotten since, else 0.
 * auth_remember: after auth_resolve succeeded, with the auth_epoch() read
 * before its transaction began. auth_forget: every thread forgets. */
#define AUTH_REMEMBER_MS 1000
uint64_t auth_epoch(void);
int auth_recall(const char *authorization, int64_t now_ms, struct principal *out);
void auth_remember(const char *authorization, int64_t now_ms, uint64_t epoch, const struct principal *p);
void auth_forget(void);
int auth_token_revoke(struct tx *tx, int64_t id);   /* ERR_NOT_FOUND */
struct token_row {
    int64_t id, replaces, created_at, revoked_at;   /* replaces, revoked_at: 0 for none */
    const char *prefix, *role, *name;
};
int auth_token_list(struct tx *tx, void (*fn)(void *arg, const struct token_row *t), void *arg);

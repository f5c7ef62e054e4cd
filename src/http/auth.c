#include "http/auth.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "store/store.h"
#include "util/err.h"

#define PREFIX "tpk_"

int auth_role_parse(const char *s)
{
    if (s && !strcmp(s, "admin"))
        return ROLE_ADMIN;
    if (s && !strcmp(s, "operator"))
        return ROLE_OPERATOR;
    if (s && !strcmp(s, "monitor"))
        return ROLE_MONITOR;
    return -1;
}

const char *auth_role_name(int role)
{
    return role == ROLE_ADMIN ? "admin" : role == ROLE_OPERATOR ? "operator" : role == ROLE_MONITOR ? "monitor"
                                                                            : "anonymous";
}

static void hash(const char *token, unsigned char out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)token, strlen(token), NULL, 0);
}

/* The hash of a well-formed "Bearer tpk_..." header, else -1. */
static int header_hash(const char *authz, unsigned char h[32])
{
    if (!authz || strncmp(authz, "Bearer ", 7))
        return -1;
    const char *token = authz + 7;
    size_t n = strlen(token);
    if (n < sizeof PREFIX || n > TOKEN_LEN || strncmp(token, PREFIX, sizeof PREFIX - 1))
        return -1;
    hash(token, h);
    return 0;
}

STORE_SQL(SQL_TOKEN_NEW, "INSERT INTO tokens(prefix, hash, role, name, created_at, replaces, scope) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)");
STORE_SQL(SQL_TOKEN_LINE, "SELECT role, name, COALESCE(scope, id) FROM tokens WHERE id = ?");
STORE_SQL(SQL_TOKEN_BY_HASH, "SELECT id, role, revoked_at IS NOT NULL, COALESCE(scope, id) FROM tokens WHERE hash = ?");
STORE_SQL(SQL_TOKEN_REVOKE, "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL");
STORE_SQL(SQL_TOKEN_EXISTS, "SELECT 1 FROM tokens WHERE id = ?");
STORE_SQL(SQL_TOKEN_LIST, "SELECT id, prefix, role, name, created_at, COALESCE(revoked_at, 0), COALESCE(replaces, 0) "
                          "FROM tokens ORDER BY id");

/* The replaced token's role, name and scope into s and *scope (A4). */
static int line_of(struct tx *tx, struct token_spec *s, int64_t *scope)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_TOKEN_LINE, "i", s->replaces);
    if (rc)
        return rc;
    int role = auth_role_parse(store_text(q, 0));
    if (s->role < 0)
        s->role = role;
    else if (s->role != role)
        rc = ERR_INVALID_PARAMETER;
    if (!s->name)
        s->name = arena_strdup(tx->a, store_text(q, 1));
    *scope = store_i64(q, 2);
    store_end(q);
    return rc;
}

int auth_token_create(struct tx *tx, struct token_spec *s, char out[TOKEN_LEN + 8], int64_t *id)
{
    int64_t scope = 0;
    if (s->replaces) {
        int rc = line_of(tx, s, &scope);
        if (rc)
            return rc;
    }
    if (!s->name)
        s->name = "";
    unsigned char raw[32], h[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(out, PREFIX, sizeof PREFIX - 1);
    sodium_bin2base64(out + sizeof PREFIX - 1, TOKEN_LEN + 8 - (sizeof PREFIX - 1), raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    hash(out, h);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.12s", out);
    int rc = store_exec(tx->st, &SQL_TOKEN_NEW, "sbssizz", prefix, h, sizeof h, auth_role_name(s->role), s->name,
                        tx->now, s->replaces, scope);
    if (!rc)
        *id = store_last_id(tx->st);
    return rc;
}

int auth_resolve(struct tx *tx, const char *authz, struct principal *p)
{
    memset(p, 0, sizeof *p);
    p->role = ROLE_ANON;
    snprintf(p->name, sizeof p->name, "anonymous");
    snprintf(p->scope, sizeof p->scope, "anonymous");
    if (!authz)
        return 0;
    /* On a refusal, name says for the log what was presented (never any of it). */
    unsigned char h[32];
    if (header_hash(authz, h))
        return snprintf(p->name, sizeof p->name, "a malformed token"), ERR_UNAUTHENTICATED;
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_TOKEN_BY_HASH, "b", h, sizeof h);
    if (rc == ERR_NOT_FOUND)
        snprintf(p->name, sizeof p->name, "an unknown token");
    if (rc)
        return rc == ERR_NOT_FOUND ? ERR_UNAUTHENTICATED : rc;
    int64_t id = store_i64(q, 0);
    int role = auth_role_parse(store_text(q, 1));
    int revoked = (int)store_i64(q, 2);
    int64_t scope = store_i64(q, 3);
    store_end(q);
    if (revoked || role < 0)
        return snprintf(p->name, sizeof p->name, "revoked token:%lld", (long long)id), ERR_UNAUTHENTICATED;
    p->role = role;
    p->token_id = id;
    snprintf(p->name, sizeof p->name, "token:%lld", (long long)id);
    snprintf(p->scope, sizeof p->scope, "token:%lld", (long long)scope);
    return 0;
}

int auth_token_revoke(struct tx *tx, int64_t id)
{
    struct store_q *q;
    int rc = store_one(tx->st, &q, &SQL_TOKEN_EXISTS, "i", id);
    if (rc)
        return rc;
    store_end(q);
    return store_exec(tx->st, &SQL_TOKEN_REVOKE, "ii", tx->now, id);
}

int auth_token_list(struct tx *tx, void (*fn)(void *arg, const struct token_row *t), void *arg)
{
    struct store_q *q = store_query(tx->st, &SQL_TOKEN_LIST, "");
    while (store_next(q)) {
        struct token_row t = {.id = store_i64(q, 0), .prefix = store_text(q, 1), .role = store_text(q, 2),
                              .name = store_text(q, 3), .created_at = store_i64(q, 4), .revoked_at = store_i64(q, 5),
                              .replaces = store_i64(q, 6)};
        fn(arg, &t);
    }
    return store_end(q);
}

/* ---- remembering (auth.h A1-A3) ------------------------------------------ */

#define REMEMBERED 8   /* per thread: a thread sees few tokens at a time */

struct remembered {
    unsigned char hash[32];
    uint64_t epoch;
    int64_t at_ms;
    struct principal who;
};

static _Atomic uint64_t epoch = 1;     /* this process's revocations; 0 marks an empty slot */
static _Atomic uint64_t *shared;       /* every process's, in DB.token-epoch; NULL: remember nothing */
static __thread struct remembered mem[REMEMBERED];

/* Both counters only grow, so their sum changes whenever either does. */
uint64_t auth_epoch(void) { return atomic_load(&epoch) + (shared ? atomic_load(shared) : 0); }
void auth_forget(void) { atomic_fetch_add(&epoch, 1); }

int auth_share(const char *db_path, int forget)
{
    char path[4096];
    struct stat sb;
    if (snprintf(path, sizeof path, "%s.token-epoch", db_path) >= (int)sizeof path)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    void *p = MAP_FAILED;
    if (!fstat(fd, &sb) && (sb.st_size >= (off_t)sizeof *shared || !ftruncate(fd, sizeof *shared)))
        p = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    if (forget) {
        atomic_fetch_add((_Atomic uint64_t *)p, 1);
        munmap(p, sizeof *shared);
        return 0;
    }
    shared = p;   /* mapped for the life of the process */
    return 0;
}

int auth_recall(const char *authz, int64_t now_ms, struct principal *out)
{
    unsigned char h[32];
    if (header_hash(authz, h))
        return 0;
    struct remembered *m = &mem[h[0] % REMEMBERED];
    if (!shared || m->epoch != auth_epoch() || now_ms - m->at_ms >= AUTH_REMEMBER_MS || now_ms < m->at_ms ||
        memcmp(m->hash, h, sizeof h))
        return 0;
    *out = m->who;
    return 1;
}

void auth_remember(const char *authz, int64_t now_ms, uint64_t at_epoch, const struct principal *p)
{
    unsigned char h[32];
    if (!p->token_id || header_hash(authz, h))
        return;   /* anonymous: nothing to look up */
    struct remembered *m = &mem[h[0] % REMEMBERED];
    memcpy(m->hash, h, sizeof h);
    m->epoch = at_epoch;
    m->at_ms = now_ms;
    m->who = *p;
}

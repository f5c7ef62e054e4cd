/* server — see server.h. The life of a request (net.h calls):
 *   head       route, authenticate, set the body cap (early answer on failure)
 *   body       dispatch to the handler; a mutation suspends the request
 *   resumed    the command is durable (or failed): answer
 *   done       the answer is out: free the request
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "api/api.h"
#include "core/ledger.h"
#include "core/receipt.h"
#include "core/sim.h"
#include "engine/engine.h"
#include "http/auth.h"
#include "http/http.h"
#include "http/inflight.h"
#include "http/loadshed.h"
#include "http/metrics.h"
#include "http/net.h"
#include "http/ratelimit.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/log.h"
#include "util/text.h"

#define IDEM_KEY_MAX 128
#define MAX_READERS 512
#define SLOW_READS_MAX 4   /* slow work waiting for its thread; more: 503 overloaded */
/* A preparation (req_submit_sliced) of a body up to this size runs on its
 * HTTP thread: 64 KiB of CSV parse in about a millisecond, and a few-row
 * import then never waits behind a large one, nor is refused for the bound. */
#define PREPARE_HERE_MAX (64 * 1024)
#define HEAD_MAX 16384   /* request line and headers */

struct server {
    struct conf cf;
    struct clock clk;
    struct receipt_keys keys;
    struct engine *eng;
    const char *db_path;
    int test_clock;
    int schema;                  /* migration version the database is at */
    struct net *net;
    char *errors[ERR__COUNT][LANG__COUNT];   /* every error's body, rendered once (req_error) */
    struct ratelimit *auth_fail, *per_token, *per_address;
    char *tls_cert, *tls_key;    /* PEM, when serving HTTPS */
    pthread_t sweep_thread;
    int sweeping;
    int64_t started_at;               /* server_stats */
    _Atomic int64_t swept_at;
    _Atomic uint64_t sweeps_failed, sweep_moved;
    struct loadshed *shed;
    pthread_t cpu_thread;
    int sampling;

    pthread_t slow_thread;       /* req_read_apart's reads, req_submit_sliced's preparations */
    atomic_int slow_reading;     /* set once the workers may already run: until then slow work runs inline */
    pthread_cond_t slow_cv;      /* with mu: a slow read waits, or the server stops */

    pthread_mutex_t mu;          /* readers, the sweeper's sleep, the slow reads' queue */
    pthread_cond_t cv;
    int stopping;
    struct store *readers[MAX_READERS];
    int nreaders;
    struct req *slow[SLOW_READS_MAX];   /* waiting, oldest first */
    int nslow;
};

static __thread struct store *tl_reader;

/* ---- answers -------------------------------------------------------------- */

static const struct { int method; const char *name; } methods[] = {   /* in Allow's order */
    {HTTP_GET, "GET"}, {HTTP_HEAD, "HEAD"}, {HTTP_POST, "POST"}, {HTTP_DELETE, "DELETE"}};

const char *http_method_name(int method)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].method == method)
            return methods[i].name;
    return "?";
}

int http_method_parse(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name))
            return methods[i].method;
    return 0;
}

int req_raw(struct req *r, int status, const char *text)
{
    r->status = status;
    r->type = NULL;
    r->resp = arena_strdup(&r->a, text);
    r->resp_len = strlen(r->resp);
    return 0;
}

int req_text(struct req *r, int status, const char *text)
{
    req_raw(r, status, text);
    r->type = "text/plain; charset=utf-8";
    return 0;
}

int req_typed(struct req *r, int status, const char *type, const char *body, size_t len)
{
    r->status = status;
    r->type = type;
    r->resp = (char *)body;
    r->resp_len = len;
    return 0;
}

int req_json(struct req *r, int status, json_t *body)
{
    r->status = status;
    r->type = NULL;
    r->resp = json_text(&r->a, body);
    r->resp_len = strlen(r->resp);
    return 0;
}

static json_t *error_json(int err, enum lang lang)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", err_code(err), "message", i18n_text(lang, err_key(err)));
}

/* The body of r's answer to err, from r's arena unless it is one of those
 * rendered at start (no param: the usual case, shed requests too). */
static const char *error_body(struct req *r, int err, const char *param)
{
    if (!param && err >= 0 && err < ERR__COUNT)
        return r->srv->errors[err][r->lang];
    json_t *e = error_json(err, r->lang);
    if (param)
        json_object_set_new(json_object_get(e, "error"), "param", json_string(param));
    return json_text(&r->a, e);
}

int req_error(struct req *r, int err, const char *param)
{
    r->overloaded = err == ERR_OVERLOADED;
    r->type = NULL;
    r->status = err_status(err);
    r->resp = (char *)error_body(r, err, param);
    r->resp_len = strlen(r->resp);
    return 0;
}

/* engine.h cmd.refusal: the refusal as it is answered (req_error), on the writer. */
static const char *refusal_body(struct cmd *c)
{
    struct req *r = (struct req *)((char *)c - offsetof(struct req, cmd));
    return error_body(r, c->err, c->err_param);
}

const char *req_query(struct req *r, const char *name)
{
    const char *q = r->head->query;
    return q ? h1_query(q, name, arena_alloc(&r->a, strlen(q) + 1), strlen(q) + 1) : NULL;
}

const char *req_header(struct req *r, const char *name) { return h1_header(r->head, name); }

int req_body_object(struct req *r, const struct jv **out)
{
    struct jv *v;
    *out = NULL;
    if (jv_parse(&r->a, r->body ? r->body : "", r->body_len, &v) || v->kind != JV_OBJECT) {
        req_error(r, ERR_INVALID_JSON, NULL);
        return ERR_INVALID_JSON;
    }
    *out = v;
    return 0;
}

const struct conf *req_conf(struct req *r) { return &r->srv->cf; }
struct clock *req_clock(struct req *r) { return &r->srv->clk; }
const struct receipt_keys *req_keys(struct req *r) { return &r->srv->keys; }
int req_engine_halted(struct req *r) { return engine_halted(r->srv->eng); }
int req_schema_version(struct req *r) { return r->srv->schema; }

void req_server_stats(struct req *r, struct server_stats *out)
{
    struct server *s = r->srv;
    memset(out, 0, sizeof *out);
    engine_stats(s->eng, &out->engine);
    net_stats(s->net, &out->net);
    out->halted = engine_halted(s->eng);
    out->schema = s->schema;
    out->started_at = s->started_at;
    out->swept_at = atomic_load(&s->swept_at);
    out->sweeps_failed = atomic_load(&s->sweeps_failed);
    out->sweep_moved = atomic_load(&s->sweep_moved);
}

/* ---- readers -------------------------------------------------------------- */

static int reader(struct server *s, struct store **out)
{
    if (!tl_reader) {
        pthread_mutex_lock(&s->mu);
        int full = s->nreaders == MAX_READERS;
        pthread_mutex_unlock(&s->mu);
        if (full)
            return ERR_OVERLOADED;
        int rc = store_open(&tl_reader, s->db_path, STORE_READER);
        if (rc)
            return rc;
        pthread_mutex_lock(&s->mu);
        s->readers[s->nreaders++] = tl_reader;
        pthread_mutex_unlock(&s->mu);
    }
    *out = tl_reader;
    return 0;
}

/* A read transaction for r on the calling thread's reader connection. */
static int read_begin(struct req *r, struct tx *tx)
{
    struct store *st;
    int rc = reader(r->srv, &st);
    if (!rc)
        rc = store_begin(st);
    if (!rc)
        *tx = (struct tx){.st = st, .now = clock_now(&r->srv->clk), .cf = &r->srv->cf, .keys = &r->srv->keys,
                          .a = &r->a, .principal = r->who.name};
    return rc;
}

int req_read_begin(struct req *r, struct tx *tx)
{
    int rc = read_begin(r, tx);
    if (rc)
        req_error(r, rc, NULL);
    return rc;
}

int req_read_end(struct req *r, struct tx *tx, int rc)
{
    store_rollback(tx->st);
    int fenced = engine_read_fence(r->srv->eng);   /* engine.h E3 */
    return rc ? rc : fenced;
}

/* ---- slow work: reads and preparations that take seconds ------------------- */

static void on_done(struct cmd *c);
static void queue_cmd(struct req *r);
static void release_slot(struct req *r, int ran);

/* Runs a slow read on the calling thread (its own reader connection) and
 * hands the answer back to the request's HTTP thread; or a command's
 * preparation, and then queues the command. */
static void run_slow(struct req *r, int err)
{
    struct cmd *c = &r->cmd;
    if (r->prepare) {   /* a command's preparation: then to the engine (req_submit_sliced) */
        if (!err && !(err = r->prepare(r, c))) {
            queue_cmd(r);
            return;
        }
        release_slot(r, 0);   /* never ran as a command */
        c->err = err;
        on_done(c);
        return;
    }
    struct tx tx;
    int rc = err ? err : read_begin(r, &tx);
    if (!rc)
        rc = req_read_end(r, &tx, c->exec(&tx, c));
    c->err = rc;
    net_resume(r->conn);
}

/* The slow thread (req_read_apart, req_submit_sliced's prepare): one at a
 * time, oldest first; once the server stops, what still waits is answered
 * 503 shutting_down. */
static void *slow_reads(void *arg)
{
    pthread_setname_np(pthread_self(), "topupd-slow");
    struct server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->nslow && !s->stopping)
            pthread_cond_wait(&s->slow_cv, &s->mu);
        if (!s->nslow)
            break;
        struct req *r = s->slow[0];
        memmove(s->slow, s->slow + 1, (size_t)--s->nslow * sizeof *s->slow);
        int err = s->stopping ? ERR_SHUTTING_DOWN : 0;
        pthread_mutex_unlock(&s->mu);
        run_slow(r, err);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Hands a suspended request to the slow thread (or runs it here when there is
 * none); refused with ERR_OVERLOADED past SLOW_READS_MAX waiting. */
static void slow_queue(struct req *r)
{
    struct server *s = r->srv;
    if (!s->slow_reading) {   /* no thread for it: run here, answered all the same */
        run_slow(r, 0);
        return;
    }
    pthread_mutex_lock(&s->mu);
    int err = s->stopping ? ERR_SHUTTING_DOWN : s->nslow == SLOW_READS_MAX ? ERR_OVERLOADED : 0;
    if (!err) {
        s->slow[s->nslow++] = r;
        pthread_cond_signal(&s->slow_cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (err)
        run_slow(r, err);
}

int req_read_apart(struct req *r, int (*read)(struct tx *tx, struct cmd *c))
{
    struct cmd *c = &r->cmd;
    memset(c, 0, sizeof *c);
    c->exec = read;
    c->a = &r->a;
    c->principal = r->who.name;
    net_suspend(r->conn);
    slow_queue(r);
    return HANDLER_ASYNC;
}

/* ---- commands ------------------------------------------------------------- */

/* The load shedder's slot of a request: given back once, with the command's
 * time when it ran as one. */
static void release_slot(struct req *r, int ran)
{
    if (!r->shed_slot)
        return;
    r->shed_slot = 0;
    if (ran)
        loadshed_done(r->srv->shed, clock_mono_ms(), clock_mono_us() - r->admitted_us);
    else
        loadshed_cancel(r->srv->shed);
}

static void on_done(struct cmd *c)
{
    struct req *r = (struct req *)((char *)c - offsetof(struct req, cmd));
    if (c->more && !c->err) {   /* a slice is durable: the next one (engine.h E9) */
        r->slices++;
        c->advance(c);
        c->look_first = 0;
        int rc = engine_resubmit(r->srv->eng, c);
        if (!rc)
            return;   /* the writer's again, maybe running it already: not a byte more of it here */
        c->err = rc;
    }
    if (c->err && c->err != ERR_OUTCOME_UNKNOWN && r->slices)
        c->err = ERR_INCOMPLETE;   /* not "nothing was changed": the slices before are saved */
    release_slot(r, 1);
    if (r->route->flags & ROUTE_AUTH)
        auth_forget();   /* durable, not yet answered (auth.h A1) */
    if (r->inflight)
        inflight_release(r->inflight);   /* after commit: a repeat now finds the stored row */
    net_resume(r->conn);
}

static int submit(struct req *r, int (*exec)(struct tx *tx, struct cmd *c),
                  int (*render)(struct tx *tx, int64_t ref, const char **body, size_t *len),
                  void (*advance)(struct cmd *c), void *arg);

int req_submit(struct req *r, int (*exec)(struct tx *tx, struct cmd *c), void *arg)
{
    return submit(r, exec, NULL, NULL, arg);
}

int req_submit_rendered(struct req *r, int (*exec)(struct tx *tx, struct cmd *c),
                        int (*render)(struct tx *tx, int64_t ref, const char **body, size_t *len), void *arg)
{
    return submit(r, exec, render, NULL, arg);
}

int req_submit_sliced(struct req *r, int (*prepare)(struct req *r, struct cmd *c),
                      int (*exec)(struct tx *tx, struct cmd *c), void (*advance)(struct cmd *c), void *arg)
{
    r->prepare = prepare;
    return submit(r, exec, NULL, advance, arg);
}

/* To the engine; not queued, it is answered on the resumed call like any other result. */
static void queue_cmd(struct req *r)
{
    struct cmd *c = &r->cmd;
    int rc = engine_submit(r->srv->eng, c);
    if (rc) {
        release_slot(r, 0);
        if (rc == ERR_OVERLOADED)
            loadshed_refused(r->srv->shed, clock_mono_ms());
        c->err = rc;
        on_done(c);
    }
}

static int submit(struct req *r, int (*exec)(struct tx *tx, struct cmd *c),
                  int (*render)(struct tx *tx, int64_t ref, const char **body, size_t *len),
                  void (*advance)(struct cmd *c), void *arg)
{
    struct cmd *c = &r->cmd;
    memset(c, 0, sizeof *c);
    c->exec = exec;
    c->render = render;
    c->refusal = refusal_body;
    c->advance = advance;
    c->look_first = advance != NULL;   /* E9: a repeat or a reused key is found before the first slice */
    c->done = on_done;
    c->arg = arg;
    c->a = &r->a;
    c->principal = r->who.name;
    if (r->idem_key) {
        c->idem_scope = r->who.scope;   /* auth.h A4 */
        c->idem_key = r->idem_key;
        const char *m = http_method_name(r->method);
        crypto_generichash_state h;
        crypto_generichash_init(&h, NULL, 0, sizeof c->req_hash);
        crypto_generichash_update(&h, (const unsigned char *)m, strlen(m) + 1);
        crypto_generichash_update(&h, (const unsigned char *)r->path, strlen(r->path) + 1);
        crypto_generichash_update(&h, (const unsigned char *)(r->body ? r->body : ""), r->body_len);
        crypto_generichash_final(&h, c->req_hash, sizeof c->req_hash);
        struct arena_text t;   /* scope, US, key */
        arena_text_init(&t, &r->a, strlen(c->idem_scope) + strlen(c->idem_key) + 2);
        arena_text_cat(&t, c->idem_scope, "\037", c->idem_key, NULL);
        char *k = arena_text_end(&t, NULL);
        if (inflight_claim(k))
            return req_error(r, ERR_IDEMPOTENCY_IN_FLIGHT, "Idempotency-Key");
        r->inflight = k;
    }
    net_suspend(r->conn);
    if (r->prepare && r->body_len > PREPARE_HERE_MAX)
        slow_queue(r);
    else if (r->prepare)
        run_slow(r, 0);   /* small: here, not behind the slow thread's queue and its bound */
    else
        queue_cmd(r);
    return HANDLER_ASYNC;
}

/* ---- routing -------------------------------------------------------------- */

/* When path matches pattern, the number of {name} segments, captured into
 * params; else -1. */
static int match(struct req *r, const char *pattern, const char *path, const char **params)
{
    int n = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *end = strchr(path, '/');
            size_t len = end ? (size_t)(end - path) : strlen(path);
            if (!len || n == ROUTE_MAX_PARAMS)
                return -1;
            params[n++] = arena_strndup(&r->a, path, len);
            path += len;
            pattern = strchr(pattern, '}') + 1;
            continue;
        }
        if (*pattern++ != *path++)
            return -1;
    }
    return !*pattern && !*path ? n : -1;
}

/* A path a route names exactly is never a parameter of another, whatever
 * the method: GET /v1/receipts/verify is that route's 405, not receipt
 * number "verify". The table lists exact paths before the patterns that
 * could take them (routes.c), so one pass knows. */
static int route(struct req *r)
{
    int path_known = 0, named = 0;
    for (size_t i = 0; i < api_route_count; i++) {
        const struct route *rt = &api_routes[i];
        if ((rt->flags & ROUTE_TEST_CLOCK) && !r->srv->test_clock)
            continue;
        const char *params[ROUTE_MAX_PARAMS] = {0};
        int n = match(r, rt->pattern, r->path, params);
        if (n < 0 || (n > 0 && named))
            continue;
        named |= n == 0;
        path_known = 1;
        r->allow |= rt->method == HTTP_GET ? HTTP_GET | HTTP_HEAD : rt->method;
        if (rt->method != (r->method == HTTP_HEAD ? HTTP_GET : r->method))
            continue;
        r->route = rt;
        memcpy(r->params, params, sizeof params);
        return 0;
    }
    return path_known ? ERR_METHOD_NOT_ALLOWED : ERR_NOT_FOUND;
}

/* application/json, any case, alone or with parameters ("; charset=utf-8"):
 * not a longer type that begins with it (application/jsonp, application/json-seq). */
static int is_json_type(const char *ct)
{
    if (strncasecmp(ct, "application/json", 16))
        return 0;
    ct += 16;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return !*ct || *ct == ';';
}

static int valid_idem_key(const char *k)
{
    size_t n = strlen(k);
    if (!n || n > IDEM_KEY_MAX)
        return 0;
    for (; *k; k++)
        if (*k < 0x20 || *k > 0x7e)
            return 0;
    return 1;
}

static void client_address(struct req *r, char *out, size_t n)
{
    text_copy(out, n, "a:");
    text_cat(out, n, net_peer(r->conn));
}

static int limited(struct req *r, int retry_after)
{
    r->retry_after = retry_after;
    req_error(r, ERR_RATE_LIMITED, NULL);
    return ERR_RATE_LIMITED;
}

/* Who is asking, and may they? Failed authentication is rate-limited per
 * client address (past the limit the answer is 429, not 401); a valid token
 * always gets through, so a guesser sharing an address with staff does not
 * lock them out. Authenticated traffic is limited per token and per address. */
static int authenticate(struct req *r)
{
    struct server *s = r->srv;
    const char *authz = req_header(r, "Authorization");
    char addr[64], tok[32];
    int64_t now = clock_mono_ms();
    int wait = 1;
    client_address(r, addr, sizeof addr);
    int rc = 0;
    if (!auth_recall(authz, now, &r->who)) {
        uint64_t epoch = auth_epoch();   /* before the snapshot (auth.h A1) */
        struct tx tx;
        if ((rc = req_read_begin(r, &tx)))
            return rc;
        rc = auth_resolve(&tx, authz, &r->who);
        /* No fence: a token is usable only by whoever was told its secret, which
         * happens after its creation is durable; a revocation may act early. */
        store_rollback(tx.st);
        if (!rc)
            auth_remember(authz, now, epoch, &r->who);
    }
    if (!rc && !(r->route->roles & r->who.role))
        rc = r->who.role == ROLE_ANON ? ERR_UNAUTHENTICATED : ERR_FORBIDDEN;
    if (rc == ERR_UNAUTHENTICATED && ratelimit_take(s->auth_fail, addr, now, &wait))
        return limited(r, wait);
    if (rc) {
        log_info("%s %s refused for %s from %s: %s", http_method_name(r->method), r->route->pattern,
                 r->who.name, addr + 2, err_code(rc));
        return req_error(r, rc, NULL), rc;
    }
    if (r->who.token_id) {
        text_copy(tok, sizeof tok, "t:");
        text_cat_int(tok, sizeof tok, r->who.token_id);
        if (ratelimit_take(s->per_token, tok, now, &wait))
            return limited(r, wait);
        if (ratelimit_take(s->per_address, addr, now, &wait)) {
            ratelimit_give(s->per_token, tok, now);
            return limited(r, wait);
        }
    }
    return 0;
}

/* Everything decided from the request line and headers. */
static int admit(struct req *r)
{
    int rc = route(r);
    if (rc)
        return req_error(r, rc, NULL), rc;
    r->cap = (size_t)((r->route->flags & ROUTE_CSV) ? r->srv->cf.max_import_body : r->srv->cf.max_body);
    int64_t cl = r->head->content_length;
    /* Under overload a command is refused before authentication, hashing or
     * parsing cost anything, and before its body is read (net.c skips it and
     * keeps the connection) (engine.h E6). */
    if (!(r->method & (HTTP_GET | HTTP_HEAD)) && !(r->route->flags & ROUTE_READ) && cl <= (int64_t)r->cap) {
        /* Parked past shed_refuse_ms (net.h): late already. Not demand in
         * excess for loadshed, whose limit would cut the newest too. */
        if (net_overdue(r->conn))
            return req_error(r, ERR_OVERLOADED, NULL), ERR_OVERLOADED;
        int64_t now = clock_mono_ms();
        int full = engine_admits(r->srv->eng) == ERR_OVERLOADED;
        if (full)
            loadshed_refused(r->srv->shed, now);
        if (full || !loadshed_admit(r->srv->shed, now))
            return req_error(r, ERR_OVERLOADED, NULL), ERR_OVERLOADED;
        r->shed_slot = 1;
        r->admitted_us = clock_mono_us();
    }
    rc = authenticate(r);
    if (rc)
        return rc;
    const char *key = req_header(r, "Idempotency-Key");
    if (key && !valid_idem_key(key))
        return req_error(r, ERR_IDEMPOTENCY_KEY_INVALID, "Idempotency-Key"), ERR_IDEMPOTENCY_KEY_INVALID;
    if (!key && (r->route->flags & ROUTE_IDEM_REQUIRED))
        return req_error(r, ERR_IDEMPOTENCY_KEY_MISSING, "Idempotency-Key"), ERR_IDEMPOTENCY_KEY_MISSING;
    if (key && r->method == HTTP_POST)
        r->idem_key = arena_strdup(&r->a, key);
    const char *ct = req_header(r, "Content-Type");
    if (r->method == HTTP_POST && ct && !(r->route->flags & ROUTE_CSV) && !is_json_type(ct))
        return req_error(r, ERR_UNSUPPORTED_MEDIA_TYPE, NULL), ERR_UNSUPPORTED_MEDIA_TYPE;
    if (cl > (int64_t)r->cap)
        return req_error(r, ERR_BODY_TOO_LARGE, NULL), ERR_BODY_TOO_LARGE;
    return 0;
}

static void send_answer(struct req *r)
{
    char extra[96] = "";   /* the lines below, each appended: at most two apply to one answer */
    int n = r->replayed ? snprintf(extra, sizeof extra, "Idempotent-Replayed: true\r\n") : 0;
    if (r->status == 405) {   /* RFC 9110 15.5.6: the methods the path has */
        n += snprintf(extra + n, sizeof extra - (size_t)n, "Allow:");
        for (size_t i = 0, k = 0; i < sizeof methods / sizeof methods[0]; i++)
            if (r->allow & methods[i].method)
                n += snprintf(extra + n, sizeof extra - (size_t)n, "%s %s", k++ ? "," : "", methods[i].name);
        n += snprintf(extra + n, sizeof extra - (size_t)n, "\r\n");
    }
    if (r->status == 401)   /* RFC 9110 11.6.1: a 401 names its scheme */
        n += snprintf(extra + n, sizeof extra - (size_t)n, "WWW-Authenticate: Bearer\r\n");
    if (r->status == 503 || r->status == 429)   /* both lines, when a replay is a refusal */
        n += snprintf(extra + n, sizeof extra - (size_t)n, "Retry-After: %d\r\n",
                      r->retry_after > 0 ? r->retry_after : 1);
    if (r->type)
        snprintf(extra + n, sizeof extra - (size_t)n, "Content-Type: %s\r\n", r->type);
    if (!r->resp)
        req_error(r, ERR_INTERNAL, NULL);
    if (r->overloaded)   /* a client told to come back later is not read again at once (net.h) */
        net_hold(r->conn);
    metrics_answered(r->route ? (int)(r->route - api_routes) : -1, r->status, clock_mono_us() - r->began_us);
    net_answer(r->conn, r->status, extra, r->resp, r->resp_len);
}

/* The ready stack (net.h): a flood is more waiting than the machine
 * completes in shed_flood_ms; in one, it reads while the commands in flight
 * are fewer than the machine carries without queueing (loadshed.h). */
static int on_flood(void *cls, int waiting, int was)
{
    struct server *s = cls;
    return loadshed_flood(s->shed, clock_mono_ms(), waiting, was);
}

static int on_full(void *cls)
{
    struct server *s = cls;
    return loadshed_full(s->shed, clock_mono_ms()) || engine_admits(s->eng) == ERR_OVERLOADED;
}

static void *on_head(void *cls, struct net_conn *conn, const struct h1_req *h, size_t *cap)
{
    struct server *s = cls;
    struct req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    arena_init(&r->a);
    r->srv = s;
    r->conn = conn;
    r->head = h;
    r->path = h->path;
    r->method = http_method_parse(h->method);
    r->lang = i18n_pick(h1_header(h, "Accept-Language"));
    r->began_us = clock_mono_us();
    text_copy(r->who.name, sizeof r->who.name, "anonymous");
    text_copy(r->who.scope, sizeof r->who.scope, "anonymous");
    if (admit(r))
        send_answer(r);   /* early: net skips the body, if any */
    *cap = r->cap;
    return r;
}

static void on_body(void *cls, void *ctx, const char *body, size_t len, int too_large)
{
    (void)cls;
    struct req *r = ctx;
    if (too_large) {
        req_error(r, ERR_BODY_TOO_LARGE, NULL);
    } else {
        r->body = body;
        r->body_len = len;
        if (r->route->handler(r) == HANDLER_ASYNC)
            return;
    }
    send_answer(r);
}

static void on_resumed(void *cls, void *ctx)
{
    struct server *s = cls;
    struct req *r = ctx;
    struct cmd *c = &r->cmd;
    if (c->err) {
        req_error(r, c->err, c->err_param);
    } else {
        if (!c->body && c->compose)
            c->compose(c);
        r->status = c->status;
        r->resp = (char *)c->body;
        r->resp_len = c->body_len ? c->body_len : strlen(c->body);
        r->replayed = c->replayed;
        if (c->sign_len && c->sign_off + c->sign_len <= r->resp_len) {
            /* A replay of a response stored when top-ups answered with a signed receipt:
             * sign it again (deterministic, so byte for byte as it was first sent). */
            const char *signed_receipt = receipt_signed(&r->a, &s->keys, r->resp + c->sign_off, c->sign_len);
            r->resp = arena_printf(&r->a, "%.*s%s%s", (int)c->sign_off, r->resp, signed_receipt,
                                   r->resp + c->sign_off + c->sign_len);
            r->resp_len = strlen(r->resp);
        }
    }
    send_answer(r);
}

static void on_request_done(void *cls, void *ctx)
{
    (void)cls;
    struct req *r = ctx;
    release_slot(r, 0);   /* admitted, but never ran as a command */
    arena_free(&r->a);
    free(r);
}

/* net's own answers, in the default language (a malformed head has no
 * Accept-Language to trust). */
static const char *on_refusal(void *cls, int status)
{
    static const int errs[] = {ERR_BAD_REQUEST,     ERR_EXPECTATION_FAILED, ERR_HEADERS_TOO_LARGE, ERR_INTERNAL,
                               ERR_NOT_IMPLEMENTED, ERR_OVERLOADED,         ERR_HTTP_VERSION,      ERR_REQUEST_TIMEOUT};
    struct server *s = cls;
    int err = ERR_BAD_REQUEST;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        if (err_status(errs[i]) == status)
            err = errs[i];
    return s->errors[err][i18n_pick(NULL)];
}

static int render_errors(struct server *s)
{
    for (int err = 0; err < ERR__COUNT; err++)
        for (int l = 0; l < LANG__COUNT; l++) {
            json_t *e = error_json(err, (enum lang)l);
            s->errors[err][l] = e ? json_dumps(e, JSON_COMPACT) : NULL;
            json_decref(e);
            if (!s->errors[err][l])
                return -1;
        }
    return 0;
}

/* ---- sweeper -------------------------------------------------------------- */

int server_sweep_exec(struct tx *tx, struct cmd *c)
{
    struct sweep *w = c->arg;
    int moved = 0, expired = 0;
    int rc = sim_sweep(tx, w->limit, &moved, &w->more);
    if (!rc)
        rc = ledger_expire_pending(tx, w->limit, &expired);
    w->more |= expired >= w->limit;
    c->status = moved + expired;
    c->body = "";
    return rc;
}

/* Sleeps ms milliseconds, or until the server stops: returns 1 when it does. */
static int nap(struct server *s, int64_t ms)
{
    struct timespec until = clock_after_us(CLOCK_REALTIME, ms * 1000);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0)
        ;
    int stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *sweeper(void *arg)
{
    pthread_setname_np(pthread_self(), "topupd-sweep");
    struct server *s = arg;
    while (!nap(s, s->cf.sweep_interval * 1000)) {
        for (;;) {
            struct arena a;
            arena_init(&a);
            struct sweep w = {.limit = 1000};
            struct cmd c = {.exec = server_sweep_exec, .arg = &w, .a = &a, .principal = "sweeper"};
            int rc = engine_run(s->eng, &c);
            arena_free(&a);
            if (rc) {
                log_warn("sweep failed: %s", err_code(rc));
                atomic_fetch_add(&s->sweeps_failed, 1);
                break;
            }
            if (c.status)
                log_info("sweep moved %d", c.status);
            atomic_fetch_add(&s->sweep_moved, (uint64_t)c.status);
            if (!w.more) {
                atomic_store(&s->swept_at, (int64_t)time(NULL));
                break;
            }
        }
    }
    return NULL;
}

/* Feeds the load shedder how busy the machine's CPUs are, every 100 ms. */
static void *cpu_sampler(void *arg)
{
    pthread_setname_np(pthread_self(), "topupd-cpu");
    struct server *s = arg;
    struct loadshed_cpu prev = LOADSHED_CPU_INIT;
    int unread = loadshed_cpu_read(&prev) == LOADSHED_CPU_UNREADABLE;
    if (unread)   /* said once; the shedder then goes by latency and the queue alone */
        log_warn("cannot read /proc/stat (%s): shed_cpu_percent has no effect while it cannot", strerror(errno));
    while (!nap(s, 100)) {
        double busy = loadshed_cpu_read(&prev);
        if (busy >= 0)
            loadshed_sample(s->shed, clock_mono_ms(), busy);
        if (busy == LOADSHED_CPU_UNREADABLE && !unread)
            log_warn("cannot read /proc/stat (%s): shed_cpu_percent has no effect while it cannot", strerror(errno));
        else if (busy != LOADSHED_CPU_UNREADABLE && unread)
            log_info("/proc/stat reads again: shed_cpu_percent applies");
        unread = busy == LOADSHED_CPU_UNREADABLE;
    }
    loadshed_cpu_close(&prev);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

STORE_SQL(SQL_META_GET, "SELECT value FROM meta WHERE key = ?");
STORE_SQL(SQL_META_PUT, "INSERT INTO meta(key, value) VALUES (?, ?)");

STORE_SQL(SQL_ANY_TOPUP, "SELECT EXISTS (SELECT 1 FROM topups)");

/* The receipt key (server.h): the one the database names in meta, or, for a
 * database that names none yet, the file's, or a new one when the database
 * has issued no receipt. */
static int prepare_key(struct store *st, const char *db_path, const char *path, struct receipt_keys *k)
{
    char kept[sizeof k->key_id] = "";
    struct store_q *q;
    int rc = store_one(st, &q, &SQL_META_GET, "s", "receipt_key");
    if (!rc) {
        text_copy(kept, sizeof kept, store_text(q, 0));
        store_end(q);
    } else if (rc != ERR_NOT_FOUND) {
        return rc;
    }
    rc = receipt_keys_load(k, path, 0);
    if (rc == ERR_NOT_FOUND) {
        int issued = 0;
        if (!kept[0] && !(rc = store_one(st, &q, &SQL_ANY_TOPUP, ""))) {
            issued = (int)store_i64(q, 0);
            store_end(q);
        }
        if (kept[0] || issued) {
            log_error("receipt key %s is missing, and the receipts %s has issued are signed with %s%s: "
                      "restore that file (or name it with --key); a new key would make every one of them fail "
                      "to verify", path, db_path, kept[0] ? "key " : "a key it does not name", kept);
            return ERR_NOT_FOUND;
        }
        rc = receipt_keys_load(k, path, 1);
    }
    if (rc)
        return rc;
    if (kept[0] && strcmp(kept, k->key_id)) {
        log_error("receipt key %s is key %s, but the receipts %s has issued are signed with key %s: "
                  "name that key's file with --key", path, k->key_id, db_path, kept);
        return ERR_INTERNAL;
    }
    return kept[0] ? 0 : store_exec(st, &SQL_META_PUT, "ss", "receipt_key", k->key_id);
}

/* cf->currency becomes the database's, or ERR_CURRENCY_MISMATCH when the
 * configuration named another; a database that keeps none takes cf's when
 * st writes, and is left as it is by a reader. */
static int keep_currency(struct store *st, const char *db_path, struct conf *cf, int writes)
{
    struct store_q *q;
    int rc = store_one(st, &q, &SQL_META_GET, "s", "currency");
    if (rc == ERR_NOT_FOUND)
        return writes ? store_exec(st, &SQL_META_PUT, "ss", "currency", cf->currency) : 0;
    if (rc)
        return rc;
    const char *kept = store_text(q, 0);
    if (strcmp(kept, cf->currency) && cf->currency_set) {
        log_error("database %s keeps %s; the configuration says %s", db_path, kept, cf->currency);
        rc = ERR_CURRENCY_MISMATCH;
    } else if (strlen(kept) == 3) {
        memcpy(cf->currency, kept, 4);
    }
    store_end(q);
    return rc;
}

int server_open_reader(struct store **out, const char *db_path, struct conf *cf)
{
    struct store *st = NULL;
    int have = 0, want = store_version_latest(), rc = store_open(&st, db_path, STORE_READER);
    if (!rc)
        rc = store_ours(st);   /* another program's, or a newer topupd's: said there */
    if (!rc)
        rc = store_version(st, &have);
    if (rc && rc != ERR_INVALID_STATE) {
        log_error("%s is not a topup database, or cannot be read", db_path);
    } else if (!rc && !have) {
        log_error("%s is not a topup database (it has no schema version)", db_path);
        rc = ERR_INVALID_STATE;
    } else if (!rc && have < want) {
        log_error("database %s is at schema version %d, this topupd's is %d: run 'topupd migrate --db %s' first",
                  db_path, have, want, db_path);
        rc = ERR_INVALID_STATE;
    }
    if (!rc)
        rc = keep_currency(st, db_path, cf, 0);
    if (rc) {
        store_close(st);   /* NULL when store_open failed */
        return rc;
    }
    *out = st;
    return 0;
}

int server_prepare_db(const char *db_path, struct conf *cf, int *version, const char *key_path,
                      struct receipt_keys *keys)
{
    struct store *st;
    struct stat sb;
    int applied = 0, rc = 0;
    if (!stat(db_path, &sb) && sb.st_size) {   /* a reader first: the writer's open would turn it to WAL */
        if (!(rc = store_open(&st, db_path, STORE_READER)))
            rc = store_ours(st);
        store_close(st);
        if (rc)
            return rc;
    }
    rc = store_open(&st, db_path, STORE_WRITER);
    if (rc)
        return rc;
    rc = store_migrate(st, &applied);
    if (!rc && version)
        rc = store_version(st, version);
    if (!rc)
        rc = keep_currency(st, db_path, cf, 1);
    if (!rc && keys)
        rc = prepare_key(st, db_path, key_path, keys);
    store_close(st);
    return rc;
}

/* A TLS certificate or key file, whole (at most 1 MiB), or NULL with the
 * reason logged. */
static char *slurp(const char *what, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(1 << 20) : NULL;
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int bad = !f ? errno : !buf ? ENOMEM : ferror(f) ? EIO : n == 1 << 20 ? EFBIG : 0;
    if (f)
        fclose(f);
    if (bad) {
        log_error("cannot read the TLS %s %s: %s", what, path, strerror(bad));
        free(buf);
        return NULL;
    }
    buf[n] = 0;   /* n < 1 MiB */
    return buf;
}

void server_close(struct server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->slow_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->sweeping)
        pthread_join(s->sweep_thread, NULL);
    if (s->sampling)
        pthread_join(s->cpu_thread, NULL);
    if (s->slow_reading)   /* the read under way ends; those waiting are refused */
        pthread_join(s->slow_thread, NULL);
    /* New mutations meet a stopping engine (503 shutting_down). */
    engine_stop(s->eng);           /* finishes queued commands and resumes their requests */
    net_stop(s->net);              /* answers them; no request can reach the engine after this */
    engine_close(s->eng);
    for (int i = 0; i < s->nreaders; i++)
        store_close(s->readers[i]);
    ratelimit_free(s->auth_fail);
    ratelimit_free(s->per_token);
    ratelimit_free(s->per_address);
    loadshed_free(s->shed);
    if (s->tls_key)
        sodium_memzero(s->tls_key, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    for (int err = 0; err < ERR__COUNT; err++)
        for (int l = 0; l < LANG__COUNT; l++)
            free(s->errors[err][l]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->slow_cv);
    free(s);
}

int server_open(struct server **out, const struct server_opts *o)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    s->cf = o->cf;
    s->db_path = o->db_path;
    s->test_clock = o->test_clock;
    s->started_at = (int64_t)time(NULL);
    clock_init_system(&s->clk);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->slow_cv, NULL);
    *out = s;

    struct sockaddr_in sa;
    if (o->listen && net_parse_listen(o->listen, &sa)) {
        log_error("--listen wants IPv4:PORT, got '%s'", o->listen);
        return 2;
    }
    if (o->fault && store_fault_configure(o->fault)) {
        log_error("--fault wants write@N, full@N or fsync@N[,once], got '%s'", o->fault);
        return 2;
    }
    if (!o->tls_cert != !o->tls_key) {
        log_error("TLS needs both --tls-cert and --tls-key");
        return 2;
    }
    /* What can be refused is, before the database is made or migrated. */
    if (o->tls_cert && (!(s->tls_cert = slurp("certificate", o->tls_cert)) || !(s->tls_key = slurp("key", o->tls_key))))
        return 1;
    char keypath[4096];
    snprintf(keypath, sizeof keypath, "%s%s", o->key_path ? o->key_path : o->db_path, o->key_path ? "" : ".ed25519");
    if (i18n_init() || server_prepare_db(o->db_path, &s->cf, &s->schema, keypath, &s->keys))
        return 1;
    if (auth_share(o->db_path, 0))
        log_warn("cannot map %s.token-epoch: every request looks its token up", o->db_path);
    if (engine_open(&s->eng, o->db_path, &s->cf, &s->clk, &s->keys))
        return 1;
    s->auth_fail = ratelimit_new((double)s->cf.auth_fail_per_minute / 60.0, (double)s->cf.auth_fail_per_minute, 65536);
    s->per_token = ratelimit_new((double)s->cf.token_rate, 2.0 * (double)s->cf.token_rate, 65536);
    s->per_address = ratelimit_new((double)s->cf.address_rate, 2.0 * (double)s->cf.address_rate, 65536);
    s->shed = loadshed_new((double)s->cf.shed_cpu_percent / 100.0, s->cf.shed_target_ms, s->cf.shed_p99_ms,
                           s->cf.shed_flood_ms, s->cf.shed_flood_min);
    if (!s->auth_fail || !s->per_token || !s->per_address || !s->shed || render_errors(s))
        return 1;

    /* One worker per processor: on 2 cores, 4 workers served 5% fewer
     * top-ups than 2 (more switches between them and the writer), and 1
     * about as many as 2. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = s->cf.http_threads ? (int)s->cf.http_threads : cpus < 1 ? 1 : cpus > 64 ? 64 : (int)cpus;
    struct net_opts no = {.listen = o->listen, .threads = threads,
                          .max_connections = s->cf.max_connections, .timeout_s = 60,
                          .max_per_address = (int)s->cf.max_connections_per_address,
                          .request_timeout_s = (int)s->cf.request_timeout,
                          .head_max = HEAD_MAX, .tls_cert = s->tls_cert, .tls_key = s->tls_key,
                          .park_ms = (int)s->cf.shed_park_ms, .refuse_ms = (int)s->cf.shed_refuse_ms};
    struct net_ops ops = {.cls = s, .head = on_head, .body = on_body, .resumed = on_resumed,
                          .done = on_request_done, .refusal = on_refusal, .flood = on_flood, .full = on_full};
    if (net_start(&s->net, &no, &ops)) {
        log_error("cannot serve on %s", o->listen ? o->listen : "(no socket)");
        return 1;
    }
    return 0;
}

int server_add_connection(struct server *s, int fd)
{
    return net_add(s->net, fd, "127.0.0.1");
}

int server_run(const struct server_opts *o)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);   /* its terminal went away, or a reload: drain and stop, never die mid-answer */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server *s;
    int rc = server_open(&s, o);
    if (rc) {
        server_close(s);
        return rc;
    }
    s->sweeping = !pthread_create(&s->sweep_thread, NULL, sweeper, s);
    s->sampling = !pthread_create(&s->cpu_thread, NULL, cpu_sampler, s);
    s->slow_reading = !pthread_create(&s->slow_thread, NULL, slow_reads, s);
    log_info("topupd listening on %s://%s (db %s, currency %s%s)", s->tls_cert ? "https" : "http", o->listen,
             o->db_path, s->cf.currency, s->test_clock ? ", test clock ON" : "");
    if (o->banner) {
        fputs(o->banner, stdout);
        fflush(stdout);
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("%s: stopping", sig == SIGHUP ? "SIGHUP" : sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_close(s);
    log_info("stopped");
    return 0;
}

/* http — what a route handler sees: the request, its caller, and the ways to
 * answer. The server (server.c) owns the connection; a handler owns nothing
 * but what it allocates from r->a, which is freed when the response is sent.
 *
 * A handler either answers at once (req_json, req_raw, req_error; returns 0),
 * or hands a command to the engine with req_submit() or a slow read to
 * req_read_apart() (returns HANDLER_ASYNC); the connection is then suspended
 * and answered when the command is durable or the read is done.
 *
 * Limits: a JSON body is capped by conf max_body, a CSV body by
 * max_import_body (413 body_too_large before the rest is read); the request
 * line and headers at 16 KiB (431); an Idempotency-Key at 128 bytes.
 */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tx.h"
#include "engine/engine.h"
#include "http/net.h"
#include "util/arena.h"
#include "util/i18n.h"
#include "util/jv.h"

struct server;
struct req;
struct net_conn;
struct h1_req;

/* HEAD is GET without the body (RFC 9110 9.3.2): a route is never HEAD; a HEAD
 * request takes the GET route of its path, and net sends no body to it. */
enum http_method { HTTP_GET = 1, HTTP_POST = 2, HTTP_DELETE = 4, HTTP_HEAD = 8 };
const char *http_method_name(int method);   /* "GET", "HEAD", "POST", "DELETE"; "?" otherwise */
int http_method_parse(const char *name);    /* 0 when not one of ours */

/* Roles are bits so a route can declare the set it admits. */
/* A monitor's token (a metrics scraper's) reads GET /metrics and what
 * anyone may: nothing of a subscriber's, and it can change nothing. */
enum role { ROLE_ANON = 1, ROLE_OPERATOR = 2, ROLE_ADMIN = 4, ROLE_MONITOR = 8 };
#define ROLES_STAFF (ROLE_OPERATOR | ROLE_ADMIN)
#define ROLES_ANY (ROLE_ANON | ROLE_OPERATOR | ROLE_ADMIN | ROLE_MONITOR)

enum route_flags {
    ROUTE_IDEM_REQUIRED = 1,   /* mutating: an Idempotency-Key must be sent */
    ROUTE_CSV = 2,             /* body is text/csv, capped by max_import_body */
    ROUTE_TEST_CLOCK = 4,      /* exists only with serve --test-clock */
    ROUTE_READ = 8,            /* a POST that changes nothing (never shed as a command) */
    ROUTE_AUTH = 16,           /* changes who may call: threads forget the tokens they remember (auth.h) */
};

#define HANDLER_ASYNC (-1)
#define ROUTE_MAX_PARAMS 4

struct route {
    int method;
    const char *pattern;       /* "/v1/sims/{iccid}/topups" */
    int (*handler)(struct req *r);
    int roles;                 /* who may call it: a set of enum role */
    int flags;
};

struct principal {
    int role;                  /* one enum role */
    int64_t token_id;          /* 0 for anonymous */
    char name[32];             /* "token:12", "anonymous" */
    char scope[32];            /* idempotency keys' scope (auth.h A4): "token:3" */
};

struct req {
    struct arena a;
    struct server *srv;
    const struct route *route;
    const char *params[ROUTE_MAX_PARAMS];
    int method;
    const char *path;
    const char *body;          /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    enum lang lang;
    struct principal who;
    const char *idem_key;
    struct cmd cmd;
    /* the server's */
    struct net_conn *conn;
    const struct h1_req *head;
    int status;
    char *resp;
    size_t resp_len;
    int replayed;
    int retry_after;           /* seconds, for 429 and 503 */
    int allow;                 /* for 405: the methods (enum http_method) the path has, HEAD with GET */
    const char *type;          /* the answer's Content-Type; NULL: JSON (req_text sets it) */
    int slices;                /* of a sliced command (engine.h E9): how many are durable */
    int overloaded;            /* answered ERR_OVERLOADED: its connection is held (net_hold) */
    char *inflight;            /* the idempotency key held while the command runs */
    int (*prepare)(struct req *r, struct cmd *c);   /* req_submit_sliced's, on the slow thread */
    size_t cap;
    int shed_slot;            /* counted in flight by the load shedder (loadshed.h) */
    int64_t admitted_us;      /* monotonic, when it was admitted */
    int64_t began_us;         /* monotonic, when its head came (metrics.h) */
};

/* Answers. Each returns 0 so a handler can `return req_error(...)`. */
int req_json(struct req *r, int status, json_t *body);          /* steals body */
int req_raw(struct req *r, int status, const char *json_text);  /* copies */
int req_text(struct req *r, int status, const char *text);      /* text/plain in UTF-8; copies */
int req_typed(struct req *r, int status, const char *type, const char *body, size_t len);   /* body: r's arena's */
int req_error(struct req *r, int err, const char *param);

const char *req_query(struct req *r, const char *name);
const char *req_header(struct req *r, const char *name);
/* Parses the body as a JSON object into r->a (util/jv.h); on failure answers
 * 400 and returns an error. */
int req_body_object(struct req *r, const struct jv **out);

/* A read transaction on this thread's reader connection. req_read_end ends
 * it and returns rc, or an error if what was read may not be durable yet and
 * never will be (engine_read_fence): rc = req_read_end(r, &tx, rc). */
int req_read_begin(struct req *r, struct tx *tx);
int req_read_end(struct req *r, struct tx *tx, int rc);

/* A read that takes seconds (the ledger check): read runs in a snapshot on
 * the server's thread for slow reads, one at a time, while the connection is
 * suspended, so that the other connections of this HTTP thread are not held
 * up. It answers as a command's exec does (c->status, c->body from tx->a).
 * Returns HANDLER_ASYNC. */
int req_read_apart(struct req *r, int (*read)(struct tx *tx, struct cmd *c));

/* Queues a command: exec runs on the writer (see engine.h); the answer is
 * c->status/c->body, or an error rendered in the caller's language. */
int req_submit(struct req *r, int (*exec)(struct tx *tx, struct cmd *c), void *arg);
/* The same for a command whose answer can be rendered again from a row it
 * wrote: the idempotency row keeps that row's id, not the body (engine.h E4). */
int req_submit_rendered(struct req *r, int (*exec)(struct tx *tx, struct cmd *c),
                        int (*render)(struct tx *tx, int64_t ref, const char **body, size_t *len), void *arg);

/* The same for a command that runs in slices (engine.h E9): exec does one and
 * sets c->more while there are more; advance moves arg past a durable one.
 * prepare (the parse of a large body) runs first, on the thread for slow
 * reads, not this HTTP thread; an error it returns (c->err_param naming the
 * field) is the answer, and nothing is queued. */
int req_submit_sliced(struct req *r, int (*prepare)(struct req *r, struct cmd *c),
                      int (*exec)(struct tx *tx, struct cmd *c), void (*advance)(struct cmd *c), void *arg);

/* The server's shared state, read-only for handlers. */
const struct conf *req_conf(struct req *r);
struct clock *req_clock(struct req *r);
const struct receipt_keys *req_keys(struct req *r);
int req_engine_halted(struct req *r);
int req_schema_version(struct req *r);
/* What GET /metrics shows besides the answers' counts (metrics.h). */
struct server_stats {
    struct engine_stats engine;
    struct net_stats net;
    int halted, schema;
    int64_t started_at;        /* Unix seconds */
    int64_t swept_at;          /* Unix seconds, when a run of sweeps last ended without a failure; 0: not yet */
    uint64_t sweeps_failed;    /* sweeps that failed (each logged) */
    uint64_t sweep_moved;      /* SIMs and reservations the sweeps moved on */
};
void req_server_stats(struct req *r, struct server_stats *out);

/* JSON field helpers: 0, ERR_MISSING_PARAMETER or ERR_INVALID_PARAMETER. */
int json_field_str(const struct jv *o, const char *key, int required, size_t maxlen, const char **out);
int json_field_int(const struct jv *o, const char *key, int required, int64_t *out);
int json_field_bool(const struct jv *o, const char *key, int required, int *out);
/* Rejects members not in the NULL-terminated list (o an object); *bad receives the first. */
int json_only_keys(const struct jv *o, const char *const *allowed, const char **bad);
json_t *json_time(int64_t t);     /* RFC 3339 string, or null for 0 */
/* Compact JSON text in r->a (jansson's dump, copied). */
char *json_text(struct arena *a, json_t *v);   /* steals v */

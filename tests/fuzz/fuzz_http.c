/* fuzz_http — the whole HTTP request path in one process: net.c and h1.c's
 * parsing, the router, authentication, body caps, every handler of
 * api_routes[] with its JSON (or CSV) body, the engine and the database.
 *
 * The server runs as topupd would (server_open with no socket) on a temporary
 * database; each input is one connection: a socketpair handed to
 * server_add_connection, the request written, the write side shut down once
 * the server has read it all, the answer read until EOF.
 *
 * Input (see README.md for the seeds that use it):
 *   byte 0   0xF0..0xF7: raw mode, the rest is sent as it is (any number of
 *            requests); "@A@" and "@O@" become the admin and operator tokens.
 *            0xF8..0xFF: twin mode, the rest (an input of its own) is sent on
 *            two connections at once.
 *            Otherwise a route of api_routes[]: the one whose tag (FNV-1a of
 *            "METHOD pattern" mod 240; FUZZ_HTTP_ROUTES=1 lists them) is the
 *            first at or above b0, so seeds survive new routes. Then:
 *   byte 1   bits 0-2 who: none, operator, admin, unknown token, revoked token,
 *                          "Basic ...", a line of the input, admin again
 *            bits 3-4 method: the route's, GET, POST, DELETE
 *            bit  5   chunked body (Transfer-Encoding) instead of Content-Length
 *            bits 6-7 Content-Type: the route's, none, text/plain, a line
 *   byte 2   bits 0-2 path parameter: one of 6 known values, a line, garbage
 *            bits 3-5 Idempotency-Key: none, k1..k4, unique, a line, invalid
 *            bits 6-7 Accept-Language: none, zh, ru, a line
 *   byte 3   bits 0-2 query string (transactions): none, 5 known, a line
 *            bit  3   claim a Content-Length far above the cap
 *            bits 4-7 chunk size for chunked bodies, which garbage parameter
 *   then     the lines asked for above (parameter, token, Idempotency-Key,
 *            Accept-Language, query, Content-Type, in that order), then the body.
 *
 * Properties checked, beyond "no crash, leak, UB or hang":
 *  - every request gets an answer (a well-formed request: an HTTP/1.1 status
 *    line and, when it is ours, a JSON body; an error body names its code);
 *  - no answer of ours is a 5xx but 501/505 (internal_error, storage_unavailable,
 *    outcome_unknown, writes_halted: nothing fails beneath this server);
 *  - after a successful mutation the ledger check passes (GET /v1/ledger/check);
 *  - a successful POST with an Idempotency-Key, sent again, gets the stored
 *    answer byte for byte with Idempotent-Replayed: true (but for tokens and
 *    the test clock, never replayed by design, and receipt verification,
 *    which stores nothing);
 *  - twins with an Idempotency-Key ran once: a success and either the same
 *    answer or 409 idempotency_key_in_use;
 *  - every receipt served by GET /v1/receipts/{n} verifies with the server's
 *    key; a top-up's answer carries its receipt numbered and unsigned.
 *
 * TOPUP_KNOWN_BUGS=1 lifts the limits put on the test clock (at most 400
 * days a call, "now" before 2100, a fresh server past 2200), which keep the
 * clock in years where SIMs and bundles still live; the server's own bounds
 * (regressions/fuzz_http/test-clock-*) are then what the fuzzer meets.
 *
 * Environment: FUZZ_HTTP_RECYCLE (runs between fresh databases, default
 * 20000), FUZZ_HTTP_HANG_MS (default 10000), FUZZ_HTTP_LEDGER_EVERY (check the
 * ledger after every Nth successful mutation, default 1), FUZZ_HTTP_EARLY_EOF=1
 * (half-close every connection as soon as the server has read the request, as
 * raw mode does; README.md, notes), FUZZ_VERBOSE=1 (server log and each
 * exchange on stderr), FUZZ_TMPDIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "api/api.h"
#include "core/receipt.h"
#include "core/sim.h"
#include "fuzz.h"
#include "http/auth.h"
#include "http/server.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/conf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* What LLVMFuzzerInitialize provisions; the seeds of corpus/fuzz_http use these. */
#define ICCID_ACTIVE "89860011000000000016"     /* topped up: balance, receipt R0000000001 */
#define ICCID_INACTIVE "89860011000000000024"   /* never topped up */
#define ICCID_SUSPENDED "89860011000000000032"
#define ICCID_BUNDLE "89860011000000000040"     /* topped up, bundle data10: receipt R0000000002 */
#define ICCID_UNKNOWN "89860011000000000099"    /* valid, not provisioned */

#define CLOCK_MAX_ADVANCE (400 * 86400)         /* per call */
#define CLOCK_MAX_NOW INT64_C(4102444800)       /* 2100-01-01: a "now" beyond is pulled back */
#define CLOCK_RECYCLE_AT INT64_C(7258118400)    /* 2200-01-01: past it, start a fresh server */
#define RESP_MAX (1 << 20)

static const char *const iccids[] = {ICCID_ACTIVE, ICCID_INACTIVE, ICCID_SUSPENDED,
                                     ICCID_BUNDLE, ICCID_UNKNOWN,   "89860011000000000017"};
static const char *const receipts[] = {"R0000000001", "R0000000002", "R0000000003",
                                       "R9999999999", "R",           "R00000000000000000000"};
static const char *const token_ids[] = {"3", "4", "999", "0", "-1", "9223372036854775808"};
static const char *const garbage_params[] = {"", "%00", "..", "%2F", "a%20b", "%FF%FE"};
static const char *const queries[] = {"limit=1", "limit=100&starting_after=tx_3", "limit=0", "starting_after=tx_",
                                      "limit=2&starting_after=tx_9223372036854775807"};

static struct server *srv;
static struct conf cf;
static struct receipt_keys keys;
static char dir[256], db[320];
static char tok_admin[TOKEN_LEN + 8], tok_op[TOKEN_LEN + 8], tok_revoked[TOKEN_LEN + 8];
static int64_t id_admin, id_op;
static unsigned generation;
static unsigned long runs, mutations;
static long recycle_every = 20000, hang_ms = 10000, ledger_every = 1;
static int verbose, known_bugs, early_eof_always;
static int64_t shadow_now;   /* the server's time as last seen (test clock answers) */

static const char *method_name(int m);
static unsigned route_tag(const struct route *rt);

/* ---- a growing buffer --------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
};

static void b_add(struct buf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void b_str(struct buf *b, const char *s) { b_add(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void b_printf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    b_add(b, tmp, n < (int)sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Percent-encodes all but unreserved characters (a path segment from the input). */
static void b_pct(struct buf *b, const char *s, size_t n, int keep_query_syntax)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || (keep_query_syntax && (c == '=' || c == '&' || c == '%'));
        if (plain)
            b_add(b, s + i, 1);
        else
            b_printf(b, "%%%02X", c);
    }
}

/* ---- one connection ----------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dump(const char *what, const char *s, size_t n)
{
    fprintf(stderr, "---- %s (%zu bytes)\n", what, n);
    for (size_t i = 0; i < n && i < 4096; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || (c >= 0x20 && c < 0x7f))
            fputc(c, stderr);
        else if (c != '\r')
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "\n----\n");
}

static void read_some(int fd, struct buf *out, int *eof)
{
    char tmp[16384];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r > 0) {
            if (out->n + (size_t)r <= RESP_MAX)
                b_add(out, tmp, (size_t)r);
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            *eof = 1;
        return;
    }
}

#define MAX_CONNS 2
#define EOF_GRACE_MS 2000

/* Writes the request on k connections at once, waits until the server has
 * read all of it, half-closes, and reads the answers until EOF.
 *
 * When to half-close: once the bytes have left our send queue (SIOCOUTQ), so
 * the EOF is an event of its own; with early_eof 0 (well-formed requests)
 * only once the answer has begun, or after EOF_GRACE_MS, as an ordinary client
 * would (README.md, notes). */
static void exchange_k(const char *req, size_t n, struct buf *out, int k, int early_eof)
{
    struct conn {
        int fd, eof, writing, draining;
        size_t sent;
        int64_t drained_at;
    } c[MAX_CONNS];
    for (int i = 0; i < k; i++) {
        int fds[2];
        out[i].n = 0;
        b_add(&out[i], "", 0);
        FUZZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair: %s", strerror(errno));
        FUZZ_CHECK(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
        FUZZ_CHECK(server_add_connection(srv, fds[1]) == 0, "server_add_connection failed");
        c[i] = (struct conn){.fd = fds[0], .writing = 1, .draining = 1};
    }
    int64_t deadline = mono_ms() + hang_ms;
    for (;;) {
        struct pollfd p[MAX_CONNS];
        int open = 0, writing = 0;
        for (int i = 0; i < k; i++) {
            struct conn *x = &c[i];
            if (x->eof)
                continue;
            if (x->writing && x->sent < n) {
                ssize_t w = send(x->fd, req + x->sent, n - x->sent, MSG_NOSIGNAL);
                if (w > 0)
                    x->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    x->writing = x->draining = 0;   /* the server closed: it answered early or gave up */
            }
            if (x->writing && x->sent == n) {
                int queued = 0;
                if (!(x->draining && ioctl(x->fd, SIOCOUTQ, &queued) == 0 && queued > 0)) {
                    /* all read by the server (or it stopped reading) */
                    if (!x->drained_at)
                        x->drained_at = mono_ms();
                    if (early_eof || out[x - c].n > 0 || mono_ms() - x->drained_at > EOF_GRACE_MS) {
                        shutdown(x->fd, SHUT_WR);
                        x->writing = 0;
                    }
                }
            }
            writing |= x->writing && !x->drained_at;   /* SIOCOUTQ has no event: look again soon */
            p[open++] = (struct pollfd){.fd = x->fd, .events = POLLIN | (x->writing && x->sent < n ? POLLOUT : 0)};
        }
        if (!open)
            break;
        if (mono_ms() > deadline) {
            dump("request", req, n);
            for (int i = 0; i < k; i++)
                dump("answer so far", out[i].p, out[i].n);
            FUZZ_CHECK(0, "no end of answer within %ld ms: the server hangs on this request", hang_ms);
        }
        struct timespec ts = {0, writing ? 50 * 1000 : 100 * 1000 * 1000};
        int r = ppoll(p, (nfds_t)open, &ts, NULL);
        FUZZ_CHECK(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
        for (int j = 0; r > 0 && j < open; j++) {
            if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            for (int i = 0; i < k; i++)
                if (c[i].fd == p[j].fd)
                    read_some(c[i].fd, &out[i], &c[i].eof);
        }
    }
    for (int i = 0; i < k; i++) {
        close(c[i].fd);
        if (verbose) {
            dump("request", req, n);
            dump("answer", out[i].p, out[i].n);
        }
    }
}

/* One well-formed request of the harness's own. */
static void exchange(const char *req, size_t n, struct buf *out) { exchange_k(req, n, out, 1, early_eof_always); }

/* ---- answers ------------------------------------------------------------ */

struct answer {
    int status;
    int ours;            /* Content-Type application/json: every answer of topupd's */
    const char *body;
    size_t body_len;
    json_t *json;        /* the body parsed, when ours */
};

static const char *find_ci(const char *h, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!strncasecmp(h + i, needle, k))
            return h + i;
    return NULL;
}

/* Parses the first answer in text; 0 when there is none. */
static int parse_answer(const char *text, size_t n, struct answer *a)
{
    memset(a, 0, sizeof *a);
    if (n < 12 || strncmp(text, "HTTP/1.", 7))
        return 0;
    a->status = atoi(text + 9);
    const char *end = memmem(text, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hlen = (size_t)(end - text);
    a->body = end + 4;
    a->body_len = n - hlen - 4;
    const char *cl = find_ci(text, hlen, "\r\nContent-Length:");
    if (cl) {
        size_t len = strtoul(cl + 17, NULL, 10);
        if (len <= a->body_len)
            a->body_len = len;
    }
    a->ours = find_ci(text, hlen, "\r\nContent-Type: application/json") != NULL;
    if (a->ours)
        a->json = json_loadb(a->body, a->body_len, 0, NULL);
    return 1;
}

static const char *error_code(const struct answer *a)
{
    return json_string_value(json_object_get(json_object_get(a->json, "error"), "code"));
}

/* What every answer of ours must satisfy. */
static void check_answer(const struct answer *a, const char *req, size_t reqlen)
{
    if (!a->ours)
        return;
    if (!a->json) {
        dump("request", req, reqlen);
        dump("answer body", a->body, a->body_len);
        FUZZ_CHECK(0, "answer %d is not JSON", a->status);
    }
    const char *code = error_code(a);
    if (a->status >= 400 && !code) {
        dump("request", req, reqlen);
        FUZZ_CHECK(0, "error answer %d without error.code", a->status);
    }
    /* internal_error, storage_unavailable, outcome_unknown, writes_halted... but not the
     * refusals of a request the input made unservable (a transfer coding or HTTP version) */
    if (a->status >= 500 && a->status != 501 && a->status != 505) {
        dump("request", req, reqlen);
        dump("answer body", a->body, a->body_len);
        FUZZ_CHECK(0, "the server failed: %d %s", a->status, code ? code : "(no code)");
    }
}

static void check_receipt(json_t *receipt, const char *req, size_t reqlen)
{
    if (!json_is_object(receipt))
        return;
    char *text = json_dumps(receipt, JSON_COMPACT);
    int ok = text && receipt_verify(&keys, text, strlen(text));
    if (!ok) {
        dump("request", req, reqlen);
        dump("receipt", text ? text : "", text ? strlen(text) : 0);
    }
    free(text);
    FUZZ_CHECK(ok, "a receipt served does not verify");
}

/* A top-up answers with its receipt's content: numbered, not signed (it is
 * signed when fetched). */
static void check_unsigned_receipt(json_t *receipt, const char *req, size_t reqlen)
{
    int ok = json_is_object(receipt) && json_is_string(json_object_get(receipt, "number")) &&
             !json_object_get(receipt, "signature") && !json_object_get(receipt, "key_id");
    if (!ok)
        dump("request", req, reqlen);
    FUZZ_CHECK(ok, "a top-up answered without its receipt, or with it signed");
}

/* The same request with the same Idempotency-Key, after a success: the stored
 * answer, byte for byte, marked Idempotent-Replayed (docs/API.md). */
static void check_replay(const char *req, size_t n, const struct answer *first)
{
    struct buf resp = {0};
    struct answer again;
    exchange(req, n, &resp);
    int got = parse_answer(resp.p, resp.n, &again);
    int same = got && again.status == first->status && again.body_len == first->body_len &&
               !memcmp(again.body, first->body, first->body_len);
    int marked = got && find_ci(resp.p, (size_t)(again.body - resp.p), "\r\nIdempotent-Replayed: true");
    if (!same || !marked) {
        dump("request", req, n);
        dump("first answer body", first->body, first->body_len);
        dump("replayed answer", resp.p, resp.n);
        FUZZ_CHECK(0, "an idempotent replay is not the stored answer (same %d, marked %d)", same, marked);
    }
    json_decref(again.json);
    free(resp.p);
}

/* ---- requests of the harness itself --------------------------------------- */

static void add_request(struct buf *b, const char *method, const char *path, const char *token, const char *idem,
                        const char *body)
{
    b_printf(b, "%s %s HTTP/1.1\r\nHost: fuzz\r\n", method, path);
    if (token)
        b_printf(b, "Authorization: Bearer %s\r\n", token);
    if (idem)
        b_printf(b, "Idempotency-Key: %s\r\n", idem);
    b_printf(b, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
             strstr(path, "/import") ? "text/csv" : "application/json", body ? strlen(body) : 0);
    if (body)
        b_str(b, body);
}

/* One request that must succeed with `want` (setup and oracles). */
static json_t *must(int want, const char *method, const char *path, const char *token, const char *idem,
                    const char *body)
{
    struct buf req = {0}, resp = {0};
    struct answer a;
    add_request(&req, method, path, token, idem, body);
    exchange(req.p, req.n, &resp);
    if (!parse_answer(resp.p, resp.n, &a) || a.status != want || !a.json) {
        dump("request", req.p, req.n);
        dump("answer", resp.p, resp.n);
        FUZZ_CHECK(0, "harness request %s %s answered %d, expected %d", method, path, a.status, want);
    }
    free(req.p);
    free(resp.p);
    return a.json;
}

static void ledger_check(void)
{
    json_t *j = must(200, "GET", "/v1/ledger/check", tok_admin, NULL, NULL);
    if (!json_is_true(json_object_get(j, "ok"))) {
        char *t = json_dumps(j, JSON_COMPACT);
        FUZZ_CHECK(0, "the ledger check fails after this input: %s", t);
    }
    json_decref(j);
}

/* ---- the server's life ---------------------------------------------------- */

static void rm_db(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".ed25519"};
    char p[400];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(p, sizeof p, "%s%s", db, suffixes[i]);
        unlink(p);
    }
}

static void stop(void)
{
    if (srv)
        server_close(srv);
    srv = NULL;
    rm_db();
}

static void at_exit(void)
{
    stop();
    rmdir(dir);
}

static void make_tokens(void)
{
    struct store *st;
    struct arena a;
    arena_init(&a);
    FUZZ_CHECK(server_prepare_db(db, &cf, NULL, NULL, NULL) == 0, "server_prepare_db %s", db);
    FUZZ_CHECK(store_open(&st, db, STORE_WRITER) == 0, "store_open %s", db);
    struct tx tx = {.st = st, .now = (int64_t)time(NULL), .cf = &cf, .a = &a, .principal = "fuzz"};
    int64_t id_revoked;
    FUZZ_CHECK(store_begin(st) == 0, "store_begin");
    struct token_spec admin = {ROLE_ADMIN, "fuzz-admin", 0}, op = {ROLE_OPERATOR, "fuzz-operator", 0},
                      revoked = {ROLE_OPERATOR, "fuzz-revoked", 0};
    int rc = auth_token_create(&tx, &admin, tok_admin, &id_admin);
    if (!rc)
        rc = auth_token_create(&tx, &op, tok_op, &id_op);
    if (!rc)
        rc = auth_token_create(&tx, &revoked, tok_revoked, &id_revoked);
    if (!rc)
        rc = auth_token_revoke(&tx, id_revoked);
    FUZZ_CHECK(rc == 0 && store_commit(st) == 0, "creating tokens: %d", rc);
    store_close(st);
    arena_free(&a);
}

static void start(void)
{
    snprintf(db, sizeof db, "%s/fuzz-%u.db", dir, generation++);
    make_tokens();
    struct server_opts o = {.listen = NULL, .db_path = db, .test_clock = 1, .cf = cf};
    int rc = server_open(&srv, &o);
    FUZZ_CHECK(rc == 0, "server_open: %d", rc);
    char path[128], ikey[64];
    snprintf(ikey, sizeof ikey, "setup-%u", generation);
    char key[80];

    json_decref(must(201, "POST", "/v1/plans", tok_admin, NULL,
                     "{\"code\":\"data10\",\"name\":{\"zh\":\"10 GB\",\"en\":\"10 GB\",\"ru\":\"10 GB\"},"
                     "\"price\":5000,\"currency\":\"CNY\",\"validity_days\":30,"
                     "\"allowances\":{\"data_bytes\":10737418240,\"voice_seconds\":0,\"sms\":0},"
                     "\"zones\":[\"250\",\"460\"],\"payg\":false}"));
    json_decref(must(201, "POST", "/v1/plans", tok_admin, NULL,
                     "{\"code\":\"voice\",\"name\":{\"zh\":\"v\",\"en\":\"v\",\"ru\":\"v\"},\"price\":0,"
                     "\"validity_days\":7,\"allowances\":{\"voice_seconds\":600,\"sms\":50}}"));
    static const char *const sims[] = {ICCID_ACTIVE, ICCID_INACTIVE, ICCID_SUSPENDED, ICCID_BUNDLE};
    for (int i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"iccid\":\"%s\",\"msisdn\":\"+861380000000%d\",\"imsi\":\"46000100000000%d\",\"language\":\"%s\"}",
                 sims[i], i + 1, i + 1, i % 2 ? "zh" : "ru");
        json_decref(must(201, "POST", "/v1/sims", tok_admin, NULL, body));
    }
    static const char *const topped[] = {ICCID_ACTIVE, ICCID_BUNDLE};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/v1/sims/%s/topups", topped[i]);
        snprintf(key, sizeof key, "%s-%d", ikey, i);
        json_t *j = must(201, "POST", path, tok_op, key,
                         "{\"amount\":100000,\"currency\":\"CNY\",\"channel\":\"portal\",\"method\":\"alipay\"}");
        if (!i) {
            /* The key the server signs with, to check the receipts it serves. */
            char kp[400];
            snprintf(kp, sizeof kp, "%s.ed25519", db);
            FUZZ_CHECK(receipt_keys_load(&keys, kp, 0) == 0, "receipt key %s", kp);
        }
        json_t *rc = json_object_get(j, "receipt");
        check_unsigned_receipt(rc, path, strlen(path));
        char rpath[64];
        snprintf(rpath, sizeof rpath, "/v1/receipts/%s", json_string_value(json_object_get(rc, "number")));
        json_t *signed_rc = must(200, "GET", rpath, tok_op, NULL, NULL);
        check_receipt(signed_rc, rpath, strlen(rpath));
        json_decref(signed_rc);
        json_decref(j);
    }
    snprintf(path, sizeof path, "/v1/sims/%s/bundles", ICCID_BUNDLE);
    snprintf(key, sizeof key, "%s-b", ikey);
    json_decref(must(201, "POST", path, tok_op, key, "{\"plan\":\"data10\"}"));
    snprintf(path, sizeof path, "/v1/sims/%s/suspend", ICCID_SUSPENDED);
    json_decref(must(200, "POST", path, tok_admin, NULL, ""));
    shadow_now = (int64_t)time(NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    const char *kb = getenv("TOPUP_KNOWN_BUGS");
    known_bugs = kb && !strcmp(kb, "1");
    early_eof_always = getenv("FUZZ_HTTP_EARLY_EOF") != NULL;
    log_set_level(verbose ? LOG_INFO : LOG_ERROR);
    if (getenv("FUZZ_HTTP_RECYCLE"))
        recycle_every = atol(getenv("FUZZ_HTTP_RECYCLE"));
    if (getenv("FUZZ_HTTP_HANG_MS"))
        hang_ms = atol(getenv("FUZZ_HTTP_HANG_MS"));
    if (getenv("FUZZ_HTTP_LEDGER_EVERY"))
        ledger_every = atol(getenv("FUZZ_HTTP_LEDGER_EVERY"));
    FUZZ_CHECK(sodium_init() >= 0, "sodium_init");
    for (size_t i = 0; i < 5; i++)
        FUZZ_CHECK(sim_iccid_valid(iccids[i]), "harness ICCID %s", iccids[i]);
    conf_defaults(&cf);
    cf.max_body = 1024;               /* small caps: 413 within reach of short inputs */
    cf.max_import_body = 4096;
    cf.http_threads = 1;
    cf.auth_fail_per_minute = 1000000;   /* unknown tokens get 401, not 429, all run long */
    if (getenv("FUZZ_HTTP_ROUTES")) {
        /* For writing seeds: the first byte that reaches each route. */
        for (size_t i = 0; i < api_route_count; i++)
            printf("0x%02x %s %s\n", route_tag(&api_routes[i]), method_name(api_routes[i].method),
                   api_routes[i].pattern);
        exit(0);
    }
    FUZZ_CHECK(fuzz_tmpdir(dir, sizeof dir, "http") == 0, "mkdtemp: %s", strerror(errno));
    atexit(at_exit);
    start();
    return 0;
}

/* ---- building a request from the input -------------------------------------- */

/* The test clock moves only forward and is shared by every later input: keep
 * it within years the server can print (a fresh server takes over past 2200). */
static char *tame_clock_body(const char *body, size_t len)
{
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    int changed = 0;
    json_t *adv = json_object_get(o, "advance");
    if (json_is_integer(adv) && json_integer_value(adv) > CLOCK_MAX_ADVANCE) {
        json_object_set_new(o, "advance", json_integer(json_integer_value(adv) % CLOCK_MAX_ADVANCE));
        changed = 1;
    }
    const char *now = json_string_value(json_object_get(o, "now"));
    int64_t t;
    if (now && strlen(now) == json_string_length(json_object_get(o, "now")) && !timefmt_parse(now, &t) &&
        t > CLOCK_MAX_NOW) {
        json_object_set_new(o, "now", json_string("2099-12-31T00:00:00Z"));
        changed = 1;
    }
    char *out = changed ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return out;
}

/* Percent-decodes the input and looks for what raw mode must not do with the
 * admin token: move the test clock, revoke a token. */
static int hexval(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int raw_is_risky(const uint8_t *p, size_t n)
{
    char *d = malloc(n + 1);
    size_t k = 0;
    if (!d)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            d[k++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            d[k++] = (char)p[i];
        }
        if (!d[k - 1])
            d[k - 1] = ' ';
    }
    d[k] = 0;
    int risky = strstr(d, "clock") || strstr(d, "tokens/");
    free(d);
    return risky;
}

static void raw_request(const uint8_t *p, size_t n, struct buf *req)
{
    int admin_ok = !raw_is_risky(p, n);
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && p[i] == '@' && p[i + 2] == '@' && (p[i + 1] == 'O' || (p[i + 1] == 'A' && admin_ok))) {
            b_str(req, p[i + 1] == 'A' ? tok_admin : tok_op);
            i += 3;
        } else {
            b_add(req, p + i, 1);
            i++;
        }
    }
}

/* Expands the route's pattern with the chosen parameter. */
static void add_path(struct buf *b, const struct route *rt, uint8_t sel, uint8_t garbage, char **line_param)
{
    for (const char *s = rt->pattern; *s;) {
        if (*s != '{') {
            b_add(b, s, 1);
            s++;
            continue;
        }
        const char *close = strchr(s, '}');
        const char *const *table = !strncmp(s, "{iccid}", 7) ? iccids : !strncmp(s, "{number}", 8) ? receipts
                                 : token_ids;
        sel &= 7;
        if (sel < 6) {
            b_str(b, table[sel]);
        } else if (sel == 6 && *line_param) {
            char *end;
            long long id = strtoll(*line_param, &end, 10);
            int own = table == token_ids && !*end && (id == id_admin || id == id_op);
            if (own)
                b_str(b, "999");   /* revoking the harness's own tokens would blind every later input */
            else
                b_pct(b, *line_param, strlen(*line_param), 0);
        } else {
            b_str(b, garbage_params[garbage % 6]);
        }
        s = close + 1;
    }
}

static const char *method_name(int m) { return m == HTTP_GET ? "GET" : m == HTTP_POST ? "POST" : "DELETE"; }

/* A route's tag: FNV-1a of "METHOD pattern", mod 240. Byte 0 picks the route
 * whose tag is next at or above it (cyclically), so a seed written for a route
 * (byte 0 = its tag) keeps reaching that route when routes are added. */
static unsigned route_tag(const struct route *rt)
{
    uint32_t h = 2166136261u;
    char s[256];
    snprintf(s, sizeof s, "%s %s", method_name(rt->method), rt->pattern);
    for (const char *c = s; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h % 240;
}

static const struct route *pick_route(uint8_t b0)
{
    const struct route *best = &api_routes[0];
    unsigned best_d = 240;
    for (size_t i = 0; i < api_route_count; i++) {
        unsigned d = (route_tag(&api_routes[i]) + 240 - b0) % 240;
        if (d < best_d)
            best = &api_routes[i], best_d = d;
    }
    return best;
}

/* Builds the request; returns the route when one was chosen (NULL: raw mode). */
static const struct route *build(const uint8_t *data, size_t size, struct buf *req, int *is_clock, int *cl_lie_out,
                                  int *twins)
{
    struct fz f = {data, size};
    uint8_t b0 = fz_u8(&f);
    *is_clock = 0;
    *cl_lie_out = 0;
    if (b0 >= 0xF8 && size > 1) {
        /* Twin mode: the rest, sent on two connections at once. */
        *twins = 2;
        return build(data + 1, size - 1, req, is_clock, cl_lie_out, twins);
    }
    if (b0 >= 0xF0) {
        const uint8_t *rest;
        size_t n = fz_rest(&f, &rest);
        raw_request(rest, n, req);
        return NULL;
    }
    const struct route *rt = pick_route(b0);
    uint8_t b1 = fz_u8(&f), b2 = fz_u8(&f), b3 = fz_u8(&f);
    int who = b1 & 7, meth = (b1 >> 3) & 3, chunked = (b1 >> 5) & 1, ctype = b1 >> 6;
    int psel = b2 & 7, isel = (b2 >> 3) & 7, lsel = b2 >> 6;
    int qsel = b3 & 7, cl_lie = (b3 >> 3) & 1, chunk = 1 + (b3 >> 4) * 37;
    *cl_lie_out = cl_lie && !chunked;

    /* The lines, in a fixed order, for the choices that take one. */
    char *l_param = psel == 6 ? fz_line_str(&f) : NULL;
    char *l_tok = who == 6 ? fz_line_str(&f) : NULL;
    char *l_idem = isel == 6 ? fz_line_str(&f) : NULL;
    char *l_lang = lsel == 3 ? fz_line_str(&f) : NULL;
    char *l_query = qsel == 7 ? fz_line_str(&f) : NULL;
    char *l_ctype = ctype == 3 ? fz_line_str(&f) : NULL;
    /* Header values stay on their line (raw mode is where CRs go). */
    char *hdr_lines[] = {l_tok, l_idem, l_lang, l_ctype};
    for (size_t i = 0; i < 4; i++)
        for (char *q = hdr_lines[i]; q && *q; q++)
            if (*q == '\r')
                *q = ' ';
    const uint8_t *body;
    size_t blen = fz_rest(&f, &body);
    char *tamed = NULL;
    if (rt->flags & ROUTE_TEST_CLOCK) {
        *is_clock = 1;
        /* TOPUP_KNOWN_BUGS=1: untamed, to replay the known bugs past year 9999 (README.md) */
        tamed = known_bugs ? NULL : tame_clock_body((const char *)body, blen);
        if (tamed) {
            body = (const uint8_t *)tamed;
            blen = strlen(tamed);
        }
    }

    const char *method = meth == 0 ? method_name(rt->method) : meth == 1 ? "GET" : meth == 2 ? "POST" : "DELETE";
    b_printf(req, "%s ", method);
    add_path(req, rt, (uint8_t)psel, (uint8_t)(b3 >> 4), &l_param);
    if (qsel >= 1 && qsel <= 5) {
        b_str(req, "?");
        b_str(req, queries[qsel - 1]);
    } else if (qsel == 7) {
        b_str(req, "?");
        b_pct(req, l_query, strlen(l_query), 1);
    }
    b_str(req, " HTTP/1.1\r\nHost: fuzz\r\n");

    static const char *const fixed_tokens[] = {NULL, tok_op, tok_admin, "tpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                               tok_revoked, NULL, NULL, tok_admin};
    if (who == 5)
        b_str(req, "Authorization: Basic YWRtaW46YWRtaW4=\r\n");
    else if (who == 6)
        b_printf(req, "Authorization: %s\r\n", l_tok);
    else if (fixed_tokens[who])
        b_printf(req, "Authorization: Bearer %s\r\n", fixed_tokens[who]);

    if (isel >= 1 && isel <= 4)
        b_printf(req, "Idempotency-Key: k%d\r\n", isel);
    else if (isel == 5)
        b_printf(req, "Idempotency-Key: run-%u-%lu\r\n", generation, runs);
    else if (isel == 6)
        b_printf(req, "Idempotency-Key: %s\r\n", l_idem);
    else if (isel == 7)
        b_str(req, "Idempotency-Key: "
                   "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                   "01234567890123456789012345678\r\n");

    if (lsel == 1)
        b_str(req, "Accept-Language: zh-CN,zh;q=0.9,en;q=0.8\r\n");
    else if (lsel == 2)
        b_str(req, "Accept-Language: ru\r\n");
    else if (lsel == 3)
        b_printf(req, "Accept-Language: %s\r\n", l_lang);

    if (ctype == 0)
        b_printf(req, "Content-Type: %s\r\n", (rt->flags & ROUTE_CSV) ? "text/csv" : "application/json");
    else if (ctype == 2)
        b_str(req, "Content-Type: text/plain\r\n");
    else if (ctype == 3)
        b_printf(req, "Content-Type: %s\r\n", l_ctype);

    if (chunked) {
        b_str(req, "Transfer-Encoding: chunked\r\n\r\n");
        for (size_t off = 0; off < blen; off += (size_t)chunk) {
            size_t k = blen - off < (size_t)chunk ? blen - off : (size_t)chunk;
            b_printf(req, "%zx\r\n", k);
            b_add(req, body + off, k);
            b_str(req, "\r\n");
        }
        b_str(req, "0\r\n\r\n");
    } else {
        b_printf(req, "Content-Length: %zu\r\n\r\n", cl_lie ? (size_t)100000000 : blen);
        b_add(req, body, blen);
    }
    free(l_param);
    free(l_tok);
    free(l_idem);
    free(l_lang);
    free(l_query);
    free(l_ctype);
    free(tamed);
    return rt;
}

/* Twins carrying an Idempotency-Key: the request ran once. One answered with
 * success, the other got the stored answer or 409 idempotency_key_in_use. */
static void check_twins(const char *req, size_t n, const struct answer *a)
{
    for (int i = 0; i < 2; i++) {
        const struct answer *x = &a[i], *y = &a[1 - i];
        if (!(x->ours && x->status >= 200 && x->status < 300))
            continue;
        int same = y->status == x->status && y->body_len == x->body_len && !memcmp(y->body, x->body, x->body_len);
        const char *code = error_code(y);
        int in_use = y->status == 409 && code && !strcmp(code, "idempotency_key_in_use");
        if (!same && !in_use) {
            dump("request (twice at once)", req, n);
            dump("one answer", x->body, x->body_len);
            dump("the other", y->body, y->body_len);
            FUZZ_CHECK(0, "two concurrent requests with one Idempotency-Key both ran (%d, %d)", x->status, y->status);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (recycle_every > 0 && runs && runs % (unsigned long)recycle_every == 0) {
        stop();
        start();
    }
    runs++;
    struct buf req = {0}, resp[MAX_CONNS] = {{0}};
    struct answer a[MAX_CONNS];
    int is_clock, cl_lie, twins = 1, got[MAX_CONNS] = {0}, mutated = 0;
    b_add(&req, "", 0);   /* raw mode may add nothing */
    const struct route *rt = build(data, size, &req, &is_clock, &cl_lie, &twins);
    exchange_k(req.p, req.n, resp, twins, !rt || early_eof_always);
    const char *hend = memmem(req.p, req.n, "\r\n\r\n", 4);
    int keyed = hend && find_ci(req.p, (size_t)(hend - req.p), "\r\nIdempotency-Key:");
    /* Not replayed: tokens and the test clock by design, verification as it stores nothing. */
    int replayable = rt && keyed && !strncmp(req.p, "POST ", 5) && rt->handler != api_tokens_create &&
                     rt->handler != api_receipts_verify && !(rt->flags & ROUTE_TEST_CLOCK);

    int head = !strncmp(req.p, "HEAD ", 5);   /* answered as GET would be, without the body */
    for (int i = 0; i < twins; i++) {
        got[i] = parse_answer(resp[i].p, resp[i].n, &a[i]);
        if (got[i] && head) {
            json_decref(a[i].json);
            a[i].json = NULL, a[i].ours = 0, a[i].body_len = 0;
        }
        /* A well-formed request gets an answer, unless it lied about its
         * length (then the server may close without a word). */
        if (rt && !got[i] && !cl_lie) {
            dump("request", req.p, req.n);
            dump("answer", resp[i].p, resp[i].n);
            FUZZ_CHECK(0, "no answer to a well-formed request");
        }
        if (!got[i])
            continue;
        check_answer(&a[i], req.p, req.n);
        if (a[i].ours && a[i].status == 201 && json_object_get(a[i].json, "topup"))
            check_unsigned_receipt(json_object_get(a[i].json, "receipt"), req.p, req.n);
        if (a[i].ours && a[i].status == 200 && rt && rt->handler == api_receipts_get)
            check_receipt(a[i].json, req.p, req.n);
        if (is_clock && a[i].status == 200) {
            const char *now = json_string_value(json_object_get(a[i].json, "now"));
            int64_t t;
            if (now && !timefmt_parse(now, &t) && t > shadow_now)
                shadow_now = t;
        }
        mutated |= a[i].ours && a[i].status >= 200 && a[i].status < 300 && !strncmp(req.p, "POST ", 5);
    }
    if (twins == 2 && replayable && got[0] && got[1])
        check_twins(req.p, req.n, a);
    for (int i = 0; i < twins; i++)
        if (replayable && got[i] && a[i].ours && a[i].status >= 200 && a[i].status < 300) {
            check_replay(req.p, req.n, &a[i]);
            break;
        }
    if (mutated && ledger_every > 0 && ++mutations % (unsigned long)ledger_every == 0)
        ledger_check();
    for (int i = 0; i < twins; i++) {
        if (got[i])
            json_decref(a[i].json);
        free(resp[i].p);
    }
    free(req.p);
    if (shadow_now > CLOCK_RECYCLE_AT && !known_bugs) {
        stop();
        start();
    }
    return 0;
}

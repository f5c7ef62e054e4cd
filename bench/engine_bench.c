/* engine_bench — figure 1: engine top-ups per second in-process, no HTTP.
 *
 * Links build/libtopup.a. Migrates a fresh database (server_prepare_db),
 * provisions N SIMs through the engine (sim_create, 10,000 per command, as an
 * import does), opens the engine and keeps --inflight top-up commands
 * outstanding for --seconds, each with a unique Idempotency-Key. Per top-up it
 * does what the HTTP path does around the engine, minus HTTP itself:
 *
 *   submitter (the HTTP thread's part): request hash (BLAKE2b of method, path,
 *     body, as req_submit), in-flight claim of the key, engine_submit
 *   writer: savepoint, idempotency lookup, topup_apply, the 201 body rendered
 *     as src/api/topups.c does (it runs that file's api_topup_exec itself),
 *     idempotency row, group commit and log sync, done() releasing the claim
 *   completion (the HTTP thread again): the answer's length counted (the
 *     receipt in it is unsigned: receipts are signed when fetched)
 *
 * Prints one JSON line. Counts only commands that came back 201.
 *
 *   engine_bench --db /tmp/e.db [--sims 100000] [--seconds 20] [--warmup 2] [--inflight 2000]
 */
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/ledger.h"
#include "core/receipt.h"
#include "core/sim.h"
#include "api/api.h"
#include "core/topup.h"
#include "engine/engine.h"
#include "http/inflight.h"
#include "http/server.h"
#include "cpu.h"
#include "simgen.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/log.h"
#include "util/timefmt.h"

#define DIE(...) (fprintf(stderr, "engine_bench: " __VA_ARGS__), fputc('\n', stderr), exit(1))
#define MAX_INFLIGHT 20000
#define MAX_ERRS 64

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- provisioning ---------------------------------------------------------- */

struct provision {
    int64_t first, count;
};

static int exec_provision(struct tx *tx, struct cmd *c)
{
    struct provision *p = c->arg;
    for (int64_t i = p->first; i < p->first + p->count; i++) {
        struct sim s;
        memset(&s, 0, sizeof s);
        simgen_iccid(i, s.iccid);
        char msisdn[24], imsi[24];
        simgen_msisdn(i, msisdn);
        simgen_imsi(i, imsi);
        snprintf(s.msisdn, sizeof s.msisdn, "%.16s", msisdn);
        snprintf(s.imsi, sizeof s.imsi, "%.15s", imsi);
        snprintf(s.lang, sizeof s.lang, "%s", simgen_lang(i));
        int existed = 0, rc = sim_create(tx, &s, &existed);
        if (rc)
            return rc;
    }
    c->status = 200;
    c->body = "";
    return 0;
}

static int exec_check(struct tx *tx, struct cmd *c)
{
    struct ledger_report *r = c->arg;
    int rc = ledger_check(tx, r);
    c->status = 200;
    c->body = "";
    return rc;
}

/* ---- the top-up command, as src/api/topups.c builds and renders it ------- */


/* ---- slots: one outstanding command each ---------------------------------- */

struct slot {
    struct cmd c;
    struct arena a;
    struct topup_cmd tc;
    char iccid[SIMGEN_ICCID_LEN + 1];
    char key[64];
    char path[64];
    char *inflight;
    struct slot *next_done;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct slot *done_list;

static void on_done(struct cmd *c)
{
    struct slot *s = (struct slot *)((char *)c - offsetof(struct slot, c));
    if (!c->err && !c->body && c->compose)
        c->compose(c);   /* the server renders the answer on its HTTP thread: in-process all the same */
    if (s->inflight)
        inflight_release(s->inflight);   /* on the writer, as the server's on_done */
    pthread_mutex_lock(&mu);
    s->next_done = done_list;
    done_list = s;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static const char BODY[] = "{\"amount\":100,\"currency\":\"CNY\",\"channel\":\"portal\",\"method\":\"alipay\"}";

static int submit(struct engine *e, struct slot *s, int64_t iccid_index, const char *runid, uint64_t n)
{
    arena_free(&s->a);
    arena_init(&s->a);
    simgen_iccid(iccid_index, s->iccid);
    snprintf(s->key, sizeof s->key, "eb-%s-%llu", runid, (unsigned long long)n);
    snprintf(s->path, sizeof s->path, "/v1/sims/%s/topups", s->iccid);
    struct cmd *c = &s->c;
    memset(c, 0, sizeof *c);
    memset(&s->tc, 0, sizeof s->tc);
    s->tc.req = (struct topup_req){.iccid = s->iccid, .amount = 100, .currency = "CNY", .channel = CHANNEL_portal,
                                   .method = METHOD_alipay};
    c->exec = api_topup_exec;
    c->render = api_topup_render;
    c->done = on_done;
    c->arg = &s->tc;
    c->a = &s->a;
    c->principal = "token:1";
    c->idem_scope = "token:1";
    c->idem_key = s->key;
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof c->req_hash);
    crypto_generichash_update(&h, (const unsigned char *)"POST", 5);
    crypto_generichash_update(&h, (const unsigned char *)s->path, strlen(s->path) + 1);
    crypto_generichash_update(&h, (const unsigned char *)BODY, sizeof BODY - 1);
    crypto_generichash_final(&h, c->req_hash, sizeof c->req_hash);
    s->inflight = arena_printf(&s->a, "%s\037%s", c->idem_scope, c->idem_key);
    if (inflight_claim(s->inflight))
        DIE("idempotency key %s already in flight", s->key);
    return engine_submit(e, c);
}

struct errcount {
    int err;
    long n;
};

int main(int argc, char **argv)
{
    const char *path = NULL;
    int64_t nsims = 100000;
    double seconds = 20, warmup = 2;
    int inflight = 2000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            DIE("%s needs a value", a);
        if (!strcmp(a, "--db"))
            path = v;
        else if (!strcmp(a, "--sims"))
            nsims = atoll(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--inflight"))
            inflight = atoi(v);
        else
            DIE("unknown argument %s", a);
        i++;
    }
    if (!path || nsims < 1 || nsims > SIMGEN_MAX || seconds <= 0 || warmup < 0 || inflight < 1 ||
        inflight > MAX_INFLIGHT)
        DIE("usage: engine_bench --db PATH [--sims N] [--seconds S] [--warmup S] [--inflight 1..%d]", MAX_INFLIGHT);
    if (sodium_init() < 0)
        DIE("sodium_init");
    log_set_level(LOG_WARN);

    char wal[4200], shm[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path), unlink(wal), unlink(shm);

    struct conf cf;
    conf_defaults(&cf);
    if (inflight > cf.queue_max)
        DIE("--inflight above the engine's queue_max %lld", (long long)cf.queue_max);
    struct clock clk;
    clock_init_system(&clk);
    struct receipt_keys keys;
    unsigned char seed[32];
    randombytes_buf(seed, sizeof seed);
    receipt_keys_from_seed(&keys, seed);
    int schema_version = 0;
    if (server_prepare_db(path, &cf, &schema_version, NULL, NULL))
        DIE("cannot prepare %s", path);
    struct engine *e;
    if (engine_open(&e, path, &cf, &clk, &keys))
        DIE("engine_open %s", path);

    double p0 = now_s();
    for (int64_t first = 0; first < nsims; first += 10000) {
        struct provision p = {first, nsims - first < 10000 ? nsims - first : 10000};
        struct arena a;
        arena_init(&a);
        struct cmd c = {.exec = exec_provision, .arg = &p, .a = &a, .principal = "bench"};
        int rc = engine_run(e, &c);
        arena_free(&a);
        if (rc)
            DIE("provisioning: %s", err_code(rc));
    }
    double provision_s = now_s() - p0;

    struct slot *slots = calloc((size_t)inflight, sizeof *slots);
    if (!slots)
        DIE("out of memory");
    char runid[32];
    snprintf(runid, sizeof runid, "%lx-%d", (long)time(NULL), (int)getpid());
    uint64_t rnd = (((uint64_t)time(NULL) * 2654435761u) ^ ((uint64_t)getpid() << 20)) | 1, seq = 0;
    long ok_window = 0, ok_total = 0, failed = 0, submitted = 0, refused = 0, outstanding = 0;
    struct errcount errs[MAX_ERRS];
    int nerrs = 0;
    size_t body_bytes = 0;
    struct engine_stats st0 = {0}, st1 = {0};

    double start = now_s(), win0 = start + warmup, win1 = win0 + seconds;
    for (int i = 0; i < inflight; i++) {
        int rc = submit(e, &slots[i], simgen_pick(&rnd, nsims), runid, seq++);
        if (rc)
            DIE("engine_submit: %s", err_code(rc));
        submitted++, outstanding++;
    }
    /* The rate is measured between completion events inside the window (the
     * first one opens it, uncounted), so batch boundaries do not quantise it. */
    int stats_at_win0 = 0, stats_at_win1 = 0;
    double last = start, first_t = 0, last_t = 0;
    struct cpu_snap cpu0 = {0}, cpu1 = {0};
    while (outstanding > 0) {
        pthread_mutex_lock(&mu);
        while (!done_list)
            pthread_cond_wait(&cv, &mu);
        struct slot *list = done_list;
        done_list = NULL;
        pthread_mutex_unlock(&mu);
        double t = now_s();
        if (!stats_at_win0 && t >= win0)
            engine_stats(e, &st0), stats_at_win0 = 1;
        if (!stats_at_win1 && t >= win1)
            engine_stats(e, &st1), stats_at_win1 = 1;
        int in_window = t >= win0 && t < win1, opens = in_window && first_t == 0;
        if (opens)
            first_t = t, cpu_snap(&cpu0, 0);
        if (in_window && !opens)
            last_t = t, cpu_snap(&cpu1, 0);
        for (struct slot *s = list, *next; s; s = next) {
            next = s->next_done;
            outstanding--;
            struct cmd *c = &s->c;
            if (!c->err && c->status == 201) {
                body_bytes += c->body_len;
                ok_total++;
                if (in_window && !opens)
                    ok_window++;
            } else {
                failed++;
                int k = 0;
                while (k < nerrs && errs[k].err != c->err)
                    k++;
                if (k == nerrs && nerrs < MAX_ERRS)
                    errs[nerrs++] = (struct errcount){c->err, 0};
                if (k < nerrs)
                    errs[k].n++;
            }
            last = t;
            if (t < win1) {
                int rc = submit(e, s, simgen_pick(&rnd, nsims), runid, seq++);
                if (rc) {
                    refused++;
                    inflight_release(s->inflight);
                } else {
                    submitted++, outstanding++;
                }
            }
        }
    }
    if (!stats_at_win1)
        engine_stats(e, &st1);

    struct ledger_report rep;
    memset(&rep, 0, sizeof rep);
    struct arena a;
    arena_init(&a);
    struct cmd chk = {.exec = exec_check, .arg = &rep, .a = &a, .principal = "bench"};
    int crc = engine_run(e, &chk);
    arena_free(&a);
    engine_close(e);
    for (int i = 0; i < inflight; i++)
        arena_free(&slots[i].a);
    free(slots);

    double batches = (double)(st1.batches - st0.batches), cmds = (double)(st1.commands - st0.commands);
    printf("{\"name\":\"engine\",\"sims\":%lld,\"inflight\":%d,\"warmup_s\":%.1f,\"seconds\":%.3f,"
           "\"topups_ok\":%ld,\"topups_per_s\":%.1f,\"ok_total\":%ld,\"failed\":%ld,\"refused\":%ld,"
           "\"drain_s\":%.3f,\"avg_batch\":%.1f,\"commits_per_s\":%.1f,\"response_bytes\":%.0f,"
           "\"provision_s\":%.2f,\"ledger_ok\":%s,",
           (long long)nsims, inflight, warmup, last_t - first_t, ok_window,
           last_t > first_t ? (double)ok_window / (last_t - first_t) : 0.0, ok_total, failed,
           refused, last > win1 ? last - win1 : 0.0, batches > 0 ? cmds / batches : 0.0, batches / seconds,
           ok_total ? (double)body_bytes / (double)ok_total : 0.0, provision_s,
           !crc && !rep.violations ? "true" : "false");
    cpu_print(stdout, &cpu0, &cpu1, "self", NULL);
    double wr = cpu_write_rate(&cpu0, &cpu1);
    printf(",\"write_bytes_per_s\":%.0f,\"write_bytes_per_topup\":%.0f,\"errors\":{", wr,
           last_t > first_t && ok_window ? wr / ((double)ok_window / (last_t - first_t)) : 0.0);
    for (int k = 0; k < nerrs; k++)
        printf("%s\"%s\":%ld", k ? "," : "", err_code(errs[k].err), errs[k].n);
    printf("}}\n");
    if (crc || rep.violations)
        fprintf(stderr, "engine_bench: ledger check: %s\n", crc ? err_code(crc) : rep.first_violation);
    return crc || rep.violations ? 1 : 0;
}

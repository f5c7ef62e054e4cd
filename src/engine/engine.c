/* engine — see engine.h for the invariants E1..E6. */
#include "engine/engine.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/ledger.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/log.h"

struct engine {
    struct store *st;
    const struct conf *cf;
    struct clock *clk;
    const struct receipt_keys *keys;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct cmd *head, *tail;
    size_t queued;
    int stopping;
    int halted;               /* E5 */
    struct engine_stats stats;
    struct ledger_cache sys;  /* only touched by the writer thread */
};

STORE_SQL(SQL_IDEM_GET,
          "SELECT request_hash, status, body, sign_off, sign_len FROM idempotency WHERE scope = ? AND key = ?");
STORE_SQL(SQL_IDEM_PUT,
          "INSERT INTO idempotency(scope, key, request_hash, status, body, sign_off, sign_len, created_at) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");

/* E4: answers from the stored row; returns 1 when the command is answered. */
static int replay(struct store *st, struct cmd *c)
{
    struct store_q *q;
    int rc = store_one(st, &q, &SQL_IDEM_GET, "ss", c->idem_scope, c->idem_key);
    if (rc == ERR_NOT_FOUND)
        return 0;
    if (rc) {
        c->err = rc;
        return 1;
    }
    size_t n;
    const void *hash = store_blob(q, 0, &n);
    if (n != sizeof c->req_hash || memcmp(hash, c->req_hash, n)) {
        c->err = ERR_IDEMPOTENCY_KEY_REUSED;
        c->err_param = "Idempotency-Key";
    } else {
        c->status = (int)store_i64(q, 1);
        c->body = arena_strdup(c->a, store_text(q, 2));
        c->body_len = strlen(c->body);
        c->sign_off = (size_t)store_i64(q, 3);
        c->sign_len = (size_t)store_i64(q, 4);
        c->replayed = 1;
    }
    store_end(q);
    return 1;
}

#define RERUN_SAFELY (-1)

/* E2: one command as if in its own savepoint. The fast path opens none: a
 * command that fails before writing anything (the usual way to fail:
 * validation and state checks come first) leaves nothing to undo. If one
 * fails after writing, the batch is rolled back and run again with a real
 * savepoint around each command (safe). Returns a fatal error, RERUN_SAFELY or 0. */
static int run_one(struct engine *e, struct cmd *c, int64_t now, int safe)
{
    struct tx tx = {.st = e->st, .now = now, .cf = e->cf, .keys = e->keys, .a = c->a, .principal = c->principal,
                    .sys = &e->sys};
    int rc = safe ? store_savepoint(e->st) : 0;
    if (rc)
        return c->err = rc;
    int64_t written = store_total_changes(e->st);
    if (!(c->idem_key && replay(e->st, c))) {
        c->err = c->exec(&tx, c);
        if (!c->err && c->idem_key)
            c->err = store_exec(e->st, &SQL_IDEM_PUT, "ssbdsiii", c->idem_scope, c->idem_key, c->req_hash,
                                sizeof c->req_hash, c->status, c->body ? c->body : "", (int64_t)c->sign_off,
                                (int64_t)c->sign_len, now);
    }
    if (c->err && err_is_fatal(c->err))
        return c->err;
    if (!safe)
        return c->err && store_total_changes(e->st) != written ? RERUN_SAFELY : 0;
    if (c->err)
        ledger_cache_clear(&e->sys);
    rc = c->err ? store_rollback_to(e->st) : store_release(e->st);
    if (rc)
        c->err = rc;
    return rc;
}

static void reset_result(struct cmd *c, int err)
{
    c->err = err;
    c->err_param = NULL;
    c->status = 0;
    c->body = NULL;
    c->body_len = 0;
    c->sign_off = c->sign_len = 0;
    c->replayed = 0;
}

static void finish(struct cmd *batch)
{
    while (batch) {
        struct cmd *next = batch->next;
        batch->next = NULL;
        batch->done(batch);
        batch = next;
    }
}

static void run_batch(struct engine *e, struct cmd *batch)
{
    int64_t now = clock_now(e->clk);
    int fatal = 0;
    for (int safe = 0; safe < 2; safe++) {
        fatal = store_begin(e->st);
        for (struct cmd *c = batch; c && !fatal; c = c->next)
            fatal = run_one(e, c, now, safe);
        if (fatal != RERUN_SAFELY)
            break;
        store_rollback(e->st);
        ledger_cache_clear(&e->sys);
        for (struct cmd *c = batch; c; c = c->next)
            reset_result(c, 0);
    }
    if (!fatal && store_commit(e->st)) {
        /* E5: after a failed COMMIT the state of the disk is unknown. */
        log_error("commit failed; refusing writes until restart");
        pthread_mutex_lock(&e->mu);
        e->halted = 1;
        e->stats.commits_failed++;
        pthread_mutex_unlock(&e->mu);
        fatal = ERR_OUTCOME_UNKNOWN;
    } else if (fatal) {
        store_rollback(e->st);
        fatal = ERR_STORAGE;
    }
    if (fatal) {
        ledger_cache_clear(&e->sys);
        for (struct cmd *c = batch; c; c = c->next)
            reset_result(c, fatal);
    }
    finish(batch);
}

static void *writer(void *arg)
{
    struct engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->head && !e->stopping)
            pthread_cond_wait(&e->wake, &e->mu);
        if (!e->head) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        struct cmd *batch = e->head, *last = batch;
        size_t n = 1;
        while (last->next && n < (size_t)e->cf->batch_max) {
            last = last->next;
            n++;
        }
        e->head = last->next;
        if (!e->head)
            e->tail = NULL;
        last->next = NULL;
        e->queued -= n;
        e->stats.commands += n;
        e->stats.batches++;
        int halted = e->halted;
        pthread_mutex_unlock(&e->mu);
        if (halted) {
            for (struct cmd *c = batch; c; c = c->next)
                c->err = ERR_WRITES_HALTED;
            finish(batch);
        } else {
            run_batch(e, batch);
        }
    }
    return NULL;
}

int engine_open(struct engine **out, const char *db_path, const struct conf *cf, struct clock *clk,
                const struct receipt_keys *keys)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e)
        return ERR_INTERNAL;
    e->cf = cf;
    e->clk = clk;
    e->keys = keys;
    int rc = store_open(&e->st, db_path, STORE_WRITER);
    if (rc) {
        free(e);
        return rc;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->thread, NULL, writer, e)) {
        store_close(e->st);
        free(e);
        return ERR_INTERNAL;
    }
    *out = e;
    return 0;
}

int engine_submit(struct engine *e, struct cmd *c)
{
    c->next = NULL;
    c->err = 0;
    c->queued_at = clock_mono_ms();
    pthread_mutex_lock(&e->mu);
    /* E6: bounded by count, and by time: when the oldest waiting command has
     * waited longer than queue_delay_ms, work is arriving faster than it can
     * be done, and admitting more would only make everyone late. */
    int rc = e->stopping ? ERR_SHUTTING_DOWN
           : e->halted   ? ERR_WRITES_HALTED
           : e->queued >= (size_t)e->cf->queue_max ? ERR_OVERLOADED
           : e->head && c->queued_at - e->head->queued_at > e->cf->queue_delay_ms ? ERR_OVERLOADED : 0;
    if (!rc) {
        if (e->tail)
            e->tail->next = c;
        else
            e->head = c;
        e->tail = c;
        e->queued++;
        pthread_cond_signal(&e->wake);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void wake_waiter(struct cmd *c)
{
    struct waiter *w = c->waiter;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int engine_run(struct engine *e, struct cmd *c)
{
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    c->waiter = &w;
    c->done = wake_waiter;
    int rc = engine_submit(e, c);
    if (rc)
        return c->err = rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return c->err;
}

int engine_halted(struct engine *e)
{
    pthread_mutex_lock(&e->mu);
    int h = e->halted;
    pthread_mutex_unlock(&e->mu);
    return h;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->queued = e->queued;
    pthread_mutex_unlock(&e->mu);
}

void engine_stop(struct engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    int already = e->stopping;
    e->stopping = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    if (already)
        return;
    pthread_join(e->thread, NULL);
    store_close(e->st);
    e->st = NULL;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    engine_stop(e);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    free(e);
}

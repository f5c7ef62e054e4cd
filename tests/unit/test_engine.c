/* engine: commands on the writer thread in group-committed batches (E1..E6 of
 * engine/engine.h): savepoint per command, idempotency replay, a fatal error
 * failing the batch, the bounded queue, and a failed COMMIT halting writes.
 *
 * To put commands in one batch for sure, a "gate" command is submitted first
 * and holds the writer inside its exec until the test has queued the rest. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "core/topup.h"
#include "engine/engine.h"
#include "util/clock.h"

/* Commands live in the fixture, not on a test's stack: if an assertion
 * fails while the writer still holds them, teardown opens the gate, lets the
 * engine drain and only then frees them. */
enum { MAX_JOBS = 64 };
struct job;
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, released;
};

struct fx {
    struct tu *t;
    struct clock clk;
    struct engine *e;
    struct sim sims[4];
    struct job *jobs;
    int njobs;
    struct gate gate;
    int gate_held;
};

/* Reads the committed state on the test's own connection (the writer is idle). */
static int64_t balance_of(struct fx *f, const struct sim *s)
{
    tu_begin(f->t);
    int64_t b = tu_sim_balance(f->t, s);
    tu_ledger_ok(f->t);
    tu_rollback(f->t);
    return b;
}

/* --- commands --- */

enum behaviour { TOPUP, TOPUP_THEN_DOMAIN_ERROR, TOPUP_THEN_STORAGE_ERROR, CREATE_SIM, GATE, BULK };

struct job {
    struct cmd c;
    struct arena a;
    enum behaviour how;
    struct topup_req req;
    struct topup_result out;
    const char *receipt;      /* the receipt its answer carries (receipt.h R1) */
    struct sim sim;           /* CREATE_SIM */
    struct gate *gate;
    int done_calls;
};

struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};
static struct counter counter = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static int exec_job(struct tx *tx, struct cmd *c)
{
    struct job *j = c->arg;
    if (j->how == GATE) {
        pthread_mutex_lock(&j->gate->mu);
        j->gate->started = 1;
        pthread_cond_broadcast(&j->gate->cv);
        while (!j->gate->released)
            pthread_cond_wait(&j->gate->cv, &j->gate->mu);
        pthread_mutex_unlock(&j->gate->mu);
        c->status = 204;
        return 0;
    }
    if (j->how == BULK) {   /* 5 MiB of log */
        c->status = 204;
        return store_script(tx->st, "INSERT INTO bulk_t SELECT randomblob(16000) FROM "
                                    "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 320) "
                                    "SELECT i FROM n)");
    }
    if (j->how == CREATE_SIM) {
        int existed = 0;
        memset(&j->sim, 0, sizeof j->sim);
        snprintf(j->sim.iccid, sizeof j->sim.iccid, "%s", j->req.iccid);
        c->status = 201;
        return sim_create(tx, &j->sim, &existed);
    }
    int rc = topup_apply(tx, &j->req, &j->out);
    if (rc)
        return rc;
    struct topup_answer v;
    topup_answer_from(tx, &j->req, &j->out, &v);
    j->receipt = topup_receipt(tx->a, &v);
    if (j->how == TOPUP_THEN_DOMAIN_ERROR)
        return ERR_INVALID_STATE;   /* after writing: the savepoint must undo it */
    if (j->how == TOPUP_THEN_STORAGE_ERROR)
        return ERR_STORAGE;
    c->status = 201;
    const char *head = arena_printf(tx->a, "{\"balance\":%lld,\"receipt\":", (long long)j->out.balance);
    c->body = arena_printf(tx->a, "%s%s}", head, j->receipt);
    c->body_len = strlen(c->body);
    c->sign_off = strlen(head);
    c->sign_len = strlen(j->receipt);
    return 0;
}

static void done_job(struct cmd *c)
{
    struct job *j = c->arg;
    j->done_calls++;
    pthread_mutex_lock(&counter.mu);
    counter.done++;
    pthread_cond_broadcast(&counter.cv);
    pthread_mutex_unlock(&counter.mu);
}

static void job_init(struct job *j, enum behaviour how, const char *iccid, int64_t amount)
{
    memset(j, 0, sizeof *j);
    arena_init(&j->a);
    j->how = how;
    j->req = (struct topup_req){.iccid = iccid, .amount = amount, .currency = "CNY", .channel = CHANNEL_kiosk,
                                .method = METHOD_cash};
    j->c = (struct cmd){.exec = exec_job, .done = done_job, .arg = j, .a = &j->a, .principal = "token:1"};
}

static void job_key(struct job *j, const char *scope, const char *key, unsigned char hash_byte)
{
    j->c.idem_scope = scope;
    j->c.idem_key = key;
    memset(j->c.req_hash, hash_byte, sizeof j->c.req_hash);
}

/* A new command from the fixture's pool. */
static struct job *job_new(struct fx *f, enum behaviour how, const char *iccid, int64_t amount)
{
    assert_true(f->njobs < MAX_JOBS);
    struct job *j = &f->jobs[f->njobs++];
    job_init(j, how, iccid, amount);
    return j;
}

/* Waits until n done() calls were counted; fails after 10 s rather than hang. */
static void wait_done(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int rc = 0;
    pthread_mutex_lock(&counter.mu);
    while (counter.done < n && rc == 0)
        rc = pthread_cond_timedwait(&counter.cv, &counter.mu, &until);
    int done = counter.done;
    pthread_mutex_unlock(&counter.mu);
    if (done < n)
        print_error("only %d of %d commands done\n", done, n);
    assert_true(done >= n);
}

static void counter_reset(void)
{
    pthread_mutex_lock(&counter.mu);
    counter.done = 0;
    pthread_mutex_unlock(&counter.mu);
}

/* Submits a gate and returns once the writer is inside it. */
static void gate_close(struct fx *f)
{
    f->gate = (struct gate){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct job *gj = job_new(f, GATE, NULL, 0);
    gj->gate = &f->gate;
    f->gate_held = 1;
    assert_int_equal(engine_submit(f->e, &gj->c), 0);
    pthread_mutex_lock(&f->gate.mu);
    while (!f->gate.started)
        pthread_cond_wait(&f->gate.cv, &f->gate.mu);
    pthread_mutex_unlock(&f->gate.mu);
}

static void gate_open(struct fx *f)
{
    pthread_mutex_lock(&f->gate.mu);
    f->gate.released = 1;
    pthread_cond_broadcast(&f->gate.cv);
    pthread_mutex_unlock(&f->gate.mu);
    f->gate_held = 0;
}

static void gate_open(struct fx *f);

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->jobs = calloc(MAX_JOBS, sizeof *f->jobs);
    assert_non_null(f->jobs);
    f->t = tu_open();
    tu_begin(f->t);
    for (int i = 0; i < 4; i++)
        tu_sim(f->t, &f->sims[i]);
    tu_commit(f->t);
    clock_init_fixed(&f->clk, TU_T0);
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    counter_reset();
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->gate_held)
        gate_open(f);
    engine_close(f->e);   /* drains: every submitted job is done after this */
    for (int i = 0; i < f->njobs; i++)
        arena_free(&f->jobs[i].a);
    free(f->jobs);
    tu_close(f->t);
    free(f);
    return 0;
}

/* --- tests --- */

/* engine_run executes on the writer with the injected clock and replies after commit. */
static void test_run_topup(void **state)
{
    struct fx *f = *state;
    struct job *j = job_new(f, TOPUP, f->sims[0].iccid, 1000);
    assert_int_equal(engine_run(f->e, &j->c), 0);
    assert_int_equal(j->c.err, 0);
    assert_int_equal(j->c.status, 201);
    assert_int_equal(j->c.replayed, 0);
    assert_int_equal(j->out.sim.active_until, TU_T0 + 30 * TU_DAY);
    assert_non_null(strstr(j->c.body, "\"served_by\":\"token:1\""));
    assert_memory_equal(j->c.body + j->c.sign_off, j->receipt, j->c.sign_len);
    assert_int_equal(balance_of(f, &f->sims[0]), 1000);   /* durable: visible to another connection */

    /* The clock moves: the next command sees the new time (the SIM is in grace). */
    clock_set(&f->clk, TU_T0 + 40 * TU_DAY);
    j = job_new(f, TOPUP, f->sims[0].iccid, 500);
    assert_int_equal(engine_run(f->e, &j->c), 0);
    assert_int_equal(j->out.reactivated, 1);
    assert_int_equal(j->out.sim.active_until, TU_T0 + 70 * TU_DAY);

    /* A domain error comes back as the command's error; nothing is applied. */
    j = job_new(f, TOPUP, f->sims[0].iccid, 99);
    assert_int_equal(engine_run(f->e, &j->c), ERR_AMOUNT_TOO_SMALL);
    assert_int_equal(j->c.err, ERR_AMOUNT_TOO_SMALL);
    assert_null(j->c.body);
    assert_int_equal(balance_of(f, &f->sims[0]), 1500);

    struct engine_stats st;
    engine_stats(f->e, &st);
    assert_int_equal(st.commands, 3);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.commits_failed, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(engine_halted(f->e), 0);
}

/* E4: the same scope, key and request hash: answered from the stored row, byte
 * for byte, without running again; another hash: refused; another scope: a new key. */
static void test_idempotency(void **state)
{
    struct fx *f = *state;
    struct job *a = job_new(f, TOPUP, f->sims[1].iccid, 1000);
    job_key(a, "topup", "key-1", 0x11);
    assert_int_equal(engine_run(f->e, &a->c), 0);
    assert_int_equal(a->c.replayed, 0);

    clock_set(&f->clk, TU_T0 + 3600);   /* a real repeat would render another time */
    struct job *b = job_new(f, TOPUP, f->sims[1].iccid, 1000);
    job_key(b, "topup", "key-1", 0x11);
    assert_int_equal(engine_run(f->e, &b->c), 0);
    assert_int_equal(b->c.replayed, 1);
    assert_int_equal(b->c.status, a->c.status);
    assert_int_equal(b->c.body_len, a->c.body_len);
    assert_string_equal(b->c.body, a->c.body);
    assert_int_equal(b->c.sign_off, a->c.sign_off);
    assert_int_equal(b->c.sign_len, a->c.sign_len);
    struct engine_stats st;
    engine_stats(f->e, &st);
    assert_int_equal(st.repeats_rerun, 1);   /* b ran, found its key taken, and its batch ran again */
    assert_int_equal(balance_of(f, &f->sims[1]), 1000);   /* once */

    /* The same key for another request. */
    struct job *c = job_new(f, TOPUP, f->sims[1].iccid, 2000);
    job_key(c, "topup", "key-1", 0x22);
    assert_int_equal(engine_run(f->e, &c->c), ERR_IDEMPOTENCY_KEY_REUSED);
    assert_non_null(c->c.err_param);
    assert_string_equal(c->c.err_param, "Idempotency-Key");
    assert_int_equal(c->c.replayed, 0);
    assert_int_equal(balance_of(f, &f->sims[1]), 1000);

    /* The same key in another scope is another key. */
    struct job *d = job_new(f, TOPUP, f->sims[1].iccid, 2000);
    job_key(d, "token:2", "key-1", 0x22);
    assert_int_equal(engine_run(f->e, &d->c), 0);
    assert_int_equal(d->c.replayed, 0);
    assert_int_equal(balance_of(f, &f->sims[1]), 3000);

    /* A refused command stores no key: the corrected retry runs. */
    struct job *e1 = job_new(f, TOPUP, f->sims[2].iccid, 50);
    job_key(e1, "topup", "key-2", 0x33);
    assert_int_equal(engine_run(f->e, &e1->c), ERR_AMOUNT_TOO_SMALL);
    struct job *e2 = job_new(f, TOPUP, f->sims[2].iccid, 500);
    job_key(e2, "topup", "key-2", 0x44);
    assert_int_equal(engine_run(f->e, &e2->c), 0);
    assert_int_equal(e2->c.replayed, 0);
    assert_int_equal(balance_of(f, &f->sims[2]), 500);
}

/* E4 by reference: a top-up through the API's exec stores its topups row's
 * id, not the body, and a repeat's body rendered from the row is the
 * original byte for byte, an hour later and for a reactivation with a fee. */
struct api_job {
    struct cmd c;
    struct arena a;
    struct topup_cmd tc;
};

static void api_job_init(struct api_job *j, const char *iccid, const char *key)
{
    memset(j, 0, sizeof *j);
    arena_init(&j->a);
    j->tc.req = (struct topup_req){.iccid = iccid, .amount = 2000, .currency = "CNY", .channel = CHANNEL_agent,
                                   .method = METHOD_wechat};
    j->c = (struct cmd){.exec = api_topup_exec, .render = api_topup_render, .arg = &j->tc, .a = &j->a,
                        .principal = "token:1", .idem_scope = "token:1", .idem_key = key};
    memset(j->c.req_hash, key[0], sizeof j->c.req_hash);
}

static void api_topup(struct fx *f, struct api_job *j, const char *iccid, const char *key)
{
    api_job_init(j, iccid, key);
    int rc = engine_run(f->e, &j->c);
    if (rc)
        fail_msg("%s: %s", key, err_code(rc));
    assert_int_equal(j->c.status, 201);
    if (!j->c.body) {   /* a fresh answer is rendered off the writer, as the server's HTTP thread does */
        assert_non_null(j->c.compose);
        j->c.compose(&j->c);
    }
}

STORE_SQL(SQL_STORED_ANSWER, "SELECT body, COALESCE(topup_id, 0) FROM idempotency WHERE key = ?");

static void test_idempotency_by_reference(void **state)
{
    struct fx *f = *state;
    static struct api_job a, b, c, d;
    const char *keys[] = {"k-plain", "k-fee"};
    api_topup(f, &a, f->sims[1].iccid, keys[0]);
    assert_int_equal(a.c.replayed, 0);
    clock_set(&f->clk, TU_T0 + 3600);
    api_topup(f, &b, f->sims[1].iccid, keys[0]);
    assert_int_equal(b.c.replayed, 1);
    assert_int_equal(b.c.body_len, a.c.body_len);
    assert_string_equal(b.c.body, a.c.body);

    /* Past validity (30 days) and grace (30): expired, reactivated for a fee. */
    f->t->cf.reactivation_fee = 500;
    clock_set(&f->clk, TU_T0 + 65 * 86400);
    api_topup(f, &c, f->sims[1].iccid, keys[1]);
    assert_true(c.tc.res.reactivated && c.tc.res.fee > 0);
    assert_non_null(strstr(c.c.body, "\"reactivated\":true"));
    clock_set(&f->clk, TU_T0 + 66 * 86400);
    api_topup(f, &d, f->sims[1].iccid, keys[1]);
    assert_int_equal(d.c.replayed, 1);
    assert_string_equal(d.c.body, c.c.body);

    int64_t ids[] = {a.tc.res.id, c.tc.res.id};
    tu_begin(f->t);
    for (int i = 0; i < 2; i++) {
        struct store_q *q;
        assert_int_equal(store_one(f->t->st, &q, &SQL_STORED_ANSWER, "s", keys[i]), 0);
        assert_string_equal(store_text(q, 0), "");
        assert_int_equal(store_i64(q, 1), ids[i]);
        assert_int_equal(store_end(q), 0);
    }
    tu_rollback(f->t);
    struct api_job *all[] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++)
        arena_free(&all[i]->a);
}

/* record.h: the writer reads the next record id once a batch and counts on;
 * a row another process adds between two batches (the CLI) is not collided
 * with, and a batch's top-ups take consecutive ids. */
STORE_SQL(SQL_OTHER_WRITER, "INSERT INTO sim_txns(id, sim_id, kind, amount, currency, balance_after, created_at) "
                            "VALUES ((SELECT MAX((SELECT MAX(id) FROM topups), (SELECT COALESCE(MAX(id), 0) FROM "
                            "sim_txns)) + 1), ?, 'forfeiture', 0, 'CNY', 0, 0)");
STORE_SQL(SQL_LAST_RECORD, "SELECT MAX(id) FROM sim_txns");

static void done_job_count(struct cmd *c)
{
    (void)c;
    pthread_mutex_lock(&counter.mu);
    counter.done++;
    pthread_cond_broadcast(&counter.cv);
    pthread_mutex_unlock(&counter.mu);
}

static void test_record_ids_between_batches(void **state)
{
    struct fx *f = *state;
    static struct api_job a, b, c;
    api_topup(f, &a, f->sims[1].iccid, "ids-a");
    tu_begin(f->t);
    assert_int_equal(store_exec(f->t->st, &SQL_OTHER_WRITER, "i", f->sims[1].id), 0);
    int64_t other = tu_scalar(f->t, &SQL_LAST_RECORD);
    tu_commit(f->t);
    assert_true(other > a.tc.res.id);
    api_topup(f, &b, f->sims[1].iccid, "ids-b");
    assert_true(b.tc.res.id > other);
    gate_close(f);   /* c and d in one batch: consecutive ids */
    static struct api_job d;
    struct api_job *two[] = {&c, &d};
    const char *keys[] = {"ids-c", "ids-d"};
    counter_reset();
    for (int i = 0; i < 2; i++) {
        api_job_init(two[i], f->sims[2].iccid, keys[i]);
        two[i]->c.done = done_job_count;
        assert_int_equal(engine_submit(f->e, &two[i]->c), 0);
    }
    gate_open(f);
    wait_done(3);
    assert_int_equal(c.c.err, 0);
    assert_int_equal(d.c.err, 0);
    assert_int_equal(d.tc.res.id, c.tc.res.id + 1);
    assert_true(c.tc.res.id > b.tc.res.id);
    struct api_job *all[] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++)
        arena_free(&all[i]->a);
}

/* E4 within one batch: the second command with the key is answered from the
 * row the first stored a moment before, in the same transaction. */
static void test_idempotency_same_batch(void **state)
{
    struct fx *f = *state;
    gate_close(f);
    struct job *a = job_new(f, TOPUP, f->sims[3].iccid, 700);
    job_key(a, "topup", "twice", 0x55);
    struct job *b = job_new(f, TOPUP, f->sims[3].iccid, 700);
    job_key(b, "topup", "twice", 0x55);
    assert_int_equal(engine_submit(f->e, &a->c), 0);
    assert_int_equal(engine_submit(f->e, &b->c), 0);
    gate_open(f);
    wait_done(3);
    struct engine_stats st;
    engine_stats(f->e, &st);
    assert_int_equal(st.batches, 2);   /* the gate's, then a and b together */
    assert_int_equal(a->c.err, 0);
    assert_int_equal(b->c.err, 0);
    assert_int_equal(a->c.replayed, 0);
    assert_int_equal(b->c.replayed, 1);
    assert_string_equal(b->c.body, a->c.body);
    assert_int_equal(balance_of(f, &f->sims[3]), 700);
    assert_int_equal(st.repeats_rerun, 1);   /* b's key INSERT found a's: the batch ran again */

    /* For ENGINE_LOOK_FIRST_SECONDS after that, keys are looked up first:
     * a repeat beside a new command re-runs nothing; then one does again. */
    for (int round = 0; round < 2; round++) {
        counter_reset();
        gate_close(f);
        struct job *fresh = job_new(f, TOPUP, f->sims[2].iccid, 300);
        job_key(fresh, "topup", round ? "fresh-2" : "fresh-1", 0x66);
        struct job *again = job_new(f, TOPUP, f->sims[3].iccid, 700);
        job_key(again, "topup", "twice", 0x55);
        assert_int_equal(engine_submit(f->e, &fresh->c), 0);
        assert_int_equal(engine_submit(f->e, &again->c), 0);
        gate_open(f);
        wait_done(3);
        assert_int_equal(fresh->c.err, 0);
        assert_int_equal(fresh->c.replayed, 0);
        assert_int_equal(again->c.err, 0);
        assert_int_equal(again->c.replayed, 1);
        assert_string_equal(again->c.body, a->c.body);
        assert_int_equal(balance_of(f, &f->sims[2]), 300 * (round + 1));
        assert_int_equal(balance_of(f, &f->sims[3]), 700);
        engine_stats(f->e, &st);
        assert_int_equal(st.repeats_rerun, 1 + round);
        clock_set(&f->clk, TU_T0 + ENGINE_LOOK_FIRST_SECONDS);
    }
}

static int64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* E8: a batch that began with two commands stays open for commit_delay_us
 * after it began, and a command arriving meanwhile joins it, although the
 * syncer is idle; one that began alone is not held. */
static void test_commit_delay(void **state)
{
    struct fx *f = *state;
    f->t->cf.commit_delay_us = 500000;   /* long enough for a slow machine (valgrind) */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct job *alone = job_new(f, TOPUP, f->sims[0].iccid, 100);
    assert_int_equal(engine_run(f->e, &alone->c), 0);
    assert_true(elapsed_ms(&t0) < 250);

    struct engine_stats before, after;
    engine_stats(f->e, &before);
    gate_close(f);
    struct job *a = job_new(f, TOPUP, f->sims[1].iccid, 100);
    struct job *b = job_new(f, TOPUP, f->sims[2].iccid, 100);
    struct job *c = job_new(f, TOPUP, f->sims[3].iccid, 100);
    counter_reset();
    assert_int_equal(engine_submit(f->e, &a->c), 0);
    assert_int_equal(engine_submit(f->e, &b->c), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gate_open(f);
    struct timespec pause = {0, 20 * 1000000};
    nanosleep(&pause, NULL);
    assert_int_equal(engine_submit(f->e, &c->c), 0);
    wait_done(4);
    engine_stats(f->e, &after);
    assert_int_equal(after.batches - before.batches, 2);   /* the gate's, then a, b and c together */
    assert_true(elapsed_ms(&t0) >= 400);                    /* held until the delay ran out */
    assert_int_equal(a->c.err, 0);
    assert_int_equal(c->c.err, 0);
    assert_int_equal(balance_of(f, &f->sims[3]), 100);
}

/* E2: in one batch, commands that fail with a domain error (even after
 * writing) are rolled back alone; the others commit. */
static void test_batch_domain_errors(void **state)
{
    struct fx *f = *state;
    enum { N = 24 };
    struct job *jobs[N];
    int want_err[N];
    int64_t want[4] = {0};
    gate_close(f);
    for (int i = 0; i < N; i++) {
        const struct sim *s = &f->sims[i % 4];
        switch (i % 6) {
        case 0: /* amount below the minimum */
            jobs[i] = job_new(f, TOPUP, s->iccid, 10);
            want_err[i] = ERR_AMOUNT_TOO_SMALL;
            break;
        case 1: /* no such SIM */
            jobs[i] = job_new(f, TOPUP, "8944110068256270054", 1000);
            want_err[i] = ERR_SIM_NOT_FOUND;
            break;
        case 2: /* wrote everything, then failed: the savepoint undoes it */
            jobs[i] = job_new(f, TOPUP_THEN_DOMAIN_ERROR, s->iccid, 7000);
            want_err[i] = ERR_INVALID_STATE;
            break;
        default: /* fine */
            jobs[i] = job_new(f, TOPUP, s->iccid, 100 * (i + 1));
            want_err[i] = 0;
            want[i % 4] += 100 * (i + 1);
        }
        assert_int_equal(engine_submit(f->e, &jobs[i]->c), 0);
    }
    struct engine_stats st;
    engine_stats(f->e, &st);
    assert_int_equal(st.queued, N);
    gate_open(f);
    wait_done(N + 1);

    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i]->done_calls, 1);
        if (jobs[i]->c.err != want_err[i])
            print_error("job %d: %s\n", i, err_code(jobs[i]->c.err));
        assert_int_equal(jobs[i]->c.err, want_err[i]);
        assert_int_equal(jobs[i]->c.status, want_err[i] ? 0 : 201);
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(balance_of(f, &f->sims[k]), want[k]);
    engine_stats(f->e, &st);
    assert_int_equal(st.batches, 2);   /* the gate's, then all N in one */
    assert_int_equal(st.commands, N + 1);
}

/* E5: a command failing with a storage error fails its whole batch: every
 * command gets ERR_STORAGE and nothing of the batch is kept (keys included);
 * the engine goes on with the next batch. */
static void test_batch_storage_error(void **state)
{
    struct fx *f = *state;
    gate_close(f);
    struct job *a = job_new(f, TOPUP, f->sims[0].iccid, 1000);
    job_key(a, "topup", "k-a", 0x01);
    struct job *b = job_new(f, TOPUP_THEN_STORAGE_ERROR, f->sims[1].iccid, 1000);
    struct job *c = job_new(f, TOPUP, f->sims[2].iccid, 1000);
    assert_int_equal(engine_submit(f->e, &a->c), 0);
    assert_int_equal(engine_submit(f->e, &b->c), 0);
    assert_int_equal(engine_submit(f->e, &c->c), 0);
    gate_open(f);
    wait_done(4);
    assert_int_equal(f->jobs[0].c.err, 0);   /* the gate: its own batch, committed */
    struct job *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(all[i]->done_calls, 1);
        assert_int_equal(all[i]->c.err, ERR_STORAGE);
        assert_int_equal(all[i]->c.status, 0);
        assert_null(all[i]->c.body);
        assert_int_equal(all[i]->c.replayed, 0);
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(balance_of(f, &f->sims[k]), 0);
    assert_int_equal(engine_halted(f->e), 0);   /* not a failed commit: writes go on */

    /* The retry of a runs: its key was rolled back with the batch. */
    struct job *again = job_new(f, TOPUP, f->sims[0].iccid, 1000);
    job_key(again, "topup", "k-a", 0x01);
    assert_int_equal(engine_run(f->e, &again->c), 0);
    assert_int_equal(again->c.replayed, 0);
    assert_int_equal(balance_of(f, &f->sims[0]), 1000);
    tu_begin(f->t);
    struct sim s1 = tu_sim_get(f->t, f->sims[1].iccid);
    tu_rollback(f->t);
    assert_int_equal(s1.state, SIM_INACTIVE);   /* b's top-up is gone too */
}

/* The writer remembers system-account ids across batches. A batch that is
 * rolled back (a fatal error, or a command failing after it wrote) may have
 * created such an account: its id must be forgotten. Otherwise the next
 * insert into accounts (here: a new SIM's wallet, which SQLite gives the
 * same rowid) becomes the "clearing account", and a later top-up takes the
 * money out of that subscriber's wallet. */
static void test_system_account_cache(void **state)
{
    struct fx *f = *state;
    char iccid[2][ICCID_MAX + 1];
    tu_iccid(501, iccid[0]);
    tu_iccid(502, iccid[1]);
    const struct {
        int method;              /* used here for the first time: its clearing account is created */
        enum behaviour spoiler;  /* how the batch that created it is undone */
        int err;
    } rows[] = {
        {METHOD_wechat, TOPUP_THEN_STORAGE_ERROR, ERR_STORAGE},       /* the whole batch (fatal) */
        {METHOD_bank_card, TOPUP_THEN_DOMAIN_ERROR, ERR_INVALID_STATE}, /* the command's savepoint */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        counter_reset();
        gate_close(f);   /* the spoiler in a batch of its own */
        struct job *sp = job_new(f, rows[i].spoiler, f->sims[0].iccid, 1000);
        sp->req.method = rows[i].method;
        assert_int_equal(engine_submit(f->e, &sp->c), 0);
        gate_open(f);
        wait_done(2);
        assert_int_equal(sp->c.err, rows[i].err);

        /* A new SIM whose wallet takes the freed rowid, with money on it. */
        struct job *fresh = job_new(f, CREATE_SIM, iccid[i], 0);
        assert_int_equal(engine_run(f->e, &fresh->c), 0);
        struct job *fill = job_new(f, TOPUP, iccid[i], 5000);
        assert_int_equal(engine_run(f->e, &fill->c), 0);

        /* Now the method's first real use. */
        struct job *use = job_new(f, TOPUP, f->sims[1].iccid, 1000);
        use->req.method = rows[i].method;
        int rc = engine_run(f->e, &use->c);
        if (rc)
            print_error("row %zu: %s\n", i, err_code(rc));
        assert_int_equal(rc, 0);
        assert_int_equal(balance_of(f, &fresh->sim), 5000);   /* the new SIM's wallet was not the source */
        assert_int_equal(balance_of(f, &f->sims[1]), 1000 * (int64_t)(i + 1));
        tu_begin(f->t);
        assert_int_equal(tu_system_balance(f->t, rows[i].method == METHOD_wechat ? "clearing_wechat"
                                                                                  : "clearing_bank_card", "CNY"),
                         -1000);
        tu_rollback(f->t);
    }
}

/* E6: the queue is bounded; a refused submit never calls done(). */
static void test_queue_bound(void **state)
{
    struct fx *f = *state;
    f->t->cf.queue_max = 2;
    gate_close(f);   /* taken off the queue: 0 queued */
    struct job *j[3];
    for (int i = 0; i < 3; i++)
        j[i] = job_new(f, TOPUP, f->sims[i].iccid, 100);
    assert_int_equal(engine_submit(f->e, &j[0]->c), 0);
    assert_int_equal(engine_submit(f->e, &j[1]->c), 0);
    assert_int_equal(engine_submit(f->e, &j[2]->c), ERR_OVERLOADED);
    gate_open(f);
    wait_done(3);
    assert_int_equal(j[0]->c.err, 0);
    assert_int_equal(j[1]->c.err, 0);
    assert_int_equal(j[2]->done_calls, 0);
    assert_int_equal(balance_of(f, &f->sims[2]), 0);
    f->t->cf.queue_max = 20000;
}

/* The nice value of the engine's thread named `comm`; INT_MIN: no such thread. */
static int nice_of(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int nice = INT_MIN;
    for (struct dirent *de; nice == INT_MIN && (de = readdir(d));) {
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        if (fgets(name, sizeof name, fp) && !strncmp(name, comm, strlen(comm)) && name[strlen(comm)] == '\n') {
            errno = 0;
            nice = getpriority(PRIO_PROCESS, (id_t)atoi(de->d_name));
            assert_int_equal(errno, 0);
        }
        fclose(fp);
    }
    closedir(d);
    return nice;
}

/* Whether a thread of this process may lower its own nice value to -5. */
static void *probe_nice(void *arg)
{
    *(int *)arg = setpriority(PRIO_PROCESS, (id_t)gettid(), -5) == 0;
    return NULL;
}

/* writer_nice: the writer and the syncer run at it when the process may
 * lower a nice value (root, CAP_SYS_NICE, RLIMIT_NICE), at 0 otherwise;
 * every other thread stays at 0. */
static void test_writer_priority(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->t->cf.writer_nice, -5);   /* the default */
    int may = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, probe_nice, &may), 0);
    pthread_join(t, NULL);
    int want = may ? -5 : 0;
    for (int i = 0; i < 200 && (nice_of("topupd-writer") != want || nice_of("topupd-sync") != want); i++)
        usleep(5000);   /* each thread sets its own as it starts */
    assert_int_equal(nice_of("topupd-writer"), want);
    assert_int_equal(nice_of("topupd-sync"), want);
    assert_int_equal(getpriority(PRIO_PROCESS, 0), 0);
}

/* engine_close finishes what is queued before it returns. */
static void test_close_drains(void **state)
{
    struct fx *f = *state;
    struct job *j[8];
    for (int i = 0; i < 8; i++) {
        j[i] = job_new(f, TOPUP, f->sims[i % 4].iccid, 100);
        assert_int_equal(engine_submit(f->e, &j[i]->c), 0);
    }
    engine_close(f->e);
    f->e = NULL;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(j[i]->done_calls, 1);
        assert_int_equal(j[i]->c.err, 0);
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(balance_of(f, &f->sims[k]), 200);
    /* Reopened, the engine works on from the committed state. */
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    struct job *k = job_new(f, TOPUP, f->sims[0].iccid, 100);
    assert_int_equal(engine_run(f->e, &k->c), 0);
    assert_int_equal(k->out.balance, 300);
}

/* E8: commands that arrive while the last commit is being synced join one
 * open batch, committed when that sync is over, instead of each committing
 * on its own (and waiting for that sync anyway). The disk is made slow
 * beneath SQLite (fault VFS, "syncwait": 300 ms a sync); B, C and D arrive
 * 50 ms apart during A's sync: two batches, not four. */
static void test_commands_join_the_batch_being_synced(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    assert_int_equal(store_fault_configure("syncwait@300"), 0);
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    struct engine_stats s0, s1;
    engine_stats(f->e, &s0);
    struct job *a = job_new(f, TOPUP, f->sims[0].iccid, 100);
    assert_int_equal(engine_submit(f->e, &a->c), 0);
    usleep(100 * 1000);   /* A is committed; its sync runs */
    struct job *later[3];
    for (int i = 0; i < 3; i++) {
        later[i] = job_new(f, TOPUP, f->sims[i + 1].iccid, 100);
        assert_int_equal(engine_submit(f->e, &later[i]->c), 0);
        usleep(50 * 1000);
    }
    wait_done(4);
    engine_stats(f->e, &s1);
    assert_int_equal(s1.commands - s0.commands, 4);
    assert_int_equal(s1.batches - s0.batches, 2);
    assert_int_equal(a->c.err, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(later[i]->c.err, 0);
        assert_int_equal(later[i]->out.balance, 100);
    }
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* on, never trips: no more waiting */
}

/* store_checkpoint: a checkpoint cut short (here by a reader's older
 * snapshot; under load, by the writer's next commits) syncs what it copied
 * into the database when asked to (the checkpointer), which SQLite leaves to
 * the one that reaches the end of the log: that one, on the writer, then has
 * little left to sync. Asked not to (the writer), it leaves that sync to the
 * end. Counted beneath SQLite by the fault VFS (on, never tripping). */
static void test_partial_checkpoint_syncs(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    f->e = NULL;
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);
    struct store *w, *ck, *rd;
    assert_int_equal(store_open(&w, f->t->path, STORE_LOGGED), 0);
    assert_int_equal(store_open(&ck, f->t->path, STORE_LOGGED), 0);
    assert_int_equal(store_open(&rd, f->t->path, STORE_READER), 0);
    assert_int_equal(store_script(w, "CREATE TABLE ck_t(x); INSERT INTO ck_t VALUES (randomblob(20000))"), 0);
    assert_int_equal(store_script(rd, "BEGIN; SELECT count(*) FROM ck_t"), 0);   /* holds this snapshot */
    assert_int_equal(store_script(w, "INSERT INTO ck_t VALUES (randomblob(20000))"), 0);

    long writes, s, s0, s1, s2, s3, injected;
    store_fault_counts(&writes, &s, &injected);
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_COPY), 0);   /* up to the reader's snapshot, as the writer does it */
    store_fault_counts(&writes, &s0, &injected);
    assert_int_equal(s0 - s, 1);                 /* the log before copying (SQLite); not the database */
    assert_int_equal(store_script(rd, "COMMIT; BEGIN; SELECT count(*) FROM ck_t"), 0);   /* a later snapshot */
    assert_int_equal(store_script(w, "INSERT INTO ck_t VALUES (randomblob(20000))"), 0);
    store_fault_counts(&writes, &s0, &injected);
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_SYNC_PARTIAL), 0);   /* up to the reader's snapshot only */
    store_fault_counts(&writes, &s1, &injected);
    assert_int_equal(s1 - s0, 2);                /* the log before copying (SQLite), the database after (ours) */
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_SYNC_PARTIAL), 0);   /* nothing more it may copy: no sync */
    store_fault_counts(&writes, &s2, &injected);
    assert_int_equal(s2, s1);
    assert_int_equal(store_script(rd, "COMMIT"), 0);
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_SYNC_PARTIAL), 0);   /* to the end: SQLite syncs both itself */
    store_fault_counts(&writes, &s3, &injected);
    assert_int_equal(s3 - s2, 2);
    assert_int_equal(injected, 0);
    store_close(rd);
    store_close(ck);
    store_close(w);
}

/* walbuf W6: a checkpoint that copies more than 256 KiB into the database
 * has the kernel start writing it out (sync_file_range) before its sync. */
static void test_checkpoint_starts_writeback(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    f->e = NULL;
    struct store *w, *ck;
    assert_int_equal(store_open(&w, f->t->path, STORE_LOGGED), 0);
    assert_int_equal(store_open(&ck, f->t->path, STORE_LOGGED), 0);
    assert_int_equal(store_script(w, "CREATE TABLE wb_t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                                     "SELECT i + 1 FROM n WHERE i < 64) INSERT INTO wb_t SELECT randomblob(16000) FROM n"),
                     0);   /* about 1 MiB of pages in the log */
    long before = store_walbuf_hints();
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_SYNC_PARTIAL), 0);
    assert_true(store_walbuf_hints() - before >= 3);
    long after = store_walbuf_hints();
    assert_int_equal(store_checkpoint(ck, STORE_CKPT_SYNC_PARTIAL), 0);   /* nothing left to copy: no hint */
    assert_int_equal(store_walbuf_hints(), after);
    store_close(ck);
    store_close(w);
}

STORE_SQL(Q_BULK_ROWS, "SELECT count(*) FROM bulk_t");

/* The writer counts a full log after it handed the batch to the syncer,
 * whose answers may come first: waits (up to 10 s) until it has counted n. */
static int64_t wait_log_full(struct fx *f, int64_t n)
{
    struct engine_stats st;
    for (int i = 0; i < 10000; i++) {
        engine_stats(f->e, &st);
        if ((int64_t)st.log_full >= n)
            break;
        usleep(1000);
    }
    return (int64_t)st.log_full;
}

/* E7: the log is bounded. Commits of 5 MiB each, more than the writer
 * copies of its own accord (ENGINE_LOG_SELF_COPY_BYTES), on a slow disk
 * (20 ms a sync), with the bound at 1 MiB: each finds the log past it, and
 * the log starts over every time instead of growing to 40 MiB (the restart
 * point alone is 128 MiB). */
static void test_log_is_bounded(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    assert_int_equal(store_script(f->t->st, "CREATE TABLE bulk_t(x)"), 0);
    f->t->cf.log_max_mb = 1;
    f->t->cf.batch_max = 1;
    assert_int_equal(store_fault_configure("syncwait@20"), 0);
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    enum { N = 8 };
    struct job *j[N];
    for (int i = 0; i < N; i++) {
        j[i] = job_new(f, BULK, NULL, 0);
        assert_int_equal(engine_submit(f->e, &j[i]->c), 0);
    }
    wait_done(N);
    for (int i = 0; i < N; i++)
        assert_int_equal(j[i]->c.err, 0);
    assert_int_equal(wait_log_full(f, N), N);
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* on, never trips: no more waiting */
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", f->t->path);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size < 6 << 20);   /* one commit */
    assert_int_equal(tu_scalar(f->t, &Q_BULK_ROWS), N * 320);
}

/* E7's sizes are bytes, counted in the database's own pages (2 KiB on a new
 * one). Bound at 8 MiB, commits of about 5 MiB: the first leaves the log
 * under it, the second past it (the writer copies the log and it starts
 * over), and so on: half the commits find the log full. Counted as 4 KiB
 * pages, the bound would be 4 MiB and every commit would. */
static void test_log_bound_is_bytes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(store_page_size(f->t->st), STORE_PAGE_SIZE);
    engine_close(f->e);
    assert_int_equal(store_script(f->t->st, "CREATE TABLE bulk_t(x)"), 0);
    f->t->cf.log_max_mb = 8;
    f->t->cf.batch_max = 1;
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    enum { N = 4 };
    for (int i = 0; i < N; i++) {   /* one at a time: each commit sees the log its predecessor left */
        struct job *j = job_new(f, BULK, NULL, 0);
        counter_reset();
        assert_int_equal(engine_submit(f->e, &j->c), 0);
        wait_done(1);
        assert_int_equal(j->c.err, 0);
    }
    assert_int_equal(wait_log_full(f, N / 2), N / 2);
}

/* A new database gets STORE_PAGE_SIZE; one made with other pages keeps them. */
STORE_SQL(Q_PAGE_SIZE, "PRAGMA page_size");
static void test_page_size(void **state)
{
    (void)state;
    struct tu *t = tu_open();
    assert_int_equal(tu_scalar(t, &Q_PAGE_SIZE), STORE_PAGE_SIZE);
    char old[160];
    snprintf(old, sizeof old, "%s/old.db", t->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA page_size=4096; CREATE TABLE before_us(x); DROP TABLE before_us",
                                  NULL, NULL, NULL),   /* 4 KiB pages, and no table: store_ours takes it */
                     SQLITE_OK);
    sqlite3_close(db);
    struct store *st;
    int applied = 0;
    assert_int_equal(store_open(&st, old, STORE_WRITER), 0);
    assert_int_equal(store_migrate(st, &applied), 0);
    assert_true(applied >= 1);
    assert_int_equal(store_page_size(st), 4096);
    store_close(st);
    tu_close(t);
}

/* E5: a failed COMMIT (fsync refused, injected beneath SQLite) fails the
 * batch with ERR_OUTCOME_UNKNOWN and halts writes until restart. Runs last: fault
 * injection, once on, stays on for the process (with an unreachable N). */
/* cache_mb reaches the connection: what store_cache_size sets is what SQLite keeps. */
STORE_SQL(Q_CACHE_SIZE, "PRAGMA cache_size");
static void test_cache_size(void **state)
{
    struct tu *t = tu_open();
    for (int64_t mib = 2; mib <= 512; mib *= 16) {
        assert_int_equal(store_cache_size(t->st, mib), 0);
        assert_int_equal(tu_scalar(t, &Q_CACHE_SIZE), -mib * 1024);
    }
    tu_close(t);
}

static void test_commit_failure_halts(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    f->e = NULL;
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* on, never trips */
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    struct job *ok = job_new(f, TOPUP, f->sims[0].iccid, 1000);
    assert_int_equal(engine_run(f->e, &ok->c), 0);

    long writes, syncs, injected;
    store_fault_counts(&writes, &syncs, &injected);
    assert_true(syncs > 0);   /* commits do reach fsync */
    assert_int_equal(injected, 0);
    char spec[48];
    snprintf(spec, sizeof spec, "fsync@%ld,once", syncs + 1);
    assert_int_equal(store_fault_configure(spec), 0);
    struct job *bad = job_new(f, TOPUP, f->sims[1].iccid, 1000);
    assert_int_equal(engine_run(f->e, &bad->c), ERR_OUTCOME_UNKNOWN);
    assert_null(bad->c.body);
    store_fault_counts(&writes, &syncs, &injected);
    assert_int_equal(injected, 1);
    assert_int_equal(engine_halted(f->e), 1);
    struct engine_stats st;
    engine_stats(f->e, &st);
    assert_int_equal(st.commits_failed, 1);

    /* Halted: refused at the door; done() is not called. */
    struct job *late = job_new(f, TOPUP, f->sims[2].iccid, 1000);
    assert_int_equal(engine_submit(f->e, &late->c), ERR_WRITES_HALTED);
    assert_int_equal(late->done_calls, 0);
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);
}

static const char *refusal_body(struct cmd *c) { return arena_printf(c->a, "{\"refused\":%d}", c->err); }

/* E3, E4: a refusal kept with its key wrote that row; once the log's sync
 * behind it has failed, the row may never be durable, so the refusal is not
 * final either: outcome unknown, as for a success (a retry under the key
 * gets the stored refusal if it was kept, or runs). A refusal that kept
 * nothing (no key) still stands: it changed nothing. */
static void test_failed_sync_and_kept_refusals(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    f->e = NULL;
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* on, never trips */
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    long writes, syncs, before, injected;
    store_fault_counts(&writes, &syncs, &before);
    char spec[48];
    snprintf(spec, sizeof spec, "fsync@%ld", syncs + 1);
    assert_int_equal(store_fault_configure(spec), 0);
    counter_reset();
    /* The three wait behind the gate and then run as one batch, the first
     * to write anything: the gate's own batch wrote nothing and cost no
     * sync (walbuf.c W8), so the sync that fails is theirs. */
    gate_close(f);
    struct job *kept = job_new(f, TOPUP, f->sims[0].iccid, 50);   /* below topup_min */
    job_key(kept, "topup", "k-refused", 0x51);
    kept->c.refusal = refusal_body;
    struct job *bare = job_new(f, TOPUP, f->sims[1].iccid, 50);
    struct job *ok = job_new(f, TOPUP, f->sims[2].iccid, 1000);
    assert_int_equal(engine_submit(f->e, &kept->c), 0);
    assert_int_equal(engine_submit(f->e, &bare->c), 0);
    assert_int_equal(engine_submit(f->e, &ok->c), 0);
    gate_open(f);
    wait_done(4);
    store_fault_counts(&writes, &syncs, &injected);
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* before any assertion fails */
    assert_int_equal(injected - before, 1);   /* counts are the process's */
    assert_int_equal(ok->c.err, ERR_OUTCOME_UNKNOWN);
    assert_int_equal(bare->c.err, ERR_AMOUNT_TOO_SMALL);
    assert_int_equal(kept->c.err, ERR_OUTCOME_UNKNOWN);
    assert_null(kept->c.body);
}

/* walbuf.c W8: a batch that wrote nothing (here a gate, then a refusal
 * without a key) goes to the syncer like any other, in order, but costs no
 * fsync; the next batch that writes does. */
static void test_idle_batch_costs_no_sync(void **state)
{
    struct fx *f = *state;
    engine_close(f->e);
    f->e = NULL;
    assert_int_equal(store_fault_configure("fsync@1000000000"), 0);   /* on, never trips: it counts */
    assert_int_equal(engine_open(&f->e, f->t->path, &f->t->cf, &f->clk, &f->t->keys), 0);
    long writes, syncs, injected, after;
    struct job *ok = job_new(f, TOPUP, f->sims[0].iccid, 1000);
    assert_int_equal(engine_run(f->e, &ok->c), 0);
    store_fault_counts(&writes, &syncs, &injected);
    counter_reset();
    gate_close(f);
    gate_open(f);
    wait_done(1);
    struct job *bare = job_new(f, TOPUP, f->sims[1].iccid, 50);
    assert_int_equal(engine_run(f->e, &bare->c), ERR_AMOUNT_TOO_SMALL);
    store_fault_counts(&writes, &after, &injected);
    assert_int_equal(after, syncs);
    struct job *more = job_new(f, TOPUP, f->sims[1].iccid, 1000);
    assert_int_equal(engine_run(f->e, &more->c), 0);
    store_fault_counts(&writes, &after, &injected);
    assert_int_equal(after, syncs + 1);
}

/* E7: the writer copies the end of the log only when little is left. */
static void test_writer_copies_little(void **state)
{
    (void)state;
    const int64_t restart = ENGINE_LOG_RESTART_BYTES / STORE_PAGE_SIZE, little = ENGINE_LOG_SELF_COPY_BYTES / STORE_PAGE_SIZE;
    assert_int_equal(engine_writer_copies_log(restart - 1, restart, little, restart - 10, 0), 0);      /* short log */
    assert_int_equal(engine_writer_copies_log(restart, restart, little, restart - little, 0), 1);      /* the rest is little */
    assert_int_equal(engine_writer_copies_log(restart + 5000, restart, little, restart + 4000, 0), 1);
    assert_int_equal(engine_writer_copies_log(restart, restart, little, restart - 10, 1), 0);          /* checkpointer at it */
    assert_int_equal(engine_writer_copies_log(restart, restart, little, restart - little - 1, 0), 0);  /* too much left */
    assert_int_equal(engine_writer_copies_log(restart + 15000, restart, little, 0, 0), 0);             /* one import's log */
    assert_int_equal(engine_writer_copies_log(300, 256, little, 250, 0), 1);   /* a bound below the restart point */
}

/* E7: the checkpointer goes calmly while the log is short, faster past its
 * restart point, and unpaced past half its bound, wherever that is. */
static void test_checkpoint_pace(void **state)
{
    (void)state;
    const int64_t restart = ENGINE_LOG_RESTART_BYTES / STORE_PAGE_SIZE, bound = 4 * restart;
    int64_t calm = engine_checkpoint_pace(0, restart, bound), fast = engine_checkpoint_pace(restart, restart, bound);
    assert_true(calm > 0);
    assert_true(fast > calm);
    assert_int_equal(engine_checkpoint_pace(restart - 1, restart, bound), calm);
    assert_int_equal(engine_checkpoint_pace(bound / 2 - 1, restart, bound), fast);
    assert_int_equal(engine_checkpoint_pace(bound / 2, restart, bound), 0);
    assert_int_equal(engine_checkpoint_pace(bound + 1000, restart, bound), 0);
    /* log_max_mb below the restart point: the restart point is the bound */
    assert_int_equal(engine_checkpoint_pace(200, 512, 512), calm);
    assert_int_equal(engine_checkpoint_pace(256, 512, 512), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_topup, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_same_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_by_reference, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_record_ids_between_batches, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_domain_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_storage_error, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_system_account_cache, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_writer_priority, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commands_join_the_batch_being_synced, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_partial_checkpoint_syncs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_starts_writeback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_log_is_bounded, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_log_bound_is_bytes, fx_setup, fx_teardown),
        cmocka_unit_test(test_page_size),
        cmocka_unit_test_setup_teardown(test_commit_failure_halts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_batch_costs_no_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_and_kept_refusals, fx_setup, fx_teardown),
        cmocka_unit_test(test_cache_size),
        cmocka_unit_test(test_writer_copies_little),
        cmocka_unit_test(test_checkpoint_pace),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}

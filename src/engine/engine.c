/* engine — see engine.h for the invariants E1..E8. */
#include "engine/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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

    pthread_t thread, syncer;
    pthread_mutex_t mu;       /* the queue, halted, stats */
    pthread_cond_t wake;
    struct cmd *head, *tail;
    size_t queued;
    int stopping;
    int halted;               /* E5 */
    struct engine_stats stats;
    struct ledger_cache sys;  /* only touched by the writer thread */
    int64_t look_first_until; /* the writer's: E4 lookups before every command until then (s) */

    /* E3: committed batches waiting for the log sync, in commit order. */
    pthread_mutex_t smu;
    pthread_cond_t swake;     /* the syncer: work, or stop */
    pthread_cond_t synced;    /* readers in engine_read_fence */
    struct cmd *shead, *stail;
    uint64_t sseq;            /* the last batch handed to the syncer */
    int sstop;
    _Atomic uint64_t visible;   /* the last batch whose COMMIT has begun */
    _Atomic uint64_t durable;   /* the last batch known durable (or failed) */
    _Atomic int log_failed;     /* E5: a log sync failed */
    int sbusy;                  /* under mu: a committed batch is not durable yet (E8) */

    /* Checkpoints run beside the writer, on a connection of their own. */
    struct store *ck;
    pthread_t checkpointer;
    pthread_mutex_t cmu;
    pthread_cond_t cwake;
    pthread_cond_t cdone;     /* a run ended: for the writer, the log past its bound */
    int cwant, cstop, cbusy;
    int64_t casked;           /* the writer's: log pages at the last checkpoint it asked for or ran */
    int64_t ccopied;          /* log pages the checkpointer had copied when it last finished */
    _Atomic int64_t cpace;    /* the checkpointer's pace, bytes/s (walbuf.c W7); 0: none */
    int64_t log_max_pages;    /* E7: the log's bound */
    int64_t restart_pages;    /* E7: where the log starts over: ENGINE_LOG_RESTART_BYTES, or the bound if less */
    int64_t little_pages;     /* E7: ENGINE_LOG_SELF_COPY_BYTES */
    int64_t ckpt_pages;       /* CHECKPOINT_BYTES */
};

/* The checkpointer is asked to copy the log into the database every
 * CHECKPOINT_BYTES of it: a page the writer dirtied several times
 * meanwhile (a SIM's leaf, the end of an append-only table) is copied and
 * synced once, and there are fewer runs, each ending with a sync of the
 * database. Against a run after every 256 pages (every batch): HTTP top-ups
 * +14.5% at 100k SIMs (paired runs 1.107-1.174), +18-22% at 10M.
 * The log starts over only at a commit that finds it entirely copied, and
 * the writer keeps committing meanwhile; so past ENGINE_LOG_RESTART_BYTES
 * (128 MiB) the checkpointer is asked again after every commit, and the
 * writer copies the little that is left itself, between two batches, when
 * the checkpointer is idle: the next commit then starts the log over unless
 * a reader still holds an old snapshot (then it tries again).
 * Each start-over costs one burst: the checkpointer's back-to-back runs, each
 * ending with a sync of the database, slow the log's syncs that every commit
 * waits on, and the writer's own copy holds it for two syncs. So the restart
 * point sets how often the tails come. Measured at half of peak (16.8k
 * top-ups/s open loop, 100k SIMs, p99 of three paired runs each): restart at
 * 512 MiB 23-26 ms (a burst every 2.4 s at ~13 KB of log per top-up, 30-60 ms
 * each), 256 MiB 16-23 ms, 128 MiB 9.4-12.3 ms, 96 MiB 11-14 ms; at 64 MiB,
 * the checkpoint interval itself, 49-53 ms (every checkpoint becomes a chase),
 * at 1 and 2 GiB 31-48 and 100-145 ms (the log is then mostly new file, whose
 * syncs wait on block allocation). Peak and 10M rates did not move (paired
 * runs: 100k 36.3k/37.6k against 33.3k/37.2k, 10M 23.4k/24.6k against 23.8k).
 * The log then peaks near 180 MB at 100k SIMs; at 10M under a closed loop at
 * peak it grows past the restart point because the checkpointer copies
 * random pages more slowly than the writer fills them: log_max_mb bounds it
 * (tend_log). */
#define CHECKPOINT_BYTES (INT64_C(64) << 20)

/* The checkpointer copies at most this many bytes a second (walbuf.c W7)
 * while the log is under half its bound (log_max_mb); past that, as fast as
 * it can, so that the log cannot reach the bound on its account. A run
 * copies some 100 MB, and unpaced it took a CPU in a burst during which the
 * HTTP threads, left the other, answered late. At half of peak (18k
 * top-ups/s open loop, 100k SIMs, paired runs): at 600 MiB/s p99 3.9/5.6
 * against 8.4/5.3 ms and p99.9 7.1/10.5 against 25.2/10.8; at 300 MiB/s
 * 3.7/5.6 against 9.0/11.2 and 6.5/8.5 against 16.8/18.4. But 300 cost the
 * closed-loop peak 11-12% (31.4/35.7k against 36.1/40.0k: the copy no
 * longer kept up); 600 did not (36.5/36.1k against 34.2/38.1k), nor the 10M
 * rate (24.8/28.6k against 26.6/25.8k). Pacing only while the log is short
 * of its restart point left the half-peak bursts unpaced: they come after
 * it.
 *
 * Short of the restart point, the slower CHECKPOINT_PACE_CALM. At 600 MiB/s
 * a run still copied 64 MiB of log in 45-60 ms, a CPU's worth, and traced at
 * half of peak (21.3k top-ups/s open loop, 100k SIMs, right after a sweep and
 * a closed-loop peak as `make bench` runs them; each request's latency
 * against the engine's commits, syncs and checkpoint runs) the requests over
 * 10 ms came mostly during those runs: batches fell from ten per 10 ms to one
 * or two, at 44-80 us a command instead of 18. At 150 MiB/s, six alternating
 * pairs on a quiet host: no request over 10 ms during a run (0-146 before),
 * p99 2.6, 2.4, 3.4, 2.5, 2.8, 2.5 against 3.3, 3.8, 3.1, 4.5, 2.8, 6.9 ms;
 * the closed-loop peak before them 48.2-53.7k against 45.6-57.0k. The runs of
 * the restart chase (tend_log) and of a log on its way to its bound keep
 * 600: 150 MiB/s up to half the bound cost the 10M rate 6% (37.3/35.8k
 * against 39.6/38.0k: there the copy is what limits it); short of the
 * restart point only, four pairs at 10M read 38.3, 40.0, 38.9 and 39.7k
 * against 41.8, 37.7, 38.4 and 41.5k. */
#define CHECKPOINT_PACE_CALM (INT64_C(150) << 20)
#define CHECKPOINT_PACE (INT64_C(600) << 20)

int64_t engine_checkpoint_pace(int64_t pages, int64_t restart, int64_t bound)
{
    if (pages >= bound / 2)
        return 0;   /* the bound comes first, wherever the restart point is */
    return pages < restart ? CHECKPOINT_PACE_CALM : CHECKPOINT_PACE;
}

/* E7. Only a little: after one big commit (an import of 1M SIMs writes 500 MB
 * of log at once) the writer would otherwise copy all of it, for seconds,
 * while commands wait and new ones are refused (E6). */
int engine_writer_copies_log(int64_t pages, int64_t restart, int64_t little, int64_t ckpt_copied, int ckpt_busy)
{
    return pages >= restart && !ckpt_busy && pages - ckpt_copied <= little;
}

STORE_SQL(SQL_IDEM_GET,
          "SELECT request_hash, status, body, sign_off, sign_len, COALESCE(topup_id, 0) FROM idempotency "
          "WHERE scope = ? AND key = ?");
STORE_SQL(SQL_IDEM_PUT,
          "INSERT INTO idempotency(scope, key, request_hash, status, body, sign_off, sign_len, created_at, topup_id) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");

/* E4: answers from the stored row; returns 1 when the command is answered. */
static int replay(struct tx *tx, struct cmd *c)
{
    struct store *st = tx->st;
    struct store_q *q;
    int rc = store_one(st, &q, &SQL_IDEM_GET, "ss", c->idem_scope, c->idem_key);
    if (rc == ERR_NOT_FOUND)
        return 0;
    if (rc) {
        c->err = rc;
        return 1;
    }
    size_t n;
    int64_t ref = 0;
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
        ref = store_i64(q, 5);
    }
    store_end(q);
    if (ref && !c->render) {   /* the same request (its hash) comes by the same route, which renders */
        log_error("engine: an answer stored by reference, and no renderer for it");
        c->err = ERR_INTERNAL;
    } else if (ref && (rc = c->render(tx, ref, &c->body, &c->body_len))) {
        c->err = rc == ERR_NOT_FOUND ? ERR_INTERNAL : rc;
    }
    return 1;
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

#define RERUN_SAFELY (-1)

/* E4: a refusal exec gave is final for its key, as a success is (a 4xx, not
 * one about the key itself or a slice's); a 5xx may be retried. */
static int refusal_kept(const struct cmd *c)
{
    int status = err_status(c->err);
    return c->refusal && c->idem_key && !c->replayed && !c->advance && status >= 400 && status < 500 &&
           c->err != ERR_IDEMPOTENCY_KEY_REUSED && c->err != ERR_IDEMPOTENCY_IN_FLIGHT && !err_is_fatal(c->err);
}

static int keep_refusal(struct engine *e, struct cmd *c, int64_t now)
{
    const char *body = c->refusal(c);
    return store_exec(e->st, &SQL_IDEM_PUT, "ssbdsiiiz", c->idem_scope, c->idem_key, c->req_hash,
                      sizeof c->req_hash, err_status(c->err), body ? body : "", (int64_t)0, (int64_t)0, now,
                      (int64_t)0 /* no row: the body is the answer */);
}

/* E4 without a lookup per command. A key is looked up before its command
 * runs only on a batch's safe run and for ENGINE_LOOK_FIRST_SECONDS after a repeat
 * made a batch run again; otherwise the command runs and its key's INSERT,
 * which checks the unique index anyway, finds a repeat: the batch is then
 * rolled back and run again with savepoints and lookups, and the repeat is
 * answered from its stored row, as before. The lookup cost the writer 5.8k
 * instructions a top-up (of 90.6k, callgrind). A client that repeats keys
 * costs one re-run a batch at most, and then not for ENGINE_LOOK_FIRST_SECONDS:
 * a flood of repeats is looked up like before, never re-run batch after batch.
 * Paired closed-loop runs at 100k SIMs, 512 connections: 1.13, 1.07, 1.12,
 * 0.98, 1.16 (median +12%); the writer 87.4k -> 81.8k instructions a top-up. */

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
    int look_first = safe || c->look_first || now < e->look_first_until;   /* E4, E9 */
    if (!(c->idem_key && look_first && replay(&tx, c))) {
        c->answer_ref = 0;
        c->more = 0;
        c->err = c->exec(&tx, c);
        int by_ref = c->answer_ref && c->render;
        if (!c->err && c->idem_key && !c->more) {   /* E9: a slice before the last stores no key */
            c->err = store_exec(e->st, &SQL_IDEM_PUT, "ssbdsiiiz", c->idem_scope, c->idem_key, c->req_hash,
                                sizeof c->req_hash, c->status, by_ref || !c->body ? "" : c->body,
                                (int64_t)c->sign_off, (int64_t)c->sign_len, now, by_ref ? c->answer_ref : 0);
            if (c->err == ERR_CONSTRAINT && !look_first) {   /* a repeat: run the batch again, keys looked up first */
                e->look_first_until = now + ENGINE_LOOK_FIRST_SECONDS;
                pthread_mutex_lock(&e->mu);
                e->stats.repeats_rerun++;
                pthread_mutex_unlock(&e->mu);
                return RERUN_SAFELY;
            }
        } else if (c->err && c->idem_key && !look_first && !err_is_fatal(c->err) &&
                   store_total_changes(e->st) == written) {
            /* Refused, having written nothing: a repeat of a request that
             * succeeded before is answered as it was, whatever changed since. */
            int err = c->err;
            const char *param = c->err_param;
            reset_result(c, 0);
            if (!replay(&tx, c))
                c->err = err, c->err_param = param;
        }
    }
    if (c->err && err_is_fatal(c->err))
        return c->err;
    if (!safe) {
        if (c->err && store_total_changes(e->st) != written)
            return RERUN_SAFELY;
        /* Looked up above (look_first, or the refusal's replay): not stored yet. */
        if (refusal_kept(c) && (rc = keep_refusal(e, c, now)))
            return err_is_fatal(rc) ? rc : RERUN_SAFELY;
        return 0;
    }
    if (c->err)
        ledger_cache_clear(&e->sys);
    rc = c->err ? store_rollback_to(e->st) : store_release(e->st);
    if (!rc && refusal_kept(c) && (rc = keep_refusal(e, c, now)) && !err_is_fatal(rc))
        c->err = rc;   /* in the batch's transaction, outside the command's undone savepoint */
    else if (rc)
        c->err = rc;
    return err_is_fatal(rc) ? rc : 0;
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

static void halt(struct engine *e, const char *why)
{
    log_error("%s; refusing writes until restart", why);
    pthread_mutex_lock(&e->mu);
    e->halted = 1;
    e->stats.commits_failed++;
    pthread_mutex_unlock(&e->mu);
}

/* E3: the syncer answers committed batches once the log is synced past them. */
static void to_syncer(struct engine *e, struct cmd *batch, uint64_t seq)
{
    struct cmd *last = batch;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&e->mu);
    e->sbusy = 1;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&e->smu);
    if (e->stail)
        e->stail->next = batch;
    else
        e->shead = batch;
    e->stail = last;
    e->sseq = seq;
    pthread_cond_signal(&e->swake);
    pthread_mutex_unlock(&e->smu);
}

/* Every write waits on the writer and then on the syncer; on a box whose
 * CPUs are busy with HTTP workers, the checkpointer and clients, a batch
 * that waits for a CPU keeps everyone in it waiting. A lower nice value
 * gives these two threads the CPU first (Linux: nice is per thread). At half
 * of peak on 2 cores, p99 of three paired runs 9.3/10.3/12.1 ms against
 * 11.2/12.2/12.3 at 0 (loadgen open loop, 16.8k top-ups/s); -10 did worse
 * (11.4-17.1 ms): the HTTP workers then wait too long to hand over work. */
static void raise_priority(struct engine *e, const char *who)
{
    if (!e->cf->writer_nice || !setpriority(PRIO_PROCESS, (id_t)gettid(), (int)e->cf->writer_nice))
        return;
    static _Atomic int warned;
    if (!atomic_exchange(&warned, 1))
        log_warn("engine: the %s keeps nice 0, not writer_nice=%lld (%s): give topupd CAP_SYS_NICE or LimitNICE=",
                 who, (long long)e->cf->writer_nice, strerror(errno));
}

static void *syncer(void *arg)
{
    struct engine *e = arg;
    pthread_setname_np(pthread_self(), "topupd-sync");
    raise_priority(e, "syncer");
    for (;;) {
        pthread_mutex_lock(&e->smu);
        while (!e->shead && !e->sstop)
            pthread_cond_wait(&e->swake, &e->smu);
        struct cmd *list = e->shead;
        uint64_t seq = e->sseq;
        e->shead = e->stail = NULL;
        pthread_mutex_unlock(&e->smu);
        if (!list)
            break;
        /* One sync covers every batch committed before it was called. */
        if (!atomic_load(&e->log_failed) && store_log_sync(e->st)) {
            atomic_store(&e->log_failed, 1);
            halt(e, "syncing the log failed");
        }
        if (atomic_load(&e->log_failed))   /* a refusal that kept nothing changed nothing: it stands */
            for (struct cmd *c = list; c; c = c->next)
                if (!c->err || refusal_kept(c))   /* E4: a kept refusal is final only once its row is durable */
                    reset_result(c, ERR_OUTCOME_UNKNOWN);
        pthread_mutex_lock(&e->smu);
        atomic_store(&e->durable, seq);
        pthread_cond_broadcast(&e->synced);
        int idle = !e->shead;
        pthread_mutex_unlock(&e->smu);
        if (idle) {   /* E8: the writer may commit its open batch */
            pthread_mutex_lock(&e->mu);
            if (atomic_load(&e->durable) == e->stats.batches)
                e->sbusy = 0;
            pthread_cond_signal(&e->wake);
            pthread_mutex_unlock(&e->mu);
        }
        finish(list);
    }
    return NULL;
}

static void *checkpointer(void *arg)
{
    struct engine *e = arg;
    pthread_setname_np(pthread_self(), "topupd-ckpt");
    store_pace_writes(&e->cpace);
    pthread_mutex_lock(&e->cmu);
    for (;;) {
        while (!e->cwant && !e->cstop)
            pthread_cond_wait(&e->cwake, &e->cmu);
        if (e->cstop)
            break;
        e->cwant = 0;
        e->cbusy = 1;
        pthread_mutex_unlock(&e->cmu);
        int rc = store_checkpoint(e->ck, STORE_CKPT_SYNC_PARTIAL);
        pthread_mutex_lock(&e->cmu);
        e->cbusy = 0;
        e->ccopied = store_checkpointed(e->ck);
        pthread_cond_broadcast(&e->cdone);
        /* The database file may have lost writes: writes halt, as after a failed
         * sync (E5). Reads go on: every page the run copied is still in the
         * log, which SQLite reads first and starts over only after a run that
         * succeeded, so nothing durable depends on what the file lost. */
        if (rc) {
            halt(e, "checkpoint failed");
            break;
        }
    }
    pthread_mutex_unlock(&e->cmu);
    return NULL;
}

/* After each commit, on the writer: keep the log short, waiting on it only
 * past its bound (E7): then the writer lets the checkpointer's run end and
 * copies the rest itself, so that the next commit starts the log over.
 * The checkpointer copies random pages of a large database more slowly than
 * the writer fills the log with them (10M SIMs, closed loop: about 36k
 * pages/s against 35k, the disk's random writes the limit), so the log was
 * never all copied at once and never started over: it grew by 100 MB/s for as long as the load lasted, every commit appending to
 * new file (a slower sync) and every read searching a longer log. Bounded at
 * 512 MiB (closed loop, 512 connections, 10 s warm-up then 20 s, 10M SIMs):
 * 15.9-17.3k -> 22.3-23.7k top-ups/s, p99 44-48 -> 34-37 ms, the log at
 * 516 MB instead of 3.1-3.4 GB; 100k SIMs never reach it (41.6k/s, the log
 * at 197 MB). An earlier form that only waited for the checkpointer, with
 * the bound at 128 MiB: 19.5k, p99 280 ms (the CPUs idle while the writer
 * waits); at 256 MiB: 20.8-23.6k, p99 228 ms. */
static void tend_log(struct engine *e)
{
    int64_t pages = store_log_pages(e->st);
    atomic_store(&e->cpace, engine_checkpoint_pace(pages, e->restart_pages, e->log_max_pages));
    int over = pages >= e->log_max_pages;
    if (pages < e->casked)
        e->casked = 0;   /* the log started over */
    if (!over && pages < e->casked + e->ckpt_pages && pages < e->restart_pages)
        return;          /* too little new since the last checkpoint to start another */
    e->casked = pages;
    pthread_mutex_lock(&e->cmu);
    if (over)                  /* the bound: the checkpointer's run ends, then the writer copies the rest */
        while (e->cbusy)
            pthread_cond_wait(&e->cdone, &e->cmu);
    int self = over || engine_writer_copies_log(pages, e->restart_pages, e->little_pages, e->ccopied, e->cbusy);
    e->cwant = !self;          /* one copy at a time */
    if (!self)
        pthread_cond_signal(&e->cwake);
    pthread_mutex_unlock(&e->cmu);
    if (over) {
        pthread_mutex_lock(&e->mu);
        e->stats.log_full++;
        pthread_mutex_unlock(&e->mu);
    }
    if (self && store_checkpoint(e->st, STORE_CKPT_COPY))
        halt(e, "checkpoint failed");
}

static int run_list(struct engine *e, struct cmd *c, int64_t now, int safe)
{
    int fatal = 0;
    for (; c && !fatal; c = c->next)
        fatal = run_one(e, c, now, safe);
    return fatal;
}

/* Takes up to `room` queued commands; returns the first (NULL: none). Under e->mu. */
static struct cmd *take(struct engine *e, size_t room)
{
    struct cmd *first = e->head, *last = first;
    if (!first || !room)
        return NULL;
    size_t n = 1;
    while (last->next && n < room) {
        last = last->next;
        n++;
    }
    e->head = last->next;
    if (!e->head)
        e->tail = NULL;
    last->next = NULL;
    e->queued -= n;
    e->stats.commands += n;
    return first;
}

/* E8: while the last commit is not yet durable, commands that arrive join
 * the open batch instead of waiting for a commit of their own: its sync
 * would only start after the one running anyway. Returns the commands
 * taken (NULL: commit now). */
/* E8: commands for the open batch, or NULL to commit it now. While the
 * syncer is busy, whatever arrives joins; once it is idle, whatever arrives
 * before `until` (monotonic us; 0: no delay) still does, while the batch has
 * fewer than COMMIT_DELAY_ENOUGH commands.
 *
 * Why the delay: a sync of the log takes 0.1 ms here, so at a steady 16-19k
 * top-ups/s (half of peak) the syncer was idle almost every time a batch was
 * ready, and batches of a few commands each rewrote the pages all of them
 * append to (topups, transfers, records, answers, the key index). topupd
 * then spent 73-86 us of CPU and wrote 35-50 KB per top-up, against 45 us
 * and 9 KB at peak: half of peak loaded the box like 80% of it. Held open
 * 1 ms, at 19k/s: 57-62 us and 18-21 KB (0.5 ms at 16k/s: 66 us, 23 KB;
 * 2 ms: 60 us, 16 KB). p99 stays within the run-to-run noise (7.9-15.8
 * against 7.5-12.1 ms, four pairs); p50 goes up by the delay (0.7 -> 1.3 ms).
 * Only a batch that began with two commands or more is held, so a lone
 * client waits for nothing; and only while it is small: at peak (closed
 * loop, 512 connections) holding every batch for 1 ms cost 2-8% of the rate,
 * with the bound 34.7/34.8k against 34.5/34.5k top-ups/s and 44.7/43.8
 * against 45.4/46.3 us of topupd's CPU per top-up. */
#define COMMIT_DELAY_ENOUGH 32   /* a batch this big is held no longer: its pages are shared enough */

static struct cmd *join_open_batch(struct engine *e, size_t n, size_t room, int64_t until)
{
    struct cmd *more = NULL;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping && !e->halted) {
        int64_t left = until && n < COMMIT_DELAY_ENOUGH ? until - clock_mono_us() : 0;
        if (e->head && (e->sbusy || left > 0)) {
            more = take(e, room);
            break;
        }
        if (!e->sbusy && left <= 0)
            break;
        if (e->sbusy) {
            pthread_cond_wait(&e->wake, &e->mu);
        } else {
            struct timespec at = clock_after_us(CLOCK_MONOTONIC, left);
            pthread_cond_timedwait(&e->wake, &e->mu, &at);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return more;
}

/* Ledger L8: the system accounts' totals the batch moved, written once. */
static int flush_ledger(struct engine *e)
{
    struct tx tx = {.st = e->st, .cf = e->cf, .sys = &e->sys};
    return ledger_flush(&tx);
}

static void run_batch(struct engine *e, struct cmd *batch, size_t n)
{
    int64_t now = clock_now(e->clk);
    int64_t until = n >= 2 && e->cf->commit_delay_us ? clock_mono_us() + e->cf->commit_delay_us : 0;   /* E8 */
    e->sys.defer = 1;   /* no savepoints: a failure re-runs the whole batch */
    e->sys.next_record = 0;   /* read again under this batch's write lock (record.h) */
    int fatal = store_begin(e->st);
    if (!fatal)
        fatal = run_list(e, batch, now, 0);
    struct cmd *last = batch;
    while (last->next)
        last = last->next;
    while (!fatal && n < (size_t)e->cf->batch_max) {
        struct cmd *more = join_open_batch(e, n, (size_t)e->cf->batch_max - n, until);
        if (!more)
            break;
        last->next = more;
        fatal = run_list(e, more, now, 0);
        for (; last->next; last = last->next)
            n++;
    }
    if (!fatal && flush_ledger(e))
        fatal = RERUN_SAFELY;   /* L8: a sum the UPDATE refuses (a total past int64) fails its own command alone */
    if (fatal == RERUN_SAFELY) {
        store_rollback(e->st);
        ledger_cache_clear(&e->sys);
        e->sys.defer = 0;   /* a command's savepoint must hold all it wrote */
        for (struct cmd *c = batch; c; c = c->next)
            reset_result(c, 0);
        fatal = store_begin(e->st);
        if (!fatal)
            fatal = run_list(e, batch, now, 1);
    }
    pthread_mutex_lock(&e->mu);
    uint64_t seq = ++e->stats.batches;
    pthread_mutex_unlock(&e->mu);
    /* Readers may see this batch from the moment COMMIT begins (fence). */
    atomic_store(&e->visible, seq);
    if (!fatal && store_commit(e->st)) {
        /* E5: after a failed COMMIT the state of the disk is unknown. */
        halt(e, "commit failed");
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
    to_syncer(e, batch, seq);
    if (!fatal)
        tend_log(e);
}

static void *writer(void *arg)
{
    struct engine *e = arg;
    pthread_setname_np(pthread_self(), "topupd-writer");
    raise_priority(e, "writer");
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->head && !e->stopping)
            pthread_cond_wait(&e->wake, &e->mu);
        if (!e->head) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        size_t before = e->queued;
        struct cmd *batch = take(e, (size_t)e->cf->batch_max);
        size_t n = before - e->queued;
        int halted = e->halted;
        uint64_t seq = halted ? ++e->stats.batches : 0;
        pthread_mutex_unlock(&e->mu);
        if (halted) {
            for (struct cmd *c = batch; c; c = c->next)
                c->err = ERR_WRITES_HALTED;
            atomic_store(&e->visible, seq);
            to_syncer(e, batch, seq);
        } else {
            run_batch(e, batch, n);
        }
    }
    return NULL;
}

/* Stops the syncer (after it answered everything) and the checkpointer, of
 * which the first `started` were started, and closes both connections. */
static void stop_helpers(struct engine *e, int started)
{
    if (started >= 1) {
        pthread_mutex_lock(&e->smu);
        e->sstop = 1;
        pthread_cond_signal(&e->swake);
        pthread_mutex_unlock(&e->smu);
        pthread_join(e->syncer, NULL);
    }
    if (started >= 2) {
        pthread_mutex_lock(&e->cmu);
        e->cstop = 1;
        pthread_cond_signal(&e->cwake);
        pthread_mutex_unlock(&e->cmu);
        pthread_join(e->checkpointer, NULL);
    }
    store_close(e->ck);
    store_close(e->st);
    e->ck = e->st = NULL;
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
    store_prefetch(db_path);
    int rc = store_open(&e->st, db_path, STORE_LOGGED);
    if (!rc)
        rc = store_cache_size(e->st, cf->cache_mb);
    if (!rc)
        rc = store_log_attach(e->st);
    int64_t page = rc ? 0 : store_page_size(e->st);
    if (!rc && page <= 0)
        rc = ERR_STORAGE;
    if (!rc) {   /* E7's sizes, in this database's pages */
        e->log_max_pages = (cf->log_max_mb << 20) / page;
        e->restart_pages = ENGINE_LOG_RESTART_BYTES / page;
        if (e->restart_pages > e->log_max_pages)
            e->restart_pages = e->log_max_pages;
        e->little_pages = ENGINE_LOG_SELF_COPY_BYTES / page;
        e->ckpt_pages = CHECKPOINT_BYTES / page;
    }
    if (!rc)
        rc = store_open(&e->ck, db_path, STORE_LOGGED);
    if (rc) {
        store_close(e->st);
        store_close(e->ck);
        free(e);
        return rc;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t mono;   /* join_open_batch's deadline is on the monotonic clock */
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    pthread_cond_init(&e->wake, &mono);
    pthread_condattr_destroy(&mono);
    pthread_mutex_init(&e->smu, NULL);
    pthread_cond_init(&e->swake, NULL);
    pthread_cond_init(&e->synced, NULL);
    pthread_mutex_init(&e->cmu, NULL);
    pthread_cond_init(&e->cwake, NULL);
    pthread_cond_init(&e->cdone, NULL);
    int started = !pthread_create(&e->syncer, NULL, syncer, e);
    started += started && !pthread_create(&e->checkpointer, NULL, checkpointer, e);
    started += started == 2 && !pthread_create(&e->thread, NULL, writer, e);
    if (started < 3) {
        e->stopping = 1;
        stop_helpers(e, started);
        engine_close(e);
        return ERR_INTERNAL;
    }
    *out = e;
    return 0;
}

int engine_read_fence(struct engine *e)
{
    uint64_t seen = atomic_load(&e->visible);
    if (atomic_load(&e->durable) < seen) {
        pthread_mutex_lock(&e->smu);
        while (atomic_load(&e->durable) < seen)
            pthread_cond_wait(&e->synced, &e->smu);
        pthread_mutex_unlock(&e->smu);
    }
    return atomic_load(&e->log_failed) ? ERR_STORAGE : 0;
}

/* E6: bounded by count, and by time: when the oldest waiting command has
 * waited longer than queue_delay_ms, work is arriving faster than it can be
 * done, and admitting more would only make everyone late. Under e->mu. */
static int admits(struct engine *e, int64_t now_ms)
{
    return e->stopping ? ERR_SHUTTING_DOWN
         : e->halted   ? ERR_WRITES_HALTED
         : e->queued >= (size_t)e->cf->queue_max ? ERR_OVERLOADED
         : e->head && now_ms - e->head->queued_at > e->cf->queue_delay_ms ? ERR_OVERLOADED : 0;
}

int engine_admits(struct engine *e)
{
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&e->mu);
    int rc = admits(e, now);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

static int enqueue(struct engine *e, struct cmd *c, int again)
{
    c->next = NULL;
    c->err = 0;
    c->queued_at = clock_mono_ms();
    pthread_mutex_lock(&e->mu);
    int rc = !again ? admits(e, c->queued_at)
           : e->stopping ? ERR_SHUTTING_DOWN
           : e->halted ? ERR_WRITES_HALTED : 0;
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

int engine_submit(struct engine *e, struct cmd *c) { return enqueue(e, c, 0); }

int engine_resubmit(struct engine *e, struct cmd *c) { return enqueue(e, c, 1); }

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
    stop_helpers(e, 2);
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    engine_stop(e);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->smu);
    pthread_cond_destroy(&e->swake);
    pthread_cond_destroy(&e->synced);
    pthread_mutex_destroy(&e->cmu);
    pthread_cond_destroy(&e->cwake);
    pthread_cond_destroy(&e->cdone);
    free(e);
}

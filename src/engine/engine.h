/* engine — the one writer. Mutations are commands; a single thread executes
 * them in group-committed transactions and replies only after the commit is
 * durable. Commit and sync are pipelined: while the syncer thread fsyncs the
 * log behind batch n, the writer already executes batch n+1.
 *
 * Invariants
 *  E1. Only the engine's thread writes to the database (store S2).
 *  E2. Each command acts as if in its own savepoint inside the batch's
 *      transaction: a domain error undoes that command alone; the batch goes
 *      on. (Fast path: no savepoint; a command failing after it wrote makes
 *      the engine roll the batch back and run it again with real savepoints.)
 *  E3. A command's done() is called only after the batch's COMMIT returned
 *      and a log sync begun after it returned 0 (durable, store S3), or with
 *      an error after a rollback; batches are answered in commit order. No
 *      reply is ever sent for an effect that is not durable, and no read
 *      either: a reader that may have seen a committed batch waits for its
 *      sync before answering (engine_read_fence).
 *  E4. A command with an idempotency key stores (scope, key, request hash,
 *      status, body) in its own savepoint, so the key is durable exactly when
 *      the effect is; a repeat is answered from the stored row byte for byte.
 *      A command whose answer can be rendered again from a row it wrote (a
 *      top-up's, from its topups row) stores that row's id instead of the
 *      body, and a repeat's body is rendered from it (cmd.render). The key
 *      is looked up before the command runs only when a repeat is likely
 *      (ENGINE_LOOK_FIRST_SECONDS); otherwise a repeat shows as its key's
 *      INSERT failing, and the batch runs again, each command in its
 *      savepoint and its key looked up first (E2's safe run). A refusal
 *      exec gives (a 4xx: cmd.refusal renders it) is stored with the key
 *      too, after its savepoint is undone: it is as final as a success, so
 *      a repeat cannot be applied later, nor another request under the key.
 *  E5. A storage error fails the whole batch (every command gets
 *      ERR_STORAGE: rolled back, nothing applied). A failed COMMIT (fsync)
 *      gets ERR_OUTCOME_UNKNOWN, because what reached the disk is no longer
 *      known (recovery may replay it; a retry with the same key tells), and
 *      halts writes until restart, as PostgreSQL does. A failed log sync does
 *      the same for every success waiting on it, and for every refusal kept
 *      with its key (E4: its row may not be durable, so neither is its
 *      finality), and from then on reads answer ERR_STORAGE: what they
 *      would show may not be durable.
 *  E6. The queue is bounded, by count (queue_max) and by waiting time
 *      (queue_delay_ms of its oldest command): engine_submit() refuses with
 *      ERR_OVERLOADED rather than queue without limit or keep everyone late.
 *  E7. The log starts over near ENGINE_LOG_RESTART_BYTES: past it, the writer
 *      copies the end of the log into the database itself, between batches,
 *      but only the little the checkpointer left (ENGINE_LOG_SELF_COPY_BYTES
 *      at most, the checkpointer idle); a big commit's log (an import) is
 *      copied by the checkpointer, never while commands wait on the writer,
 *      unless the log is past its bound. The log is bounded: a commit that
 *      leaves it past log_max_mb makes the writer wait for the checkpointer's
 *      run in progress, then copy the rest itself, whatever its size, so that
 *      the next commit starts it over: the log cannot grow faster than it is
 *      copied.
 *  E8. A batch stays open while the previous commit is not yet durable:
 *      commands arriving meanwhile join it (up to batch_max) rather than
 *      commit on their own, since their sync could only begin after the one
 *      running. It commits once the syncer is idle (at once when it already
 *      is), so there is one commit per sync, not several. A batch that
 *      began with two commands or more also stays open until commit_delay_us
 *      after it began, while it is small, for the commands that concurrency
 *      says are coming (PostgreSQL's commit_delay): it never makes anyone
 *      wait longer than that, and takes in nothing once it is over.
 *  E9. A long command (an import) runs in slices, one a batch: its exec does
 *      a slice and sets more; done() then advances the command's state and
 *      queues it again (engine_resubmit), so the writer spends at most one
 *      slice on it between other commands' batches. Its key is looked up
 *      before the first slice (look_first: a repeat or a reused key changes
 *      nothing) and stored with the last, with the whole answer. A failure
 *      or a crash between slices leaves the slices before it committed and
 *      nothing answered (or, for a failure, ERR_INCOMPLETE: the server's
 *      done() says so); each slice must therefore be one a retry can run
 *      again (an import's rows are: an identical SIM counts as existing).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/tx.h"

struct engine;
struct clock;

struct cmd {
    /* Set by the submitter. exec runs on the writer as if in a savepoint (E2);
     * on success it sets status and body (allocated from tx->a == cmd->a).
     * It may run twice for one batch (after a rollback, E2), so it must have
     * no effect outside the database and tx->a. */
    int (*exec)(struct tx *tx, struct cmd *c);
    void (*done)(struct cmd *c);      /* after the sync or a failure, on the engine's syncer thread */
    void *arg;
    struct arena *a;
    const char *principal;
    const char *idem_scope, *idem_key;   /* NULL: no idempotency */
    unsigned char req_hash[32];
    /* E4: renders the body of the answer exec gave when it set answer_ref
     * to ref, byte for byte, from the database (on the writer, for a repeat). */
    int (*render)(struct tx *tx, int64_t ref, const char **body, size_t *len);
    /* Set by exec instead of a body, optionally: renders the body from what
     * exec left in arg, on the submitter's thread once done() has run, so
     * that the one writer spends nothing on formatting. */
    void (*compose)(struct cmd *c);
    /* E9, for a command that runs in slices: called from done() once a slice
     * is durable, before the next is queued (engine_resubmit); advances the
     * command's own state in arg past that slice. */
    void (*advance)(struct cmd *c);
    int look_first;           /* look the key up before exec runs (E4): a sliced command's first slice */
    /* E4 for refusals: the body of the answer to c->err (a 4xx of exec's)
     * as the submitter sends it, byte for byte, from c->a; stored with the
     * key, so that a repeat gets that refusal again and another request
     * under the key is idempotency_key_reused. NULL: refusals are not kept. */
    const char *(*refusal)(struct cmd *c);

    /* Results. */
    int err;                  /* enum err; 0 on success */
    const char *err_param;    /* offending field, if any */
    int status;
    const char *body;
    size_t body_len;
    size_t sign_off, sign_len;   /* legacy: a receipt inside body to sign when answering (rows stored
                                    before receipts were signed on fetch; 0 for every new command) */
    int replayed;             /* answered from a stored idempotency row */
    int more;                 /* set by exec: a slice done, more to come (E9) */
    int64_t answer_ref;       /* set by exec (with render): the row the answer is rendered from, stored
                                 in place of the body */

    struct cmd *next;         /* the engine's */
    void *waiter;             /* engine_run's */
    int64_t queued_at;        /* the engine's: monotonic ms when submitted */
};

struct engine_stats {
    uint64_t commands, batches, commits_failed, queued;
    uint64_t log_full;        /* commits that left the log past its bound (E7) */
    uint64_t repeats_rerun;   /* batches run again because a key in them was a repeat (E4) */
};

/* Opens the writer on db_path; migrations must already be applied. */
int engine_open(struct engine **out, const char *db_path, const struct conf *cf, struct clock *clk,
                const struct receipt_keys *keys);
/* Queues a command. Returns 0 (done() will be called) or ERR_OVERLOADED,
 * ERR_WRITES_HALTED, ERR_SHUTTING_DOWN (done() will not be called). */
int engine_submit(struct engine *e, struct cmd *c);
/* E9: queues the next slice of a command, from its done(): admitted whatever
 * the queue holds (E6 admitted the command once); 0, or ERR_WRITES_HALTED,
 * ERR_SHUTTING_DOWN (done() will not be called). Once it returns 0 the
 * command is the writer's, which may be running it already: the caller
 * writes nothing more of it (not even the 0 into c->err). */
int engine_resubmit(struct engine *e, struct cmd *c);
/* What engine_submit would answer now, without queuing anything: 0 or
 * ERR_OVERLOADED, ERR_WRITES_HALTED, ERR_SHUTTING_DOWN. Lets the HTTP layer
 * shed a command before it spends anything on it (E6). */
int engine_admits(struct engine *e);
/* Submits and waits; returns c->err. For the CLI, the sweeper and tests. */
int engine_run(struct engine *e, struct cmd *c);
int engine_halted(struct engine *e);
/* Call after a read transaction, before answering from it (E3): waits until
 * every batch the read could have seen is durable. 0, or ERR_STORAGE after a
 * failed log sync. */
int engine_read_fence(struct engine *e);
void engine_stats(struct engine *e, struct engine_stats *out);
/* E7, the writer's choice after a commit that left `pages` pages of log, the
 * log starting over from `restart` pages (ENGINE_LOG_RESTART_BYTES, or the
 * bound when that is less), the checkpointer being busy or not and having
 * copied `ckpt_copied` pages when it last finished: 1 to copy the rest
 * itself (`little` pages at most: ENGINE_LOG_SELF_COPY_BYTES), 0 to leave it
 * to the checkpointer. The sizes are in bytes, and the engine counts them in
 * the database's pages, whatever their size (store.h STORE_PAGE_SIZE). */
/* E4: after a repeat made a batch run again, keys are looked up before their
 * commands for this long (engine.c: why). */
#define ENGINE_LOOK_FIRST_SECONDS 2
#define ENGINE_LOG_RESTART_BYTES (INT64_C(128) << 20)    /* engine.c: why */
#define ENGINE_LOG_SELF_COPY_BYTES (INT64_C(4) << 20)
int engine_writer_copies_log(int64_t pages, int64_t restart, int64_t little, int64_t ckpt_copied, int ckpt_busy);
/* The checkpointer's pace in bytes a second after a commit that left `pages`
 * pages of log (walbuf.c W7), 0 for none: calm short of `restart`, faster up
 * to half the log's bound `bound`, unpaced past it (engine.c: why). */
int64_t engine_checkpoint_pace(int64_t pages, int64_t restart, int64_t bound);
/* Finishes the queued commands, stops the thread, closes the store. The
 * engine stays valid: later submissions get ERR_SHUTTING_DOWN (so threads
 * still serving requests may call it until they are stopped too). */
void engine_stop(struct engine *e);
/* engine_stop, then frees it. */
void engine_close(struct engine *e);

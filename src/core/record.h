/* record — the transaction records of a SIM (what a subscriber or clerk sees
 * as its history). Written in the same transaction as the ledger transfers
 * they describe; never updated.
 *
 * A top-up is its own record: its topups row (migration 010). Every other
 * record (a reactivation fee, a bundle purchase, a forfeiture; and top-ups
 * written before that migration) is a sim_txns row. A SIM's records are one
 * chain, newest first, from sims.last_txn through each record's prev; a link
 * is a sim_txns id, or a top-up's id negated (RECORD_TOPUP). Ids come from
 * one sequence over both tables, so a record's id names one record and a
 * newer record has a larger id. */
#pragma once
#include <stdint.h>

#include "core/tx.h"

struct record {
    int64_t id, sim_id;
    const char *kind;        /* topup, reactivation_fee, bundle_purchase, forfeiture, suspension, resumption */
    int64_t amount;          /* signed: + into the wallet, - out of it */
    const char *currency;
    int64_t balance_after;
    int64_t topup_id, bundle_id;   /* 0 if none */
    const char *receipt, *channel, *method;   /* NULL if none */
    const char *reason;      /* a suspension's or resumption's, as staff gave it; NULL if none */
    const char *served_by;   /* the principal that made it (tx.h); written from tx->principal, NULL if unknown */
    int64_t created_at;
};

#define RECORD_TOPUP(topup_id) (-(topup_id))   /* the link to a top-up's own record */

/* The id the next top-up or sim_txns row takes (one sequence over both). */
int record_next_id(struct tx *tx, int64_t *id);
/* Puts link at the head of the SIM's chain (the caller's record already
 * names the old head as its prev). */
int record_link(struct tx *tx, int64_t sim_id, int64_t link);
/* Adds the record in front of its SIM's chain (sims.last_txn, then prev);
 * *head, if not NULL, becomes its id: the chain's new head (sim.head). */
int record_add(struct tx *tx, const struct record *r, int64_t *head);
/* Adds the record with the chain's head as its prev, but leaves the head:
 * the caller stores *id as the SIM's last_txn before any other record of
 * the SIM is added (sim_save does it, from sim.link). A command that saves
 * the SIM anyway so writes its row once instead of twice. */
int record_insert(struct tx *tx, const struct record *r, int64_t *id);
/* Newest first, ids below `before` (0: from the newest); calls fn for up to
 * `limit` rows; *more is set when older rows remain. Strings passed to fn are
 * valid only during the call. */
int record_list(struct tx *tx, int64_t sim_id, int64_t before, int limit,
                void (*fn)(void *arg, const struct record *r), void *arg, int *more);

/* ledger — double-entry accounts and append-only transfers, per unit.
 *
 * Invariants
 *  L1. Every change of money or units is a transfer between two distinct,
 *      existing accounts of the same unit; a transfer is never updated
 *      except for the state of a pending one, and never deleted. (No foreign
 *      key checks the accounts: the UPDATE that moves each side's totals
 *      must change one row, or the transfer fails; see migration 006.)
 *  L2. Per unit, the sum of debits equals the sum of credits, posted and
 *      pending separately (so all balances of a unit sum to zero).
 *  L3. An account flagged LEDGER_NO_OVERDRAFT never has debits_posted +
 *      debits_pending > credits_posted; the database's CHECK enforces it.
 *  L4. A transfer id (xid) is applied at most once. Submitting the same xid
 *      with the same fields again returns 0 and changes nothing; with other
 *      fields it is ERR_TRANSFER_EXISTS.
 *  L5. A pending transfer reserves its amount on both accounts until it is
 *      posted (in full or in part; the rest is released), voided, or expires
 *      at timeout_at by server time. Only an open, unexpired pending can be
 *      posted or voided.
 *  L6. Stored account totals always equal the totals recomputed from the
 *      transfers; ledger_check() proves L1's accounts, L2, L3, L6 and L7.
 *      (Stored: once the writer has flushed what L8 lets it hold.)
 *  L7. The wallet of SIM n is account -n, and its four totals are kept in
 *      that SIM's row (sims.w_*), not in accounts: a top-up then changes one
 *      row for the SIM and its money. Its accounts row (kind, unit, flags,
 *      owner) holds zero totals. A wallet's unit is the database's currency
 *      and it never overdraws (the row's CHECK). Every other account id is
 *      positive and keeps its totals in accounts. A posted credit to a wallet
 *      may be handed to the caller (transfer.credit_later), which adds it to
 *      the row when it writes the SIM's row anyway, in the same transaction
 *      (sim_save): the row is then written once for both.
 *  L8. While the engine runs a batch without savepoints (ledger_cache.defer),
 *      the posted totals moved on a system account are summed in the
 *      writer's cache and written by ledger_flush(), once per account,
 *      before the batch commits: every top-up debits the same clearing
 *      account, and one UPDATE a batch replaces one a top-up. The transfer
 *      rows are written at once as always, so a command that moved a total
 *      has written a row (the engine's test for re-running a batch). Every
 *      read of account totals on the writer flushes first, and a rollback
 *      drops the sums with the cache. A sum the flush cannot write (a
 *      total past int64: ERR_NUMBER_OVERFLOW) re-runs the batch with a
 *      savepoint a command, so that it fails the command that moved it,
 *      never the batch.
 */
#pragma once
#include <stdint.h>

#include "core/tx.h"

#define LEDGER_NO_OVERDRAFT 1
#define LEDGER_XID_MAX 63   /* bytes of a transfer id */

enum transfer_flags {
    XFER_POSTED = 0,
    XFER_PENDING = 1,
    XFER_POST_PENDING = 2,
    XFER_VOID_PENDING = 4,
};

enum pending_state { PENDING_OPEN = 0, PENDING_POSTED = 1, PENDING_VOIDED = 2, PENDING_EXPIRED = 3 };

struct account {
    int64_t id;
    char unit[16];
    char kind[24];
    int flags;
    int64_t debits_pending, debits_posted, credits_pending, credits_posted;
};

struct transfer {
    const char *xid;          /* caller's idempotent id, unique across the ledger, <= 58 bytes */
    int64_t debit, credit;    /* account ids; for post/void taken from the pending when 0 */
    int64_t amount;           /* > 0; for a post, 0 means the full pending amount */
    const char *unit;
    const char *kind;         /* "topup", "plan_purchase", ... for reports */
    int flags;                /* enum transfer_flags */
    const char *pending_xid;  /* post/void: the pending transfer */
    int64_t timeout;          /* pending: seconds until it expires; 0 = never */
    int64_t sim_id;           /* owner, 0 if none */
    /* Posted, credit to a wallet: the amount is added here instead of to the
     * wallet's row, and the caller stores it (L7). Only for a caller that
     * debits the wallet no more in the transaction: a debit would not see it. */
    int64_t *credit_later;
};

/* The ids of system accounts, remembered by the one writer, and the posted
 * totals not yet written to them (L8). An id or a sum is only valid while
 * the transaction that found it stands: whoever rolls back must call
 * ledger_cache_clear(). */
#define LEDGER_CACHE_MAX 64
struct ledger_cache {
    int n;
    int defer;   /* L8: sum posted totals here until ledger_flush */
    int64_t next_record;   /* record.h: the next record id in this transaction (0: read it); the
                              engine clears it when a batch begins, as another process may write between */
    struct {
        char name[40];
        char unit[16];
        int64_t id;
        int64_t debits, credits;   /* posted, not yet written */
    } e[LEDGER_CACHE_MAX];
};
void ledger_cache_clear(struct ledger_cache *c);
/* Writes the totals the cache holds (L8); before COMMIT, and before reading totals. */
int ledger_flush(struct tx *tx);

/* Creates an account; *id receives it. */
int ledger_account_create(struct tx *tx, const char *kind, const char *unit, int64_t sim_id, int flags,
                          int64_t *id);
/* Creates the wallet of SIM sim_id (L7): account -sim_id, no overdraft. */
int ledger_wallet_create(struct tx *tx, int64_t sim_id, const char *unit);
/* A named system account ("<kind>:<unit>"), created on first use, never overdraft-limited. */
int ledger_system_account(struct tx *tx, const char *kind, const char *unit, int64_t *id);
int ledger_account_get(struct tx *tx, int64_t id, struct account *out);   /* ERR_ACCOUNT_NOT_FOUND */
int64_t ledger_balance(const struct account *a);     /* credits_posted - debits_posted */
int64_t ledger_available(const struct account *a);   /* balance less pending debits */

/* Applies one transfer. Errors: ERR_INVALID_AMOUNT, ERR_ACCOUNT_NOT_FOUND,
 * ERR_UNIT_MISMATCH, ERR_INSUFFICIENT_BALANCE (L3), ERR_TRANSFER_EXISTS (L4),
 * ERR_PENDING_NOT_FOUND, ERR_PENDING_CLOSED, ERR_PENDING_EXPIRED,
 * ERR_POST_EXCEEDS_PENDING; storage errors. On error nothing was changed by
 * the statements that failed; the caller's savepoint undoes the rest. */
int ledger_transfer(struct tx *tx, const struct transfer *t);

/* Voids every open pending transfer that debits account (when what the
 * account holds is forfeited or expires, its reservations go with it). */
int ledger_void_reservations(struct tx *tx, int64_t account);
/* Expires up to limit open pendings whose timeout has passed (L5); *count receives how many. */
int ledger_expire_pending(struct tx *tx, int limit, int *count);

struct ledger_unit_sum {
    char unit[16];
    int64_t debits, credits, accounts;
};
struct ledger_report {
    int nunits;
    struct ledger_unit_sum units[16];
    int violations;
    char first_violation[256];
};
/* Proves L1 (the accounts exist), L2, L3, L6 and L7 over the whole ledger:
 * one scan of the accounts, the SIMs and the transfers each (admin use; 4.5 s
 * at 10M SIMs). Violations are counted; the first is named, L1 before L2, L3,
 * L6 and L7. */
int ledger_check(struct tx *tx, struct ledger_report *out);

/* sim — SIM cards, their identifiers and their lifecycle.
 *
 *   inactive --first top-up--> active --active_until--> grace --+grace_days--> expired
 *      expired --+retention_days--> terminated (wallet and bundle units forfeited)
 *   grace/expired --top-up--> active (expired: the reactivation fee is charged)
 *   any but terminated --staff--> suspended --staff--> state recomputed from time
 *
 * sim_state_at() is the pure rule; sim_settle() applies it to a stored SIM
 * (the sweeper and every command that touches a SIM call it), so a SIM is
 * always acted on in the state the clock says it is in.
 *
 * The sweeper finds SIMs by check_at, which is never later than the SIM's
 * next clock-driven change and is 0 (NULL) when none is coming (sim_check_at).
 * sim_save() moves it only when it must, so a top-up that extends an active
 * SIM leaves it (and its index entry) alone; the sweeper, finding nothing
 * due, sets it to the new date (migration 003).
 *
 * A SIM's id is, where it can be, its home: a number its ICCID spells
 * (sim_home_id), so that finding a SIM is one seek in the sims table instead
 * of one in the ICCID index and then one in the table. With 10M SIMs neither
 * tree fits in the writer's cache, so this is one page read from the kernel
 * a top-up instead of two. The home is a hint, never trusted: the row found
 * there must have the ICCID asked for, and a SIM whose home is taken (a card
 * of another issuer with the same account digits, or one created before
 * homes) is given an id above every home and found through the index.
 */
#pragma once
#include <stdint.h>

#include "core/tx.h"
#include "util/conf.h"

enum sim_state { SIM_INACTIVE, SIM_ACTIVE, SIM_GRACE, SIM_EXPIRED, SIM_TERMINATED, SIM_SUSPENDED, SIM__COUNT };

#define ICCID_MAX 20
#define MSISDN_MAX 16   /* '+' and up to 15 digits */
#define IMSI_MAX 15

struct sim {
    int64_t id;
    char iccid[ICCID_MAX + 1];
    char msisdn[MSISDN_MAX + 1];   /* "" when none */
    char imsi[IMSI_MAX + 1];       /* "" when none */
    char lang[3];                  /* zh, en, ru */
    int state;                     /* enum sim_state */
    int64_t active_until;          /* 0 while never activated */
    int64_t wallet_id;
    int64_t day_start, day_total;  /* top-ups of the current local day */
    int64_t created_at;
    int64_t check_at;              /* when the sweeper looks at it next; 0: never */
    int64_t balance;               /* wallet balance (posted) when loaded */
    int64_t head;                  /* the last of its records (sims.last_txn; 0: none): as loaded, then record_add's */
    int64_t link;                  /* a record sim_save puts at the head of the chain (record_insert); 0: none */
    int64_t credit;                /* a posted credit sim_save adds to the wallet (transfer.credit_later) */
};

const char *sim_state_name(int state);
int sim_state_parse(const char *s);          /* -1 if unknown */

int sim_iccid_valid(const char *s);          /* 18-20 digits, Luhn */
int sim_msisdn_valid(const char *s);         /* E.164: '+', 8-15 digits, no leading 0 */
int sim_imsi_valid(const char *s);           /* 6-15 digits */
int sim_lang_valid(const char *s);

/* The state the clock puts a SIM in (pure). */
int sim_state_at(const struct sim *s, int64_t now, const struct conf *cf);
/* The validity after a top-up at `now` (pure). */
int64_t sim_validity_after_topup(const struct sim *s, int64_t now, const struct conf *cf);
int64_t sim_grace_until(const struct sim *s, const struct conf *cf);      /* 0 if never activated */
int64_t sim_terminate_at(const struct sim *s, const struct conf *cf);
/* The check_at to store for s at `now` (pure): its current one while that is
 * still ahead and not after the next change, else the next change (0: none). */
int64_t sim_check_at(const struct sim *s, int64_t now, const struct conf *cf);

/* The ICCID's last SIM_HOME_DIGITS digits before its check digit, plus one
 * (no SIM is id 0: its wallet would be account 0); 0 if iccid is not digits.
 * Cards of one issuer differ in those digits, so their homes differ. */
#define SIM_HOME_DIGITS 12
#define SIM_HOME_MAX 1000000000000LL   /* 10^SIM_HOME_DIGITS: ids above it are not homes */
int64_t sim_home_id(const char *iccid);

/* The SIM that ref names: its ICCID, or its MSISDN ('+' first, E.164), the
 * number a subscriber knows. ERR_SIM_NOT_FOUND; also for the number of a SIM
 * the clock has terminated, which has given it back even before the sweep. */
int sim_get(struct tx *tx, const char *ref, struct sim *out);
int sim_get_by_id(struct tx *tx, int64_t id, struct sim *out);
/* The number a SIM the clock has terminated gave back ("" for any other):
 * termination moves it out of msisdn (sim_settle), so that a new SIM may
 * take it; one the sweep has not reached yet gives back the one it holds. */
int sim_released_msisdn(struct tx *tx, const struct sim *s, char out[MSISDN_MAX + 1]);
/* Creates the SIM and its wallet (lang "" means en), at its home if that is
 * free, else above every home. If the ICCID exists and
 * every non-empty field agrees, *existed is set, *s filled from the stored SIM
 * and 0 returned; if a given field differs, ERR_SIM_EXISTS.
 * ERR_MSISDN_TAKEN when the MSISDN belongs to another SIM. */
int sim_create(struct tx *tx, struct sim *s, int *existed);
/* Stores state, validity and day totals, check_at when it must move,
 * s->link as the head of the SIM's records and s->credit into its wallet
 * (then clears both). */
int sim_save(struct tx *tx, struct sim *s);
/* Applies the transition the clock asks for (forfeiting on termination). *changed set if it moved. */
int sim_settle(struct tx *tx, struct sim *s, int *changed);
/* Settles the SIM (sim_settle), then refuses to move money on one that is
 * terminated or suspended: ERR_SIM_TERMINATED, ERR_SIM_SUSPENDED, or 0. */
int sim_settle_for_money(struct tx *tx, struct sim *s);
/* Suspends (on=1) or resumes (on=0), leaving a record of it (kind
 * suspension or resumption, amount 0) with reason (NULL: none given) and
 * the principal; ERR_SIM_TERMINATED. Suspending a suspended SIM or resuming
 * one that is not suspended changes nothing and records nothing. */
#define SIM_REASON_MAX 200   /* bytes of a suspension's reason: text_printable (util/text.h) */
int sim_suspend(struct tx *tx, struct sim *s, int on, const char *reason);
/* Looks at up to `limit` SIMs whose check_at has come, settling them (or
 * only moving check_at on, if nothing was due), then, within what is left
 * of the limit, at bundles; *moved counts the SIMs and bundles that changed
 * state, and *more is 1 when it stopped at the limit (more may be due). */
int sim_sweep(struct tx *tx, int limit, int *moved, int *more);
/* Wallet balance (posted) of a SIM. */
int sim_balance(struct tx *tx, const struct sim *s, int64_t *balance);

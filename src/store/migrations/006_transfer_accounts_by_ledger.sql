-- 006: a transfer's accounts are checked by the ledger, not by a foreign key.
-- The foreign keys from transfers to accounts made SQLite look up both
-- accounts of every transfer it inserted. A wallet's accounts row is never
-- otherwise read on a top-up (its totals are in its SIM's row, L7), so with
-- 10M SIMs that lookup was a page the cache did not hold: a third of the
-- writer's reads (strace of its pread64 calls, mapped to B-trees with dbstat),
-- and 18.7k -> 20.6k top-ups/s over HTTP. The ledger already refuses a
-- transfer whose account is missing: each side's totals move by an UPDATE of
-- one row that must change (ledger.c, apply), else the command fails and the
-- engine rolls it back. ledger_check proves it over the whole ledger (L1).
--
-- SQLite cannot drop a constraint in place: the table is rebuilt, ids kept.
CREATE TABLE transfers_new (
    id          INTEGER PRIMARY KEY,
    xid         TEXT NOT NULL UNIQUE,
    debit_id    INTEGER NOT NULL,
    credit_id   INTEGER NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    unit        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    flags       INTEGER NOT NULL,
    pending_id  INTEGER REFERENCES transfers_new(id),
    timeout_at  INTEGER,
    state       INTEGER NOT NULL DEFAULT 0,
    sim_id      INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK (debit_id <> credit_id)
) STRICT;
INSERT INTO transfers_new(id, xid, debit_id, credit_id, amount, unit, kind, flags, pending_id, timeout_at,
                          state, sim_id, created_at)
SELECT id, xid, debit_id, credit_id, amount, unit, kind, flags, pending_id, timeout_at, state, sim_id, created_at
FROM transfers ORDER BY id;
DROP TABLE transfers;
ALTER TABLE transfers_new RENAME TO transfers;
CREATE INDEX transfers_open_pending ON transfers(timeout_at) WHERE flags = 1 AND state = 0;
CREATE INDEX transfers_pending_debit ON transfers(debit_id) WHERE flags = 1 AND state = 0;

-- 002: a top-up dirties fewer B-trees. Each commit writes every dirty page
-- to the WAL, so every table or index a top-up inserts into costs a page.
--  * The receipt moves into its top-up row (topups.receipt): it is numbered
--    by the top-up (R + the id on ten digits), so the id finds it.
--  * Indexes no query needs go: topups_sim, transfers_debit, transfers_credit.
--    The one reader of debit_id (voiding a SIM's open reservations) gets a
--    partial index over the open pendings only, which top-ups never enter.

-- Refuse to drop a receipt that the new lookup by top-up id could not find
-- (the CHECK fails the migration, which then rolls back whole).
CREATE TEMP TABLE migration_002_guard (receipts_reachable INTEGER NOT NULL CHECK (receipts_reachable));
INSERT INTO migration_002_guard
SELECT NOT EXISTS (SELECT 1 FROM receipts r LEFT JOIN topups t ON t.id = r.topup_id
                   WHERE t.id IS NULL OR r.number <> printf('R%010d', r.topup_id));
DROP TABLE migration_002_guard;

-- The canonical payload as issued, byte for byte (it is what gets signed).
ALTER TABLE topups ADD COLUMN receipt TEXT;
UPDATE topups SET receipt = r.payload FROM receipts r WHERE r.topup_id = topups.id;
DROP TABLE receipts;

DROP INDEX topups_sim;
DROP INDEX transfers_debit;
DROP INDEX transfers_credit;
CREATE INDEX transfers_pending_debit ON transfers(debit_id) WHERE flags = 1 AND state = 0;

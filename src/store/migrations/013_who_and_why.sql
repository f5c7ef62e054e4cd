-- 013: every record says who made it, and a suspension or resumption why.
--
-- Staff suspend a SIM (lost, stolen, fraud, the customer's request) and
-- resume it; until now that left no trace but the SIM's state, so no one
-- could tell who had done it, when, or why. Each is now a record in the
-- SIM's history (kinds suspension and resumption, amount 0), and every
-- record written from now on keeps the principal that made it ("token:12",
-- "sweeper"). Top-ups kept theirs already (topups.principal). Rows written
-- before keep NULL: who made them was never stored.
ALTER TABLE sim_txns ADD COLUMN principal TEXT;
ALTER TABLE sim_txns ADD COLUMN reason TEXT;

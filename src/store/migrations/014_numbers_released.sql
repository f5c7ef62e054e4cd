-- 014: a terminated SIM gives its number back.
--
-- A SIM kept its MSISDN for good, so a number could never be given to a new
-- card once its old one was terminated: an operator's or a reseller's pool
-- of numbers only shrank. Termination now moves the number to
-- released_msisdn, and msisdn (unique) is free for a new SIM.
--
-- Receipts name the number the SIM had when they were issued, and are
-- composed again from their rows whenever they are fetched (receipt.h R1):
-- they read COALESCE(msisdn, released_msisdn), which is that number, since a
-- SIM takes no top-up after its termination. SIMs terminated before this
-- migration give theirs back now.
ALTER TABLE sims ADD COLUMN released_msisdn TEXT;
UPDATE sims SET released_msisdn = msisdn, msisdn = NULL WHERE state = 'terminated' AND msisdn IS NOT NULL;

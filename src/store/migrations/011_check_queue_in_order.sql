-- 011: the sweeper's queue (sims_check) takes a newly activated SIM at its end.
--
-- The index was ordered by check_at, then by SIM id. A SIM's first top-up
-- sets its check_at to the end of its validity: the same second for every SIM
-- activated in the same second. Within that second the entries fell in SIM id
-- order, that is at random among the ones already there, so each batch of
-- top-ups rewrote most of the second's index pages.
--
-- Measured on 10M SIMs, never topped up, so that nearly every top-up is a
-- first one (closed loop, 512 connections; three alternating pairs, each on
-- its own copy of the same population): the writer logged 2.65-2.67 KB a
-- top-up against 3.28-3.40, its CPU 23.4-24.7 us against 25.7-27.5, and the
-- rate was 31.9k, 32.2k, 32.3k against 28.4k, 29.8k, 31.5k top-ups/s.
--
-- check_seq orders entries with the same check_at by when they were set: it
-- is the id of the record written by the command that set check_at (record
-- ids grow with every command), NULL when that command wrote none. New
-- entries then go at the end of the index, all of a batch's on one page or
-- two. It is only an order: nothing reads it, and rows set before this
-- migration keep NULL.
ALTER TABLE sims ADD COLUMN check_seq INTEGER;
DROP INDEX sims_check;
CREATE INDEX sims_check ON sims(check_at, check_seq) WHERE check_at IS NOT NULL;

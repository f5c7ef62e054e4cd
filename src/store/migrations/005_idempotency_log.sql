-- Stored answers are appended in arrival order, and only a small entry per
-- key goes where the key sorts. The table was keyed by (scope, key) WITHOUT
-- ROWID, so each answer (~610 bytes for a top-up) went where its key sorts:
-- with the random UUIDs browsers and SDKs send, every top-up dirtied a random
-- page of a tree of 6 answers a page, and the page splits left them half
-- full. The raw SQLite ceiling (the server's writes, 100k SIMs, random keys):
-- 87 -> 60 us of CPU and 38 -> 21 KB written per top-up; keys that arrive in
-- order (a client's counter) cost the same as before.
CREATE TABLE idempotency_log (
    id            INTEGER PRIMARY KEY,
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    sign_off      INTEGER NOT NULL DEFAULT 0,   -- a receipt in body to sign when served
    sign_len      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
) STRICT;
INSERT INTO idempotency_log(scope, key, request_hash, status, body, sign_off, sign_len, created_at)
SELECT scope, key, request_hash, status, body, sign_off, sign_len, created_at FROM idempotency
ORDER BY created_at, scope, key;
DROP TABLE idempotency;
ALTER TABLE idempotency_log RENAME TO idempotency;
CREATE UNIQUE INDEX idempotency_key ON idempotency(scope, key);

-- A top-up's stored answer is a reference to its topups row, from which the
-- 201 body is rendered again byte for byte (engine.h E4), instead of the
-- body itself: 610 of the ~900 bytes a top-up appended, 300 of them the
-- receipt the topups row already holds. Raw SQLite ceiling (the server's
-- writes, 100k SIMs, paired): 21.1/21.8k -> 23.5/25.8k top-ups/s, 10.1 ->
-- 8.7 KB written per top-up. Rows stored before keep their body (topup_id NULL).
ALTER TABLE idempotency ADD COLUMN topup_id INTEGER;

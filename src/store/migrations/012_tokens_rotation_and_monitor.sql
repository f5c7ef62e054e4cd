-- 012: tokens can replace one another, and a token can be a monitor's.
--
-- Rotation (auth.h A4). Keys were scoped to the token that sent them. A
-- client whose token was rotated (a new one made, the old one revoked) and
-- that then retried a request it had sent under the old token (a kiosk
-- replaying its offline queue, a till whose answer was lost) sent it as a
-- new request, and the top-up was applied twice. A token made to replace
-- another now names it (replaces) and shares its scope: the first token of
-- the line, whose id the scope text "token:ID" has always carried, so keys
-- stored before this migration still match.
--
-- The monitor role may read GET /metrics and nothing a subscriber's data or
-- money is in: a scraper's token that cannot top up a SIM.
--
-- The table is rebuilt for the role's CHECK (SQLite cannot change one in
-- place); it holds a few rows.
CREATE TABLE tokens_012 (
    id          INTEGER PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role = 'admin' OR role = 'operator' OR role = 'monitor'),
    name        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    replaces    INTEGER REFERENCES tokens(id),
    scope       INTEGER REFERENCES tokens(id)    -- NULL: the token's own id
) STRICT;
INSERT INTO tokens_012(id, prefix, hash, role, name, created_at, revoked_at)
SELECT id, prefix, hash, role, name, created_at, revoked_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_012 RENAME TO tokens;

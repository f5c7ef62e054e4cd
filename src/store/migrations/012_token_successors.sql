-- 012: a token can replace another and keep its idempotency keys (auth.h A4).
--
-- Keys were scoped to the token that sent them. A client whose token was
-- rotated (a new one made, the old one revoked) and that then retried a
-- request it had sent under the old token (a kiosk replaying its offline
-- queue, a till whose answer was lost) sent it as a new request, and the
-- top-up was applied twice. A token made to replace another now names it
-- (replaces) and shares its scope: the first token of the line, whose id
-- the scope text "token:ID" has always carried, so keys stored before this
-- migration still match.
ALTER TABLE tokens ADD COLUMN replaces INTEGER REFERENCES tokens(id);
ALTER TABLE tokens ADD COLUMN scope INTEGER REFERENCES tokens(id);   -- NULL: the token's own id

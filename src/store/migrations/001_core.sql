-- 001: the core schema: ledger, SIMs, plans, bundles, top-ups, receipts,
-- transaction records, idempotency keys, API tokens.
-- Every per-SIM row carries sim_id so a distributed engine can shard by it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Ledger accounts. A balance is credits_posted - debits_posted. Flag 1
-- ("debits must not exceed credits") makes the database itself refuse any
-- change that would take the account below zero, pending debits counted.
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    unit            TEXT NOT NULL,
    name            TEXT UNIQUE,
    sim_id          INTEGER,
    flags           INTEGER NOT NULL DEFAULT 0,
    debits_pending  INTEGER NOT NULL DEFAULT 0,
    debits_posted   INTEGER NOT NULL DEFAULT 0,
    credits_pending INTEGER NOT NULL DEFAULT 0,
    credits_posted  INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    CHECK (debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0),
    CHECK ((flags & 1) = 0 OR debits_posted + debits_pending <= credits_posted)
) STRICT;

-- Append-only transfers. flags: 0 posted, 1 pending, 2 post of a pending,
-- 4 void of a pending. state of a pending: 0 open, 1 posted, 2 voided, 3 expired.
CREATE TABLE transfers (
    id          INTEGER PRIMARY KEY,
    xid         TEXT NOT NULL UNIQUE,
    debit_id    INTEGER NOT NULL REFERENCES accounts(id),
    credit_id   INTEGER NOT NULL REFERENCES accounts(id),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    unit        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    flags       INTEGER NOT NULL,
    pending_id  INTEGER REFERENCES transfers(id),
    timeout_at  INTEGER,
    state       INTEGER NOT NULL DEFAULT 0,
    sim_id      INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK (debit_id <> credit_id)
) STRICT;
CREATE INDEX transfers_open_pending ON transfers(timeout_at) WHERE flags = 1 AND state = 0;
CREATE INDEX transfers_debit ON transfers(debit_id);
CREATE INDEX transfers_credit ON transfers(credit_id);

CREATE TABLE sims (
    id            INTEGER PRIMARY KEY,
    iccid         TEXT NOT NULL UNIQUE,
    msisdn        TEXT UNIQUE,
    imsi          TEXT,
    lang          TEXT NOT NULL DEFAULT 'en' CHECK (lang IN ('zh', 'en', 'ru')),
    state         TEXT NOT NULL CHECK (state IN ('inactive','active','grace','expired','terminated','suspended')),
    active_until  INTEGER,
    wallet_id     INTEGER NOT NULL REFERENCES accounts(id),
    day_start     INTEGER NOT NULL DEFAULT 0,
    day_total     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
-- The sweeper's three queues; SIMs that were never activated are in none.
CREATE INDEX sims_due_active  ON sims(active_until) WHERE state = 'active';
CREATE INDEX sims_due_grace   ON sims(active_until) WHERE state = 'grace';
CREATE INDEX sims_due_expired ON sims(active_until) WHERE state = 'expired';

CREATE TABLE plans (
    id             INTEGER PRIMARY KEY,
    code           TEXT NOT NULL UNIQUE,
    name_zh        TEXT NOT NULL,
    name_en        TEXT NOT NULL,
    name_ru        TEXT NOT NULL,
    price          INTEGER NOT NULL CHECK (price >= 0),
    currency       TEXT NOT NULL,
    validity_days  INTEGER NOT NULL CHECK (validity_days > 0),
    data_bytes     INTEGER NOT NULL DEFAULT 0 CHECK (data_bytes >= 0),
    voice_seconds  INTEGER NOT NULL DEFAULT 0 CHECK (voice_seconds >= 0),
    sms            INTEGER NOT NULL DEFAULT 0 CHECK (sms >= 0),
    zones          TEXT NOT NULL,
    payg           INTEGER NOT NULL DEFAULT 0,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL
) STRICT;

-- A plan bought by a SIM; its units sit in one ledger account per service.
CREATE TABLE bundles (
    id             INTEGER PRIMARY KEY,
    sim_id         INTEGER NOT NULL REFERENCES sims(id),
    plan_id        INTEGER NOT NULL REFERENCES plans(id),
    data_account   INTEGER REFERENCES accounts(id),
    voice_account  INTEGER REFERENCES accounts(id),
    sms_account    INTEGER REFERENCES accounts(id),
    state          TEXT NOT NULL CHECK (state IN ('active', 'expired', 'forfeited')),
    starts_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX bundles_sim ON bundles(sim_id, id);
CREATE INDEX bundles_due ON bundles(expires_at) WHERE state = 'active';

CREATE TABLE topups (
    id             INTEGER PRIMARY KEY,
    sim_id         INTEGER NOT NULL REFERENCES sims(id),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    channel        TEXT NOT NULL,
    method         TEXT NOT NULL,
    fee            INTEGER NOT NULL DEFAULT 0,
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    active_until   INTEGER NOT NULL,
    reactivated    INTEGER NOT NULL DEFAULT 0,
    principal      TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX topups_sim ON topups(sim_id, id);

-- A receipt: payload is the canonical JSON that is signed (when served:
-- Ed25519 is deterministic, so the signature needs no storing).
CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY,
    number      TEXT NOT NULL UNIQUE,
    sim_id      INTEGER NOT NULL REFERENCES sims(id),
    topup_id    INTEGER REFERENCES topups(id),
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- What a subscriber or clerk sees as "transactions" of a SIM.
CREATE TABLE sim_txns (
    id             INTEGER PRIMARY KEY,
    sim_id         INTEGER NOT NULL REFERENCES sims(id),
    kind           TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    balance_after  INTEGER NOT NULL,
    topup_id       INTEGER REFERENCES topups(id),
    bundle_id      INTEGER REFERENCES bundles(id),
    receipt        TEXT,
    channel        TEXT,
    method         TEXT,
    created_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX sim_txns_sim ON sim_txns(sim_id, id);

-- Stored in the same transaction as the effect it guards.
CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  BLOB NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    sign_off      INTEGER NOT NULL DEFAULT 0,   -- a receipt in body to sign when served
    sign_len      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;

-- API tokens: only a hash of the secret is kept.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
    name        TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

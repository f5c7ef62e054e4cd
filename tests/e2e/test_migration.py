"""Upgrading a database that is still at schema version 1 (001_core.sql, with
receipts in their own table) to the current schema: every receipt is still
served byte for byte and verifies, the ledger and every db_invariants check
hold, and new top-ups carry on the numbering. A receipt the new lookup could
not find makes the migration refuse, leaving the database as it was.

The old database is built here with the sqlite3 module: 001's SQL, then rows
of the shape the server wrote under 001 (receipts numbered by their top-up).
"""
import base64
import hashlib
import json
import os
import re
import sqlite3
import time

from conftest import ROOT, Server
from db_invariants import check_database, rfc3339
from e2e_util import ed25519_verify, make_iccid, make_msisdn

MIGRATIONS = os.path.join(ROOT, "src", "store", "migrations")
LATEST = max(int(f[:3]) for f in os.listdir(MIGRATIONS) if f.endswith(".sql"))


class OldDb:
    """A database at schema version 1, filled the way the 001 server filled it."""

    def __init__(self, path, edit=lambda sql: sql):
        self.now = int(time.time()) - 3600
        self.con = sqlite3.connect(path, isolation_level=None)
        with open(os.path.join(MIGRATIONS, "001_core.sql"), encoding="utf-8") as f:
            self.con.executescript(edit(f.read()))
        self.con.executescript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                               "applied_at INTEGER NOT NULL)")
        self.q("INSERT INTO schema_migrations VALUES (1, '001_core.sql', ?)", self.now)
        self.q("INSERT INTO meta(key, value) VALUES ('currency', 'CNY')")
        self.sims = {}
        self.receipts = {}        # number -> payload as stored
        self.clearing = {}

    def q(self, sql, *args):
        cur = self.con.execute(sql, args)
        return cur.lastrowid

    def sim(self, msisdn=True):
        iccid = make_iccid()
        msisdn = make_msisdn() if msisdn else None
        wallet = self.q("INSERT INTO accounts(kind, unit, sim_id, flags, created_at) VALUES ('wallet', 'CNY', 0, 1, ?)",
                        self.now)
        sid = self.q("INSERT INTO sims(iccid, msisdn, lang, state, wallet_id, created_at, updated_at) "
                     "VALUES (?, ?, 'en', 'inactive', ?, ?, ?)", iccid, msisdn, wallet, self.now, self.now)
        self.q("UPDATE accounts SET sim_id = ? WHERE id = ?", sid, wallet)
        self.sims[iccid] = {"id": sid, "iccid": iccid, "msisdn": msisdn, "wallet": wallet, "balance": 0,
                            "active_until": self.now}
        return iccid

    def topup(self, iccid, amount, channel="portal", method="alipay", principal="token:2", number=None):
        s = self.sims[iccid]
        self.now += 60
        s["balance"] += amount
        s["active_until"] = max(s["active_until"], self.now) + 30 * 86400
        if method not in self.clearing:
            name = "clearing_%s:CNY" % method
            self.clearing[method] = self.q("INSERT INTO accounts(kind, unit, sim_id, flags, name, created_at) "
                                           "VALUES (?, 'CNY', 0, 0, ?, ?)", "clearing_" + method, name, self.now)
        tid = self.q("INSERT INTO topups(sim_id, amount, currency, channel, method, fee, balance_after, active_until, "
                     "reactivated, principal, created_at) VALUES (?, ?, 'CNY', ?, ?, 0, ?, ?, 0, ?, ?)",
                     s["id"], amount, channel, method, s["balance"], s["active_until"], principal, self.now)
        self.q("INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, state, sim_id, created_at) "
               "VALUES (?, ?, ?, ?, 'CNY', 'topup', 0, 0, ?, ?)", "topup:%d" % tid, self.clearing[method],
               s["wallet"], amount, s["id"], self.now)
        self.q("UPDATE accounts SET debits_posted = debits_posted + ? WHERE id = ?", amount, self.clearing[method])
        self.q("UPDATE accounts SET credits_posted = credits_posted + ? WHERE id = ?", amount, s["wallet"])
        self.q("UPDATE sims SET state = 'active', active_until = ?, updated_at = ? WHERE id = ?",
               s["active_until"], self.now, s["id"])
        number = number or "R%010d" % tid
        payload = json.dumps({"active_until": rfc3339(s["active_until"]), "amount": amount,
                              "balance_after": s["balance"], "channel": channel, "currency": "CNY", "iccid": iccid,
                              "issued_at": rfc3339(self.now), "method": method, "msisdn": s["msisdn"] or "",
                              "number": number, "reactivation_fee": 0, "served_by": principal or "system",
                              "topup": "tu_%d" % tid}, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        self.q("INSERT INTO receipts(id, number, sim_id, topup_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
               tid, number, s["id"], tid, payload, self.now)
        self.q("INSERT INTO sim_txns(sim_id, kind, amount, currency, balance_after, topup_id, receipt, channel, "
               "method, created_at) VALUES (?, 'topup', ?, 'CNY', ?, ?, ?, ?, ?, ?)",
               s["id"], amount, s["balance"], tid, number, channel, method, self.now)
        head = '{"topup":{"id":"tu_%d","iccid":"%s","amount":%d},"receipt":' % (tid, iccid, amount)
        body = head + payload + "}"
        self.q("INSERT INTO idempotency(scope, key, request_hash, status, body, sign_off, sign_len, created_at) "
               "VALUES (?, ?, ?, 201, ?, ?, ?, ?)", principal or "system", "old-%d" % tid,
               hashlib.sha256(body.encode()).digest(), body, len(head.encode()), len(payload.encode()), self.now)
        self.receipts[number] = payload
        return number

    def close(self):
        self.con.close()


def _old_server(request, tmp_path):
    """A server for a database an older topupd wrote: with the receipt key
    that topupd made beside it at its first start (a database that issued
    receipts and has no key is refused; test_receipts.py)."""
    d = tmp_path / "srv"
    d.mkdir()
    srv = Server(d)
    key = srv.db + ".ed25519"
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    request.node._topup_servers = [srv]
    return srv


def _answers(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT scope, key, request_hash, status, body, sign_off, sign_len, created_at FROM idempotency")}
    finally:
        con.close()


def _schema_version(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    finally:
        con.close()


def test_version_1_database_keeps_its_receipts(request, tmp_path):
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db)
    a, b, c = old.sim(), old.sim(), old.sim(msisdn=False)
    old.topup(a, 1000)
    old.topup(b, 2500, channel="kiosk", method="wechat")
    old.topup(a, 700, channel="agent", method="cash", principal="agent:张三")
    old.topup(c, 100, channel="admin", method="adjustment", principal="")   # served by "system"
    old.topup(b, 200000, channel="voucher", method="voucher")
    gone = old.sim()   # terminated before 014: it gives its number back
    old.q("UPDATE sims SET state = 'terminated' WHERE iccid = ?", gone)
    old.sims[gone]["terminated"] = True
    old.close()
    assert _schema_version(srv.db) == 1
    answers = _answers(srv.db)

    try:
        srv.setup()   # topupd migrate, then tokens
        # 005: every stored answer is still there, found by its key, byte for byte.
        assert _answers(srv.db) == answers and len(answers) == len(old.receipts)
        assert _schema_version(srv.db) == LATEST
        con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            stored = {"R%010d" % r[0]: r[1] for r in con.execute("SELECT id, receipt FROM topups")}
            checks = dict(con.execute("SELECT id, check_at FROM sims"))
            wallets = {r[0]: r[1:] for r in con.execute(
                "SELECT s.id, s.wallet_id, s.w_credits_posted - s.w_debits_posted, a.kind, a.sim_id, "
                "a.credits_posted, a.debits_posted FROM sims s JOIN accounts a ON a.id = s.wallet_id")}
            credited = dict(con.execute("SELECT credit_id, SUM(amount) FROM transfers GROUP BY credit_id"))
            fks = {(r[2], r[3]) for r in con.execute("PRAGMA foreign_key_list(transfers)")}
            transfer_ids = [r[0] for r in con.execute("SELECT id FROM transfers ORDER BY id")]
            rooms = {r[0] for r in con.execute("SELECT room FROM sims")}
            numbers = {r[0]: r[1:] for r in con.execute("SELECT iccid, msisdn, released_msisdn FROM sims")}
            tables_sql = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
            plans = {sql: [r[1] for r in con.execute("EXPLAIN " + sql)] for sql in (
                "UPDATE sims SET state = 'active', lang = 'ru' WHERE id = 1",
                "INSERT INTO bundles(sim_id, plan_id, state, starts_at, expires_at, created_at) "
                "VALUES (1, 1, 'active', 0, 0, 0)")}
        finally:
            con.close()
        refused = []
        con = sqlite3.connect(srv.db, isolation_level=None)
        try:
            con.execute("BEGIN")
            for sql in ("UPDATE sims SET state = 'asleep' WHERE id = 1", "UPDATE sims SET lang = 'de' WHERE id = 1",
                        "INSERT INTO bundles(sim_id, plan_id, state, starts_at, expires_at, created_at) "
                        "VALUES (1, 1, 'paused', 0, 0, 0)"):
                try:
                    con.execute(sql)
                except sqlite3.IntegrityError as e:
                    refused.append(str(e).startswith("CHECK constraint failed"))
            con.execute("ROLLBACK")
        finally:
            con.close()
        # 004: each wallet is account -sim_id, its balance in the SIM's row, none left in accounts, and the
        # transfers that credited it point at its new id.
        assert wallets == {s["id"]: (-s["id"], s["balance"], "wallet", s["id"], 0, 0) for s in old.sims.values()}
        assert {k: v for k, v in credited.items() if k < 0} == {-s["id"]: s["balance"] for s in old.sims.values()
                                                                  if s["balance"]}
        # 006: the transfers keep their ids; only the pending's own reference is a foreign key.
        assert fks == {("transfers", "pending_id")}
        assert transfer_ids == list(range(1, len(transfer_ids) + 1)) and len(transfer_ids) == len(old.receipts)
        # 007: SIMs created before have no room (no row was rewritten).
        assert rooms == {None}
        # 008: no CHECK looks a value up in a list (SQLite would build a temporary index at every write), and
        # the comparisons that replace them refuse what the lists refused.
        listed = {t: re.findall(r"CHECK \((\w+) IN \(", sql) for t, sql in tables_sql.items()}
        assert {t: cols for t, cols in listed.items() if cols} == {}   # tokens' role is compared too since 012
        assert all("OpenEphemeral" not in ops for ops in plans.values()), plans
        assert refused == [True, True, True]
        assert "receipts" not in tables
        assert {"topups_sim", "transfers_debit", "transfers_credit", "sim_txns_sim", "sims_due_active",
                "sims_due_grace", "sims_due_expired"} & tables == set()
        assert {"transfers_pending_debit", "sims_check"} <= tables
        assert stored == old.receipts
        # 003: every SIM the clock can move is looked at from its validity on.
        assert checks == {s["id"]: None if s.get("terminated") else s["active_until"] for s in old.sims.values()}
        # 014: only the terminated SIM gave its number back.
        assert numbers == {i: (None, s["msisdn"]) if s.get("terminated") else (s["msisdn"], None)
                           for i, s in old.sims.items()}

        srv.start()
        st, _, pk = srv.request("GET", "/v1/receipts/public-key", token=None)
        assert st == 200, pk
        pub = base64.b64decode(pk["public_key"])
        for number, payload in old.receipts.items():
            r = srv.request("GET", "/v1/receipts/" + number)
            assert r.status == 200, r
            prefix = payload[:-1] + ',"key_id":"%s","signature":"' % pk["key_id"]
            assert r.raw.decode().startswith(prefix), (r.raw, payload)   # the payload as stored, byte for byte
            sig = base64.b64decode(r.body["signature"])
            assert ed25519_verify(pub, payload.encode(), sig), number
            v = srv.request("POST", "/v1/receipts/verify", r.raw, token=None)
            assert v.status == 200 and v.body == {"valid": True}, (number, v)
        for iccid, s in old.sims.items():
            assert srv.balance(iccid) == s["balance"]
            # 003 chained each SIM's records through its row, newest first.
            assert [t["receipt"] for t in srv.txns(iccid)] == \
                [n for n in sorted(old.receipts, reverse=True) if json.loads(old.receipts[n])["iccid"] == iccid]

        # Top-ups go on where the old ones stopped; a new receipt is composed from its row.
        body = srv.topup_ok(a, 500)
        assert body["receipt"]["number"] == "R%010d" % (len(old.receipts) + 1)
        assert [t["receipt"] for t in srv.txns(a)] == [body["receipt"]["number"]] + \
            [n for n in sorted(old.receipts, reverse=True) if json.loads(old.receipts[n])["iccid"] == a]
        r = srv.request("GET", "/v1/receipts/" + body["receipt"]["number"])
        assert r.status == 200 and {k: v for k, v in r.body.items() if k not in ("key_id", "signature")} == \
            body["receipt"], r
        assert srv.balance(a) == old.sims[a]["balance"] + 500
        srv.ledger_ok()
        srv.stop()
        srv.integrity_ok()   # integrity_check and `topupd check`
        violations, counts = check_database(srv.db)
        assert violations == [], violations
        # the old receipts stay stored; the new top-up's is composed when fetched (receipt.h R1)
        assert counts["topups"] == len(old.receipts) + 1 and counts["receipts"] == len(old.receipts)
    finally:
        problems = srv.teardown()
    assert problems == []


def test_unreachable_receipt_stops_the_migration(request, tmp_path):
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db)
    iccid = old.sim()
    old.topup(iccid, 1000)
    old.topup(iccid, 2000, number="R0000000099")   # not its top-up's number: the new lookup would lose it
    old.close()

    cp = srv.cli("migrate", "--db", srv.db, check=False)
    assert cp.returncode != 0, cp
    assert _schema_version(srv.db) == 1
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True)
    try:
        got = dict(con.execute("SELECT number, payload FROM receipts"))
        cols = [r[1] for r in con.execute("PRAGMA table_info(topups)")]
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        con.close()
    assert got == old.receipts
    assert "receipt" not in cols
    assert {"topups_sim", "transfers_debit", "transfers_credit"} <= indexes
    assert "transfers_pending_debit" not in indexes


def test_shared_wallet_stops_migration_004(request, tmp_path):
    """004 moves each wallet's totals into its SIM's row; two SIMs sharing one
    wallet account cannot be split that way, so the migration refuses and
    leaves the database at version 3, wallets where they were."""
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db)
    a, b = old.sim(), old.sim()
    old.topup(a, 1000)
    old.q("UPDATE sims SET wallet_id = ? WHERE id = ?", old.sims[a]["wallet"], old.sims[b]["id"])
    old.close()

    cp = srv.cli("migrate", "--db", srv.db, check=False)
    assert cp.returncode != 0, cp
    assert _schema_version(srv.db) == 3
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(sims)")]
        negative = con.execute("SELECT COUNT(*) FROM accounts WHERE id < 0").fetchone()[0]
        balance = con.execute("SELECT credits_posted FROM accounts WHERE id = ?", (old.sims[a]["wallet"],)).fetchone()
    finally:
        con.close()
    assert "w_credits_posted" not in cols
    assert negative == 0
    assert balance == (1000,)


def test_stored_answer_with_a_receipt_to_sign_replays_byte_for_byte(request, tmp_path):
    """Top-up answers used to carry the receipt signed on the way out, and the
    stored answer kept where to sign (sign_off, sign_len). Top-ups now answer
    with the receipt unsigned, but such a stored answer is still replayed as it
    was first sent: signed again, deterministically."""
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db)
    iccid = old.sim()
    number = old.topup(iccid, 1000)
    old.close()
    srv.setup()
    payload = old.receipts[number]
    path = "/v1/sims/%s/topups" % iccid
    request_body = json.dumps(srv.topup_body(1000)).encode()
    con = sqlite3.connect(srv.db)
    try:
        scope = "token:%d" % con.execute("SELECT id FROM tokens WHERE role = 'operator'").fetchone()[0]
        head = '{"topup":{"id":"tu_%d","iccid":"%s"},"receipt":' % (int(number[1:]), iccid)
        tail = ',"state":"active"}'
        body = head + payload + tail
        digest = hashlib.blake2b(b"POST\0" + path.encode() + b"\0" + request_body, digest_size=32).digest()
        with con:
            con.execute("INSERT INTO idempotency(scope, key, request_hash, status, body, sign_off, sign_len, "
                        "created_at) VALUES (?, 'legacy-1', ?, 201, ?, ?, ?, 0)", (scope, digest, body,
                        len(head.encode()), len(payload.encode())))
    finally:
        con.close()
    try:
        srv.start()
        st, _, pk = srv.request("GET", "/v1/receipts/public-key", token=None)
        assert st == 200, pk
        first = srv.request("POST", path, request_body, idem="legacy-1")
        again = srv.request("POST", path, request_body, idem="legacy-1")
        assert first.status == 201 and first.headers.get("idempotent-replayed") == "true", first
        assert again.raw == first.raw
        text = first.raw.decode()
        assert text.startswith(head + payload[:-1] + ',"key_id":"%s","signature":"' % pk["key_id"]), text
        assert text.endswith('"}' + tail), text
        receipt = first.body["receipt"]
        sig = base64.b64decode(receipt["signature"])
        assert ed25519_verify(base64.b64decode(pk["public_key"]), payload.encode(), sig)
        assert srv.balance(iccid) == old.sims[iccid]["balance"]   # replayed, not applied again
    finally:
        problems = srv.teardown()
    assert problems == []


def test_unexpected_check_text_stops_migration_008(request, tmp_path):
    """008 edits the stored CREATE TABLE text of sims and bundles in place; a
    database whose text is not the one 001 wrote (here: the same rule spelled
    without spaces) is left as it was, at version 7, rather than edited blind."""
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db, edit=lambda sql: sql.replace("CHECK (lang IN ('zh', 'en', 'ru'))",
                                                     "CHECK (lang IN ('zh','en','ru'))"))
    old.topup(old.sim(), 1000)
    old.close()

    cp = srv.cli("migrate", "--db", srv.db, check=False)
    assert cp.returncode != 0, cp
    assert "008_checks_without_lists.sql" in cp.stderr
    assert _schema_version(srv.db) == 7
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True)
    try:
        sims = con.execute("SELECT sql FROM sqlite_master WHERE name = 'sims'").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    assert "CHECK (lang IN ('zh','en','ru'))" in sims and "CHECK (state IN (" in sims
    assert not {t for t in tables if t.startswith("migration_008")}
    assert ok == "ok"


def test_broken_reference_stops_a_table_rebuild(request, tmp_path):
    """Migrations run with foreign keys off (a rebuild would otherwise delete
    the old table row by row, each row looking for its children: quadratic
    without an index), so each is checked before it commits: 006 rebuilds
    transfers, and a pending_id naming no transfer makes it refuse, leaving
    the database at version 5."""
    srv = _old_server(request, tmp_path)
    old = OldDb(srv.db)
    old.topup(old.sim(), 1000)
    old.q("UPDATE transfers SET pending_id = 999 WHERE id = 1")   # sqlite3 leaves foreign keys off
    old.close()

    cp = srv.cli("migrate", "--db", srv.db, check=False)
    assert cp.returncode != 0, cp
    assert "row 1 of transfers refers to a missing row of transfers" in cp.stderr, cp.stderr
    assert _schema_version(srv.db) == 5
    con = sqlite3.connect("file:%s?mode=ro" % srv.db, uri=True)
    try:
        fks = {(r[2], r[3]) for r in con.execute("PRAGMA foreign_key_list(transfers)")}
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    finally:
        con.close()
    assert ("accounts", "debit_id") in fks   # 006 did not happen
    assert "transfers_new" not in tables


def test_a_crash_in_the_first_migration_leaves_a_database_that_migrates(tmp_path):
    """topupd created schema_migrations in a transaction of its own, before
    001's: a crash in 001 (test_powercut cut the power there) left that empty
    table alone, and every command then refused the file as another program's
    database for good. Now the table comes in 001's transaction, and a file a
    crash left that way is still taken for the empty database it is."""
    path = str(tmp_path / "topup.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript("PRAGMA journal_mode=WAL; CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                      "name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
    con.close()
    srv = Server(tmp_path)
    cp = srv.cli("migrate", "--db", path, check=False)
    assert cp.returncode == 0, cp.stderr
    assert srv.cli("check", "--db", path, check=False).returncode == 0
    con = sqlite3.connect(path)
    assert con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == LATEST
    con.close()

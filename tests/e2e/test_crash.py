"""Durability: kill -9 (and SIGTERM) in the middle of a stream of top-ups.

Every request gets a globally unique amount, so each transaction found after
the restart maps back to exactly one request. A request is
  acked     the server answered 201: it must be present exactly once;
  maybe     sent, no answer (killed mid-flight) or 5xx: present at most once;
  unsent    the connection was refused: must be absent;
  rejected  a 4xx: must be absent.
After the restart: every acked top-up is present once with its receipt,
replaying its key returns the same bytes, each "maybe" key replays as stored
(if applied) or executes now (if not), balances equal the transaction sums and
the ledger check passes.
"""
import http.client
import itertools
import json
import random
import signal
import threading
import time

import pytest

from db_invariants import open_ro
from e2e_util import DAY, assert_error, luhn_check_digit

N_SIMS = 4
N_THREADS = 8
ROUNDS = 3
PER_ROUND = 60000          # amounts of round r: 100 + r*PER_ROUND + n  (< topup_max 200000)


def _stream(srv, sims, rnd, attempts, interrupt, min_acks):
    stop = threading.Event()
    counter = itertools.count()
    lock = threading.Lock()
    acked = [0]
    headers = {"Authorization": "Bearer " + srv.tokens["operator"], "Content-Type": "application/json"}
    port = srv.port

    def worker():
        while not stop.is_set():
            n = next(counter)
            if n >= PER_ROUND - 100:
                return
            amount = 100 + rnd * PER_ROUND + n
            iccid = sims[n % len(sims)]
            key = "crash-r%d-n%d" % (rnd, n)
            body = json.dumps({"amount": amount, "currency": "CNY", "channel": "kiosk", "method": "cash"}).encode()
            rec = {"key": key, "iccid": iccid, "amount": amount, "body": body, "state": "unsent",
                   "round": rnd, "raw": None, "status": None}
            attempts[amount] = rec
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            try:
                try:
                    conn.connect()
                except OSError:
                    if stop.is_set():
                        return
                    time.sleep(0.005)
                    continue
                rec["state"] = "maybe"
                try:
                    conn.request("POST", "/v1/sims/%s/topups" % iccid, body=body,
                                 headers=dict(headers, **{"Idempotency-Key": key}))
                    r = conn.getresponse()
                    raw = r.read()
                except (OSError, http.client.HTTPException):
                    continue
                rec["status"], rec["raw"] = r.status, raw
                if r.status == 201:
                    rec["state"] = "acked"
                    rec["topup"] = json.loads(raw)["topup"]["id"]
                    rec["receipt"] = json.loads(raw)["receipt"]["number"]
                    with lock:
                        acked[0] += 1
                elif 400 <= r.status < 500:
                    rec["state"] = "rejected"
            finally:
                conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while acked[0] < min_acks and time.monotonic() < deadline:
        time.sleep(0.002)
    assert acked[0] >= min_acks, "only %d top-ups acknowledged in 20 s" % acked[0]
    time.sleep(random.uniform(0, 0.03))
    result = interrupt()
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "client threads stuck"
    return result


def _check_sims(srv, sims, attempts):
    """Every transaction maps to one acked/maybe request of its SIM, at most once;
    every acked request is present; balance_after is a running sum; balance == sum."""
    applied = {}
    for iccid in sims:
        txns = srv.txns(iccid)
        assert all(t["kind"] == "topup" for t in txns), [t for t in txns if t["kind"] != "topup"][:3]
        amounts = [t["amount"] for t in txns]
        dups = sorted({a for a in amounts if amounts.count(a) > 1})
        assert not dups, "top-ups applied twice on %s: amounts %r" % (iccid, dups[:10])
        running = 0
        for t in reversed(txns):
            rec = attempts.get(t["amount"])
            assert rec is not None, "transaction %r matches no request" % (t,)
            assert rec["iccid"] == iccid, "transaction %r on the wrong SIM" % (t,)
            assert rec["state"] in ("acked", "maybe"), \
                "a %s request (status %s) was applied: %r" % (rec["state"], rec["status"], t)
            if rec["state"] == "acked":
                assert t["receipt"] == rec["receipt"], (t, rec["receipt"])
            running += t["amount"]
            assert t["balance_after"] == running, "balance_after not a running sum at %r" % (t,)
            applied[t["amount"]] = t
        assert srv.balance(iccid) == running, "balance %d != sum of transactions %d" % (srv.balance(iccid), running)
    lost = [r for r in attempts.values() if r["state"] == "acked" and r["amount"] not in applied]
    assert not lost, "%d acknowledged top-ups lost, e.g. %r" % (len(lost), [(r["key"], r["topup"]) for r in lost[:5]])
    return applied


def _replay(srv, rec):
    return srv.request("POST", "/v1/sims/%s/topups" % rec["iccid"], rec["body"], idem=rec["key"])


def _verify_after_restart(srv, sims, attempts, rnd):
    applied = _check_sims(srv, sims, attempts)

    # acknowledged top-ups of this round: the same bytes on replay, and the receipt exists
    mine = [r for r in attempts.values() if r["state"] == "acked" and r["round"] == rnd]
    older = [r for r in attempts.values() if r["state"] == "acked" and r["round"] < rnd]
    for rec in mine + random.sample(older, min(20, len(older))):
        r = _replay(srv, rec)
        assert r.status == 201 and r.raw == rec["raw"], \
            "replay of acknowledged %s differs:\n%r\n%r" % (rec["key"], rec["raw"], r.raw)
        assert r.headers.get("idempotent-replayed") == "true"
    for rec in random.sample(mine, min(30, len(mine))):
        st, _, rc = srv.request("GET", "/v1/receipts/" + rec["receipt"])
        assert st == 200, rc
        assert (rc["topup"], rc["amount"], rc["iccid"]) == (rec["topup"], rec["amount"], rec["iccid"])

    # in-flight at the kill: replay resolves them one way or the other
    maybes = [r for r in attempts.values() if r["state"] == "maybe"]
    for rec in maybes:
        r = _replay(srv, rec)
        assert r.status == 201, "replay of in-flight key %s after restart: %r" % (rec["key"], r)
        replayed = r.headers.get("idempotent-replayed") == "true"
        if rec["amount"] in applied:
            assert replayed, "applied before the crash but executed again: %s" % rec["key"]
            assert r.body["receipt"]["number"] == applied[rec["amount"]]["receipt"]
        else:
            assert not replayed, "replayed a response whose effect is missing: %s" % rec["key"]
        assert r.body["topup"]["amount"] == rec["amount"]
        rec.update(state="acked", raw=r.raw, status=201, topup=r.body["topup"]["id"],
                   receipt=r.body["receipt"]["number"])
    _check_sims(srv, sims, attempts)
    srv.ledger_ok()
    return len(mine), len(maybes)


def test_kill9_during_topup_stream(server_factory):
    srv = server_factory("--set", "daily_cap=4000000000000")
    sims = [srv.new_sim() for _ in range(N_SIMS)]
    attempts = {}
    stats = []
    for rnd in range(ROUNDS):
        _stream(srv, sims, rnd, attempts, srv.kill9, min_acks=random.randint(40, 160))
        assert srv.proc.returncode == -9
        srv.start()   # same DB
        stats.append(_verify_after_restart(srv, sims, attempts, rnd))
    rejected = [r for r in attempts.values() if r["state"] == "rejected"]
    assert not rejected, "valid top-ups were refused: %r" % ([(r["status"], r["raw"]) for r in rejected[:3]],)
    print("acked/in-flight per round:", stats)


def test_sigterm_during_topup_stream(server_factory):
    srv = server_factory("--set", "daily_cap=4000000000000")
    sims = [srv.new_sim() for _ in range(N_SIMS)]
    attempts = {}
    code = _stream(srv, sims, 0, attempts, srv.stop, min_acks=60)
    assert code == 0, "topupd exited with %r on SIGTERM" % (code,)
    srv.start()
    _verify_after_restart(srv, sims, attempts, 0)
    # requests answered during shutdown must be either 201 or a clean 503
    for rec in attempts.values():
        assert rec["status"] in (None, 201, 503), (rec["status"], rec["raw"])


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_sighup_and_sigint_stop_as_sigterm_does(server_factory, sig):
    """The terminal topupd ran in goes away (SIGHUP), or Ctrl-C: it drains and
    exits 0 like SIGTERM. SIGHUP killed it mid-answer (status 129)."""
    srv = server_factory()
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    assert srv.stop(sig=sig) == 0
    assert "%s: stopping" % signal.Signals(sig).name in srv.log_tail(5)
    srv.start()
    assert srv.balance(iccid) == 1000
    srv.ledger_ok()


def test_kill9_during_sweep(server_factory):
    """kill -9 while the sweep terminates many SIMs: after the restart every SIM is
    either untouched or fully terminated (balance 0 and one forfeiture)."""
    srv = server_factory(test_clock=True)
    sims = []
    for i in range(120):
        iccid = srv.new_sim(msisdn=False)
        srv.topup_ok(iccid, 100 + i)
        sims.append((iccid, 100 + i))
    srv.advance(30 * DAY + 30 * DAY + 90 * DAY - 60)   # just short of termination for all
    result = {}

    def sweep():
        try:
            result["r"] = srv.request("POST", "/v1/test/clock", {"advance": 3 * DAY}, token="admin", timeout=20)
        except Exception as e:
            result["r"] = e

    t = threading.Thread(target=sweep, daemon=True)
    t.start()
    time.sleep(random.uniform(0.0, 0.02))
    srv.kill9()
    t.join(20)
    srv.start()
    terminated = 0
    for iccid, amount in sims:
        s = srv.sim(iccid)
        txns = srv.txns(iccid)
        if s["state"] == "terminated":
            terminated += 1
            assert s["balance"]["amount"] == 0
            assert [t["kind"] for t in txns] == ["forfeiture", "topup"], txns
            assert abs(txns[0]["amount"]) == amount
        else:
            assert s["balance"]["amount"] == amount, s
            assert [t["kind"] for t in txns] == ["topup"], txns
    if getattr(result.get("r"), "status", None) == 200:
        assert terminated == len(sims), "the sweep was acknowledged but only %d SIMs terminated" % terminated
    srv.ledger_ok()


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_stopped_during_an_import_in_slices(server_factory, how):
    """kill -9 between the slices of a large import (engine.h E9): the slices
    before it stay, nothing was answered, the ledger and the database hold, and
    the client's retry with the same key completes the import. Stopped by
    SIGTERM, the import is answered 503 incomplete: it used to say
    shutting_down, "nothing was changed", with the earlier slices saved."""
    srv = server_factory()
    ids = []
    for i in range(200000):
        digits = "8970155%012d" % i
        ids.append(digits + luhn_check_digit(digits))
    csv = ("iccid\n" + "\n".join(ids) + "\n").encode()
    key = "crash-import-1"
    answered = []

    def post():
        try:
            answered.append(srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv",
                                        idem=key, timeout=60))
        except (OSError, http.client.HTTPException):
            pass

    def count():
        con = open_ro(srv.db)
        try:
            return con.execute("SELECT count(*) FROM sims WHERE iccid LIKE '8970155%'").fetchone()[0]
        finally:
            con.close()

    t = threading.Thread(target=post)
    t.start()
    started = time.monotonic()
    while time.monotonic() - started < 30 and not count():
        time.sleep(0.002)   # a slice has committed
    if how == "kill9":
        srv.kill9()
        t.join()
        assert not answered, "answered before the whole import was durable: %r" % (answered,)
    else:
        assert srv.stop() == 0
        t.join()
        assert len(answered) == 1, answered
        err = assert_error(answered[0], 503, "incomplete")
        assert "Idempotency-Key" in err["message"] and answered[0].headers.get("retry-after"), answered
    kept = count()
    assert 0 < kept < len(ids), kept   # killed between slices
    srv.integrity_ok()
    srv.start()
    srv.ledger_ok()
    r = srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem=key, timeout=60)
    assert r.status == 200, r
    assert (r.body["rows"], r.body["imported"] + r.body["existing"], r.body["existing"]) == (len(ids), len(ids), kept)
    srv.ledger_ok()



def test_import_acknowledged_then_killed(server_factory):
    """An import slice that dirties more pages than a small page cache holds
    spills some to the log and changes them again before COMMIT, which then
    rewrites the commit frame's checksum (walbuf.c W2). Answered, then killed
    at once with no other write after it: every SIM it imported is there
    after the restart (the rewritten header used to wait in the log's
    buffer, outside the syncer's sync, and the last slice was lost)."""
    srv = server_factory("--set", "cache_mb=2", "--set", "sweep_interval=86400")

    def csv_of(numbers):
        ids = []
        for i in numbers:
            digits = "8970156%012d" % i
            ids.append(digits + luhn_check_digit(digits))
        return ids, ("iccid\n" + "\n".join(ids) + "\n").encode()

    _, csv = csv_of(range(0, 120000, 2))   # every other number: the next import lands between them
    r = srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", timeout=120)
    assert r.status == 200, r
    spread = random.Random(7).sample(range(1, 120000, 2), 2000)   # one slice, all over the indexes
    ids, csv = csv_of(spread)
    r = srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem="ack-import",
                    timeout=60)
    assert r.status == 200 and r.body["imported"] == len(ids), r
    srv.kill9()
    con = open_ro(srv.db)
    try:
        kept = con.execute("SELECT count(*) FROM sims WHERE iccid IN (%s)" % ",".join("?" * len(ids)),
                           ids).fetchone()[0]
    finally:
        con.close()
    assert kept == len(ids), "acknowledged, and %d of %d SIMs are there after kill -9" % (kept, len(ids))
    srv.start()
    srv.ledger_ok()

"""Idempotency-Key semantics (docs/API.md, "Idempotency")."""
import http.client
import json
import sqlite3
import threading

from e2e_util import assert_error, make_key


def _replayed(headers):
    return headers.get("idempotent-replayed", "").lower() == "true"


def test_same_key_same_body_replays_byte_for_byte(server):
    iccid = server.new_sim()
    key = make_key("replay")
    r1 = server.topup(iccid, 1000, key=key)
    assert r1.status == 201, r1
    assert not _replayed(r1.headers)
    for _ in range(3):
        r2 = server.topup(iccid, 1000, key=key)
        assert r2.status == 201
        assert r2.raw == r1.raw, "replay differs:\n%r\n%r" % (r1.raw, r2.raw)
        assert _replayed(r2.headers), r2.headers
    assert server.snapshot(iccid) == ("active", 1000, 1)
    # a different key is a new top-up
    r3 = server.topup(iccid, 1000, key=make_key("replay"))
    assert r3.status == 201 and not _replayed(r3.headers)
    assert r3.body["topup"]["id"] != r1.body["topup"]["id"]
    assert server.snapshot(iccid) == ("active", 2000, 2)
    server.ledger_ok()


def test_same_key_different_body_is_reused(server):
    iccid = server.new_sim()
    key = make_key("reuse")
    r1 = server.topup(iccid, 1000, key=key)
    assert r1.status == 201, r1
    before = server.snapshot(iccid)
    assert_error(server.topup(iccid, 1001, key=key), 422, "idempotency_key_reused")
    assert_error(server.topup(iccid, 1000, key=key, method="wechat"), 422, "idempotency_key_reused")
    # same body, other path (another SIM)
    other = server.new_sim()
    assert_error(server.topup(other, 1000, key=key), 422, "idempotency_key_reused")
    assert server.snapshot(iccid) == before
    assert server.snapshot(other) == ("inactive", 0, 0)
    # the original still replays
    r4 = server.topup(iccid, 1000, key=key)
    assert r4.status == 201 and r4.raw == r1.raw and _replayed(r4.headers)
    server.ledger_ok()


def test_key_format(server):
    iccid = server.new_sim()
    long_ok = "k" * 128
    r = server.topup(iccid, 100, key=long_ok)
    assert r.status == 201, r
    for bad in ("k" * 129, "bad\x7fkey"):
        assert_error(server.topup(iccid, 100, key=bad), 400, "idempotency_key_invalid")
    assert server.snapshot(iccid) == ("active", 100, 1)
    # printable ASCII with punctuation and spaces is fine
    r = server.topup(iccid, 100, key="order #42 / 2026-11-24 ~ok!")
    assert r.status == 201, r
    assert server.snapshot(iccid) == ("active", 200, 2)


def _concurrent_same_key(server, iccid, key, amount, n=50):
    body = json.dumps(server.topup_body(amount)).encode()
    headers = {"Authorization": "Bearer " + server.tokens["operator"], "Content-Type": "application/json",
               "Idempotency-Key": key}
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.connect()
            barrier.wait(timeout=30)
            conn.request("POST", "/v1/sims/%s/topups" % iccid, body=body, headers=headers)
            r = conn.getresponse()
            results[i] = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except Exception as e:  # recorded, asserted below
            results[i] = ("exception", repr(e), b"")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_same_key_credits_once(server):
    for round_ in range(3):
        iccid = server.new_sim()
        key = make_key("conc")
        amount = 1000 + round_
        results = _concurrent_same_key(server, iccid, key, amount)
        assert all(r is not None for r in results)
        oks = [r for r in results if r[0] == 201]
        others = [r for r in results if r[0] != 201]
        assert oks, "no 201 at all: %r" % (results[:3],)
        bodies = {r[2] for r in oks}
        assert len(bodies) == 1, "201 bodies differ: %r" % (list(bodies)[:2],)
        for st, hdrs, raw in others:
            assert st == 409, (st, hdrs, raw)
            assert json.loads(raw)["error"]["code"] == "idempotency_key_in_use", raw
        originals = [r for r in oks if not _replayed(r[1])]
        assert len(originals) == 1, "%d non-replayed 201s" % len(originals)
        body = json.loads(oks[0][2])
        assert body["topup"]["amount"] == amount and body["balance"]["amount"] == amount

        # exactly one credit
        txns = server.txns(iccid)
        assert [(t["kind"], t["amount"]) for t in txns] == [("topup", amount)]
        assert server.balance(iccid) == amount
        # and afterwards the key replays the same bytes
        r = server.topup(iccid, amount, key=key)
        assert r.status == 201 and r.raw == oks[0][2] and _replayed(r.headers)
    server.ledger_ok()


def test_concurrent_distinct_keys_all_applied(server):
    """Sanity counterpart: 40 concurrent top-ups with distinct keys all land."""
    iccid = server.new_sim()
    n = 40
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait(timeout=30)
        try:
            results[i] = server.topup(iccid, 100 + i, key="distinct-%d" % i)
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(getattr(r, "status", None) == 201 for r in results), [r for r in results if getattr(r, "status", None) != 201][:3]
    expected = sum(100 + i for i in range(n))
    assert server.balance(iccid) == expected
    txns = server.txns(iccid)
    assert sorted(t["amount"] for t in txns) == sorted(100 + i for i in range(n))
    # balance_after is a consistent running sum in chronological order
    running = 0
    for t in reversed(txns):
        running += t["amount"]
        assert t["balance_after"] == running
    server.ledger_ok()


def test_replay_ignores_later_state(server):
    """A replay returns the stored response even when the same request would now fail."""
    iccid = server.new_sim()
    key = make_key("later")
    r1 = server.topup(iccid, 1000, key=key)
    assert r1.status == 201, r1
    st, _, _ = server.request("POST", "/v1/sims/%s/suspend" % iccid, token="admin")
    assert st == 200
    assert_error(server.topup(iccid, 1000), 409, "sim_suspended")
    r2 = server.topup(iccid, 1000, key=key)
    assert r2.status == 201 and r2.raw == r1.raw and _replayed(r2.headers), r2
    assert server.snapshot(iccid) == ("suspended", 1000, 2)   # the top-up and the suspension


def test_replay_ignores_daily_cap(server):
    iccid = server.new_sim()
    key = make_key("cap")
    r1 = server.topup(iccid, 200000, key=key)
    assert r1.status == 201, r1
    server.topup_ok(iccid, 200000)
    server.topup_ok(iccid, 100000)
    st = server.topup(iccid, 100)
    if st.status == 201:   # the local day turned over between the calls: nothing to test
        return
    assert_error(st, 422, "daily_limit_exceeded")
    r2 = server.topup(iccid, 200000, key=key)
    assert r2.status == 201 and r2.raw == r1.raw and _replayed(r2.headers), r2
    assert server.snapshot(iccid) == ("active", 500000, 3)


def test_key_reused_across_routes(server):
    iccid = server.new_sim()
    key = make_key("xroute")
    assert server.topup(iccid, 5000, key=key).status == 201
    pbody, _ = server.create_plan(price=100)
    r = server.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=key)
    assert_error(r, 422, "idempotency_key_reused")
    assert server.snapshot(iccid) == ("active", 5000, 1)
    assert server.sim(iccid)["bundles"] == []


def test_idempotency_key_on_other_posts(server):
    """Every POST accepts a key: a repeat replays the stored status (201, not 200)."""
    from e2e_util import make_iccid, make_msisdn
    body = {"iccid": make_iccid(), "msisdn": make_msisdn()}
    key = make_key("sim")
    r1 = server.request("POST", "/v1/sims", body, token="admin", idem=key)
    assert r1.status == 201, r1
    r2 = server.request("POST", "/v1/sims", body, token="admin", idem=key)
    assert r2.status == 201 and r2.raw == r1.raw and _replayed(r2.headers), r2
    other = dict(body, iccid=make_iccid())
    assert_error(server.request("POST", "/v1/sims", other, token="admin", idem=key), 422,
                 "idempotency_key_reused")
    assert_error(server.request("GET", "/v1/sims/" + other["iccid"]), 404, "sim_not_found")
    # without a key the identical repeat is the documented 200
    r3 = server.request("POST", "/v1/sims", body, token="admin")
    assert r3.status == 200, r3


def test_a_refusal_is_final_for_its_key(server):
    """A refusal met while executing is stored with its key: a repeat gets it
    again, byte for byte, even once it would succeed, and another request
    under the key is reused. It used to store nothing: the same request,
    repeated after a top-up, was applied (a till that had told the customer
    "declined" then charged them), and so was another one under the key."""
    code = server.create_plan(price=5000)[0]["code"]
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    key = make_key("bu")
    first = server.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": code}, idem=key, lang="zh")
    assert_error(first, 402, "insufficient_balance", "plan")
    server.topup_ok(iccid, 10000)   # it could pay now
    again = server.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": code}, idem=key, lang="en")
    assert (again.status, again.raw) == (first.status, first.raw), again   # as first answered, in Chinese
    assert again.headers.get("idempotent-replayed") == "true", again.headers
    assert server.balance(iccid) == 11000 and server.sim(iccid)["bundles"] == []
    con = sqlite3.connect("file:%s?mode=ro" % server.db, uri=True)
    try:   # stored as a body, referring to no row (fuzz_http found it referring to garbage)
        row = con.execute("SELECT status, body, topup_id, sign_off, sign_len FROM idempotency WHERE key = ?",
                          (key,)).fetchone()
    finally:
        con.close()
    assert row == (402, first.raw.decode(), None, 0, 0), row

    other = server.new_sim()
    server.topup_ok(other, 200000, key="cap-1")
    server.topup_ok(other, 200000, key="cap-2")
    refused = server.topup(other, 200000, key="cap-3")
    assert_error(refused, 422, "daily_limit_exceeded", "amount")
    assert_error(server.topup(other, 100, key="cap-3"), 422, "idempotency_key_reused", "Idempotency-Key")
    assert server.topup(other, 200000, key="cap-3").raw == refused.raw
    assert server.balance(other) == 400000

    # refused before executing (a malformed body): nothing stored, the key is free
    k = make_key("bad")
    assert_error(server.request("POST", "/v1/sims/%s/topups" % iccid, {"amount": "ten"}, idem=k), 400,
                 "invalid_amount", "amount")
    assert server.topup(iccid, 100, key=k).status == 201
    server.ledger_ok()


def test_a_token_that_replaces_another_keeps_its_keys(server):
    """Rotation (auth.h A4): a request sent under the old token and retried,
    with its key, under the token that replaces it (even once the old one is
    revoked) replays; it is not applied twice. The line goes on through a
    second rotation; a token of its own, not replacing, has its own keys.
    Before, keys were scoped to the token alone, so a kiosk replaying its
    offline queue after its token was rotated doubled every top-up whose
    answer it had lost."""
    iccid = server.new_sim()
    r = server.request("POST", "/v1/tokens", {"role": "operator", "name": "kiosk 4"}, token="admin")
    assert r.status == 201 and r.body["replaces"] is None, r
    old_id, old = r.body["id"], r.body["token"]
    key = make_key("rotate")
    first = server.topup(iccid, 700, key=key, token=old)
    assert first.status == 201, first

    r = server.request("POST", "/v1/tokens", {"replaces": old_id}, token="admin")
    assert r.status == 201, r
    assert (r.body["role"], r.body["name"], r.body["replaces"]) == ("operator", "kiosk 4", old_id), r
    new_id, new = r.body["id"], r.body["token"]
    assert server.request("DELETE", "/v1/tokens/%d" % old_id, token="admin").status == 200
    assert server.topup(iccid, 700, key=key, token=old).status == 401

    again = server.topup(iccid, 700, key=key, token=new)
    assert again.status == 201 and again.raw == first.raw and _replayed(again.headers), again
    assert_error(server.topup(iccid, 701, key=key, token=new), 422, "idempotency_key_reused")

    r = server.request("POST", "/v1/tokens", {"replaces": new_id, "role": "operator", "name": "kiosk 4b"},
                       token="admin")
    assert r.status == 201 and r.body["name"] == "kiosk 4b", r
    third = server.topup(iccid, 700, key=key, token=r.body["token"])
    assert third.raw == first.raw and _replayed(third.headers), third

    r = server.request("POST", "/v1/tokens", {"role": "operator"}, token="admin")
    fresh_id = r.body["id"]
    fresh = server.topup(iccid, 700, key=key, token=r.body["token"])
    assert fresh.status == 201 and not _replayed(fresh.headers), fresh
    assert server.snapshot(iccid) == ("active", 1400, 2)

    listed = {t["id"]: t for t in server.request("GET", "/v1/tokens", token="admin").body["data"]}
    assert listed[new_id]["replaces"] == old_id and listed[old_id]["replaces"] is None
    # the scope is the text keys stored before migration 012 have: "token:" and the first token's id
    con = sqlite3.connect("file:%s?mode=ro" % server.db, uri=True)
    try:
        scopes = [row[0] for row in con.execute("SELECT scope FROM idempotency WHERE key = ?", (key,))]
    finally:
        con.close()
    assert sorted(scopes) == sorted(["token:%d" % old_id, "token:%d" % fresh_id]), scopes
    server.ledger_ok()


def test_replacing_a_token_refuses_what_is_not_one(server):
    """replaces must name a token (404 not_found, param replaces), as a
    positive integer (400), of the same role as the new one (400, param
    role); without replaces the role is required. Nothing is created."""
    r = server.request("POST", "/v1/tokens", {"role": "operator"}, token="admin")
    op_id = r.body["id"]
    before = len(server.request("GET", "/v1/tokens", token="admin").body["data"])
    for body, status, code, param in [
        ({"replaces": 999999}, 404, "not_found", "replaces"),
        ({"replaces": "1"}, 400, "invalid_parameter", "replaces"),
        ({"replaces": -1}, 400, "invalid_parameter", "replaces"),
        ({"replaces": op_id, "role": "admin"}, 400, "invalid_parameter", "role"),
        ({"replaces": 0}, 400, "missing_parameter", "role"),
        ({"name": "x"}, 400, "missing_parameter", "role"),
    ]:
        r = server.request("POST", "/v1/tokens", body, token="admin", lang="ru")
        assert_error(r, status, code)
        assert r.body["error"].get("param") == param, (body, r)
    assert len(server.request("GET", "/v1/tokens", token="admin").body["data"]) == before


def test_cli_token_create_replaces(server):
    """`topupd token create --replaces ID` makes the replacement (the old
    token's role unless --role says another, which is refused), and
    `token list` shows which token each replaces."""
    r = server.request("POST", "/v1/tokens", {"role": "operator", "name": "till 9"}, token="admin")
    old_id = r.body["id"]
    iccid = server.new_sim()
    key = make_key("cli-rotate")
    first = server.topup(iccid, 500, key=key, token=r.body["token"])
    cp = server.cli("token", "create", "--replaces", str(old_id), "--db", server.db)
    new = cp.stdout.strip()
    assert "(operator, sharing the idempotency keys of the one it replaces)" in cp.stderr, cp.stderr
    again = server.topup(iccid, 500, key=key, token=new)
    assert again.raw == first.raw and _replayed(again.headers), again
    listed = server.cli("token", "list", "--db", server.db).stdout
    assert any(ln.endswith("\ttill 9\treplaces %d" % old_id) for ln in listed.splitlines()), listed
    cp = server.cli("token", "create", "--replaces", str(old_id), "--role", "admin", "--db", server.db, check=False)
    assert cp.returncode == 1 and "has another role" in cp.stderr, cp.stderr
    cp = server.cli("token", "create", "--replaces", "99999", "--db", server.db, check=False)
    assert cp.returncode == 1 and "there is no token 99999" in cp.stderr, cp.stderr
    cp = server.cli("token", "create", "--replaces", "x1", "--db", server.db, check=False)
    assert cp.returncode == 2 and "is not a token id" in cp.stderr, cp.stderr

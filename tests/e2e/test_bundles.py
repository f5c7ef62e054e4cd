"""Plans and bundle purchases."""
import sqlite3
import threading
import time

import pytest

from e2e_util import DAY, assert_error, has_cyrillic, make_iccid, make_key, parse_time


def _buy(server, iccid, plan, key=None, token="operator", lang=None):
    return server.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": plan}, token=token,
                          idem=key or make_key("bu"), lang=lang)


def test_create_plan_and_list(server):
    body, plan = server.create_plan(price=5000, validity_days=30)
    for k in ("code", "name", "price", "currency", "validity_days", "allowances", "zones", "payg"):
        assert plan[k] == body[k], k
    # identical repeat: 200
    st, _, again = server.request("POST", "/v1/plans", body, token="admin")
    assert st == 200, again
    assert again["code"] == body["code"] and again["price"] == 5000
    # same code, other body: 409
    st, _, err = server.request("POST", "/v1/plans", dict(body, price=6000), token="admin")
    assert_error((st, _, err), 409, "plan_exists")
    # listed, anonymously, with active true, unchanged price
    st, _, listing = server.request("GET", "/v1/plans", token=None)
    assert st == 200
    mine = [p for p in listing["data"] if p["code"] == body["code"]]
    assert len(mine) == 1
    assert mine[0]["active"] is True and mine[0]["price"] == 5000
    assert mine[0]["allowances"] == body["allowances"] and mine[0]["zones"] == body["zones"]
    assert mine[0]["name"] == body["name"]


def test_create_plan_requires_admin(server):
    body = {"code": "nope", "name": {"zh": "a", "en": "a", "ru": "a"}, "price": 1, "currency": "CNY",
            "validity_days": 1, "allowances": {"data_bytes": 1, "voice_seconds": 0, "sms": 0},
            "zones": ["460"], "payg": False}
    assert_error(server.request("POST", "/v1/plans", body, token="operator"), 403, "forbidden")
    assert_error(server.request("POST", "/v1/plans", body, token=None), 401, "unauthenticated")
    st, _, listing = server.request("GET", "/v1/plans", token=None)
    assert st == 200 and all(p["code"] != "nope" for p in listing["data"])


def _plan_body(**over):
    body = {"code": "bad-plan", "name": {"zh": "测试", "en": "test", "ru": "тест"}, "price": 1000, "currency": "CNY",
            "validity_days": 30, "allowances": {"data_bytes": 1, "voice_seconds": 0, "sms": 0},
            "zones": ["250", "46000"], "payg": False}
    for k, v in over.items():
        if v is _ABSENT:
            del body[k]
        else:
            body[k] = v
    return body


_ABSENT = object()
BAD_PLANS = [
    (dict(code=_ABSENT), 400, "missing_parameter", "code"),
    (dict(code=""), 400, "invalid_parameter", "code"),
    (dict(code="Data 10"), 400, "invalid_parameter", "code"),
    (dict(code=10), 400, "invalid_parameter", "code"),
    (dict(name=_ABSENT), 400, "missing_parameter", "name"),
    (dict(name="10 GB"), 400, "invalid_parameter", "name"),
    (dict(name={"zh": "测试", "en": "test"}), 400, "missing_parameter", "name"),
    (dict(name={"zh": "测试", "en": "", "ru": "тест"}), 400, "invalid_parameter", "name"),
    (dict(name={"zh": "测试", "en": "test", "ru": "тест", "fr": "essai"}), 400, "invalid_parameter", "name"),
    (dict(price=_ABSENT), 400, "missing_parameter", "price"),
    (dict(price=-1), 400, "invalid_parameter", "price"),
    (dict(price="1000"), 400, "invalid_parameter", "price"),
    (dict(price=10.5), 400, "invalid_parameter", "price"),
    (dict(price=2 ** 50 + 1), 400, "invalid_parameter", "price"),
    (dict(currency="USD"), 400, "currency_mismatch", "currency"),
    (dict(validity_days=0), 400, "invalid_parameter", "validity_days"),
    (dict(validity_days=3651), 400, "invalid_parameter", "validity_days"),
    (dict(allowances=[1, 0, 0]), 400, "invalid_parameter", "allowances"),
    (dict(allowances={"data_bytes": -1}), 400, "invalid_parameter", "allowances"),
    (dict(allowances={"data_bytes": 2 ** 63 - 1}), 400, "invalid_parameter", "allowances"),
    (dict(allowances={"sms": 2 ** 50 + 1}), 400, "invalid_parameter", "allowances"),
    (dict(allowances={"minutes": 100}), 400, "invalid_parameter", "allowances"),
    (dict(zones="250"), 400, "invalid_parameter", "zones"),
    (dict(zones=[250]), 400, "invalid_parameter", "zones"),
    (dict(zones=["RU"]), 400, "invalid_parameter", "zones"),
    (dict(zones=["2500"]), 400, "invalid_parameter", "zones"),
    (dict(zones=["2500011"]), 400, "invalid_parameter", "zones"),
    (dict(zones=["250", "250"]), 400, "invalid_parameter", "zones"),
    (dict(zones=["%03d" % (200 + i) for i in range(33)]), 400, "invalid_parameter", "zones"),
    (dict(code="a" * 33), 400, "invalid_parameter", "code"),
    (dict(name={"zh": "测试", "en": "x" * 129, "ru": "тест"}), 400, "invalid_parameter", "name"),
    (dict(name={"zh": "测试", "en": "10 GB\n", "ru": "тест"}), 400, "invalid_parameter", "name"),
    (dict(payg="no"), 400, "invalid_parameter", "payg"),
    (dict(colour="red"), 400, "invalid_parameter", "colour"),
]


@pytest.mark.parametrize("over,status,code,param", BAD_PLANS,
                         ids=["%s=%s" % next(iter(c[0].items())) if c[0] else "" for c in BAD_PLANS])
def test_bad_plan_is_refused_and_changes_nothing(server, over, status, code, param):
    before = server.request("GET", "/v1/plans", token=None).body["data"]
    r = server.request("POST", "/v1/plans", _plan_body(**over), token="admin", lang="ru")
    err = assert_error(r, status, code, param)
    assert has_cyrillic(err["message"]), err
    assert server.request("GET", "/v1/plans", token=None).body["data"] == before


def test_plan_zones_are_networks(server):
    """A zone lists visited networks: an MCC (3 digits) or an MCC and MNC (5 or 6)."""
    body = _plan_body(code="zones-ok", zones=["250", "46000", "310410"])
    r = server.request("POST", "/v1/plans", body, token="admin")
    assert r.status == 201 and r.body["zones"] == ["250", "46000", "310410"], r
    r = server.request("POST", "/v1/plans", _plan_body(code="no-zones", zones=[]), token="admin")
    assert r.status == 201 and r.body["zones"] == [], r
    most = ["%06d" % (310410 + i) for i in range(32)]   # the longest list, kept whole
    r = server.request("POST", "/v1/plans", _plan_body(code="most-zones", zones=most), token="admin")
    assert r.status == 201 and r.body["zones"] == most, r
    listed = [p for p in server.request("GET", "/v1/plans", token=None).body["data"] if p["code"] == "most-zones"]
    assert listed[0]["zones"] == most


def test_a_sale_past_the_ledgers_bound_fails_alone(server):
    """The issuance account's totals only grow. Once a sale would take them
    past int64, that sale is refused, 409 number_overflow, and changes
    nothing; the top-ups written in the same batch are not held up by it.
    Summed in the writer's cache (ledger L8), the overflow used to fail the
    whole batch at its end: the sale and every top-up beside it 503, and
    every later sale of that unit the same."""
    code = server.create_plan(price=0, validity_days=7, data_bytes=2 ** 50, voice_seconds=0, sms=0)[0]["code"]
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    assert _buy(server, iccid, code).status == 201   # the issuance account of bytes now exists
    # Years of sales, in one transfer to an account of its own: every total
    # still equals its transfers, so the ledger stays sound.
    assert server.stop() == 0
    con = sqlite3.connect(server.db)
    with con:
        issuer = con.execute("SELECT id FROM accounts WHERE name = 'issuance:bytes'").fetchone()[0]
        con.execute("INSERT INTO accounts(kind, unit, name, created_at) VALUES ('test', 'bytes', 'sold:bytes', 0)")
        sold = con.execute("SELECT id FROM accounts WHERE name = 'sold:bytes'").fetchone()[0]
        big = 2 ** 63 - 1 - 2 ** 50 - con.execute("SELECT debits_posted FROM accounts WHERE id = ?",
                                                      (issuer,)).fetchone()[0] + 1
        con.execute("INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, created_at) "
                    "VALUES ('test:years', ?, ?, ?, 'bytes', 'test', 0, 0)", (issuer, sold, big))
        con.execute("UPDATE accounts SET debits_posted = debits_posted + ? WHERE id = ?", (big, issuer))
        con.execute("UPDATE accounts SET credits_posted = credits_posted + ? WHERE id = ?", (big, sold))
    con.close()
    server.start()
    server.ledger_ok()
    others = [server.new_sim() for _ in range(8)]
    before = server.snapshot(iccid)
    for _ in range(3):
        results = {}

        def sale():
            results["sale"] = _buy(server, iccid, code, lang="ru")

        def topups(i):
            results[i] = [server.topup(others[i], 100) for _ in range(5)]

        threads = [threading.Thread(target=sale)] + [threading.Thread(target=topups, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        err = assert_error(results.pop("sale"), 409, "number_overflow")
        assert has_cyrillic(err["message"]), err
        assert all(r.status == 201 for rs in results.values() for r in rs), \
            [(r.status, r.body) for rs in results.values() for r in rs if r.status != 201]
    assert server.snapshot(iccid) == before
    assert all(server.balance(o) == 1500 for o in others)
    server.ledger_ok()


def test_buy_bundle(server):
    pbody, _ = server.create_plan(price=5000, validity_days=7, data_bytes=10737418240, voice_seconds=0, sms=50)
    code = pbody["code"]
    iccid = server.new_sim()
    server.topup_ok(iccid, 12000)
    t0 = time.time()
    key = make_key("bu")
    r = _buy(server, iccid, code, key=key)
    assert r.status == 201, r
    bu = r.body["bundle"]
    assert r.body["balance"] == {"amount": 7000, "currency": "CNY"}
    assert bu["plan"] == code and bu["state"] == "active"
    assert isinstance(bu["id"], str) and bu["id"]
    assert bu["remaining"] == {"data_bytes": 10737418240, "voice_seconds": 0, "sms": 50}
    assert abs(parse_time(bu["expires_at"]) - (t0 + 7 * DAY)) < 120

    sim = server.sim(iccid)
    assert sim["balance"]["amount"] == 7000
    assert sim["state"] == "active"
    assert len(sim["bundles"]) == 1
    listed = sim["bundles"][0]
    assert listed["id"] == bu["id"] and listed["plan"] == code and listed["state"] == "active"
    assert listed["remaining"] == {"data_bytes": 10737418240, "voice_seconds": 0, "sms": 50}
    assert listed["expires_at"] == bu["expires_at"]

    txns = server.txns(iccid)
    assert [t["kind"] for t in txns] == ["bundle_purchase", "topup"]
    assert abs(txns[0]["amount"]) == 5000 and txns[0]["balance_after"] == 7000

    # replay: same bytes, charged once
    r2 = _buy(server, iccid, code, key=key)
    assert r2.status == 201 and r2.raw == r.raw
    assert r2.headers.get("idempotent-replayed") == "true"
    assert server.snapshot(iccid) == ("active", 7000, 2)
    assert_error(_buy(server, iccid, "other_plan", key=key), 422, "idempotency_key_reused")

    # a second purchase of the same plan: two bundles, balance 2000
    r3 = _buy(server, iccid, code)
    assert r3.status == 201, r3
    assert r3.body["balance"]["amount"] == 2000
    assert len(server.sim(iccid)["bundles"]) == 2
    server.ledger_ok()


def test_buy_with_exact_balance(server):
    pbody, _ = server.create_plan(price=3000)
    iccid = server.new_sim()
    server.topup_ok(iccid, 3000)
    r = _buy(server, iccid, pbody["code"])
    assert r.status == 201, r
    assert r.body["balance"]["amount"] == 0
    assert server.snapshot(iccid) == ("active", 0, 2)
    server.ledger_ok()


def test_insufficient_balance(server):
    pbody, _ = server.create_plan(price=5000)
    iccid = server.new_sim()
    server.topup_ok(iccid, 3000)
    before = server.snapshot(iccid)
    r = _buy(server, iccid, pbody["code"])
    assert_error(r, 402, "insufficient_balance", "plan")
    assert server.snapshot(iccid) == before == ("active", 3000, 1)
    assert server.sim(iccid)["bundles"] == []
    # once the wallet can pay, a purchase goes through
    server.topup_ok(iccid, 2000)
    r = _buy(server, iccid, pbody["code"])
    assert r.status == 201, r
    assert server.balance(iccid) == 0
    server.ledger_ok()


def test_unknown_plan(server):
    iccid = server.new_sim()
    server.topup_ok(iccid, 3000)
    before = server.snapshot(iccid)
    assert_error(_buy(server, iccid, "no_such_plan"), 404, "plan_not_found")
    assert server.snapshot(iccid) == before
    assert server.sim(iccid)["bundles"] == []
    server.ledger_ok()


def test_buy_requires_active_sim_and_key(server):
    pbody, _ = server.create_plan(price=100)
    iccid = server.new_sim()
    assert_error(_buy(server, iccid, pbody["code"]), 409, "sim_not_active")
    assert server.snapshot(iccid) == ("inactive", 0, 0)
    server.topup_ok(iccid, 1000)
    r = server.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]})
    assert_error(r, 400, "idempotency_key_required")
    assert_error(_buy(server, iccid, pbody["code"], token=None), 401, "unauthenticated")
    assert server.snapshot(iccid) == ("active", 1000, 1)
    assert server.request("POST", "/v1/sims/%s/suspend" % iccid, token="admin").status == 200
    assert_error(_buy(server, iccid, pbody["code"]), 409, "sim_suspended")   # docs/API.md
    assert server.snapshot(iccid) == ("suspended", 1000, 2)   # the suspension is a record
    assert server.request("POST", "/v1/sims/%s/resume" % iccid, token="admin").status == 200
    assert_error(_buy(server, make_iccid(), pbody["code"]), 404, "sim_not_found")
    server.ledger_ok()


def test_free_plan(server):
    pbody, _ = server.create_plan(price=0, data_bytes=1024, voice_seconds=0, sms=0)
    iccid = server.new_sim()
    server.topup_ok(iccid, 100)
    r = _buy(server, iccid, pbody["code"])
    assert r.status == 201, r
    assert r.body["balance"]["amount"] == 100
    assert r.body["bundle"]["remaining"] == {"data_bytes": 1024, "voice_seconds": 0, "sms": 0}
    assert server.balance(iccid) == 100
    server.ledger_ok()


def test_plan_validation(server):
    base = {"code": "bad_plan", "name": {"zh": "包", "en": "Pack", "ru": "Пакет"}, "price": 100,
            "currency": "CNY", "validity_days": 30,
            "allowances": {"data_bytes": 1, "voice_seconds": 0, "sms": 0}, "zones": ["460"], "payg": False}
    for bad in (dict(base, price=-1), dict(base, validity_days=0), dict(base, currency="USD"),
                dict(base, allowances={"data_bytes": -1, "voice_seconds": 0, "sms": 0}),
                {k: v for k, v in base.items() if k != "code"}, dict(base, price="100")):
        st, _, body = server.request("POST", "/v1/plans", bad, token="admin")
        assert st == 400, (bad, st, body)
        assert isinstance(body, dict) and body["error"]["code"], body
    st, _, listing = server.request("GET", "/v1/plans", token=None)
    assert all(p["code"] != "bad_plan" for p in listing["data"])

"""Top-ups: POST /v1/sims/{iccid}/topups and GET /v1/sims/{iccid}/transactions."""
import time

from e2e_util import DAY, assert_error, make_iccid, make_key, parse_time


def test_first_topup_shape_and_activation(server):
    iccid = server.new_sim()
    assert server.sim(iccid)["state"] == "inactive"
    t0 = time.time()
    st, hdrs, body = server.topup(iccid, 1000, channel="portal", method="alipay")
    assert st == 201, body
    assert hdrs.get("idempotent-replayed", "false") != "true"

    tu = body["topup"]
    assert isinstance(tu["id"], str) and tu["id"]
    assert tu["iccid"] == iccid
    assert tu["amount"] == 1000 and tu["currency"] == "CNY"
    assert tu["channel"] == "portal" and tu["method"] == "alipay"
    assert tu["reactivation_fee"] == 0 and tu["reactivated"] is False
    created = parse_time(tu["created_at"])
    assert abs(created - t0) < 60

    assert body["balance"] == {"amount": 1000, "currency": "CNY"}
    assert body["state"] == "active"
    au = parse_time(body["active_until"])
    assert abs(au - (created + 30 * DAY)) <= 2, (body["active_until"], tu["created_at"])
    assert abs(au - (t0 + 30 * DAY)) < 60

    rc = body["receipt"]
    assert rc["topup"] == tu["id"] and rc["iccid"] == iccid
    assert rc["amount"] == 1000 and rc["currency"] == "CNY" and rc["balance_after"] == 1000
    assert rc["reactivation_fee"] == 0
    assert parse_time(rc["active_until"]) == au

    sim = server.sim(iccid)
    assert sim["state"] == "active"
    assert sim["balance"] == {"amount": 1000, "currency": "CNY"}
    assert parse_time(sim["active_until"]) == au
    assert parse_time(sim["grace_until"]) == au + 30 * DAY   # grace_days default 30
    server.ledger_ok()


def test_second_topup_extends_from_active_until(server):
    iccid = server.new_sim()
    first = server.topup_ok(iccid, 1000)
    au1 = parse_time(first["active_until"])
    second = server.topup_ok(iccid, 500, channel="agent", method="cash")
    assert second["balance"] == {"amount": 1500, "currency": "CNY"}
    assert second["state"] == "active"
    assert second["topup"]["id"] != first["topup"]["id"]
    assert second["receipt"]["number"] != first["receipt"]["number"]
    au2 = parse_time(second["active_until"])
    assert au2 == au1 + 30 * DAY, (first["active_until"], second["active_until"])
    assert server.balance(iccid) == 1500
    assert parse_time(server.sim(iccid)["active_until"]) == au2

    txns = server.txns(iccid)
    assert [(t["kind"], t["amount"], t["balance_after"]) for t in txns] == [
        ("topup", 500, 1500), ("topup", 1000, 1000)]
    assert txns[0]["receipt"] == second["receipt"]["number"]
    assert txns[1]["receipt"] == first["receipt"]["number"]
    assert (txns[0]["channel"], txns[0]["method"]) == ("agent", "cash")
    assert (txns[1]["channel"], txns[1]["method"]) == ("portal", "alipay")
    for t in txns:
        assert t["currency"] == "CNY"
        parse_time(t["created_at"])
    server.ledger_ok()


def test_all_operator_channels_and_methods(server):
    iccid = server.new_sim()
    combos = [("portal", "wechat"), ("agent", "card"), ("kiosk", "cash"),
              ("voucher", "voucher"), ("portal", "bank_card")]
    total = 0
    for i, (ch, me) in enumerate(combos):
        amount = 100 + i
        total += amount
        body = server.topup_ok(iccid, amount, channel=ch, method=me)
        assert (body["topup"]["channel"], body["topup"]["method"]) == (ch, me)
        assert body["balance"]["amount"] == total
    assert server.balance(iccid) == total
    server.ledger_ok()


def test_admin_channel_and_adjustment_method(server):
    iccid = server.new_sim()
    body = server.topup_ok(iccid, 700, token="admin", channel="admin", method="adjustment")
    assert body["topup"]["channel"] == "admin" and body["topup"]["method"] == "adjustment"
    assert server.balance(iccid) == 700
    # operator may not use them
    assert_error(server.topup(iccid, 100, channel="admin", method="cash"), 403, "forbidden")
    assert_error(server.topup(iccid, 100, channel="portal", method="adjustment"), 403, "forbidden")
    assert server.snapshot(iccid) == ("active", 700, 1)
    server.ledger_ok()


def test_limits_at_boundaries(server):
    iccid = server.new_sim()
    assert server.topup_ok(iccid, 100)["balance"]["amount"] == 100          # topup_min
    assert server.topup_ok(iccid, 200000)["balance"]["amount"] == 200100    # topup_max
    assert_error(server.topup(iccid, 99), 400, "amount_too_small", param="amount")
    assert_error(server.topup(iccid, 200001), 400, "amount_too_large", param="amount")
    assert server.snapshot(iccid) == ("active", 200100, 2)
    server.ledger_ok()


def test_transactions_pagination(server):
    iccid = server.new_sim()
    receipts = []
    for amount in (100, 200, 300, 400, 500):
        receipts.append(server.topup_ok(iccid, amount)["receipt"]["number"])
    receipts.reverse()   # newest first

    st, _, p1 = server.request("GET", "/v1/sims/%s/transactions?limit=2" % iccid)
    assert st == 200, p1
    assert [t["amount"] for t in p1["data"]] == [500, 400]
    assert [t["balance_after"] for t in p1["data"]] == [1500, 1000]
    assert p1["has_more"] is True

    st, _, p2 = server.request("GET", "/v1/sims/%s/transactions?limit=2&starting_after=%s"
                               % (iccid, p1["data"][-1]["id"]))
    assert st == 200, p2
    assert [t["amount"] for t in p2["data"]] == [300, 200]
    assert p2["has_more"] is True

    st, _, p3 = server.request("GET", "/v1/sims/%s/transactions?limit=2&starting_after=%s"
                               % (iccid, p2["data"][-1]["id"]))
    assert st == 200, p3
    assert [t["amount"] for t in p3["data"]] == [100]
    assert p3["has_more"] is False

    pages = p1["data"] + p2["data"] + p3["data"]
    assert [t["receipt"] for t in pages] == receipts
    assert len({t["id"] for t in pages}) == 5
    assert all(t["kind"] == "topup" for t in pages)
    times = [parse_time(t["created_at"]) for t in pages]
    assert times == sorted(times, reverse=True)

    # default limit (20) returns everything at once
    st, _, all_ = server.request("GET", "/v1/sims/%s/transactions" % iccid)
    assert st == 200
    assert [t["id"] for t in all_["data"]] == [t["id"] for t in pages]
    assert all_["has_more"] is False

    # exactly-filled page: has_more false when nothing follows
    st, _, p = server.request("GET", "/v1/sims/%s/transactions?limit=5" % iccid)
    assert st == 200 and len(p["data"]) == 5 and p["has_more"] is False
    st, _, p = server.request("GET", "/v1/sims/%s/transactions?limit=4" % iccid)
    assert st == 200 and len(p["data"]) == 4 and p["has_more"] is True
    # starting after the oldest: empty
    st, _, p = server.request("GET", "/v1/sims/%s/transactions?starting_after=%s" % (iccid, pages[-1]["id"]))
    assert st == 200 and p["data"] == [] and p["has_more"] is False


def test_transactions_limit_bounds(server):
    iccid = server.new_sim()
    for a in range(100, 100 + 3):
        server.topup_ok(iccid, a)
    st, _, p = server.request("GET", "/v1/sims/%s/transactions?limit=100" % iccid)
    assert st == 200 and len(p["data"]) == 3
    for bad in ("0", "101", "-1", "abc", "%2010", "%2B5", "", "5x"):
        st, _, body = server.request("GET", "/v1/sims/%s/transactions?limit=%s" % (iccid, bad))
        assert st == 400, (bad, st, body)
        assert body["error"]["code"] in ("invalid_parameter",), body
    for bad in ("tx_%2B1", "tx_%201", "tx_0", "tx_01", "1", "tx_"):
        assert_error(server.request("GET", "/v1/sims/%s/transactions?starting_after=%s" % (iccid, bad)), 400,
                     "invalid_cursor", "starting_after")


def test_transactions_empty_and_unknown_sim(server):
    iccid = server.new_sim()
    st, _, p = server.request("GET", "/v1/sims/%s/transactions" % iccid)
    assert st == 200 and p["data"] == [] and p["has_more"] is False, p
    assert_error(server.request("GET", "/v1/sims/%s/transactions" % make_iccid()), 404, "sim_not_found")
    assert_error(server.request("GET", "/v1/sims/%s/transactions" % iccid, token=None), 401, "unauthenticated")


def test_transactions_are_per_sim(server):
    a, b = server.new_sim(), server.new_sim()
    server.topup_ok(a, 1000)
    server.topup_ok(b, 2000)
    server.topup_ok(a, 300)
    assert [t["amount"] for t in server.txns(a)] == [300, 1000]
    assert [t["amount"] for t in server.txns(b)] == [2000]
    assert server.balance(a) == 1300 and server.balance(b) == 2000
    server.ledger_ok()


def test_idempotency_key_scoped_to_token(server):
    """The same key used by two different tokens is two different requests."""
    iccid = server.new_sim()
    key = make_key("shared")
    r1 = server.topup(iccid, 1000, key=key, token="operator")
    r2 = server.topup(iccid, 1000, key=key, token="admin")
    assert r1.status == 201 and r2.status == 201, (r1, r2)
    assert r1.body["topup"]["id"] != r2.body["topup"]["id"]
    assert r2.headers.get("idempotent-replayed", "false") != "true"
    assert server.balance(iccid) == 2000
    assert len(server.txns(iccid)) == 2
    server.ledger_ok()


def test_transactions_bad_cursor(server):
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    st, _, body = server.request("GET", "/v1/sims/%s/transactions?starting_after=garbage" % iccid)
    assert st == 400, body
    assert body["error"]["code"] in ("invalid_cursor", "invalid_parameter"), body


def test_times_are_rfc3339_utc(server):
    import re
    iccid = server.new_sim()
    body = server.topup_ok(iccid, 1000)
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    sim = server.sim(iccid)
    for v in (body["topup"]["created_at"], body["active_until"], body["receipt"]["issued_at"],
              body["receipt"]["active_until"], sim["active_until"], sim["grace_until"],
              server.txns(iccid)[0]["created_at"]):
        assert pat.match(v), v

"""SIM lifecycle with the test clock: active -> grace -> expired -> terminated,
reactivation fee, suspension."""
from db_invariants import check_database
from e2e_util import DAY, assert_error, fmt_time, make_iccid, make_key, parse_time


def _times(server, iccid):
    s = server.sim(iccid)
    return parse_time(s["active_until"]), parse_time(s["grace_until"])


def _kind(txns, kind):
    found = [t for t in txns if t["kind"] == kind]
    assert len(found) == 1, "expected one %s transaction in %r" % (kind, txns)
    return found[0]


def test_clock_route(server_factory):
    plain = server_factory()
    r = plain.request("POST", "/v1/test/clock", {"advance": 86400}, token="admin")
    assert r.status == 404, r
    clk = server_factory(test_clock=True)
    assert_error(clk.request("POST", "/v1/test/clock", {"advance": 60}, token="operator"), 403, "forbidden")
    assert_error(clk.request("POST", "/v1/test/clock", {"advance": 60}, token=None), 401, "unauthenticated")
    t1 = clk.now()
    # A misspelt key is refused, as on every other route: it moved nothing and answered 200.
    assert_error(clk.request("POST", "/v1/test/clock", {"advanc": 86400}, token="admin"), 400,
                 "invalid_parameter", "advanc")
    assert clk.now() - t1 <= 60
    t2 = clk.advance(10 * DAY)
    assert 10 * DAY <= t2 - t1 <= 10 * DAY + 60
    target = t2 + 3 * DAY
    st, _, body = clk.request("POST", "/v1/test/clock", {"now": fmt_time(target)},
                              token="admin")
    assert st == 200, body
    assert abs(parse_time(body["now"]) - target) <= 2


def test_active_grace_topup_reactivates_without_fee(server_factory):
    srv = server_factory("--set", "reactivation_fee=500", test_clock=True)
    iccid = srv.new_sim()
    first = srv.topup_ok(iccid, 1000)
    au, gu = _times(srv, iccid)
    assert gu == au + 30 * DAY

    # just before active_until: still active
    srv.advance_to(au, margin=-3600)
    assert srv.sim(iccid)["state"] == "active"
    # past active_until: grace, balance kept
    now = srv.advance_to(au, margin=3600)
    s = srv.sim(iccid)
    assert s["state"] == "grace", s
    assert s["balance"]["amount"] == 1000
    # a bundle needs an active SIM
    pbody, _ = srv.create_plan(price=100)
    assert_error(srv.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=make_key()),
                 409, "sim_not_active")
    assert srv.snapshot(iccid) == ("grace", 1000, 1)

    body = srv.topup_ok(iccid, 500)
    assert body["state"] == "active"
    assert body["topup"]["reactivation_fee"] == 0
    assert body["receipt"]["reactivation_fee"] == 0
    assert body["balance"]["amount"] == 1500
    created = parse_time(body["topup"]["created_at"])
    assert abs(created - now) < 60
    # extend rule: max(now, active_until) + 30 days = now + 30 days
    assert abs(parse_time(body["active_until"]) - (created + 30 * DAY)) <= 2
    s = srv.sim(iccid)
    assert s["state"] == "active" and s["balance"]["amount"] == 1500
    txns = srv.txns(iccid)
    assert [t["kind"] for t in txns] == ["topup", "topup"]
    assert txns[1]["receipt"] == first["receipt"]["number"]
    srv.ledger_ok()


def test_expired_topup_charges_reactivation_fee(server_factory):
    srv = server_factory("--set", "reactivation_fee=500", test_clock=True)
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    au, gu = _times(srv, iccid)

    srv.advance_to(au)
    assert srv.sim(iccid)["state"] == "grace"
    srv.advance_to(gu, margin=-3600)
    assert srv.sim(iccid)["state"] == "grace"
    now = srv.advance_to(gu, margin=3600)
    s = srv.sim(iccid)
    assert s["state"] == "expired", s
    assert s["balance"]["amount"] == 1000
    assert srv.snapshot(iccid) == ("expired", 1000, 1)

    body = srv.topup_ok(iccid, 2000)
    assert body["state"] == "active"
    assert body["topup"]["reactivated"] is True
    assert body["topup"]["reactivation_fee"] == 500
    assert body["topup"]["amount"] == 2000
    assert body["balance"]["amount"] == 1000 + 2000 - 500
    assert body["receipt"]["reactivation_fee"] == 500
    assert body["receipt"]["balance_after"] == 2500
    created = parse_time(body["topup"]["created_at"])
    assert abs(created - now) < 60
    assert abs(parse_time(body["active_until"]) - (created + 30 * DAY)) <= 2

    s = srv.sim(iccid)
    assert s["state"] == "active" and s["balance"]["amount"] == 2500
    txns = srv.txns(iccid)
    assert len(txns) == 3
    fee = _kind(txns, "reactivation_fee")
    assert abs(fee["amount"]) == 500
    assert txns[0]["balance_after"] == 2500
    tops = [t for t in txns if t["kind"] == "topup"]
    assert [t["amount"] for t in tops] == [2000, 1000]
    srv.ledger_ok()


def test_expired_topup_not_covering_fee_is_402(server_factory):
    srv = server_factory("--set", "reactivation_fee=500", test_clock=True)
    # empty the wallet with a bundle so the expired SIM has balance 0
    pbody, _ = srv.create_plan(price=1000, validity_days=1)
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    r = srv.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=make_key())
    assert r.status == 201, r
    assert srv.balance(iccid) == 0
    _, gu = _times(srv, iccid)
    srv.advance_to(gu)
    before = srv.snapshot(iccid)
    assert before == ("expired", 0, 2)

    assert_error(srv.topup(iccid, 499), 402, "insufficient_balance", "amount")
    assert srv.snapshot(iccid) == before
    assert_error(srv.topup(iccid, 100), 402, "insufficient_balance")
    assert srv.snapshot(iccid) == before

    body = srv.topup_ok(iccid, 600)
    assert body["state"] == "active" and body["balance"]["amount"] == 100
    assert body["topup"]["reactivation_fee"] == 500 and body["topup"]["reactivated"] is True
    assert srv.snapshot(iccid) == ("active", 100, 4)
    srv.ledger_ok()


def test_exact_fee_topup_leaves_zero(server_factory):
    srv = server_factory("--set", "reactivation_fee=500", test_clock=True)
    pbody, _ = srv.create_plan(price=1000, validity_days=1)
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    assert srv.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=make_key())[0] == 201
    _, gu = _times(srv, iccid)
    srv.advance_to(gu)
    assert srv.sim(iccid)["state"] == "expired"
    body = srv.topup_ok(iccid, 500)
    assert body["balance"]["amount"] == 0 and body["state"] == "active"
    srv.ledger_ok()


def test_terminated_forfeits_balance(clock_server):
    srv = clock_server
    iccid = srv.new_sim()
    other = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    srv.topup_ok(iccid, 234)
    _, gu = _times(srv, iccid)

    srv.advance_to(gu)
    assert srv.snapshot(iccid) == ("expired", 1234, 2)
    # retention_days default 90: still expired a day before the end
    srv.advance_to(gu + 90 * DAY, margin=-DAY)
    assert srv.snapshot(iccid) == ("expired", 1234, 2)
    srv.ledger_ok()
    srv.advance_to(gu + 90 * DAY, margin=DAY)
    s = srv.sim(iccid)
    assert s["state"] == "terminated", s
    assert s["balance"]["amount"] == 0
    txns = srv.txns(iccid)
    assert txns[0]["kind"] == "forfeiture"
    assert abs(txns[0]["amount"]) == 1234 and txns[0]["balance_after"] == 0
    assert len(txns) == 3
    srv.ledger_ok()

    assert_error(srv.topup(iccid, 1000), 409, "sim_terminated")
    # and so is everything else (its message said "cannot be topped up" to a suspension too)
    for verb in ("suspend", "resume"):
        r = srv.request("POST", "/v1/sims/%s/%s" % (iccid, verb), token="admin", lang="en")
        assert "topped up" not in assert_error(r, 409, "sim_terminated")["message"], r
    assert srv.snapshot(iccid) == ("terminated", 0, 3)
    # the never-activated SIM is untouched by the sweep
    assert srv.snapshot(other) == ("inactive", 0, 0)
    assert srv.sim(other)["active_until"] is None
    # and terminated stays terminated
    srv.advance(400 * DAY)
    assert srv.snapshot(iccid) == ("terminated", 0, 3)
    srv.ledger_ok()


def test_grace_and_retention_configurable(server_factory):
    srv = server_factory("--set", "grace_days=5", "--set", "retention_days=10", "--set", "validity_days=7",
                         test_clock=True)
    iccid = srv.new_sim()
    body = srv.topup_ok(iccid, 1000)
    created = parse_time(body["topup"]["created_at"])
    au, gu = _times(srv, iccid)
    assert abs(au - (created + 7 * DAY)) <= 2
    assert gu == au + 5 * DAY
    srv.advance_to(au)
    assert srv.sim(iccid)["state"] == "grace"
    srv.advance_to(gu)
    assert srv.sim(iccid)["state"] == "expired"
    srv.advance_to(gu + 10 * DAY)
    assert srv.snapshot(iccid) == ("terminated", 0, 2)
    srv.ledger_ok()


def test_suspend_and_resume(server):
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    au = server.sim(iccid)["active_until"]

    assert_error(server.request("POST", "/v1/sims/%s/suspend" % iccid, token="operator"), 403, "forbidden")
    assert server.sim(iccid)["state"] == "active"

    st, _, sim = server.request("POST", "/v1/sims/%s/suspend" % iccid, {"reason": "Утерян, заявка 7"},
                                token="admin")
    assert st == 200, sim
    assert sim["iccid"] == iccid and sim["state"] == "suspended"
    assert sim["balance"]["amount"] == 1000
    # Again: already suspended, so 200 and no second record.
    assert server.request("POST", "/v1/sims/%s/suspend" % iccid, {"reason": "again"}, token="admin").status == 200
    before = server.snapshot(iccid)
    assert before == ("suspended", 1000, 2)
    rec = server.txns(iccid)[0]
    admin_id = [t["id"] for t in server.request("GET", "/v1/tokens", token="admin").body["data"]
                if t["role"] == "admin"][0]
    assert rec["kind"] == "suspension" and rec["amount"] == 0 and rec["balance_after"] == 1000, rec
    assert rec["reason"] == "Утерян, заявка 7" and rec["served_by"] == "token:%d" % admin_id, rec
    assert rec["receipt"] is None and rec["channel"] is None and "topup" not in rec

    assert_error(server.topup(iccid, 500), 409, "sim_suspended")
    assert_error(server.topup(iccid, 500, token="admin", channel="admin", method="adjustment"), 409,
                 "sim_suspended")
    assert server.snapshot(iccid) == before

    st, _, sim = server.request("POST", "/v1/sims/%s/resume" % iccid, token="admin")
    assert st == 200, sim
    assert sim["state"] == "active" and sim["balance"]["amount"] == 1000
    assert sim["active_until"] == au
    rec = server.txns(iccid)[0]
    assert (rec["kind"], rec["amount"], rec["reason"]) == ("resumption", 0, None), rec

    body = server.topup_ok(iccid, 500)
    assert body["state"] == "active" and body["balance"]["amount"] == 1500
    assert server.snapshot(iccid) == ("active", 1500, 4)
    assert [t["kind"] for t in server.txns(iccid)] == ["topup", "resumption", "suspension", "topup"]
    assert server.txns(iccid)[0]["served_by"].startswith("token:")
    assert_error(server.request("POST", "/v1/sims/%s/suspend" % make_iccid(),
                                token="admin"), 404, "sim_not_found")
    server.ledger_ok()


def test_bundle_expires_with_clock(clock_server):
    srv = clock_server
    pbody, _ = srv.create_plan(price=1000, validity_days=3)
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 5000)
    r = srv.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=make_key())
    assert r.status == 201, r
    exp = parse_time(r.body["bundle"]["expires_at"])
    srv.advance_to(exp)
    bundles = srv.sim(iccid)["bundles"]
    # an expired bundle is either no longer listed or listed as not active
    assert all(b["state"] != "active" for b in bundles if b["id"] == r.body["bundle"]["id"]), bundles
    assert srv.snapshot(iccid) == ("active", 4000, 2)
    srv.ledger_ok()


def test_expired_topup_without_fee(clock_server):
    """Default reactivation_fee 0: reactivated, no fee and no zero-amount fee record."""
    srv = clock_server
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    _, gu = _times(srv, iccid)
    srv.advance_to(gu)
    assert srv.snapshot(iccid) == ("expired", 1000, 1)
    body = srv.topup_ok(iccid, 500)
    assert body["state"] == "active" and body["topup"]["reactivated"] is True
    assert body["topup"]["reactivation_fee"] == 0
    assert body["balance"]["amount"] == 1500
    assert [t["kind"] for t in srv.txns(iccid)] == ["topup", "topup"]
    srv.ledger_ok()


def test_terminated_with_zero_balance_and_bundle(clock_server):
    srv = clock_server
    pbody, _ = srv.create_plan(price=1000, validity_days=365)
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    r = srv.request("POST", "/v1/sims/%s/bundles" % iccid, {"plan": pbody["code"]}, idem=make_key())
    assert r.status == 201, r
    _, gu = _times(srv, iccid)
    srv.advance_to(gu + 90 * DAY, margin=DAY)
    s = srv.sim(iccid)
    assert s["state"] == "terminated" and s["balance"]["amount"] == 0
    assert all(b["state"] != "active" for b in s["bundles"]), s["bundles"]
    assert all(t["amount"] != 0 for t in srv.txns(iccid))
    srv.ledger_ok()


def test_a_bad_reason_changes_nothing(server):
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    path = "/v1/sims/%s/suspend" % iccid
    for body, code, param in ((b"not json", "invalid_json", None), (b"[]", "invalid_json", None),
                              ({"reason": ""}, "invalid_parameter", "reason"),
                              ({"reason": "x" * 201}, "invalid_parameter", "reason"),
                              ({"reason": "line\nbreak"}, "invalid_parameter", "reason"),
                              ({"reason": 7}, "invalid_parameter", "reason"),
                              ({"reason": "lost", "until": "tomorrow"}, "invalid_parameter", "until")):
        assert_error(server.request("POST", path, body, token="admin"), 400, code, param)
    assert server.snapshot(iccid) == ("active", 1000, 1)
    # 200 bytes of UTF-8 is the most a reason holds; an empty body or {} gives none.
    r = server.request("POST", path, {"reason": "я" * 100}, token="admin")
    assert r.status == 200 and server.txns(iccid)[0]["reason"] == "я" * 100, r
    for body in (None, {}):
        assert server.request("POST", "/v1/sims/%s/resume" % iccid, body, token="admin").status == 200
        assert server.request("POST", path, body, token="admin").status == 200
        assert server.txns(iccid)[0]["reason"] is None
    assert server.request("POST", path, {"reason": "once more"}, token="admin").status == 200   # records nothing
    assert server.snapshot(iccid) == ("suspended", 1000, 6)
    server.ledger_ok()
    violations, _ = check_database(server.db)
    assert not violations, violations


def test_resume_past_the_retention_window_terminates(clock_server):
    """Time goes on while a SIM is suspended: resumed past its retention
    window, it is terminated then and its balance forfeited, and the answer
    says so (it used to show the balance from before the forfeiture)."""
    srv = clock_server
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    _, gu = _times(srv, iccid)
    r = srv.request("POST", "/v1/sims/%s/suspend" % iccid, token="admin")
    assert r.status == 200 and r.body["state"] == "suspended", r
    srv.advance_to(gu + 100 * DAY, margin=DAY)
    assert srv.snapshot(iccid) == ("suspended", 1000, 2)
    r = srv.request("POST", "/v1/sims/%s/resume" % iccid, token="admin")
    assert r.status == 200 and r.body["state"] == "terminated", r
    assert r.body["balance"] == {"amount": 0, "currency": "CNY"}, r
    assert srv.snapshot(iccid) == ("terminated", 0, 4)
    assert [t["kind"] for t in srv.txns(iccid)] == ["forfeiture", "resumption", "suspension", "topup"]
    srv.ledger_ok()


def test_validity_has_a_bound(server_factory):
    """Each top-up adds validity_days, up to now + validity_max_days (365 by
    default): 1 CNY a month no longer keeps a number for years ahead."""
    srv = server_factory("--set", "validity_max_days=70")
    iccid = srv.new_sim()
    untils = []
    for _ in range(4):
        body = srv.topup_ok(iccid, 100)
        untils.append(parse_time(body["active_until"]))
    now = parse_time(srv.sim(iccid)["created_at"])
    assert untils[1] - untils[0] == 30 * DAY, untils
    assert all(abs(u - (now + 70 * DAY)) < 120 for u in untils[2:]), [(u - now) / DAY for u in untils]
    assert srv.snapshot(iccid) == ("active", 400, 4)
    srv.ledger_ok()


def test_suspend_inactive_then_resume(server):
    iccid = server.new_sim()
    st, _, sim = server.request("POST", "/v1/sims/%s/suspend" % iccid, token="admin")
    assert st == 200 and sim["state"] == "suspended"
    assert_error(server.topup(iccid, 1000), 409, "sim_suspended")
    st, _, sim = server.request("POST", "/v1/sims/%s/resume" % iccid, token="admin")
    assert st == 200 and sim["state"] == "inactive", sim
    assert sim["active_until"] is None
    assert server.topup_ok(iccid, 1000)["state"] == "active"


def _to_utc(server, hh, mm):
    """Moves the test clock to the next hh:mm UTC."""
    now = server.now()
    t = now - now % DAY + hh * 3600 + mm * 60
    if t <= now + 5:
        t += DAY
    return server.advance(t - now)


def test_daily_cap_follows_local_midnight(clock_server):
    """tz_offset_minutes 480: the cap's day starts at 16:00 UTC."""
    srv = clock_server
    _to_utc(srv, 15, 55)
    iccid = srv.new_sim()
    for a in (200000, 200000, 100000):
        srv.topup_ok(iccid, a)
    assert_error(srv.topup(iccid, 100), 422, "daily_limit_exceeded")
    srv.advance(10 * 60)            # 16:05 UTC = 00:05 local: a new day
    srv.topup_ok(iccid, 200000)
    srv.topup_ok(iccid, 200000)
    srv.topup_ok(iccid, 100000)
    assert_error(srv.topup(iccid, 100), 422, "daily_limit_exceeded")
    _to_utc(srv, 0, 5)              # UTC midnight is 08:05 local: still the same local day
    assert_error(srv.topup(iccid, 100), 422, "daily_limit_exceeded")
    assert srv.snapshot(iccid) == ("active", 1000000, 6)
    srv.ledger_ok()


def test_validity_rules(server_factory):
    for rule in ("reset", "max"):
        srv = server_factory("--set", "validity_rule=" + rule, test_clock=True)
        iccid = srv.new_sim()
        b1 = srv.topup_ok(iccid, 1000)
        au1 = parse_time(b1["active_until"])
        srv.advance(10 * DAY)
        b2 = srv.topup_ok(iccid, 1000)
        now = parse_time(b2["topup"]["created_at"])
        au2 = parse_time(b2["active_until"])
        if rule == "reset":
            assert abs(au2 - (now + 30 * DAY)) <= 2, (rule, b1["active_until"], b2["active_until"])
        else:
            assert abs(au2 - max(au1, now + 30 * DAY)) <= 2, (rule, b1["active_until"], b2["active_until"])
        srv.teardown()

"""A SIM named by its phone number: every /v1/sims/{iccid} path takes the
MSISDN in E.164 ('+' first, or '%2B') as well as the ICCID, because the
number is what a subscriber knows and types at a portal, a till or a kiosk."""
from e2e_util import assert_error, make_iccid, make_key, make_msisdn, parse_time


def test_every_sim_path_takes_the_number(server):
    msisdn = make_msisdn()
    iccid = server.new_sim(msisdn=msisdn)
    plan, _ = server.create_plan(price=300)

    for ref in (msisdn, "%2B" + msisdn[1:], "%2b" + msisdn[1:]):
        r = server.request("GET", "/v1/sims/" + ref)
        assert r.status == 200, r
        assert r.body["iccid"] == iccid and r.body["msisdn"] == msisdn

    r = server.topup(msisdn, 1000)
    assert r.status == 201, r
    assert r.body["topup"]["iccid"] == iccid
    assert r.body["receipt"]["iccid"] == iccid and r.body["receipt"]["msisdn"] == msisdn
    assert server.balance(iccid) == 1000

    r = server.request("POST", "/v1/sims/%s/bundles" % msisdn, {"plan": plan["code"]}, idem=make_key("bu"))
    assert r.status == 201, r
    assert server.balance(iccid) == 700

    by_number = server.request("GET", "/v1/sims/%s/transactions" % msisdn)
    assert by_number.status == 200, by_number
    assert by_number.body == server.request("GET", "/v1/sims/%s/transactions" % iccid).body
    assert [t["kind"] for t in by_number.body["data"]] == ["bundle_purchase", "topup"]

    r = server.request("POST", "/v1/sims/%s/suspend" % msisdn, token="admin")
    assert r.status == 200 and r.body["state"] == "suspended", r
    assert server.sim(iccid)["state"] == "suspended"
    assert_error(server.topup(msisdn, 100), 409, "sim_suspended")
    r = server.request("POST", "/v1/sims/%s/resume" % msisdn, token="admin")
    assert r.status == 200 and r.body["state"] == "active", r
    server.ledger_ok()


def test_a_retry_by_number_replays(server):
    msisdn = make_msisdn()
    iccid = server.new_sim(msisdn=msisdn)
    key = make_key("tu")
    first = server.topup(msisdn, 800, key=key)
    again = server.topup(msisdn, 800, key=key)
    assert first.status == 201 and again.status == 201, (first, again)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.raw == first.raw
    # The same key for the same SIM named the other way is another request:
    # refused, never applied a second time.
    assert_error(server.topup(iccid, 800, key=key), 422, "idempotency_key_reused")
    assert server.balance(iccid) == 800
    assert len(server.txns(iccid)) == 1


def test_bad_and_unknown_numbers(server):
    msisdn = make_msisdn()
    iccid = server.new_sim(msisdn=msisdn)
    for bad in ("+123", "+0861380000001", "+86138abc00001", "+" + "1" * 16, "%2B"):
        assert_error(server.request("GET", "/v1/sims/" + bad), 400, "invalid_msisdn", "msisdn")
        assert_error(server.topup(bad, 100), 400, "invalid_msisdn", "msisdn")
        assert_error(server.request("POST", "/v1/sims/%s/suspend" % bad, token="admin"),
                     400, "invalid_msisdn", "msisdn")
    r = server.request("GET", "/v1/sims/+123", lang="ru")
    assert r.status == 400 and r.body["error"]["message"] != server.request("GET", "/v1/sims/+123").body["error"]["message"]

    nobody = make_msisdn()
    assert_error(server.request("GET", "/v1/sims/" + nobody), 404, "sim_not_found")
    assert_error(server.topup(nobody, 100), 404, "sim_not_found")
    assert_error(server.request("GET", "/v1/sims/%s/transactions" % nobody), 404, "sim_not_found")
    assert_error(server.request("POST", "/v1/sims/%s/resume" % nobody, token="admin"), 404, "sim_not_found")

    # A SIM provisioned without a number is found by its ICCID only.
    bare = server.new_sim(msisdn=False)
    assert server.sim(bare)["msisdn"] is None
    assert_error(server.topup(make_iccid()[:-1] + "x", 100), 400, "invalid_iccid", "iccid")
    assert server.balance(iccid) == 0 and server.balance(bare) == 0
    server.ledger_ok()


def test_a_terminated_sim_gives_its_number_back(clock_server):
    """Termination releases the number (migration 014): a new card can take
    it, GET by number finds the new card, and the old card's receipts and
    stored answers still name the number it had, byte for byte."""
    srv = clock_server
    msisdn = make_msisdn()
    old = srv.new_sim(msisdn=msisdn)
    key = make_key("tu")
    first = srv.topup(msisdn, 1000, key=key)
    assert first.status == 201, first
    number = first.body["receipt"]["number"]
    receipt = srv.request("GET", "/v1/receipts/" + number)
    printed = srv.request("GET", "/v1/receipts/%s/print?language=en" % number)
    assert receipt.status == 200 and printed.status == 200 and msisdn in printed.raw.decode()

    # In grace, and expired: still its number.
    new_iccid = make_iccid()
    assert_error(srv.request("POST", "/v1/sims", {"iccid": new_iccid, "msisdn": msisdn}, token="admin"),
                 409, "msisdn_taken")
    srv.advance_to(parse_time(srv.sim(old)["grace_until"]) + 30 * 86400)
    assert srv.sim(old)["state"] == "expired" and srv.sim(old)["msisdn"] == msisdn

    # Past retention (90 days by default) the sweep terminates it, and the number is free.
    srv.advance(100 * 86400)
    gone = srv.sim(old)
    assert gone["state"] == "terminated" and gone["msisdn"] is None and gone["released_msisdn"] == msisdn, gone
    assert_error(srv.request("GET", "/v1/sims/" + msisdn), 404, "sim_not_found")
    r = srv.request("POST", "/v1/sims", {"iccid": new_iccid, "msisdn": msisdn}, token="admin")
    assert r.status == 201 and r.body["msisdn"] == msisdn and r.body["released_msisdn"] is None, r
    assert srv.request("GET", "/v1/sims/" + msisdn).body["iccid"] == new_iccid
    assert srv.topup(msisdn, 500).status == 201
    assert srv.balance(new_iccid) == 500 and srv.balance(old) == 0

    # The old card's records name its number as they did.
    # A retry of the first request (its key, its bytes) is answered as it was
    # then, though the number now names another card: nothing is applied.
    again = srv.topup(msisdn, 1000, key=key)
    assert again.status == 201 and again.raw == first.raw, again
    assert srv.balance(new_iccid) == 500
    assert srv.request("GET", "/v1/receipts/" + number).raw == receipt.raw
    assert srv.request("GET", "/v1/receipts/%s/print?language=en" % number).raw == printed.raw
    assert srv.request("POST", "/v1/receipts/verify", receipt.body, token=None).body == {"valid": True}
    # The old card's inventory line imported again: it exists, as before.
    r = srv.request("POST", "/v1/sims", {"iccid": old, "msisdn": msisdn}, token="admin")
    assert r.status == 200 and r.body["state"] == "terminated", r
    srv.ledger_ok()

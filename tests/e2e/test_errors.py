"""Bad input: exact status and code, and proof (balance, state and transaction
count re-read) that nothing moved."""
import json
import socket

import pytest

from e2e_util import DAY, assert_error, bad_luhn, has_cjk, make_iccid, make_key

GOOD = {"amount": 1000, "currency": "CNY", "channel": "portal", "method": "alipay"}


def _with(**kw):
    body = dict(GOOD)
    for k, v in kw.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


_DROP = object()

# (id, body, token, status, code or set of acceptable codes, param)
CASES = [
    ("truncated_json", b'{"amount": 1000, "currency": "CNY",', "operator", 400, "invalid_json", None),
    ("not_json", b"amount=1000&currency=CNY", "operator", 400, "invalid_json", None),
    ("empty_body", b"", "operator", 400, "invalid_json", None),
    ("zero", _with(amount=0), "operator", 400, "invalid_amount", "amount"),
    ("negative", _with(amount=-100), "operator", 400, "invalid_amount", "amount"),
    ("fraction", _with(amount=10.5), "operator", 400, "invalid_amount", "amount"),
    ("string", _with(amount="1000"), "operator", 400, "invalid_amount", "amount"),
    ("bool", _with(amount=True), "operator", 400, "invalid_amount", "amount"),
    ("null", _with(amount=None), "operator", 400, "invalid_amount", "amount"),
    ("missing_amount", _with(amount=_DROP), "operator", 400, {"missing_parameter", "invalid_amount"}, "amount"),
    ("huge", _with(amount=10 ** 15), "operator", 400, "amount_too_large", "amount"),
    ("int64_overflow", _with(amount=10 ** 30), "operator", 400,
     {"amount_too_large", "invalid_amount", "invalid_json"}, None),
    ("above_max", _with(amount=200001), "operator", 400, "amount_too_large", "amount"),
    ("below_min", _with(amount=99), "operator", 400, "amount_too_small", "amount"),
    ("one_fen", _with(amount=1), "operator", 400, "amount_too_small", "amount"),
    ("currency_usd", _with(currency="USD"), "operator", 400, "currency_mismatch", "currency"),
    ("currency_lower", _with(currency="cny"), "operator", 400, "currency_mismatch", "currency"),
    ("channel", _with(channel="atm"), "operator", 400, "invalid_channel", "channel"),
    ("method", _with(method="bitcoin"), "operator", 400, "invalid_method", "method"),
    ("operator_admin_channel", _with(channel="admin"), "operator", 403, "forbidden", None),
    ("operator_adjustment", _with(method="adjustment"), "operator", 403, "forbidden", None),
    ("no_token", GOOD, None, 401, "unauthenticated", None),
    ("unknown_token", GOOD, "tok_definitely_not_valid", 401, "unauthenticated", None),
]


@pytest.fixture
def funded(server):
    iccid = server.new_sim()
    server.topup_ok(iccid, 1000)
    assert server.snapshot(iccid) == ("active", 1000, 1)
    return server, iccid


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_topup(funded, case):
    server, iccid = funded
    _id, body, token, status, code, param = case
    r = server.request("POST", "/v1/sims/%s/topups" % iccid, body, token=token, idem=make_key("bad"))
    if isinstance(code, set):
        assert r.status == status and isinstance(r.body, dict), r
        assert r.body["error"]["code"] in code, r
    else:
        assert_error(r, status, code, param=param)
    assert server.snapshot(iccid) == ("active", 1000, 1)
    server.ledger_ok()


def test_missing_idempotency_key(funded):
    server, iccid = funded
    r = server.request("POST", "/v1/sims/%s/topups" % iccid, GOOD)
    assert_error(r, 400, "idempotency_key_required")
    assert server.snapshot(iccid) == ("active", 1000, 1)


def test_bad_luhn_iccid_topup(funded):
    server, iccid = funded
    bad = bad_luhn(iccid)
    r = server.request("POST", "/v1/sims/%s/topups" % bad, GOOD, idem=make_key())
    assert_error(r, 400, "invalid_iccid")
    r = server.request("POST", "/v1/sims/%s/topups" % "12345", GOOD, idem=make_key())
    assert_error(r, 400, "invalid_iccid")
    assert server.snapshot(iccid) == ("active", 1000, 1)
    server.ledger_ok()


def test_unknown_sim(funded):
    server, iccid = funded
    unknown = make_iccid()
    assert_error(server.request("POST", "/v1/sims/%s/topups" % unknown, GOOD, idem=make_key()), 404, "sim_not_found")
    assert_error(server.request("GET", "/v1/sims/%s" % unknown), 404, "sim_not_found")
    assert server.snapshot(iccid) == ("active", 1000, 1)
    server.ledger_ok()


def test_unknown_route(server):
    for method, path in [("GET", "/v1/nope"), ("GET", "/v2/sims"), ("POST", "/v1/sims/x/y/z")]:
        r = server.request(method, path, {} if method == "POST" else None, token="admin", idem=make_key())
        assert_error(r, 404, "not_found")


def test_a_known_path_with_another_method_is_405_with_allow(server):
    """405 method_not_allowed, with the path's methods in Allow (RFC 9110
    15.5.6; HEAD wherever GET is), before any authentication. A path a route
    names exactly is never another route's parameter: GET /v1/receipts/verify
    was receipt number "verify", 404 for staff and 401 for anyone else."""
    for method, path, allow in [("GET", "/v1/receipts/verify", "POST"),
                                ("POST", "/v1/receipts/public-key", "GET, HEAD"),
                                ("DELETE", "/v1/plans", "GET, HEAD, POST"),
                                ("PUT", "/v1/sims/%s" % make_iccid(), "GET, HEAD"),
                                ("GET", "/v1/tokens/1", "DELETE"),
                                ("DELETE", "/v1/sims/import", "POST")]:
        for token in (None, "admin"):
            r = server.request(method, path, token=token, lang="zh")
            err = assert_error(r, 405, "method_not_allowed")
            assert r.headers.get("allow") == allow, (method, path, r.headers)
            assert has_cjk(err["message"]), err
    assert server.request("GET", "/v1/receipts/R0000000001", token="admin").status == 404   # a number still


def test_admin_routes_forbidden_for_operator(funded):
    server, iccid = funded
    assert_error(server.request("GET", "/v1/ledger/check", token="operator"), 403, "forbidden")
    assert_error(server.request("GET", "/v1/ledger/check", token=None), 401, "unauthenticated")
    assert_error(server.request("POST", "/v1/sims/%s/suspend" % iccid, token="operator"), 403, "forbidden")
    assert_error(server.request("POST", "/v1/sims/%s/resume" % iccid, token="operator"), 403, "forbidden")
    assert server.snapshot(iccid) == ("active", 1000, 1)


def _raw_post(server, path, body, extra_headers=""):
    """POST over a raw socket so an early response / close by the server is still read."""
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n"
            "Connection: close\r\n%s\r\n" % (path, server.tokens["operator"], make_key("big"), len(body),
                                              extra_headers)).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    finally:
        s.close()
    assert data.startswith(b"HTTP/1."), "no HTTP response: %r" % (data[:200],)
    status = int(data.split(b" ", 2)[1])
    payload = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return status, payload


def _padded(size):
    """A valid top-up body padded with JSON whitespace to exactly size bytes."""
    base = json.dumps(GOOD).encode()
    assert size >= len(base)
    return base[:-1] + b" " * (size - len(base)) + b"}"


def test_oversize_body_default_limit(funded):
    server, iccid = funded
    status, payload = _raw_post(server, "/v1/sims/%s/topups" % iccid, _padded(65536 + 4096))
    assert status == 413, payload[:300]
    assert b"body_too_large" in payload, payload[:300]
    assert server.snapshot(iccid) == ("active", 1000, 1)
    server.ledger_ok()


def test_oversize_body_configured_limit(server_factory):
    server = server_factory("--set", "max_body=2048")
    iccid = server.new_sim()
    # just under the limit: accepted
    r = server.request("POST", "/v1/sims/%s/topups" % iccid, _padded(2000), idem=make_key())
    assert r.status == 201, r
    status, payload = _raw_post(server, "/v1/sims/%s/topups" % iccid, _padded(4000))
    assert status == 413, payload[:300]
    assert json.loads(payload)["error"]["code"] == "body_too_large"
    assert server.snapshot(iccid) == ("active", 1000, 1)
    server.ledger_ok()


def _next_local_noon(server):
    """Moves the test clock to the next 12:00 of the server's local day
    (tz_offset_minutes default 480), so a run cannot straddle midnight."""
    now = server.now()
    local = now + 8 * 3600
    noon = local - local % DAY + 12 * 3600
    if noon <= local + 60:
        noon += DAY
    return server.advance(noon - local)


def test_daily_limit(clock_server):
    server = clock_server
    _next_local_noon(server)
    iccid, other = server.new_sim(), server.new_sim()
    server.topup_ok(iccid, 200000)
    server.topup_ok(iccid, 200000)
    # 400,000 so far; 100,001 would pass 5,000 CNY
    assert_error(server.topup(iccid, 100001), 422, "daily_limit_exceeded", "amount")
    assert server.snapshot(iccid) == ("active", 400000, 2)
    server.topup_ok(iccid, 100000)            # exactly the cap
    before = server.snapshot(iccid)
    assert before == ("active", 500000, 3)
    assert_error(server.topup(iccid, 100), 422, "daily_limit_exceeded")
    assert_error(server.topup(iccid, 100, token="admin", channel="admin", method="adjustment"), 422,
                 "daily_limit_exceeded")
    assert server.snapshot(iccid) == before
    # the cap is per SIM
    server.topup_ok(other, 200000)
    # and per local day: the next day the SIM can top up again
    server.advance(DAY)
    server.topup_ok(iccid, 100)
    assert server.snapshot(iccid) == ("active", 500100, 4)
    server.ledger_ok()


def test_rejected_requests_do_not_consume_daily_cap(clock_server):
    server = clock_server
    _next_local_noon(server)
    iccid = server.new_sim()
    server.topup_ok(iccid, 200000)
    for _ in range(5):
        assert_error(server.topup(iccid, 200001), 400, "amount_too_large")
        assert_error(server.topup(iccid, 200000, currency="USD"), 400, "currency_mismatch")
    server.topup_ok(iccid, 200000)
    server.topup_ok(iccid, 100000)
    assert server.snapshot(iccid) == ("active", 500000, 3)
    server.ledger_ok()


def test_a_json_body_under_another_type_is_415(funded):
    """A JSON route takes its body without a Content-Type or as application/json
    (any case, with parameters); any other type is 415, a longer one that merely
    begins with it included (application/jsonp was taken as JSON)."""
    server, iccid = funded
    path = "/v1/sims/%s/topups" % iccid
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonp", "application/json-seq",
               "application/json5"):
        r = server.request("POST", path, GOOD, idem=make_key(), content_type=ct, lang="zh")
        assert has_cjk(assert_error(r, 415, "unsupported_media_type")["message"]), (ct, r)
    assert server.snapshot(iccid) == ("active", 1000, 1)
    for ct in ("application/json", "Application/JSON; charset=utf-8", "application/json ;charset=UTF-8"):
        r = server.request("POST", path, GOOD, idem=make_key(), content_type=ct)
        assert r.status == 201, (ct, r)
    conn = server.connection()
    try:   # no Content-Type at all
        conn.request("POST", path, body=json.dumps(GOOD).encode(),
                     headers={"Authorization": "Bearer " + server.tokens["operator"], "Idempotency-Key": make_key()})
        r = conn.getresponse()
        assert r.status == 201, r.read()
    finally:
        conn.close()
    assert server.snapshot(iccid) == ("active", 5000, 5)

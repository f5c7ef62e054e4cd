"""Rate limits: failed authentication per client address, requests per token."""
from e2e_util import assert_error


def test_failed_auth_is_limited_per_address_but_valid_tokens_pass(server_factory):
    srv = server_factory("--set", "auth_fail_per_minute=5")
    bad = "tpk_" + "A" * 43
    for _ in range(5):
        assert_error(srv.request("GET", "/v1/ledger/check", token=bad), 401, "unauthenticated")
    r = srv.request("GET", "/v1/ledger/check", token=bad)
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    # no token at all on a protected route is a failed authentication too
    assert_error(srv.request("GET", "/v1/ledger/check", token=None), 429, "rate_limited")
    # a guesser sharing the address does not lock staff out
    assert srv.request("GET", "/v1/ledger/check", token="admin").status == 200
    # public routes stay public
    assert srv.request("GET", "/healthz", token=None).status == 200


def test_requests_are_limited_per_token(server_factory):
    srv = server_factory("--set", "token_rate=5")   # burst: 10
    statuses = [srv.request("GET", "/v1/plans", token="operator").status for _ in range(12)]
    assert statuses[:10] == [200] * 10, statuses
    assert 429 in statuses[10:], statuses
    r = srv.request("GET", "/v1/plans", token="operator")
    if r.status == 429:
        assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
    # another token has its own bucket
    assert srv.request("GET", "/v1/plans", token="admin").status == 200

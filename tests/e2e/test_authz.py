"""Authorization matrix: every route in `topupd routes` x every role.

A role the route does not list: anonymous -> 401 unauthenticated, a known token
-> 403 forbidden. A listed role: never 401/403 (whatever the dummy request
then gets: 400, 404, ...). Also checks that the routes docs/API.md heads its
sections with are the table's, with the roles it names."""
import json
import os
import re
import subprocess

import pytest

from conftest import TOPUPD
from e2e_util import assert_error, has_cjk, make_iccid, make_key

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _documented():
    """{(method, path): roles} from the '### `METHOD /path`' headings of
    docs/API.md: '(admin...)' is admin alone, '(admin, monitor)' admin and
    monitor, '(operator...)' operator and admin, no role named: anyone."""
    text = open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8").read()
    found = {}
    for heading in re.findall(r"^### (`[A-Z]+ /.*)$", text, re.M):
        role = re.search(r"\((admin, monitor|admin|operator)\b", heading)
        roles = {"admin", "monitor"} if role and role.group(1) == "admin, monitor" else \
            {"admin"} if role and role.group(1) == "admin" else \
            {"operator", "admin"} if role else {"anonymous", "operator", "admin", "monitor"}
        for method, path in re.findall(r"`([A-Z]+) (/[^`?]*)", heading):
            found[(method, path)] = roles
    assert len(found) >= 20, "API.md's route headings not parsed: %r" % found
    return found


DOCUMENTED = _documented()


def _routes():
    cp = subprocess.run([TOPUPD, "routes"], capture_output=True, text=True, timeout=10)
    assert cp.returncode == 0, "topupd routes: %s" % cp.stderr
    return json.loads(cp.stdout)


def test_every_route_declares_roles_and_is_documented():
    """A route added without a role declaration, or without its row above, fails here."""
    for r in _routes():
        assert r["roles"], "%s %s declares no roles" % (r["method"], r["path"])
        assert (r["method"], r["path"]) in DOCUMENTED, "%s %s is not in DOCUMENTED (docs/API.md)" % (
            r["method"], r["path"])


def test_exact_paths_come_before_the_patterns_that_could_take_them():
    """server.c route() relies on it: a path a route names exactly is never
    another route's parameter, and it learns so in one pass."""
    routes = _routes()
    for i, r in enumerate(routes):
        if "{" not in r["path"]:
            continue
        pattern = re.compile("^" + re.sub(r"\{[^}]*\}", "[^/]+", r["path"]) + "$")
        for later in routes[i + 1:]:
            assert "{" in later["path"] or not pattern.match(later["path"]), \
                "%s %s comes after %s %s, which could take it" % (later["method"], later["path"], r["method"],
                                                                 r["path"])


def test_documented_routes_and_roles():
    table = {(r["method"], r["path"]): set(r["roles"]) for r in _routes()}
    for route, roles in DOCUMENTED.items():
        assert route in table, "documented route missing: %s %s" % route
        assert table[route] == roles, "%s %s: roles %r, documented %r" % (route + (table[route], roles))
    text = open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8").read()
    row = re.search(r"^\| anonymous \| (.*)\|$", text, re.M).group(1)
    assert set(re.findall(r"`([A-Z]+) (/[^`]*)`", row)) == {rt for rt, roles in table.items() if "anonymous" in roles}
    assert table[("POST", "/v1/sims/{iccid}/topups")] and \
        [r for r in _routes() if r["path"] == "/v1/sims/{iccid}/topups"][0]["idempotency_key_required"]


def test_authorization_matrix(server_factory):
    routes = _routes()
    iccid = make_iccid()
    fill = {"{iccid}": iccid, "{number}": "R0000000001", "{id}": "999999"}
    # Each server sees at most ~20 unauthenticated requests (failed logins are rate-limited per address).
    chunks = [routes[i:i + 15] for i in range(0, len(routes), 15)]
    for chunk in chunks:
        srv = server_factory(test_clock=True)
        srv.tokens["monitor"] = srv.create_token("monitor")
        for rt in chunk:
            path = rt["path"]
            for k, v in fill.items():
                path = path.replace(k, v)
            body = None
            if rt["method"] == "POST":
                body = "iccid\n" if rt.get("csv") else "{}"
            for role in ("anonymous", "operator", "admin", "monitor"):
                r = srv.request(rt["method"], path, body, token=None if role == "anonymous" else role,
                                idem=make_key("authz"), content_type="text/csv" if rt.get("csv") else None)
                where = "%s %s as %s: %r" % (rt["method"], rt["path"], role, r)
                if role in rt["roles"]:
                    assert r.status not in (401, 403, 429) and r.status < 500, where
                else:
                    want = (401, "unauthenticated") if role == "anonymous" else (403, "forbidden")
                    assert (r.status, r.body["error"]["code"]) == want, where


def test_revoked_token_is_refused_everywhere(server):
    r = server.request("POST", "/v1/tokens", {"role": "admin", "name": "to-revoke"}, token="admin")
    assert r.status == 201, r
    tok, tid = r.body["token"], r.body["id"]
    server.secrets.append(tok)
    assert server.request("GET", "/v1/ledger/check", token=tok).status == 200
    assert server.request("DELETE", "/v1/tokens/%d" % tid, token="admin").status == 200
    iccid = server.new_sim()
    for method, path in [("GET", "/v1/ledger/check"), ("GET", "/v1/sims/" + iccid),
                         ("POST", "/v1/sims/%s/topups" % iccid), ("POST", "/v1/plans"), ("GET", "/v1/tokens")]:
        r = server.request(method, path, {} if method == "POST" else None, token=tok, idem=make_key())
        assert (r.status, r.body["error"]["code"]) == (401, "unauthenticated"), (method, path, r)
    assert server.snapshot(iccid) == ("inactive", 0, 0)
    # The log says which token it was (it said "anonymous" for every bad token).
    assert server.request("GET", "/v1/tokens", token="tpk_" + "A" * 43).status == 401
    assert server.request("GET", "/v1/tokens", token="not-a-token").status == 401
    log = server.log_tail(40)
    assert "GET /v1/tokens refused for revoked token:%d from 127.0.0.1: unauthenticated" % tid in log, log
    assert "refused for an unknown token from" in log and "refused for a malformed token from" in log, log


def test_bad_token_requests_change_nothing(server):
    before = server.request("GET", "/v1/tokens", token="admin").body["data"]
    for body, code, param in (({}, "missing_parameter", "role"),
                              ({"role": "root"}, "invalid_parameter", "role"),
                              ({"role": 1}, "invalid_parameter", "role"),
                              ({"role": "operator", "name": "x" * 65}, "invalid_parameter", "name"),
                              ({"role": "operator", "name": 7}, "invalid_parameter", "name"),
                              ({"role": "operator", "name": "till\n7"}, "invalid_parameter", "name"),
                              ({"role": "operator", "name": "\u0085"}, "invalid_parameter", "name"),
                              ({"role": "operator", "colour": "red"}, "invalid_parameter", "colour")):
        r = server.request("POST", "/v1/tokens", body, token="admin", lang="zh")
        assert has_cjk(assert_error(r, 400, code, param)["message"]), body
    for tid in ("abc", "0", "-1", "99999", "1x"):
        assert_error(server.request("DELETE", "/v1/tokens/" + tid, token="admin"), 404, "not_found")
    assert server.request("GET", "/v1/tokens", token="admin").body["data"] == before
    r = server.request("POST", "/v1/tokens", {"role": "operator", "name": "收银台 №7"}, token="admin")
    assert r.status == 201 and r.body["name"] == "收银台 №7", r
    server.secrets.append(r.body["token"])


def _get(conn, path, tok):
    conn.request("GET", path, headers={"Authorization": "Bearer " + tok})
    r = conn.getresponse()
    r.read()
    return r.status


@pytest.mark.parametrize("by", ["api", "cli"])
def test_remembered_token_is_forgotten_when_revoked(server, by):
    """HTTP threads remember the tokens they resolved (auth.h A1, A2): a token
    used on many keep-alive connections, so that every thread remembers it,
    is refused on each of them by the first request after its revocation
    was answered, through the API or by `topupd token revoke`."""
    r = server.request("POST", "/v1/tokens", {"role": "operator", "name": "remembered"}, token="admin")
    assert r.status == 201, r
    tok, tid = r.body["token"], r.body["id"]
    server.secrets.append(tok)
    conns = [server.connection() for _ in range(16)]
    try:
        for _ in range(3):
            assert [_get(c, "/v1/plans", tok) for c in conns] == [200] * len(conns)
        if by == "api":
            assert server.request("DELETE", "/v1/tokens/%d" % tid, token="admin").status == 200
        else:
            cp = server.cli("token", "revoke", str(tid), "--db", server.db)
            assert "could not tell" not in cp.stderr
        assert [_get(c, "/v1/plans", tok) for c in conns] == [401] * len(conns)
    finally:
        for c in conns:
            c.close()

"""Credentials: token secrets are shown once, never listed, never logged, never
echoed in errors, never kept for idempotent replay; revocation works at once.
(Every test's server log is also scanned for its tokens at teardown.)"""
import re

from e2e_util import assert_error, make_key


def _create(server, role="operator", name="clerk-1", key=None):
    r = server.request("POST", "/v1/tokens", {"role": role, "name": name}, token="admin", idem=key)
    assert r.status == 201, r
    tok = r.body["token"]
    server.secrets.append(tok)
    assert r.body["role"] == role and r.body["name"] == name and isinstance(r.body["id"], int)
    return r.body


def test_token_api_create_list_revoke(server):
    created = _create(server)
    tok = created["token"]
    iccid = server.new_sim()
    assert server.request("GET", "/v1/sims/" + iccid, token=tok).status == 200
    # an operator token cannot manage tokens
    assert_error(server.request("GET", "/v1/tokens", token=tok), 403, "forbidden")
    assert_error(server.request("POST", "/v1/tokens", {"role": "admin"}, token=tok), 403, "forbidden")

    st, _, listing = server.request("GET", "/v1/tokens", token="admin")
    assert st == 200
    raw = server.request("GET", "/v1/tokens", token="admin").raw.decode()
    for secret in [tok] + list(server.tokens.values()):
        assert secret not in raw, "GET /v1/tokens shows a secret"
    mine = [t for t in listing["data"] if t["id"] == created["id"]]
    assert len(mine) == 1 and mine[0]["revoked_at"] is None and mine[0]["role"] == "operator"

    st, _, body = server.request("DELETE", "/v1/tokens/%d" % created["id"], token="admin")
    assert st == 200 and body.get("revoked") is True, body
    assert_error(server.request("GET", "/v1/sims/" + iccid, token=tok), 401, "unauthenticated")
    assert_error(server.topup(iccid, 1000, token=tok), 401, "unauthenticated")
    assert server.snapshot(iccid) == ("inactive", 0, 0)
    st, _, listing = server.request("GET", "/v1/tokens", token="admin")
    assert [t for t in listing["data"] if t["id"] == created["id"]][0]["revoked_at"] is not None
    assert_error(server.request("DELETE", "/v1/tokens/999999", token="admin"), 404, "not_found")


def test_cli_revoke_applies_to_running_server(server):
    created = _create(server, name="kiosk-7")
    tok = created["token"]
    assert server.request("GET", "/v1/plans", token=tok).status == 200
    iccid = server.new_sim()
    assert server.request("GET", "/v1/sims/" + iccid, token=tok).status == 200
    cp = server.cli("token", "revoke", str(created["id"]), "--db", server.db)
    assert cp.returncode == 0
    assert_error(server.request("GET", "/v1/sims/" + iccid, token=tok), 401, "unauthenticated")


def test_token_create_is_not_replayed(server):
    key = make_key("tok")
    first = _create(server, key=key)
    r = server.request("POST", "/v1/tokens", {"role": "operator", "name": "clerk-1"}, token="admin", idem=key)
    if r.status == 201:
        server.secrets.append(r.body["token"])
    assert first["token"].encode() not in r.raw, "the secret was stored and replayed"


def test_errors_do_not_echo_credentials(server):
    guess = "tpk_Guessed0123456789abcdefSECRET"
    server.secrets.append(guess)
    iccid = server.new_sim()
    r = server.request("GET", "/v1/sims/" + iccid, token=guess)
    assert_error(r, 401, "unauthenticated")
    assert guess.encode() not in r.raw and b"SECRET" not in r.raw
    r = server.request("GET", "/v1/sims/" + iccid, token=None, headers={"Authorization": "Basic " + guess})
    assert r.status == 401 and guess.encode() not in r.raw
    # a valid token's secret is not echoed either (e.g. in served_by)
    body = server.topup_ok(iccid, 1000)
    text = server.request("GET", "/v1/receipts/" + body["receipt"]["number"]).raw.decode()
    assert server.tokens["operator"] not in text and server.tokens["operator"] not in str(body)
    # served_by names the token without its secret part
    sb = body["receipt"]["served_by"]
    assert sb and not re.search(re.escape(server.tokens["operator"][12:]), sb)


def test_signing_key_file_is_private(server):
    import os
    import stat
    keys = [f for f in os.listdir(server.workdir) if f.endswith(".ed25519")]
    assert keys, os.listdir(server.workdir)
    for f in keys:
        mode = stat.S_IMODE(os.stat(os.path.join(server.workdir, f)).st_mode)
        assert mode & 0o077 == 0, "%s has mode %o" % (f, mode)

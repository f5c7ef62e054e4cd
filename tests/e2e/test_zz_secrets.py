"""No secret in any log line or error of the whole end-to-end run.

Runs last (file name): it first exercises the places where secrets pass
(token creation by CLI and API, revocation, guessed tokens, secrets inside
request bodies), then scans every topupd log written during this pytest run
for anything shaped like an API token and for every receipt signing key."""
import glob
import os
import re

from e2e_util import make_key

TOKEN_RE = re.compile(rb"tpk_[A-Za-z0-9_-]{20,}")


def test_secret_paths_leave_no_trace(server_factory):
    srv = server_factory()
    seen = [srv.tokens["admin"], srv.tokens["operator"]]
    r = srv.request("POST", "/v1/tokens", {"role": "operator", "name": "till 7"}, token="admin")
    assert r.status == 201
    new = r.body["token"]
    seen.append(new)
    assert srv.request("GET", "/v1/plans", token=new).status == 200
    listed = srv.request("GET", "/v1/tokens", token="admin")
    assert listed.status == 200 and new.encode() not in listed.raw
    assert srv.request("DELETE", "/v1/tokens/%d" % r.body["id"], token="admin").status == 200
    revoked = srv.request("GET", "/v1/plans", token=new)
    assert revoked.status == 401 and new.encode() not in revoked.raw
    guess = "tpk_" + "Z" * 43
    g = srv.request("GET", "/v1/ledger/check", token=guess)
    assert g.status == 401 and guess.encode() not in g.raw
    # secrets inside bodies are not echoed in errors
    body = {"iccid": "1234", "token": srv.tokens["admin"], "password": "hunter2-secret"}
    e = srv.request("POST", "/v1/sims", body, token="admin")
    assert e.status == 400
    for s in (srv.tokens["admin"], "hunter2-secret"):
        assert s.encode() not in e.raw
    t = srv.request("POST", "/v1/sims/%s/topups" % ("1" * 19), {"amount": 1, "currency": "CNY",
                    "channel": "portal", "method": "alipay", "pin": "5555-secret"},
                    token="operator", idem=make_key())
    assert t.status == 400 and b"5555-secret" not in t.raw
    srv.stop()
    log = open(srv.log_path, "rb").read()
    for s in seen + ["hunter2-secret", "5555-secret", guess]:
        assert s.encode() not in log, "secret in the log"


def test_no_secret_in_any_log_of_this_run(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    logs = glob.glob(os.path.join(base, "**", "*.log"), recursive=True)
    assert logs, "no server logs found under %s" % base
    keys = []
    for path in glob.glob(os.path.join(base, "**", "*.ed25519"), recursive=True):
        with open(path, "rb") as f:
            k = f.read().strip()
        if k:
            keys.append(k)
    leaks = []
    for path in logs:
        with open(path, "rb") as f:
            data = f.read()
        for m in TOKEN_RE.finditer(data):
            leaks.append("%s: token-shaped %r" % (path, m.group(0)[:12] + b"..."))
        for k in keys:
            if k in data:
                leaks.append("%s: a receipt signing key" % path)
    assert not leaks, "\n".join(leaks[:20])

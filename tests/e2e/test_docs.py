"""docs/API.md against the server, as an integrator reads it: every error code
with its status, every example request as printed, every field an answer
carries. A code, a field or a route added without its line in the document
fails here (the routes and their roles: test_authz.py)."""
import json
import os
import re

from e2e_util import assert_error, make_key

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
API_MD = open(os.path.join(ROOT, "docs", "API.md"), encoding="utf-8").read()
ERR_H = open(os.path.join(ROOT, "src", "util", "err.h"), encoding="utf-8").read()


def _err_map():
    """{code: status} from ERR_MAP, without ERR_OK (never an error)."""
    found = {code: int(status) for status, code in re.findall(r'X\(\s*\w+,\s*(\d+),\s*"(\w+)"', ERR_H)}
    assert len(found) > 50, "ERR_MAP not parsed"
    found.pop("ok")
    return found


def _documented_errors():
    """{code: status} from the error table: a row names one status and its
    codes; the last row names codes each with its own status, '(409)'."""
    table = {}
    for row in re.findall(r"^\| (\d{3}|—) \| (.+?) \| .*\|$", API_MD, re.M):
        status, codes = row
        if status == "—":
            for code, st in re.findall(r"`(\w+)` \((\d{3})\)", codes):
                table[code] = int(st)
        else:
            for code in re.findall(r"`(\w+)`", codes):
                table[code] = int(status)
    return table


def test_every_error_code_is_documented_with_its_status():
    documented, actual = _documented_errors(), _err_map()
    assert set(documented) == set(actual), ("in ERR_MAP only: %s; in API.md only: %s" % (
        sorted(set(actual) - set(documented)), sorted(set(documented) - set(actual))))
    wrong = {c: (documented[c], actual[c]) for c in actual if documented[c] != actual[c]}
    assert not wrong, "code: (API.md, ERR_MAP) %r" % wrong


def _section(heading):
    """The text of the '### `...`' section whose heading starts with heading."""
    m = re.search(r"^### `" + re.escape(heading) + r".*?$(.*?)(?=^#{2,3} |\Z)", API_MD, re.M | re.S)
    assert m, "no section %r in API.md" % heading
    return m.group(1)


def _example(heading):
    """The first JSON object printed in a section, as it is printed."""
    text = _section(heading)
    for m in re.finditer(r"```json\n(.*?)```|`(\{.*?\})`", text, re.S):
        try:
            return json.loads(m.group(1) or m.group(2))
        except ValueError:
            continue
    raise AssertionError("no JSON example in section %r" % heading)


def _keys(value, out):
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            _keys(v, out)
    elif isinstance(value, list):
        for v in value:
            _keys(v, out)
    return out


def test_examples_work_as_printed_and_every_field_is_documented(clock_server):
    """Each route called with the request its section prints; every name in
    every answer (and every error) must appear in API.md as "name"."""
    s = clock_server
    seen = []

    def call(method, path, body=None, status=200, **kw):
        r = s.request(method, path, body, **kw)
        assert r.status == status, "%s %s %r: %r" % (method, path, body, r)
        if isinstance(r.body, (dict, list)):
            seen.append(("%s %s" % (method, path), r.body))
        return r.body

    plan = _example("POST /v1/plans")
    call("POST", "/v1/plans", plan, 201, token="admin")
    call("GET", "/v1/plans", token=None)
    sim = _example("POST /v1/sims` (admin)")
    iccid = sim["iccid"]
    call("POST", "/v1/sims", sim, 201, token="admin")
    topup = _example("POST /v1/sims/{iccid}/topups")
    answer = call("POST", "/v1/sims/%s/topups" % iccid, topup, 201, idem=make_key())
    # The error printed under Errors: a bundle the wallet cannot pay yet.
    buy = _example("POST /v1/sims/{iccid}/bundles")
    r = s.request("POST", "/v1/sims/%s/bundles" % iccid, buy, idem=make_key())
    assert_error(r, 402, "insufficient_balance", "plan")
    seen.append(("402", r.body))
    for _ in range(plan["price"] // topup["amount"] - 1):
        call("POST", "/v1/sims/%s/topups" % iccid, topup, 201, idem=make_key())
    call("POST", "/v1/sims/%s/bundles" % iccid, buy, 201, idem=make_key())
    call("GET", "/v1/sims/" + iccid)
    call("GET", "/v1/sims/%s/transactions?limit=20" % iccid)
    receipt = call("GET", "/v1/receipts/" + answer["receipt"]["number"])
    assert call("POST", "/v1/receipts/verify", receipt, token=None) == {"valid": True}
    call("GET", "/v1/receipts/public-key", token=None)
    call("POST", "/v1/sims/%s/suspend" % iccid, token="admin")
    call("POST", "/v1/sims/%s/resume" % iccid, token="admin")
    call("POST", "/v1/sims/import", "iccid,msisdn\n%s,\n123,\n" % iccid, token="admin", content_type="text/csv")
    call("GET", "/v1/ledger/check", token="admin")
    made = call("POST", "/v1/tokens", _example("POST /v1/tokens"), 201, token="admin")
    s.secrets.append(made["token"])
    call("GET", "/v1/tokens", token="admin")
    call("DELETE", "/v1/tokens/%d" % made["id"], token="admin")
    call("POST", "/v1/test/clock", _example("POST /v1/test/clock"), token="admin")
    health = call("GET", "/healthz", token=None)
    printed = re.search(r'"schema":(\d+)', _section("GET /healthz"))
    assert printed and int(printed.group(1)) == health["schema"], "API.md prints another schema version"

    documented = set(re.findall(r'"(\w+)":', API_MD))
    for where, body in seen:
        missing = _keys(body, set()) - documented
        assert not missing, "%s answers with %s, which API.md never names" % (where, sorted(missing))

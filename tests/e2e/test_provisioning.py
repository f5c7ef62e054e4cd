"""SIM provisioning: POST /v1/sims, CSV import, GET /v1/sims/{iccid}, healthz, auth."""
import os

from conftest import ROOT
from e2e_util import (assert_error, bad_luhn, has_cjk, has_cyrillic, luhn_check_digit, make_iccid, make_key,
                      make_msisdn)


def test_healthz(server):
    st, _, body = server.request("GET", "/healthz", token=None)
    assert st == 200
    assert body["status"] == "ok"
    latest = max(int(f[:3]) for f in os.listdir(os.path.join(ROOT, "src", "store", "migrations"))
                 if f.endswith(".sql"))
    assert body["schema"] == latest
    assert isinstance(body["version"], str) and body["version"]


def test_create_sim_shape_and_get(server):
    iccid, msisdn = make_iccid(), make_msisdn()
    body = {"iccid": iccid, "msisdn": msisdn, "imsi": "250011234567890", "language": "ru"}
    st, hdrs, created = server.request("POST", "/v1/sims", body, token="admin")
    assert st == 201, created
    assert "application/json" in hdrs.get("content-type", "")
    assert created["iccid"] == iccid
    assert created["msisdn"] == msisdn
    assert created["imsi"] == "250011234567890"
    assert created["language"] == "ru"
    assert created["state"] == "inactive"
    assert created["balance"] == {"amount": 0, "currency": "CNY"}
    assert created["active_until"] is None
    assert created["grace_until"] is None
    assert created["bundles"] == []

    st, _, got = server.request("GET", "/v1/sims/" + iccid)
    assert st == 200
    for k in ("iccid", "msisdn", "imsi", "language", "state", "balance", "active_until", "grace_until", "bundles"):
        assert got[k] == created[k], k


def test_create_sim_minimal_defaults_to_english(server):
    iccid = make_iccid()
    st, _, sim = server.request("POST", "/v1/sims", {"iccid": iccid}, token="admin")
    assert st == 201, sim
    assert sim["iccid"] == iccid
    assert sim["language"] == "en"
    assert sim["msisdn"] is None
    assert sim["state"] == "inactive"
    assert sim["balance"] == {"amount": 0, "currency": "CNY"}


def test_iccid_lengths_18_and_19_accepted(server):
    for n in (18, 19):
        iccid = make_iccid(n)
        st, _, sim = server.request("POST", "/v1/sims", {"iccid": iccid}, token="admin")
        assert st == 201, (n, sim)
        assert server.sim(iccid)["iccid"] == iccid


def test_identical_repeat_is_200(server):
    body = {"iccid": make_iccid(), "msisdn": make_msisdn(), "language": "zh"}
    st1, _, first = server.request("POST", "/v1/sims", body, token="admin")
    assert st1 == 201, first
    st2, _, second = server.request("POST", "/v1/sims", body, token="admin")
    assert st2 == 200, second
    assert second["iccid"] == first["iccid"] and second["msisdn"] == first["msisdn"]
    assert second["language"] == "zh"


def test_conflicting_iccid_is_sim_exists(server):
    iccid, msisdn = make_iccid(), make_msisdn()
    assert server.request("POST", "/v1/sims", {"iccid": iccid, "msisdn": msisdn}, token="admin")[0] == 201
    r = server.request("POST", "/v1/sims", {"iccid": iccid, "msisdn": make_msisdn()}, token="admin")
    assert_error(r, 409, "sim_exists")
    r = server.request("POST", "/v1/sims", {"iccid": iccid, "msisdn": msisdn, "language": "ru"}, token="admin")
    assert_error(r, 409, "sim_exists")
    # unchanged
    sim = server.sim(iccid)
    assert sim["msisdn"] == msisdn and sim["language"] == "en"


def test_msisdn_taken(server):
    msisdn = make_msisdn()
    a = server.new_sim(msisdn=msisdn)
    other = make_iccid()
    r = server.request("POST", "/v1/sims", {"iccid": other, "msisdn": msisdn}, token="admin")
    assert_error(r, 409, "msisdn_taken")
    assert_error(server.request("GET", "/v1/sims/" + other), 404, "sim_not_found")
    assert server.sim(a)["msisdn"] == msisdn


def test_invalid_iccid_and_msisdn(server):
    good = make_iccid()
    cases = [
        ({"iccid": bad_luhn(good)}, "invalid_iccid"),
        ({"iccid": make_iccid()[:17]}, "invalid_iccid"),            # 17 digits
        ({"iccid": "8986" + "1" * 17}, "invalid_iccid"),             # 21 digits
        ({"iccid": "8986a0000000000000001"[:20]}, "invalid_iccid"),  # non-digit
        ({"iccid": make_iccid(), "msisdn": "79161234567"}, "invalid_msisdn"),       # no +
        ({"iccid": make_iccid(), "msisdn": "+1234567"}, "invalid_msisdn"),          # 7 digits
        ({"iccid": make_iccid(), "msisdn": "+1234567890123456"}, "invalid_msisdn"),  # 16 digits
        ({"iccid": make_iccid(), "msisdn": "+7916123456a"}, "invalid_msisdn"),
    ]
    for body, code in cases:
        r = server.request("POST", "/v1/sims", body, token="admin")
        assert_error(r, 400, code, param=code.split("_", 1)[1])
        if code == "invalid_msisdn":
            assert_error(server.request("GET", "/v1/sims/" + body["iccid"]), 404, "sim_not_found")


def test_provisioning_requires_admin(server):
    iccid = make_iccid()
    assert_error(server.request("POST", "/v1/sims", {"iccid": iccid}, token="operator"), 403, "forbidden")
    assert_error(server.request("POST", "/v1/sims", {"iccid": iccid}, token=None), 401, "unauthenticated")
    assert_error(server.request("POST", "/v1/sims", {"iccid": iccid}, token="not-a-token"), 401, "unauthenticated")
    assert_error(server.request("GET", "/v1/sims/" + iccid), 404, "sim_not_found")


def test_get_sim_auth_and_unknown(server):
    iccid = server.new_sim()
    assert_error(server.request("GET", "/v1/sims/" + iccid, token=None), 401, "unauthenticated")
    assert server.request("GET", "/v1/sims/" + iccid, token="admin")[0] == 200
    assert_error(server.request("GET", "/v1/sims/" + make_iccid()), 404, "sim_not_found")


def test_csv_import_mixed_rows(server):
    existing_iccid, existing_msisdn = make_iccid(), make_msisdn()
    server.new_sim(iccid=existing_iccid, msisdn=existing_msisdn)
    conflict_iccid = server.new_sim()

    good1, good2, good3 = make_iccid(), make_iccid(), make_iccid()
    m1, m3 = make_msisdn(), make_msisdn()
    bad = bad_luhn(make_iccid())
    bad_msisdn_iccid = make_iccid()
    rows = [
        "iccid,msisdn,imsi,language",                       # line 1
        "%s,%s,250011234567890,ru" % (good1, m1),           # 2 ok
        "%s,,,"  % bad,                                       # 3 invalid_iccid
        "%s,,,zh" % good2,                                    # 4 ok (no msisdn)
        "%s,12345,,en" % bad_msisdn_iccid,                    # 5 invalid_msisdn
        "%s,%s,," % (existing_iccid, existing_msisdn),        # 6 existing (identical)
        "%s,%s,,en" % (good3, m3),                            # 7 ok
        "%s,%s,,en" % (conflict_iccid, make_msisdn()),        # 8 sim_exists (other fields)
    ]
    csv = "\n".join(rows) + "\n"
    st, _, body = server.request("POST", "/v1/sims/import", csv.encode(), token="admin",
                                 content_type="text/csv")
    assert st == 200, body
    assert body["rows"] == 7
    assert body["imported"] == 3
    assert body["existing"] == 1
    assert body["failed"] == 3
    errs = sorted(body["errors"], key=lambda e: e["line"])
    assert [(e["line"], e["code"]) for e in errs] == [
        (3, "invalid_iccid"), (5, "invalid_msisdn"), (8, "sim_exists")]
    assert errs[0]["param"] == "iccid" and errs[1]["param"] == "msisdn"
    for e in errs:
        assert isinstance(e["message"], str) and e["message"]

    s1 = server.sim(good1)
    assert (s1["msisdn"], s1["imsi"], s1["language"], s1["state"]) == (m1, "250011234567890", "ru", "inactive")
    s2 = server.sim(good2)
    assert s2["msisdn"] is None and s2["language"] == "zh"
    assert server.sim(good3)["msisdn"] == m3
    r = server.request("GET", "/v1/sims/" + bad)   # never imported: 400 (bad ICCID) or 404
    assert_error(r, r.status, "invalid_iccid" if r.status == 400 else "sim_not_found")
    assert r.status in (400, 404)
    assert_error(server.request("GET", "/v1/sims/" + bad_msisdn_iccid), 404, "sim_not_found")


def test_csv_import_columns_any_order_and_repeat(server):
    a, b = make_iccid(), make_iccid()
    ma = make_msisdn()
    csv = "language,msisdn,iccid\nru,%s,%s\nzh,,%s\n" % (ma, a, b)
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv")
    assert st == 200, body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (2, 2, 0, 0)
    assert body["errors"] == []
    sa = server.sim(a)
    assert sa["msisdn"] == ma and sa["language"] == "ru"
    assert server.sim(b)["language"] == "zh"
    # The same file again: everything already exists, identically.
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv")
    assert st == 200, body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (2, 0, 2, 0)


def test_csv_import_as_spreadsheets_write_it(server):
    """A BOM, CRLF, every field quoted, trailing unnamed columns, a blank line."""
    a, b, c, d = make_iccid(), make_iccid(), make_iccid(), make_iccid()
    ma = make_msisdn()
    csv = ('\ufeff"iccid","msisdn","language",,\r\n'
           '"%s","%s","ru",,\r\n'
           '\r\n'
           '%s, ,"zh",,\r\n'
           '"%s,%s",,en,,\r\n'
           '%s,,en,,,\r\n' % (a, ma, b, c, c, d))
    r = server.request("POST", "/v1/sims/import", csv.encode(), token="admin", content_type="text/csv", lang="ru")
    assert r.status == 200, r
    body = r.body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (4, 2, 0, 2)
    assert [(e["line"], e["code"], e.get("param")) for e in body["errors"]] == [
        (5, "invalid_iccid", "iccid"), (6, "invalid_csv_row", None)]
    assert all(has_cyrillic(e["message"]) for e in body["errors"])
    sa = server.sim(a)
    assert (sa["msisdn"], sa["language"]) == (ma, "ru")
    sb = server.sim(b)
    assert (sb["msisdn"], sb["language"]) == (None, "zh")
    for never in (c, d):
        assert_error(server.request("GET", "/v1/sims/" + never), 404, "sim_not_found")


def test_csv_import_only_iccid_column(server):
    ids = [make_iccid() for _ in range(5)]
    csv = "iccid\n" + "\n".join(ids) + "\n"
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv")
    assert st == 200, body
    assert (body["rows"], body["imported"], body["failed"]) == (5, 5, 0)
    for i in ids:
        assert server.sim(i)["state"] == "inactive"


def test_csv_import_without_iccid_column_is_invalid_csv(server):
    iccid = make_iccid()
    for csv, param in (("msisdn,language\n%s,en\n" % make_msisdn(), "iccid"),
                       ("iccid,msisdn,colour\n%s,,red\n" % iccid, "colour")):
        r = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", lang="zh")
        assert has_cjk(assert_error(r, 400, "invalid_csv", param)["message"])
    assert_error(server.request("GET", "/v1/sims/" + iccid), 404, "sim_not_found")


def test_csv_import_requires_admin(server):
    iccid = make_iccid()
    r = server.request("POST", "/v1/sims/import", "iccid\n%s\n" % iccid, token="operator", content_type="text/csv")
    assert_error(r, 403, "forbidden")
    assert_error(server.request("GET", "/v1/sims/" + iccid), 404, "sim_not_found")


def test_csv_import_larger_than_json_body_limit(server):
    """max_body (64 KiB) is for JSON; an import has its own, larger cap."""
    ids = [make_iccid() for _ in range(3000)]
    csv = "iccid,language\n" + "".join("%s,zh\n" % i for i in ids)
    assert len(csv) > 65536
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", timeout=60)
    assert st == 200, body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (3000, 3000, 0, 0)
    for i in (ids[0], ids[1500], ids[-1]):
        assert server.sim(i)["language"] == "zh"


def test_csv_import_duplicate_msisdn_within_file(server):
    a, b = make_iccid(), make_iccid()
    m = make_msisdn()
    csv = "iccid,msisdn\n%s,%s\n%s,%s\n" % (a, m, b, m)
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv")
    assert st == 200, body
    assert (body["rows"], body["imported"], body["failed"]) == (2, 1, 1)
    assert [(e["line"], e["code"]) for e in body["errors"]] == [(3, "msisdn_taken")]
    assert server.sim(a)["msisdn"] == m
    assert_error(server.request("GET", "/v1/sims/" + b), 404, "sim_not_found")


def test_csv_import_errors_in_line_order(server):
    """A row refused in reading (line 4) and one refused by the database (line 3,
    an MSISDN taken) are listed in the order of their lines, as a file is read."""
    a, b = make_iccid(), make_iccid()
    m = make_msisdn()
    server.new_sim(msisdn=m)
    csv = "iccid,msisdn\n%s,\n%s,%s\n12345,\n" % (a, b, m)
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv")
    assert st == 200, body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (3, 1, 0, 2)
    assert [(e["line"], e["code"]) for e in body["errors"]] == [(3, "msisdn_taken"), (4, "invalid_iccid")]


def test_csv_import_lists_at_most_1000_errors(server):
    """A file of bad rows (here 3,000, the first in a database conflict) is
    answered with every row counted but only the first 1,000 errors listed, in
    line order: 2 MB of them made a 127 MB answer and 1.1 GB of the server's
    memory, so that a file near max_import_body would take the server down."""
    m = make_msisdn()
    server.new_sim(msisdn=m)
    good = make_iccid()
    csv = "iccid,msisdn\n%s,%s\n" % (make_iccid(), m) + "1,\n" * 2999 + "%s,\n" % good
    st, _, body = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", timeout=60)
    assert st == 200, body
    assert (body["rows"], body["imported"], body["existing"], body["failed"]) == (3001, 1, 0, 3000)
    assert len(body["errors"]) == 1000
    assert body["errors"][0]["code"] == "msisdn_taken" and body["errors"][0]["line"] == 2
    assert [e["line"] for e in body["errors"]] == list(range(2, 1002))
    assert server.sim(good)["state"] == "inactive"


def test_msisdn_length_boundaries(server):
    for digits in (8, 15):
        unique = make_msisdn()[1:]          # 13 digits
        m = "+7" + unique[-7:] if digits == 8 else "+79" + unique
        assert len(m) == digits + 1
        iccid = make_iccid()
        st, _, body = server.request("POST", "/v1/sims", {"iccid": iccid, "msisdn": m}, token="admin")
        assert st == 201, (m, body)
        assert server.sim(iccid)["msisdn"] == m


def test_unsupported_language_is_400(server):
    iccid = make_iccid()
    st, _, body = server.request("POST", "/v1/sims", {"iccid": iccid, "language": "fr"}, token="admin")
    assert st == 400, body
    assert body["error"]["code"] in ("invalid_parameter",), body
    assert_error(server.request("GET", "/v1/sims/" + iccid), 404, "sim_not_found")


_ABSENT = object()


def test_bad_sim_fields_name_their_field(server):
    cases = [
        ({"iccid": _ABSENT}, 400, "missing_parameter", "iccid"),
        ({"iccid": ""}, 400, "missing_parameter", "iccid"),
        ({"iccid": 897010000000000001}, 400, "invalid_iccid", "iccid"),
        ({"msisdn": 79161234567}, 400, "invalid_msisdn", "msisdn"),
        ({"imsi": "25001"}, 400, "invalid_parameter", "imsi"),                # 5 digits
        ({"imsi": "2500112345678901"}, 400, "invalid_parameter", "imsi"),     # 16 digits
        ({"imsi": "25001123456789x"}, 400, "invalid_parameter", "imsi"),
        ({"imsi": 250011234567890}, 400, "invalid_parameter", "imsi"),
        ({"language": "english"}, 400, "invalid_parameter", "language"),
        ({"colour": "red"}, 400, "invalid_parameter", "colour"),
    ]
    for extra, status, code, param in cases:
        iccid = make_iccid()
        body = {k: v for k, v in dict({"iccid": iccid}, **extra).items() if v is not _ABSENT}
        r = server.request("POST", "/v1/sims", body, token="admin", lang="ru")
        assert has_cyrillic(assert_error(r, status, code, param)["message"]), body
        assert_error(server.request("GET", "/v1/sims/" + iccid), 404, "sim_not_found")


def _numbered_iccids(prefix, n):
    out = []
    for i in range(n):
        digits = "%s%012d" % (prefix, i)
        out.append(digits + luhn_check_digit(digits))
    return out


def test_csv_import_in_slices_answers_as_one(server):
    """An import runs in slices of 2,000 rows (engine.h E9); the answer is the
    whole file's, errors in line order across slices, and the key's answer
    replays byte for byte. A reused key with another file imports nothing:
    the key is looked up before the first slice."""
    ids = _numbered_iccids("8970188", 12345)
    existing = ids[7000]   # provisioned before: counted in a later slice
    server.new_sim(iccid=existing, msisdn=False)
    lines = ["iccid"] + ids[:6000] + ["12345"] + ids[6000:] + [ids[3]]   # a bad line; a repeat in the last slice
    csv = ("\n".join(lines) + "\n").encode()
    key = make_key("imp")
    r = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem=key, timeout=60)
    assert r.status == 200, r
    assert (r.body["rows"], r.body["imported"], r.body["existing"], r.body["failed"]) == (12347, 12344, 2, 1)
    assert [(e["line"], e["code"]) for e in r.body["errors"]] == [(6002, "invalid_iccid")]
    for i in (ids[0], ids[4999], ids[5000], ids[12344]):
        assert server.sim(i)["state"] == "inactive"
    other = _numbered_iccids("8970177", 6000)   # first: a repeat would open the engine's look-first window
    csv2 = ("iccid\n" + "\n".join(other) + "\n").encode()
    reused = server.request("POST", "/v1/sims/import", csv2, token="admin", content_type="text/csv", idem=key,
                            timeout=60)
    assert_error(reused, 422, "idempotency_key_reused")
    for i in (other[0], other[-1]):
        assert_error(server.request("GET", "/v1/sims/" + i), 404, "sim_not_found")
    again = server.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem=key,
                           timeout=60)
    assert again.status == 200 and again.raw == r.raw and again.headers.get("idempotent-replayed") == "true"
    server.ledger_ok()

"""Signed receipts: GET /v1/receipts/{number}, POST /v1/receipts/verify, public key.

A top-up answers with its receipt's content, unsigned; the receipt is signed
when it is fetched (Ed25519 is deterministic: the same bytes every time)."""
import base64
import copy
import os
import sqlite3

import pytest
from conftest import ServerError

from e2e_util import assert_error, ed25519_verify, make_msisdn, parse_time, receipt_signed_bytes

RECEIPT_FIELDS = {"number", "issued_at", "iccid", "msisdn", "topup", "channel", "method", "amount",
                  "currency", "reactivation_fee", "balance_after", "active_until", "served_by"}
SIGNATURE_FIELDS = {"key_id", "signature"}


def _public_key(server):
    st, _, pk = server.request("GET", "/v1/receipts/public-key", token=None)
    assert st == 200, pk
    assert pk["algorithm"] == "Ed25519"
    raw = base64.b64decode(pk["public_key"], validate=True)
    assert len(raw) == 32
    assert isinstance(pk["key_id"], str) and pk["key_id"]
    return pk, raw


def _verify(server, receipt, token=None):
    st, _, body = server.request("POST", "/v1/receipts/verify", receipt, token=token)
    assert st == 200, body
    assert body in ({"valid": True}, {"valid": False}), body
    return body["valid"]


def _signed(server, iccid, amount, **kw):
    """Tops up, then fetches the signed receipt: the answer's content plus key_id and signature."""
    rc = server.topup_ok(iccid, amount, **kw)["receipt"]
    assert not SIGNATURE_FIELDS & set(rc), rc
    st, _, fetched = server.request("GET", "/v1/receipts/" + rc["number"])
    assert st == 200, fetched
    assert {k: v for k, v in fetched.items() if k not in SIGNATURE_FIELDS} == rc, (fetched, rc)
    return fetched


def _independently_valid(receipt, pub):
    sig = base64.b64decode(receipt["signature"], validate=True)
    return any(ed25519_verify(pub, receipt_signed_bytes(receipt, ensure_ascii=a), sig) for a in (False, True))


def test_receipt_fetch_shape(server):
    msisdn = make_msisdn()
    iccid = server.new_sim(msisdn=msisdn)
    body = server.topup_ok(iccid, 1234, channel="kiosk", method="wechat")
    rc = body["receipt"]
    assert set(rc) == RECEIPT_FIELDS, set(RECEIPT_FIELDS) ^ set(rc)   # unsigned in the answer
    assert rc["iccid"] == iccid and rc["msisdn"] == msisdn
    assert rc["topup"] == body["topup"]["id"]
    assert (rc["channel"], rc["method"]) == ("kiosk", "wechat")
    assert (rc["amount"], rc["currency"], rc["reactivation_fee"], rc["balance_after"]) == (1234, "CNY", 0, 1234)
    assert rc["active_until"] == body["active_until"]
    parse_time(rc["issued_at"])
    assert isinstance(rc["served_by"], str)

    st, _, fetched = server.request("GET", "/v1/receipts/" + rc["number"])
    assert st == 200, fetched
    assert set(fetched) == RECEIPT_FIELDS | SIGNATURE_FIELDS
    assert {k: v for k, v in fetched.items() if k not in SIGNATURE_FIELDS} == rc
    st, _, fetched_admin = server.request("GET", "/v1/receipts/" + rc["number"], token="admin")
    assert st == 200 and fetched_admin == fetched   # deterministic

    pk, _ = _public_key(server)
    assert fetched["key_id"] == pk["key_id"]
    txns = server.txns(iccid)
    assert txns[0]["receipt"] == rc["number"]


def test_receipt_verify_valid_and_tampered(server):
    iccid = server.new_sim()
    rc = _signed(server, iccid, 1000)
    assert _verify(server, rc) is True
    assert _verify(server, rc, token="operator") is True

    for field, value in [("amount", 100000), ("amount", 1001), ("balance_after", 999999),
                         ("iccid", rc["iccid"][:-2] + ("00" if rc["iccid"][-2:] != "00" else "11")),
                         ("active_until", "2099-01-01T00:00:00Z")]:
        bad = copy.deepcopy(rc)
        bad[field] = value
        assert _verify(server, bad) is False, field

    # a signature from another receipt
    other = _signed(server, iccid, 500)
    swapped = dict(rc, signature=other["signature"])
    assert _verify(server, swapped) is False
    # a flipped bit in the signature
    sig = bytearray(base64.b64decode(rc["signature"]))
    sig[5] ^= 0x01
    flipped = dict(rc, signature=base64.b64encode(bytes(sig)).decode())
    assert _verify(server, flipped) is False
    # a key_id that names another key (or is no key id), the signature intact
    for key_id in ("0000000000000000", "", 7, None):
        assert _verify(server, dict(rc, key_id=key_id)) is False, key_id
    # without its key_id: the signature alone speaks for it
    assert _verify(server, {k: v for k, v in rc.items() if k != "key_id"}) is True
    # the original still verifies after all that
    assert _verify(server, rc) is True
    assert _verify(server, other) is True


def test_receipt_signature_independently_verifiable(server):
    """The signature covers the receipt without signature/key_id, compact JSON, sorted keys."""
    iccid = server.new_sim()
    rc = _signed(server, iccid, 4321)
    _, pub = _public_key(server)
    assert _independently_valid(rc, pub), "Ed25519 signature does not verify over %r" % (
        receipt_signed_bytes(rc),)
    tampered = dict(rc, amount=4322)
    assert not _independently_valid(tampered, pub)


def test_receipt_not_found_and_auth(server):
    iccid = server.new_sim()
    rc = _signed(server, iccid, 1000)
    assert_error(server.request("GET", "/v1/receipts/R9999999999"), 404, "receipt_not_found")
    assert_error(server.request("GET", "/v1/receipts/" + rc["number"], token=None), 401, "unauthenticated")


def test_public_key_is_anonymous_and_stable(server):
    pk1, _ = _public_key(server)
    pk2, _ = _public_key(server)
    assert pk1 == pk2


def test_receipts_survive_restart(server):
    iccid = server.new_sim()
    rc = _signed(server, iccid, 2500)
    pk_before, pub = _public_key(server)
    assert server.stop() == 0
    server.start()
    pk_after, _ = _public_key(server)
    assert pk_after == pk_before, "signing key changed across a restart"
    st, _, fetched = server.request("GET", "/v1/receipts/" + rc["number"])
    assert st == 200 and fetched == rc   # the same bytes, signed again after the restart
    assert _verify(server, fetched) is True
    assert _independently_valid(fetched, pub)
    # and new receipts are signed with the same key
    rc2 = _signed(server, iccid, 100)
    assert rc2["key_id"] == pk_before["key_id"]
    assert _verify(server, rc2) is True
    server.ledger_ok()


def test_a_database_refuses_a_missing_or_other_receipt_key(server):
    """The database names the key its receipts are signed with. Started
    without that key file (a database restored on another host, a mistyped
    --key), topupd used to make a new key, and every receipt it had issued
    failed to verify from then on; it now refuses to start and says what to
    restore, and starts with the key named."""
    iccid = server.new_sim()
    rc = _signed(server, iccid, 2500)
    pk, pub = _public_key(server)
    assert server.stop() == 0
    key = server.db + ".ed25519"
    kept = os.path.join(server.workdir, "kept.ed25519")
    os.rename(key, kept)

    with pytest.raises(ServerError):
        server.start()
    log = server.log_tail(5)
    assert "receipt key %s is missing" % key in log and "key " + pk["key_id"] in log, log
    assert not os.path.exists(key), "a new key was made"

    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:   # another key
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    with pytest.raises(ServerError):
        server.start()
    log = server.log_tail(5)
    assert "but the receipts" in log and "signed with key " + pk["key_id"] in log, log

    # A database from before keys were named (no meta row): refused all the
    # same while it has issued receipts; started with a key, it names that one.
    os.remove(key)
    con = sqlite3.connect(server.db)
    with con:
        con.execute("DELETE FROM meta WHERE key = 'receipt_key'")
    con.close()
    with pytest.raises(ServerError):
        server.start()
    log = server.log_tail(5)
    assert "signed with a key it does not name" in log and not os.path.exists(key), log

    server.extra_args += ["--key", kept]   # the key named: as before
    server.start()
    assert _public_key(server) == (pk, pub)
    st, _, fetched = server.request("GET", "/v1/receipts/" + rc["number"])
    assert st == 200 and fetched == rc and _verify(server, fetched) is True, fetched
    server.ledger_ok()


def test_receipt_to_print_in_the_subscribers_language(server):
    """GET /v1/receipts/{number}/print: the receipt as a person reads it, in
    the SIM's language unless ?language= asks for another, with the served
    receipt's key and signature."""
    iccid = server.new_sim(language="ru")
    rc = _signed(server, iccid, 5000, channel="kiosk", method="wechat")
    path = "/v1/receipts/%s/print" % rc["number"]
    r = server.request("GET", path)
    assert r.status == 200 and r.headers["content-type"] == "text/plain; charset=utf-8", r
    text = r.raw.decode()
    for line in ("Квитанция о пополнении", "Номер квитанции: " + rc["number"], "SIM-карта (ICCID): " + iccid,
                 "Канал: Терминал самообслуживания", "Способ оплаты: WeChat Pay", "Сумма: 50.00 CNY",
                 "Баланс: 50.00 CNY", "Ключ: " + rc["key_id"], rc["signature"][:44], rc["signature"][44:]):
        assert line + "\n" in text, (line, text)
    zh = server.request("GET", path + "?language=zh").raw.decode()
    assert "充值收据\n" in zh and "充值金额: 50.00 CNY\n" in zh and "支付方式: 微信支付\n" in zh, zh
    en = server.request("GET", path + "?language=en").raw.decode()
    assert en.startswith("Top-up receipt\n") and "Valid until: " in en, en
    assert_error(server.request("GET", path + "?language=fr"), 400, "invalid_parameter", "language")
    assert_error(server.request("GET", "/v1/receipts/R0000099999/print"), 404, "receipt_not_found")
    assert_error(server.request("GET", path, token=None), 401, "unauthenticated")
    assert server.request("GET", path).raw.decode() == text   # the same slip every time


def test_receipt_extra_or_missing_field_invalid(server):
    """The signature covers every field but signature and key_id."""
    iccid = server.new_sim()
    rc = _signed(server, iccid, 1000)
    assert _verify(server, dict(rc, note="hello")) is False
    assert _verify(server, {k: v for k, v in rc.items() if k != "served_by"}) is False
    assert _verify(server, {k: v for k, v in rc.items() if k != "msisdn"}) is False
    # key order in the submitted JSON does not matter
    assert _verify(server, dict(reversed(list(rc.items())))) is True


def test_receipt_composed_from_its_row(server):
    """receipt.h R1: a top-up stores no payload; the receipt fetched later is
    what its row and its SIM say, field for field, in canonical form, and the
    same bytes every time (so the same signature)."""
    import json
    import sqlite3

    from db_invariants import receipt_problem

    iccid = server.new_sim(msisdn=make_msisdn())
    numbers = [server.topup_ok(iccid, amount)["receipt"]["number"] for amount in (700, 1300)]
    con = sqlite3.connect("file:%s?mode=ro" % server.db, uri=True)
    con.row_factory = sqlite3.Row
    try:
        for number in numbers:
            t = con.execute("SELECT * FROM topups WHERE id = ?", (int(number[1:]),)).fetchone()
            s = con.execute("SELECT * FROM sims WHERE id = ?", (t["sim_id"],)).fetchone()
            assert t["receipt"] is None
            first = server.request("GET", "/v1/receipts/" + number)
            again = server.request("GET", "/v1/receipts/" + number)
            assert first.status == again.status == 200 and first.raw == again.raw
            payload = {k: v for k, v in first.body.items() if k not in SIGNATURE_FIELDS}
            canonical = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            assert receipt_problem(dict(t), dict(s), canonical) is None
            assert _verify(server, first.body)
    finally:
        con.close()

#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (run it after
changing a seed here; the files it writes are committed).

fuzz_http seeds use the harness's structured format (fuzz_http.c, top comment):
byte 0 is the tag of the route (FNV-1a of "METHOD pattern" mod 240, computed
here as in the harness), bytes 1-3 the choices, then lines, then the body.
Byte 0 in 0xF0..0xF7 is raw mode: the rest is sent as it is, "@A@"/"@O@"
becoming the admin/operator tokens; 0xF8..0xFF is twin mode: the rest, itself
an input, is sent on two connections at once.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

ACTIVE, INACTIVE, SUSPENDED, BUNDLE, UNKNOWN = (
    "89860011000000000016", "89860011000000000024", "89860011000000000032",
    "89860011000000000040", "89860011000000000099")

# Selector values (fuzz_http.c).
NONE, OP, ADMIN, UNKNOWN_TOK, REVOKED, BASIC, LINE_TOK = range(7)
P_ACTIVE, P_INACTIVE, P_SUSPENDED, P_BUNDLE, P_UNKNOWN, P_BADLUHN, P_LINE, P_GARBAGE = range(8)
# same indices for {number}: R1, R2, R3, R9999999999, "R", too long; {id}: 3, 4, 999, 0, -1, huge
I_NONE, I_K1, I_K2, I_K3, I_K4, I_UNIQUE, I_LINE, I_INVALID = range(8)


def tag(method, pattern):
    h = 2166136261
    for c in f"{method} {pattern}".encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h % 240


def luhn(payload):
    s = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return payload + str((10 - s % 10) % 10)


def req(method, pattern, who=NONE, meth=0, chunked=0, ctype=0, param=0, idem=I_NONE, lang=0,
        query=0, cl_lie=0, chunk=0, lines=(), body=b""):
    if isinstance(body, str):
        body = body.encode()
    b1 = who | meth << 3 | chunked << 5 | ctype << 6
    b2 = param | idem << 3 | lang << 6
    b3 = query | cl_lie << 3 | chunk << 4
    out = bytes([tag(method, pattern), b1, b2, b3])
    for line in lines:
        out += (line.encode() if isinstance(line, str) else line) + b"\n"
    return out + body


def raw(text):
    return b"\xf0" + (text.encode() if isinstance(text, str) else text)


def twin(seed):
    """The seed sent on two connections at once."""
    return b"\xf8" + seed


PLAN = ('{"code":"fz1","name":{"zh":"\u6d41\u91cf","en":"Data","ru":"\u0414\u0430\u043d\u043d\u044b\u0435"},'
        '"price":1000,"currency":"CNY","validity_days":7,'
        '"allowances":{"data_bytes":1048576,"voice_seconds":60,"sms":5},"zones":["460"],"payg":true}')
DATA10 = ('{"code":"data10","name":{"zh":"10 GB","en":"10 GB","ru":"10 GB"},"price":5000,"currency":"CNY",'
          '"validity_days":30,"allowances":{"data_bytes":10737418240,"voice_seconds":0,"sms":0},'
          '"zones":["250","460"],"payg":false}')
TOPUP = '{"amount":1000,"currency":"CNY","channel":"portal","method":"alipay"}'
NEW1, NEW2, NEW3 = luhn("898600110000000010"), luhn("8986001100000000110"), luhn("8986001100000000120")
RECEIPT = ('{"active_until":"2026-12-24T21:05:00Z","amount":1000,"balance_after":1000,"channel":"portal",'
           '"currency":"CNY","iccid":"89860011000000000016","issued_at":"2026-11-24T21:05:00Z",'
           '"key_id":"0011223344556677","method":"alipay","msisdn":"+8613800000001",'
           '"number":"R0000000001","reactivation_fee":0,"served_by":"token:2",'
           '"signature":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",'
           '"topup":"tu_1"}')


def http_seeds():
    S = {}
    G, P, D = "GET", "POST", "DELETE"
    S["healthz"] = req(G, "/healthz")
    S["plans-list"] = req(G, "/v1/plans", lang=1)
    S["plans-create"] = req(P, "/v1/plans", ADMIN, body=PLAN)
    S["plans-create-same"] = req(P, "/v1/plans", ADMIN, body=DATA10)
    S["plans-create-conflict"] = req(P, "/v1/plans", ADMIN, body=DATA10.replace("5000", "5001"))
    S["plans-create-bad-zones"] = req(P, "/v1/plans", ADMIN, body=PLAN.replace('["460"]', '["4600000",1]'))
    S["plans-create-unknown-key"] = req(P, "/v1/plans", ADMIN, body='{"code":"x","colour":"red"}')
    S["plans-create-operator"] = req(P, "/v1/plans", OP, body=PLAN)
    S["plans-create-bad-allowances"] = req(P, "/v1/plans", ADMIN,
                                           body=PLAN.replace('"sms":5', '"sms":-5,"mms":1'))
    S["sims-create"] = req(P, "/v1/sims", ADMIN, lang=2,
                           body=f'{{"iccid":"{NEW1}","msisdn":"+79161234567","imsi":"250011234567890","language":"ru"}}')
    S["sims-create-minimal"] = req(P, "/v1/sims", ADMIN, body=f'{{"iccid":"{NEW2}"}}')
    S["sims-create-existing"] = req(P, "/v1/sims", ADMIN, body=f'{{"iccid":"{ACTIVE}","msisdn":"+8613800000001"}}')
    S["sims-create-msisdn-taken"] = req(P, "/v1/sims", ADMIN, body=f'{{"iccid":"{NEW3}","msisdn":"+8613800000002"}}')
    S["sims-create-invalid"] = req(P, "/v1/sims", ADMIN,
                                   body='{"iccid":"8986001100000000001","msisdn":"+0123","imsi":"12","language":"de"}')
    S["sims-import"] = req(P, "/v1/sims/import", ADMIN,
                           body=f"iccid,msisdn,imsi,language\n{NEW1},+79161234567,250011234567890,ru\n{NEW2},,,\n")
    S["sims-import-bom-crlf"] = req(P, "/v1/sims/import", ADMIN, lang=1,
                                    body=f"\ufeffimsi , iccid\r\n\r\n250011234567891 , {NEW3}\r\n  \r\n1,2,3\r\n")
    S["sims-import-bad-header"] = req(P, "/v1/sims/import", ADMIN, body="iccid,colour\n1,2\n")
    S["sims-import-chunked"] = req(P, "/v1/sims/import", ADMIN, chunked=1, chunk=1,
                                   body=f"iccid\n{ACTIVE}\n{UNKNOWN}\nnot-an-iccid\n")
    S["sims-get"] = req(G, "/v1/sims/{iccid}", OP, param=P_BUNDLE)
    S["sims-get-line"] = req(G, "/v1/sims/{iccid}", ADMIN, param=P_LINE, lines=[ACTIVE + "/x"])
    S["sims-get-by-number"] = req(G, "/v1/sims/{iccid}", OP, param=P_LINE, lines=["+8613800000001"])
    S["sims-get-by-number-escaped"] = req(G, "/v1/sims/{iccid}", OP, param=P_LINE, lines=["%2B8613800000004"])
    S["topup-by-number"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_LINE, idem=I_UNIQUE,
                               lines=["+8613800000002"], body=TOPUP)
    S["topup"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, idem=I_UNIQUE, body=TOPUP)
    S["topup-k1"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_INACTIVE, idem=I_K1, body=TOPUP)
    S["topup-k1-reused"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_INACTIVE, idem=I_K1,
                               body=TOPUP.replace("1000", "2000"))
    S["topup-admin-adjustment"] = req(P, "/v1/sims/{iccid}/topups", ADMIN, param=P_BUNDLE, idem=I_UNIQUE,
                                      body='{"amount":100,"currency":"CNY","channel":"admin","method":"adjustment"}')
    S["topup-operator-admin-channel"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, idem=I_K2,
                                            body='{"amount":100,"currency":"CNY","channel":"admin","method":"cash"}')
    S["topup-bad-amount"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, idem=I_UNIQUE,
                                body='{"amount":10.5,"currency":"USD","channel":"kiosk","method":"card"}')
    S["topup-too-large"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, idem=I_UNIQUE,
                               body='{"amount":200001,"currency":"CNY","channel":"agent","method":"wechat"}')
    S["topup-suspended"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_SUSPENDED, idem=I_UNIQUE, body=TOPUP)
    S["topup-no-key"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, body=TOPUP)
    S["topup-key-line"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_UNKNOWN, idem=I_LINE,
                              lines=["\x7fkey with spaces"], body=TOPUP)
    S["topup-chunked"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_BUNDLE, idem=I_UNIQUE, chunked=1, chunk=0,
                             body=TOPUP)
    S["topup-text-plain"] = req(P, "/v1/sims/{iccid}/topups", OP, ctype=2, param=P_ACTIVE, idem=I_UNIQUE, body=TOPUP)
    S["topup-content-length-lie"] = req(P, "/v1/sims/{iccid}/topups", OP, param=P_ACTIVE, idem=I_UNIQUE, cl_lie=1,
                                        body=TOPUP)
    S["bundles"] = req(P, "/v1/sims/{iccid}/bundles", OP, param=P_ACTIVE, idem=I_UNIQUE, body='{"plan":"voice"}')
    S["bundles-data10"] = req(P, "/v1/sims/{iccid}/bundles", OP, param=P_BUNDLE, idem=I_K3, body='{"plan":"data10"}')
    S["bundles-inactive"] = req(P, "/v1/sims/{iccid}/bundles", OP, param=P_INACTIVE, idem=I_UNIQUE,
                                body='{"plan":"data10"}')
    S["bundles-unknown-plan"] = req(P, "/v1/sims/{iccid}/bundles", ADMIN, param=P_ACTIVE, idem=I_UNIQUE,
                                    body='{"plan":"nope","extra":1}')
    S["suspend"] = req(P, "/v1/sims/{iccid}/suspend", ADMIN, param=P_INACTIVE)
    S["suspend-reason"] = req(P, "/v1/sims/{iccid}/suspend", ADMIN, param=P_ACTIVE,
                              body='{"reason":"\u0423\u0442\u0435\u0440\u044f\u043d, ticket 7"}')
    S["resume-bad-reason"] = req(P, "/v1/sims/{iccid}/resume", ADMIN, param=P_SUSPENDED, body='{"reason":""}')
    S["resume"] = req(P, "/v1/sims/{iccid}/resume", ADMIN, param=P_SUSPENDED, idem=I_K4)
    S["resume-operator"] = req(P, "/v1/sims/{iccid}/resume", OP, param=P_SUSPENDED)
    S["transactions"] = req(G, "/v1/sims/{iccid}/transactions", OP, param=P_BUNDLE, query=1)
    S["transactions-cursor"] = req(G, "/v1/sims/{iccid}/transactions", ADMIN, param=P_ACTIVE, query=2)
    S["transactions-query-line"] = req(G, "/v1/sims/{iccid}/transactions", OP, param=P_ACTIVE, query=7,
                                       lines=["limit=5&starting_after=tx_2&limit=7"])
    S["receipts-public-key"] = req(G, "/v1/receipts/public-key")
    S["receipts-verify"] = req(P, "/v1/receipts/verify", body=RECEIPT)
    S["receipts-verify-not-object"] = req(P, "/v1/receipts/verify", body="[1,2,3]")
    S["receipts-get"] = req(G, "/v1/receipts/{number}", OP, param=0)
    S["receipts-get-2"] = req(G, "/v1/receipts/{number}", ADMIN, param=1, lang=3, lines=["ru-RU;q=0.5, zh;q=0.7"])
    S["receipts-get-unknown"] = req(G, "/v1/receipts/{number}", OP, param=3)
    S["ledger-check"] = req(G, "/v1/ledger/check", ADMIN)
    S["ledger-check-operator"] = req(G, "/v1/ledger/check", OP)
    S["ledger-check-revoked"] = req(G, "/v1/ledger/check", REVOKED)
    S["ledger-check-unknown-token"] = req(G, "/v1/ledger/check", UNKNOWN_TOK)
    S["ledger-check-basic"] = req(G, "/v1/ledger/check", BASIC)
    S["ledger-check-token-line"] = req(G, "/v1/ledger/check", LINE_TOK, lines=["Bearer tpk_short"])
    S["tokens-list"] = req(G, "/v1/tokens", ADMIN)
    S["tokens-create"] = req(P, "/v1/tokens", ADMIN, body='{"role":"operator","name":"kiosk 7"}')
    S["tokens-create-bad-role"] = req(P, "/v1/tokens", ADMIN, body='{"role":"root"}')
    S["tokens-revoke"] = req(D, "/v1/tokens/{id}", ADMIN, param=0)
    S["tokens-revoke-unknown"] = req(D, "/v1/tokens/{id}", ADMIN, param=2)
    S["tokens-revoke-line"] = req(D, "/v1/tokens/{id}", ADMIN, param=P_LINE, lines=["12abc"])
    S["tokens-wrong-method"] = req(D, "/v1/tokens/{id}", ADMIN, meth=2, param=0)
    S["clock-advance"] = req(P, "/v1/test/clock", ADMIN, body='{"advance":2678400}')
    S["clock-now"] = req(P, "/v1/test/clock", ADMIN, body='{"now":"2031-06-01T00:00:00Z"}')
    S["clock-bad"] = req(P, "/v1/test/clock", ADMIN, body='{"advance":-1,"now":"yesterday"}')
    S["wrong-method"] = req(G, "/v1/sims", ADMIN, meth=3)
    S["bad-json"] = req(P, "/v1/sims", ADMIN, body='{"iccid":"1",')
    S["duplicate-keys"] = req(P, "/v1/tokens", ADMIN, body='{"role":"admin","role":"operator"}')
    S["content-type-line"] = req(P, "/v1/sims", ADMIN, ctype=3, lines=["application/json; charset=utf-8"],
                                 body=f'{{"iccid":"{NEW2}"}}')
    S["idem-invalid"] = req(P, "/v1/plans", ADMIN, idem=I_INVALID, body=PLAN)

    S["twin-topup"] = twin(S["topup"])
    S["twin-topup-k2"] = twin(req(P, "/v1/sims/{iccid}/topups", OP, param=P_BUNDLE, idem=I_K2, body=TOPUP))
    S["twin-bundles"] = twin(S["bundles"])
    S["twin-sims-create"] = twin(req(P, "/v1/sims", ADMIN, idem=I_UNIQUE, body=f'{{"iccid":"{NEW2}"}}'))
    S["twin-suspend-resume"] = twin(S["resume"])
    S["raw-transactions"] = raw(f"GET /v1/sims/{ACTIVE}/transactions?limit=5 HTTP/1.1\r\nHost: x\r\n"
                                "Authorization: Bearer @O@\r\n\r\n")
    S["raw-import-chunked"] = raw("POST /v1/sims/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer @A@\r\n"
                                  "Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  f"6\r\niccid\n\r\n14\r\n{NEW1}\r\n0\r\n\r\n")
    S["raw-pipelined"] = raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/plans HTTP/1.1\r\nHost: x\r\n\r\n"
                             f"GET /v1/sims/{BUNDLE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer @O@\r\n\r\n")
    S["raw-http10"] = raw("GET /v1/receipts/public-key HTTP/1.0\r\n\r\n")
    S["raw-expect-continue"] = raw(f"POST /v1/sims/{ACTIVE}/topups HTTP/1.1\r\nHost: x\r\n"
                                   "Authorization: Bearer @O@\r\nIdempotency-Key: raw-1\r\nExpect: 100-continue\r\n"
                                   f"Content-Type: application/json\r\nContent-Length: {len(TOPUP)}\r\n\r\n{TOPUP}")
    S["raw-absolute-uri"] = raw("GET http://x/v1/plans?x=1 HTTP/1.1\r\nHost: x\r\nAccept-Language: ru\r\n\r\n")
    S["raw-no-host"] = raw("GET /healthz HTTP/1.1\r\n\r\n")
    S["raw-bad-request-line"] = raw("get  /healthz  HTTP/9.9\r\nHost: x\r\n\r\n")
    S["raw-encoded-path"] = raw(f"GET /v1/sims/%38{ACTIVE[1:]}/transactions?starting_after=tx_%31 HTTP/1.1\r\n"
                                "Host: x\r\nAuthorization: Bearer @O@\r\n\r\n")
    S["raw-header-folding"] = raw("GET /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n @A@\r\n\r\n")
    S["raw-big-content-length"] = raw("POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 18446744073709551615\r\n\r\n{}")
    S["raw-incomplete"] = raw("POST /v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
    return S


def csv_seeds():
    a, b, c = ACTIVE, UNKNOWN, NEW1
    return {
        "minimal": f"iccid\n{a}\n",
        "all-columns": f"iccid,msisdn,imsi,language\n{a},+8613800000001,460001000000001,zh\n{b},+79161234567,250011234567890,ru\n",
        "reordered": f"language,imsi,iccid,msisdn\nen,250011234567890,{c},+79161234567\n",
        "bom-crlf": f"\ufefficcid,msisdn\r\n{a},+8613800000001\r\n{b},\r\n",
        "blank-lines": f"iccid\n\n   \n\r\n{a}\n\n{b}\n\n",
        "spaces": f" iccid , language \n  {a} ,  en  \n",
        "wrong-column-count": f"iccid,msisdn\n{a}\n{b},+79161234567,extra\n{c},+79161234568\n",
        "invalid-fields": "iccid,msisdn,imsi,language\n8986001100000000001,+0123,12a,de\n89860011000000000017,123456789,1234567890123456,\n",
        "unknown-column": "iccid,colour\n1,red\n",
        "missing-iccid-column": "msisdn\n+79161234567\n",
        "duplicate-column": "iccid,iccid\n1,2\n",
        "too-many-columns": "iccid" + ",msisdn" * 16 + "\n",
        "header-only": "iccid,msisdn,imsi,language",
        "empty": "",
        "nul": "iccid\n8986\x00001\n",
        "no-final-newline": f"iccid,imsi\n{a},460001000000001",
        "cr-only": f"iccid\r{a}\r{b}\r",
    }


def json_seeds():
    return {
        "receipt": RECEIPT,
        "topup": TOPUP,
        "plan": PLAN,
        "sim": f'{{"iccid":"{ACTIVE}","msisdn":"+79161234567","imsi":"250011234567890","language":"ru"}}',
        "tokens": '{"role":"operator","name":"kiosk 7"}',
        "clock": '{"advance":86400,"now":"2027-01-01T00:00:00Z"}',
        "types": '{"amount":null,"currency":123,"channel":true,"method":["x"],"code":{"a":1},"name":"\\u0000x",'
                 '"price":-9223372036854775808,"payg":false,"":1.5e300}',
        "nested": '{"a":{"b":{"c":[1,2,{"d":"\u00e9\\ud83d\\ude00"}]}},"signature":5,"key_id":null}',
        "time": "2026-11-24T21:05:00Z",
        "accept-language": "ru-RU;q=0.9, zh-Hans;q=0.95, en;q=0.1, *;q=0.5",
        "not-object": '["signature","key_id"]',
        "duplicate": '{"signature":"a","signature":"b"}',
    }


def h1_seeds():
    """fuzz_h1: byte 0 the mode (bits 0-1 the head cap: 0 the length, 1 more,
    2 less, 3 16384; bit 2 a chunked body alone; bit 3 the bytes after the head
    decoded as chunked), byte 1 the seed of the piece sizes, then the bytes."""
    def h1(mode, seed, text):
        return bytes([mode, seed]) + (text.encode() if isinstance(text, str) else text)
    body = "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE ; n=\"q\"\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n"
    return {
        "get-query": h1(3, 0, "GET /v1/sims/8986%30?lang=ru&x=%41+b&e&f=&x=2 HTTP/1.1\r\n"
                              "Host: x\r\nAccept-Language: ru\r\n\r\n"),
        "post-length": h1(0, 7, "POST /v1/sims HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                "Content-Length: 2\r\nContent-Length: 02\r\n\r\n{}"),
        "post-chunked": h1(3, 42, "POST /v1/sims HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  "Expect: 100-continue\r\n\r\n" + body + "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "chunked-only": h1(4, 17, body),
        "chunked-bare-lf": h1(4, 3, "000a\n0123456789\nB;x\nabcdefghijk\n0\nA: 1\n\nrest"),
        "http10-keep-alive": h1(3, 0, "GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\nExpect: 100-continue\r\n\r\n"),
        "http10-close-then-keep-alive": h1(3, 0, "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"),
        "chunked-size-too-large": h1(4, 0, "0001000000000000000\r\nabc\r\n"),   # 2^60
        "chunked-controls": h1(4, 5, "1;a=\tb\r\nx\r\n0\r\nA: \t1\r\nB: \x01\r\n\r\n"),
        "leading-lines-bare-lf": h1(1, 9, "\r\n\nGET /a%2Fb?q=%00 HTTP/1.1\nhost: x\nConnection: keep-alive, close\n\n"),
        "te-and-length": h1(11, 0, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "too-many-fields": h1(3, 0, "GET / HTTP/1.1\r\nHost: x\r\n"
                                    + "".join("X-%d: %d\r\n" % (i, i) for i in range(64)) + "\r\n"),
        "too-large": h1(2, 40, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 200 + "\r\n\r\n"),
        "version-2": h1(3, 0, "GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
        "obs-fold": h1(3, 0, "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\nX-B : 3\r\n\r\n"),
        "controls": h1(3, 0, "GET / HTTP/1.2\r\nHost: x\r\nX-Del: a\x7fb\r\nX-Tab:\ta\tb\t\r\nX-Esc: \x1b\r\n\r\n"),
    }


def write(target, seeds):
    """Writes (overwrites) the named seeds; other files, such as the SHA-1-named
    inputs `run --merge` adds, are left alone (delete a renamed seed by hand)."""
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


if __name__ == "__main__":
    write("fuzz_http", http_seeds())
    write("fuzz_csv", csv_seeds())
    write("fuzz_json_fields", json_seeds())
    write("fuzz_h1", h1_seeds())

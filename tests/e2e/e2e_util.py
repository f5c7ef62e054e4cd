"""Helpers shared by the end-to-end tests (standard library only).

ICCID / MSISDN generators, RFC 3339 parsing, error assertions, and a small
pure-Python Ed25519 verifier (RFC 8032, section 6) so receipt signatures can be
checked independently of the server's own /v1/receipts/verify route.
"""
import calendar
import hashlib
import itertools
import json
import random
import re
import time

DAY = 86400

_rng = random.SystemRandom()
_seq = itertools.count(_rng.randrange(10**6, 10**7))
_msisdn_seq = itertools.count(_rng.randrange(10**6, 5 * 10**7))


# --------------------------------------------------------------------- ICCID

def luhn_check_digit(digits: str) -> str:
    """The digit that makes digits + it Luhn-valid."""
    total = 0
    # Walk from the right; the check digit will sit to the right of digits,
    # so the rightmost payload digit is doubled.
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def make_iccid(length: int = 20) -> str:
    """A fresh, Luhn-valid ICCID (8986 = China)."""
    body = "8986" + str(next(_seq)).zfill(length - 5)
    body = body[: length - 1]
    iccid = body + luhn_check_digit(body)
    assert len(iccid) == length and luhn_valid(iccid)
    return iccid


def bad_luhn(iccid: str) -> str:
    """The same ICCID with a wrong check digit."""
    wrong = str((int(iccid[-1]) + 1) % 10)
    out = iccid[:-1] + wrong
    assert not luhn_valid(out)
    return out


def make_msisdn() -> str:
    """A fresh E.164 MSISDN: + and 13 digits."""
    return "+86138" + str(next(_msisdn_seq)).zfill(8)


def make_key(prefix: str = "k") -> str:
    return "%s-%d-%08x" % (prefix, next(_seq), _rng.getrandbits(32))


# ---------------------------------------------------------------------- time

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_time(s: str) -> int:
    """RFC 3339 -> Unix seconds (fractions dropped)."""
    assert isinstance(s, str), "expected an RFC 3339 string, got %r" % (s,)
    m = _RFC3339.match(s)
    assert m, "not an RFC 3339 time: %r" % (s,)
    y, mo, d, h, mi, sec = (int(x) for x in m.groups()[:6])
    t = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t


def fmt_time(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# -------------------------------------------------------------------- errors

def assert_error(resp, status, code, param=None):
    st, _hdrs, body = resp
    assert st == status and isinstance(body, dict) and isinstance(body.get("error"), dict) \
        and body["error"].get("code") == code, \
        "expected %d %s, got %d %r" % (status, code, st, body)
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"].strip(), \
        "error without a message: %r" % (body,)
    if param is not None:
        assert err.get("param") == param, "expected param %r, got %r" % (param, err.get("param"))
    return err


def has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in s)


def has_cyrillic(s: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in s)


# ------------------------------------------------------------------- Ed25519
# RFC 8032, section 6 (reference implementation), verification only.

_p = 2 ** 255 - 19
_q = 2 ** 252 + 27742317777372353535851937790883648493


def _inv(x):
    return pow(x, _p - 2, _p)


_d = -121665 * _inv(121666) % _p
_sqrt_m1 = pow(2, (_p - 1) // 4, _p)


def _add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % _p
    B = (P[1] + P[0]) * (Q[1] + Q[0]) % _p
    C = 2 * P[3] * Q[3] * _d % _p
    D = 2 * P[2] * Q[2] % _p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def _mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _add(Q, P)
        P = _add(P, P)
        s >>= 1
    return Q


def _equal(P, Q):
    return (P[0] * Q[2] - Q[0] * P[2]) % _p == 0 and (P[1] * Q[2] - Q[1] * P[2]) % _p == 0


def _recover_x(y, sign):
    if y >= _p:
        return None
    x2 = (y * y - 1) * _inv(_d * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_p + 3) // 8, _p)
    if (x * x - x2) % _p != 0:
        x = x * _sqrt_m1 % _p
    if (x * x - x2) % _p != 0:
        return None
    if (x & 1) != sign:
        x = _p - x
    return x


_gy = 4 * _inv(5) % _p
_gx = _recover_x(_gy, 0)
_G = (_gx, _gy, 1, _gx * _gy % _p)


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _p)


def ed25519_verify(public: bytes, msg: bytes, sig: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    A = _decompress(public)
    R = _decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _q:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % _q
    return _equal(_mul(s, _G), _add(R, _mul(h, A)))


def receipt_signed_bytes(receipt: dict, ensure_ascii: bool = False) -> bytes:
    """What the API says is signed: the receipt without signature and key_id,
    compact JSON, keys sorted."""
    payload = {k: v for k, v in receipt.items() if k not in ("signature", "key_id")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=ensure_ascii).encode("utf-8")

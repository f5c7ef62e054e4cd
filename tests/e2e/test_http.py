"""HTTP/1.1 on the wire (src/http/net.c, src/http/h1.c), with raw sockets:
pipelining, requests in pieces, Expect: 100-continue, HTTP/1.0 and
keep-alive, net's own refusals (400, 431, 501, 505), answers given before the
body is read, a chunked body followed by a pipelined request, HEAD, and the
framing of every answer (Date, Content-Length). test_robustness.py covers chunked
bodies themselves, hostile paths and garbage."""
import glob
import json
import os
import re
import socket
import time

from e2e_util import assert_error, make_iccid

HOST = "127.0.0.1"
IMF_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                      r"\d{4} \d\d:\d\d:\d\d GMT$")


class Answer(tuple):
    """(status, headers, body): headers with lower-case names, body the parsed
    JSON when it is JSON (e2e_util.assert_error takes it)."""
    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])


class Wire:
    """One client connection, read answer by answer."""

    def __init__(self, server, timeout=10):
        self.s = socket.create_connection((HOST, server.port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("the server closed the connection; unread: %r" % self.buf[:200])
        self.buf += b

    def answer(self, to_head=False):
        """The next answer. Every final one must carry Date and Content-Length.
        to_head: the answer to a HEAD, whose Content-Length is the body it has not."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, _reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        status = int(status)
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            assert name.lower() not in headers, "%s twice in %r" % (name, head)
            headers[name.lower()] = value.strip()
        if status < 200:
            assert not headers, "an interim answer with fields: %r" % head
            return Answer((status, headers, b""))
        assert "date" in headers and IMF_DATE.match(headers["date"]), head
        assert "content-length" in headers and headers["content-length"].isdigit(), head
        n = 0 if to_head else int(headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        if "json" in headers.get("content-type", "") and not to_head:
            body = json.loads(body)
        return Answer((status, headers, body))

    def closed(self, timeout=5):
        """Whether the server closes the connection (EOF, not a reset) with
        nothing more sent."""
        self.s.settimeout(timeout)
        try:
            b = self.s.recv(65536)
        except socket.timeout:
            return False
        assert not self.buf and not b, "bytes after the last answer: %r" % (self.buf + b)[:200]
        return True

    def close(self):
        self.s.close()


def _wire(request, server, timeout=10):
    w = Wire(server, timeout)
    request.addfinalizer(w.close)
    return w


def _post(path, body, token=None, extra=""):
    body = body.encode() if isinstance(body, str) else body
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    return ("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (path, auth, len(body), extra)).encode() + body


GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _healthy(w):
    a = w.answer()
    assert a.status == 200 and a.body["status"] == "ok", a


# ---- keep-alive and pipelining ---------------------------------------------------

def test_pipelined_requests_are_answered_in_order(request, server):
    w = _wire(request, server)
    w.send(b"GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n" + GET_HEALTH
           + _post("/v1/receipts/verify", "{oops") + GET_HEALTH)
    assert_error(w.answer(), 404, "not_found")
    _healthy(w)
    assert_error(w.answer(), 400, "invalid_json")
    a = w.answer()
    assert a.status == 200 and "connection" not in a.headers, a   # HTTP/1.1 stays open silently
    assert not w.closed(timeout=0.3)


def test_request_in_many_small_writes(request, server):
    w = _wire(request, server)
    iccid = make_iccid()
    data = _post("/v1/sims", json.dumps({"iccid": iccid}), token=server.tokens["admin"])
    for i in range(0, len(data), 3):   # a few bytes a segment, head and body alike
        w.send(data[i:i + 3])
        time.sleep(0.002)
    a = w.answer()
    assert a.status == 201, a
    w.send(("GET /v1/sims/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
            % (iccid, server.tokens["operator"])).encode())
    a = w.answer()
    assert a.status == 200 and a.body["iccid"] == iccid, a


def test_half_closed_client_is_answered_then_closed(request, server):
    # The FIN comes with the request, or right behind it: either way the
    # answer goes out and the connection ends (net.c reads a short read as
    # "nothing more", unless the peer has shut its side).
    for i in range(40):
        w = _wire(request, server)
        w.send(GET_HEALTH + (GET_HEALTH if i % 2 else b""))
        w.s.shutdown(socket.SHUT_WR)
        _healthy(w)
        if i % 2:
            _healthy(w)
        assert w.closed(), i


def test_body_after_a_pause_then_next_request_after_a_pause(request, server):
    w = _wire(request, server)
    data = _post("/v1/receipts/verify", "{oops")
    head, body = data.split(b"\r\n\r\n", 1)
    w.send(head + b"\r\n\r\n")
    time.sleep(0.2)      # the head's read came back short: the body must raise a new event
    w.send(body)
    assert_error(w.answer(), 400, "invalid_json")
    time.sleep(0.2)
    w.send(GET_HEALTH)
    _healthy(w)


def test_chunked_body_then_pipelined_request(request, server):
    """The last bytes of a chunked body arrive with the next request, in a read
    of their own (not with the head)."""
    w = _wire(request, server)
    w.send(b"POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    time.sleep(0.3)   # the server has read the head and waits for the body
    w.send(b"3\r\n{oo\r\n2\r\nps\r\n0\r\n\r\n" + GET_HEALTH)
    assert_error(w.answer(), 400, "invalid_json")
    _healthy(w)


def test_http10_closes_unless_kept_alive(request, server):
    w = _wire(request, server)
    w.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    a = w.answer()
    assert a.status == 200 and a.headers.get("connection", "").lower() == "close", a
    assert w.closed()

    w = _wire(request, server)
    for _ in range(3):
        w.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        a = w.answer()
        assert a.status == 200 and a.headers.get("connection", "").lower() == "keep-alive", a
    assert not w.closed(timeout=0.3)
    w.send(b"GET /healthz HTTP/1.0\r\n\r\n")   # the last one
    assert w.answer().headers["connection"].lower() == "close"
    assert w.closed()


def test_connection_close_on_http11(request, server):
    w = _wire(request, server)
    w.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET_HEALTH)
    a = w.answer()
    assert a.status == 200 and a.headers["connection"].lower() == "close", a
    assert w.closed()   # the pipelined request after it is not answered


# ---- Expect: 100-continue ----------------------------------------------------------

def test_expect_100_continue(request, server):
    w = _wire(request, server)
    iccid = make_iccid()
    body = json.dumps({"iccid": iccid}).encode()
    data = _post("/v1/sims", body, token=server.tokens["admin"], extra="Expect: 100-continue\r\n")
    w.send(data[:-len(body)])
    a = w.answer()   # before any byte of the body
    assert a.status == 100, a
    assert w.buf == b""
    w.send(body)
    a = w.answer()
    assert a.status == 201 and a.body["iccid"] == iccid, a
    # Body bytes sent with the head: no 100 needed, none sent.
    w.send(_post("/v1/receipts/verify", "{oops", extra="Expect: 100-continue\r\n"))
    assert_error(w.answer(), 400, "invalid_json")
    w.send(GET_HEALTH)
    _healthy(w)


def test_expect_answered_early_without_continue(request, server):
    """Refused from the head alone: the final answer comes instead of 100, and
    since the client may or may not send the body now, the connection closes."""
    w = _wire(request, server)
    w.send(b"POST /v1/sims HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
           b"Expect: 100-continue\r\n\r\n")
    a = w.answer()
    assert_error(a, 401, "unauthenticated")
    assert a.headers.get("connection", "").lower() == "close", a
    w.send(b" " * 30)   # a client that sends its body anyway sees an orderly close
    assert w.closed()
    # Body bytes came with the head: the client is sending it, so it can be skipped.
    w = _wire(request, server)
    w.send(_post("/v1/sims", b" " * 30, extra="Expect: 100-continue\r\n") + GET_HEALTH)
    a = w.answer()
    assert_error(a, 401, "unauthenticated")
    assert "connection" not in a.headers, a
    _healthy(w)


def test_unknown_expectation(request, server):
    w = _wire(request, server)
    w.send(b"POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 200-ok\r\n\r\n{}")
    a = w.answer()
    assert_error(a, 417, "expectation_failed")
    assert a.headers["connection"].lower() == "close"
    assert w.closed()


# ---- net's own refusals ----------------------------------------------------------------

def _refused(request, server, data, status, code):
    w = _wire(request, server)
    w.send(data)
    a = w.answer()
    assert_error(a, status, code)
    assert a.headers["connection"].lower() == "close", a   # a malformed head ends the connection
    assert "json" in a.headers["content-type"], a
    assert w.closed()
    return a


def test_head_too_large(request, server):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n"
    _refused(request, server, head, 431, "headers_too_large")
    # Many small fields are the same head.
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(65)) + b"\r\n"
    _refused(request, server, many, 431, "headers_too_large")


def test_head_just_under_the_cap(request, server):
    w = _wire(request, server)
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    w.send(start + b"a" * (16384 - len(start) - 4) + b"\r\n\r\n")   # exactly 16 KiB
    _healthy(w)
    w.send(GET_HEALTH)
    _healthy(w)


def test_http2_version_refused(request, server):
    _refused(request, server, b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported")


def test_transfer_coding_not_implemented(request, server):
    _refused(request, server, b"POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
             501, "not_implemented")


def test_missing_host(request, server):
    _refused(request, server, b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request")


def test_smuggling_shapes_refused(request, server):
    for data in (b"POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 b"POST /v1/receipts/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                 b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"):
        _refused(request, server, data, 400, "bad_request")


# ---- answers before the body ---------------------------------------------------------

def test_early_answer_keeps_the_connection(request, server):
    body = json.dumps({"iccid": make_iccid()}).encode()
    # The body already sent with the head.
    w = _wire(request, server)
    w.send(_post("/v1/sims", body) + GET_HEALTH)
    a = w.answer()
    assert_error(a, 401, "unauthenticated")
    assert "connection" not in a.headers, a
    _healthy(w)
    # The body sent only after the answer came: the server skips it then.
    data = _post("/v1/sims", body)
    w.send(data[:-len(body)])
    assert_error(w.answer(), 401, "unauthenticated")
    w.send(body[:5])
    time.sleep(0.1)
    w.send(body[5:] + GET_HEALTH)
    _healthy(w)


def test_long_body_answered_early_is_drained_first(server):
    """An answer decided from the head alone (401: no token) to a body over the
    1 MiB net skips after answering, but under the route's cap (a CSV import,
    as one shed under load), comes once the body is read: a client that sends
    all of its body before reading (http.client, as most do) gets the answer,
    not a closed connection, and keeps the connection."""
    import http.client
    body = b"iccid\n" + b"".join(make_iccid().encode() + b"\n" for _ in range(120000))
    assert len(body) > 2 << 20
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        conn.request("POST", "/v1/sims/import", body=body, headers={"Content-Type": "text/csv"})
        r = conn.getresponse()
        raw = r.read()
        assert r.status == 401 and json.loads(raw)["error"]["code"] == "unauthenticated", raw
        assert (r.getheader("Connection") or "").lower() != "close", r.getheaders()
        sock = conn.sock
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
        assert conn.sock is sock, "the early answer cost the client its connection"
    finally:
        conn.close()


def test_body_too_large(request, server_factory):
    server = server_factory("--set", "max_body=4096")
    token = server.tokens["admin"]
    body = b'{"iccid":"' + b"1" * 5000 + b'"}'
    # Small enough to skip: 413 from the head, the body is dropped, the connection stays.
    w = _wire(request, server)
    w.send(_post("/v1/sims", body, token=token))
    a = w.answer()
    assert_error(a, 413, "body_too_large")
    w.send(GET_HEALTH)
    _healthy(w)
    # Too large to skip: 413, then a lingering close; the client, still sending,
    # reads the answer and an orderly end (no reset).
    w = _wire(request, server)
    w.send(b"POST /v1/sims HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
           b"Content-Length: 100000000\r\n\r\n" % token.encode())
    for _ in range(16):
        w.send(b" " * 16384)
    a = w.answer()
    assert_error(a, 413, "body_too_large")
    assert a.headers["connection"].lower() == "close", a
    w.s.shutdown(socket.SHUT_WR)
    assert w.closed()
    w = _wire(request, server)
    w.send(GET_HEALTH)
    _healthy(w)


def test_healthz_says_what_docs_api_says(server):
    """GET /healthz, anonymous: ok, the version, the database's migration
    version (one a file in src/store/migrations) and whether writes go on."""
    migrations = glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "src", "store", "migrations", "*.sql"))
    r = server.request("GET", "/healthz", token=None)
    assert r.status == 200 and set(r.body) == {"status", "version", "schema", "writes"}, r
    assert (r.body["status"], r.body["writes"], r.body["schema"]) == ("ok", "ok", len(migrations)), r


# ---- HEAD ---------------------------------------------------------------------------

def _get_then_head(request, server, path, token=None):
    """GET path, then HEAD it and GET it again, pipelined on one connection:
    the HEAD's answer is the GET's head, the same status and Content-Length,
    and no byte of body (or the GET after it would not frame). Returns the
    two answers to GET and the one to HEAD."""
    auth = "Authorization: Bearer %s\r\n" % token if token else ""
    w = _wire(request, server)
    get = ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, auth)).encode()
    w.send(get)
    first = w.answer()
    w.send(("HEAD %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, auth)).encode() + get)
    head = w.answer(to_head=True)
    second = w.answer()
    assert head.status == first.status == second.status, (first, head, second)
    for name in ("content-length", "content-type", "allow", "connection"):
        assert head.headers.get(name) == first.headers.get(name), (name, first.headers, head.headers)
    assert not w.closed(timeout=0.2)
    return first, head, second


def test_head_is_get_without_its_body(request, server):
    """HEAD on every kind of GET route answers as GET does, without the body:
    anonymous, authenticated, with a parameter, text/plain; and its refusals
    too (401 without a token, 404, 405 with Allow)."""
    iccid = server.new_sim()
    first, head, _ = _get_then_head(request, server, "/healthz")
    assert first.status == 200 and int(head.headers["content-length"]) == len(json.dumps(first.body, separators=(",", ":")))
    first, _, _ = _get_then_head(request, server, "/v1/sims/" + iccid, server.tokens["operator"])
    assert first.status == 200 and first.body["iccid"] == iccid, first
    first, _, _ = _get_then_head(request, server, "/v1/sims/%s/transactions?limit=5" % iccid, server.tokens["operator"])
    assert first.status == 200, first
    first, _, _ = _get_then_head(request, server, "/v1/receipts/public-key")
    assert first.status == 200, first
    first, _, _ = _get_then_head(request, server, "/v1/sims/" + iccid)
    assert_error(first, 401, "unauthenticated")
    first, _, _ = _get_then_head(request, server, "/no/such/route")
    assert_error(first, 404, "not_found")


def test_head_counts_as_get_in_allow(request, server):
    """405's Allow names HEAD wherever GET is; HEAD on a path without GET is
    405 (Allow: POST), without a body."""
    w = _wire(request, server)
    w.send(b"DELETE /v1/plans HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /v1/receipts/verify HTTP/1.1\r\nHost: x\r\n\r\n" + GET_HEALTH)
    a = w.answer()
    assert_error(a, 405, "method_not_allowed")
    assert a.headers["allow"] == "GET, HEAD, POST", a
    a = w.answer(to_head=True)
    assert a.status == 405 and a.headers["allow"] == "POST" and int(a.headers["content-length"]) > 0, a
    _healthy(w)
    w.send(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    a = w.answer()
    assert_error(a, 405, "method_not_allowed")
    assert a.headers["allow"] == "GET, HEAD", a


def test_head_refused_by_net_has_no_body(request, server_factory):
    """net's own answers to a HEAD it cannot take (505, 400, and 408 for one
    that does not arrive in time) carry no body either."""
    server = server_factory("--set", "request_timeout=1")
    for data, status in ((b"HEAD /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
                         (b"HEAD /healthz HTTP/1.1\r\n\r\n", 400),
                         (b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n", 408)):
        w = _wire(request, server)
        w.send(data)
        a = w.answer(to_head=True)
        assert a.status == status and a.headers["connection"].lower() == "close", a
        assert int(a.headers["content-length"]) > 0, a
        assert w.closed(), data   # nothing after the head: no body


def test_401_names_the_bearer_scheme(server):
    """RFC 9110 11.6.1: a 401 carries WWW-Authenticate (HTTP clients that
    retry with credentials look for it); a 403 does not."""
    for token in (None, "tpk_" + "A" * 43):
        r = server.request("GET", "/v1/ledger/check", token=token)
        assert_error(r, 401, "unauthenticated")
        assert r.headers.get("www-authenticate") == "Bearer", r.headers
    r = server.request("GET", "/v1/ledger/check", token="operator")
    assert_error(r, 403, "forbidden")
    assert "www-authenticate" not in r.headers, r.headers

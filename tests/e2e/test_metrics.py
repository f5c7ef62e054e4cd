"""GET /metrics (docs/API.md): Prometheus's text format, read by a monitor's
token, whose counts follow what topupd answered and did."""
import re
import socket
import time

from e2e_util import make_key

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+-]+|\+Inf|NaN)$')


def _scrape(srv, token="monitor", source=None):
    """{(name, labels): value}, after checking every line's form: each family
    has its HELP and TYPE before its samples, and every histogram's buckets
    grow to its count."""
    if source:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5, source_address=(source, 0))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
                  + srv._auth(token).encode() + b"\r\n\r\n")
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        head, body = raw.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 "), head
        text = body.decode()
    else:
        r = srv.request("GET", "/metrics", token=token)
        assert r.status == 200, r
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", r.headers
        text = r.raw.decode()
    assert text.endswith("\n")
    helped, typed, out = set(), {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram"), line
            typed[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in typed \
            else name
        assert family in helped and family in typed, "no HELP/TYPE before %r" % line
        assert (name, labels) not in out, "twice: %r" % line
        out[(name, labels)] = float(value)
    for name, kind in typed.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in out.items():
            if n == name + "_bucket":
                key = re.sub(r',?le="[^"]*"', "", labels)
                le = re.search(r'le="([^"]*)"', labels).group(1)
                series.setdefault(key, []).append((float("inf") if le == "+Inf" else float(le), v))
        for key, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), (name, key, buckets)
            assert buckets[-1][0] == float("inf") and counts[-1] == out[(name + "_count", key)], (name, key)
    return out


def _req(route, code):
    return ("topup_http_requests_total", '{route="%s",code="%s"}' % (route, code))


def test_a_monitor_reads_metrics_and_nothing_else(server):
    monitor = server.request("POST", "/v1/tokens", {"role": "monitor", "name": "prometheus"}, token="admin")
    assert monitor.status == 201 and monitor.body["role"] == "monitor", monitor
    server.tokens["monitor"] = monitor.body["token"]
    iccid = server.new_sim()
    assert server.request("GET", "/metrics", token="operator").status == 403
    assert server.request("GET", "/metrics", token=None).status == 401
    assert server.request("GET", "/v1/sims/" + iccid, token="monitor").status == 403
    assert server.topup(iccid, 1000, token="monitor").status == 403
    assert server.request("GET", "/healthz", token="monitor").status == 200
    _scrape(server, token="admin")
    m = _scrape(server)
    assert m[("topup_build_info", '{version="%s",schema="%d"}' % (
        server.request("GET", "/healthz").body["version"], server.request("GET", "/healthz").body["schema"]))] == 1
    assert m[("topup_writes_halted", "")] == 0
    assert m[("process_resident_memory_bytes", "")] > 1e6 and m[("process_open_fds", "")] > 3
    assert abs(m[("process_start_time_seconds", "")] - time.time()) < 120


def test_counts_follow_the_answers(server):
    server.tokens["monitor"] = server.create_token("monitor")
    iccid = server.new_sim()
    before = _scrape(server)
    for _ in range(3):
        server.topup_ok(iccid, 1000)
    assert server.topup(iccid, 0).status == 400
    assert server.request("GET", "/v1/nothing/here").status == 404
    after = _scrape(server)
    topups = "POST /v1/sims/{iccid}/topups"
    assert after[_req(topups, "2xx")] - before[_req(topups, "2xx")] == 3
    assert after[_req(topups, "4xx")] - before[_req(topups, "4xx")] == 1
    assert after[_req("none", "4xx")] - before[_req("none", "4xx")] == 1
    assert after[_req("GET /metrics", "2xx")] - before[_req("GET /metrics", "2xx")] == 1
    count = ("topup_http_request_duration_seconds_count", '{route="%s"}' % topups)
    assert after[count] - before[count] == 4
    assert after[("topup_engine_commands_total", "")] - before[("topup_engine_commands_total", "")] >= 3
    assert after[("topup_engine_batches_total", "")] > before[("topup_engine_batches_total", "")]
    assert after[("topup_engine_queued", "")] == 0


def test_refused_connections_and_the_sweeper_are_counted(server_factory):
    srv = server_factory("--set", "max_connections_per_address=2", "--set", "sweep_interval=1")
    srv.tokens["monitor"] = srv.create_token("monitor")
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
            held.append(s)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass
        s.close()
        m = _scrape(srv, source="127.0.0.2")
        assert m[("topup_http_connections_refused_total", '{reason="max_connections_per_address"}')] == 1
        assert m[("topup_http_connections_refused_total", '{reason="max_connections"}')] == 0
        assert m[("topup_http_connections_open", "")] == 3   # the two held and the scrape's own
    finally:
        for s in held:
            s.close()
    deadline = time.time() + 10
    while _scrape(srv, source="127.0.0.2")[("topup_sweep_last_success_timestamp_seconds", "")] == 0:
        assert time.time() < deadline, "no sweep counted within 10 s at sweep_interval=1"
        time.sleep(0.2)
    m = _scrape(srv, source="127.0.0.2")
    assert abs(m[("topup_sweep_last_success_timestamp_seconds", "")] - time.time()) < 30
    assert m[("topup_sweeps_failed_total", "")] == 0


def test_net_own_refusals_are_counted(server_factory):
    """Answers net gives before the server sees a request (a malformed head:
    400, a head past head_max: 431, a request that did not arrive in time:
    408) are answers: they count under route "none" as the docs say of a
    refusal before a route was found. They were counted nowhere (408 only as
    timed out), so a client sending garbage was invisible to monitoring."""
    srv = server_factory("--set", "request_timeout=1")
    srv.tokens["monitor"] = srv.create_token("monitor")
    before = _scrape(srv)

    def answer(data, wait=False):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        try:
            s.sendall(data)
            got = b""
            while b"\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            return got.split(b"\r\n", 1)[0]
        finally:
            s.close()

    assert answer(b"BOGUS\x01 / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert answer(b"GET / HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    assert answer(b"GET /healthz HTTP/1.1\r\nHost").startswith(b"HTTP/1.1 408 ")
    after = _scrape(srv)
    assert after[_req("none", "4xx")] - before[_req("none", "4xx")] == 3
    count = ("topup_http_request_duration_seconds_count", '{route="none"}')
    assert after[count] - before[count] == 3
    assert after[("topup_http_requests_timed_out_total", "")] - before[("topup_http_requests_timed_out_total", "")] == 1

"""Overload: a full engine queue sheds work with 503 overloaded + Retry-After,
keeps what it admitted correct, and keeps serving afterwards."""
import threading
import time

from e2e_util import assert_error, make_iccid, make_key


def kept_connection_clients(srv, sims, clients, seconds, timeout=30):
    """`clients` threads, each on one kept connection, sending top-ups of 100
    CNY to the SIMs in turn, back to back, for `seconds` from a common start.
    Returns every request's (iccid, status, Retry-After, body, seconds taken,
    whether it came on the client's first connection); a client that failed
    (no answer within `timeout`, say) fails the test."""
    import http.client
    import json

    auth = "Bearer " + srv._auth("operator")
    body = json.dumps({"amount": 100, "currency": "CNY", "channel": "portal", "method": "alipay"})
    results, failures, lock = [], [], threading.Lock()
    start = threading.Barrier(clients)

    def client(n):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
            conn.connect()
            sock = conn.sock
            start.wait()
            until = time.monotonic() + seconds
            j = 0
            while time.monotonic() < until:
                j += 1
                iccid = sims[(n + j) % len(sims)]
                t0 = time.monotonic()
                conn.request("POST", "/v1/sims/%s/topups" % iccid, body=body,
                             headers={"Authorization": auth, "Content-Type": "application/json",
                                      "Idempotency-Key": make_key("kept")})
                r = conn.getresponse()
                raw = r.read()
                with lock:
                    results.append((iccid, r.status, r.getheader("Retry-After"), raw, time.monotonic() - t0,
                                    conn.sock is sock))
            conn.close()
        except Exception as e:   # reported below, on the test's thread
            with lock:
                failures.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    return results


def test_full_queue_sheds_with_503_and_admitted_work_is_exact(server_factory):
    srv = server_factory("--set", "queue_max=2", "--set", "batch_max=1")
    sims = [srv.new_sim() for _ in range(4)]
    results = []
    lock = threading.Lock()

    def client(i):
        for j in range(15):
            iccid = sims[(i + j) % len(sims)]
            r = srv.topup(iccid, 100, key=make_key("ovl"))
            with lock:
                results.append((iccid, r))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r.status for _, r in results]
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    shed = [r for _, r in results if r.status == 503]
    assert shed, "24 clients against a queue of 2 never saw 503"
    for r in shed:
        assert_error(r, 503, "overloaded")
        assert int(r.headers["retry-after"]) >= 1
    # every admitted top-up is there, and nothing else
    for iccid in sims:
        admitted = sum(1 for i, r in results if i == iccid and r.status == 201)
        assert srv.balance(iccid) == 100 * admitted
    srv.ledger_ok()
    # and the server is still fine afterwards
    assert srv.topup(sims[0], 100, key=make_key("after")).status == 201


def test_overloaded_commands_are_shed_early_on_a_kept_connection(server_factory):
    """While the engine is overloaded, a command is refused before it is
    authenticated or parsed (503 overloaded even without a token), its body is
    still read so the connection stays usable, and reads go on being served."""
    import http.client
    import json

    # batch_max=1: the import runs alone, so the filler's command waits in the queue
    # (in one batch with it, nothing would be queued); the probes below fail
    # authentication many times: not what this test limits.
    srv = server_factory("--set", "queue_max=1", "--set", "batch_max=1", "--set", "auth_fail_per_minute=1000000")
    iccid = srv.new_sim()
    srv.topup_ok(iccid, 1000)
    big = "iccid\n" + "\n".join(make_iccid() for _ in range(300000)) + "\n"
    done = threading.Event()

    def importer():   # keeps the writer busy for a while (itself shed, it tries again)
        while srv.request("POST", "/v1/sims/import", big, token="admin", content_type="text/csv",
                          timeout=120).status == 503:
            time.sleep(0.01)
        done.set()

    def filler():     # one command always queued behind it: the queue (max 1) is full
        while not done.is_set():
            srv.topup(iccid, 100, key=make_key("fill"))

    threads = [threading.Thread(target=importer), threading.Thread(target=filler)]
    for t in threads:
        t.start()
    body = json.dumps({"amount": 100, "currency": "CNY", "channel": "portal", "method": "alipay"})
    path = "/v1/sims/%s/topups" % iccid
    conn = None

    def send(method, url, payload=None, headers=None):
        conn.request(method, url, body=payload, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()

    try:
        # Without a token a command is 401, answered before its body (the
        # connection is closed), unless it is shed first: probe until it is.
        shed = None
        while not done.is_set() and shed is None:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            st, h, raw = send("POST", path, body, {"Content-Type": "application/json"})
            if st == 503:
                shed = (h, raw)
            else:
                assert st == 401, raw
        assert shed, "the import finished before the queue was ever full"
        h, raw = shed
        assert json.loads(raw)["error"]["code"] == "overloaded", raw
        assert int(h["retry-after"]) >= 1 and h.get("connection", "").lower() != "close", h
        sock = conn.sock
        # the body was read: the same connection serves a read (not a command: never shed)
        st, _, raw = send("GET", "/v1/sims/%s" % iccid, None, {"Authorization": "Bearer " + srv._auth("operator")})
        assert st == 200, raw
        assert conn.sock is sock, "a shed request cost the client its connection"
    finally:
        if conn is not None:
            conn.close()
        for t in threads:
            t.join()
    srv.ledger_ok()


def test_a_refused_client_that_leaves_frees_its_connection_at_once(server_factory):
    """A connection refused for overload is held: its next request waits
    unread until there is room or for shed_refuse_ms (net_hold). A client
    that closes it instead frees it at once: before, the server noticed only
    at shed_refuse_ms, so a client retrying on new connections had a second's
    worth of them open, and with max_connections_per_address (5 here) its
    sixth was closed at the door."""
    srv = server_factory("--set", "queue_max=1", "--set", "batch_max=1", "--set", "max_connections_per_address=5",
                         "--set", "shed_refuse_ms=5000")
    iccid = srv.new_sim()
    big = "iccid\n" + "\n".join(make_iccid() for _ in range(300000)) + "\n"
    done = threading.Event()

    def importer():
        while srv.request("POST", "/v1/sims/import", big, token="admin", content_type="text/csv",
                          timeout=120).status == 503:
            time.sleep(0.01)
        done.set()

    def filler():
        while not done.is_set():
            srv.topup(iccid, 100, key=make_key("fill"))

    threads = [threading.Thread(target=importer), threading.Thread(target=filler)]
    for t in threads:
        t.start()
    try:
        shed = 0
        while not done.is_set() and shed < 20:
            r = srv.topup(iccid, 100, key=make_key("leave"))   # a connection each, closed after its answer
            assert r.status in (201, 503), r
            shed += r.status == 503
        assert shed >= 20 or done.is_set()
        assert shed >= 10, "too few refusals to tell (%d): the import finished first" % shed
    finally:
        for t in threads:
            t.join()
    assert "were open from one address" not in srv.log_tail(500)
    srv.ledger_ok()


def test_flood_parks_old_requests_then_refuses_them(server_factory):
    """The ready stack (src/http/net.h), with thresholds small enough for a
    few dozen Python clients to be a flood: the newest requests are read
    first, one not read within shed_park_ms waits unread, and at
    shed_refuse_ms it is read and refused (503 overloaded + Retry-After) on a
    connection kept open. Every top-up answered 201 is there exactly once."""
    import json

    # (a daily cap no client here comes near: thousands of top-ups go to eight SIMs)
    srv = server_factory("--set", "shed_flood_ms=1", "--set", "shed_flood_min=4", "--set", "shed_park_ms=1",
                         "--set", "shed_refuse_ms=300", "--set", "daily_cap=4000000000000",
                         "--set", "auth_fail_per_minute=1000000")
    sims = [srv.new_sim() for _ in range(8)]
    # more than a second of history: the throughput a flood is judged against
    until = time.time() + 1.5
    while time.time() < until:
        srv.topup_ok(sims[0], 100)
    base = {i: srv.balance(i) for i in sims}
    # long enough for a flood to begin (100 ms on end) and be met; on a machine
    # busy with other work 48 Python clients may not make one at the first go
    results = []
    for _ in range(3):
        results += kept_connection_clients(srv, sims, 48, 2.5)
        if any(x[1] == 503 for x in results):
            break
    statuses = sorted({st for _, st, _, _, _, _ in results})
    assert set(statuses) <= {201, 503}, statuses
    refused = [x for x in results if x[1] == 503]
    assert refused, "48 clients against a flood threshold of 1 ms never saw a parked request refused"
    for _, _, retry, raw, _, _ in refused:
        assert json.loads(raw)["error"]["code"] == "overloaded", raw
        assert int(retry) >= 1
    assert max(took for _, _, _, _, took, _ in refused) >= 0.3, "no refusal came after shed_refuse_ms"
    assert all(kept for *_, kept in results), "a refused request cost its client the connection"
    for iccid in sims:
        ok = sum(1 for i, st, *_ in results if i == iccid and st == 201)
        assert srv.balance(iccid) == base[iccid] + 100 * ok
    srv.ledger_ok()
    assert srv.topup(sims[1], 100, key=make_key("after")).status == 201


def test_clients_that_never_wait_are_held_and_answered(server_factory):
    """Clients on kept connections that send again the moment they are
    refused (Retry-After unheeded): a connection refused for overload has its
    next request held, read when the server has room or at shed_refuse_ms to
    be refused (src/http/net.h, net_hold). No held request is left unanswered
    (each client waits at most 10 s for any answer), every answer is 201 or
    503 on the connection it was sent on, and every top-up answered 201 is
    there exactly once."""
    srv = server_factory("--set", "queue_max=2", "--set", "batch_max=1", "--set", "shed_refuse_ms=300",
                         "--set", "daily_cap=4000000000000")
    sims = [srv.new_sim() for _ in range(8)]
    results = kept_connection_clients(srv, sims, 32, 2.0, timeout=10)
    assert {st for _, st, *_ in results} <= {201, 503}
    assert any(st == 503 for _, st, *_ in results), "32 clients against a queue of 2 were never refused"
    assert all(kept for *_, kept in results), "a refusal cost the client its connection"
    for iccid in sims:
        assert srv.balance(iccid) == 100 * sum(1 for i, st, *_ in results if i == iccid and st == 201)
    srv.ledger_ok()

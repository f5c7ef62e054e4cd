"""Overload: a full engine queue sheds work with 503 overloaded + Retry-After,
keeps what it admitted correct, and keeps serving afterwards."""
import threading

from e2e_util import assert_error, make_key


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

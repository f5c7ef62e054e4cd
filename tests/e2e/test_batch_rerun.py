"""A batch re-run with savepoints must not change any command's answer.

The engine runs a batch without savepoints; when a command fails after writing
(a bundle purchase the wallet cannot pay: the bundle row is inserted, then the
price transfer is refused), the batch is rolled back and run again with a
savepoint per command (engine.h E2). Every other command of that batch then runs
twice, so its exec must not keep state outside the database and its arena
(struct cmd: "it must have no effect outside the database and tx->a").

A CSV import does keep such state: the per-row errors it finds while writing
(sim_exists, msisdn_taken) are appended to the command's error list and counter,
so after a re-run each appears twice ("failed" counted twice, "imported" +
"existing" + "failed" > "rows"), and that answer is stored under its
Idempotency-Key for good.
"""
import threading
import time

import pytest

from e2e_util import make_iccid, make_key, make_msisdn

ATTEMPTS = 20
BIG_IMPORT = 8000   # rows: keeps the writer busy (~0.1 s) while the next batch queues up behind it


def test_import_answer_survives_batch_rerun(server_factory):
    srv = server_factory()
    srv.create_plan(code="whale", price=10 ** 12)
    payer = srv.new_sim()
    srv.topup_ok(payer, 10000)
    existing = srv.new_sim()            # has an MSISDN: a row with another one is sim_exists
    for attempt in range(ATTEMPTS):
        res = {}
        new_iccid = make_iccid()
        small = "iccid,msisdn\n%s,%s\n%s,\n" % (existing, make_msisdn(), new_iccid)
        big = "iccid\n" + "\n".join(make_iccid() for _ in range(BIG_IMPORT)) + "\n"
        key = make_key("imp")

        def post_import(name, csv, k=None):
            res[name] = srv.request("POST", "/v1/sims/import", csv, token="admin", idem=k, content_type="text/csv")

        def whale(i):
            res[i] = srv.request("POST", "/v1/sims/%s/bundles" % payer, {"plan": "whale"}, idem=make_key("w"))

        # the writer is busy with the big import while [small import, purchases...] queue up as one
        # batch: the first purchase fails after writing, so that batch runs a second time
        threads = [threading.Thread(target=post_import, args=("big", big))]
        threads[0].start()
        time.sleep(0.015)
        threads.append(threading.Thread(target=post_import, args=("small", small, key)))
        threads[1].start()
        time.sleep(0.005)
        threads += [threading.Thread(target=whale, args=(i,)) for i in range(5)]
        for t in threads[2:]:
            t.start()
        for t in threads:
            t.join(30)
        assert res["big"].status == 200 and res["big"].body["imported"] == BIG_IMPORT, res["big"]
        assert all(res[i].status == 402 for i in range(5)), [res[i] for i in range(5)]
        r = res["small"]
        assert r.status == 200, r
        assert srv.request("GET", "/v1/sims/%s" % new_iccid).status == 200
        got = {k: r.body[k] for k in ("rows", "imported", "existing", "failed")}
        assert got == {"rows": 2, "imported": 1, "existing": 0, "failed": 1} and \
            [e["line"] for e in r.body["errors"]] == [2], \
            "attempt %d: the import's answer after a batch re-run: %s" % (attempt, r.raw.decode())
        replay = srv.request("POST", "/v1/sims/import", small, token="admin", idem=key, content_type="text/csv")
        assert replay.raw == r.raw
    srv.ledger_ok()

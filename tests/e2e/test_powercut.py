"""Power cuts: nothing acknowledged before it is durable, with the kernel's
page cache lost too (test_crash.py's kill -9 keeps it, so it cannot see a
sync that is missing or comes too late).

topupd and its CLI run under tests/powercut/powercut.so (LD_PRELOAD), which
keeps, beside the files of the database's directory, the image a power cut
would leave of them: what fsync and fdatasync made durable, nothing more (its
header comment: the model and what it leaves out). The power is cut by
SIGKILL, a new directory is built from the image alone, and then:
  - the database opens; PRAGMA integrity_check, `topupd check` and the
    whole-database invariants (db_invariants.py) hold: nothing half-applied;
  - every acknowledged top-up and bundle purchase (2xx) is there: its key
    replays the same answer, byte for byte, marked replayed;
  - every transaction is one request sent (acknowledged or in flight) at most
    once, the balance is their running sum, the ledger check passes; a
    request in flight at the cut replays as applied or executes now.
The cuts: at random moments of a stream of requests (four in a row, each on
what the last left), right after an answer with the server idle, at a chosen
write inside a checkpoint, while `migrate` or `serve` makes a new database,
and right after each step of making the receipt key (POWERCUT_CUT).
"torn" runs let a random prefix of each file's writes since its last sync
survive as well, the last one torn at a 512-byte boundary, and each change to
the directory since its last sync reach the disk or not: a disk keeps some
unsynced writes, and SQLite's log checksums must discard what is not whole.
"""
import http.client
import itertools
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import threading
import time

import pytest

from conftest import READY_TIMEOUT, ROOT, Server, free_port
from db_invariants import check_database
from e2e_util import luhn_check_digit

POWERCUT = os.environ.get("POWERCUT", os.path.join(ROOT, "build", "tests", "powercut.so"))
N_THREADS = 8
PRICE = 300                  # a bundle's price; every top-up amount is unique, at least 100
OPENING = 150000             # each SIM's first top-up, before the stream (its amounts stay far below)
LOG_HEADER = 16
RECORD = struct.Struct("<c7xqq")


def _asan_runtime(binary):
    """The ASan runtime binary links, if any: it must come first in LD_PRELOAD."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libasan.so" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


def _powered(server, image):
    """Runs server's processes under the preload, keeping their image in image."""
    if not os.path.exists(POWERCUT):
        pytest.fail("%s not built (make e2e builds it; or set POWERCUT)" % POWERCUT)
    os.makedirs(image)
    libs = [POWERCUT]
    asan = _asan_runtime(server.binary)
    if asan:
        libs.insert(0, asan)
    server.env = dict(os.environ, LD_PRELOAD=" ".join(libs), POWERCUT_DIR=server.workdir,
                      POWERCUT_IMAGE=str(image))
    return server


def _survive_some(log, target, rng):
    """The torn mode: a random prefix of log's records not yet synced reaches
    target, the last one perhaps torn at a 512-byte boundary of the file."""
    with open(log, "rb") as f:
        raw = f.read()
    if len(raw) < LOG_HEADER or raw[:6] != b"PCLOG1":
        return 0, 0
    at = struct.unpack_from("<q", raw, 8)[0]
    records = []
    while at + RECORD.size <= len(raw):
        op, off, n = RECORD.unpack_from(raw, at)
        at += RECORD.size
        records.append((op, off, raw[at:at + n]))
        at += n
    keep = rng.randint(1, len(records)) if records and rng.random() < 0.75 else rng.randint(0, len(records))
    with open(target, "r+b") as f:
        for i, (op, off, data) in enumerate(records[:keep]):
            if op == b"T":
                f.truncate(off)
                continue
            if i == keep - 1:
                cuts = list(range((off // 512 + 1) * 512, off + len(data), 512))
                if cuts and rng.random() < 0.75:
                    data = data[:rng.choice(cuts) - off]
            f.seek(off)
            f.write(data)
    return keep, len(records)


def _restore(image, dest, torn_rng=None):
    """dest: what the power cut left, from the durable image alone. Torn,
    each change to the directory since its last sync (a file created or
    replaced, one unlinked) may have reached the disk as well, as a file
    system's journal commits them with any later sync: a created file then
    holds what was synced into it and some of the rest."""
    os.makedirs(dest)
    pc = os.path.join(image, ".pc")
    entries = {n: os.path.join(image, n) for n in os.listdir(image) if n != ".pc"}
    if torn_rng:
        current = {n[:-5]: os.path.join(pc, n) for n in (os.listdir(pc) if os.path.isdir(pc) else ())
                   if n.endswith(".data")}
        for name in sorted(set(entries) | set(current)):
            now = current.get(name)
            if (now is None or name not in entries or not os.path.samefile(now, entries[name])) and \
                    torn_rng.random() < 0.5:
                entries.pop(name, None)
                if now is not None:
                    entries[name] = now
    kept = {}
    for name, src in sorted(entries.items()):
        dst = os.path.join(dest, name)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)
        data, log = (os.path.join(pc, name + s) for s in (".data", ".log"))
        if torn_rng and os.path.exists(log) and os.path.exists(data) and os.path.samefile(src, data):
            kept[name] = _survive_some(log, dst, torn_rng)
    return kept


class PowerCuts:
    """A server whose power can be cut; after each cut, the next one runs on
    what the cut left (and can be cut in turn)."""

    def __init__(self, request, tmp_path, args, torn=False, cut_at=None):
        self.servers = request.node._topup_servers   # server_factory's: teardown and log tails
        self.tmp = tmp_path
        self.args = list(args)
        self.rng = random.Random()
        self.torn = torn
        self.cut_at = cut_at
        self.cuts = 0
        self.srv = self._server(tmp_path / "power0")
        self.srv.setup()
        self._start(self.srv)

    def _start(self, srv):
        """serve, after the CLI's setup and checks: cut_at(rng) is its own cut point."""
        if self.cut_at:
            srv.env["POWERCUT_CUT"] = self.cut_at(self.rng)
        srv.start()

    def _server(self, workdir, tokens=None):
        os.makedirs(workdir, exist_ok=True)
        srv = Server(workdir, self.args, name=os.path.basename(str(workdir)))
        _powered(srv, str(workdir) + "-image")
        srv.tokens = dict(tokens or {})
        self.servers.append(srv)
        return srv

    def cut(self, then=None):
        """SIGKILL (then then()), and a server on the image, started once it checked.
        Torn, the cut waits (a second at most) for writes to the database or
        its log that are not synced yet, for some of them to survive."""
        if self.torn:
            pending = [os.path.join(str(self.srv.workdir) + "-image", ".pc", n + ".log")
                       for n in ("topup.db", "topup.db-wal")]
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline and not any(
                    os.path.exists(p) and os.path.getsize(p) > LOG_HEADER for p in pending):
                pass
        self.srv.kill9()
        if then:
            then()
        self.cuts += 1
        dest = self.tmp / ("power%d" % self.cuts)
        kept = _restore(str(self.srv.workdir) + "-image", str(dest), self.rng if self.torn else None)
        srv = self._server(dest, self.srv.tokens)
        assert os.path.exists(srv.db), "the cut lost the database: %r" % (os.listdir(dest),)
        violations, _ = check_database(srv.db)
        assert not violations, "after cut %d (%r kept of the unsynced writes):\n%s" % (
            self.cuts, kept, "\n".join(violations[:20]))
        srv.integrity_ok()
        self._start(srv)
        self.srv = srv
        return kept


class Requests:
    """Every request sent, by key: kind, SIM, body, state (acked, maybe,
    rejected) and the answer. Top-up amounts are unique, so each top-up
    transaction names its request."""

    def __init__(self):
        self.by_key = {}
        self.topup_amount = {}
        self.counter = itertools.count()

    def stream(self, srv, sims, plan, stop, acked):
        headers = {"Authorization": "Bearer " + srv.tokens["operator"], "Content-Type": "application/json"}
        while not stop.is_set():
            n = next(self.counter)
            iccid = sims[n % len(sims)]
            if n % 5 == 4:
                rec = {"kind": "bundle", "path": "/v1/sims/%s/bundles" % iccid,
                       "body": json.dumps({"plan": plan}).encode()}
            else:
                amount = 100 + n
                rec = {"kind": "topup", "path": "/v1/sims/%s/topups" % iccid, "amount": amount,
                       "body": json.dumps({"amount": amount, "currency": "CNY", "channel": "kiosk",
                                           "method": "cash"}).encode()}
                self.topup_amount[amount] = rec
            rec.update(key="pc-%d" % n, iccid=iccid, state="maybe", status=None, raw=None)
            self.by_key[rec["key"]] = rec
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15)
            try:
                conn.connect()
            except OSError:   # the power is off: never sent
                del self.by_key[rec["key"]]
                return
            try:
                conn.request("POST", rec["path"], body=rec["body"],
                             headers=dict(headers, **{"Idempotency-Key": rec["key"]}))
                r = conn.getresponse()
                rec["status"], rec["raw"] = r.status, r.read()
            except (OSError, http.client.HTTPException):
                continue   # cut in flight: "maybe"
            finally:
                conn.close()
            if 200 <= rec["status"] < 300:
                rec["state"] = "acked"
                acked.append(rec)
            elif 400 <= rec["status"] < 500:
                rec["state"] = "rejected"

    def replay(self, srv, rec):
        return srv.request("POST", rec["path"], rec["body"], idem=rec["key"])


def _verify(srv, sims, reqs):
    """After a cut: the acknowledged are there as answered, the rest at most
    once; then the requests in flight are resolved by their retry."""
    for rec in reqs.by_key.values():
        if rec["state"] != "acked":
            continue
        r = reqs.replay(srv, rec)
        assert (r.status, r.raw) == (rec["status"], rec["raw"]), \
            "acknowledged %s %s lost or changed by the power cut:\nthen %r\nnow  %r" % (
                rec["kind"], rec["key"], rec["raw"], r.raw)
        assert r.headers.get("idempotent-replayed") == "true", (rec["key"], r.headers)
    applied = _check_sims(srv, sims, reqs, resolved=False)
    for rec in reqs.by_key.values():
        if rec["state"] != "maybe":
            continue
        r = reqs.replay(srv, rec)
        replayed = r.headers.get("idempotent-replayed") == "true"
        if rec["kind"] == "topup":
            assert r.status == 201, (rec["key"], r)
            assert replayed == (rec["amount"] in applied), \
                "in flight at the cut: %s applied %s, replayed %s" % (rec["key"], rec["amount"] in applied, replayed)
        assert r.status in (201, 402), (rec["key"], r)
        rec.update(state="acked" if r.status == 201 else "rejected", status=r.status, raw=r.raw)
    _check_sims(srv, sims, reqs, resolved=True)
    srv.ledger_ok()


def _check_sims(srv, sims, reqs, resolved):
    applied = {}
    for iccid in sims:
        txns = srv.txns(iccid)
        running = bundles = 0
        for t in reversed(txns):
            running += t["amount"]
            assert t["balance_after"] == running, "balance_after is no running sum at %r" % (t,)
            if t["kind"] == "bundle_purchase":
                bundles += 1
                continue
            assert t["kind"] == "topup", t
            rec = reqs.topup_amount.get(t["amount"])
            if rec is None and t["amount"] == OPENING:
                continue   # the opening top-up
            assert rec is not None and rec["iccid"] == iccid, "a top-up no request asked for: %r" % (t,)
            assert rec["state"] in ("acked", "maybe"), "a %s top-up was applied: %r" % (rec["state"], t)
            assert t["amount"] not in applied, "applied twice: %r" % (t,)
            applied[t["amount"]] = t
        assert srv.balance(iccid) == running, "balance %d, transactions %d" % (srv.balance(iccid), running)
        mine = [r for r in reqs.by_key.values() if r["kind"] == "bundle" and r["iccid"] == iccid]
        if resolved:
            assert bundles == sum(r["status"] == 201 for r in mine), (iccid, bundles)
        else:
            assert sum(r["state"] == "acked" and r["status"] == 201 for r in mine) <= bundles <= \
                sum(r["state"] == "acked" and r["status"] == 201 or r["state"] == "maybe" for r in mine)
    lost = [r["key"] for r in reqs.topup_amount.values() if r["state"] == "acked" and r["amount"] not in applied]
    assert not lost, "%d acknowledged top-ups lost by the power cut, e.g. %r" % (len(lost), lost[:5])
    return applied


def _streams(request, tmp_path, rounds, torn=False, cut_at=None):
    """Top-ups and bundle purchases from N_THREADS clients on six SIMs, the
    power cut `rounds` times, each on what the last left: at a random moment,
    or where cut_at says (the server then dies by itself). The log's bound is
    1 MiB, so that it is copied into the database and starts over every ~100
    top-ups: random cuts land in checkpoints and restarts too."""
    pc = PowerCuts(request, tmp_path, ["--set", "daily_cap=4000000000000", "--set", "log_max_mb=1"], torn=torn,
                   cut_at=cut_at)
    srv = pc.srv
    sims = [srv.new_sim() for _ in range(6)]
    plan = srv.create_plan(price=PRICE)[0]["code"]
    for iccid in sims:
        srv.topup_ok(iccid, OPENING)
    reqs = Requests()
    for _ in range(rounds):
        stop, acked = threading.Event(), []
        threads = [threading.Thread(target=reqs.stream, args=(pc.srv, sims, plan, stop, acked), daemon=True)
                   for _ in range(N_THREADS)]
        for t in threads:
            t.start()
        want, deadline = pc.rng.randint(50, 400), time.monotonic() + 20
        while (pc.srv.running() if cut_at else len(acked) < want) and time.monotonic() < deadline:
            time.sleep(0.002)
        assert not pc.srv.running() if cut_at else len(acked) >= want, \
            "%d answers in 20 s, the server %s" % (len(acked), "running" if pc.srv.running() else "dead")
        if cut_at:
            assert pc.srv.proc.returncode == -signal.SIGKILL, "not the cut: %r" % pc.srv.proc.returncode
        else:
            time.sleep(pc.rng.uniform(0, 0.02))

        def stopped():
            stop.set()
            for t in threads:
                t.join(20)
        pc.cut(stopped)
        _verify(pc.srv, sims, reqs)
    rejected = [r for r in reqs.by_key.values() if r["state"] == "rejected" and r["kind"] == "topup"]
    assert not rejected, [(r["status"], r["raw"]) for r in rejected[:3]]


@pytest.mark.parametrize("torn", [False, True], ids=["synced-only", "torn"])
def test_power_cut_during_a_stream(request, server_factory, tmp_path, torn):
    """Four cuts at random moments."""
    _streams(request, tmp_path, 4, torn=torn)


def test_power_cut_inside_a_checkpoint(request, server_factory, tmp_path):
    """Three cuts right after a random write of the database file among its
    first 300: while serving only a checkpoint writes it (the checkpointer's
    run, or the writer's copy of the rest at the log's bound)."""
    _streams(request, tmp_path, 3, cut_at=lambda rng: "write:topup.db:%d" % rng.randint(1, 300))


def _csv(n, rng):
    ids = []
    for _ in range(n):
        digits = "8970156" + "".join(rng.choice("0123456789") for _ in range(12))
        ids.append(digits + luhn_check_digit(digits))
    return ids, ("iccid\n" + "\n".join(ids) + "\n").encode()


@pytest.mark.parametrize("torn", [False, True], ids=["synced-only", "torn"])
def test_power_cut_right_after_the_answer(request, server_factory, tmp_path, torn):
    """The cut comes as soon as the answer does, the server idle: whatever
    the answer waited for must have been the sync that made it durable. An
    import of SIMs in random order on a 2 MiB cache (cache_mb's least) has
    SQLite spill pages to the log before the commit and write some of them
    again, which rewrites the checksums of frames already in the log."""
    pc = PowerCuts(request, tmp_path, ["--set", "cache_mb=2", "--set", "log_max_mb=8"], torn=torn)
    iccid = pc.srv.new_sim()
    imported, balance = [], 0
    for n in range(2):
        ids, csv = _csv(4000, pc.rng)
        key = "pc-import-%d" % n
        r = pc.srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem=key,
                           timeout=60)
        assert r.status == 200 and r.body["imported"] == len(ids), r
        imported += ids
        pc.cut()
        again = pc.srv.request("POST", "/v1/sims/import", csv, token="admin", content_type="text/csv", idem=key,
                               timeout=60)
        assert (again.status, again.raw) == (r.status, r.raw), \
            "the import answered before the cut is lost:\nthen %r\nnow  %r" % (r.raw, again.raw)
        assert again.headers.get("idempotent-replayed") == "true"
        for sample in pc.rng.sample(imported, 20):
            assert pc.srv.request("GET", "/v1/sims/" + sample).status == 200, sample
        t = pc.srv.topup(iccid, 100 + n, key="pc-after-%d" % n)
        assert t.status == 201, t
        balance += 100 + n
        pc.cut()
        assert pc.srv.topup(iccid, 100 + n, key="pc-after-%d" % n).raw == t.raw
        assert pc.srv.balance(iccid) == balance
        pc.srv.ledger_ok()


@pytest.mark.parametrize("torn", [False, True], ids=["synced-only", "torn"])
def test_power_cut_while_a_database_is_made(request, server_factory, tmp_path, torn):
    """The power cut while `topupd migrate`, or `serve`, creates a database:
    its migrations, the receipt key, the first start. The first of each runs
    to the end (to learn how long it takes here), the others are cut at a
    random moment of it. What is left must migrate to the end, pass the
    checks, start and serve."""
    rng = random.Random()
    took = {}
    for n in range(24):
        how = "serve" if n % 4 == 1 else "migrate"
        work = tmp_path / ("made%d" % n)
        os.makedirs(work)
        srv = _powered(Server(work), str(work) + "-image")
        argv = [srv.binary, "migrate", "--db", srv.db] if how == "migrate" else \
            [srv.binary, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", srv.db]
        with open(srv.log_path, "wb") as log:
            started = time.monotonic()
            proc = subprocess.Popen(argv, cwd=srv.workdir, env=srv.env, stdout=log, stderr=log)
        if how in took:
            time.sleep(rng.uniform(0, took[how]))
        elif how == "migrate":
            assert proc.wait(60) == 0, srv.log_tail()
        else:
            while "listening on" not in srv.log_tail(5):
                assert proc.poll() is None and time.monotonic() < started + READY_TIMEOUT, srv.log_tail()
                time.sleep(0.002)
        took.setdefault(how, time.monotonic() - started)
        proc.kill()
        proc.wait()
        left = tmp_path / ("left%d" % n)
        _restore(str(work) + "-image", str(left), rng if torn else None)
        after = Server(left, name="left%d" % n)
        request.node._topup_servers.append(after)
        after.setup()   # migrate (making the database if the cut left none), tokens
        after.integrity_ok()
        after.start()
        after.topup_ok(after.new_sim(), 1000)
        after.ledger_ok()
        after.stop()


MODEL_SCRIPT = r"""
import os, sys
d = sys.argv[1]
def path(n):
    return os.path.join(d, n)
def step(name):
    print(name, flush=True)
    sys.stdin.readline()          # the test looks at the image meanwhile
a = os.open(path("a"), os.O_RDWR | os.O_CREAT, 0o600)
os.write(a, b"never synced")
b = os.open(path("b"), os.O_RDWR | os.O_CREAT, 0o600)
os.pwrite(b, b"x" * 1000, 0)
os.fsync(b)
step("created")
dirfd = os.open(d, os.O_RDONLY)
os.fsync(dirfd)
step("dir synced")
os.writev(b, [b"yy", b"zz"])      # at the position: 0, the pwrite left it there
os.ftruncate(b, 600)
step("written")
os.fdatasync(b)
step("data synced")
os.unlink(path("b"))
c = os.open(path("b"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(c, b"new")
os.fsync(c)
step("replaced")
os.fsync(dirfd)
step("dir synced again")
"""


def test_the_model(tmp_path):
    """The preload's rules (powercut.c M1-M3) on a small program's files:
    writes count once synced, entries once their directory is."""
    work, image = tmp_path / "w", tmp_path / "w-image"
    os.makedirs(work)
    srv = _powered(Server(work), str(image))
    env = dict(srv.env, LD_PRELOAD=POWERCUT)   # python, not topupd: no ASan runtime to put first
    proc = subprocess.Popen(["/usr/bin/python3", "-c", MODEL_SCRIPT, str(work)], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def at(step):
        assert proc.stdout.readline().strip() == step
        return {n: open(os.path.join(image, n), "rb").read() for n in os.listdir(image) if n != ".pc"}

    def go():
        proc.stdin.write("\n")
        proc.stdin.flush()

    try:
        assert at("created") == {}, "no entry is durable before its directory syncs"
        go()
        assert at("dir synced") == {"a": b"", "b": b"x" * 1000}
        go()
        assert at("written") == {"a": b"", "b": b"x" * 1000}, "written, not synced"
        go()
        assert at("data synced") == {"a": b"", "b": b"yyzz" + b"x" * 596}
        go()
        assert at("replaced") == {"a": b"", "b": b"yyzz" + b"x" * 596}, "the old file until the directory syncs"
        go()
        assert at("dir synced again") == {"a": b"", "b": b"new"}
        go()
        assert proc.wait(10) == 0
    finally:
        proc.kill()


@pytest.mark.parametrize("point", ["open", "write", "sync", "link"])
def test_killed_while_the_receipt_key_is_made(request, server_factory, tmp_path, point):
    """`serve` makes the receipt key at a new database's first start; killed
    right after the key's file is created, written, synced or linked into
    place (POWERCUT_CUT), the next start must go on, on the files as a
    kill -9 leaves them and on what a power cut leaves."""
    work = tmp_path / "w"
    os.makedirs(work)
    srv = _powered(Server(work), str(work) + "-image")
    srv.cli("migrate", "--db", srv.db)   # no key yet: serve makes it
    env = dict(srv.env, POWERCUT_CUT="%s:topup.db.ed25519*" % point)
    with open(srv.log_path, "wb") as log:
        proc = subprocess.Popen([srv.binary, "serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", srv.db],
                                cwd=srv.workdir, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + READY_TIMEOUT
    while proc.poll() is None and "listening on" not in srv.log_tail(5) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL and "listening on" not in srv.log_tail(5), \
        "serve made its key without a %s of it:\n%s" % (point, srv.log_tail())
    _restore(str(work) + "-image", str(tmp_path / "power"))
    for name, d in (("kill", work), ("power", tmp_path / "power")):
        after = Server(d, name=name)
        request.node._topup_servers.append(after)
        after.setup()
        after.start()
        after.topup_ok(after.new_sim(), 1000)
        after.stop()

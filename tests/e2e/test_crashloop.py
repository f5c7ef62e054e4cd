"""Crash loop, Jepsen-bank style: kill -9 topupd again and again under a mixed
load of every mutating command, then prove that nothing acknowledged was lost,
nothing was applied twice and nothing is half-applied.

32 client threads run top-ups (unique Idempotency-Keys, many SIMs, operator and
admin channels), replays of earlier keys, bundle purchases, SIM provisioning,
CSV imports, plan creation, suspend/resume and token create/revoke. A killer
thread SIGKILLs the server at random moments and restarts it on the same
database and port; clients retry through the outage with the same key and body
(a few give up on purpose: those operations are "abandoned", outcome unknown).

An operation is
  acked      answered 2xx: it must be present exactly once;
  rejected   answered 4xx (e.g. a top-up of a SIM suspended meanwhile): absent, and
             its key keeps the refusal: a repeat is answered it again (engine.h E4);
  abandoned  sent, never answered, not retried: all or nothing. At the end it is
             resolved by sending it again with its key: a replay means it had been
             applied, a fresh execution that it had not.
At the end (server still up): every acknowledged or refused key replays byte for byte, the
ledger check passes, balances agree, acked tokens authenticate (revoked ones do
not); then the server is stopped and the database is checked read-only
(db_invariants.check_database: conservation per unit, no negative balance, every
top-up/bundle with exactly its transfers, receipt and records, no transfer
without its parent, wallet == sum of records, integrity_check) and the sets of
top-ups, bundles, SIMs and plans in the database are compared with what was
acknowledged; finally `topupd check` must exit 0.

CRASHLOOP_KILLS (default 8, about 20 s) sets the number of kills; the long run
is `CRASHLOOP_KILLS=60`. CRASHLOOP_SEED makes the operation mix reproducible
(the timing is not).
"""
import collections
import http.client
import json
import os
import random
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import TEST_TIMEOUT
from db_invariants import check_database, open_ro
from e2e_util import make_iccid, make_msisdn

KILLS = int(os.environ.get("CRASHLOOP_KILLS", "8"))
SEED = int(os.environ.get("CRASHLOOP_SEED", str(random.SystemRandom().randrange(1 << 30))))
N_CLIENTS = 32
N_POOL = 40            # SIMs provisioned and funded before the first kill
N_TOGGLE = 12          # of those, SIM i is suspended/resumed only by client i
ABANDON_P = 0.25       # a client whose request died with the server gives up this often
OP_DEADLINE = 60.0     # an operation not answered within this is a violation

SERVE_ARGS = ("--set", "daily_cap=4000000000000", "--set", "auth_fail_per_minute=1000000",
              "--set", "token_rate=100000000", "--set", "address_rate=100000000", "--set", "http_threads=8")

WEIGHTS = collections.OrderedDict([
    ("topup", 40), ("replay", 10), ("reuse", 2), ("bundle", 12), ("sim", 6), ("import", 3), ("plan", 2),
    ("toggle", 5), ("token_create", 2), ("token_revoke", 1),
])
# 4xx answers an operation may legitimately get (anything else is a violation)
EXPECTED_REJECTIONS = {
    "topup": {"sim_suspended"},
    "bundle": {"sim_suspended", "sim_not_active", "insufficient_balance"},
    "reuse": {"idempotency_key_reused"},
}
# A plan no wallet can pay: its purchase fails after writing (bundle row inserted, then the
# price transfer refused), which makes the engine roll back and re-run the whole batch
# with savepoints: the other commands of that batch must still apply exactly once.
WHALE_PLAN = "whale"
RETRYABLE_503 = {"overloaded", "shutting_down"}


class Op:
    __slots__ = ("kind", "key", "method", "path", "body", "token", "ctype", "state", "status", "raw", "resp",
                 "sent", "attempts", "info", "replayed")

    def __init__(self, kind, method, path, body, token, key=None, ctype=None, **info):
        self.kind, self.method, self.path, self.body, self.token = kind, method, path, body, token
        self.key, self.ctype, self.info = key, ctype, info
        self.state, self.status, self.raw, self.resp = "new", None, None, None
        self.sent, self.attempts, self.replayed = False, 0, False

    def __repr__(self):
        return "Op(%s %s %s key=%s state=%s status=%s raw=%r)" % (
            self.kind, self.method, self.path, self.key, self.state, self.status, (self.raw or b"")[:200])


def _json(body):
    return json.dumps(body, separators=(",", ":")).encode()


def _stable_port():
    """A free port below the ephemeral range: while topupd is down, a client's connect()
    could otherwise be given the server's port as its own source port (a TCP self-connect),
    and the restart could not bind it."""
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, lo - 10000), lo)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below %d" % lo)


def _plan_body(code, rng):
    return {"code": code, "name": {"zh": "套餐", "en": "Pack " + code, "ru": "Пакет"},
            "price": 10 ** 12 if code == WHALE_PLAN else rng.choice([0, 500, 1000, 2500, 5000]), "currency": "CNY",
            "validity_days": rng.choice([7, 30, 90]),
            "allowances": {"data_bytes": rng.choice([0, 1 << 30, 10 << 30]),
                           "voice_seconds": rng.choice([0, 600]), "sms": rng.choice([0, 100])},
            "zones": ["250", "460"], "payg": False}


class World:
    """Everything the clients learned, under one lock."""

    def __init__(self, srv):
        self.srv = srv
        self.lock = threading.Lock()
        self.ops = []
        self.violations = []
        self.pool = []              # ICCIDs that top-ups and bundles target
        self.funded = []            # pool SIMs known to be active with money
        self.plans = []             # acked plan codes
        self.tokens = {}            # id -> {"secret", "name", "revoked": bool, "busy": bool}
        self.toggle_expect = {}     # iccid -> "suspended" | "active"
        self.acks_since_start = 0
        self.seq = 0
        self.crashes = 0

    def violation(self, msg):
        with self.lock:
            if len(self.violations) < 100:
                self.violations.append(msg)

    def next(self):
        with self.lock:
            self.seq += 1
            return self.seq


class Client:
    def __init__(self, world, idx, stop):
        self.w, self.idx, self.stop = world, idx, stop
        self.rng = random.Random(SEED * 1000 + idx)
        self.toggle_sim = world.pool[idx] if idx < N_TOGGLE else None
        self.count = collections.Counter()

    # ------------------------------------------------------------ transport

    def execute(self, op, abandonable=True):
        """Sends op until it gets a definitive answer (or is abandoned)."""
        srv, w = self.w.srv, self.w
        deadline = time.monotonic() + OP_DEADLINE
        with w.lock:
            w.ops.append(op)
        while True:
            if time.monotonic() > deadline:
                w.violation("no definitive answer within %.0f s: %r" % (OP_DEADLINE, op))
                op.state = "lost"
                return op
            op.attempts += 1
            try:
                r = srv.request(op.method, op.path, op.body, token=op.token, idem=op.key, timeout=30,
                                content_type=op.ctype)
            except ConnectionRefusedError:
                time.sleep(0.01)          # the server is down: nothing was sent
                continue
            except (OSError, http.client.HTTPException):
                op.sent = True            # it may have reached the server before it died
                if abandonable and self.rng.random() < ABANDON_P:
                    op.state = "abandoned"
                    return op
                time.sleep(0.01)
                continue
            op.sent = True
            code = r.body.get("error", {}).get("code") if isinstance(r.body, dict) else None
            if r.status == 429 or (r.status == 409 and code == "idempotency_key_in_use"):
                time.sleep(0.02)
                continue
            if r.status == 503:
                if code not in RETRYABLE_503:
                    w.violation("503 %s without any fault injected: %r" % (code, op))
                time.sleep(0.02)
                continue
            op.status, op.raw, op.resp = r.status, r.raw, r.body
            op.replayed = r.headers.get("idempotent-replayed") == "true"
            if 200 <= r.status < 300:
                op.state = "acked"
                with w.lock:
                    w.acks_since_start += 1
            elif 400 <= r.status < 500:
                op.state = "rejected"
                if code not in EXPECTED_REJECTIONS.get(op.kind, ()):
                    w.violation("unexpected rejection %d %s: %r" % (r.status, code, op))
            else:
                op.state = "error"
                w.violation("status %d: %r" % (r.status, op))
            return op

    # ----------------------------------------------------------- operations

    def key(self, kind):
        return "cl-%s-%d-%d-%08x" % (kind, self.idx, self.w.next(), self.rng.getrandbits(32))

    def op_topup(self):
        with self.w.lock:
            iccid = self.rng.choice(self.w.pool)
        amount = self.rng.randint(100, 200000)
        admin = self.rng.random() < 0.1
        body = {"amount": amount, "currency": "CNY",
                "channel": "admin" if admin else self.rng.choice(["portal", "agent", "kiosk", "voucher"]),
                "method": "adjustment" if admin else self.rng.choice(["alipay", "wechat", "card", "cash"])}
        op = self.execute(Op("topup", "POST", "/v1/sims/%s/topups" % iccid, _json(body),
                             "admin" if admin else "operator", key=self.key("tu"), iccid=iccid, amount=amount))
        if op.state == "acked":
            t = op.resp["topup"]
            if (t["iccid"], t["amount"]) != (iccid, amount) or op.resp["receipt"]["topup"] != t["id"]:
                self.w.violation("top-up answer does not match its request: %r" % op)
            with self.w.lock:
                if iccid not in self.w.funded and op.resp["state"] == "active":
                    self.w.funded.append(iccid)

    def op_replay(self):
        with self.w.lock:
            done = [o for o in self.w.ops[-2000:] if o.state == "acked" and o.key and o.kind != "replay"]
        if not done:
            return
        orig = self.rng.choice(done)
        op = self.execute(Op("replay", orig.method, orig.path, orig.body, orig.token, key=orig.key,
                             ctype=orig.ctype, orig=orig), abandonable=False)
        if op.state == "acked":
            if (op.status, op.raw) != (orig.status, orig.raw) or not op.replayed:
                self.w.violation("replay of %s differs (replayed header %s):\n  first %r\n  again %r" % (
                    orig.key, op.replayed, orig.raw, op.raw))
        elif op.state != "lost":
            self.w.violation("replay of acknowledged %s answered %s: %r" % (orig.key, op.status, op.raw))

    def op_reuse(self):
        """An acknowledged top-up key with another body: 422, and nothing applied."""
        with self.w.lock:
            done = [o for o in self.w.ops[-2000:] if o.state == "acked" and o.kind == "topup"]
        if not done:
            return
        orig = self.rng.choice(done)
        body = json.loads(orig.body)
        body["amount"] = body["amount"] + 1 if body["amount"] < 200000 else 100
        self.execute(Op("reuse", orig.method, orig.path, _json(body), orig.token, key=orig.key, orig=orig),
                     abandonable=False)

    def op_bundle(self):
        with self.w.lock:
            if not self.w.funded or not self.w.plans:
                return
            iccid = self.rng.choice(self.w.funded)
            plan = WHALE_PLAN if self.rng.random() < 0.2 else self.rng.choice(self.w.plans)
        op = self.execute(Op("bundle", "POST", "/v1/sims/%s/bundles" % iccid, _json({"plan": plan}), "operator",
                             key=self.key("bu"), iccid=iccid, plan=plan))
        if op.state == "acked" and op.resp["bundle"]["plan"] != plan:
            self.w.violation("bundle answer does not match: %r" % op)

    def op_sim(self):
        iccid = make_iccid()
        body = {"iccid": iccid, "msisdn": make_msisdn(), "language": self.rng.choice(["zh", "en", "ru"])}
        op = self.execute(Op("sim", "POST", "/v1/sims", _json(body), "admin", key=self.key("sim"), iccid=iccid))
        if op.state == "acked":
            if op.status != 201 or op.resp["iccid"] != iccid:
                self.w.violation("provisioning answer: %r" % op)
            with self.w.lock:
                self.w.pool.append(iccid)

    def op_import(self):
        n = self.rng.randint(3, 12)
        iccids = [make_iccid(self.rng.choice([19, 20])) for _ in range(n)]
        lines = ["iccid,msisdn,language"] + ["%s,%s,%s" % (i, make_msisdn(), self.rng.choice(["zh", "en", "ru"]))
                                             for i in iccids]
        bad_rows = 0
        if self.rng.random() < 0.3:
            lines.append("12345,,en")    # an invalid ICCID: reported, not imported
            bad_rows = 1
        op = self.execute(Op("import", "POST", "/v1/sims/import", ("\n".join(lines) + "\n").encode(), "admin",
                             key=self.key("imp"), ctype="text/csv", iccids=iccids, bad=bad_rows))
        if op.state == "acked":
            want = {"rows": n + bad_rows, "imported": n, "existing": 0, "failed": bad_rows}
            if {k: op.resp.get(k) for k in want} != want:
                self.w.violation("import answered %r, expected %r" % (op.resp, want))
            with self.w.lock:
                self.w.pool.extend(iccids)

    def op_plan(self, code=None):
        code = code or "cl%d_%d" % (self.idx, self.w.next())
        op = self.execute(Op("plan", "POST", "/v1/plans", _json(_plan_body(code, self.rng)), "admin",
                             key=self.key("plan"), code=code))
        if op.state == "acked" and code != WHALE_PLAN:
            with self.w.lock:
                self.w.plans.append(code)

    def op_toggle(self):
        if self.toggle_sim is None:
            return self.op_topup()
        iccid = self.toggle_sim
        with self.w.lock:
            cur = self.w.toggle_expect.get(iccid, "active")
        action = "resume" if cur == "suspended" else "suspend"
        op = self.execute(Op(action, "POST", "/v1/sims/%s/%s" % (iccid, action), b"{}", "admin", iccid=iccid),
                          abandonable=False)
        if op.state == "acked":
            want = "suspended" if action == "suspend" else "active"
            if op.resp.get("state") != want:
                self.w.violation("%s answered state %s: %r" % (action, op.resp.get("state"), op))
            with self.w.lock:
                self.w.toggle_expect[iccid] = want

    def op_token_create(self):
        name = "cl-token-%d-%d" % (self.idx, self.w.next())
        op = self.execute(Op("token_create", "POST", "/v1/tokens", _json({"role": "operator", "name": name}),
                             "admin", name=name))
        if op.state == "acked":
            b = op.resp
            if (b.get("role"), b.get("name")) != ("operator", name) or not str(b.get("token", "")).startswith("tpk_"):
                self.w.violation("token create answered %r" % (b,))
            with self.w.lock:
                self.w.tokens[b["id"]] = {"secret": b["token"], "name": name, "revoked": False, "busy": False}

    def op_token_revoke(self):
        with self.w.lock:
            live = [i for i, t in self.w.tokens.items() if not t["revoked"] and not t["busy"]]
            if not live:
                return
            tid = self.rng.choice(live)
            self.w.tokens[tid]["busy"] = True
        op = self.execute(Op("token_revoke", "DELETE", "/v1/tokens/%d" % tid, None, "admin", tid=tid))
        if op.state == "acked":
            if op.resp != {"id": tid, "revoked": True}:
                self.w.violation("token revoke answered %r" % (op.resp,))
            with self.w.lock:
                self.w.tokens[tid]["revoked"] = True

    def run(self):
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        try:
            while not self.stop.is_set():
                kind = self.rng.choices(kinds, weights)[0]
                getattr(self, "op_" + kind)()
                self.count[kind] += 1
        except Exception as e:   # a bug in the test itself must not pass silently
            self.w.violation("client %d crashed: %r" % (self.idx, e))
            raise


def _killer(world, srv, kills, done):
    """kill -9 at random moments; restart on the same DB and port."""
    rng = random.Random(SEED)
    try:
        for _ in range(kills):
            need = rng.choice([0, 1, 5, 20, 50])      # sometimes right after a restart, mostly under load
            until = time.monotonic() + 15
            while world.acks_since_start < need and time.monotonic() < until:
                time.sleep(0.005)
            if world.acks_since_start < need:
                world.violation("no progress: %d acks in 15 s after restart #%d" % (world.acks_since_start,
                                                                                     world.crashes))
            time.sleep(rng.uniform(0.0, 0.6))
            if srv.proc.poll() is not None:
                world.violation("topupd died on its own (exit %s) before kill #%d" % (srv.proc.returncode,
                                                                                      world.crashes + 1))
            srv.kill9()
            if srv.proc.returncode != -signal.SIGKILL:
                world.violation("topupd exit status %s, expected SIGKILL" % srv.proc.returncode)
            world.crashes += 1
            time.sleep(rng.choice([0.0, 0.0, 0.05, 0.3]))   # let clients hit a closed port
            with world.lock:
                world.acks_since_start = 0
            srv.start(same_port=True)
    except Exception as e:
        world.violation("killer failed: %r" % (e,))
    finally:
        done.set()


def _parallel_map(fn, items, threads=16):
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, items))


def test_crashloop(server_factory, capsys):
    signal.alarm(max(TEST_TIMEOUT, 120 + 8 * KILLS))   # the long run needs more than the default guard
    t0 = time.monotonic()
    srv = server_factory(*SERVE_ARGS, start=False)
    srv.port = _stable_port()
    srv.start(same_port=True)
    world = World(srv)
    setup = Client(world, 999, threading.Event())

    # ---- the world before the first kill: plans, a pool of funded SIMs
    for i in range(3):
        setup.op_plan()
    setup.op_plan(WHALE_PLAN)
    for i in range(N_POOL):
        setup.op_sim()
    for iccid in list(world.pool):
        op = setup.execute(Op("topup", "POST", "/v1/sims/%s/topups" % iccid,
                              _json({"amount": 200000, "currency": "CNY", "channel": "portal", "method": "alipay"}),
                              "operator", key=setup.key("tu"), iccid=iccid, amount=200000), abandonable=False)
        assert op.state == "acked", op
        world.funded.append(iccid)
    assert len(world.plans) == 3 and len(world.pool) == N_POOL, world.violations
    assert not world.violations, world.violations

    # ---- load + kills
    stop = threading.Event()
    clients = [Client(world, i, stop) for i in range(N_CLIENTS)]
    threads = [threading.Thread(target=c.run, daemon=True, name="client-%d" % c.idx) for c in clients]
    for t in threads:
        t.start()
    killed = threading.Event()
    kt = threading.Thread(target=_killer, args=(world, srv, KILLS, killed), daemon=True)
    kt.start()
    killed.wait(60 + 10 * KILLS)
    time.sleep(0.5)                       # some load on the last incarnation too
    stop.set()
    kt.join(30)
    for t in threads:
        t.join(OP_DEADLINE + 30)
    assert not kt.is_alive() and not any(t.is_alive() for t in threads), "threads stuck"
    assert srv.running(), "topupd is not running after the last restart:\n" + "\n".join(world.violations[:20])
    t_load = time.monotonic() - t0

    ops = world.ops
    by = collections.defaultdict(list)
    for o in ops:
        by[(o.kind, o.state)].append(o)

    # ---- abandoned operations: all or nothing, then resolved by their key
    for o in by[("import", "abandoned")]:
        present = sum(srv.request("GET", "/v1/sims/%s" % i).status == 200 for i in o.info["iccids"])
        if present not in (0, len(o.info["iccids"])):
            world.violation("abandoned import half-applied: %d of %d SIMs exist: %r" % (
                present, len(o.info["iccids"]), o))
    resolved = collections.Counter()
    for o in [o for o in ops if o.state == "abandoned" and o.key]:
        again = setup.execute(Op(o.kind, o.method, o.path, o.body, o.token, key=o.key, ctype=o.ctype, **o.info),
                              abandonable=False)
        resolved["replayed" if again.replayed else "executed"] += 1
        if again.state == "acked":
            o.state, o.status, o.raw, o.resp = "acked", again.status, again.raw, again.resp
            o.info["resolved"] = True
            if o.kind == "import" and again.replayed is False and again.resp.get("imported") != len(o.info["iccids"]):
                world.violation("abandoned import re-executed but imported %r" % (again.resp,))
        elif again.state == "rejected":
            o.state, o.status, o.raw, o.resp = "rejected", again.status, again.raw, again.resp
        world.ops.remove(again)
    for o in [o for o in ops if o.state == "abandoned" and o.kind == "token_revoke"]:
        again = setup.execute(Op(o.kind, o.method, o.path, None, "admin", **o.info), abandonable=False)
        world.ops.remove(again)
        if again.state == "acked":
            o.state, o.resp = "acked", again.resp
            world.tokens[o.info["tid"]]["revoked"] = True

    acked = [o for o in ops if o.state == "acked"]
    acked_by = collections.defaultdict(list)
    for o in acked:
        acked_by[o.kind].append(o)

    # ---- every acknowledged or refused key replays byte for byte
    keyed = [o for o in acked if o.key and o.kind != "replay"]
    keyed += [o for o in ops if o.state == "rejected" and o.key and o.kind not in ("replay", "reuse")]

    def replay(o):
        r = srv.request(o.method, o.path, o.body, token=o.token, idem=o.key, content_type=o.ctype)
        if (r.status, r.raw) != (o.status, o.raw) or r.headers.get("idempotent-replayed") != "true":
            return "final replay of %s differs:\n  first %r\n  now   %r" % (o.key, o.raw, r.raw)
        return None

    for msg in filter(None, _parallel_map(replay, keyed)):
        world.violation(msg)

    # ---- API view: ledger check, balances, tokens, receipts
    srv.ledger_ok()
    api_balance = dict(zip(world.pool, _parallel_map(lambda i: srv.request("GET", "/v1/sims/%s" % i), world.pool)))
    for iccid, r in api_balance.items():
        if r.status != 200:
            world.violation("acked SIM %s: GET answered %r" % (iccid, r))
    for o in acked_by["topup"][:: max(1, len(acked_by["topup"]) // 50)]:
        num = o.resp["receipt"]["number"]
        r = srv.request("GET", "/v1/receipts/%s" % num)
        if r.status != 200 or r.body.get("topup") != o.resp["topup"]["id"]:
            world.violation("receipt %s of %s: %r" % (num, o.key, r))
    probe = "/v1/sims/%s" % world.pool[0]
    for tid, t in world.tokens.items():
        st = srv.request("GET", probe, token=t["secret"]).status
        if st != (401 if t["revoked"] else 200):
            world.violation("token %d (%s, revoked=%s) answered %d" % (tid, t["name"], t["revoked"], st))
    token_list = srv.request("GET", "/v1/tokens", token="admin")
    assert token_list.status == 200, token_list

    # ---- stop, then the database itself, read-only
    rc = srv.stop()
    assert rc == 0, "topupd exited %r on SIGTERM:\n%s" % (rc, srv.log_tail(20))
    violations, counts = check_database(srv.db)
    for msg in violations:
        world.violation("database: " + msg)
    con = open_ro(srv.db)
    try:
        db_topups = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT t.id, s.iccid, t.amount FROM topups t JOIN sims s ON s.id = t.sim_id")}
        db_bundles = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT b.id, s.iccid, p.code FROM bundles b JOIN sims s ON s.id = b.sim_id JOIN plans p ON p.id = b.plan_id")}
        db_sims = {r[0]: r[1] for r in con.execute("SELECT iccid, state FROM sims")}
        db_plans = {r[0] for r in con.execute("SELECT code FROM plans")}
        db_tokens = {r[0]: (r[1], r[2], r[3]) for r in con.execute("SELECT id, name, role, revoked_at FROM tokens")}
        db_keys = {r[0] for r in con.execute("SELECT key FROM idempotency")}
        db_wallet = {r[0]: r[1] for r in con.execute(
            "SELECT iccid, w_credits_posted - w_debits_posted FROM sims")}
    finally:
        con.close()

    # top-ups: the database holds exactly the acknowledged ones, once each
    want_topups = {}
    for o in acked_by["topup"]:
        tid = int(re.match(r"tu_(\d+)$", o.resp["topup"]["id"]).group(1))
        if tid in want_topups:
            world.violation("two acknowledged top-ups answered with the same id %d" % tid)
        want_topups[tid] = (o.info["iccid"], o.info["amount"])
    if db_topups != want_topups:
        extra = sorted(set(db_topups) - set(want_topups))[:10]
        lost = sorted(set(want_topups) - set(db_topups))[:10]
        diff = [k for k in set(db_topups) & set(want_topups) if db_topups[k] != want_topups[k]][:10]
        world.violation("top-ups: %d in the database, %d acknowledged; unacknowledged present %r, "
                        "acknowledged missing %r, different %r" % (len(db_topups), len(want_topups), extra, lost, diff))
    want_bundles = {int(o.resp["bundle"]["id"][3:]): (o.info["iccid"], o.info["plan"]) for o in acked_by["bundle"]}
    if db_bundles != want_bundles:
        world.violation("bundles: %d in the database, %d acknowledged; extra %r, missing %r" % (
            len(db_bundles), len(want_bundles), sorted(set(db_bundles) - set(want_bundles))[:10],
            sorted(set(want_bundles) - set(db_bundles))[:10]))
    want_sims = {o.info["iccid"] for o in acked_by["sim"]}
    for o in acked_by["import"]:
        want_sims.update(o.info["iccids"])
    if set(db_sims) != want_sims:
        world.violation("SIMs: extra %r, missing %r" % (sorted(set(db_sims) - want_sims)[:10],
                                                       sorted(want_sims - set(db_sims))[:10]))
    want_plans = {o.info["code"] for o in acked_by["plan"]}
    if db_plans != want_plans:
        world.violation("plans: extra %r, missing %r" % (sorted(db_plans - want_plans), sorted(want_plans - db_plans)))
    for o in ops:
        if o.state == "rejected" and o.key and o.kind not in ("reuse", "replay") and o.key not in db_keys:
            world.violation("rejected %s has no stored idempotency row: %r" % (o.key, o))
    # suspend/resume: each toggled SIM is in the state of its owner's last acknowledged command
    for iccid, want in world.toggle_expect.items():
        if db_sims.get(iccid) != want:
            world.violation("SIM %s is %s, its last acknowledged command left it %s" % (iccid, db_sims.get(iccid), want))
    # tokens: acked ones exist as created (revoked iff an acked revoke); the non-idempotent create
    # may have left an extra row only for an attempt that was sent and never answered
    names = collections.Counter(v[0] for v in db_tokens.values())
    for tid, t in world.tokens.items():
        row = db_tokens.get(tid)
        if row is None or row[:2] != (t["name"], "operator") or (row[2] is not None) != t["revoked"]:
            world.violation("acked token %d %s: database row %r" % (tid, t, row))
    for o in ops:
        if o.kind == "token_create":
            limit = o.attempts if o.sent else 0
            if names[o.info["name"]] > limit or (o.state == "acked" and names[o.info["name"]] < 1):
                world.violation("token %s: %d rows for %d attempts (%s)" % (o.info["name"], names[o.info["name"]],
                                                                             o.attempts, o.state))
    # balances: API == database
    for iccid, r in api_balance.items():
        if r.status == 200 and r.body["balance"]["amount"] != db_wallet.get(iccid):
            world.violation("SIM %s: API balance %d, database wallet %r" % (iccid, r.body["balance"]["amount"],
                                                                         db_wallet.get(iccid)))

    cp = srv.cli("check", "--db", srv.db, check=False)
    if cp.returncode != 0:
        world.violation("topupd check exited %d: %s %s" % (cp.returncode, cp.stdout, cp.stderr))

    kinds = ["topup", "replay", "reuse", "bundle", "sim", "import", "plan", "suspend", "resume", "token_create",
             "token_revoke"]
    per_kind = " ".join("%s=%d" % (k, len(acked_by[k])) for k in kinds)
    rejected = collections.Counter(o.kind for o in ops if o.state == "rejected")
    line = ("crashloop: acked=%d crashes=%d violations=%d (acked: %s; rejected: %s; abandoned then resolved: "
            "%d had been applied, %d had not; ledger per unit (debits, credits, pending d/c): %s; "
            "seed=%d; %.1f s load, %.1f s total)" % (
                len(acked), world.crashes, len(world.violations), per_kind,
                " ".join("%s=%d" % kv for kv in sorted(rejected.items())), resolved["replayed"],
                resolved["executed"], counts["units"], SEED, t_load, time.monotonic() - t0))
    with capsys.disabled():
        print("\n" + line)
    assert world.crashes == KILLS, line
    assert not world.violations, line + "\n" + "\n".join(world.violations[:40])

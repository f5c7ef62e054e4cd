"""End-to-end test harness for topupd.

Every test gets its own server process and its own SQLite database in a
temporary directory. The binary is $TOPUPD (default build/topupd).

Fixtures:
  server_factory(*extra_serve_args, test_clock=False) -> Server (started)
  server        a started server with default configuration
  clock_server  a started server with --test-clock

A per-test SIGALRM guard (TOPUP_E2E_TIMEOUT, default 120 s) keeps a hung server
from hanging CI; when a test fails, the tail of each server log it used is
attached to the report.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import (DAY, assert_error, make_iccid, make_key, make_msisdn,  # noqa: E402
                      parse_time)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOPUPD = os.environ.get("TOPUPD", os.path.join(ROOT, "build", "topupd"))
TEST_TIMEOUT = int(os.environ.get("TOPUP_E2E_TIMEOUT", "120"))
READY_TIMEOUT = 10.0
HOST = "127.0.0.1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Resp(tuple):
    """(status, headers, body): headers is a dict with lower-case names, body
    the parsed JSON when the response is JSON, else the raw bytes. The raw
    bytes are always in .raw."""

    def __new__(cls, status, headers, body, raw):
        self = super().__new__(cls, (status, headers, body))
        self.raw = raw
        return self

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])

    def __repr__(self):
        return "Resp(%d, %r)" % (self[0], self.raw[:500])


class ServerError(Exception):
    pass


class Server:
    def __init__(self, workdir, extra_args=(), test_clock=False, binary=None, name="srv"):
        self.workdir = str(workdir)
        self.binary = binary or TOPUPD
        self.name = name
        self.db = os.path.join(self.workdir, "topup.db")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.extra_args = list(extra_args)
        self.test_clock = test_clock
        self.proc = None
        self.port = None
        self.tokens = {}
        self.secrets = []          # every credential handed out; must never reach the log
        self.ssl_context = None    # set for a server started with --tls-cert/--tls-key
        self.stdout_path = None    # stdout apart from the log (the demo's banner shows a token)
        self.starts = 0
        self.env = None            # the environment of its processes (None: the test's own)

    # ------------------------------------------------------------------ CLI

    def cli(self, *args, check=True, timeout=30):
        cp = subprocess.run([self.binary, *args], cwd=self.workdir, capture_output=True,
                            timeout=timeout, text=True, env=self.env)
        if check and cp.returncode != 0:
            raise ServerError("%s %s: exit %d\nstdout: %s\nstderr: %s" % (
                self.binary, " ".join(args), cp.returncode, cp.stdout, cp.stderr))
        return cp

    def create_token(self, role):
        cp = self.cli("token", "create", "--role", role, "--db", self.db)
        lines = [ln.strip() for ln in cp.stdout.splitlines() if ln.strip()]
        if len(lines) != 1:
            raise ServerError("token create printed %r (expected one line)" % (cp.stdout,))
        return lines[0]

    def setup(self):
        if not os.path.exists(self.binary):
            pytest.fail("topupd binary not found at %s (set TOPUPD)" % self.binary)
        self.cli("migrate", "--db", self.db)
        self.tokens["admin"] = self.create_token("admin")
        self.tokens["operator"] = self.create_token("operator")
        if self.tokens["admin"] == self.tokens["operator"]:
            raise ServerError("token create returned the same token twice")

    # -------------------------------------------------------------- process

    def serve_argv(self):
        argv = [self.binary, "serve", "--listen", "%s:%d" % (HOST, self.port), "--db", self.db]
        if self.test_clock:
            argv.append("--test-clock")
        return argv + self.extra_args

    def start(self, same_port=False):
        """Starts topupd on a fresh port, or on the previous one with same_port=True
        (a restart that clients keep retrying against)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not (same_port and self.port):
            self.port = free_port()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("\n===== start #%d: %s\n" % (self.starts, " ".join(self.serve_argv()))).encode())
            log.flush()
            self.log_mark = log.tell()
            out = open(self.stdout_path, "ab") if self.stdout_path else log
            with out:
                self.proc = subprocess.Popen(self.serve_argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                             stdout=out, stderr=log, start_new_session=True, env=self.env)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("topupd exited with %s before becoming ready\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if not self.bound():
                time.sleep(0.01)
                continue
            try:
                st, _, body = self.request("GET", "/healthz", token=None, timeout=2)
                if st == 200:
                    return
                last = (st, body)
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        raise ServerError("topupd not ready after %.0f s (last: %r)\n%s" % (timeout, last, self.log_tail()))

    def bound(self):
        """Whether this start's log says it listens on self.port: until then a
        /healthz answer on the port may come from another test's server that
        took the port between free_port() and our bind (two parallel cases got
        the same free port, and this one's bind is about to fail)."""
        with open(self.log_path, "rb") as log:
            log.seek(getattr(self, "log_mark", 0))
            text = log.read().decode("utf-8", "replace")
        return re.search(r"listening on https?://[^ ]*:%d\b" % self.port, text) is not None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout=10, sig=signal.SIGTERM):
        """SIGTERM (or sig) and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise ServerError("topupd did not exit within %d s of signal %d" % (timeout, sig))
        return self.proc.returncode

    def restart(self):
        if self.running():
            self.stop()
        return self.start()

    def teardown(self, grace=5.0):
        """SIGTERM (so sanitizer builds can report leaks), SIGKILL after grace seconds.
        Returns a list of problems: sanitizer reports in the log, a hang on SIGTERM."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                problems.append("topupd did not exit within %.0f s of SIGTERM" % grace)
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        try:
            with open(self.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
        except OSError:
            log = ""
        for secret in list(self.tokens.values()) + self.secrets:
            if secret and secret in log:
                problems.append("a token secret appears in the server log %s" % self.log_path)
                break
        for marker in SANITIZER_MARKERS:
            if marker in log:
                problems.append("sanitizer report in %s (%s):\n%s" % (self.log_path, marker, self.log_tail(60)))
                break
        return problems

    def log_tail(self, lines=80):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError as e:
            return "(no log: %s)" % e
        text = data.decode("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])

    # ----------------------------------------------------------------- HTTP

    def _auth(self, token):
        if token is None:
            return None
        return self.tokens.get(token, token)

    def connection(self, timeout=30):
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(HOST, self.port, timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(HOST, self.port, timeout=timeout)

    def request(self, method, path, body=None, token="operator", headers=None, lang=None,
                idem=None, timeout=30, content_type=None):
        """One request on its own connection. token: "admin", "operator", None
        (anonymous) or a literal token string. body: dict/list (sent as JSON),
        str or bytes (sent as is)."""
        hdrs = {}
        if body is not None:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            elif isinstance(body, str):
                body = body.encode()
                hdrs["Content-Type"] = "application/json"
            else:
                hdrs["Content-Type"] = "application/json"
            if content_type:
                hdrs["Content-Type"] = content_type
        tok = self._auth(token)
        if tok is not None:
            hdrs["Authorization"] = "Bearer " + tok
        if lang is not None:
            hdrs["Accept-Language"] = lang
        if idem is not None:
            hdrs["Idempotency-Key"] = idem
        hdrs.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            rh = {k.lower(): v for k, v in r.getheaders()}
            status = r.status
        finally:
            conn.close()
        parsed = raw
        if "json" in rh.get("content-type", "") and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
        return Resp(status, rh, parsed, raw)

    # -------------------------------------------------------- conveniences

    def new_sim(self, msisdn=True, imsi=None, language=None, iccid=None):
        body = {"iccid": iccid or make_iccid()}
        if msisdn:
            body["msisdn"] = make_msisdn() if msisdn is True else msisdn
        if imsi:
            body["imsi"] = imsi
        if language:
            body["language"] = language
        r = self.request("POST", "/v1/sims", body, token="admin")
        assert r.status == 201, "provisioning failed: %r" % (r,)
        return body["iccid"]

    def topup_body(self, amount, currency="CNY", channel="portal", method="alipay"):
        return {"amount": amount, "currency": currency, "channel": channel, "method": method}

    def topup(self, iccid, amount, key=None, token="operator", lang=None, **kw):
        return self.request("POST", "/v1/sims/%s/topups" % iccid, self.topup_body(amount, **kw),
                            token=token, idem=key or make_key("tu"), lang=lang)

    def topup_ok(self, iccid, amount, **kw):
        r = self.topup(iccid, amount, **kw)
        assert r.status == 201, "top-up of %d failed: %r" % (amount, r)
        return r.body

    def sim(self, iccid):
        r = self.request("GET", "/v1/sims/%s" % iccid)
        assert r.status == 200, "GET sim: %r" % (r,)
        return r.body

    def balance(self, iccid):
        b = self.sim(iccid)["balance"]
        assert b["currency"] == "CNY"
        return b["amount"]

    def txns(self, iccid, page=100):
        """All transactions, newest first, following the cursor."""
        out, after = [], None
        for _ in range(10000):
            q = "/v1/sims/%s/transactions?limit=%d" % (iccid, page)
            if after:
                q += "&starting_after=" + after
            r = self.request("GET", q)
            assert r.status == 200, "transactions: %r" % (r,)
            out.extend(r.body["data"])
            if not r.body["has_more"]:
                break
            assert r.body["data"], "has_more with an empty page"
            after = r.body["data"][-1]["id"]
        ids = [t["id"] for t in out]
        assert len(ids) == len(set(ids)), "duplicate transaction ids across pages"
        return out

    def snapshot(self, iccid):
        """(state, balance, number of transactions) — to prove nothing moved."""
        s = self.sim(iccid)
        return (s["state"], s["balance"]["amount"], len(self.txns(iccid)))

    def ledger_ok(self):
        r = self.request("GET", "/v1/ledger/check", token="admin")
        assert r.status == 200, "ledger check: %r" % (r,)
        b = r.body
        assert b.get("ok") is True and b.get("violations") == [], "ledger check failed: %r" % (b,)
        for u in b.get("units", []):
            assert u["debits"] == u["credits"], "unbalanced unit: %r" % (u,)
        return b

    def integrity_ok(self):
        """With the server stopped: SQLite's integrity_check and `topupd check`."""
        assert not self.running(), "stop the server first"
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
        assert rows == [("ok",)], "integrity_check: %r" % (rows[:5],)
        cp = self.cli("check", "--db", self.db, check=False)
        assert cp.returncode == 0, "topupd check: exit %d\n%s%s" % (cp.returncode, cp.stdout, cp.stderr)

    def advance(self, seconds):
        r = self.request("POST", "/v1/test/clock", {"advance": int(seconds)}, token="admin")
        assert r.status == 200, "clock advance: %r" % (r,)
        return parse_time(r.body["now"])

    def now(self):
        """Server time (moves the test clock by one second)."""
        return self.advance(1)

    def advance_to(self, t, margin=3600):
        """Moves the test clock to margin seconds past t."""
        now = self.now()
        if t + margin > now:
            return self.advance(t + margin - now)
        return now

    def create_plan(self, code=None, price=5000, validity_days=30, data_bytes=10 * 2 ** 30,
                    voice_seconds=600, sms=100):
        body = {"code": code or make_key("plan").replace("-", "_")[:32],
                "name": {"zh": "流量包", "en": "Data pack", "ru": "Пакет"},
                "price": price, "currency": "CNY", "validity_days": validity_days,
                "allowances": {"data_bytes": data_bytes, "voice_seconds": voice_seconds, "sms": sms},
                "zones": ["250", "460"], "payg": False}
        r = self.request("POST", "/v1/plans", body, token="admin")
        assert r.status == 201, "create plan: %r" % (r,)
        return body, r.body


# ---------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def _timeout_guard():
    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded %d s (hung server?)" % TEST_TIMEOUT)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def server_factory(request, tmp_path):
    servers = []
    request.node._topup_servers = servers

    def make(*extra_args, test_clock=False, start=True):
        d = tmp_path / ("srv%d" % len(servers))
        d.mkdir()
        srv = Server(d, extra_args, test_clock=test_clock, name="srv%d" % len(servers))
        servers.append(srv)
        srv.setup()
        if start:
            srv.start()
        return srv

    yield make
    problems = []
    for srv in servers:
        problems += srv.teardown()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture
def clock_server(server_factory):
    return server_factory(test_clock=True)


def pytest_configure(config):
    """Run the whole session on a private copy of the binary, so a rebuild in the
    middle of a run cannot swap it (or make it unexecutable) under the tests."""
    global TOPUPD
    if os.path.exists(TOPUPD):
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="topupd-e2e-bin-")
        copy = os.path.join(d, "topupd")
        # A build may be writing the binary right now: retry until the copy runs.
        for _ in range(100):
            try:
                shutil.copyfile(TOPUPD, copy)
                os.chmod(copy, 0o755)
                cp = subprocess.run([copy, "help"], capture_output=True, timeout=10)
                if cp.returncode >= 0:   # it executed (a half-written file would not)
                    break
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.2)
        config._topupd_copy_dir = d
        TOPUPD = copy


def pytest_unconfigure(config):
    d = getattr(config, "_topupd_copy_dir", None)
    if d:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in getattr(item, "_topup_servers", []):
            rep.sections.append(("topupd log tail (%s, %s)" % (srv.name, srv.log_path), srv.log_tail()))


__all__ = ["Server", "Resp", "DAY", "assert_error"]

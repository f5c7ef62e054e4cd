"""The topupd command line: every subcommand, its usage errors, and the demo."""
import json
import os
import re
import sqlite3
import subprocess
import time

from conftest import HOST, TOPUPD, Server, free_port
from e2e_util import assert_error, has_cjk, luhn_check_digit, luhn_valid


def _run(*args, cwd, timeout=15):
    return subprocess.run([TOPUPD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_migrate_is_idempotent(tmp_path):
    db = str(tmp_path / "a.db")
    assert _run("migrate", "--db", db, cwd=tmp_path).returncode == 0
    assert _run("migrate", "--db", db, cwd=tmp_path).returncode == 0
    assert os.path.exists(db)


def test_token_create_prints_distinct_tokens(tmp_path):
    db = str(tmp_path / "b.db")   # token create creates the database if needed
    toks = set()
    for role in ("admin", "operator", "operator"):
        cp = _run("token", "create", "--role", role, "--db", db, cwd=tmp_path)
        assert cp.returncode == 0, cp.stderr
        lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
        assert len(lines) == 1, cp.stdout
        toks.add(lines[0].strip())
    assert len(toks) == 3
    cp = _run("token", "create", "--role", "root", "--db", db, cwd=tmp_path)
    assert cp.returncode != 0
    assert cp.stdout.strip() == ""


def test_token_created_while_serving_works_at_once(server):
    tok = server.create_token("operator")
    iccid = server.new_sim()
    r = server.request("GET", "/v1/sims/" + iccid, token=tok)
    assert r.status == 200, r
    admin = server.create_token("admin")
    assert server.request("GET", "/v1/ledger/check", token=admin).status == 200


def test_serve_refuses_bad_configuration(tmp_path):
    db = str(tmp_path / "c.db")
    assert _run("migrate", "--db", db, cwd=tmp_path).returncode == 0
    for pair, key in (("topup_min=abc", "topup_min"), ("max_body=1", "max_body"), ("no_such_key=1", "no_such_key"),
                      ("grace_days=-1", "grace_days"),
                      ("shed_cpu_percent=0", "shed_cpu_percent"), ("shed_target_ms=-1", "shed_target_ms"),
                      ("cache_mb=1", "cache_mb"), ("log_max_mb=0", "log_max_mb"),
                      ("shed_park_ms=-1", "shed_park_ms"), ("shed_flood_ms=0", "shed_flood_ms"),
                      ("shed_refuse_ms=0", "shed_refuse_ms")):
        cp = _run("serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", db, "--set", pair, cwd=tmp_path,
                  timeout=10)
        assert cp.returncode != 0, pair
        assert key in cp.stderr, (pair, cp.stderr)


def test_serve_refuses_busy_port(server):
    cp = _run("serve", "--listen", "127.0.0.1:%d" % server.port, "--db", str(server.db) + ".other",
              cwd=server.workdir, timeout=10)
    assert cp.returncode != 0
    assert server.running()


def test_help_lists_every_command(tmp_path):
    cp = _run("help", cwd=tmp_path)
    assert cp.returncode == 0
    for name in ("serve", "migrate", "token", "check", "routes", "demo", "help"):
        assert "topupd %s" % name in cp.stdout, name


def test_help_flags_print_usage_and_exit_0(tmp_path):
    """--help and -h, before or after a command, print its usage (the whole
    list, or the command's line) on stdout and exit 0 without running it."""
    everything = "usage: topupd COMMAND"
    for args, says in ((("--help",), everything), (("-h",), everything), (("help",), everything),
                       (("help", "--help"), everything),
                       (("serve", "--help"), "usage: topupd serve --db PATH"),
                       (("serve", "--db", "x.db", "-h"), "usage: topupd serve --db PATH"),
                       (("help", "check"), "usage: topupd check --db PATH"),
                       (("token", "--help"), "usage: topupd token create|list|revoke")):
        cp = _run(*args, cwd=tmp_path)
        assert cp.returncode == 0 and says in cp.stdout, (args, cp.returncode, cp.stdout, cp.stderr)
    assert not os.path.exists(tmp_path / "x.db"), "serve --help served"


def test_serve_refuses_a_stray_argument(tmp_path):
    """`serve --db x.db 127.0.0.1:PORT` (no --listen) listened on 8080, the
    address ignored: a usage error now, before anything is opened."""
    db = tmp_path / "stray.db"
    port = free_port()
    cp = _run("serve", "--db", str(db), "%s:%d" % (HOST, port), cwd=tmp_path, timeout=10)
    assert cp.returncode == 2 and "unexpected argument '%s:%d'" % (HOST, port) in cp.stderr, cp.stderr
    assert not db.exists()


def test_usage_errors_exit_2_and_say_why(tmp_path):
    db = str(tmp_path / "u.db")
    assert _run("migrate", "--db", db, cwd=tmp_path).returncode == 0
    for args, says in (((), "usage: topupd COMMAND"),
                       (("frob",), "'frob' is not a command"),
                       (("serve",), "--db PATH is required"),
                       (("migrate", "--db"), "--db needs a value"),
                       (("check", "--db", db, "--bogus"), "unknown argument '--bogus'"),
                       (("check", "--db", db, "--set"), "--set needs a value"),
                       (("check", "--db", db, "--config", str(tmp_path / "none.conf")), "configuration:"),
                       (("check", "--db", db, "--config", str(tmp_path)), "not a regular file"),
                       (("token",), "usage: topupd token"),
                       (("token", "frob", "--db", db), "usage: topupd token"),
                       (("token", "revoke", "--db", db), "usage: topupd token"),
                       (("token", "list"), "--db PATH is required"),
                       (("token", "create", "--db", db, "--role", "root"), "--role must be admin, operator or monitor"),
                       (("token", "create", "--db", db, "--name", "till\n7"), "--name must be text"),
                       (("token", "create", "--db", db, "--name", "x" * 65), "--name must be text"),
                       (("check", "--db", db, "extra"), "unexpected argument 'extra'"),
                       (("migrate", "--db", db, "extra"), "unexpected argument 'extra'"),
                       (("routes", "extra"), "unexpected argument 'extra'"),
                       (("token", "list", "extra", "--db", db), "usage: topupd token"),
                       (("token", "create", "extra", "--db", db), "usage: topupd token"),
                       (("token", "revoke", "1", "2", "--db", db), "unexpected argument '2'"),
                       (("help", "frob"), "'frob' is not a command")):
        cp = _run(*args, cwd=tmp_path)
        assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
        assert says in cp.stdout + cp.stderr, (args, cp.stdout, cp.stderr)
    cp = _run("token", "list", "--db", db, cwd=tmp_path)
    assert cp.returncode == 0 and cp.stdout == "", "a refused command created a token: %r" % cp.stdout


def test_commands_that_read_a_database_never_create_one(tmp_path):
    typo = tmp_path / "typo.db"
    for args in (("check",), ("token", "list"), ("token", "revoke", "1")):
        cp = _run(*args, "--db", str(typo), cwd=tmp_path)
        assert cp.returncode == 1, (args, cp.returncode, cp.stderr)
        assert "no database at '%s'" % typo in cp.stderr, (args, cp.stderr)
        assert not typo.exists(), args


def test_token_list_shows_prefixes_roles_and_revocation(tmp_path):
    db = str(tmp_path / "t.db")
    secrets = []
    for args in (("--role", "admin"), ("--role", "operator", "--name", "kiosk 7")):
        cp = _run("token", "create", *args, "--db", db, cwd=tmp_path)
        assert cp.returncode == 0, cp.stderr
        secrets.append(cp.stdout.strip())

    def listed():
        cp = _run("token", "list", "--db", db, cwd=tmp_path)
        assert cp.returncode == 0, cp.stderr
        for secret in secrets:
            assert secret not in cp.stdout, "token list printed a secret"
        return [ln.split("\t") for ln in cp.stdout.splitlines()]

    rows = listed()
    assert [(r[2], r[3], r[4]) for r in rows] == [("admin", "active", ""), ("operator", "active", "kiosk 7")]
    for row, secret in zip(rows, secrets):
        prefix = row[1].rstrip("…")
        assert len(prefix) >= 8 and secret.startswith(prefix) and len(prefix) < len(secret), row

    first = rows[0][0]
    for _ in range(2):   # revoking a revoked token changes nothing and succeeds
        cp = _run("token", "revoke", first, "--db", db, cwd=tmp_path)
        assert cp.returncode == 0, cp.stderr
        assert [r[3] for r in listed()] == ["revoked", "active"]

    cp = _run("token", "revoke", "99", "--db", db, cwd=tmp_path)
    assert cp.returncode == 1 and "there is no token 99" in cp.stderr, cp.stderr
    for bad in ("abc", "0", "2x", "99999999999999999999999"):
        cp = _run("token", "revoke", bad, "--db", db, cwd=tmp_path)
        assert cp.returncode == 2 and "'%s' is not a token id" % bad in cp.stderr, (bad, cp.stderr)
    assert [r[3] for r in listed()] == ["revoked", "active"]


class DemoServer(Server):
    """`topupd demo` as scripts/demo runs it: its default database, demo/topup.db,
    below the working directory, and a banner on stdout, which shows the admin
    token and so is kept out of the log."""

    def __init__(self, workdir):
        super().__init__(workdir, name="demo")
        self.db = os.path.join(self.workdir, "demo", "topup.db")
        self.stdout_path = os.path.join(self.workdir, "banner.txt")

    def serve_argv(self):
        return [self.binary, "demo", "--listen", "%s:%d" % (HOST, self.port)]

    def banner(self):
        """(admin token, ICCID, top-up body) from this start's banner."""
        for _ in range(500):   # printed just after the log's "listening" line: one a start
            with open(self.stdout_path, encoding="utf-8") as f:
                banners = f.read().split("topupd demo is running")
            if len(banners) == self.starts + 1 and "Ctrl-C" in banners[-1]:
                break
            time.sleep(0.01)
        text = self.text = banners[-1]
        token = re.search(r"^admin token: (\S+)$", text, re.M).group(1)
        iccid = re.search(r"/v1/sims/(\d+) ", text).group(1)
        body = json.loads(re.search(r"-d '(\{.*\})'", text).group(1))
        assert text.startswith(" on http://%s:%d (database demo/topup.db)" % (HOST, self.port)), text
        return token, iccid, body


def test_demo_seeds_serves_and_starts_again_on_its_data(tmp_path):
    (tmp_path / "demo").mkdir()
    srv = DemoServer(tmp_path)
    try:
        srv.start()
        token, iccid, body = srv.banner()
        assert luhn_valid(iccid)
        for i, lang in enumerate(("zh", "en", "ru", "zh", "en"), start=1):   # five SIMs, in every language
            other = "897010000000000%03d" % i
            other += luhn_check_digit(other)
            r = srv.request("GET", "/v1/sims/" + other, token=token)
            assert r.status == 200 and r.body["language"] == lang, r
        assert iccid == "897010000000000001" + luhn_check_digit("897010000000000001")

        r = srv.request("POST", "/v1/sims/%s/topups" % iccid, body, token=token, idem="demo-1")
        assert r.status == 201, r
        number = re.search(r"/v1/sims/(\+\d+)/transactions ", srv.text).group(1)   # the banner's by-number line
        r = srv.request("GET", "/v1/sims/%s/transactions" % number, token=token)
        assert r.status == 200 and [t["kind"] for t in r.body["data"]] == ["topup"], r
        r = srv.request("GET", "/v1/plans", token=None, lang="zh")
        assert r.status == 200, r
        assert [p["code"] for p in r.body["data"]] == ["data5", "travel10", "talk100"]
        assert all(has_cjk(p["name"]["zh"]) for p in r.body["data"])
        assert srv.stop() == 0

        srv.start()   # scripts/demo again: the same data, a new token in place of the last, nothing seeded twice
        token2, iccid2, _ = srv.banner()
        assert token2 != token and iccid2 == iccid
        assert_error(srv.request("GET", "/v1/sims/" + iccid, token=token), 401, "unauthenticated")
        r = srv.request("POST", "/v1/sims/%s/topups" % iccid, body, token=token2, idem="demo-1")
        assert r.status == 201 and r.body["balance"]["amount"] == 2 * body["amount"], r
        r = srv.request("POST", "/v1/sims/%s/topups" % iccid, body, token=token2, idem="demo-1")
        assert r.status == 201 and r.headers.get("idempotent-replayed") == "true", r
        assert len(srv.request("GET", "/v1/plans", token=None).body["data"]) == 3
        assert srv.request("GET", "/v1/ledger/check", token=token2).status == 200
    finally:
        problems = srv.teardown()
    assert not problems, problems


def test_check_and_token_list_read_beside_a_writer(tmp_path):
    """`check` and `token list` read a snapshot: they neither wait for a writer
    (a running server's) nor hold one up. A write transaction for the check
    stalled a server's writes for as long as it ran: 20 s at 10M SIMs then."""
    db = str(tmp_path / "w.db")
    assert _run("token", "create", "--db", db, cwd=tmp_path).returncode == 0
    con = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        con.execute("BEGIN IMMEDIATE")   # the write lock, as the server's writer holds it
        for args, out in ((("check",), "ledger ok"), (("token", "list"), "\tadmin\tactive\t")):
            cp = _run(*args, "--db", db, cwd=tmp_path)   # a writer would fail after its busy timeout
            assert cp.returncode == 0 and out in cp.stdout, (args, cp.stdout, cp.stderr)
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_a_database_keeps_its_currency(tmp_path):
    """Created in RUB, the database stays in RUB: every command without a
    currency of its own takes the database's, and one that names another is
    refused (a deployment pointed at the wrong database, or the wrong file)."""
    srv = Server(tmp_path, name="rub")
    try:
        srv.cli("migrate", "--db", srv.db, "--set", "currency=RUB")
        srv.setup()   # migrate and token create, as the README has them: no currency named
        srv.start()
        iccid = srv.new_sim()
        r = srv.topup(iccid, 5000, currency="RUB")
        assert r.status == 201 and r.body["balance"] == {"amount": 5000, "currency": "RUB"}, r
        assert_error(srv.topup(iccid, 5000, currency="CNY"), 400, "currency_mismatch", "currency")
        assert srv.cli("check", "--db", srv.db).stdout.startswith("RUB ")
        assert srv.stop() == 0
    finally:
        problems = srv.teardown()
    assert not problems, problems
    for args in (("serve", "--listen", "%s:%d" % (HOST, free_port())), ("check",), ("token", "list")):
        cp = _run(*args, "--db", srv.db, "--set", "currency=CNY", cwd=tmp_path)
        assert cp.returncode == 1 and "keeps RUB; the configuration says CNY" in cp.stderr, (args, cp.stderr)


def test_every_set_flag_wins_over_every_config_file(tmp_path):
    """conf.h: defaults, then the files, then the --set flags, whatever the
    order on the command line (a --config after a --set overrode it)."""
    conf = tmp_path / "topup.conf"
    conf.write_text("currency = KZT\n")
    for n, args in enumerate((("--set", "currency=RUB", "--config", str(conf)),
                              ("--config", str(conf), "--set", "currency=RUB"),
                              ("--set", "currency=USD", "--config", str(conf), "--set", "currency=RUB",
                               "--config", str(conf)))):
        db = str(tmp_path / ("s%d.db" % n))
        cp = _run("migrate", "--db", db, *args, cwd=tmp_path)
        assert cp.returncode == 0, (args, cp.stderr)
        con = sqlite3.connect(db)
        try:
            kept = con.execute("SELECT value FROM meta WHERE key = 'currency'").fetchone()[0]
        finally:
            con.close()
        assert kept == "RUB", (args, kept)


def _file_state(path):
    """The bytes of a database and of whatever SQLite keeps beside it."""
    return {p: open(p, "rb").read() for p in (path, path + "-wal", path + "-shm") if os.path.exists(p)}


def test_check_and_token_list_refuse_what_is_not_this_schema_and_write_nothing(tmp_path):
    """`check` and `token list` read: a file that is not a topup database (an
    empty one from touch, another program's text) was migrated into one and
    "checked" (ledger ok); one at an older schema was migrated behind the
    user's back. Each is refused, exit 1, and left byte for byte as it was."""
    from test_migration import MIGRATIONS
    empty, text, old = tmp_path / "empty.db", tmp_path / "notes.db", str(tmp_path / "old.db")
    empty.touch()
    text.write_text("not a database\n")
    con = sqlite3.connect(old, isolation_level=None)
    with open(os.path.join(MIGRATIONS, "001_core.sql"), encoding="utf-8") as f:
        con.executescript(f.read())
    con.executescript("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                      "applied_at INTEGER NOT NULL); INSERT INTO schema_migrations VALUES (1, '001_core.sql', 0);"
                      "INSERT INTO meta(key, value) VALUES ('currency', 'CNY')")
    con.close()
    for path, says in ((str(empty), "is not a topup database"), (str(text), "is not a topup database"),
                       (old, "run 'topupd migrate --db %s' first" % old)):
        before = _file_state(path)
        for args in (("check",), ("token", "list")):
            cp = _run(*args, "--db", path, cwd=tmp_path)
            assert cp.returncode == 1, (path, args, cp.returncode, cp.stdout, cp.stderr)
            assert says in cp.stderr and "ledger ok" not in cp.stdout, (path, args, cp.stdout, cp.stderr)
            assert _file_state(path) == before, (path, args, "changed")
    assert _run("migrate", "--db", old, cwd=tmp_path).returncode == 0
    cp = _run("check", "--db", old, cwd=tmp_path)
    assert cp.returncode == 0 and "ledger ok" in cp.stdout, cp.stderr


def test_writers_refuse_another_programs_database_and_a_newer_schema(tmp_path):
    """migrate, serve, token create and token revoke write: pointed at another
    program's SQLite database they added topup's tables to it, and at one a
    newer topupd migrated they ran on a schema they do not know. Each is
    refused, exit 1, and the file left as it was."""
    other, newer = str(tmp_path / "other.db"), str(tmp_path / "newer.db")
    con = sqlite3.connect(other, isolation_level=None)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.close()
    assert _run("migrate", "--db", newer, cwd=tmp_path).returncode == 0
    con = sqlite3.connect(newer, isolation_level=None)
    con.execute("INSERT INTO schema_migrations VALUES (999, '999_future.sql', 0)")
    con.close()
    for path, says in ((other, "is not a topup database"), (newer, "newer than this topupd's")):
        before = _file_state(path)
        for args in (("migrate",), ("token", "create"), ("token", "revoke", "1"),
                     ("serve", "--listen", "127.0.0.1:%d" % free_port())):
            cp = _run(*args, "--db", path, cwd=tmp_path)
            assert cp.returncode == 1 and says in cp.stderr, (path, args, cp.returncode, cp.stderr)
            assert _file_state(path) == before, (path, args, "changed")


def test_token_revoke_refuses_an_empty_file(tmp_path):
    """An empty file is no database to revoke a token in: it used to be
    migrated into one, and then 'no token 1'."""
    empty = tmp_path / "empty.db"
    empty.touch()
    cp = _run("token", "revoke", "1", "--db", str(empty), cwd=tmp_path)
    assert cp.returncode == 1 and "is not a topup database (an empty file)" in cp.stderr, cp.stderr
    assert empty.stat().st_size == 0


def test_check_and_token_list_need_only_read_access(tmp_path):
    """A user who may read the database and not write it (an auditor, a
    monitoring job) can check it and list its tokens, and nothing is written.
    SQLite needs the WAL's index (-shm) to be there, as it is while the server
    runs, or to be able to make it: in a directory the user may not write,
    with no server running, they are refused, saying so (it was "attempt to
    write a readonly database")."""
    import shutil
    import tempfile
    binary, work, as_reader = TOPUPD, str(tmp_path), []
    if os.geteuid() == 0:   # root writes whatever the mode says: read as nobody, where nobody can reach
        work = tempfile.mkdtemp(prefix="topupd-e2e-ro-")
        binary = os.path.join(work, "topupd")
        shutil.copyfile(TOPUPD, binary)
        os.chmod(binary, 0o755)
        as_reader = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    db = os.path.join(work, "r.db")

    def read(*args):
        return subprocess.run([*as_reader, binary, *args, "--db", db], cwd=work, capture_output=True, text=True,
                              timeout=15)
    try:
        assert _run("token", "create", "--db", db, "--name", "ops", cwd=work).returncode == 0
        os.chmod(db, 0o444)
        os.chmod(work, 0o777)
        for args, out in ((("check",), "ledger ok"), (("token", "list"), "\tadmin\tactive\tops")):
            cp = read(*args)
            assert cp.returncode == 0 and out in cp.stdout, (args, cp.stdout, cp.stderr)
        for extra in (db + "-wal", db + "-shm"):   # a reader leaves SQLite's files behind
            if os.path.exists(extra):
                os.unlink(extra)
        os.chmod(work, 0o555)
        for args in (("check",), ("token", "list")):
            cp = read(*args)
            assert cp.returncode == 1 and "while %s-shm is there" % db in cp.stderr, (args, cp.stdout, cp.stderr)
    finally:
        os.chmod(work, 0o755)
        os.chmod(db, 0o644)
        if work != str(tmp_path):
            shutil.rmtree(work)


def test_serve_refuses_limits_that_contradict_each_other(tmp_path):
    """Each key in its bounds, together impossible: a server that refused
    every top-up started. Refused with both keys named, exit 2, from a file as
    from flags."""
    db = str(tmp_path / "l.db")
    assert _run("migrate", "--db", db, cwd=tmp_path).returncode == 0
    conf = tmp_path / "limits.conf"
    conf.write_text("topup_min = 300000\n")
    for args, keys in ((("--set", "topup_min=5000", "--set", "topup_max=100"), ("topup_min", "topup_max")),
                       (("--set", "daily_cap=50"), ("topup_min", "daily_cap")),
                       (("--config", str(conf)), ("topup_min", "topup_max")),
                       (("--set", "shed_park_ms=2000", "--set", "shed_refuse_ms=1000"),
                        ("shed_park_ms", "shed_refuse_ms"))):
        cp = _run("serve", "--listen", "127.0.0.1:%d" % free_port(), "--db", db, *args, cwd=tmp_path, timeout=10)
        assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
        assert all(k in cp.stderr for k in keys), (args, cp.stderr)


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _readme():
    return open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def _number(text):
    """README's way with numbers: 65536, -720, 2^40, 10^7, 64 KiB."""
    m = re.fullmatch(r"`?(-?\d+)(?:\^(\d+))?(?: (KiB|MiB))?`?", text.strip())
    if not m:
        return text.strip().strip("`")
    n = int(m.group(1)) ** int(m.group(2)) if m.group(2) else int(m.group(1))
    return n * {None: 1, "KiB": 1 << 10, "MiB": 1 << 20}[m.group(3)]


def _readme_configuration():
    """{key: (default, (lo, hi) or None)} from README's table of keys."""
    text = _readme()
    table = text[text.index("| key | default | range | meaning |"):]
    table = table[:table.index("\n\n")]
    out = {}
    for keys, defaults, ranges in re.findall(r"^\| (`[^|]*`) \| ([^|]*) \| ([^|]*) \|", table, re.M):
        keys = re.findall(r"`(\w+)`", keys)
        defaults = defaults.split(", ")
        ranges = [re.fullmatch(r"(-?[\d^]+)–(-?[\d^]+)", r.strip()) for r in ranges.split(", ")]
        ranges = [(_number(r.group(1)), _number(r.group(2))) if r else None for r in ranges]
        assert len(defaults) == len(keys), keys
        for i, k in enumerate(keys):
            out[k] = (_number(defaults[i]), ranges[i] if i < len(ranges) else ranges[0])
    return out


def test_readme_documents_every_configuration_key_its_default_and_range(tmp_path):
    """Every key conf.c knows is in README's table, no other, with conf_defaults'
    value and the bounds topupd itself gives when a value is not a number."""
    src = open(os.path.join(ROOT, "src", "util", "conf.c"), encoding="utf-8").read()
    keys = re.findall(r'^\s*(?:I\((\w+),|\{"(\w+)", K_)', src, re.M)
    keys = {a or b for a, b in keys}
    defaults = {k: v.strip() for k, v in re.findall(r"^\s*c->(\w+) = ([^;]+);", src, re.M)}
    defaults["currency"] = re.search(r'strcpy\(c->currency, "(\w+)"\)', src).group(1)
    documented = _readme_configuration()
    assert set(documented) == keys, ("undocumented: %s; not keys: %s" % (
        sorted(keys - set(documented)), sorted(set(documented) - keys)))
    for key, (default, bounds) in documented.items():
        want = defaults[key]
        want = want[len("VALIDITY_"):].lower() if want.startswith("VALIDITY_") else \
            want if key == "currency" else eval(want.split("/*")[0])   # "64 * 1024"
        assert default == want, "%s: README says %r, conf_defaults %r" % (key, default, want)
        cp = _run("check", "--db", "none.db", "--set", key + "=x", cwd=tmp_path)
        said = re.search(r"integer in \[(-?\d+), (-?\d+)\]", cp.stderr)
        assert cp.returncode == 2 and (said or bounds is None), (key, cp.stderr)
        if said:
            assert bounds == (int(said.group(1)), int(said.group(2))), \
                "%s: README says %r, topupd %s" % (key, bounds, said.group(0))


def test_every_flag_is_in_help_and_readme(tmp_path):
    """Each flag main.c parses is in `topupd help` and in README."""
    src = open(os.path.join(ROOT, "src", "main.c"), encoding="utf-8").read()
    flags = set(re.findall(r'strcmp\(a, "(--[a-z-]+)"\)', src)) - {"--help"}
    assert len(flags) >= 10, flags
    usage, readme = _run("help", cwd=tmp_path).stdout, _readme()
    for flag in sorted(flags):
        assert flag in usage, "%s is not in topupd help" % flag
        assert flag in readme, "%s is not in README" % flag
    for name in re.findall(r'^\s*\{"(\w+)",\s+cmd_', src, re.M):
        assert "topupd %s" % name in readme, "topupd %s is not in README" % name

"""The topupd command line: migrate, token create, serve argument checks."""
import os
import subprocess

from conftest import TOPUPD, free_port


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

"""`topupd backup`: a consistent, checked copy of a database while the
server runs on it, which a server then serves as it was (README, "Backup
and restore")."""
import os
import pathlib
import shutil
import sqlite3
import subprocess
import tempfile
import threading

import pytest

from conftest import TOPUPD
from e2e_util import make_key


def _backup(*args, cwd):
    return subprocess.run([TOPUPD, "backup", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_backup_under_load_is_consistent_and_serves(server_factory, tmp_path):
    """Top-ups stream from four clients while the backup runs. The copy holds
    every top-up acknowledged before the backup began and none half-applied
    (its ledger balances, every SIM's balance is its top-ups' sum); a server
    started on it with the original's receipt key serves the same signed
    receipts and the same answers to retried keys, and takes new top-ups."""
    srv = server_factory()
    sims = [srv.new_sim() for _ in range(8)]
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            key = make_key("bk%d-%d" % (n, i))
            iccid = sims[(n + i) % len(sims)]
            r = srv.topup(iccid, 100 + n, key=key)
            assert r.status == 201, r
            with lock:
                acked.append((key, iccid, 100 + n, r))
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        while len(acked) < 200:
            threading.Event().wait(0.05)
        with lock:
            before = list(acked)
        to = str(tmp_path / "copies" / "b.db")
        os.mkdir(os.path.dirname(to))
        cp = _backup("--db", srv.db, "--to", to, cwd=tmp_path)
        with lock:
            after = len(acked)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert cp.returncode == 0, cp.stderr
    assert "quick_check ok; ledger ok (CNY debits = credits = " in cp.stdout, cp.stdout
    assert "its receipts are signed with key " in cp.stdout and srv.db + ".ed25519" in cp.stdout, cp.stdout
    assert not os.path.exists(to + ".partial")
    assert os.stat(to).st_mode & 0o777 == os.stat(srv.db).st_mode & 0o777

    con = sqlite3.connect("file:%s?mode=ro" % to, uri=True)
    try:
        n = con.execute("SELECT COUNT(*) FROM topups").fetchone()[0]
    finally:
        con.close()
    assert len(before) <= n <= after, (len(before), n, after)

    restored = server_factory("--key", srv.db + ".ed25519", start=False)
    for f in os.listdir(restored.workdir):
        if f.startswith("topup.db"):
            os.unlink(os.path.join(restored.workdir, f))
    shutil.copy(to, restored.db)
    restored.tokens = dict(srv.tokens)
    restored.start()
    restored.ledger_ok()
    want = {}
    for key, iccid, amount, r in before:
        again = restored.topup(iccid, amount, key=key)
        assert again.raw == r.raw, (again, r)
        number = r.body["receipt"]["number"]
        assert restored.request("GET", "/v1/receipts/" + number).raw == srv.request("GET", "/v1/receipts/" + number).raw
    for iccid in sims:
        got = restored.balance(iccid)
        con = sqlite3.connect("file:%s?mode=ro" % to, uri=True)
        try:
            want[iccid] = con.execute("SELECT COALESCE(SUM(t.amount), 0) FROM topups t JOIN sims s ON s.id = t.sim_id "
                                      "WHERE s.iccid = ?", (iccid,)).fetchone()[0]
        finally:
            con.close()
        assert got == want[iccid], (iccid, got, want[iccid])
    assert restored.topup(sims[0], 500, key=make_key("after-restore")).status == 201
    restored.ledger_ok()


def test_backup_refuses_and_leaves_nothing(server_factory, tmp_path):
    """Never over a file that is there; --to is required; a path with no
    database, or another program's, is refused; a .partial left by an
    interrupted run is replaced; a copy whose ledger does not balance is
    refused and not kept. Exit 2 for usage, 1 for a refusal."""
    srv = server_factory()
    srv.topup_ok(srv.new_sim(), 1000)
    there = tmp_path / "there.db"
    there.write_bytes(b"keep me")
    cp = _backup("--db", srv.db, "--to", str(there), cwd=tmp_path)
    assert cp.returncode == 1 and "exists; a backup never replaces a file" in cp.stderr, cp.stderr
    assert there.read_bytes() == b"keep me"
    cp = _backup("--db", srv.db, cwd=tmp_path)
    assert cp.returncode == 2 and "--to FILE is required" in cp.stderr, cp.stderr
    cp = _backup("--db", str(tmp_path / "nothing.db"), "--to", str(tmp_path / "x.db"), cwd=tmp_path)
    assert cp.returncode == 1 and "no database at" in cp.stderr, cp.stderr
    other = tmp_path / "other.db"
    con = sqlite3.connect(str(other))
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    cp = _backup("--db", str(other), "--to", str(tmp_path / "y.db"), cwd=tmp_path)
    assert cp.returncode == 1 and not os.path.exists(tmp_path / "y.db"), cp.stderr

    to = tmp_path / "z.db"
    (tmp_path / "z.db.partial").write_bytes(b"half a copy")
    cp = _backup("--db", srv.db, "--to", str(to), cwd=tmp_path)
    assert cp.returncode == 0 and to.exists() and not (tmp_path / "z.db.partial").exists(), cp.stderr

    # an unbalanced ledger (a wallet credited with no transfer): the copy is checked, and refused
    srv.stop()
    con = sqlite3.connect(srv.db)
    con.execute("UPDATE sims SET w_credits_posted = w_credits_posted + 1")
    con.commit()
    con.close()
    bad = tmp_path / "bad.db"
    cp = _backup("--db", srv.db, "--to", str(bad), cwd=tmp_path)
    assert cp.returncode == 1 and "the copy's ledger does not balance" in cp.stderr, cp.stderr
    assert "no backup was made" in cp.stderr
    assert not bad.exists() and not (tmp_path / "bad.db.partial").exists()


def test_backup_of_an_older_schema(server_factory, tmp_path):
    """A backup before an upgrade: a database at an earlier schema is copied
    and checked whole (quick_check); the ledger check waits for the upgrade,
    and the output says so."""
    srv = server_factory(start=False)
    con = sqlite3.connect(srv.db)
    latest = con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    con.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
    con.commit()
    con.close()
    cp = _backup("--db", srv.db, "--to", str(tmp_path / "old.db"), cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "schema %d; quick_check ok; ledger not checked" % (latest - 1) in cp.stdout, cp.stdout


def _padded_db(tmp_path, mb):
    """A topup database padded with mb MiB (a table of its own), so that a
    copy takes long enough to be watched; mode 0600."""
    db = str(tmp_path / "pad.db")
    subprocess.run([TOPUPD, "migrate", "--db", db], check=True, capture_output=True, timeout=60)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE pad (x BLOB)")
    con.executemany("INSERT INTO pad VALUES (randomblob(1048576))", [()] * mb)
    con.commit()
    con.close()
    os.chmod(db, 0o600)
    return db


def test_backup_copy_is_never_more_readable_than_the_database(tmp_path):
    """The copy under way (FILE.partial, and SQLite's journal beside it) is
    created with the database's mode: it was created 0644 and only chmod-ed
    once whole, so any local user could open a copy of a 0600 database while
    it was written and keep reading it."""
    db = _padded_db(tmp_path, 96)
    to = str(tmp_path / "b.db")
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            for f in (to + ".partial", to + ".partial-journal"):
                try:
                    seen.add((f, os.stat(f).st_mode & 0o777))
                except FileNotFoundError:
                    pass

    t = threading.Thread(target=watch)
    t.start()
    old = os.umask(0o022)
    try:
        cp = _backup("--db", db, "--to", to, cwd=tmp_path)
    finally:
        os.umask(old)
        stop.set()
        t.join()
    assert cp.returncode == 0, cp.stderr
    assert seen, "the copy was never seen under way"
    assert all(mode == 0o600 for _, mode in seen), seen
    assert os.stat(to).st_mode & 0o777 == 0o600


def test_backup_never_replaces_what_appears_at_to(tmp_path):
    """--to is refused when anything is there, a dangling symbolic link too;
    and a file that appears at --to while the copy is made is kept, the copy
    refused (rename() replaced it)."""
    db = _padded_db(tmp_path, 96)
    link = tmp_path / "link.db"
    os.symlink(str(tmp_path / "nowhere"), str(link))
    cp = _backup("--db", db, "--to", str(link), cwd=tmp_path)
    assert cp.returncode == 1 and "exists; a backup never replaces a file" in cp.stderr, cp.stderr
    assert os.readlink(str(link)) == str(tmp_path / "nowhere") and not (tmp_path / "nowhere").exists()

    to = str(tmp_path / "b.db")
    stop = threading.Event()

    def plant():
        while not stop.is_set():
            if os.path.exists(to + ".partial"):
                with open(to, "xb") as f:
                    f.write(b"keep me")
                return

    t = threading.Thread(target=plant)
    t.start()
    try:
        cp = _backup("--db", db, "--to", to, cwd=tmp_path)
    finally:
        stop.set()
        t.join()
    assert open(to, "rb").read() == b"keep me"
    assert cp.returncode == 1 and "no backup was made" in cp.stderr, cp.stderr
    assert not os.path.exists(to + ".partial")


def test_backup_never_lands_on_the_database_or_its_files(tmp_path):
    """--to may not name the database or a file SQLite or topupd keeps beside
    it, nor make FILE.partial one: `--db live.partial --to live` deleted the
    database (the leftover .partial it removes first was the database), and
    with the server stopped `--to t.db-wal` (or -shm) put the copy where the
    next open of the database takes it for its log and discards it."""
    db = str(tmp_path / "live.partial")
    subprocess.run([TOPUPD, "migrate", "--db", db], check=True, capture_output=True, timeout=60)
    cp = _backup("--db", db, "--to", str(tmp_path / "live"), cwd=tmp_path)
    assert cp.returncode == 1 and "is the database or one of its files" in cp.stderr, cp.stderr
    assert os.path.exists(db) and not os.path.exists(tmp_path / "live")

    sub = tmp_path / "d"
    os.mkdir(sub)
    db = str(sub / "t.db")
    subprocess.run([TOPUPD, "migrate", "--db", db], check=True, capture_output=True, timeout=60)
    for to in ("d/t.db-wal", "d/t.db-shm", "d/t.db-journal", "d/../d/t.db.ed25519", "d/t.db.token-epoch"):
        cp = _backup("--db", db, "--to", to, cwd=tmp_path)
        assert cp.returncode == 1 and "is the database or one of its files" in cp.stderr, (to, cp.stderr)
        assert not os.path.exists(tmp_path / to) and not os.path.exists(str(tmp_path / to) + ".partial"), to
    cp = _backup("--db", db, "--to", "d/t.db.copy", cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr


def test_backup_of_a_read_only_database_file():
    """A database file of mode 0444, backed up by its owner (not root: root
    writes any file): the copy is made, with mode 0444. Creating the copy
    with the database's mode before writing it made it unwritable to the
    backup itself."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is not installed")
    work = pathlib.Path(tempfile.mkdtemp(prefix="topup-ro-"))   # pytest's own is root's alone
    os.chmod(str(work), 0o755)
    try:
        _read_only_backup(work)
    finally:
        shutil.rmtree(str(work))


def _read_only_backup(work):
    db = str(work / "t.db")
    subprocess.run([TOPUPD, "migrate", "--db", db], check=True, capture_output=True, timeout=60)
    binary = str(work / "topupd")
    shutil.copy(TOPUPD, binary)
    os.chmod(db, 0o444)
    as_owner = []
    if os.geteuid() == 0:
        for f in os.listdir(str(work)) + [""]:
            os.chown(os.path.join(str(work), f), 65534, 65534)
        as_owner = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    cp = subprocess.run(as_owner + [binary, "backup", "--db", db, "--to", str(work / "b.db")], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert os.stat(str(work / "b.db")).st_mode & 0o777 == 0o444

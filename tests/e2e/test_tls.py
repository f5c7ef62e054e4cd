"""HTTPS: topupd serves TLS with --tls-cert/--tls-key (GnuTLS, src/http/net.c)."""
import http.client
import os
import shutil
import ssl
import subprocess

import pytest

from conftest import HOST, TOPUPD, free_port


@pytest.fixture
def tls_files(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_https_serves_and_plain_http_is_refused(server_factory, tls_files, monkeypatch):
    cert, key = tls_files
    srv = server_factory("--tls-cert", cert, "--tls-key", key, start=False)
    # The harness waits on plain HTTP; wait on HTTPS instead.
    monkeypatch.setattr(srv, "wait_ready", lambda timeout=10: None)
    srv.start()
    ctx = ssl.create_default_context(cafile=cert)
    body = None
    for _ in range(100):
        try:
            conn = http.client.HTTPSConnection(HOST, srv.port, context=ctx, timeout=5)
            conn.request("GET", "/v1/ledger/check", headers={"Authorization": "Bearer " + srv.tokens["admin"]})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body
            break
        except (ConnectionRefusedError, ssl.SSLError, OSError):
            import time
            time.sleep(0.1)
    assert body and b'"ok":true' in body
    # The same port does not speak plain HTTP.
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=5)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()


def test_tls_needs_both_files(server_factory, tls_files):
    cert, _key = tls_files
    srv = server_factory(start=False)
    cp = subprocess.run([srv.binary, "serve", "--listen", "127.0.0.1:1", "--db", srv.db, "--tls-cert", cert],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode != 0 and "tls" in cp.stderr.lower()
    assert os.path.exists(srv.db)


def test_unusable_tls_files_say_what_is_wrong(tmp_path, tls_files):
    """A missing file names itself and why, before any database is made; a
    key that is not the certificate's, or no PEM at all, says what GnuTLS
    found wrong. Both used to say only "cannot read / not usable"."""
    cert, key = tls_files
    other = str(tmp_path / "other-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", other],
                   check=True, capture_output=True, timeout=60)
    junk = str(tmp_path / "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    missing = str(tmp_path / "no-such.pem")

    port = free_port()

    def serve(c, k, db):
        return subprocess.run([TOPUPD, "serve", "--listen", "127.0.0.1:%d" % port, "--db", str(tmp_path / db),
                               "--tls-cert", c, "--tls-key", k], capture_output=True, text=True, timeout=30)

    cp = serve(missing, key, "a.db")
    assert cp.returncode == 1 and "cannot read the TLS certificate %s: No such file" % missing in cp.stderr, cp.stderr
    assert not os.path.exists(str(tmp_path / "a.db"))
    cp = serve(cert, missing, "b.db")
    assert cp.returncode == 1 and "TLS key %s" % missing in cp.stderr, cp.stderr
    for c, k in ((cert, other), (junk, key), (key, cert)):
        cp = serve(c, k, "c.db")
        assert cp.returncode == 1 and "is not usable: " in cp.stderr, (c, k, cp.stderr)
        reason = cp.stderr.split("is not usable: ", 1)[1].splitlines()[0]
        assert reason.strip(), cp.stderr

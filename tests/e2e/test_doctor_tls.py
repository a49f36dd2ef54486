"""`wsgate doctor` against TLS listeners with certificates the test makes with openssl."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.doctor.harness import codes, doctor, finding, layer, make_cert
from tests.support.backends import ws_server
from tests.support.procs import free_port, running

pytestmark = pytest.mark.e2e


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def test_self_signed_is_untrusted_then_healthy_with_cacert(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "localhost")
    with ws_server(ssl=server_context(cert, key)) as port:
        url = f"wss://127.0.0.1:{port}/"
        status, report = doctor(url)
        ok_status, ok = doctor(url, "--cacert", str(cert))
        insecure_status, insecure = doctor(url, "--insecure")
    assert status == 1
    assert codes(report) == ["tls_cert_untrusted"]
    assert "self-signed certificate" in finding(report, "tls_cert_untrusted")["evidence"]
    assert ok_status == 0
    assert codes(ok) == ["healthy"]
    tls = layer(ok, "tls")
    assert "ALPN http/1.1" in tls["detail"] or "ALPN none" in tls["detail"]
    assert "certificate verified" in tls["detail"]
    assert insecure_status == 0
    assert "NOT verified (--insecure)" in layer(insecure, "tls")["detail"]


def test_expired_certificate(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "localhost", days=-1)
    with ws_server(ssl=server_context(cert, key)) as port:
        status, report = doctor(f"wss://127.0.0.1:{port}/", "--cacert", str(cert))
    assert status == 1
    assert codes(report) == ["tls_cert_expired"]
    assert "certificate has expired" in finding(report, "tls_cert_expired")["evidence"]


def test_certificate_for_another_name(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "other", san="DNS:other.example")
    with ws_server(ssl=server_context(cert, key)) as port:
        status, report = doctor(f"wss://127.0.0.1:{port}/", "--cacert", str(cert))
    assert status == 1
    assert codes(report) == ["tls_hostname_mismatch"]


def test_h2_only_server_refuses_http11_alpn(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "localhost")
    port = free_port()
    argv = [
        "openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
        "-key", str(key), "-alpn", "h2", "-quiet",
    ]  # fmt: skip
    with running(argv, tmp_path / "s_server.log", port):
        status, report = doctor(f"wss://127.0.0.1:{port}/", "--cacert", str(cert))
    assert status == 1
    assert codes(report) == ["tls_no_http11_alpn"]
    assert "no application protocol" in finding(report, "tls_no_http11_alpn")["evidence"]


def test_wss_to_a_plain_port_is_tls_failed() -> None:
    with ws_server() as port:
        status, report = doctor(f"wss://127.0.0.1:{port}/", "--timeout", "5")
    assert status == 1
    assert codes(report) == ["tls_failed"]
    assert "try ws://" in finding(report, "tls_failed")["evidence"]


def test_ws_to_a_tls_port_says_use_wss(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "localhost")
    with ws_server(ssl=server_context(cert, key)) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "5")
    assert status == 1
    # Python's TLS server closes without a word on a plaintext request.
    assert codes(report) == ["connection_dropped"]


def test_certificate_expiring_in_two_days_is_a_warning(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "localhost", days=2)
    with ws_server(ssl=server_context(cert, key)) as port:
        status, report = doctor(f"wss://127.0.0.1:{port}/", "--cacert", str(cert))
    assert status == 0
    assert codes(report) == ["tls_cert_expiring", "healthy"]
    assert finding(report, "tls_cert_expiring")["severity"] == "warning"

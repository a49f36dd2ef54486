"""TLS end to end: a listener that terminates TLS with two certificates chosen by SNI (made
by the test with openssl), X-Forwarded-Proto: https and Forwarded proto=https to the
backend, an h2-only client told HTTP_1_1_REQUIRED and logged, wss:// backends verified
against a CA file (refused, explained, without it; a warning for tls_insecure), and
`wsgate doctor wss://...` healthy through the gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.sync.client import connect

from tests.doctor.harness import codes, doctor, layer
from tests.e2e.test_gateway_errors import Parsed
from tests.e2e.test_storm_e2e import storm_json
from tests.support.backends import named_backend, ws_server
from tests.support.certs import Ca, make_ca, make_leaf
from tests.support.gateway import RunningGateway, gateway
from tests.support.procs import free_port
from tests.support.raw import upgrade_request
from tests.support.tunnels import close_all, open_tunnels, wait_closed
from wsgate.protocol.alpn import H2_HTTP_1_1_REQUIRED

pytestmark = pytest.mark.e2e


async def headers_then_echo(conn: ServerConnection) -> None:
    """Send the request headers the backend got (as JSON pairs), then echo."""
    assert conn.request is not None
    await conn.send(json.dumps(list(conn.request.headers.raw_items())))
    async for message in conn:
        await conn.send(message)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory)
    make_leaf(directory, ca, "a.test", san="DNS:a.test,IP:127.0.0.1")
    make_leaf(directory, ca, "b.test")
    return ca, directory


def client_ctx(ca: Ca, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_gateway_config(directory: Path, tls_port: int, pools: str) -> str:
    return f"""
[server]
listen = ["127.0.0.1:{{port}}", {{ address = "127.0.0.1:{tls_port}", tls = true }}]
[tls]
[[tls.certificates]]
cert = "{directory / "a.test.pem"}"
key = "{directory / "a.test.key"}"
[[tls.certificates]]
cert = "{directory / "b.test.pem"}"
key = "{directory / "b.test.key"}"
{pools}
"""


def peer_name(tls: ssl.SSLSocket) -> str:
    """The common name of the certificate the server showed."""
    cert = tls.getpeercert()
    assert cert is not None
    rdns = cert["subject"]
    assert isinstance(rdns, tuple)  # typeshed: any entry may be a str
    subject = {rdn[0][0]: rdn[0][1] for rdn in rdns}
    return str(subject["commonName"])


def test_wss_with_two_sni_names_and_forwarded_https(pki: tuple[Ca, Path], tmp_path: Path) -> None:
    ca, directory = pki
    tls_port = free_port()
    with ws_server(headers_then_echo) as backend:
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n'
        config = tls_gateway_config(directory, tls_port, pools)
        with gateway(tmp_path, config=config) as gw:
            for name in ("a.test", "b.test"):
                url = f"wss://{name}:{tls_port}/chat"
                sock = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
                with connect(
                    url,
                    sock=sock,
                    ssl=client_ctx(ca),
                    server_hostname=name,
                    open_timeout=20,
                ) as ws:
                    tls = ws.socket
                    assert isinstance(tls, ssl.SSLSocket)
                    assert peer_name(tls) == name  # the certificate for the name asked
                    headers = {k.lower(): v for k, v in json.loads(str(ws.recv(timeout=20)))}
                    assert headers["x-forwarded-proto"] == "https"
                    assert "proto=https" in headers["forwarded"]
                    ws.send("over tls")
                    assert ws.recv(timeout=20) == "over tls"
            # The plain listener of the same gateway still says http.
            with connect(f"{gw.url}/", open_timeout=20) as ws:
                headers = {k.lower(): v for k, v in json.loads(str(ws.recv(timeout=20)))}
                assert headers["x-forwarded-proto"] == "http"
            listening = next(json.loads(line) for line in gw.log_lines() if '"listening"' in line)
            assert f"127.0.0.1:{tls_port}" in listening["addresses"]


def test_an_h2_only_client_is_told_http_1_1_required_and_logged(
    pki: tuple[Ca, Path], tmp_path: Path
) -> None:
    ca, directory = pki
    tls_port = free_port()
    port = free_port()
    with named_backend(tmp_path, port, "A"):
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{port}"]\n'
        with gateway(tmp_path, config=tls_gateway_config(directory, tls_port, pools)) as gw:
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
            with client_ctx(ca, ["h2"]).wrap_socket(raw, server_hostname="a.test") as tls:
                # Chosen h2 (the listener offers it after http/1.1) to be told, in HTTP/2,
                # that HTTP/1.1 is required.
                assert tls.selected_alpn_protocol() == "h2"
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
            assert answer == H2_HTTP_1_1_REQUIRED
            line = json.loads(gw.wait_for_log('"tls_alpn_refused"'))
            assert line["level"] == "warning"
            assert line["alpn"] == "h2" and line["server_name"] == "a.test"
            assert line["client"] == "127.0.0.1"
            # Offering both is fine: http/1.1 is chosen.
            raw = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
            with client_ctx(ca, ["h2", "http/1.1"]).wrap_socket(
                raw, server_hostname="a.test"
            ) as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"
                tls.sendall(upgrade_request())
                head = tls.recv(65536)
                assert Parsed(head).status == 101, head


def wss_backend_pools(backend: int, ca: Ca) -> str:
    return f"""
[[routes]]
path_prefix = "/trusted"
pool = "trusted"
[[routes]]
path_prefix = "/untrusted"
pool = "untrusted"
[[routes]]
path_prefix = "/insecure"
pool = "insecure"
[pools.trusted]
backends = ["127.0.0.1:{backend}"]
tls = true
tls_ca_file = "{ca.cert}"
tls_server_name = "b.test"
[pools.untrusted]
backends = ["127.0.0.1:{backend}"]
tls = true
tls_server_name = "b.test"
retries = 0
[pools.untrusted.health]
kind = "none"
[pools.insecure]
backends = ["127.0.0.1:{backend}"]
tls = true
tls_insecure = true
"""


def test_wss_backends_are_verified_unless_told_otherwise(
    pki: tuple[Ca, Path], tmp_path: Path
) -> None:
    ca, directory = pki
    backend_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    backend_ctx.load_cert_chain(directory / "b.test.pem", directory / "b.test.key")
    with ws_server(headers_then_echo, ssl=backend_ctx) as backend:
        config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
{wss_backend_pools(backend, ca)}
"""
        with gateway(tmp_path, config=config) as gw:
            warning = json.loads(gw.wait_for_log('"tls_insecure_backend"'))
            assert warning["level"] == "warning" and warning["pool"] == "insecure"
            for path in ("/trusted", "/insecure"):
                with connect(f"{gw.url}{path}", open_timeout=20) as ws:
                    ws.recv(timeout=20)  # the headers
                    ws.send(path)
                    assert ws.recv(timeout=20) == path
            refused = refused_upgrade(gw, "/untrusted")
            assert refused.status == 502
            assert refused.headers["x-wsgate-cause"] == "upstream_connect_failed"
            line = json.loads(gw.wait_for_log("TLS certificate not verified"))
            assert line["level"] == "error" and line["cause"] == "upstream_connect_failed"
            assert "tls_ca_file" in line["detail"]


def refused_upgrade(gw: RunningGateway, path: str) -> Parsed:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
        sock.sendall(upgrade_request(path))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return Parsed(data)


def test_doctor_says_healthy_over_wss_through_the_gateway(
    pki: tuple[Ca, Path], tmp_path: Path
) -> None:
    ca, directory = pki
    tls_port = free_port()
    with ws_server() as backend:
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n'
        with gateway(tmp_path, config=tls_gateway_config(directory, tls_port, pools)):
            url = f"wss://127.0.0.1:{tls_port}/"
            status, report = doctor(url, "--cacert", str(ca.cert))
            untrusted_status, untrusted = doctor(url)
    assert status == 0, report
    assert codes(report) == ["healthy"]
    tls = layer(report, "tls")
    assert "ALPN http/1.1" in tls["detail"] and "certificate verified" in tls["detail"]
    assert untrusted_status == 1 and codes(untrusted) == ["tls_cert_untrusted"]


def test_storm_speaks_wss_through_the_gateway(pki: tuple[Ca, Path], tmp_path: Path) -> None:
    ca, directory = pki
    tls_port = free_port()
    with ws_server() as backend:
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n'
        with gateway(tmp_path, config=tls_gateway_config(directory, tls_port, pools)):
            url = f"wss://127.0.0.1:{tls_port}/"
            trusted = storm_json(
                tmp_path, url, "--burst", "20", "--messages", "2", "--cacert", str(ca.cert)
            )
            untrusted = storm_json(tmp_path, url, "--burst", "3")
            insecure = storm_json(tmp_path, url, "--burst", "3", "--insecure")
    assert trusted["summary"]["outcomes"] == {"101": 20}
    assert untrusted["summary"]["outcomes"] == {"error TLS certificate not verified": 3}
    assert insecure["summary"]["outcomes"] == {"101": 3}


def test_a_drain_closes_tls_tunnels_at_its_pace(pki: tuple[Ca, Path], tmp_path: Path) -> None:
    # A TLS client cannot be half-closed: before, each waited 5 s for the gateway's TCP
    # close after answering its close frame.
    ca, directory = pki
    tls_port = free_port()
    port = free_port()
    with named_backend(tmp_path, port, "A"):
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{port}"]\n'
        drain = "drain_grace_s = 0.2\ndrain_window_s = 1.0\ndrain_close_code = 1012\n"
        config = tls_gateway_config(directory, tls_port, pools)
        config = config.replace("[server]\n", "[server]\n" + drain, 1)
        with gateway(tmp_path, config=config) as gw:

            async def main() -> tuple[float, list[tuple[float | None, int | None]]]:
                tunnels = await open_tunnels(
                    f"wss://127.0.0.1:{tls_port}/", 20, ssl_context=client_ctx(ca)
                )
                sigterm = time.monotonic()
                gw.proc.popen.send_signal(signal.SIGTERM)
                await wait_closed(tunnels, timeout_s=30)
                await close_all(tunnels)
                return sigterm, [(t.closed_at, t.code) for t in tunnels]

            sigterm, closes = asyncio.run(main())
            assert gw.proc.popen.wait(timeout=30) == 0
    assert [code for _, code in closes] == [1012] * 20
    seen = sorted(at - sigterm for at, _ in closes if at is not None)
    assert len(seen) == 20 and seen[0] >= 0.15 and seen[-1] < 2.5, seen


def test_a_certificate_swapped_by_reload_while_a_tunnel_stays_open(
    pki: tuple[Ca, Path], tmp_path: Path
) -> None:
    ca, shared = pki
    directory = tmp_path / "certs"
    directory.mkdir()
    for name in ("a.test", "b.test"):
        for suffix in (".pem", ".key"):
            (directory / f"{name}{suffix}").write_bytes((shared / f"{name}{suffix}").read_bytes())
    tls_port = free_port()
    with ws_server() as backend:
        pools = f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n'
        with gateway(tmp_path, config=tls_gateway_config(directory, tls_port, pools)) as gw:

            def open_ws() -> Any:
                sock = socket.create_connection(("127.0.0.1", tls_port), timeout=20)
                return connect(
                    f"wss://a.test:{tls_port}/",
                    sock=sock,
                    ssl=client_ctx(ca),
                    server_hostname="a.test",
                    open_timeout=20,
                )

            def serial(ws: Any) -> str:
                cert = ws.socket.getpeercert()
                return str(cert["serialNumber"])

            with open_ws() as held:
                before = serial(held)
                new_cert, new_key = make_leaf(
                    tmp_path, ca, "a.test", san="DNS:a.test,IP:127.0.0.1", tag="-v2"
                )
                (directory / "a.test.pem").write_bytes(new_cert.read_bytes())
                (directory / "a.test.key").write_bytes(new_key.read_bytes())
                os.kill(gw.proc.pid, signal.SIGHUP)
                done = json.loads(gw.wait_for_log('"reload_done"'))
                assert done["certificates"] == 2
                with open_ws() as fresh:
                    assert serial(fresh) != before  # the new certificate
                    fresh.send("new")
                    assert fresh.recv(timeout=20) == "new"
                held.send("old tunnel")  # the tunnel opened before the swap goes on
                assert held.recv(timeout=20) == "old tunnel"
                assert serial(held) == before
                # A broken certificate on the next reload: logged, the new one stays.
                (directory / "a.test.key").write_bytes((shared / "b.test.key").read_bytes())
                os.kill(gw.proc.pid, signal.SIGHUP)
                failed = json.loads(gw.wait_for_log('"reload_failed"'))
                assert "tls.certificates[0]" in failed["error"]
                with open_ws() as again:
                    assert serial(again) != before

"""Plain HTTP/1.1 through the gateway, on the same port as WebSockets."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.gateway import RunningGateway, gateway
from tests.support.http_backend import Handler, http_backend
from tests.support.raw import read_head


@pytest.fixture
def app(tmp_path: Path) -> Iterator[RunningGateway]:
    with http_backend() as pages, ws_server() as sockets:
        config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.pages]
backends = ["127.0.0.1:{pages}"]
[pools.sockets]
backends = ["127.0.0.1:{sockets}"]
[[routes]]
path_prefix = "/"
pool = "pages"
[[routes]]
path_prefix = "/ws"
pool = "sockets"
"""
        with gateway(tmp_path, config=config) as gw:
            yield gw


def test_pages_and_websocket_share_one_port_with_keep_alive(app: RunningGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    for path in ("/one", "/two", "/three"):
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == f"page {path}".encode()
    conn.close()
    # The three requests came in on one client connection and went out on one backend one.
    assert len(Handler.peers) == 3 and len(set(Handler.peers)) == 1
    with connect(f"{app.url}/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=20) == "hi"


def test_post_sized_and_chunked(app: RunningGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    conn.request("POST", "/form", body=b"x" * 100_000)
    response = conn.getresponse()
    assert response.read() == b"got " + b"x" * 100_000
    parts = [b"first,", b"second,", b"third" * 10_000]
    conn.request("POST", "/upload", body=iter(parts), encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b"got " + b"".join(parts)
    conn.close()


def test_chunked_and_close_delimited_responses(app: RunningGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    conn.request("GET", "/chunked")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b"alpha beta gamma"
    conn.request("GET", "/until-close")
    response = conn.getresponse()
    # Re-chunked for the HTTP/1.1 client, so its connection stays usable.
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read() == b"runs to the end of the connection"
    conn.request("GET", "/after")
    assert conn.getresponse().read() == b"page /after"
    conn.close()


def test_head_has_length_and_no_body(app: RunningGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    conn.request("HEAD", "/page")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == str(len(b"page /page"))
    assert response.read() == b""
    conn.request("GET", "/next")
    assert conn.getresponse().read() == b"page /next"
    conn.close()


def test_expect_100_continue(app: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", app.port), timeout=20) as sock:
        sock.sendall(
            b"POST /expect HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        final = b""
        while b"got hello" not in final:
            chunk = sock.recv(4096)
            assert chunk, final
            final += chunk
        assert final.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"


def test_forwarding_headers_reach_the_backend(app: RunningGateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    conn.request(
        "GET",
        "/headers",
        headers={
            "Host": "shop.test",
            "X-Forwarded-For": "198.51.100.7",
            "Connection": "X-Drop",
            "X-Drop": "1",
        },
    )
    seen = json.loads(conn.getresponse().read())
    conn.close()
    assert seen["x-forwarded-for"] == "198.51.100.7, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "shop.test"
    assert seen["forwarded"] == 'for=127.0.0.1;proto=http;host="shop.test"'
    assert seen["host"] == "shop.test"
    assert "x-drop" not in seen


def test_pipelined_requests_answered_in_order(app: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", app.port), timeout=20) as sock:
        sock.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: gw\r\n\r\n" % i for i in range(3)))
        data = b""
        while data.count(b"page /p") < 3:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.index(b"page /p0") < data.index(b"page /p1") < data.index(b"page /p2")


def test_proxy_protocol_names_the_client(tmp_path: Path) -> None:
    with http_backend() as pages:
        config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
proxy_protocol = true
[pools.pages]
backends = ["127.0.0.1:{pages}"]
"""
        with gateway(tmp_path, config=config) as gw:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
                sock.sendall(
                    b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 80\r\n"
                    b"GET /headers HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
                )
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            seen = json.loads(data.split(b"\r\n\r\n", 1)[1])
            assert seen["x-forwarded-for"] == "203.0.113.5"
            with socket.create_connection(("127.0.0.1", gw.port), timeout=20) as sock:
                sock.sendall(b"GET /headers HTTP/1.1\r\nHost: gw\r\n\r\n")  # no PROXY header
                assert read_head(sock).startswith(b"HTTP/1.1 400")

"""`wsgate doctor` against real servers on 127.0.0.1 with no proxy in between."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.doctor.harness import (
    codes,
    deaf_after_101,
    deaf_after_quiet,
    doctor,
    doctor_text,
    errors,
    finding,
    full_backlog,
    hang_up,
    layer,
    not_http,
    pong_but_no_close_reply,
    raw_server,
)
from tests.support.backends import ws_server
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e


def test_healthy_direct() -> None:
    with ws_server() as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--echo", "hello")
    assert status == 0
    assert codes(report) == ["healthy"]
    assert [row["name"] for row in report["layers"]] == [
        "dns", "tcp", "upgrade", "101", "ping", "echo", "close"
    ]  # fmt: skip
    assert all(row["ok"] for row in report["layers"])
    assert layer(report, "echo")["detail"] == "echoed"


def test_dns_failure_under_invalid_tld() -> None:
    status, report = doctor("ws://no-such-host.invalid/", "--timeout", "5")
    assert status == 1
    assert codes(report) == ["dns_failure"]
    assert [row["name"] for row in report["layers"]] == ["dns"]


def test_tcp_refused() -> None:
    status, report = doctor(f"ws://127.0.0.1:{free_port()}/")
    assert status == 1
    assert codes(report) == ["tcp_refused"]


def test_tcp_timeout_on_full_backlog() -> None:
    with full_backlog() as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "2")
    assert status == 1
    assert codes(report) == ["tcp_timeout"]
    assert "timeout 2 s" in finding(report, "tcp_timeout")["evidence"]


def test_backend_answering_426_is_version_mismatch() -> None:
    def require(conn: ServerConnection, request: Request) -> Response:
        response = conn.respond(426, "Upgrade Required\n")
        response.headers["Sec-WebSocket-Version"] = "8"
        return response

    with ws_server(process_request=require) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["version_mismatch"]
    assert "'8'" in finding(report, "version_mismatch")["evidence"]


def test_origin_check_gives_origin_rejected_and_good_origin_passes() -> None:
    with ws_server(origins=["https://app.example"]) as port:
        url = f"ws://127.0.0.1:{port}/"
        status, report = doctor(url, "--origin", "https://evil.example")
        good_status, good = doctor(url, "--origin", "https://app.example")
    assert status == 1
    assert codes(report) == ["origin_rejected"]
    assert "'https://evil.example' was sent" in finding(report, "origin_rejected")["evidence"]
    assert good_status == 0
    assert codes(good) == ["healthy"]


def test_unknown_path_is_path_not_found() -> None:
    def route(conn: ServerConnection, request: Request) -> Response | None:
        return None if request.path == "/ws" else conn.respond(404, "Not Found\n")

    with ws_server(process_request=route) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/nope")
        ok_status, _ = doctor(f"ws://127.0.0.1:{port}/ws")
    assert status == 1
    assert codes(report) == ["path_not_found"]
    assert "'/nope'" in finding(report, "path_not_found")["evidence"]
    assert ok_status == 0


def rewrite(name: str, value: str) -> object:
    def process_response(conn: ServerConnection, request: Request, response: Response) -> Response:
        headers = Headers(response.headers)
        if name in headers:
            del headers[name]
        headers[name] = value
        return Response(response.status_code, response.reason_phrase, headers, response.body)

    return process_response


def test_wrong_accept_is_bad_accept() -> None:
    with ws_server(
        process_response=rewrite("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    ) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["bad_accept"]


def test_unoffered_subprotocol_is_subprotocol_mismatch() -> None:
    with ws_server(process_response=rewrite("Sec-WebSocket-Protocol", "mqtt")) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["subprotocol_mismatch"]
    assert "'mqtt'" in finding(report, "subprotocol_mismatch")["evidence"]


def test_server_refusing_a_missing_subprotocol_is_subprotocol_mismatch() -> None:
    # websockets answers 400 "missing subprotocol" itself: no proxy is on the path, and
    # the doctor must not say one dropped the upgrade headers.
    with ws_server(subprotocols=["chat"]) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["subprotocol_mismatch"]
    found = finding(report, "subprotocol_mismatch")
    assert found["severity"] == "error" and found["layer"] == "upgrade"
    assert "missing subprotocol" in found["evidence"]
    assert "offered: none" in found["evidence"]
    assert "Offer a subprotocol the server supports (--subprotocol)" in found["fix"]
    assert "nginx" not in found["fix"] and "Apache" not in found["fix"]


def test_server_refusing_a_wrong_subprotocol_names_the_ones_it_accepts() -> None:
    with ws_server(subprotocols=["chat", "v2.chat"]) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--subprotocol", "mqtt")
    assert status == 1
    assert codes(report) == ["subprotocol_mismatch"]
    found = finding(report, "subprotocol_mismatch")
    assert "offered: 'mqtt'" in found["evidence"]
    assert "it accepts 'chat', 'v2.chat'" in found["evidence"]
    assert "--subprotocol chat" in found["fix"]


def test_server_selecting_no_subprotocol_is_a_warning_in_the_report_and_exit_status() -> None:
    # The docs say: an error, but a warning when none of those offered is selected.
    with ws_server() as port:
        url = f"ws://127.0.0.1:{port}/"
        status, report = doctor(url, "--subprotocol", "chat")
        text_status, text = doctor_text(url, "--subprotocol", "chat")
    assert status == 0 == text_status
    assert codes(report) == ["subprotocol_mismatch", "healthy"]
    assert finding(report, "subprotocol_mismatch")["severity"] == "warning"
    assert "no subprotocol selected (offered ['chat'])" in layer(report, "101")["detail"]
    assert "WARNING subprotocol_mismatch (layer 101)" in text
    assert text.rstrip().endswith("healthy: 0 error(s), 1 warning(s)")


def test_offered_subprotocol_selected_is_healthy() -> None:
    with ws_server(subprotocols=["chat"]) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--subprotocol", "chat")
    assert status == 0
    assert "'chat'" in layer(report, "101")["detail"]


def test_server_that_ignores_pings_is_ping_timeout() -> None:
    with raw_server(deaf_after_101) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "2")
    assert status == 1
    assert errors(report) == ["ping_timeout"]
    assert "no pong within 2 s" in finding(report, "ping_timeout")["evidence"]
    # The close layer fails too, and says so with its own finding.
    assert layer(report, "close")["detail"] == "no close frame within 2 s"
    assert codes(report) == ["ping_timeout", "unclean_close"]
    assert "no close frame within 2 s" in finding(report, "unclean_close")["evidence"]


def test_server_hanging_up_is_connection_dropped() -> None:
    with raw_server(hang_up) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "5")
    assert status == 1
    assert codes(report) == ["connection_dropped"]
    found = finding(report, "connection_dropped")
    assert "no HTTP status" in found["evidence"]
    # It read the request before hanging up: a server, not a TCP proxy.
    assert "sent nothing was still open" in found["evidence"]
    assert "TCP-level proxy" not in found["fix"]
    assert layer(report, "quiet")["ok"]


def test_server_closing_without_close_frame_is_unclean_close() -> None:
    with raw_server(pong_but_no_close_reply) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "5")
    assert status == 0  # a warning, not an error
    assert codes(report) == ["unclean_close", "healthy"]
    assert "without a close frame" in finding(report, "unclean_close")["evidence"]


async def slow_accept(conn: ServerConnection, request: Request) -> None:
    await asyncio.sleep(0.7)


def test_slow_handshake_is_a_warning() -> None:
    with ws_server(process_request=slow_accept) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--slow-ms", "300")
    assert status == 0
    assert codes(report) == ["slow_handshake", "healthy"]
    assert "threshold 300 ms" in finding(report, "slow_handshake")["evidence"]


def test_connect_to_same_backend_agrees() -> None:
    with ws_server() as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--connect-to", f"127.0.0.1:{port}")
    assert status == 0
    assert layer(report, "connect-to")["detail"].startswith(f"127.0.0.1:{port}: 101")


async def close_when_idle(conn: ServerConnection) -> None:
    # An application-level idle timeout: 1.5 s without a message closes with 1001.
    while True:
        try:
            await asyncio.wait_for(conn.recv(), 1.5)
        except TimeoutError:
            await conn.close(1001, "idle timeout")
            return


def test_idle_cut_by_close_frame_reports_code() -> None:
    with ws_server(close_when_idle, ping_interval=None) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "10")
    assert status == 1
    assert errors(report) == ["idle_cut"]
    assert "by a close frame 1001 'idle timeout'" in finding(report, "idle_cut")["evidence"]


def test_idle_not_cut_counts_server_pings() -> None:
    with ws_server(ping_interval=0.5) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "2")
    assert status == 0
    assert codes(report) == ["healthy"]
    idle = layer(report, "idle")
    assert idle["ok"]
    assert "ping(s), quiet for 2 s, not cut" in idle["detail"]


async def never_answer(conn: ServerConnection, request: Request) -> None:
    await asyncio.sleep(8)


def test_no_answer_in_time_is_response_timeout() -> None:
    with ws_server(process_request=never_answer) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "2")
    assert status == 1
    assert codes(report) == ["response_timeout"]
    assert "within 2 s" in finding(report, "response_timeout")["evidence"]


def test_non_http_server_is_bad_response() -> None:
    with raw_server(not_http) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "5")
    assert status == 1
    assert codes(report) == ["bad_response"]
    assert "SSH-2.0" in finding(report, "bad_response")["evidence"]


def test_101_with_wrong_upgrade_is_bad_upgrade_response() -> None:
    with ws_server(process_response=rewrite("Upgrade", "h2c")) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/")
    assert status == 1
    assert codes(report) == ["bad_upgrade_response"]
    assert "Upgrade: 'h2c'" in finding(report, "bad_upgrade_response")["evidence"]


async def silent(conn: ServerConnection) -> None:
    await conn.wait_closed()


def test_endpoint_that_does_not_echo_is_echo_timeout_warning() -> None:
    with ws_server(silent) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--echo", "hi", "--timeout", "2")
    assert status == 0
    assert codes(report) == ["echo_timeout", "healthy"]


def test_idle_bisect_finds_a_silent_drop() -> None:
    # Quiet for 3 s and the flow is gone without a word: only the pings after each
    # span show it, so the spans bracket the drop.
    with raw_server(deaf_after_quiet(3.0)) as port:
        status, report = doctor(
            f"ws://127.0.0.1:{port}/",
            "--idle", "8", "--idle-bisect", "--idle-conns", "4", "--timeout", "2",
        )  # fmt: skip
    assert status == 1
    assert errors(report) == ["idle_cut"]
    evidence = finding(report, "idle_cut")["evidence"]
    assert "quiet for 4 s, then dead" in evidence
    assert "no pong" in evidence
    assert "a connection quiet for 2 s survived" in evidence

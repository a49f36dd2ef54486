"""`wsgate demo` (gateway/demo.py): its config, its backends (echo, the chat and its page,
the slow handshakes) and its storm, each on a real `websockets` server on 127.0.0.1 port
0 in the test's loop; then the whole demo in this process, asked over HTTP and WebSocket
and stopped by SIGTERM. Ctrl-C on the `wsgate demo` process, its banner's command and
`--storm` against the dashboard are in tests/e2e/test_demo.py and test_admin_demo.py.

Nothing sleeps to synchronise: each step waits for a message, an event or a line under
DEADLINE_S."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from tests.support.procs import free_port
from tests.support.raw import upgrade_request
from wsgate.config import parse_config
from wsgate.gateway import demo
from wsgate.gateway.demo import (
    DEMO_DRAIN_S,
    SLOW_SLOTS,
    Chat,
    demo_config,
    demo_storm,
    echo,
    run_demo_forever,
    slow_handshakes,
)

DEADLINE_S = 20.0
Handler = Callable[[ServerConnection], Awaitable[None]]
PAGE = resources.files("wsgate.gateway").joinpath("demo_chat.html").read_bytes()
CLIENT_JS = resources.files("wsgate.gateway").joinpath("wsgate-client.js").read_bytes()


# == the config ===============================================================================
def test_the_config_routes_each_backend_and_the_chat_last() -> None:
    config = parse_config(demo_config(8080, 8081, {"echo": 1001, "chat": 1002}), "demo")
    assert [str(a) for a in config.server.listen] == ["127.0.0.1:8080"]
    assert config.admin.enabled and str(config.admin.listen) == "127.0.0.1:8081"
    assert config.server.drain_timeout_s == DEMO_DRAIN_S
    assert config.server.client_script_path == "/wsgate-client.js"
    # "/" would match everything: the chat's route is the last one.
    assert [(r.path_prefix, r.pool) for r in config.routes] == [("/echo", "echo"), ("/", "chat")]
    assert {name: [str(a) for a in p.addresses] for name, p in config.pools.items()} == {
        "echo": ["127.0.0.1:1001"],
        "chat": ["127.0.0.1:1002"],
    }


def test_with_the_storm_a_slow_pool_that_queues() -> None:
    backends = {"echo": 1001, "chat": 1002, "slow": 1003}
    config = parse_config(demo_config(8080, 8081, backends), "demo")
    prefixes = [r.path_prefix for r in config.routes]
    assert prefixes == ["/echo", "/slow", "/"]
    slow = config.pools["slow"]
    assert slow.max_handshakes_per_backend == SLOW_SLOTS
    assert (slow.queue_size, slow.queue_timeout_s) == (50, 3)
    # Only the slow pool is limited: the echo and the chat keep the defaults.
    assert config.pools["echo"].max_handshakes_per_backend == 0


# == the backends =============================================================================
@contextlib.asynccontextmanager
async def backend(handler: Handler, **kwargs: Any) -> AsyncIterator[str]:
    server: Server = await serve(handler, "127.0.0.1", 0, **kwargs)
    try:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), DEADLINE_S)


def watched(handler: Handler, errors: list[BaseException], ended: asyncio.Event) -> Handler:
    """`handler`, with what escapes it (websockets would log it as "connection handler
    failed" with a traceback) kept in `errors`, and `ended` set when it returns."""

    async def run(conn: ServerConnection) -> None:
        try:
            await handler(conn)
        except BaseException as exc:
            errors.append(exc)
            raise
        finally:
            ended.set()

    return run


async def join_and_vanish(url: str) -> None:
    """A client that completes the handshake, then is gone without a close frame, as a
    killed browser tab is."""
    port = int(url.rpartition(":")[2])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE_S)
    assert head.startswith(b"HTTP/1.1 101 "), head
    writer.transport.abort()


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), DEADLINE_S)


def test_echo_answers_in_kind_and_a_cut_connection_is_no_error() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        ended = asyncio.Event()
        async with (
            backend(watched(echo, errors, ended)) as url,
            connect(url, open_timeout=DEADLINE_S) as ws,
        ):
            await ws.send("text")
            assert await recv(ws) == "text"
            await ws.send(b"\x00\xff")
            assert await recv(ws) == b"\x00\xff"
        async with backend(watched(echo, errors, ended)) as url:
            await join_and_vanish(url)
            await asyncio.wait_for(ended.wait(), DEADLINE_S)

    asyncio.run(main())
    assert errors == []


def test_the_chat_serves_its_page_to_a_plain_get() -> None:
    async def main() -> None:
        chat = Chat()
        async with backend(chat.handler, process_request=chat.process_request) as url:
            port = int(url.rpartition(":")[2])
            status, headers, body = await asyncio.to_thread(get, port, "/")
            assert status == 200 and body == PAGE
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["Cache-Control"] == "no-store"
            assert not chat.members

    asyncio.run(main())


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_chat_tells_everyone_everything() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        chat = Chat()
        ended = asyncio.Event()
        handler = watched(chat.handler, errors, ended)
        async with (
            backend(handler, process_request=chat.process_request) as url,
            connect(url, open_timeout=DEADLINE_S) as ann,
        ):
            assert await recv(ann) == "* someone joined (1 here)"
            async with connect(url, open_timeout=DEADLINE_S) as bob:
                assert await recv(ann) == "* someone joined (2 here)"
                assert await recv(bob) == "* someone joined (2 here)"
                await ann.send("hello")
                assert [await recv(ann), await recv(bob)] == ["hello", "hello"]
                # Long messages are cut; bytes arrive as text, undecodable ones replaced.
                await bob.send("x" * 5000)
                assert await recv(ann) == "x" * 1000
                await bob.send(b"caf\xc3\xa9 \xff")
                assert await recv(bob) == "x" * 1000
                assert await recv(bob) == "café \ufffd"
                assert await recv(ann) == "café \ufffd"
                # Gone without a close frame: still a leaving, not an error.
                await join_and_vanish(url)
                for ws in (ann, bob):
                    assert await recv(ws) == "* someone joined (3 here)"
                    assert await recv(ws) == "* someone left (2 here)"
                await asyncio.wait_for(ended.wait(), DEADLINE_S)  # the vanished one's
                assert len(chat.members) == 2
            assert await recv(ann) == "* someone left (1 here)"

    asyncio.run(main())
    assert errors == []


def test_slow_handshakes_take_their_time_two_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    each_s = 0.3
    monkeypatch.setattr(demo, "SLOW_HANDSHAKE_S", each_s)

    async def handshake(url: str) -> None:
        async with connect(url, open_timeout=DEADLINE_S) as ws:
            await ws.send("through")
            assert await recv(ws) == "through"

    async def main() -> float:
        async with backend(echo, process_request=slow_handshakes()) as url:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.wait_for(
                asyncio.gather(*(handshake(url) for _ in range(2 * SLOW_SLOTS))), DEADLINE_S
            )
            return loop.time() - start

    # 2 * SLOW_SLOTS handshakes, SLOW_SLOTS at a time: at least two rounds, however fast
    # the machine (a lower bound only: a slow machine takes longer, never less).
    assert asyncio.run(main()) >= 2 * each_s * 0.95


# == the storm ================================================================================
def test_the_storm_is_paced_and_ends_when_told(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "STORM_S", 600.0)  # only `stop` can end it within the test
    monkeypatch.setattr(demo, "STORM_HOLD_S", 0.0)
    handshakes = 0

    async def main() -> float:
        stop = asyncio.Event()

        async def count(conn: ServerConnection) -> None:
            nonlocal handshakes
            handshakes += 1
            if handshakes == 3:
                stop.set()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

        async with backend(count) as url:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.wait_for(demo_storm(url, stop), DEADLINE_S)
            return loop.time() - start

    took = asyncio.run(main())
    assert handshakes >= 3
    # One handshake started every 1/STORM_RATE_PER_S at most (and the first at once).
    assert handshakes <= demo.STORM_RATE_PER_S * took + 1
    assert "wsgate demo: the storm is over" in capsys.readouterr().err


def test_a_storm_told_to_stop_before_it_starts_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        stop.set()
        await asyncio.wait_for(demo_storm("ws://127.0.0.1:1/slow", stop), DEADLINE_S)

    asyncio.run(main())
    assert "the storm is over" in capsys.readouterr().err


# == the whole demo, in this process ==========================================================
@pytest.fixture
def dispositions() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def send(signum: signal.Signals) -> None:
    """`signum` to this process, only where a handler other than the default waits (the
    default would end the test run)."""
    handler = signal.getsignal(signum)
    assert handler not in (signal.SIG_DFL, signal.SIG_IGN, None), f"no handler for {signum!r}"
    os.kill(os.getpid(), signum)


def test_the_demo_serves_the_page_the_script_and_echo_and_stops_on_sigterm(
    capsys: pytest.CaptureFixture[str], dispositions: None
) -> None:
    port, admin = free_port(), free_port()
    out: list[str] = []
    err: list[str] = []

    async def printed(text: str) -> None:
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while True:
            got = capsys.readouterr()
            out.append(got.out)
            err.append(got.err)
            if text in "".join(out):
                return
            assert asyncio.get_running_loop().time() < deadline, "".join(out + err)
            await asyncio.sleep(0.05)

    async def main() -> None:
        running = asyncio.create_task(run_demo_forever(port, admin))
        try:
            await printed("Ctrl-C stops")  # its signal handlers follow at once
            status, headers, body = await asyncio.to_thread(get, port, "/")
            assert status == 200 and body == PAGE  # the chat's page, through the gateway
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            status, _, body = await asyncio.to_thread(get, port, "/wsgate-client.js")
            assert status == 200 and body == CLIENT_JS  # the gateway's own
            status, _, _ = await asyncio.to_thread(get, admin, "/healthz")
            assert status == 200
            async with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=DEADLINE_S) as ws:
                await ws.send("through the gateway")
                assert await recv(ws) == "through the gateway"
            send(signal.SIGTERM)
            await asyncio.wait_for(running, DEADLINE_S)
        finally:
            if not running.done():
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running

    asyncio.run(main())
    got = capsys.readouterr()
    text, errors = "".join([*out, got.out]), "".join([*err, got.err])
    assert f"the gateway listens on http://127.0.0.1:{port}/" in text
    assert f"dashboard:   http://127.0.0.1:{admin}/" in text
    assert "wsgate demo: stopping" in errors
    assert "Traceback" not in errors


@pytest.mark.parametrize("taken", ["--port", "--admin-port"])
def test_a_taken_port_is_one_line_and_exit_1(taken: str) -> None:
    # The gateway's listeners raise ListenError, not OSError: it once escaped as a
    # traceback.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"--port": str(free_port()), "--admin-port": str(free_port()), taken: str(busy)}
        argv = [sys.executable, "-m", "wsgate", "demo", *(x for kv in ports.items() for x in kv)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # The last line says why (the gateway's "listening" line may come before it).
    last = done.stderr.splitlines()[-1]
    assert last.startswith("wsgate demo: cannot listen on ") and str(busy) in last

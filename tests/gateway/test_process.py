"""The gateway as a process (gateway/process.py): what each signal does, decided by pure
functions and tested as tables; `Reloads` against a real gateway on 127.0.0.1 port 0; and
`serve_until_signalled` on a real loop (asyncio's and uvloop's) in this process, sent real
signals by PID once its handlers are in place.

A signal to this process with no handler of the loop's would end the test run, so `send`
refuses to send one that finds none. Nothing sleeps to synchronise: each step waits for a
log line, an event or the pipe under DEADLINE_S."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from wsgate.config.load import ConfigError
from wsgate.config.model import (
    Address,
    BackendConfig,
    Config,
    HealthCheckConfig,
    PoolConfig,
    RouteConfig,
    ServerConfig,
)
from wsgate.gateway.process import (
    SIGHUP_DETAIL,
    UPGRADE_BUSY,
    UPGRADE_NOT_WITH_WORKERS,
    Hangup,
    Reloads,
    hangup_action,
    parent_is_gone,
    serve_until_signalled,
    upgrade_refusal,
)
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog

DEADLINE_S = 20.0
Record = dict[str, Any]
Runner = Callable[[Coroutine[Any, Any, None]], None]
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2)


# == the decisions ===========================================================================
@pytest.mark.parametrize(
    ("can_reload", "stopping", "action"),
    [
        (False, False, Hangup.IGNORE),
        (False, True, Hangup.IGNORE),
        (True, False, Hangup.RELOAD),
        (True, True, Hangup.REFUSE),
    ],
)
def test_what_a_sighup_does(can_reload: bool, stopping: bool, action: Hangup) -> None:
    assert hangup_action(can_reload=can_reload, stopping=stopping) is action


@pytest.mark.parametrize(
    ("upgradable", "stopping", "upgrading", "refusal"),
    [
        (True, False, False, None),
        (True, True, False, UPGRADE_BUSY),
        (True, False, True, UPGRADE_BUSY),
        (False, False, False, UPGRADE_NOT_WITH_WORKERS),
        (False, True, True, UPGRADE_NOT_WITH_WORKERS),  # the worker's reason comes first
    ],
)
def test_when_a_sigusr2_starts_no_successor(
    upgradable: bool, stopping: bool, upgrading: bool, refusal: str | None
) -> None:
    got = upgrade_refusal(upgradable=upgradable, stopping=stopping, upgrading=upgrading)
    assert got == refusal


@pytest.mark.parametrize(
    ("parent_pid", "ppid", "stopping", "gone"),
    [
        (None, 1, False, False),  # not a worker: whoever the parent is
        (100, 100, False, False),  # the parent lives
        (100, 1, False, True),  # re-parented (to init or a subreaper)
        (100, 1, True, False),  # draining already: said once, not again
    ],
)
def test_when_a_workers_parent_is_gone(
    parent_pid: int | None, ppid: int, stopping: bool, gone: bool
) -> None:
    assert parent_is_gone(parent_pid, ppid, stopping=stopping) is gone


# == helpers for the real loop ===============================================================
@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """asyncio's loop, and uvloop's (the one `serve` uses)."""
    return uvloop.run if request.param == "uvloop" else asyncio.run


@pytest.fixture
def dispositions() -> Iterator[None]:
    """This process's signal dispositions as they were before the test."""
    saved = {signum: signal.getsignal(signum) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def config(port: int, drain_timeout_s: float = 5.0) -> Config:
    # The backend is never dialled: no request is proxied here.
    pool = PoolConfig(
        "app", (BackendConfig(Address("127.0.0.1", 1)),), health=HealthCheckConfig(kind="none")
    )
    server = ServerConfig(listen=(Address("127.0.0.1", port),), drain_timeout_s=drain_timeout_s)
    return Config(server=server, pools={"app": pool}, routes=(RouteConfig("app"),))


def records(stream: io.StringIO, event: str) -> list[Record]:
    found = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [r for r in found if r["event"] == event]


async def logged(stream: io.StringIO, event: str, count: int = 1) -> list[Record]:
    """The `event` lines once there are `count` of them (the gateway batches its lines
    once per loop iteration)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while len(found := records(stream, event)) < count:
        assert asyncio.get_running_loop().time() < deadline, stream.getvalue()
        await asyncio.sleep(0.02)
    return found


def send(signum: signal.Signals) -> None:
    """`signum` to this process, only where a handler other than the default waits."""
    handler = signal.getsignal(signum)
    assert handler not in (signal.SIG_DFL, signal.SIG_IGN, None), f"no handler for {signum!r}"
    os.kill(os.getpid(), signum)


def bound_port(stream: io.StringIO) -> int:
    (address,) = records(stream, "listening")[0]["addresses"]
    return int(address.rpartition(":")[2])


async def read_to_eof(fd: int) -> bytes:
    """What the pipe's other end wrote before closing it, waited for on the loop."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    closed = asyncio.Event()

    def readable() -> None:
        chunk = os.read(fd, 64)
        got.extend(chunk)
        if not chunk:
            loop.remove_reader(fd)
            closed.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(closed.wait(), DEADLINE_S)
    finally:
        loop.remove_reader(fd)
    return bytes(got)


async def connects(port: int) -> None:
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE_S)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(gateway: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """`serve_until_signalled` as a task. A step that fails leaves it serving: SIGTERM
    drains it then, as the loop does not close over a gateway that still listens."""
    task = asyncio.create_task(gateway)
    try:
        yield task
    finally:
        if not task.done():
            with contextlib.suppress(AssertionError):  # its handlers not yet in place
                send(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), DEADLINE_S)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# == serve_until_signalled ====================================================================
def test_listening_is_told_then_hangup_and_upgrade_are_refused_and_sigterm_drains(
    run: Runner, dispositions: None
) -> None:
    stream = io.StringIO()
    listened: list[bool] = []

    async def main() -> None:
        read_fd, write_fd = os.pipe()
        gateway = serve_until_signalled(
            config(0),
            log=JsonLog(stream),
            ready_fd=write_fd,  # closed by the gateway once it has written
            on_listening=lambda: listened.append(True),
            upgradable=False,  # as a worker of --workers N
        )
        async with serving(gateway) as task:
            try:
                # The byte comes once the gateway listens, and the pipe is closed after it.
                assert await read_to_eof(read_fd) == b"1"
            finally:
                os.close(read_fd)
            assert listened == [True]
            port = bound_port(stream)
            await connects(port)

            send(signal.SIGHUP)  # no reloader: logged, not the default (the process ends)
            (ignored,) = await logged(stream, "sighup_ignored")
            assert ignored["detail"] == SIGHUP_DETAIL
            send(signal.SIGUSR2)
            (refused,) = await logged(stream, "upgrade_failed")
            assert refused["error"] == UPGRADE_NOT_WITH_WORKERS
            assert not task.done()
            await connects(port)  # still serving

            send(signal.SIGTERM)
            await asyncio.wait_for(task, DEADLINE_S)
        assert records(stream, "stopped")

    run(main())
    assert not records(stream, "parent_gone")


def test_sighup_reloads_with_the_reloader_and_sigint_drains(
    run: Runner, dispositions: None
) -> None:
    stream = io.StringIO()
    reloaded = 0

    async def main() -> None:
        listening = asyncio.Event()
        # The real parent: the check that runs every PARENT_CHECK_S finds it alive.
        gateway = serve_until_signalled(
            config(0),
            log=JsonLog(stream),
            parent_pid=os.getppid(),
            reloader=reloader,
            on_listening=listening.set,
        )
        async with serving(gateway) as task:
            await asyncio.wait_for(listening.wait(), DEADLINE_S)
            send(signal.SIGHUP)
            (done,) = await logged(stream, "reload_done")
            assert done["backends_added"] == ["app/127.0.0.1:2"]
            assert done["backends_removed"] == ["app/127.0.0.1:1"]
            assert reloaded == 1
            await connects(bound_port(stream))
            send(signal.SIGINT)  # Ctrl-C drains as SIGTERM does
            await asyncio.wait_for(task, DEADLINE_S)

    def reloader() -> Config:
        nonlocal reloaded
        reloaded += 1
        # The same listener (127.0.0.1 port 0 is kept as it is); another backend.
        pool = PoolConfig(
            "app", (BackendConfig(Address("127.0.0.1", 2)),), health=HealthCheckConfig(kind="none")
        )
        return Config(server=config(0).server, pools={"app": pool}, routes=(RouteConfig("app"),))

    run(main())
    assert records(stream, "stopped")
    assert not records(stream, "parent_gone")


def test_a_worker_whose_parent_is_gone_drains_without_a_signal(run: Runner) -> None:
    stream = io.StringIO()
    not_the_parent = os.getppid() + 1

    async def main() -> None:
        # No signal is sent: the first check of the parent ends the wait.
        await asyncio.wait_for(
            serve_until_signalled(config(0), log=JsonLog(stream), parent_pid=not_the_parent),
            DEADLINE_S,
        )

    run(main())
    (gone,) = records(stream, "parent_gone")
    assert gone["parent_pid"] == not_the_parent
    assert records(stream, "stopped")


# == Reloads ==================================================================================
@contextlib.asynccontextmanager
async def started(stream: io.StringIO) -> AsyncIterator[Gateway]:
    gateway = Gateway(config(0), JsonLog(stream))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.drain(0)


def test_requests_during_a_reload_make_one_more_reload_not_one_each(run: Runner) -> None:
    stream = io.StringIO()
    calls: list[int] = []

    async def main() -> None:
        async with started(stream) as gateway:

            def reloader() -> Config:
                calls.append(1)
                if len(calls) == 1:
                    # Two SIGHUPs while the first reload reads the config: one more
                    # reload after it, which reads the last config written.
                    reloads.request()
                    reloads.request()
                return gateway.config

            reloads = Reloads(gateway, reloader, notify=False)
            # Requests before the reload has begun are that reload: it reads the config
            # after them.
            reloads.request()
            reloads.request()
            await asyncio.wait_for(reloads.wait(), DEADLINE_S)
            assert len(calls) == 2
            await logged(stream, "reload_done", 2)
            reloads.request()  # once idle, a request is one reload again
            await asyncio.wait_for(reloads.wait(), DEADLINE_S)
            assert len(calls) == 3

    run(main())


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """An AF_UNIX datagram socket named in $NOTIFY_SOCKET, as systemd makes it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(DEADLINE_S)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def test_a_reload_is_told_to_systemd(run: Runner, notify_socket: socket.socket) -> None:
    stream = io.StringIO()
    told: list[dict[str, str]] = []

    async def main() -> None:
        async with started(stream) as gateway:
            reloads = Reloads(gateway, lambda: gateway.config, notify=True)
            reloads.request()
            await asyncio.wait_for(reloads.wait(), DEADLINE_S)
            address = gateway.bound_addresses()[0]
        told.extend(fields(notify_socket.recv(4096)) for _ in range(2))
        assert told[1]["STATUS"] == f"listening on {address}"

    run(main())
    reloading, ready = told
    assert reloading["RELOADING"] == "1" and reloading["STATUS"] == "reloading the config"
    assert ready["READY"] == "1" and ready["MAINPID"] == str(os.getpid())


def test_a_config_that_does_not_load_changes_nothing_and_is_told(
    run: Runner, notify_socket: socket.socket
) -> None:
    stream = io.StringIO()

    def broken() -> Config:
        raise ConfigError("gw.toml", "server.listen", "a list of addresses", 7)

    async def main() -> None:
        async with started(stream) as gateway:
            before = gateway.config
            reloads = Reloads(gateway, broken, notify=True)
            reloads.request()
            await asyncio.wait_for(reloads.wait(), DEADLINE_S)
            assert gateway.config is before
            (failed,) = await logged(stream, "reload_failed")
            assert failed["error"] == (
                "gw.toml: server.listen: expected a list of addresses, got 7"
            )
            await connects(int(gateway.bound_addresses()[0].rpartition(":")[2]))

    run(main())
    assert fields(notify_socket.recv(4096))["RELOADING"] == "1"
    ready = fields(notify_socket.recv(4096))
    assert ready["READY"] == "1" and ready["STATUS"].endswith("(reload failed: see the log)")
    assert not records(stream, "reload_done")

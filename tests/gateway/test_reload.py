"""Gateway.reload on a real loop (asyncio's and uvloop's), the gateway on 127.0.0.1 port
0: kept backends are the same objects with their state, new ones join, removed ones leave
the balancer; listeners open and close; a reload that cannot be applied changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from wsgate.config.model import (
    Address,
    BackendConfig,
    CertificateConfig,
    Config,
    HealthCheckConfig,
    PoolConfig,
    RouteConfig,
    ServerConfig,
    TlsConfig,
)
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog

Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


def config(ports: list[int], *, listen: tuple[Address, ...] | None = None, **pool: Any) -> Config:
    backends = tuple(BackendConfig(Address("127.0.0.1", p)) for p in ports)
    app = PoolConfig("app", backends, health=HealthCheckConfig(kind="none"), **pool)
    server = ServerConfig(listen=listen or (Address("127.0.0.1", 0),))
    return Config(server=server, pools={"app": app}, routes=(RouteConfig("app"),))


def lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [r for r in records if r["event"] == event]


def test_kept_backends_keep_their_state_and_new_ones_join(run: Runner) -> None:
    async def main() -> None:
        stream = io.StringIO()
        gw = Gateway(config([1, 2], max_handshakes_per_backend=4), JsonLog(stream))
        await gw.start()
        try:
            pool = gw.pools["app"]
            one, two = pool.backends
            one.connections = 3  # tunnels it holds
            pool.set_drained(one, True)  # an operator's drain
            assert await gw.reload(config([1, 3], max_handshakes_per_backend=8, queue_size=7))
            assert gw.pools["app"] is pool
            kept, added = pool.backends
            assert kept is one and kept.connections == 3 and kept.health.drained
            assert added.name == "127.0.0.1:3" and two not in pool.backends
            assert pool.admission.backends == [kept, added]
            assert kept.limiter.value == 8 and pool.admission.queue.max_size == 7
            done = lines(stream, "reload_done")[-1]
            assert done["backends_added"] == ["app/127.0.0.1:3"]
            assert done["backends_removed"] == ["app/127.0.0.1:2"]
            assert done["tunnels_closing"] == 0  # no connection holds a tunnel here
        finally:
            await gw.drain(0)

    run(main())


def test_listeners_open_and_close(run: Runner) -> None:
    async def main() -> None:
        stream = io.StringIO()
        first = Address("127.0.0.1", 0)
        gw = Gateway(config([1], listen=(first,)), JsonLog(stream))
        await gw.start()
        try:
            (before,) = gw.bound_addresses()
            second = Address("127.0.0.2", 0)
            assert await gw.reload(config([1], listen=(second,)))
            (after,) = gw.bound_addresses()
            assert after.startswith("127.0.0.2:") and before.startswith("127.0.0.1:")
            _, writer = await asyncio.open_connection(*after.split(":"))
            writer.close()
            with pytest.raises(OSError):
                await asyncio.open_connection(*before.split(":"))
        finally:
            await gw.drain(0)

    run(main())


def test_a_reload_that_cannot_be_applied_changes_nothing(run: Runner, tmp_path: Path) -> None:
    async def main() -> None:
        stream = io.StringIO()
        gw = Gateway(config([1]), JsonLog(stream))
        await gw.start()
        try:
            old = gw.config
            missing = CertificateConfig(str(tmp_path / "no.pem"), str(tmp_path / "no.key"))
            broken = dataclasses.replace(config([2]), tls=TlsConfig(certificates=(missing,)))
            assert not await gw.reload(broken)
            assert gw.config is old and gw.pools["app"].backends[0].name == "127.0.0.1:1"
            assert "tls.certificates[0]" in lines(stream, "reload_failed")[-1]["error"]
            # A listener that cannot be opened (an address not on this machine).
            elsewhere = config([2], listen=(Address("192.0.2.1", 9),))
            assert not await gw.reload(elsewhere)
            assert gw.config is old
            assert "cannot listen on 192.0.2.1:9" in lines(stream, "reload_failed")[-1]["error"]
            # Nor during a drain.
            gw.begin_drain(0)
            assert not await gw.reload(config([2]))
            assert lines(stream, "reload_failed")[-1]["error"] == "the gateway is draining"
        finally:
            await gw.stop()

    run(main())


def test_a_workers_admin_drain_of_a_backend_a_reload_removed_is_skipped(
    run: Runner, tmp_path: Path
) -> None:
    from wsgate.gateway.monitor import Monitor
    from wsgate.gateway.run_dir import CONTROL_FILE

    async def main() -> None:
        gw = Gateway(config([1, 2]), JsonLog(io.StringIO()))
        await gw.start()
        try:
            monitor = Monitor(gw, tmp_path)
            control = tmp_path / CONTROL_FILE
            control.write_text(json.dumps({"drained": {"127.0.0.1:2": 1.0}}))
            monitor._follow_control(control)
            assert gw.pools["app"].backends[1].health.drained
            assert await gw.reload(config([1]))
            control.write_text(json.dumps({"drained": {"127.0.0.1:9": 1.0}}))
            monitor._follow_control(control)  # neither 2 (gone) nor 9 (never) raises
        finally:
            await gw.drain(0)

    run(main())

"""gateway/drains.py on a real loop's clock (asyncio's and uvloop's), through a fake
DrainHost whose connections note when and how each tunnel was asked to close: the drain's
closes spread over its window in the planned order, tunnels that appear meanwhile
planned after, nothing asked twice, a backend drained and enabled through the admin API
(real pools, real metrics), a newer paced close under a key replacing the older, and
cancel_all."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any, cast

import pytest
import uvloop

from wsgate.config.model import Address, BackendConfig, HealthCheckConfig, PoolConfig
from wsgate.gateway.client import ClientConnection
from wsgate.gateway.drains import Drains
from wsgate.gateway.pool import Backend, Pool
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import Metrics

Runner = Callable[[Coroutine[Any, Any, None]], None]
DEADLINE_S = 30.0
EARLY_S = 0.01  # a loop may run a timer this much before its time (clock resolution)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


class FakeConnection:
    """A client connection holding a tunnel to `tunnel_backend`; a close asked of it is
    noted, and the tunnel stays (as a real one does until the close frames are through)."""

    def __init__(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self.tunnel_backend: Backend | None = backend
        self.loop = loop
        self.asked: list[tuple[float, int, str, str]] = []
        self.was_asked = asyncio.Event()

    def close_tunnel(self, code: int, text: str, *, reason_code: str) -> None:
        self.asked.append((self.loop.time(), code, text, reason_code))
        self.was_asked.set()


class FakeHost:
    """What Drains reads of the gateway (drains.DrainHost)."""

    def __init__(self, pools: list[Pool], metrics: Metrics | None = None) -> None:
        self.stream = io.StringIO()
        self._log = JsonLog(self.stream)
        self._loop = asyncio.get_running_loop()
        self._rng = random.Random(7)
        self._pools = {p.config.name: p for p in pools}
        self._metrics = metrics
        self.open: list[FakeConnection] = []

    def connect(self, backend: Backend, count: int = 1) -> list[FakeConnection]:
        made = [FakeConnection(backend, self._loop) for _ in range(count)]
        self.open.extend(made)
        return made

    def events(self, name: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [r for r in records if r["event"] == name]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def log(self) -> JsonLog:
        return self._log

    @property
    def rng(self) -> random.Random:
        return self._rng

    @property
    def connections(self) -> Collection[ClientConnection]:
        return cast("list[ClientConnection]", self.open)

    @property
    def pools(self) -> Mapping[str, Pool]:
        return self._pools

    @property
    def metrics(self) -> Metrics | None:
        return self._metrics


def pool(name: str, *ports: int) -> Pool:
    backends = tuple(BackendConfig(Address("127.0.0.1", p)) for p in ports)
    return Pool(
        PoolConfig(name, backends, health=HealthCheckConfig(kind="none")),
        1 << 16,
        JsonLog(io.StringIO()),
    )


async def all_asked(conns: list[FakeConnection]) -> None:
    async with asyncio.timeout(DEADLINE_S):
        for conn in conns:
            await conn.was_asked.wait()


def assert_spread(closes: list[float], start: float, slot_s: float) -> None:
    """The k-th close (in time order) no earlier than the start of its slot, k * slot."""
    assert closes == sorted(closes)
    for index, at in enumerate(closes):
        assert at >= start + index * slot_s - EARLY_S, (index, at - start)


def test_the_drain_closes_every_tunnel_spread_over_its_window(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1, 2)
        host = FakeHost([app])
        conns = host.connect(app.backends[0], 6) + host.connect(app.backends[1], 6)
        drains = Drains(host)
        start = host.loop.time()
        drains.close_tunnels_paced(1001, 1.2, start + DEADLINE_S, rate_per_s=0.0)
        await all_asked(conns)
        assert all(len(c.asked) == 1 for c in conns)
        assert {c.asked[0][1:] for c in conns} == {(1001, "server shutting down", "shutdown")}
        assert_spread(sorted(c.asked[0][0] for c in conns), start, 1.2 / 12)
        (line,) = host.events("drain_closing")
        assert (line["reason"], line["tunnels"], line["close_code"]) == ("shutdown", 12, 1001)
        assert 1.1 <= line["last_in_s"] <= 1.2

    run(main())


def test_a_rate_paces_the_drain_whatever_the_window(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1)
        host = FakeHost([app])
        conns = host.connect(app.backends[0], 5)
        drains = Drains(host)
        start = host.loop.time()
        drains.close_tunnels_paced(1001, 0.0, start + DEADLINE_S, rate_per_s=10.0)
        await all_asked(conns)
        assert_spread(sorted(c.asked[0][0] for c in conns), start, 0.1)
        assert host.events("drain_closing")[0]["rate_per_s"] == 10.0

    run(main())


def test_a_tunnel_opened_meanwhile_is_closed_after_the_planned_ones(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1)
        host = FakeHost([app])
        first = host.connect(app.backends[0], 3)
        drains = Drains(host)
        drains.close_tunnels_paced(1001, 0.6, host.loop.time() + DEADLINE_S, rate_per_s=0.0)
        (late,) = host.connect(app.backends[0])  # its 101 was on the way
        await all_asked([late])
        assert late.asked[0][0] >= max(c.asked[0][0] for c in first)
        assert [line["tunnels"] for line in host.events("drain_closing")] == [3, 1]
        # Asked once each, although none has ended: a connection is not planned again.
        await asyncio.sleep(0.3)
        assert [len(c.asked) for c in [*first, late]] == [1, 1, 1, 1]

    run(main())


def test_nothing_is_planned_past_the_deadline_nor_for_a_connection_gone(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1)
        host = FakeHost([app])
        (conn,) = host.connect(app.backends[0])
        drains = Drains(host)
        now = host.loop.time()
        assert drains.pace("", lambda b: True, (1001, "", "shutdown"), 1.0, now) == 0
        assert drains.pace("k", lambda b: False, (1001, "", "shutdown"), 1.0, now + 9) == 0
        # Planned, then gone before its time: not asked.
        assert drains.pace("k", lambda b: True, (1012, "", "x"), 0.3, now + DEADLINE_S) == 1
        host.open.remove(conn)
        drains.forget(cast(ClientConnection, conn))
        await asyncio.sleep(0.6)
        assert conn.asked == []

    run(main())


def test_a_newer_paced_close_under_a_key_replaces_the_older(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1, 2)
        host = FakeHost([app])
        one, two = app.backends
        on_one, on_two = host.connect(one, 3), host.connect(two, 3)
        drains = Drains(host)
        deadline = host.loop.time() + DEADLINE_S
        start = host.loop.time()
        assert drains.pace("reload", {one}.__contains__, (1012, "a", "a"), 1.0, deadline) == 3
        assert drains.pace("reload", {two}.__contains__, (1012, "b", "b"), 0.3, deadline) == 3
        await all_asked(on_two)
        await asyncio.sleep(max(0.0, start + 1.5 - host.loop.time()))
        # The first plan, cancelled before its first time, closed nothing in its window.
        assert [c.asked for c in on_one] == [[], [], []]
        assert {c.asked[0][2] for c in on_two} == {"b"}

    run(main())


def test_drain_backend_closes_its_tunnels_with_1012_and_enable_puts_it_back(
    run: Runner,
) -> None:
    async def main() -> None:
        metrics = Metrics()
        app, other = pool("app", 1, 2), pool("other", 1)
        host = FakeHost([app, other], metrics)
        drained = host.connect(app.backends[0], 4) + host.connect(other.backends[0], 2)
        kept = host.connect(app.backends[1], 3)
        drains = Drains(host)
        start = host.loop.time()
        assert drains.drain_backend("127.0.0.1:1", True, 0.6) == 6
        assert app.backends[0].health.drained and other.backends[0].health.drained
        assert not app.backends[1].health.drained
        await all_asked(drained)
        assert {c.asked[0][1:] for c in drained} == {(1012, "backend drained", "backend_drained")}
        assert_spread(sorted(c.asked[0][0] for c in drained), start, 0.6 / 6)
        assert all(not c.asked for c in kept)
        (line,) = host.events("backend_drained")
        assert (line["pools"], line["tunnels"], line["over_s"]) == (["app", "other"], 6, 0.6)
        assert drains.drain_backend("127.0.0.1:1", False, 0.6) == 0
        assert not app.backends[0].health.drained
        assert host.events("backend_enabled")[0]["tunnels"] == 0

        def actions(pool_name: str, action: str) -> float | None:
            labels = {"pool": pool_name, "backend": "127.0.0.1:1", "action": action}
            return metrics.registry.get_sample_value("wsgate_backend_admin_actions_total", labels)

        assert [actions("app", "drain"), actions("other", "drain")] == [1.0, 1.0]
        assert actions("app", "enable") == 1.0
        with pytest.raises(KeyError):
            drains.drain_backend("127.0.0.1:9", True, 0.6)

    run(main())


def test_cancel_all_stops_every_paced_close(run: Runner) -> None:
    async def main() -> None:
        app = pool("app", 1, 2)
        host = FakeHost([app])
        drains = Drains(host)
        on_one, on_two = host.connect(app.backends[0], 10), host.connect(app.backends[1], 10)
        drains.close_tunnels_paced(1001, 1.0, host.loop.time() + DEADLINE_S, rate_per_s=0.0)
        drains.drain_backend("127.0.0.1:2", True, 1.0)
        asked = sum(len(c.asked) for c in on_one + on_two)
        drains.cancel_all()
        await asyncio.sleep(1.5)
        assert sum(len(c.asked) for c in on_one + on_two) == asked < 20

    run(main())

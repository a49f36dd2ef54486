"""What a pool does when a backend's health changes (pool_health.py), on a real pool and
loop without sockets: a check's verdict that turns a backend down is logged and closes its
idle connections, one that brings it back is logged and gives out its slots, one that
changes nothing says nothing; a passive ejection is logged and counted, and its end gives
out the slot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.gateway.fakes import RecordingWaiter as Waiter
from tests.gateway.fakes import pool_config, run_pool
from wsgate.config.model import HealthCheckConfig
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.metrics import Metrics
from wsgate.policy.admission import QUEUED


def events(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines()]


def idle_at(pool: Pool, backend: Backend) -> UpstreamConnection:
    conn = UpstreamConnection(backend)
    backend.open.add(conn)
    pool.release(conn)
    assert backend.idle == [conn]
    return conn


def test_a_backend_found_down_is_logged_and_loses_its_idle_connections() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> UpstreamConnection:
        (backend,) = pool.backends
        conn = idle_at(pool, backend)
        pool.on_check(backend, False, "connection refused")  # fall = 2: not yet
        assert backend.health.up and backend.idle == [conn] and not conn.closed
        pool.on_check(backend, False, "connection refused")
        assert not backend.health.up and backend.idle == []
        return conn

    conn, log = run_pool(body, pool_config(health=HealthCheckConfig(kind="http", fall=2)))
    assert conn.closed
    (line,) = events(log)
    assert line["event"] == "backend_down" and line["pool"] == "app"
    assert line["backend"] == "127.0.0.1:9000" and line["check"] == "http"
    assert line["detail"] == "connection refused"


def test_a_backend_back_up_is_logged_and_gives_out_its_slots() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        now = pool.loop.time()
        held = [pool.admit(Waiter(name, heard), now) for name in ("w0", "w1")]  # one each
        assert pool.admit(Waiter("w2", heard), now) is QUEUED
        back = held[0]
        assert isinstance(back, Backend)
        pool.on_check(back, False, "connection refused")  # fall = 1: down
        pool.handshake_done(back, 0.0, 0, "aborted")  # its slot frees, but it is down
        assert heard == []
        pool.on_check(back, True, "connected")  # rise = 1: up
        assert heard == [("w2", back.name)]

    _, log = run_pool(body, pool_config(2, health=HealthCheckConfig(fall=1, rise=1)))
    assert [(e["event"], e["detail"]) for e in events(log)] == [
        ("backend_down", "connection refused"),
        ("backend_up", "connected"),
    ]


def test_an_ejection_is_logged_and_counted_and_its_end_gives_out_the_slot() -> None:
    metrics = Metrics()

    async def body(pool: Pool, heard: list[tuple[str, str]]) -> list[tuple[str, str]]:
        now = pool.loop.time()
        first = pool.admit(Waiter("w0", heard), now)
        second = pool.admit(Waiter("w1", heard), now)
        assert isinstance(first, Backend) and isinstance(second, Backend)
        assert pool.admit(Waiter("w2", heard), now) is QUEUED
        pool.note_failure(second)  # ejected for eject_base_s
        pool.handshake_done(second, 0.0, 0, "aborted")
        assert heard == []  # its slot is free, but it is out
        await asyncio.sleep(0.1)
        return heard

    heard, log = run_pool(body, pool_config(2, eject_after_failures=1, eject_base_s=0.05), metrics)
    assert len(heard) == 1 and heard[0][0] == "w2"
    (line,) = events(log)
    assert line["event"] == "backend_ejected" and line["backend"] == heard[0][1]
    assert line["pool"] == "app" and 0.0 <= line["until_s"] <= 0.1
    labels = {"pool": "app", "backend": heard[0][1]}
    assert metrics.registry.get_sample_value("wsgate_backend_ejections_total", labels) == 1.0

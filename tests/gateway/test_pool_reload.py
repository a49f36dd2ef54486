"""A pool's reload in place (pool_reload.py, through `Pool.reconfigure`) on a real pool
and loop: kept backends stay the same objects with their state and take the new weight,
health settings and limit; new ones join; the gone ones come back to the caller with
their idle connections closed; the retry budget and the queue's timer follow their
settings; queued handshakes get what the reload adds; the health checks follow the new
settings and backends (real checks of ports where nothing listens)."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.gateway.fakes import RecordingWaiter as Waiter
from tests.gateway.fakes import pool_config, run_pool, until
from tests.support.procs import free_port
from wsgate.config.model import Address, BackendConfig, HealthCheckConfig, PoolConfig
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.pool_metrics import MeteredBudget
from wsgate.gateway.pool_settings import health_settings
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.metrics import Metrics
from wsgate.policy.admission import QUEUED
from wsgate.policy.limits import AdaptiveLimit, FixedLimit

NO_CHECKS = HealthCheckConfig(kind="none")


def at(*ports: int, weights: tuple[int, ...] = (), **values: Any) -> PoolConfig:
    """Pool `app` with backends at these ports of 127.0.0.1 (weights in order, else 1)."""
    weights = weights or (1,) * len(ports)
    backends = tuple(
        BackendConfig(Address("127.0.0.1", p), w) for p, w in zip(ports, weights, strict=True)
    )
    values.setdefault("health", NO_CHECKS)
    return dataclasses.replace(pool_config(), backends=backends, **values)


def test_kept_backends_stay_with_their_state_new_ones_join_gone_ones_go() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        one, two = pool.backends
        for name in ("w0", "w1"):  # a slot at each
            assert isinstance(pool.admit(Waiter(name, heard), pool.loop.time()), Backend)
        one.connections = 2  # tunnels it holds
        learned = one.limiter
        idle = UpstreamConnection(two)
        two.open.add(idle)
        pool.release(idle)
        assert two.idle == [idle]

        new = at(9000, 9002, weights=(3, 1), health=HealthCheckConfig(kind="none", rise=5))
        assert pool.reconfigure(new, None) == [two]
        kept, added = pool.backends
        assert kept is one and (kept.inflight, kept.connections) == (1, 2)
        assert kept.weight == 3 and kept.limiter is learned  # the slot limit did not change
        assert kept.health.s == health_settings(new) and kept.health.s.rise == 5
        assert added.name == "127.0.0.1:9002" and added.pool is pool and added.inflight == 0
        assert pool.config is new and pool.admission.backends == [kept, added]
        assert idle.closed and two.idle == []  # a gone backend keeps nothing idle

    run_pool(body, at(9000, 9001))


def test_a_new_slot_limit_replaces_the_kept_backends_limiter() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        (backend,) = pool.backends
        assert isinstance(backend.limiter, FixedLimit) and backend.limiter.value == 1
        pool.reconfigure(at(9000, max_handshakes_per_backend=0), None)
        assert isinstance(backend.limiter, AdaptiveLimit)  # 0: learned
        pool.reconfigure(at(9000, max_handshakes_per_backend=4), None)
        assert isinstance(backend.limiter, FixedLimit) and backend.limiter.value == 4

    run_pool(body, at(9000))


def test_the_retry_budget_is_replaced_only_when_its_settings_change() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        before = pool.budget
        assert isinstance(before, MeteredBudget)
        pool.reconfigure(at(9000, queue_size=3), None)
        assert pool.budget is before and pool.admission.budget is before
        pool.reconfigure(at(9000, retry_budget_ratio=0.5), None)
        assert pool.budget is not before and pool.admission.budget is pool.budget
        assert isinstance(pool.budget, MeteredBudget) and pool.budget.ratio == 0.5

    run_pool(body, at(9000), Metrics())


def test_queued_handshakes_get_the_slots_a_reload_adds() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        now = pool.loop.time()
        (first,) = pool.backends
        assert pool.admit(Waiter("w0", heard), now) is first
        assert pool.admit(Waiter("w1", heard), now) is QUEUED
        assert pool.admit(Waiter("w2", heard), now) is QUEUED
        pool.reconfigure(at(9000, 9001), None)  # a new backend: a slot for w1
        assert heard == [("w1", "127.0.0.1:9001")]
        pool.reconfigure(at(9000, 9001, max_handshakes_per_backend=2), None)  # more slots
        assert heard[1][0] == "w2" and len(pool.queue) == 0

    run_pool(body, at(9000))


def test_a_shorter_queue_timeout_moves_the_queues_timer() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        now = pool.loop.time()
        assert isinstance(pool.admit(Waiter("w0", heard), now), Backend)
        assert pool.admit(Waiter("w1", heard), now) is QUEUED  # its timer: in 600 s
        pool.reconfigure(at(9000, queue_timeout_s=0.05), None)
        # Well before the old timeout: the timer moved to the new one.
        await until(lambda: heard == [("w1", "overloaded_queue_timeout")])

    run_pool(body, at(9000, queue_timeout_s=600.0))


def test_checks_follow_the_new_settings_and_backends() -> None:
    # Checks off at start; the reload turns them on for the kept and the new backend,
    # both at ports where nothing listens, so both are found down.
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        pool.start_checks()  # kind "none": nothing is checked
        (kept,) = pool.backends
        checks = HealthCheckConfig(kind="tcp", interval_s=0.05, fall=1, timeout_s=5.0)
        pool.reconfigure(at(kept.address.port, free_port(), health=checks), None)
        assert pool.backends[0] is kept
        await until(lambda: not any(b.health.up for b in pool.backends))

    _, log = run_pool(body, at(free_port()))
    assert log.count('"backend_down"') == 2

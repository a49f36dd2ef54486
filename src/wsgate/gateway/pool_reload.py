"""A reload of one pool in place (`Pool.reconfigure`): its new settings and backends.

A backend whose address stays is the same object, so its connections, tunnels, health,
learned limit and admin drain go on, with the new weight and limit; a new one starts as
at start-up. A backend that is gone takes nothing new and its idle connections are
closed; its tunnels are the gateway's to close (reload.py). The health checks follow the
new backends, the queue's timer a new timeout, and the queue is served again."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from wsgate.config.model import Address, BackendConfig, PoolConfig
from wsgate.gateway.pool_settings import (
    admission_settings,
    health_settings,
    retry_budget,
)
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.policy.admission import AdmissionSettings
from wsgate.policy.health import BackendHealth, HealthSettings
from wsgate.policy.limits import AdaptiveLimit, FixedLimit
from wsgate.policy.retry import RetryBudget

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics


class ReloadedBackend(Protocol):
    """What a reload changes of a backend it keeps, and closes of one that is gone."""

    weight: int
    limiter: AdaptiveLimit | FixedLimit

    @property
    def address(self) -> Address: ...
    @property
    def health(self) -> BackendHealth: ...
    @property
    def idle(self) -> list[UpstreamConnection]: ...


B = TypeVar("B", bound=ReloadedBackend)
B_in = TypeVar("B_in", bound=ReloadedBackend, contravariant=True)


class ReloadedAdmission(Protocol[B_in]):
    """The pool's admission controller (`AdmissionController`) as a reload sees it."""

    budget: RetryBudget

    def reconfigure(self, settings: AdmissionSettings, backends: Sequence[B_in]) -> None: ...


class ReloadedPool(Protocol[B]):
    """What a reload reads and replaces of its pool (`pool.Pool`)."""

    config: PoolConfig
    tls: ssl.SSLContext | None
    backends: list[B]
    budget: RetryBudget

    @property
    def admission(self) -> ReloadedAdmission[B]: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    def new_backend(self, config: BackendConfig, health: HealthSettings, now: float) -> B: ...
    def start_checks(self) -> None: ...
    def stop_checks(self, backends: Sequence[B] | None = None) -> None: ...
    def queue_timeout_changed(self) -> None: ...
    def dispatch(self) -> None: ...


def reconfigure(pool: ReloadedPool[B], config: PoolConfig, tls: ssl.SSLContext | None) -> list[B]:
    """Gives `pool` the settings and backends of `config` and the backends' TLS context
    `tls`; returns the backends that are gone."""
    old = pool.config
    now = pool.loop.time()
    health = health_settings(config)
    kept = {b.address: b for b in pool.backends}
    backends: list[B] = []
    for backend_config in config.backends:
        backend = kept.pop(backend_config.address, None)
        if backend is None:
            backend = pool.new_backend(backend_config, health, now)
        else:
            backend.weight = backend_config.weight
            backend.health.s = health
            if config.max_handshakes_per_backend != old.max_handshakes_per_backend:
                backend.limiter = (
                    FixedLimit(config.max_handshakes_per_backend)
                    if config.max_handshakes_per_backend
                    else AdaptiveLimit()
                )
        backends.append(backend)
    gone = list(kept.values())
    pool.config = config
    pool.tls = tls
    pool.backends = backends
    pool.admission.reconfigure(admission_settings(config), backends)
    if (config.retry_budget_ratio, config.retry_budget_min_per_s) != (
        old.retry_budget_ratio,
        old.retry_budget_min_per_s,
    ):
        pool.admission.budget = retry_budget(config, pool.metrics)
        pool.budget = pool.admission.budget
    for backend in gone:
        for conn in backend.idle:
            conn.close()
        backend.idle.clear()
    # Checks follow the new backends, and restart when their settings changed.
    pool.stop_checks(gone if config.health == old.health else None)
    pool.start_checks()
    if config.queue_timeout_s != old.queue_timeout_s:
        pool.queue_timeout_changed()
    pool.dispatch()  # new backends or limits may take queued handshakes now
    return gone

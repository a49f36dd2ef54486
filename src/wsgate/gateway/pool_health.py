"""What a pool does when a backend's health changes: an active check's verdict (checks.py)
and a passive ejection (the admission controller's `ejected`). The controller decides;
these carry it out: the log line, the count, the slots given out again when the backend
is back, and the idle connections of a backend found down closed (they are dead, or hold
up its shutdown)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, TypeVar

from wsgate.config.model import PoolConfig
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog
from wsgate.policy.health import BackendHealth

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics


class HealthBackend(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def health(self) -> BackendHealth: ...
    @property
    def idle(self) -> list[UpstreamConnection]: ...


B = TypeVar("B", bound=HealthBackend)


class HealthAdmission(Protocol[B]):
    """The pool's admission controller (`AdmissionController`) as health changes see it."""

    @property
    def ejected(self) -> list[B]: ...
    def on_check(self, backend: B, ok: bool, now: float) -> bool: ...


class HealthPool(Protocol[B]):
    """What health changes read of their pool (`pool.Pool`), and where slots come back."""

    @property
    def config(self) -> PoolConfig: ...
    @property
    def log(self) -> JsonLog: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def admission(self) -> HealthAdmission[B]: ...
    def dispatch(self) -> None: ...


def apply_check(pool: HealthPool[B], backend: B, ok: bool, detail: str) -> None:
    """An active check's verdict on `backend`: logged when it turns the backend up or
    down; up gives out its slots, down closes its idle connections."""
    if not pool.admission.on_check(backend, ok, pool.loop.time()):
        return
    pool.log.event(
        "backend_up" if backend.health.up else "backend_down",
        pool=pool.config.name,
        backend=backend.name,
        check=pool.config.health.kind,
        detail=detail,
    )
    if backend.health.up:
        pool.dispatch()
    else:
        for conn in list(backend.idle):
            conn.close()


def log_ejections(pool: HealthPool[B], now: float) -> None:
    """The backends passive ejection took out since the last call: logged, counted, and a
    timer at the end of each ejection, when its slots may come back."""
    ejected = pool.admission.ejected
    while ejected:
        backend = ejected.pop(0)
        until = backend.health.ejected_until
        if pool.metrics is not None:
            pool.metrics.ejection(pool.config.name, backend.name)
        pool.log.event(
            "backend_ejected",
            pool=pool.config.name,
            backend=backend.name,
            until_s=round(until - now, 1),
        )
        pool.loop.call_at(until, pool.dispatch)  # slots may come back with it

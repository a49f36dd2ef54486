"""A pool's active health checks: one task per backend that probes it (healthcheck.py),
every `interval_s` while it is up and every `down_interval_s` while it is down, and hands
each verdict to the pool. The pool decides what a verdict means (admission, its log line,
the idle connections of a backend found down)."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Iterable
from typing import Protocol

from wsgate.config.model import Address, PoolConfig
from wsgate.gateway.dial import FD_ERROR_TEXTS
from wsgate.gateway.healthcheck import run_check
from wsgate.gateway.tasks import cancel_and_wait


class CheckedHealth(Protocol):
    @property
    def up(self) -> bool: ...


class CheckedBackend(Protocol):
    @property
    def address(self) -> Address: ...
    @property
    def health(self) -> CheckedHealth: ...
    def __hash__(self) -> int: ...


class CheckedPool(Protocol):
    """What the checks read of their pool, afresh for each probe (a reload changes it),
    and where they report."""

    @property
    def config(self) -> PoolConfig: ...
    @property
    def tls(self) -> ssl.SSLContext | None: ...
    @property
    def rng(self) -> random.Random: ...
    def on_check(self, backend: CheckedBackend, ok: bool, detail: str) -> None: ...


class HealthChecks:
    def __init__(self, pool: CheckedPool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._tasks: dict[CheckedBackend, asyncio.Task[None]] = {}

    def start(self, backends: Iterable[CheckedBackend]) -> None:
        """Check each of `backends` not checked yet (none with `kind = "none"`)."""
        if self._pool.config.health.kind == "none":
            return
        for backend in backends:
            if backend not in self._tasks:
                self._tasks[backend] = self._loop.create_task(self._run(backend))

    def stop(self, backends: Iterable[CheckedBackend] | None = None) -> None:
        """Stop checking `backends` (all when None)."""
        for backend in list(self._tasks) if backends is None else backends:
            task = self._tasks.pop(backend, None)
            if task is not None:
                task.cancel()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks)

    async def _run(self, backend: CheckedBackend) -> None:
        pool = self._pool
        # Spread the first checks so that all backends are not probed in the same instant.
        await asyncio.sleep(pool.rng.uniform(0, min(1.0, pool.config.health.interval_s)))
        while True:
            config = pool.config
            health = config.health
            ok, detail = await run_check(
                health,
                backend.address,
                config.connect_timeout_s,
                tls=pool.tls,
                server_hostname=config.tls_server_name,
            )
            if ok or detail not in FD_ERROR_TEXTS:
                pool.on_check(backend, ok, detail)
            # else the gateway had no descriptor for the check: no verdict on the backend.
            await asyncio.sleep(
                health.interval_s if backend.health.up else health.interval_when_down_s
            )

"""What the admin listener shows of a running gateway, and how it gets there.

Each gateway process takes a `snapshot` of itself a few times a second (`Monitor`): its
phase, readiness, routes, pools with their queues and backends (health, limit, load),
and its latest errors. The snapshot sets the metrics' gauges, so the hot path never
touches a gauge. What serves the admin API reads snapshots through a `StateSource`:

- `LocalSource`: `serve` with one worker, the admin listener in the gateway's process:
  the snapshot is taken when asked, and a drain is a method call.
- `DirSource`: `serve --workers N`: each worker writes its snapshot to
  `state-PID.json` in a run directory and reads the operator's wishes from
  `control.json` there (which backends are drained); the admin process merges the
  snapshots of the live workers (`merge`) and writes `control.json`. The files and how
  they are read and written are run_dir.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from wsgate.config.model import Config
from wsgate.findings import CATALOGUE
from wsgate.gateway.pool import Pool
from wsgate.gateway.run_dir import (
    CONTROL_FILE,
    METRICS_DIR,
    read_control,
    worker_snapshots,
    write_drained,
    write_snapshot,
)
from wsgate.observe.metrics import Metrics, scrape_registry


class Gateway(Protocol):
    """What the monitor reads of the running gateway (server.Gateway): a Protocol, so
    that the monitor and the admin listener need not import the server that starts them."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def config(self) -> Config: ...
    @property
    def pools(self) -> Mapping[str, Pool]: ...
    @property
    def connections(self) -> Collection[object]: ...
    @property
    def phase(self) -> enum.Enum: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def recorder(self) -> ErrorRecorder | None: ...
    def bound_addresses(self) -> list[str]: ...
    def drain_backend(self, name: str, drained: bool, over_s: float) -> int: ...


TICK_S = 0.5  # how often a gateway takes its snapshot
RECENT_ERRORS = 50  # errors kept for the dashboard, per process


class ErrorRecorder:
    """The log's observer (`observe.log.LogObserver`): counts every error line in the
    metrics and keeps the latest ones for the dashboard."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.recent: deque[tuple[float, str, Any, Any, Any]] = deque(maxlen=RECENT_ERRORS)

    def on_error(self, cause: str, fields: dict[str, Any]) -> None:
        pool = fields.get("pool")
        if self.metrics is not None:
            self.metrics.error(pool, cause)
        self.recent.append((time.time(), cause, pool, fields.get("backend"), fields.get("detail")))

    def on_event(self, event: str, fields: dict[str, Any]) -> None:
        if event == "sighup_ignored" and self.metrics is not None:
            self.metrics.reload("unsupported")

    def errors(self) -> list[dict[str, Any]]:
        return [
            {"time": at, "cause": cause, "pool": pool, "backend": backend, "detail": detail}
            for at, cause, pool, backend, detail in self.recent
        ]


def explain(cause: str) -> dict[str, Any]:
    """The catalogue's words for a cause: HTTP status, what happened and the fix."""
    found = CATALOGUE.get(cause)
    if found is None:
        return {"status": None, "summary": "", "fix": ""}
    return {"status": found.status, "summary": found.summary, "fix": found.fix}


# == one process's snapshot ==================================================================
def snapshot(gw: Gateway, recorder: ErrorRecorder | None) -> dict[str, Any]:
    """Everything the admin API shows of this gateway process, as plain JSON values."""
    now = gw.loop.time()
    pools: dict[str, Any] = {}
    for name, pool in gw.pools.items():
        backends = []
        for b in pool.backends:
            health = b.health
            ejected = health.ejected_until > now
            backends.append(
                {
                    "name": b.name,
                    "up": health.up,
                    "ejected": ejected,
                    "ejected_for_s": round(health.ejected_until - now, 1) if ejected else 0.0,
                    "drained": health.drained,
                    "healthy": health.up and not ejected and not health.drained,
                    "share": round(health.share(now), 3),
                    "limit": b.handshake_capacity(now),
                    "inflight": b.inflight,
                    "tunnels": b.connections,
                    "open": len(b.open),
                }
            )
        pools[name] = {
            "queue": len(pool.queue),
            "queue_size": pool.config.queue_size,
            "queue_timeout_s": pool.config.queue_timeout_s,
            "inflight": pool.admission.inflight,
            "backends": backends,
        }
    routes = [
        {"host": r.host, "path_prefix": r.path_prefix, "pool": r.pool} for r in gw.config.routes
    ]
    ready, reasons = readiness(gw.phase.value, gw.bound_addresses(), routes, pools)
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "phase": gw.phase.value,
        "listening": gw.bound_addresses(),
        "connections": len(gw.connections),
        "ready": ready,
        "reasons": reasons,
        "routes": routes,
        "pools": pools,
        "errors": recorder.errors() if recorder is not None else [],
    }


def readiness(
    phase: str, listening: list[str], routes: list[dict[str, Any]], pools: Mapping[str, Any]
) -> tuple[bool, list[str]]:
    """Ready: running, listening, and every route's pool has a healthy backend."""
    reasons = []
    if phase != "running":
        reasons.append(f"the gateway is {phase}")
    if not listening:
        reasons.append("not listening")
    for route in routes:
        pool = pools.get(route["pool"])
        if pool is not None and not any(b["healthy"] for b in pool["backends"]):
            reasons.append(
                f"route {route['host']}{route['path_prefix']}: pool {route['pool']} has no "
                "healthy backend"
            )
    return not reasons, sorted(set(reasons))


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Several workers' snapshots as one: counts add up, a backend is healthy (and
    up) only where every worker says so, ejected or drained where any does, and its
    slow-start share is the smallest."""
    if not snapshots:
        return {
            "workers": 0,
            "phase": "starting",
            "ready": False,
            "reasons": ["no worker has reported yet"],
            "listening": [],
            "connections": 0,
            "routes": [],
            "pools": {},
            "errors": [],
        }
    first = snapshots[0]
    pools: dict[str, Any] = json.loads(json.dumps(first["pools"]))  # a deep copy
    for other in snapshots[1:]:
        for name, pool in other["pools"].items():
            into = pools.setdefault(name, pool)
            if into is pool:
                continue
            for key in ("queue", "queue_size", "inflight"):
                into[key] += pool[key]
            by_name = {b["name"]: b for b in into["backends"]}
            for b in pool["backends"]:
                mine = by_name.get(b["name"])
                if mine is None:
                    into["backends"].append(b)
                    continue
                for key in ("limit", "inflight", "tunnels", "open"):
                    mine[key] += b[key]
                for key in ("up", "healthy"):
                    mine[key] = mine[key] and b[key]
                for key in ("ejected", "drained"):
                    mine[key] = mine[key] or b[key]
                mine["ejected_for_s"] = max(mine["ejected_for_s"], b["ejected_for_s"])
                mine["share"] = min(mine["share"], b["share"])
    phases = {s["phase"] for s in snapshots}
    phase = "running" if phases == {"running"} else sorted(phases - {"running"})[0]
    errors = sorted((e for s in snapshots for e in s["errors"]), key=lambda e: e["time"])
    reasons = sorted({r for s in snapshots for r in s["reasons"]})
    return {
        "workers": len(snapshots),
        "phase": phase,
        "ready": all(s["ready"] for s in snapshots),
        "reasons": reasons,
        "listening": sorted({a for s in snapshots for a in s["listening"]}),
        "connections": sum(s["connections"] for s in snapshots),
        "routes": first["routes"],
        "pools": pools,
        "errors": errors[-RECENT_ERRORS:],
    }


def backend_names(state: Mapping[str, Any]) -> set[str]:
    return {b["name"] for pool in state["pools"].values() for b in pool["backends"]}


# == where the admin listener reads ============================================================
class StateSource(Protocol):
    """What the admin listener reads and asks, wherever the gateway runs."""

    def state(self) -> dict[str, Any]:
        """The merged snapshot (see `merge`), with `workers`."""
        ...

    def registry(self) -> CollectorRegistry | None:
        """Where /metrics comes from; None when metrics are off."""
        ...

    def set_drained(self, backend: str, drained: bool, over_s: float) -> None: ...


class LocalSource:
    """The admin listener in the gateway's own process (one worker)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def state(self) -> dict[str, Any]:
        return merge([snapshot(self.gw, self.gw.recorder)])

    def registry(self) -> CollectorRegistry | None:
        return self.gw.metrics.registry if self.gw.metrics is not None else None

    def set_drained(self, backend: str, drained: bool, over_s: float) -> None:
        self.gw.drain_backend(backend, drained, over_s)


class DirSource:
    """The admin process of `serve --workers N`: the workers' snapshots in `run_dir`."""

    def __init__(self, run_dir: Path, *, metrics: bool) -> None:
        self.run_dir = run_dir
        self.metrics = metrics
        self._registry = scrape_registry(run_dir / METRICS_DIR) if metrics else None

    def snapshots(self) -> list[dict[str, Any]]:
        return worker_snapshots(self.run_dir)

    def state(self) -> dict[str, Any]:
        return merge(self.snapshots())

    def registry(self) -> CollectorRegistry | None:
        return self._registry

    def set_drained(self, backend: str, drained: bool, over_s: float) -> None:
        write_drained(self.run_dir, backend, drained, over_s)


# == the gateway's side ==========================================================================
class Monitor:
    """A gateway's tick: every TICK_S take the snapshot, set the gauges from it, and
    under `--workers N` publish it in `run_dir` and follow `control.json`."""

    def __init__(self, gw: Gateway, run_dir: Path | None) -> None:
        self.gw = gw
        self.run_dir = run_dir
        self._timer: asyncio.TimerHandle | None = None
        self._control_mtime = 0
        self._drained: dict[str, float] = {}

    def start(self) -> None:
        self._tick()

    def _tick(self) -> None:
        self._timer = self.gw.loop.call_later(TICK_S, self._tick)
        self.publish()
        if self.run_dir is not None:
            self._follow_control(self.run_dir / CONTROL_FILE)

    def publish(self) -> dict[str, Any]:
        gw = self.gw
        state = snapshot(gw, gw.recorder)
        if gw.metrics is not None:
            gw.metrics.set_gauges(state)
        if self.run_dir is not None:
            with contextlib.suppress(OSError):
                write_snapshot(self.run_dir, state)
        return state

    def _follow_control(self, path: Path) -> None:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        if mtime == self._control_mtime:
            return
        self._control_mtime = mtime
        wanted = read_control(path)
        # A backend a reload removed is no longer there to drain or enable: skipped.
        for name in set(self._drained) - set(wanted):
            with contextlib.suppress(KeyError):
                self.gw.drain_backend(name, False, 0.0)
        for name, over_s in wanted.items():
            if name not in self._drained:
                with contextlib.suppress(KeyError):
                    self.gw.drain_backend(name, True, over_s)
        self._drained = wanted

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.run_dir is not None:
            # The last word: the admin process shows this worker's phase until it is gone.
            self.publish()


def names_in(state: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    known = backend_names(state)
    return [n for n in names if n in known]

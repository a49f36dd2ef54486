"""The gateway's Prometheus metrics, with `prometheus_client`.

One `Metrics` object per gateway (per worker process) owns every metric, in its own
registry. The hot path calls a few methods (`handshake_done`, `admission`, `tunnel_opened`,
`tunnel_closed`, `error`) that find the labelled child in a dict and add to it: no label
formatting, no lock beyond prometheus_client's own. Gauges are not touched on the hot
path: `set_gauges` copies them from the gateway's snapshot a few times a second.

Under `serve --workers N` every worker writes its values to a memory-mapped file in one
directory (prometheus_client's multiprocess mode, `use_multiprocess_dir` before any
metric exists) and the admin process adds them up (`scrape_registry`). Each gauge says
how its workers' values combine: `livesum` for counts (queue length, tunnels, in-flight
handshakes, limits), `livemin` for health and slow-start share, `livemax` for ejected and
drained, so that a backend is healthy only when every worker sees it healthy.

Label values are bounded: pools and backends come from the config, causes from the
catalogue (anything else counts as "other"), outcomes and decisions from fixed sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from wsgate.findings import CATALOGUE

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A handshake at a healthy backend takes milliseconds; a storm pushes it to
# seconds; response_timeout_s defaults to 60.
HANDSHAKE_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# The queue's timeout defaults to 30 s.
QUEUE_WAIT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip

OUTCOMES = ("ok", "failed", "dropped", "aborted")
# What admission answered a handshake: a slot at once, a place in line, a slot after
# waiting, or one of the refusals (`shed`: turned away early because the measured drain
# rate says it would time out in line).
DECISIONS = (
    "admitted",
    "queued",
    "dequeued",
    "queue_full",
    "queue_timeout",
    "shed",
    "no_healthy_upstream",
    "at_capacity",
    "shutting_down",
)
OTHER = "other"
NO_POOL = ""  # an error before any route matched (a bad request, no route)
PHASES = ("running", "draining", "stopping", "stopped")

# No `_created` series: multiprocess mode has none, and one worker should read like N.
disable_created_metrics()  # type: ignore[no-untyped-call]


def use_multiprocess_dir(path: Path) -> None:
    """From now on, metrics created in this process (and in processes it forks) write to
    files in `path`, for `scrape_registry(path)` to add up. Call before any `Metrics`."""
    os.environ[MULTIPROC_ENV] = str(path)
    # prometheus_client picks its value class when imported; pick again.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> Path | None:
    found = os.environ.get(MULTIPROC_ENV)
    return Path(found) if found else None


def scrape_registry(path: Path) -> CollectorRegistry:
    """A registry that reads every worker's files in `path`, combined."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry


def worker_gone(pid: int, path: Path) -> None:
    """A worker ended: its `live*` gauges no longer count (its counters still do)."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of everything in `registry`."""
    return generate_latest(registry)


def bounded_cause(cause: str) -> str:
    return cause if cause in CATALOGUE else OTHER


class Metrics:
    """Every metric of one gateway process; see the module docstring."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self.registry = r
        self.handshakes = Counter(
            "wsgate_handshakes",
            "WebSocket handshakes that held a slot on a backend, by how the slot ended: ok "
            "(the backend answered), failed (refused, closed, bad answer), dropped (timed "
            "out), aborted (the client left or the gateway stopped).",
            ["pool", "backend", "outcome"],
            registry=r,
        )
        self.upgrades = Counter(
            "wsgate_upgrades",
            "101 Switching Protocols relayed to clients: WebSocket tunnels opened.",
            ["pool", "backend"],
            registry=r,
        )
        self.errors = Counter(
            "wsgate_errors",
            "Errors the gateway answered or logged, by cause code (see the README's cause "
            "table); pool is empty before a route matched.",
            ["pool", "cause"],
            registry=r,
        )
        self.decisions = Counter(
            "wsgate_admission_decisions",
            "Handshake admission decisions: admitted (a slot at once), queued, dequeued (a "
            "slot after waiting), queue_full, queue_timeout, shed (turned away early: the "
            "line would outlast the queue timeout), no_healthy_upstream, at_capacity, "
            "shutting_down.",
            ["pool", "decision"],
            registry=r,
        )
        self.handshake_seconds = Histogram(
            "wsgate_handshake_duration_seconds",
            "From a handshake's slot on a backend to the backend's answer, for answered "
            "handshakes (outcome ok).",
            ["pool"],
            buckets=HANDSHAKE_BUCKETS_S,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "wsgate_queue_wait_seconds",
            "Time a handshake waited in its pool's queue, whether it got a slot or was "
            "turned away.",
            ["pool"],
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=r,
        )
        self.tunnel_bytes = Counter(
            "wsgate_tunnel_bytes",
            "Bytes carried by WebSocket tunnels, counted when a tunnel ends: direction up "
            "is client to backend, down is backend to client.",
            ["pool", "direction"],
            registry=r,
        )
        self.ejections = Counter(
            "wsgate_backend_ejections",
            "Passive ejections: a backend taken out after consecutive failures.",
            ["pool", "backend"],
            registry=r,
        )
        self.retries = Counter(
            "wsgate_retries",
            "Attempts on another backend after a failure before anything reached the client.",
            ["pool"],
            registry=r,
        )
        self.budget_refusals = Counter(
            "wsgate_retry_budget_refusals",
            "Retries the pool's retry budget refused (the error went to the client).",
            ["pool"],
            registry=r,
        )
        self.reloads = Counter(
            "wsgate_reloads",
            "Config reloads (SIGHUP): result ok, failed (the old config stays) or unsupported.",
            ["result"],
            registry=r,
        )
        self.backend_drains = Counter(
            "wsgate_backend_admin_actions",
            "Backends drained or enabled through the admin API.",
            ["pool", "backend", "action"],
            registry=r,
        )
        # -- gauges, set from the snapshot (see set_gauges) -------------------------------
        self.queue_length = Gauge(
            "wsgate_queue_length",
            "Handshakes waiting in the pool's queue for a slot.",
            ["pool"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_capacity = Gauge(
            "wsgate_queue_capacity",
            "Places in the pool's queue (queue_size; summed over workers).",
            ["pool"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.inflight = Gauge(
            "wsgate_handshakes_in_flight",
            "Handshakes holding a slot on the backend now.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.limit = Gauge(
            "wsgate_handshake_limit",
            "Handshakes the backend may have in flight now: the adaptive (or fixed) limit "
            "times the slow-start share, summed over workers.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.tunnels = Gauge(
            "wsgate_tunnels_open",
            "WebSocket tunnels open to the backend.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.healthy = Gauge(
            "wsgate_backend_healthy",
            "1 when the backend takes new handshakes (up, not ejected, not drained) in "
            "every worker, else 0.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ejected = Gauge(
            "wsgate_backend_ejected",
            "1 while the backend is ejected after consecutive failures (in any worker).",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.drained = Gauge(
            "wsgate_backend_drained",
            "1 while the backend is drained through the admin API.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.share = Gauge(
            "wsgate_backend_slow_start_share",
            "The share of its limit a backend gets while it ramps up after coming back "
            "(slow start), from 0.05 to 1.",
            ["pool", "backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.connections = Gauge(
            "wsgate_client_connections",
            "Client connections open (requests, handshakes and tunnels).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.workers = Gauge(
            "wsgate_workers",
            "Worker processes in each phase (running, draining, stopping, stopped).",
            ["phase"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self._handshakes: dict[tuple[str, str, str], Any] = {}
        self._upgrades: dict[tuple[str, str], Any] = {}
        self._errors: dict[tuple[str, str], Any] = {}
        self._decisions: dict[tuple[str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self._waits: dict[str, Any] = {}
        self._bytes: dict[str, tuple[Any, Any]] = {}

    # == the hot path =======================================================================
    def handshake_done(self, pool: str, backend: str, outcome: str, rtt_s: float) -> None:
        key = (pool, backend, outcome)
        child = self._handshakes.get(key)
        if child is None:
            child = self._handshakes[key] = self.handshakes.labels(
                pool, backend, outcome if outcome in OUTCOMES else OTHER
            )
        child.inc()
        if outcome == "ok":
            latency = self._latency.get(pool)
            if latency is None:
                latency = self._latency[pool] = self.handshake_seconds.labels(pool)
            latency.observe(rtt_s)

    def admission(self, pool: str, decision: str) -> None:
        key = (pool, decision)
        child = self._decisions.get(key)
        if child is None:
            child = self._decisions[key] = self.decisions.labels(
                pool, decision if decision in DECISIONS else OTHER
            )
        child.inc()

    def queue_wait(self, pool: str, wait_s: float) -> None:
        child = self._waits.get(pool)
        if child is None:
            child = self._waits[pool] = self.queue_seconds.labels(pool)
        child.observe(wait_s)

    def tunnel_opened(self, pool: str, backend: str) -> None:
        key = (pool, backend)
        child = self._upgrades.get(key)
        if child is None:
            child = self._upgrades[key] = self.upgrades.labels(pool, backend)
        child.inc()

    def tunnel_closed(self, pool: str, bytes_up: int, bytes_down: int) -> None:
        pair = self._bytes.get(pool)
        if pair is None:
            pair = self._bytes[pool] = (
                self.tunnel_bytes.labels(pool, "up"),
                self.tunnel_bytes.labels(pool, "down"),
            )
        if bytes_up:
            pair[0].inc(bytes_up)
        if bytes_down:
            pair[1].inc(bytes_down)

    def error(self, pool: str | None, cause: str) -> None:
        key = (pool or NO_POOL, cause)
        child = self._errors.get(key)
        if child is None:
            child = self._errors[key] = self.errors.labels(key[0], bounded_cause(cause))
        child.inc()

    # == rarer events =======================================================================
    def ejection(self, pool: str, backend: str) -> None:
        self.ejections.labels(pool, backend).inc()

    def retry(self, pool: str, allowed: bool) -> None:
        (self.retries if allowed else self.budget_refusals).labels(pool).inc()

    def reload(self, result: str) -> None:
        self.reloads.labels(result).inc()

    def admin_action(self, pool: str, backend: str, action: str) -> None:
        self.backend_drains.labels(pool, backend, action).inc()

    # == gauges from the snapshot ===========================================================
    def set_gauges(self, snapshot: Mapping[str, Any]) -> None:
        """Copy a gateway snapshot (`gateway.admin.snapshot`) into the gauges."""
        self.connections.set(snapshot.get("connections", 0))
        phase = snapshot.get("phase", "running")
        for name in PHASES:
            self.workers.labels(name).set(1 if name == phase else 0)
        pools: Mapping[str, Any] = snapshot.get("pools", {})
        for pool_name, pool in pools.items():
            self.queue_length.labels(pool_name).set(pool["queue"])
            self.queue_capacity.labels(pool_name).set(pool["queue_size"])
            for b in pool["backends"]:
                labels = (pool_name, b["name"])
                self.inflight.labels(*labels).set(b["inflight"])
                self.limit.labels(*labels).set(b["limit"])
                self.tunnels.labels(*labels).set(b["tunnels"])
                self.healthy.labels(*labels).set(1 if b["healthy"] else 0)
                self.ejected.labels(*labels).set(1 if b["ejected"] else 0)
                self.drained.labels(*labels).set(1 if b["drained"] else 0)
                self.share.labels(*labels).set(b["share"])


def sample_value(
    families: Iterable[Any], name: str, labels: Mapping[str, str] | None = None
) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    want = dict(labels or {})
    for family in families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in want.items()):
                total += sample.value
    return total

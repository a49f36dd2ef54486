"""The live dashboard's data: one frame a second, made from the metrics (rates,
percentiles) and the gateway's merged snapshot (backends, queue, latest errors). Pure:
metric families, the state and `now` in, a JSON-ready dict out.

Rates are the change of a counter since the previous frame; latency percentiles come
from the histogram buckets' change over the last `WINDOW_S`, interpolated inside a bucket
as Prometheus's `histogram_quantile` does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wsgate.findings import CATALOGUE

WINDOW_S = 10.0  # latency percentiles over this much of the recent past
FRAME_ERRORS = 12  # latest errors shown


@dataclass
class Totals:
    """The counters and histogram buckets of one collection, summed over labels."""

    upgrades: float = 0.0
    by_status: dict[str, float] = field(default_factory=dict)  # errors by HTTP status
    by_cause: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, float] = field(default_factory=dict)
    bytes_up: float = 0.0
    bytes_down: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    queue_wait: dict[float, float] = field(default_factory=dict)


def _add(into: dict[Any, float], key: Any, value: float) -> None:
    into[key] = into.get(key, 0.0) + value


def _series(found: Any) -> str:
    """An error's line on the rate chart: its HTTP status, or "tunnel" for the causes
    that end a tunnel with a close code."""
    if found is None:
        return "other"
    if found.status:
        return str(found.status)
    return "tunnel" if found.close_code else "other"


def totals(families: Iterable[Any]) -> Totals:
    """Sum what the dashboard plots out of collected metric families."""
    t = Totals()
    for family in families:
        for s in family.samples:
            name = s.name
            if name == "wsgate_upgrades_total":
                t.upgrades += s.value
            elif name == "wsgate_errors_total":
                cause = s.labels.get("cause", "other")
                found = CATALOGUE.get(cause)
                _add(t.by_status, _series(found), s.value)
                _add(t.by_cause, cause, s.value)
            elif name == "wsgate_admission_decisions_total":
                _add(t.decisions, s.labels.get("decision", "other"), s.value)
            elif name == "wsgate_tunnel_bytes_total":
                if s.labels.get("direction") == "up":
                    t.bytes_up += s.value
                else:
                    t.bytes_down += s.value
            elif name == "wsgate_handshake_duration_seconds_bucket":
                _add(t.latency, float(s.labels["le"]), s.value)
            elif name == "wsgate_queue_wait_seconds_bucket":
                _add(t.queue_wait, float(s.labels["le"]), s.value)
    return t


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a histogram from its cumulative buckets (le -> count), or
    None when it holds no observation."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _delta(now: Mapping[Any, float], before: Mapping[Any, float]) -> dict[Any, float]:
    return {k: max(0.0, v - before.get(k, 0.0)) for k, v in now.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def backend_status(b: Mapping[str, Any]) -> str:
    """One word for the table's colour: drained, down, ejected, slow_start or ok."""
    if b["drained"]:
        return "drained"
    if not b["up"]:
        return "down"
    if b["ejected"]:
        return "ejected"
    if b["share"] < 1:
        return "slow_start"
    return "ok"


class Feed:
    """Frames for the dashboard; keeps the previous totals to make rates."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, Totals]] = deque()

    def frame(
        self, families: Iterable[Any] | None, state: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        current = totals(families) if families is not None else Totals()
        previous = self._history[-1] if self._history else None
        while self._history and now - self._history[0][0] > WINDOW_S:
            self._history.popleft()
        oldest = self._history[0] if self._history else None
        self._history.append((now, current))
        rates: dict[str, float] = {}
        decisions: dict[str, float] = {}
        bytes_per_s = {"up": 0.0, "down": 0.0}
        if previous is not None and now > previous[0]:
            dt = now - previous[0]
            before = previous[1]
            rates["101"] = round(max(0.0, current.upgrades - before.upgrades) / dt, 2)
            for status, value in _delta(current.by_status, before.by_status).items():
                rates[status] = round(value / dt, 2)
            decisions = {
                k: round(v / dt, 2) for k, v in _delta(current.decisions, before.decisions).items()
            }
            bytes_per_s = {
                "up": round(max(0.0, current.bytes_up - before.bytes_up) / dt, 1),
                "down": round(max(0.0, current.bytes_down - before.bytes_down) / dt, 1),
            }
        base = oldest[1] if oldest is not None else Totals()
        latency = _delta(current.latency, base.latency)
        waits = _delta(current.queue_wait, base.queue_wait)
        pools = state.get("pools", {})
        backends = [
            {"pool": pool_name, **b, "status": backend_status(b)}
            for pool_name, pool in pools.items()
            for b in pool["backends"]
        ]
        errors = []
        for e in list(state.get("errors", []))[-FRAME_ERRORS:][::-1]:
            found = CATALOGUE.get(e["cause"])
            errors.append(
                {
                    **e,
                    "status": found.status if found else None,
                    "summary": found.summary if found else "",
                    "fix": found.fix if found else "",
                }
            )
        return {
            "time": now,
            "workers": state.get("workers", 0),
            "phase": state.get("phase"),
            "ready": state.get("ready", False),
            "reasons": state.get("reasons", []),
            "rates": rates,
            "decisions": decisions,
            "bytes_per_s": bytes_per_s,
            "connections": state.get("connections", 0),
            "tunnels": sum(b["tunnels"] for b in backends),
            "inflight": sum(b["inflight"] for b in backends),
            "queue": sum(p["queue"] for p in pools.values()),
            "queue_size": sum(p["queue_size"] for p in pools.values()),
            "latency_ms": {
                "p50": _ms(quantile(0.5, latency)),
                "p90": _ms(quantile(0.9, latency)),
                "p99": _ms(quantile(0.99, latency)),
            },
            "queue_wait_ms": {
                "p50": _ms(quantile(0.5, waits)),
                "p99": _ms(quantile(0.99, waits)),
            },
            "causes": {k: v for k, v in sorted(current.by_cause.items()) if v},
            "backends": backends,
            "errors": errors,
        }

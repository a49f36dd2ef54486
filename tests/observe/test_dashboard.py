"""The dashboard's frames: quantiles from buckets, rates between frames, the table."""

from __future__ import annotations

import math

import pytest

from wsgate.observe.dashboard import Feed, backend_status, quantile
from wsgate.observe.metrics import Metrics

STATE = {
    "workers": 2,
    "phase": "running",
    "ready": True,
    "reasons": [],
    "connections": 4,
    "pools": {
        "app": {
            "queue": 2,
            "queue_size": 8,
            "backends": [
                {"name": "b1", "up": True, "ejected": False, "drained": False, "share": 1.0,
                 "healthy": True, "limit": 8, "inflight": 1, "tunnels": 3},
                {"name": "b2", "up": True, "ejected": True, "drained": False, "share": 1.0,
                 "healthy": False, "limit": 1, "inflight": 0, "tunnels": 0},
            ],
        }
    },
    "errors": [{"time": 1.0, "cause": "upstream_connect_refused", "pool": "app",
                "backend": "b2", "detail": "refused"}],
}  # fmt: skip


def test_quantile() -> None:
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {1.0: 0, math.inf: 0}) is None
    buckets = {0.1: 50.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.55)
    assert quantile(0.25, buckets) == pytest.approx(0.05)
    assert quantile(0.99, {1.0: 0.0, math.inf: 10.0}) == 1.0  # past the last bound


def test_rates_between_frames() -> None:
    m = Metrics()
    feed = Feed()
    first = feed.frame(list(m.registry.collect()), STATE, 100.0)
    assert first["rates"] == {} and first["latency_ms"]["p50"] is None
    for _ in range(10):
        m.tunnel_opened("app", "b1")
        m.handshake_done("app", "b1", "ok", 0.004)
    for _ in range(4):
        m.error("app", "overloaded_queue_full")
    m.error("app", "upstream_connect_refused")
    m.tunnel_closed("app", 1000, 3000)
    frame = feed.frame(list(m.registry.collect()), STATE, 102.0)
    assert frame["rates"] == {"101": 5.0, "503": 2.0, "502": 0.5}
    assert frame["bytes_per_s"] == {"up": 500.0, "down": 1500.0}
    assert 2.5 < frame["latency_ms"]["p50"] <= 5.0
    assert (frame["tunnels"], frame["queue"], frame["queue_size"]) == (3, 2, 8)
    assert frame["causes"] == {"overloaded_queue_full": 4.0, "upstream_connect_refused": 1.0}
    assert [b["status"] for b in frame["backends"]] == ["ok", "ejected"]
    (error,) = frame["errors"]
    assert error["status"] == 502 and "refused" in error["summary"] and error["fix"]


def test_frames_without_metrics() -> None:
    frame = Feed().frame(None, STATE, 1.0)
    assert frame["rates"] == {} and frame["tunnels"] == 3


def test_backend_status() -> None:
    base = {"up": True, "ejected": False, "drained": False, "share": 1.0}
    assert backend_status(base) == "ok"
    assert backend_status({**base, "share": 0.3}) == "slow_start"
    assert backend_status({**base, "ejected": True}) == "ejected"
    assert backend_status({**base, "up": False, "ejected": True}) == "down"
    assert backend_status({**base, "up": False, "drained": True}) == "drained"

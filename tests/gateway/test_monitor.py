"""Snapshots of several workers merged, readiness and its reasons, the admin process's
view of the run directory (DirSource)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from wsgate.gateway.monitor import DirSource, merge, readiness
from wsgate.gateway.run_dir import CONTROL_FILE, read_control


def backend(**changes: Any) -> dict[str, Any]:
    found = {
        "name": "b1", "up": True, "ejected": False, "ejected_for_s": 0.0, "drained": False,
        "healthy": True, "share": 1.0, "limit": 8, "inflight": 1, "tunnels": 2, "open": 3,
    }  # fmt: skip
    found.update(changes)
    return found


def snap(pid: int, at: float, **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "pid": pid,
        "time": at,
        "phase": "running",
        "listening": ["127.0.0.1:8080"],
        "connections": 5,
        "ready": True,
        "reasons": [],
        "routes": [{"host": "*", "path_prefix": "/", "pool": "app"}],
        "pools": {
            "app": {
                "queue": 1,
                "queue_size": 4,
                "queue_timeout_s": 30.0,
                "inflight": 1,
                "backends": [backend()],
            },
        },
        "errors": [{"time": at, "cause": "no_route"}],
    }
    found.update(changes)
    return found


def test_merge_adds_counts_and_is_strict_on_health() -> None:
    second = snap(2, 20.0)
    second["pools"]["app"]["backends"] = [
        backend(healthy=False, ejected=True, ejected_for_s=3.0, share=0.5, up=True)
    ]
    first = snap(1, 10.0)
    before = copy.deepcopy(first)
    merged = merge([first, second])
    assert first == before  # the snapshots are not changed
    pool = merged["pools"]["app"]
    assert (pool["queue"], pool["queue_size"], pool["inflight"]) == (2, 8, 2)
    (b,) = pool["backends"]
    assert (b["limit"], b["inflight"], b["tunnels"], b["open"]) == (16, 2, 4, 6)
    assert b["up"] and not b["healthy"] and b["ejected"] and b["ejected_for_s"] == 3.0
    assert b["share"] == 0.5
    assert merged["workers"] == 2 and merged["connections"] == 10
    assert [e["time"] for e in merged["errors"]] == [10.0, 20.0]


def test_merge_phase_and_readiness() -> None:
    draining = snap(2, 1.0, phase="draining", ready=False, reasons=["the gateway is draining"])
    merged = merge([snap(1, 1.0), draining])
    assert merged["phase"] == "draining" and not merged["ready"]
    assert merged["reasons"] == ["the gateway is draining"]
    empty = merge([])
    assert not empty["ready"] and empty["reasons"] == ["no worker has reported yet"]


def test_readiness_reasons() -> None:
    routes = [{"host": "*", "path_prefix": "/ws", "pool": "app"}]
    healthy = {"app": {"backends": [backend()]}}
    assert readiness("running", ["a"], routes, healthy) == (True, [])
    sick = {"app": {"backends": [backend(healthy=False)]}}
    ready, reasons = readiness("draining", [], routes, sick)
    assert not ready
    assert reasons == [
        "not listening",
        "route */ws: pool app has no healthy backend",
        "the gateway is draining",
    ]


def test_dir_source_merges_the_workers_snapshots_and_writes_control(tmp_path: Path) -> None:
    mine = os.getpid()
    (tmp_path / f"state-{mine}.json").write_text(json.dumps(snap(mine, 1e12)))
    source = DirSource(tmp_path, metrics=False)
    state = source.state()
    assert (state["workers"], state["ready"], state["connections"]) == (1, True, 5)
    assert source.registry() is None
    source.set_drained("b1", True, 5.0)
    source.set_drained("b2", True, 0.0)
    source.set_drained("b2", False, 0.0)
    assert read_control(tmp_path / CONTROL_FILE) == {"b1": 5.0}


def test_stale_worker_is_not_ready(tmp_path: Path) -> None:
    mine = os.getpid()
    (tmp_path / f"state-{mine}.json").write_text(json.dumps(snap(mine, 1.0)))
    state = DirSource(tmp_path, metrics=False).state()
    assert not state["ready"] and "has not reported for 5 s" in state["reasons"][0]

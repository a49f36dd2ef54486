"""The run directory of `serve --workers N`, on real files: snapshots written whole and
read back (live, dead, stale and half-written workers), control.json's drains, and
what is left of a worker that is gone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wsgate.gateway.run_dir import (
    CONTROL_FILE,
    METRICS_DIR,
    forget_worker,
    read_control,
    worker_snapshots,
    write_drained,
    write_json,
    write_snapshot,
)

# Beyond any pid_max (4194304 at most on Linux): no such process, ever.
DEAD_PID = 999_999_999


def snap(pid: int, at: float) -> dict[str, Any]:
    """The fields of a worker's snapshot that reading the run directory looks at."""
    return {"pid": pid, "time": at, "ready": True, "reasons": ["a reason of its own"]}


def test_write_json_writes_the_whole_file_and_leaves_no_temporary_behind(
    tmp_path: Path,
) -> None:
    path = tmp_path / "thing.json"
    write_json(path, {"a": [1, 2]})
    write_json(path, {"b": "second"})  # replaced whole
    assert json.loads(path.read_text()) == {"b": "second"}
    assert [p.name for p in tmp_path.iterdir()] == ["thing.json"]


def test_a_snapshot_written_is_read_back_while_its_worker_lives(tmp_path: Path) -> None:
    state = snap(os.getpid(), 1e12)
    write_snapshot(tmp_path, state)
    assert (tmp_path / f"state-{os.getpid()}.json").exists()
    assert worker_snapshots(tmp_path) == [state]


def test_dead_half_written_and_misnamed_snapshots_are_skipped(tmp_path: Path) -> None:
    mine = os.getpid()
    write_json(tmp_path / f"state-{mine}.json", snap(mine, 1e12))
    write_json(tmp_path / f"state-{DEAD_PID}.json", snap(DEAD_PID, 1e12))
    (tmp_path / "state-1.json").write_text("{half a fi")
    write_json(tmp_path / "state-x.json", snap(2, 1e12))
    assert [s["pid"] for s in worker_snapshots(tmp_path)] == [mine]
    assert not (tmp_path / f"state-{DEAD_PID}.json").exists()  # a dead worker is forgotten
    assert (tmp_path / "state-1.json").exists()  # unreadable, so nobody to forget


def test_a_stale_snapshot_says_its_worker_is_not_ready(tmp_path: Path) -> None:
    mine = os.getpid()
    write_json(tmp_path / f"state-{mine}.json", snap(mine, 1.0))  # long ago
    (state,) = worker_snapshots(tmp_path)
    assert not state["ready"]
    assert state["reasons"] == ["a reason of its own", f"worker {mine} has not reported for 5 s"]


def test_forget_worker_removes_its_snapshot_and_its_live_gauges(tmp_path: Path) -> None:
    metrics = tmp_path / METRICS_DIR
    metrics.mkdir()
    # prometheus_client's multiprocess file names: live gauges end with their process,
    # counters outlive it.
    live = metrics / f"gauge_livesum_{DEAD_PID}.db"
    counter = metrics / f"counter_{DEAD_PID}.db"
    other = metrics / "gauge_livesum_1.db"
    for path in (live, counter, other):
        path.write_bytes(b"")
    write_json(tmp_path / f"state-{DEAD_PID}.json", snap(DEAD_PID, 1e12))
    forget_worker(tmp_path, DEAD_PID)
    assert not (tmp_path / f"state-{DEAD_PID}.json").exists()
    assert not live.exists() and counter.exists() and other.exists()
    forget_worker(tmp_path, DEAD_PID)  # twice: nothing left to remove, no error


def test_forget_worker_without_metrics(tmp_path: Path) -> None:
    write_json(tmp_path / f"state-{DEAD_PID}.json", snap(DEAD_PID, 1e12))
    forget_worker(tmp_path, DEAD_PID)
    assert list(tmp_path.iterdir()) == []


def test_write_drained_keeps_the_operators_wishes_in_control_json(tmp_path: Path) -> None:
    write_drained(tmp_path, "b1", True, 5.0)
    write_drained(tmp_path, "b2", True, 0.0)
    write_drained(tmp_path, "b2", False, 0.0)
    write_drained(tmp_path, "b3", False, 0.0)  # put back what was never drained
    assert read_control(tmp_path / CONTROL_FILE) == {"b1": 5.0}
    assert json.loads((tmp_path / CONTROL_FILE).read_text()) == {"drained": {"b1": 5.0}}


def test_write_drained_over_a_garbled_control_file(tmp_path: Path) -> None:
    (tmp_path / CONTROL_FILE).write_text("{half")
    write_drained(tmp_path, "b1", True, 2.5)
    assert read_control(tmp_path / CONTROL_FILE) == {"b1": 2.5}


def test_read_control_survives_garbage(tmp_path: Path) -> None:
    path = tmp_path / CONTROL_FILE
    assert read_control(path) == {}
    for text in ("nope", "[]", '{"drained": 3}', '{"drained": {"b": "x"}}'):
        path.write_text(text)
        assert read_control(path) == {}
    path.write_text('{"drained": {"b": 1, "c": "x", "d": 0.5}}')
    assert read_control(path) == {"b": 1.0, "d": 0.5}  # the good entries kept

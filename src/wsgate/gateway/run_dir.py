"""The run directory of `serve --workers N`: the files through which the workers and
their admin process talk (see monitor.py for who reads and writes them when).

    state-PID.json   a worker's latest snapshot, written by that worker every tick
    control.json     {"drained": {backend: over_s}}: the operator's wishes, written by
                     the admin process, followed by every worker
    metrics/         prometheus_client's multiprocess files, one set per worker

Every file is written whole or not at all (`write_json`), so a reader never sees half of
one; a reader that still finds garbage treats it as absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

STALE_S = 5.0  # a worker's snapshot older than this is from a stuck or dead worker
CONTROL_FILE = "control.json"
STATE_PREFIX = "state-"
METRICS_DIR = "metrics"


def write_json(path: Path, value: Any) -> None:
    """Write `path` whole or not at all: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, separators=(",", ":")))
    tmp.replace(path)


def write_snapshot(run_dir: Path, state: dict[str, Any]) -> None:
    """This worker's snapshot, for the admin process."""
    write_json(run_dir / f"{STATE_PREFIX}{os.getpid()}.json", state)


def worker_snapshots(run_dir: Path) -> list[dict[str, Any]]:
    """The snapshots of the live workers, by file name; a snapshot older than STALE_S
    is marked not ready, and a dead worker's files are forgotten (`forget_worker`)."""
    found = []
    now = time.time()
    for path in sorted(run_dir.glob(f"{STATE_PREFIX}*.json")):
        try:
            pid = int(path.stem.removeprefix(STATE_PREFIX))
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            forget_worker(run_dir, pid)
            continue
        if now - data.get("time", 0) > STALE_S:
            data["ready"] = False
            data["reasons"] = [*data["reasons"], f"worker {pid} has not reported for 5 s"]
        found.append(data)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_worker(run_dir: Path, pid: int) -> None:
    """A worker is gone: its snapshot goes, and its live gauges stop counting."""
    from wsgate.observe.metrics import worker_gone

    with contextlib.suppress(OSError):
        (run_dir / f"{STATE_PREFIX}{pid}.json").unlink()
    if (run_dir / METRICS_DIR).is_dir():
        worker_gone(pid, run_dir / METRICS_DIR)


def read_control(path: Path) -> dict[str, float]:
    """The backends the operator drained, each with its drain time: {} if none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    drained = data.get("drained") if isinstance(data, dict) else None
    if not isinstance(drained, dict):
        return {}
    return {str(k): float(v) for k, v in drained.items() if isinstance(v, int | float)}


def write_drained(run_dir: Path, backend: str, drained: bool, over_s: float) -> None:
    """The operator drains `backend` over `over_s` (or puts it back): control.json
    changed to say so, for every worker to follow."""
    path = run_dir / CONTROL_FILE
    wanted = read_control(path)
    if drained:
        wanted[backend] = over_s
    else:
        wanted.pop(backend, None)
    write_json(path, {"drained": wanted})

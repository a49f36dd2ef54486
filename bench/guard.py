"""The handshake cost guard: fails when wsgate's CPU per handshake (S2, one process) rises
more than 15 % over the baseline committed for this machine and build.

    .venv/bin/python -m bench.guard              measure (3 runs of S2, the median) and
                                                 compare: exit 0 within, 1 over the limit,
                                                 2 when this machine has no baseline
    .venv/bin/python -m bench.guard --record     measure and write the median as this
                                                 machine's baseline in bench/baseline.json

CPU per handshake is the CPU time of wsgate's process tree over the handshakes it
completed, the figure of BENCHMARKS.md's S2 row. A machine is /etc/machine-id (else its
host name): figures from another machine say nothing about this one. The build (compiled
with mypyc or pure Python, see `wsgate --version`) has a baseline of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import run
from bench import targets as tg

BASELINE = Path(__file__).resolve().parent / "baseline.json"
TOLERANCE = 0.15  # the limit: 15 % over the baseline fails
METRIC = "target_cpu_ms_per_handshake"


def machine_id() -> str:
    try:
        found = Path("/etc/machine-id").read_text().strip()
    except OSError:
        found = ""
    return found or platform.node()


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {model}, {os.cpu_count()} cores"


def build_name() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "wsgate", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tg.ROOT,
    )
    # "wsgate 0.1.0 (compiled: mypyc)" -> "compiled: mypyc"; any pure build -> "pure Python"
    inside = done.stdout.strip().split("(", 1)[-1].rstrip(")")
    return "compiled: mypyc" if inside == "compiled: mypyc" else "pure Python"


def revision() -> str:
    """The git revision measured, with "+changes" when the tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tg.ROOT,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tg.ROOT,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def verdict(baseline_ms: float, measured_ms: float, tolerance: float = TOLERANCE) -> bool:
    """True when `measured_ms` is within `tolerance` over `baseline_ms` (lower is better)."""
    return measured_ms <= baseline_ms * (1.0 + tolerance)


def measure(runs: int, seconds: float) -> list[float]:
    """CPU ms per handshake of `runs` S2 runs against the wsgate target."""
    sizes = replace(run.Sizes(), s2_duration_s=seconds)
    found: list[float] = []
    with tempfile.TemporaryDirectory(prefix="wsgate-guard-") as work:
        for index in range(runs):
            result = run.s2(sizes, Path(work) / str(index), ["wsgate"])["wsgate"]
            if "error" in result or result.get(METRIC) is None:
                raise SystemExit(f"guard: S2 run {index + 1} failed: {result}")
            if result["failed"]:
                raise SystemExit(f"guard: S2 run {index + 1} had failed handshakes: {result}")
            found.append(float(result[METRIC]))
            print(f"guard: run {index + 1}/{runs}: {result[METRIC]:.4f} ms CPU per handshake")
    return found


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"machines": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", action="store_true", help="write this machine's baseline")
    parser.add_argument("--runs", type=int, default=3, help="S2 runs, the median counts (3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="S2 seconds per run (10)")
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    machine, build = machine_id(), build_name()
    data = load(args.baseline)
    entry = data["machines"].get(machine, {}).get(build)
    if entry is None and not args.record:
        print(
            f"guard: no baseline for this machine ({machine}, {machine_description()}) and "
            f"build ({build}) in {args.baseline}: record one with --record"
        )
        return 2
    measured = statistics.median(measure(args.runs, args.seconds))
    if args.record:
        machine_entry = data["machines"].setdefault(machine, {})
        machine_entry["description"] = machine_description()
        machine_entry[build] = {
            METRIC: round(measured, 4),
            "runs": args.runs,
            "seconds": args.seconds,
            "revision": revision(),
            "recorded": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        args.baseline.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"guard: recorded {measured:.4f} ms CPU per handshake ({build}) for {machine}")
        return 0
    baseline = float(entry[METRIC])
    change = (measured / baseline - 1.0) * 100
    line = (
        f"{measured:.4f} ms CPU per handshake ({build}) against the baseline {baseline:.4f} "
        f"({change:+.1f} %, the limit +{TOLERANCE * 100:.0f} %)"
    )
    if verdict(baseline, measured):
        print(f"guard: ok: {line}")
        return 0
    print(f"guard: FAILED: {line}")
    return 1


if __name__ == "__main__":
    sys.exit(main())

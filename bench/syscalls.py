"""System calls per handshake, by target: where the kernel's share of S2 goes.

Starts the two fast backends and each target in turn on 127.0.0.1, attaches
`strace -c -f` to the target's processes, drives S2 (a closed loop of handshake and
close) for a few seconds, and divides strace's count of each system call by the
successful handshakes. strace slows the traced process down a lot, so the counts, not
the times, are the figures; rates and CPU come from `bench.run`.

.venv/bin/python -m bench.syscalls --targets nginx-log,haproxy,wsgate-log,floor

The same count for nginx, HAProxy, the floor (bench/floor_proxy.py) and wsgate shows
which system calls wsgate makes that the others do not. Needs strace (Debian: strace)
and ptrace, which root has.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench import targets as tg
from bench.run import storm

# strace -c's table: "% time  seconds  usecs/call  calls  errors  syscall".
ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)\s*$")


def parse_summary(text: str) -> dict[str, tuple[int, int]]:
    """strace -c's table as {syscall: (calls, errors)}."""
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match and match.group(3) != "total":
            found[match.group(3)] = (int(match.group(1)), int(match.group(2) or 0))
    return found


@dataclasses.dataclass
class Count:
    """One target's system calls per successful handshake (and failed calls, by name)."""

    handshakes: int
    per_handshake: dict[str, float]
    errors_per_handshake: dict[str, float]


def count(name: str, ports: list[int], work: Path, seconds: float) -> Count:
    """S2 through target `name` under strace: system calls per successful handshake."""
    with tg.target(name, ports, work) as target:
        pids = tg.tree_pids(target.pids)
        out = work / f"strace-{name}.txt"
        argv = ["strace", "-c", "-f", "-o", str(out)]
        for pid in pids:
            argv += ["-p", str(pid)]
        tracer = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # strace attaches to every thread before the load starts
            result = storm(
                target.urls,
                work / f"s2-{name}.json",
                "--concurrency", "20",
                "--duration", f"{seconds}s",
                "--timeout", "30s",
            )  # fmt: skip
        finally:
            tracer.send_signal(signal.SIGINT)  # detach: strace writes its table
            tracer.wait(timeout=30)
    ok = max(int(result["summary"]["ok"]), 1)
    calls = parse_summary(out.read_text())
    return per_handshake(calls, ok)


def per_handshake(calls: dict[str, tuple[int, int]], handshakes: int) -> Count:
    per = {call: round(n / handshakes, 2) for call, (n, _) in calls.items()}
    errors = {call: round(e / handshakes, 2) for call, (_, e) in calls.items() if e}
    return Count(handshakes, per, errors)


def table(results: dict[str, Count]) -> str:
    """A markdown table: a row per system call (most frequent first), a column per target."""
    names = list(results)
    calls: set[str] = set()
    for r in results.values():
        calls |= set(r.per_handshake)
    rows = sorted(
        calls, key=lambda c: (-max(r.per_handshake.get(c, 0) for r in results.values()), c)
    )
    lines = ["| system call | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    totals = [0.0] * len(names)
    for call in rows:
        if max(r.per_handshake.get(call, 0) for r in results.values()) < 0.01:
            continue  # rarer than one in a hundred handshakes: start-up, timers
        cells = []
        for i, name in enumerate(names):
            value = results[name].per_handshake.get(call, 0)
            totals[i] += value
            cells.append(f"{value:.2f}" if value else "-")
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    lines.append("| **all** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="nginx-log,haproxy,wsgate-log,floor")
    parser.add_argument("--seconds", type=float, default=5.0, help="S2 time per target")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        parser.error("strace is not installed (Debian: apt-get install strace)")
    names = args.targets.split(",")
    unknown = [n for n in names if n not in tg.TARGETS or n == "direct"]
    if unknown:
        parser.error(f"unknown targets: {unknown}")
    results: dict[str, Count] = {}
    with tempfile.TemporaryDirectory(prefix="wsgate-syscalls-") as tmp:
        work = Path(tmp)
        with tg.backends(0.0, 1, work / "backends", backlog=1024) as (ports, _):
            for name in names:
                results[name] = count(name, ports, work, args.seconds)
    print(table(results))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    tg.ROOT.joinpath("bench", "results").mkdir(parents=True, exist_ok=True)
    out = tg.ROOT / "bench" / "results" / f"syscalls-{stamp}.json"
    out.write_text(json.dumps({n: dataclasses.asdict(c) for n, c in results.items()}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

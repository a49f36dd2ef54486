"""Where wsgate's CPU goes, native time included: sample `wsgate serve` (one worker,
bench/wsgate.toml, no profiler inside) with py-spy while S2 or S3 runs through it.

    .venv/bin/python -m bench.sample_gateway --scenario s2 --seconds 8

Unlike cProfile (bench/profile_gateway.py) this sees system calls, uvloop and the garbage
collector, and barely slows the gateway. Prints the share of samples per innermost frame and
per top-level callback, and keeps the raw collapsed stacks under bench/results/.
py-spy needs ptrace, which root has. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import targets as tg
from bench.profile_gateway import storm_load
from bench.run import RESULTS, storm

# Frames above the gateway's own callbacks: the interpreter, the CLI and the event loop.
OUTER = {"<module>", "_run_code", "_run_module_as_main", "main", "run_serve", "run_one", "run"}


def shares(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    leaf: collections.Counter[str] = collections.Counter()
    top: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        raw_frames = stack.split(";")
        frames = [f.split(" (")[0] for f in raw_frames]
        total += n
        leaf[frames[-1]] += n
        python = [
            name
            for name, full in zip(frames, raw_frames, strict=True)
            if ".py" in full and name not in OUTER and name != "Runner.run"
        ]
        top[python[0] if python else frames[-1]] += n
    return leaf, top, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=("s2", "s3"), default="s2")
    parser.add_argument("--seconds", type=float, default=8.0, help="S2 duration")
    parser.add_argument("--messages", type=int, default=300, help="S3 round trips per connection")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = RESULTS / f"sample-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f"wsgate-{args.scenario}.txt"
    load = storm_load(args.scenario, args.seconds, args.messages)
    record_s = args.seconds + 1 if args.scenario == "s2" else 20
    with (
        tg.backends(0.0, 1, work, backlog=1024) as (ports, _),
        tg.target("wsgate", ports, work) as t,
    ):
        argv_spy = [spy, "record", "--native", "--rate", "250", "--format", "raw"]
        argv_spy += ["--output", str(raw), "--pid", str(t.pids[0]), "--duration", f"{record_s:.0f}"]
        sampler = subprocess.Popen(argv_spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        result = storm(t.urls, work / "storm.json", *load)
        _, err = sampler.communicate(timeout=record_s + 60)
        if sampler.returncode != 0:
            print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            return 1
    s = result["summary"]
    print(f"storm: {s['ok']} handshakes, {s['rtt_ms']['count']} round trips, failed {s['failed']}")
    leaf, top, total = shares(raw)
    print(f"\n{total} samples; innermost frame:")
    for name, n in leaf.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("\nby top-level callback:")
    for name, n in top.most_common(args.top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

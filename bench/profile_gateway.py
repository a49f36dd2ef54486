"""Where wsgate's CPU goes: run `wsgate serve` (one worker, bench/wsgate.toml) under cProfile
through S2 or S3.

    .venv/bin/python -m bench.profile_gateway --scenario s2 --seconds 8
    .venv/bin/python -m bench.profile_gateway --scenario s3 --messages 300

Prints the functions with the most own time and writes the raw profile next to the bench
results (open it with `python -m pstats FILE`). cProfile slows Python code down, so read
the shares, not the absolute times. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import pstats
import sys

from bench import targets as tg
from bench.run import RESULTS, storm


def storm_load(scenario: str, seconds: float, messages: int) -> list[str]:
    """`wsgate storm` flags for the load of S2 (closed-loop handshakes for `seconds`) or
    S3 (100 connections doing `messages` echo round trips each), as the bench runs them."""
    if scenario == "s2":
        load = ["--concurrency", "50", "--duration", f"{seconds}s"]
    else:
        load = ["--concurrency", "100", "--count", "100", "--duration", "600s"]
        load += ["--messages", str(messages), "--size", "64"]
    return [*load, "--timeout", "30s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=("s2", "s3"), default="s2")
    parser.add_argument("--seconds", type=float, default=8.0, help="S2 duration")
    parser.add_argument("--messages", type=int, default=300, help="S3 round trips per connection")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = RESULTS / f"profile-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"wsgate-{args.scenario}.prof"
    with tg.backends(0.0, 1, work, backlog=1024) as (ports, _):
        port = tg.free_port()
        # The same config as the bench's wsgate target (bench/wsgate.toml).
        conf = work / "wsgate.toml"
        fill = {"port": port, "backend1": ports[0], "backend2": ports[1]}
        conf.write_text((tg.HERE / "wsgate.toml").read_text().format(**fill))
        argv_serve = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "wsgate", "serve"]
        argv_serve += ["--config", str(conf)]
        with tg.running("wsgate-profiled", argv_serve, port, work):
            url = [f"ws://127.0.0.1:{port}/"]
            load = storm_load(args.scenario, args.seconds, args.messages)
            result = storm(url, work / "storm.json", *load)
        # The gateway drains on SIGTERM and returns, so cProfile has written the file.
    s = result["summary"]
    print(f"storm: {s['ok']} handshakes, {s['rtt_ms']['count']} round trips, failed {s['failed']}")
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    (work / f"wsgate-{args.scenario}.txt").write_text(text.getvalue())
    print(text.getvalue())
    print(f"profile: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

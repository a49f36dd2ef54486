"""The benchmark suite: each scenario against each target, on 127.0.0.1 only.

    .venv/bin/python -m bench.run --quick            # a few minutes
    .venv/bin/python -m bench.run                    # full sizes (S1: 3,000 handshakes)

Scenarios (BENCHMARKS.md explains each): S1 storm against 2 slow backends (fast and
overload variants), S2 closed-loop handshake throughput, S3 relay of 64-byte echo round
trips on 100 connections, S4 resident memory per idle connection. Load comes from
`wsgate storm` in its own processes. Writes bench/results/<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import reconnect
from bench import targets as tg

RESULTS = tg.ROOT / "bench" / "results"
# S1 backends: (handshake work ms, concurrent handshakes) -> capacity per backend.
S1_VARIANTS = {"fast": (20.0, 5), "overload": (48.0, 1)}  # 250/s and ~20.8/s per backend
STORM_TIMEOUT_S = 150  # above the proxies' 60 s response timeout times 2 tries


@dataclass(frozen=True)
class Sizes:
    s1_n: int = 3000
    s2_concurrency: int = 50
    s2_duration_s: float = 10.0
    s3_connections: int = 100
    s3_messages: int = 1000
    s4_connections: int = 5000
    s4_hold_s: float = 20.0
    storm_workers: int = 1
    target_workers: int = 1  # 0: every core (nginx "auto", HAProxy nbthread, wsgate --workers)


QUICK = Sizes(s1_n=600, s2_duration_s=5.0, s3_messages=200, s4_connections=1000, s4_hold_s=10.0)


def storm(urls: list[str], out: Path, *args: str, timeout_s: float = 900) -> dict[str, Any]:
    argv = [sys.executable, "-m", "wsgate", "storm", *urls, "--quiet", "--json", str(out)]
    done = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout_s, check=False, cwd=tg.ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"storm failed ({done.returncode}): {done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _outcomes(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in summary["outcomes"].items() if k != "101") or "-"


def s1(variant: str, sizes: Sizes, work: Path, names: list[str]) -> dict[str, Any]:
    work_ms, limit = S1_VARIANTS[variant]
    capacity = 2 * limit * 1000.0 / work_ms
    out: dict[str, Any] = {}
    with tg.backends(work_ms, limit, work / f"s1-{variant}") as (ports, _):
        for name in names:
            with _guard(out, name), tg.target(name, ports, work, sizes.target_workers) as t:
                result = storm(
                    t.urls,
                    work / f"s1-{variant}-{name}.json",
                    "--burst", str(sizes.s1_n),
                    "--timeout", f"{STORM_TIMEOUT_S}s",
                    "--workers", str(sizes.storm_workers),
                )  # fmt: skip
                s = result["summary"]
                out[name] = {
                    "ok": s["ok"],
                    "failed": s["failed"],
                    "failures": _outcomes(s),
                    "p50_ms": s["handshake_ms"]["p50"],
                    "p99_ms": s["handshake_ms"]["p99"],
                    "last_success_s": s["time_to_last_success_s"],
                    "ideal_s": round(sizes.s1_n / capacity, 2),
                    "client_cpu_bound": result["client"]["cpu_bound"],
                }
    return out


def s2(sizes: Sizes, work: Path, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = [n for n in names if n not in tg.S1_ONLY]
    with tg.backends(0.0, 1, work / "s2", backlog=1024) as (ports, backend_pids):
        for name in names:
            with _guard(out, name), tg.target(name, ports, work, sizes.target_workers) as t:
                cpu0, bcpu0 = tg.tree_cpu_s(t.pids), tg.tree_cpu_s(backend_pids)
                result = storm(
                    t.urls,
                    work / f"s2-{name}.json",
                    "--concurrency", str(sizes.s2_concurrency),
                    "--duration", f"{sizes.s2_duration_s}s",
                    "--timeout", "30s",
                    "--workers", str(sizes.storm_workers),
                )  # fmt: skip
                cpu, bcpu = tg.tree_cpu_s(t.pids) - cpu0, tg.tree_cpu_s(backend_pids) - bcpu0
                s = result["summary"]
                ok = max(s["ok"], 1)
                out[name] = {
                    "handshakes_per_s": s["handshakes_per_s"],
                    "failed": s["failed"],
                    "p99_ms": s["handshake_ms"]["p99"],
                    "target_cpu_ms_per_handshake": round(cpu * 1000 / ok, 4) if t.pids else None,
                    "backend_cpu_ms_per_handshake": round(bcpu * 1000 / ok, 4),
                    "client_cpu_bound": result["client"]["cpu_bound"],
                }
    return out


def s3(sizes: Sizes, work: Path, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = [n for n in names if n not in tg.S1_ONLY]
    with tg.backends(0.0, 1, work / "s3", backlog=1024) as (ports, backend_pids):
        for name in names:
            with _guard(out, name), tg.target(name, ports, work, sizes.target_workers) as t:
                cpu0, bcpu0 = tg.tree_cpu_s(t.pids), tg.tree_cpu_s(backend_pids)
                conns = str(sizes.s3_connections)
                result = storm(
                    t.urls,
                    work / f"s3-{name}.json",
                    "--concurrency", conns, "--count", conns,
                    "--messages", str(sizes.s3_messages), "--size", "64",
                    "--duration", "600s", "--timeout", "30s",
                    "--workers", str(sizes.storm_workers),
                )  # fmt: skip
                cpu, bcpu = tg.tree_cpu_s(t.pids) - cpu0, tg.tree_cpu_s(backend_pids) - bcpu0
                s = result["summary"]
                trips = max(s["rtt_ms"]["count"], 1)
                out[name] = {
                    "round_trips_per_s": s["messages_per_s"],
                    "rtt_p50_ms": s["rtt_ms"]["p50"],
                    "rtt_p99_ms": s["rtt_ms"]["p99"],
                    "errors": sum(s["session_errors"].values()) + s["failed"],
                    "target_cpu_us_per_round_trip": round(cpu * 1e6 / trips, 2) if t.pids else None,
                    "backend_cpu_us_per_round_trip": round(bcpu * 1e6 / trips, 2),
                    "client_cpu_bound": result["client"]["cpu_bound"],
                }
    return out


def s4(sizes: Sizes, work: Path, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = [n for n in names if n not in tg.S1_ONLY]
    n = sizes.s4_connections
    rate = 1000.0
    ramp_s = n / rate
    with tg.backends(0.0, 1, work / "s4", backlog=1024) as (ports, _):
        for name in names:
            if name == "direct":
                continue  # no proxy: nothing to measure
            with _guard(out, name), tg.target(name, ports, work, sizes.target_workers) as t:
                base = tg.tree_rss_kib(t.pids)
                path = work / f"s4-{name}.json"
                argv = [sys.executable, "-m", "wsgate", "storm", *t.urls, "--quiet"]
                argv += ["--rate", f"{rate}/s", "--duration", f"{ramp_s}s", "--hold"]
                argv += [f"{sizes.s4_hold_s}s", "--timeout", "30s", "--workers", "2"]
                argv += ["--json", str(path)]
                client = subprocess.Popen(argv, cwd=tg.ROOT, stdout=subprocess.DEVNULL)
                try:
                    # Measure in the middle of the hold, when every connection is open.
                    time.sleep(2.0 + ramp_s + sizes.s4_hold_s / 2)
                    held = tg.tree_rss_kib(t.pids)
                    client.wait(timeout=ramp_s + sizes.s4_hold_s + 120)
                finally:
                    if client.poll() is None:
                        client.kill()  # by PID: our own child
                        client.wait()
                s = json.loads(path.read_text())["summary"]
                out[name] = {
                    "connections": s["ok"],
                    "dropped": sum(s["session_errors"].values()) + s["failed"],
                    "rss_base_kib": base,
                    "rss_held_kib": held,
                    "kib_per_connection": round((held - base) / max(s["ok"], 1), 2),
                }
    return out


@contextlib.contextmanager
def _guard(out: dict[str, Any], name: str) -> Any:
    """One target failing (say, not built yet) must not stop the others."""
    try:
        yield
    except Exception as exc:  # recorded in the results, shown in the table
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}


# (scenario, metric key, label, lower is better)
TABLE: list[tuple[str, str, str, bool]] = [
    ("S1 fast", "ok", "101 of N", False),
    ("S1 fast", "failures", "failures", True),
    ("S1 fast", "p50_ms", "p50 handshake ms", True),
    ("S1 fast", "p99_ms", "p99 handshake ms", True),
    ("S1 fast", "last_success_s", "time to last success s", True),
    ("S1 fast", "ideal_s", "ideal (N / capacity) s", True),
    ("S1 overload", "ok", "101 of N", False),
    ("S1 overload", "failures", "failures", True),
    ("S1 overload", "p50_ms", "p50 handshake ms", True),
    ("S1 overload", "p99_ms", "p99 handshake ms", True),
    ("S1 overload", "last_success_s", "time to last success s", True),
    ("S1 overload", "ideal_s", "ideal (N / capacity) s", True),
    ("S2", "handshakes_per_s", "handshakes/s", False),
    ("S2", "p99_ms", "p99 handshake ms", True),
    ("S2", "target_cpu_ms_per_handshake", "target CPU ms / handshake", True),
    ("S2", "backend_cpu_ms_per_handshake", "backends' CPU ms / handshake", True),
    ("S3", "round_trips_per_s", "round trips/s", False),
    ("S3", "rtt_p50_ms", "p50 round trip ms", True),
    ("S3", "rtt_p99_ms", "p99 round trip ms", True),
    ("S3", "target_cpu_us_per_round_trip", "target CPU µs / round trip", True),
    ("S3", "backend_cpu_us_per_round_trip", "backends' CPU µs / round trip", True),
    ("S2 all cores", "handshakes_per_s", "handshakes/s", False),
    ("S2 all cores", "p99_ms", "p99 handshake ms", True),
    ("S2 all cores", "target_cpu_ms_per_handshake", "target CPU ms / handshake", True),
    ("S3 all cores", "round_trips_per_s", "round trips/s", False),
    ("S3 all cores", "rtt_p99_ms", "p99 round trip ms", True),
    ("S3 all cores", "target_cpu_us_per_round_trip", "target CPU µs / round trip", True),
    ("S4", "connections", "idle connections held", False),
    ("S4", "kib_per_connection", "target RSS KiB / connection", True),
]


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "/")


def _ratio(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return f"{a / b:.2f}×"
    return "–"


def markdown(results: dict[str, dict[str, Any]], names: list[str]) -> str:
    head = ["scenario", "metric", *names]
    ratios = [n for n in ("nginx", "haproxy", "wsgate-base") if n in names and "wsgate" in names]
    head += [f"wsgate / {n}" for n in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario, key, label, _lower in TABLE:
        data = results.get(scenario)
        if not data:
            continue
        values = [data.get(n, {}).get(key) for n in names]
        if all(v is None for v in values):
            continue
        row = [scenario, label, *(_cell(v) for v in values)]
        wsgate = data.get("wsgate", {}).get(key)
        row += [_ratio(wsgate, data.get(n, {}).get(key)) for n in ratios]
        lines.append("| " + " | ".join(row) + " |")
    errors = [
        f"- {scenario} / {name}: {data['error']}"
        for scenario, by_target in results.items()
        for name, data in by_target.items()
        if "error" in data
    ]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        return "?"

    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "nginx": version([tg.NGINX, "-v"]),
        "haproxy": version([tg.HAPROXY, "-v"]),
    }


def export_base(rev: str, into: Path) -> Path:
    """The source tree of git revision `rev`, exported under `into`; returns its src/."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=tg.ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--targets", default=",".join(tg.TARGETS), help="comma separated")
    parser.add_argument("--scenarios", default="s1fast,s1overload,s2,s3,s2all,s3all,s4")
    parser.add_argument("--s1-n", type=int, help="S1 handshakes (3000; quick 600)")
    parser.add_argument("--s2-duration", type=float, help="S2 seconds per target (10; quick 5)")
    parser.add_argument("--s3-messages", type=int, help="S3 round trips per connection (1000)")
    parser.add_argument("--s4-connections", type=int, help="S4 idle connections (5000)")
    parser.add_argument("--s4-hold", type=float, help="S4 seconds to hold them (20; quick 10)")
    parser.add_argument("--storm-workers", type=int, help="client processes (default 1)")
    parser.add_argument(
        "--target-workers", type=int, help="nginx/HAProxy/wsgate workers (1; 0: every core)"
    )
    parser.add_argument(
        "--base",
        metavar="REV",
        help="also run the wsgate target from git revision REV (target wsgate-base), to "
        "measure a change against its base in the same run",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {
        "s1_n": args.s1_n,
        "s2_duration_s": args.s2_duration,
        "s3_messages": args.s3_messages,
        "s4_connections": args.s4_connections,
        "s4_hold_s": args.s4_hold,
        "storm_workers": args.storm_workers,
        "target_workers": args.target_workers,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in tg.TARGETS]
    if unknown:
        parser.error(f"unknown targets: {unknown}; choose from {tg.TARGETS}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = args.out / stamp
    work.mkdir(parents=True, exist_ok=True)
    if args.base:
        os.environ[tg.BASE_SRC_ENV] = str(export_base(args.base, work / "base"))
        if "wsgate-base" not in names:
            names.append("wsgate-base")
    elif "wsgate-base" in names:
        parser.error("the wsgate-base target needs --base REV")
    plan: dict[str, Callable[[], dict[str, Any]]] = {
        "s1fast": lambda: s1("fast", sizes, work, names),
        "s1overload": lambda: s1("overload", sizes, work, names),
        "s2": lambda: s2(sizes, work, names),
        "s3": lambda: s3(sizes, work, names),
        "s2all": lambda: s2(replace(sizes, target_workers=0), work, names),
        "s3all": lambda: s3(replace(sizes, target_workers=0), work, names),
        "s4": lambda: s4(sizes, work, names),
        # S5 (bench/reconnect.py): not in the default list; --scenarios s5
        "s5": lambda: reconnect.s5(
            reconnect.QUICK_N if args.quick else reconnect.FULL_N, work, names
        ),
    }
    titles = {
        "s1fast": "S1 fast",
        "s1overload": "S1 overload",
        "s2": "S2",
        "s3": "S3",
        "s2all": "S2 all cores",
        "s3all": "S3 all cores",
        "s4": "S4",
        "s5": "S5",
    }
    results: dict[str, dict[str, Any]] = {}
    for key in [k.strip() for k in args.scenarios.split(",") if k.strip()]:
        if key not in plan:
            parser.error(f"unknown scenario {key!r}; choose from {list(plan)}")
        began = time.monotonic()
        print(f"== {titles[key]}", flush=True)
        results[titles[key]] = plan[key]()
        print(
            f"   {time.monotonic() - began:.0f} s: {json.dumps(results[titles[key]])}", flush=True
        )
    report = {"when": stamp, "machine": machine(), "sizes": asdict(sizes), "results": results}
    (args.out / f"{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(results, names)
    if "S5" in results:
        table += "\nS5, the reconnect storm:\n\n" + reconnect.markdown(results["S5"])
    (args.out / f"{stamp}.md").write_text(table)
    print(table)
    print(f"wrote {args.out / stamp}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

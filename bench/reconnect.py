"""Bench scenario S5, the reconnect storm (issue 15): N clients connected through a target
to two backends; the backends are stopped (by PID) and started again on the same ports,
now with a fixed handshake capacity; every client reconnects by its policy.

    .venv/bin/python -m bench.reconnect --quick        # N = 300 per run
    .venv/bin/python -m bench.reconnect                # N = 3,000 per run
    .venv/bin/python -m bench.run --scenarios s5       # the same inside the suite

Client kinds: `naive` retries at once (a pause of 0-50 ms, at most 1,000 attempts), as a
hand-written client does; `wsgate` is `wsgate.client` with its back-off policy (honours
503 Retry-After and the 1013 `retry-after=N` close reason). Half the clients send an
Origin, so wsgate's overload answer is a 503 to some and a 101 + close 1013 to others.
Measured per (target, client kind), from when the restarted backends listen: the time
until all N are connected again (hard deadline DEADLINE_S, then "not all reconnected"),
failed attempts per client by cause and how many came without a hint, the backends' peak
handshake rate (counted per 100 ms by bench/reconnect_backend.py) and the share of
attempts answered 503/1013. Ideal: N / capacity (2 backends x slots / work).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import resource
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake
from websockets.protocol import State

from bench import targets as tg
from bench.reconnect_tally import (
    CAUSES,
    ClientTally,
    cause_of,
    failures_per_second,
    peak_rate,
    per_second,
    summary,
)
from wsgate.client import BackoffConfig, ReconnectingConnection, connect_failure
from wsgate.client import connect as wsgate_connect
from wsgate.policy.backoff import (
    Closed,
    Failure,
    failure_cause,
    failure_hint_s,
)

FULL_N = 3000
QUICK_N = 300
SLOTS = 4  # concurrent handshakes per restarted backend, and wsgate's per-backend limit
WORK_MS = 40.0  # each handshake's work: capacity 2 x 4 / 0.040 = 200 handshakes/s
DOWN_S = 1.0  # how long the backends stay down
DEADLINE_S = 120.0  # from the restart; past it the run is "not all reconnected"
SETTLE_S = 1.0  # all must stay open this long (a 101 + close 1013 opens only briefly)
OPEN_TIMEOUT_S = 10.0
NAIVE_MAX_ATTEMPTS = 1000
NAIVE_PAUSE_S = 0.05
COMBOS = (
    ("wsgate", "wsgate"),
    ("wsgate", "naive"),
    ("nginx", "naive"),
    ("haproxy", "naive"),
    ("direct", "naive"),
)
WSGATE_CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{a}", "127.0.0.1:{b}"]
balance = "round_robin"
connect_timeout_s = 5
response_timeout_s = 60
retries = 1
max_handshakes_per_backend = {slots}
queue_size = 4096
queue_timeout_s = 5
slow_start_s = 0
preconnect = true
[pools.app.health]
interval_s = 0.5
down_interval_s = 0.1
rise = 1
fall = 1
[[routes]]
pool = "app"
overload_answer = "auto"
"""
# Below the client's open timeout: a handshake waits in wsgate's queue at most 5 s, and
# one predicted to wait longer is told at once (503 or 1013 with retry-after).
BACKOFF = BackoffConfig(base_s=0.5, cap_s=10.0)
ORIGIN = {"Origin": "http://app.test"}


class Crowd:
    """Every client's tally, indexed by the path of its URL (/c<index>)."""

    def __init__(self, n: int) -> None:
        self.tallies = [ClientTally() for _ in range(n)]
        self.open_count = 0
        self.measuring = False  # set just before the backends stop
        self.failed_at: list[tuple[float, str]] = []  # when, and the cause

    def opened(self, index: int) -> None:
        tally = self.tallies[index]
        if not tally.open:
            self.open_count += 1
        tally.open = True
        tally.connected_at = time.monotonic()

    def closed(self, index: int) -> None:
        tally = self.tallies[index]
        if tally.open:
            self.open_count -= 1
        tally.open = False

    def failed(self, index: int, code: str, hint_s: float | None) -> None:
        if self.measuring:
            self.tallies[index].failed(code, hint_s)
            self.failed_at.append((time.monotonic(), cause_of(code, hint_s)))


class RetryLog(logging.Handler):
    """Reads `wsgate.client`'s debug line for each failed attempt (url, cause, delay,
    attempt, honoured hint) and its give-up warning: its stats count causes, not hints."""

    def __init__(self, crowd: Crowd, index_of: dict[str, int]) -> None:
        super().__init__(logging.DEBUG)
        self.crowd = crowd
        self.index_of = index_of

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or not args or args[0] not in self.index_of:
            return
        index = self.index_of[str(args[0])]
        if "retry in" in str(record.msg) and len(args) == 5:
            hint = args[4]
            hint_s = float(hint) if isinstance(hint, int | float) else None
            self.crowd.failed(index, str(args[1]), hint_s)
        elif "giving up" in str(record.msg):
            self.crowd.tallies[index].gave_up = True


@contextlib.contextmanager
def retry_log(crowd: Crowd, index_of: dict[str, int]) -> Iterator[None]:
    logger = logging.getLogger("wsgate.client")
    handler = RetryLog(crowd, index_of)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


async def _attempt(url: str, headers: dict[str, str] | None) -> ClientConnection | Failure:
    try:
        return await ws_connect(
            url,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=5,
            ping_interval=None,
            proxy=None,
        )
    except (OSError, InvalidHandshake) as exc:
        return connect_failure(exc)


async def naive_client(
    url: str, index: int, crowd: Crowd, rng: random.Random, headers: dict[str, str] | None
) -> None:
    """Connect, stay until the connection ends, and try again after a tiny pause."""
    for _ in range(NAIVE_MAX_ATTEMPTS):
        result = await _attempt(url, headers)
        if isinstance(result, ClientConnection):
            if result.state is State.OPEN:
                crowd.opened(index)
            try:
                await result.wait_closed()
            finally:
                crowd.closed(index)
            result = Closed(result.close_code or 1006, result.close_reason or "")
        crowd.failed(index, failure_cause(result), failure_hint_s(result))
        await asyncio.sleep(rng.uniform(0, NAIVE_PAUSE_S))
    crowd.tallies[index].gave_up = True


def wsgate_client(
    url: str, index: int, crowd: Crowd, headers: dict[str, str] | None
) -> ReconnectingConnection:
    async def on_connect(conn: ReconnectingConnection) -> None:
        crowd.opened(index)

    async def on_disconnect(conn: ReconnectingConnection, failure: Failure) -> None:
        crowd.closed(index)

    return wsgate_connect(
        url,
        backoff=BACKOFF,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        rng=random.Random(index),
        additional_headers=headers,
        open_timeout=OPEN_TIMEOUT_S,
        close_timeout=5,
        ping_interval=None,
        proxy=None,
    )


async def until(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def all_back_at(crowd: Crowd, deadline: float) -> float | None:
    """When the last client connected again, once all N are open and stay open
    SETTLE_S; None if DEADLINE_S comes first."""
    n = len(crowd.tallies)
    while time.monotonic() < deadline:
        if crowd.open_count == n:
            last = max(t.connected_at or 0.0 for t in crowd.tallies)
            await asyncio.sleep(SETTLE_S)
            if crowd.open_count == n and max(t.connected_at or 0.0 for t in crowd.tallies) == last:
                return last
        await asyncio.sleep(0.1)
    return None


@dataclass
class Backends:
    """Two backends on fixed ports; each wave is a fresh pair of processes."""

    ports: list[int]
    workdir: Path
    stack: ExitStack
    wave: int = 0
    procs: list[tg.Proc] = field(default_factory=list)

    def start(self, work_ms: float, slots: int) -> list[Path]:
        self.wave += 1
        counts = []
        for i, port in enumerate(self.ports):
            path = self.workdir / f"counts-wave{self.wave}-b{i + 1}.json"
            argv = [sys.executable, "-m", "bench.reconnect_backend", "--port", str(port)]
            argv += ["--work-ms", str(work_ms), "--slots", str(slots), "--counts", str(path)]
            name = f"backend{i + 1}-wave{self.wave}"
            self.procs.append(self.stack.enter_context(tg.running(name, argv, port, self.workdir)))
            counts.append(path)
        return counts

    def stop(self) -> None:
        """Both at once (SIGTERM by PID), so that no client hops from one to the other."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        self.stack.close()


@dataclass
class RunRecord:
    crowd: Crowd
    back_at: float
    all_at: float | None
    reconnected: int  # open when the run ended, before the clients were closed
    counts: list[Path]
    back_wall: float  # back_at on the wall clock, which the backends' counts use


async def one_run(target: str, kind: str, n: int, workdir: Path) -> RunRecord:
    ports = [tg.free_port(), tg.free_port()]
    crowd = Crowd(n)
    with ExitStack() as outer:
        first, second = ExitStack(), ExitStack()
        outer.enter_context(second)  # the restarted backends outlive the target
        first_wave = Backends(ports, workdir, first)
        await asyncio.to_thread(first_wave.start, 0.0, 64)  # fast: the start is not measured
        outer.callback(first.close)
        urls = outer.enter_context(start_target(target, ports, workdir))
        index_of = {f"{urls[i % len(urls)]}c{i}": i for i in range(n)}
        outer.enter_context(retry_log(crowd, index_of))
        rng = random.Random(15)
        tasks: list[asyncio.Task[None]] = []
        conns: list[ReconnectingConnection] = []
        for url, i in index_of.items():
            headers = ORIGIN if i % 2 else None
            if kind == "naive":
                coro = naive_client(url, i, crowd, random.Random(rng.random()), headers)
                tasks.append(asyncio.create_task(coro))
            else:
                conns.append(wsgate_client(url, i, crowd, headers))
                conns[-1].start()
            if i % 100 == 99:
                await asyncio.sleep(0.05)  # started in batches: our loop stays responsive
        try:
            if not await until(lambda: crowd.open_count == n, DEADLINE_S):
                raise RuntimeError(f"only {crowd.open_count} of {n} connected before the restart")
            crowd.measuring = True
            await asyncio.to_thread(first_wave.stop)  # clients see the drop
            await until(lambda: crowd.open_count == 0, 30)
            await asyncio.sleep(DOWN_S)
            second_wave = Backends(ports, workdir, second, wave=1)
            counts = await asyncio.to_thread(second_wave.start, WORK_MS, SLOTS)
            back_at, back_wall = time.monotonic(), time.time()
            all_at = await all_back_at(crowd, back_at + DEADLINE_S)
            reconnected = crowd.open_count
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in conns), return_exceptions=True), 60
            )
        await asyncio.to_thread(second.close)  # the counts are written on exit
    return RunRecord(crowd, back_at, all_at, reconnected, counts, back_wall)


def measured(run: RunRecord) -> dict[str, Any]:
    buckets = [json.loads(p.read_text())["buckets"] for p in run.counts]
    figures = summary(
        run.crowd.tallies,
        back_at=run.back_at,
        all_at=run.all_at,
        reconnected=run.reconnected,
        capacity_per_s=2 * SLOTS * 1000.0 / WORK_MS,
        peak_per_s=peak_rate(buckets),
    )
    figures["backend_handshakes_per_s"] = per_second(buckets, run.back_wall)
    figures["failures_per_s"] = failures_per_second(run.crowd.failed_at, run.back_at)
    return figures


@contextlib.contextmanager
def start_target(name: str, ports: list[int], workdir: Path) -> Iterator[list[str]]:
    """The target's URLs, each ending in "/"; wsgate gets S5's own config (its handshake
    limit at the backends' slots), the others bench/'s usual ones."""
    if name != "wsgate":
        with tg.target(name, ports, workdir) as t:
            yield t.urls
        return
    port = tg.free_port()
    conf = workdir / "wsgate-s5.toml"
    conf.write_text(WSGATE_CONFIG.format(port=port, a=ports[0], b=ports[1], slots=SLOTS))
    argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(conf)]
    with tg.running("wsgate", argv, port, workdir):
        yield [f"ws://127.0.0.1:{port}/"]


def enough_descriptors(n: int) -> None:
    """Each client holds a socket here, and children (the targets) inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * n + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        top = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def s5(n: int, work: Path, targets: list[str] | None = None) -> dict[str, Any]:
    """Each combo of COMBOS whose target is in `targets` (all when None)."""
    enough_descriptors(n)
    out: dict[str, Any] = {}
    for target, kind in COMBOS:
        if targets is not None and target not in targets:
            continue
        key = f"{target}+{kind}"
        try:
            workdir = work / f"s5-{key}"
            workdir.mkdir(parents=True, exist_ok=True)
            out[key] = measured(asyncio.run(one_run(target, kind, n, workdir)))
        except Exception as exc:  # one failing run must not stop the others
            out[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(f"   S5 {key}: {json.dumps(out[key])}", flush=True)
    return out


ROWS = (
    ("all_reconnected", "all reconnected"),
    ("reconnected", "connected at the end"),
    ("time_to_all_s", "time to all reconnected s"),
    ("ideal_s", "ideal (N / capacity) s"),
    ("ratio_to_ideal", "time / ideal"),
    ("failed_mean", "failed attempts / client, mean"),
    ("failed_max", "failed attempts / client, max"),
    ("unexplained", "failed attempts without a hint"),
    ("clients_with_unexplained", "clients with one or more"),
    ("peak_backend_handshakes_per_s", "backends' peak handshakes/s (100 ms)"),
    ("answered_503_1013_share", "attempts answered 503/1013"),
)


def markdown(results: dict[str, Any]) -> str:
    keys = list(results)
    lines = ["| metric | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for key, label in ROWS:
        cells = [_cell(results[k].get(key)) for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for cause in CAUSES:
        cells = [_cell(results[k].get("failed_by_cause", {}).get(cause, 0)) for k in keys]
        lines.append(f"| failed: {cause} | " + " | ".join(cells) + " |")
    errors = [f"- {k}: {v['error']}" for k, v in results.items() if "error" in v]
    return "\n".join(lines + (["", *errors] if errors else [])) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK_N}")
    parser.add_argument("--n", type=int, help=f"clients per run ({FULL_N}; quick {QUICK_N})")
    parser.add_argument("--targets", help="comma separated (direct,nginx,haproxy,wsgate)")
    parser.add_argument("--out", type=Path, default=tg.ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else FULL_N)
    names = [t.strip() for t in args.targets.split(",")] if args.targets else None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = args.out / f"{stamp}-s5"
    work.mkdir(parents=True, exist_ok=True)
    results = s5(n, work, names)
    (work / "s5.json").write_text(json.dumps({"when": stamp, "n": n, "S5": results}, indent=1))
    table = markdown(results)
    (work / "s5.md").write_text(table)
    print(table)
    print(f"wrote {work}/s5.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run a storm: plan, start worker processes, show live progress, merge, return the result.

`run_storm(config)` returns the result as a JSON-ready dict (`RESULT_KIND`, version 2):
the config, `stats.summary` of the merged workers, the client's own CPU figures, with
`client.cpu_bound` set when a worker spent most of its time on the CPU, since then the
storm measured the client rather than the target, and, when the target's capacity was
given, the `ideal` run to hold the real one against.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing as mp
import os
import queue as queue_mod
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from wsgate.errors import WsgateError
from wsgate.storm import plan, retry, stats
from wsgate.storm.client import Target
from wsgate.storm.worker import Session, WorkerJob, worker_main

RESULT_KIND = "wsgate-storm-result"
RESULT_VERSION = 2  # 2: time to every outcome, Retry-After values, the ideal, bucket widths
IDEAL_POINTS = 300
CPU_BOUND_UTIL = 0.85  # a worker busier than this was probably the bottleneck
START_DELAY_S = 0.3  # lets every worker reach its start line before the first handshake
READY_TIMEOUT_S = 60.0
EXTRA_GRACE_S = 30.0  # past the workers' own deadline, the parent stops them by PID
FD_RESERVE = 200
INTERRUPT_GRACE_S = 15.0  # after Ctrl-C, how long workers get to hand in their results


@dataclass(frozen=True, slots=True)
class StormConfig:
    url: str  # the URLs, space separated
    targets: tuple[Target, ...]
    arrival: plan.Arrival
    workers: int = 1
    session: Session = field(default_factory=Session)
    timeout_s: float = 60.0
    seed: int = 1
    spacing: plan.Spacing = "uniform"
    label: str = ""
    capacity_per_s: float | None = None  # handshakes/s the target can complete, if known
    # Clients that retry (storm.retry): "none" tries each handshake once.
    client_mode: str = "none"
    max_attempts: int = retry.DEFAULT_MAX_ATTEMPTS
    retry_window_s: float = 120.0  # how much longer than a one-shot storm the workers run

    def describe(self) -> dict[str, Any]:
        arrival = {"mode": type(self.arrival).__name__.lower(), **asdict(self.arrival)}
        return {
            "arrival": arrival,
            "workers": self.workers,
            "session": asdict(self.session),
            "timeout_s": self.timeout_s,
            "seed": self.seed,
            "spacing": self.spacing,
            "headers": [list(pair) for pair in self.targets[0].headers],
            "origin": self.targets[0].origin,
            "subprotocol": self.targets[0].subprotocol,
            "capacity_per_s": self.capacity_per_s,
            "client_mode": self.client_mode,
            "max_attempts": self.max_attempts if self.client_mode != "none" else None,
        }


class StormError(WsgateError, RuntimeError):
    """A storm that could not run (a worker crashed, or never started)."""


def make_jobs(config: StormConfig) -> tuple[list[WorkerJob], float]:
    """Each worker's share and the bucket width of the time series."""
    arrival = config.arrival
    plan.validate(arrival)
    tail_s = config.timeout_s + config.session.max_duration_s() + 10.0
    if config.client_mode != "none":
        tail_s += config.retry_window_s
    if isinstance(arrival, plan.ClosedLoop):
        span = arrival.duration_s + config.timeout_s
        bucket = stats.choose_bucket_s(span)
        concurrency = plan.split_concurrency(arrival.concurrency, config.workers)
        counts = plan.split_concurrency(arrival.max_count, config.workers)
        jobs = [
            WorkerJob(
                index=i,
                targets=config.targets,
                workers=config.workers,
                session=config.session,
                timeout_s=config.timeout_s,
                bucket_s=bucket,
                deadline_s=arrival.duration_s + tail_s,
                concurrency=concurrency[i],
                loop_duration_s=arrival.duration_s,
                loop_max_count=counts[i] if arrival.max_count else 0,
                client_mode=config.client_mode,
                max_attempts=config.max_attempts,
                seed=config.seed,
            )
            for i in range(config.workers)
            # Skip idle workers, and those whose share of a count is 0 (0 means "no bound").
            if concurrency[i] > 0 and (counts[i] > 0 or not arrival.max_count)
        ]
        _check_fds(max(concurrency))
        return jobs, bucket
    schedule = plan.build(arrival, config.seed, config.spacing)
    last = schedule[-1] if schedule else 0.0
    bucket = stats.choose_bucket_s(last + config.timeout_s)
    parts = plan.split(schedule, config.workers)
    # An open schedule can have every connection of a part open at once.
    _check_fds(max(len(part) for part in parts) if config.session.hold_s or last == 0 else 0)
    jobs = [
        WorkerJob(
            index=i,
            targets=config.targets,
            workers=config.workers,
            session=config.session,
            timeout_s=config.timeout_s,
            bucket_s=bucket,
            deadline_s=last + tail_s,
            schedule=part,
            client_mode=config.client_mode,
            max_attempts=config.max_attempts,
            seed=config.seed,
        )
        for i, part in enumerate(parts)
        if part
    ]
    return jobs, bucket


def _check_fds(per_worker: int) -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and per_worker > soft - FD_RESERVE:
        raise plan.PlanError(
            f"a worker would hold up to {per_worker:,} connections but may open only "
            f"{soft:,} files; add --workers so each holds fewer"
        )


def run_storm(config: StormConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the storm to its end (bounded), then return the result dict."""
    jobs, bucket = make_jobs(config)
    ctx = mp.get_context("spawn")  # no fork of a process that may run threads (rich)
    events: Any = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    start_at: Any = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(target=worker_main, args=(job, events, go, start_at, stop), daemon=True)
        for job in jobs
    ]
    started_at = dt.datetime.now(dt.UTC)
    for proc in procs:
        proc.start()
    results: dict[int, dict[str, Any]] = {}
    try:
        _wait_ready(events, len(procs))
        start_at.value = time.monotonic() + START_DELAY_S
        go.set()
        hard_stop = start_at.value + max(job.deadline_s for job in jobs) + EXTRA_GRACE_S
        results = _collect(events, len(procs), start_at.value, hard_stop, stop, console)
        stop_requested = bool(stop.is_set())
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=10.0)
            if proc.is_alive():
                proc.terminate()  # by PID: this process's own child
                proc.join(timeout=5.0)
    elapsed = max((r["client"]["wall_s"] for r in results.values()), default=0.0)
    merged = stats.merge([stats.Recorder.from_dict(r["recorder"]) for r in results.values()])
    clients = [results[i]["client"] for i in sorted(results)]
    return {
        "kind": RESULT_KIND,
        "version": RESULT_VERSION,
        "label": config.label or config.url,
        "url": config.url,
        "started_at": started_at.isoformat(timespec="seconds"),
        "config": config.describe(),
        "summary": stats.summary(merged, elapsed),
        "client": client_verdict(clients, os.cpu_count() or 1),
        "bucket_s": bucket,
        "interrupted": stop_requested,
        "ideal": ideal_run(config, elapsed),
        "retry": retry_summary(config, results),
    }


def retry_summary(config: StormConfig, results: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The retrying clients' figures (storm.retry.summary), None for a one-shot storm."""
    if config.client_mode == "none":
        return None
    records = [
        retry.ClientRecord.from_row(row)
        for index in sorted(results)
        for row in results[index].get("clients", [])
    ]
    return retry.summary(records, config.client_mode)


def ideal_run(config: StormConfig, end_s: float) -> dict[str, Any] | None:
    """What a target that completes `config.capacity_per_s` handshakes a second, in order
    and without a failure, would have done with this storm: its time to the last success
    and its successes so far at IDEAL_POINTS times up to the later of `end_s` and that.
    None when the capacity is not known."""
    capacity = config.capacity_per_s
    if not capacity:
        return None
    arrival = config.arrival
    starts: tuple[float, ...] | None
    if isinstance(arrival, plan.ClosedLoop):
        # Clients always have a handshake waiting, until the duration ends the loop.
        starts = None
        limit = min(float(arrival.max_count or math.inf), capacity * arrival.duration_s)
        last = limit / capacity
    else:
        starts = plan.build(arrival, config.seed, config.spacing)
        limit = float(len(starts))
        last = stats.ideal_last_success_s(starts, capacity) or 0.0
    horizon = max(end_s, last)
    times = [round(horizon * i / IDEAL_POINTS, 4) for i in range(IDEAL_POINTS + 1)]
    return {
        "capacity_per_s": capacity,
        "time_to_last_success_s": round(last, 3),
        "t": times,
        "ok_total": stats.ideal_successes(starts, capacity, times, limit),
    }


def client_verdict(clients: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    """Was the client itself the bottleneck? Pure, on the workers' own figures."""
    busy = [c for c in clients if (c.get("cpu_util") or 0.0) >= CPU_BOUND_UTIL]
    notes: list[str] = []
    if busy:
        worst = max(busy, key=lambda c: c["cpu_util"])
        notes.append(
            f"worker {worst['worker']} used {worst['cpu_util']:.0%} of a core: the client "
            "may have limited this storm; try more --workers"
            + (" (more than there are cores will not help)" if len(clients) >= cores else "")
        )
    late = max((c.get("max_start_lag_ms") or 0.0 for c in clients), default=0.0)
    if late > 100.0:
        notes.append(f"handshakes started up to {late:.0f} ms behind schedule")
    return {
        "workers": clients,
        "cores": cores,
        "cpu_s": round(sum(c["cpu_s"] for c in clients), 3),
        "cpu_bound": bool(busy),
        "notes": notes,
    }


def _wait_ready(events: Any, count: int) -> None:
    ready = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready < count:
        try:
            kind, index, data = events.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue_mod.Empty:
            raise StormError(f"only {ready} of {count} workers started") from None
        if kind == "error":
            raise StormError(f"worker {index} failed to start:\n{data}")
        if kind == "ready":
            ready += 1


def _collect(
    events: Any,
    count: int,
    start: float,
    hard_stop: float,
    stop: Any,
    console: Console | None,
) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    progress: dict[int, dict[str, Any]] = {}
    live = Live(console=console, refresh_per_second=4, transient=False) if console else None
    try:
        if live is not None:
            live.start()
        while len(results) < count:
            if time.monotonic() > hard_stop:
                stop.set()
                raise StormError("workers passed their deadline and were stopped")
            try:
                kind, index, data = events.get(timeout=0.25)
            except queue_mod.Empty:
                continue
            except KeyboardInterrupt:
                # First Ctrl-C: stop the workers and keep what they measured; second: quit.
                if stop.is_set():
                    raise
                stop.set()
                hard_stop = min(hard_stop, time.monotonic() + INTERRUPT_GRACE_S)
                continue
            if kind == "progress":
                progress[index] = data
                if live is not None:
                    live.update(progress_table(progress, time.monotonic() - start))
            elif kind == "result":
                results[index] = data
            elif kind == "error":
                stop.set()
                raise StormError(f"worker {index} failed:\n{data}")
    finally:
        if live is not None:
            live.stop()
    return results


def progress_table(progress: dict[int, dict[str, Any]], elapsed_s: float) -> Table:
    """The live view: totals so far across workers."""
    outcomes: Counter[str] = Counter()
    for part in progress.values():
        outcomes.update(part["outcomes"])
    started = sum(part["started"] for part in progress.values())
    in_flight = sum(part["in_flight"] for part in progress.values())
    table = Table(title=f"wsgate storm  {elapsed_s:6.1f} s", show_header=True)
    table.add_column("started", justify="right")
    table.add_column("in flight", justify="right")
    table.add_column("done", justify="right")
    for name in sorted(outcomes, key=stats.outcome_sort_key)[:8]:
        table.add_column(name, justify="right", style="green" if name == stats.OK else "red")
    table.add_row(
        f"{started:,}",
        f"{in_flight:,}",
        f"{sum(outcomes.values()):,}",
        *(f"{outcomes[name]:,}" for name in sorted(outcomes, key=stats.outcome_sort_key)[:8]),
    )
    return table

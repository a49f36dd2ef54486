"""One storm worker process: runs its share of the plan on its own event loop.

`worker_main` is the process entry (multiprocessing, spawn). It reports progress and, at
the end, its `Recorder` and its own CPU figures to the parent through a queue, as plain
dicts. Every loop here is bounded by a count and by `WorkerJob.deadline_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

from wsgate.policy.backoff import GiveUp, failure_cause
from wsgate.storm import retry, stats
from wsgate.storm.client import Connection, Target, open_connection

PROGRESS_EVERY_S = 0.25
LAG_PROBE_EVERY_S = 0.05


class _Queue(Protocol):
    def put(self, item: Any) -> None: ...


class _Event(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Session:
    """What each connection does after its 101."""

    messages: int = 0
    size: int = 64
    interval_s: float = 0.0
    hold_s: float = 0.0
    message_timeout_s: float = 10.0

    def max_duration_s(self) -> float:
        per_message = self.interval_s + self.message_timeout_s
        return self.messages * per_message + self.hold_s + 5.0  # + the close handshake


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """One worker's share: an open schedule, or a closed loop (`schedule` None)."""

    index: int
    targets: tuple[Target, ...]  # connection k of the storm goes to targets[k % len]
    session: Session
    timeout_s: float
    bucket_s: float
    deadline_s: float  # hard stop, seconds after the start
    schedule: tuple[float, ...] | None = None
    concurrency: int = 0
    loop_duration_s: float = 0.0
    loop_max_count: int = 0  # 0: only the duration bounds the loop
    workers: int = 1
    client_mode: str = "none"  # or a retrying client: see storm.retry
    max_attempts: int = retry.DEFAULT_MAX_ATTEMPTS
    seed: int = 1


@dataclass
class _State:
    job: WorkerJob
    start: float
    recorder: stats.Recorder
    in_flight: int = 0
    lags: list[float] = field(default_factory=list)
    max_loop_lag_s: float = 0.0
    opened: int = 0
    clients: list[retry.ClientRecord] = field(default_factory=list)

    def next_target(self) -> Target:
        """Round robin over the targets, interleaved with the other workers' turns."""
        job = self.job
        number = job.index + self.opened * job.workers
        self.opened += 1
        return job.targets[number % len(job.targets)]

    def now(self) -> float:
        return time.monotonic() - self.start


async def _one(state: _State, payload: bytes) -> None:
    """One connection: handshake, round trips, hold, close; every result recorded."""
    job, rec = state.job, state.recorder
    if job.client_mode != "none":
        await _one_retrying(state, payload)
        return
    rec.record_start()
    target = state.next_target()
    state.in_flight += 1
    began = time.monotonic()
    conn: Connection | None = None
    try:
        outcome, conn, retry_after_s = await open_connection(target, job.timeout_s)
        rec.record_handshake(state.now(), time.monotonic() - began, outcome, retry_after_s)
        if conn is None:
            return
        try:
            await _talk(state, conn, payload)
            await conn.close()
        except Exception as exc:  # one odd connection must not end the whole storm
            rec.record_session_error(f"error {type(exc).__name__}")
        else:
            conn = None
    finally:
        state.in_flight -= 1
        if conn is not None:
            conn.abort()


async def _one_retrying(state: _State, payload: bytes) -> None:
    """One client that retries by its policy until connected, and reconnects the same
    way if the server closes before its hold (from its first connection) is over.
    Bounded by the policy's max_attempts and by the worker's deadline."""
    job, rec = state.job, state.recorder
    number = len(state.clients)
    rng = random.Random(f"{job.seed}:{job.index}:{number}")
    policy = retry.make_policy(job.client_mode, rng, job.max_attempts)
    record = retry.ClientRecord(started_at=state.now())
    state.clients.append(record)
    rec.record_start()
    state.in_flight += 1
    hold_until: float | None = None
    try:
        while True:
            record.attempt()
            began = time.monotonic()
            outcome, conn, retry_after_s = await open_connection(state.next_target(), job.timeout_s)
            closed = conn.server_close() if conn is not None else None
            if conn is not None and closed is None:
                rec.record_handshake(state.now(), time.monotonic() - began, outcome, None)
                record.connected(state.now())
                policy.connected(state.now())
                first = hold_until is None
                if hold_until is None:
                    hold_until = state.now() + job.session.hold_s
                closed = await _connected_session(state, conn, payload, hold_until, first)
                if closed is None:
                    return
                failure = retry.failure_of(stats.OK, None, closed)
            else:
                if conn is not None and closed is not None:
                    conn.abort()
                    outcome = f"{retry.CLOSED_OUTCOME} {closed[0]}"
                rec.record_handshake(state.now(), time.monotonic() - began, outcome, retry_after_s)
                failure = retry.failure_of(outcome, retry_after_s, closed)
            record.failed(failure_cause(failure))
            decision = policy.failed(failure, state.now())
            if isinstance(decision, GiveUp):
                record.gave_up = True
                return
            delay = decision.at - state.now()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        state.in_flight -= 1


async def _connected_session(
    state: _State, conn: Connection, payload: bytes, hold_until: float, first: bool
) -> tuple[int, str] | None:
    """Messages (on the first connection only), then hold until `hold_until`; the
    server's close (code, reason) if it ended the connection before, else None (closed
    by us, cleanly)."""
    try:
        if first:
            await _talk(state, conn, payload)
        remaining = hold_until - state.now()
        if conn.server_close() is None and remaining > 0:
            await conn.hold(remaining)
        closed = conn.server_close()
        if closed is not None:
            conn.abort()
            return closed
        await conn.close()
        return None
    except Exception as exc:  # one odd connection must not end the whole storm
        state.recorder.record_session_error(f"error {type(exc).__name__}")
        conn.abort()
        return None


async def _talk(state: _State, conn: Connection, payload: bytes) -> None:
    session, rec = state.job.session, state.recorder
    for number in range(session.messages):
        if number and session.interval_s > 0:
            await asyncio.sleep(session.interval_s)
        try:
            rtt = await conn.round_trip(payload, session.message_timeout_s)
        except TimeoutError:
            rec.record_session_error("echo timeout")
            return
        except (ConnectionError, OSError):
            rec.record_session_error("closed during messages")
            return
        rec.record_rtt(state.now(), rtt)
    if session.hold_s > 0 and not await conn.hold(session.hold_s):
        rec.record_session_error("closed during hold")


async def _open_loop(state: _State, schedule: tuple[float, ...], payload: bytes) -> None:
    tasks: set[asyncio.Task[None]] = set()
    for offset in schedule:
        delay = offset - state.now()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            state.lags.append(-delay)
        task = asyncio.create_task(_one(state, payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def _closed_loop(state: _State, payload: bytes) -> None:
    job = state.job
    budget = [job.loop_max_count or -1]  # shared by this worker's clients

    async def client() -> None:
        while state.now() < job.loop_duration_s and budget[0] != 0:
            budget[0] -= 1
            await _one(state, payload)

    await asyncio.gather(*(client() for _ in range(job.concurrency)))


async def _lag_probe(state: _State) -> None:
    """How late the loop wakes up: a busy client shows as lag here."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_PROBE_EVERY_S)
        late = time.monotonic() - before - LAG_PROBE_EVERY_S
        state.max_loop_lag_s = max(state.max_loop_lag_s, late)


async def _progress(state: _State, queue: _Queue, stop: _Event) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        rec = state.recorder
        queue.put(
            (
                "progress",
                state.job.index,
                {
                    "started": rec.started,
                    "in_flight": state.in_flight,
                    "outcomes": dict(rec.outcomes),
                },
            )
        )
        if stop.is_set():
            raise asyncio.CancelledError


async def _run(job: WorkerJob, start: float, queue: _Queue, stop: _Event) -> dict[str, Any]:
    state = _State(job, start, stats.Recorder(bucket_s=job.bucket_s))
    payload = b"x" * job.session.size
    delay = start - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    cpu_before = time.process_time()
    helpers = [
        asyncio.create_task(_lag_probe(state)),
        asyncio.create_task(_progress(state, queue, stop)),
    ]
    main = asyncio.create_task(
        _open_loop(state, job.schedule, payload)
        if job.schedule is not None
        else _closed_loop(state, payload)
    )
    stopped = False
    try:
        remaining = max(job.deadline_s - state.now(), 0.1)
        done, _ = await asyncio.wait(
            [main, helpers[1]], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        if main not in done:
            stopped = True  # deadline or a stop request from the parent
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
        else:
            main.result()
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    wall = state.now()
    cpu = time.process_time() - cpu_before
    lags = sorted(state.lags)
    return {
        "recorder": state.recorder.to_dict(),
        "clients": [record.to_row() for record in state.clients],
        "client": {
            "worker": job.index,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_util": round(cpu / wall, 3) if wall > 0 else None,
            "max_loop_lag_ms": round(state.max_loop_lag_s * 1000, 1),
            "late_starts": len(lags),
            "max_start_lag_ms": round(lags[-1] * 1000, 1) if lags else 0.0,
            "stopped_early": stopped,
        },
    }


def worker_main(job: WorkerJob, queue: Any, go: Any, start_at: Any, stop: Any) -> None:
    """Process entry: wait for the parent's go, run, put ("result" | "error", index, data)."""
    # Ctrl-C reaches the whole process group; the parent alone decides, through `stop`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runner = _runner()
        queue.put(("ready", job.index, None))
        if not go.wait(60.0):
            queue.put(("error", job.index, "the parent never said go"))
            return
        with runner:
            result = runner.run(_run(job, float(start_at.value), queue, stop))
        queue.put(("result", job.index, result))
    except BaseException:  # reported to the parent, which prints it once
        queue.put(("error", job.index, traceback.format_exc()))


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # uvloop is pinned, but the client works without it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)

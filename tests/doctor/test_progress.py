"""Progress of --idle and --burst: the values the probe reports, the terminal view, and
nothing at all when stderr is not a terminal."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest

from tests.support.backends import ws_server
from wsgate.doctor import progress, runner
from wsgate.doctor.observations import Settings
from wsgate.doctor.probe import parse_target

Call = tuple[str, float, float]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, step: str, done: float, total: float) -> None:
        self.calls.append((step, done, total))

    def of(self, step: str) -> list[Call]:
        return [call for call in self.calls if call[0] == step]


def fake_clock(step_s: float) -> Iterator[float]:
    now = 100.0
    while True:
        yield now
        now += step_s


def test_ticking_reports_elapsed_seconds_capped_at_the_total() -> None:
    clock = fake_clock(10.0)
    recorder = Recorder()
    finished = asyncio.Event()

    def heard(step: str, done: float, total: float) -> None:
        recorder(step, done, total)
        if len(recorder.calls) == 4:
            finished.set()  # the work ends after the fourth report, however slow the host

    async def work() -> str:
        await finished.wait()
        return "held"

    async def main() -> str:
        return await progress.ticking(
            work(), "idle", 25.0, heard, every_s=0.01, clock=lambda: next(clock)
        )

    assert asyncio.run(asyncio.wait_for(main(), 60)) == "held"
    # The clock moves 10 s per reading; the first reading is the start.
    assert recorder.calls == [
        ("idle", 10.0, 25.0),
        ("idle", 20.0, 25.0),
        ("idle", 25.0, 25.0),
        ("idle", 25.0, 25.0),
        ("idle", 25.0, 25.0),
    ]


def test_ticking_without_progress_only_awaits_and_errors_pass_through() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def value() -> int:
        return 7

    assert asyncio.run(progress.ticking(value(), "idle", 1.0, None)) == 7
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(progress.ticking(fails(), "idle", 1.0, Recorder(), every_s=0.01))


def test_shown_values() -> None:
    assert progress.shown("idle", 12.4, 60.0) == "12/60 s"
    assert progress.shown("idle", 0.4, 1.5) == "0/1.5 s"
    assert progress.shown("burst", 340, 1000) == "340/1000 handshakes"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_only_on_a_tty() -> None:
    plain = io.StringIO()
    with progress.terminal(plain) as bars:
        assert bars is None
    assert plain.getvalue() == ""
    tty = FakeTty()
    with progress.terminal(tty) as bars:
        assert isinstance(bars, progress.TerminalProgress)
        bars("idle", 3.0, 10.0)
        bars("burst", 2, 5)
    shown = tty.getvalue()
    assert "idle hold" in shown and "3/10 s" in shown
    assert "burst" in shown and "2/5 handshakes" in shown


def test_probe_reports_idle_seconds_and_burst_handshakes() -> None:
    recorder = Recorder()
    settings = Settings(timeout_s=20.0, idle_s=1.0, burst=5)
    with ws_server() as port:
        target = parse_target(f"ws://127.0.0.1:{port}/")
        observations = runner.run_sync(target, settings, recorder)
    assert observations.idle is not None and observations.burst is not None
    idle = recorder.of("idle")
    assert len(idle) >= 2  # the start and the end, whatever the host's speed
    assert all(total == 1.0 and 0.0 <= done <= 1.0 for _, done, total in idle)
    assert [done for _, done, _ in idle] == sorted(done for _, done, _ in idle)
    assert idle[-1][1] == pytest.approx(1.0, abs=0.5)  # ends at (about) the whole hold
    assert recorder.of("burst") == [("burst", float(i), 5.0) for i in range(6)]
    # The idle hold comes before the burst.
    steps = [step for step, _, _ in recorder.calls]
    assert steps == sorted(steps, key=["idle", "burst"].index)


def test_probe_without_progress_is_unchanged() -> None:
    settings = Settings(timeout_s=20.0, idle_s=0.2, burst=2)
    with ws_server() as port:
        observations = runner.run_sync(parse_target(f"ws://127.0.0.1:{port}/"), settings)
    assert observations.idle is not None and observations.idle.first_cut is None
    assert observations.burst is not None

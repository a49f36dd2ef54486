"""Progress of the doctor's long steps (--idle holds up to an hour, --burst N), shown on a
terminal only.

The probe calls a `Progress` with (step, done, total): `idle` counts seconds held, `burst`
handshakes finished. `terminal()` draws them with rich on stderr when stderr is a TTY and
gives None otherwise, so piped and --json runs print exactly what they did before.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

T = TypeVar("T")

IDLE = "idle"
BURST = "burst"
TICK_S = 0.5  # how often a held idle connection reports its elapsed time

LABELS = {IDLE: "idle hold", BURST: "burst"}


class Progress(Protocol):
    def __call__(self, step: str, done: float, total: float) -> None: ...


async def ticking(
    work: Awaitable[T],
    step: str,
    total: float,
    progress: Progress | None,
    *,
    every_s: float = TICK_S,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Await `work`, reporting the seconds since it started (at most `total`) every
    `every_s` and once at the end. Without `progress`, just awaits it."""
    if progress is None:
        return await work
    start = clock()
    task = asyncio.ensure_future(work)
    try:
        while True:
            progress(step, min(max(clock() - start, 0.0), total), total)
            done, _ = await asyncio.wait({task}, timeout=every_s)
            if done:
                break
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    progress(step, min(max(clock() - start, 0.0), total), total)
    return task.result()


def shown(step: str, done: float, total: float) -> str:
    """`12/60 s` (whole seconds held out of --idle) or `340/1000 handshakes`."""
    if step == IDLE:
        return f"{done:.0f}/{total:g} s"
    if step == BURST:
        return f"{done:.0f}/{total:.0f} handshakes"
    return f"{done:g}/{total:g}"


class TerminalProgress:
    """One rich progress bar per step, on stderr; gone once the probe ends."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bars: RichProgress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[shown]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, step: str, done: float, total: float) -> None:
        task = self._tasks.get(step)
        if task is None:
            text = shown(step, done, total)
            task = self._bars.add_task(LABELS.get(step, step), total=total, shown=text)
            self._tasks[step] = task
        self._bars.update(task, completed=done, total=total, shown=shown(step, done, total))

    def start(self) -> None:
        self._bars.start()

    def stop(self) -> None:
        self._bars.stop()


@contextlib.contextmanager
def terminal(stream: IO[str] | None = None) -> Iterator[Progress | None]:
    """A TerminalProgress on `stream` (stderr) while it is a TTY, else None."""
    out = sys.stderr if stream is None else stream
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        yield None
        return
    bars = TerminalProgress(out)
    bars.start()
    try:
        yield bars
    finally:
        bars.stop()

"""cancel_and_wait on real loops (asyncio's and uvloop's): every task cancelled, each one
waited for to its end (cleanup included), finished tasks taken as they are, and an
error a task ended with raised to the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from wsgate.gateway.tasks import cancel_and_wait

Runner = Callable[[Coroutine[Any, Any, None]], None]
DEADLINE_S = 10.0  # far beyond any step here; a hang fails instead of blocking


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run


async def forever(started: asyncio.Event) -> None:
    started.set()
    await asyncio.Event().wait()


def test_every_running_task_is_cancelled(run: Runner) -> None:
    async def main() -> None:
        started = [asyncio.Event() for _ in range(3)]
        tasks = [asyncio.create_task(forever(event)) for event in started]
        for event in started:
            await event.wait()
        async with asyncio.timeout(DEADLINE_S):
            await cancel_and_wait(tasks)
        assert all(task.cancelled() for task in tasks)

    run(main())


def test_it_waits_for_each_tasks_cleanup_to_end(run: Runner) -> None:
    async def main() -> None:
        cleaned: list[int] = []
        started = [asyncio.Event() for _ in range(3)]

        async def slow_to_leave(index: int) -> None:
            try:
                started[index].set()
                await asyncio.Event().wait()
            finally:
                # Cleanup that itself awaits, several loop turns: still waited for.
                for _ in range(5):
                    await asyncio.sleep(0)
                cleaned.append(index)

        tasks = [asyncio.create_task(slow_to_leave(i)) for i in range(3)]
        for event in started:
            await event.wait()  # every task now waits inside its try
        async with asyncio.timeout(DEADLINE_S):
            await cancel_and_wait(tasks)
        assert sorted(cleaned) == [0, 1, 2]
        assert all(task.done() for task in tasks)

    run(main())


def test_finished_and_already_cancelled_tasks_are_taken_as_they_are(run: Runner) -> None:
    async def main() -> None:
        async def done_at_once() -> None:
            return None

        finished = asyncio.create_task(done_at_once())
        await finished
        cancelled = asyncio.create_task(forever(asyncio.Event()))
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        started = asyncio.Event()
        running = asyncio.create_task(forever(started))
        await started.wait()
        async with asyncio.timeout(DEADLINE_S):
            await cancel_and_wait([finished, cancelled, running])
            await cancel_and_wait([finished, cancelled, running])  # again: nothing to do
            await cancel_and_wait([])
        assert finished.done() and not finished.cancelled()
        assert cancelled.cancelled() and running.cancelled()

    run(main())


def test_any_iterable_of_tasks_is_taken_once(run: Runner) -> None:
    async def main() -> None:
        started = asyncio.Event()
        tasks = {asyncio.create_task(forever(started))}
        await started.wait()
        async with asyncio.timeout(DEADLINE_S):
            await cancel_and_wait(task for task in tasks)  # a generator: read once
        assert all(task.cancelled() for task in tasks)

    run(main())


def test_an_error_a_task_ended_with_is_raised(run: Runner) -> None:
    async def main() -> None:
        async def fails() -> None:
            raise RuntimeError("the task's own error")

        failed = asyncio.create_task(fails())
        await asyncio.gather(failed, return_exceptions=True)
        started = asyncio.Event()
        running = asyncio.create_task(forever(started))
        await started.wait()
        with pytest.raises(RuntimeError, match="the task's own error"):
            async with asyncio.timeout(DEADLINE_S):
                await cancel_and_wait([running, failed])
        assert running.cancelled()  # cancelled and waited for before the error came

    run(main())


def test_an_error_raised_while_a_task_cleans_up_is_raised(run: Runner) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def fails_on_cancel() -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            finally:
                raise OSError("cleanup failed")

        task = asyncio.create_task(fails_on_cancel())
        await started.wait()
        with pytest.raises(OSError, match="cleanup failed"):
            async with asyncio.timeout(DEADLINE_S):
                await cancel_and_wait([task])
        assert task.done() and not task.cancelled()

    run(main())


def test_the_callers_own_cancellation_is_not_swallowed(run: Runner) -> None:
    async def main() -> None:
        started = asyncio.Event()
        leaving = asyncio.Event()

        async def slow_to_leave() -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            finally:
                leaving.set()
                await asyncio.sleep(0.2)  # still cleaning up when the caller is cancelled

        inner = asyncio.create_task(slow_to_leave())
        await started.wait()
        caller = asyncio.create_task(cancel_and_wait([inner]))
        await leaving.wait()
        caller.cancel()
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(caller, return_exceptions=True)
        assert caller.cancelled()

    run(main())

"""The gateway's own timers on a real loop: the per-client sweep, the descriptor probe
(with the process's descriptor limit really lowered), and the loop's exception handler
for accepts that fail for lack of descriptors."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.descriptors import no_descriptor_left
from wsgate.gateway import upkeep
from wsgate.gateway.upkeep import Upkeep
from wsgate.observe.log import JsonLog


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def no_sweep(now: float) -> None:
    pass


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_accept_out_of_descriptors_is_one_rate_limited_line_and_the_rest_is_passed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncio's own loop reports a failed accept() here every time it retries.
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        stream = io.StringIO()
        loop = asyncio.get_running_loop()
        keeper = Upkeep(loop, JsonLog(stream), no_sweep, lambda: None)
        passed_on: list[dict[str, Any]] = []
        monkeypatch.setattr(loop, "default_exception_handler", passed_on.append)
        emfile = OSError(errno.EMFILE, "Too many open files")
        accept = {"message": "socket.accept() out of system resource", "exception": emfile}
        for _ in range(3):
            keeper.on_loop_exception(loop, accept)
        # Out of descriptors but not in an accept, and an accept failing otherwise.
        other = {"message": "something else", "exception": emfile}
        keeper.on_loop_exception(loop, other)
        ebadf = {"message": "socket.accept() failed", "exception": OSError(errno.EBADF, "Bad")}
        keeper.on_loop_exception(loop, ebadf)
        keeper.stop()  # writes the line held back
        return lines(stream), passed_on

    found, passed_on = asyncio.run(main())
    assert [r["event"] for r in found] == ["accept_failed", "accept_failed"]
    assert [r["suppressed"] for r in found] == [0, 1]
    assert all(r["errno"] == "EMFILE" for r in found)
    assert "Too many open files" in found[0]["detail"]
    assert [c["message"] for c in passed_on] == ["something else", "socket.accept() failed"]


def test_probe_says_so_when_no_descriptor_is_left(listening: socket.socket) -> None:
    async def main() -> list[dict[str, Any]]:
        stream = io.StringIO()
        keeper = Upkeep(asyncio.get_running_loop(), JsonLog(stream), no_sweep, lambda: listening)
        keeper.probe_descriptors()
        assert lines(stream) == []  # descriptors to be had: nothing to say
        with no_descriptor_left():
            keeper.probe_descriptors()
        keeper.stop()
        return lines(stream)

    (line,) = asyncio.run(main())
    assert line["event"] == "accept_failed" and line["errno"] == "EMFILE"
    assert line["open_files_limit"] is not None
    assert "closed unanswered" in line["detail"]


def test_probe_without_a_listening_socket_does_nothing() -> None:
    async def main() -> list[dict[str, Any]]:
        stream = io.StringIO()
        keeper = Upkeep(asyncio.get_running_loop(), JsonLog(stream), no_sweep, lambda: None)
        with no_descriptor_left():
            keeper.probe_descriptors()
        keeper.stop()
        return lines(stream)

    assert asyncio.run(main()) == []


def test_start_sweeps_and_probes_on_their_timers_until_stop(
    monkeypatch: pytest.MonkeyPatch, listening: socket.socket
) -> None:
    monkeypatch.setattr(upkeep, "FD_PROBE_S", 0.01)
    monkeypatch.setattr(upkeep, "SWEEP_S", 0.01)

    async def main() -> tuple[list[float], float, float]:
        loop = asyncio.get_running_loop()
        sweeps: list[float] = []
        probes = 0
        thrice = asyncio.Event()

        def sweep(now: float) -> None:
            sweeps.append(now)
            if len(sweeps) >= 3 and probes >= 3:
                thrice.set()

        def first_socket() -> socket.socket:
            nonlocal probes
            probes += 1
            if len(sweeps) >= 3 and probes >= 3:
                thrice.set()
            return listening

        keeper = Upkeep(loop, JsonLog(io.StringIO()), sweep, first_socket)
        started = loop.time()
        keeper.start()
        assert len(sweeps) == 1 and probes == 1  # both at once
        async with asyncio.timeout(10.0):
            await thrice.wait()
        keeper.stop()
        counts = len(sweeps), probes
        await asyncio.sleep(0.1)  # ten intervals: none comes after stop
        assert (len(sweeps), probes) == counts
        return sweeps, started, loop.time()

    sweeps, started, ended = asyncio.run(main())
    # Each sweep at the loop's time, one after the other.
    assert started <= sweeps[0] and sweeps == sorted(sweeps) and sweeps[-1] <= ended

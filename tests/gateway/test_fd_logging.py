"""Rate-limited lines for running out of file descriptors: none lost, one per interval."""

from __future__ import annotations

import asyncio
import errno
import io
import json
from typing import Any

import pytest

from wsgate.config import single_pool_config
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog, RateLimitedEvent


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_rate_limited_event_writes_one_line_per_interval_and_loses_none() -> None:
    async def main() -> list[dict[str, Any]]:
        stream = io.StringIO()
        limited = RateLimitedEvent(JsonLog(stream), "thing", 0.2, asyncio.get_running_loop())
        for index in range(5):
            limited.emit(index=index)
        assert [r["index"] for r in lines(stream)] == [0]  # the first at once
        await asyncio.sleep(0.5)  # the interval ends: the latest held back, with the count
        limited.emit(index=5)  # a new interval began with that line: held back
        limited.close()  # written at shutdown
        return lines(stream)

    found = asyncio.run(main())
    assert [(r["index"], r["suppressed"]) for r in found] == [(0, 0), (4, 3), (5, 0)]
    assert sum(1 + r["suppressed"] for r in found) == 6


def test_accept_out_of_descriptors_is_logged_and_the_rest_goes_to_the_default_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # asyncio's own loop reports a failed accept() through the loop's exception handler,
    # every time it retries; uvloop never does (see Gateway._probe_descriptors).
    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        stream = io.StringIO()
        loop = asyncio.get_running_loop()
        gateway = Gateway(single_pool_config([], ["127.0.0.1:9"]), JsonLog(stream))
        passed_on: list[dict[str, Any]] = []
        monkeypatch.setattr(loop, "default_exception_handler", passed_on.append)
        emfile = OSError(errno.EMFILE, "Too many open files")
        for _ in range(3):
            gateway._on_loop_exception(
                loop, {"message": "socket.accept() out of system resource", "exception": emfile}
            )
        other = {"message": "something else", "exception": OSError(errno.EBADF, "Bad fd")}
        gateway._on_loop_exception(loop, other)
        gateway._accept_log.close()
        return lines(stream), passed_on

    found, passed_on = asyncio.run(main())
    assert [r["event"] for r in found] == ["accept_failed", "accept_failed"]
    assert [r["suppressed"] for r in found] == [0, 1]
    assert all(r["errno"] == "EMFILE" for r in found)
    assert [c["message"] for c in passed_on] == ["something else"]

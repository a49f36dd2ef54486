"""Rate-limited lines for running out of file descriptors: none lost, one per interval."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

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

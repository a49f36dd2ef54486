"""One JSON object per line on stderr: access lines for requests and tunnels, and one
line for every error the gateway makes, with its cause code and timings."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, TextIO


class JsonLog:
    """Writes events as JSON lines. `stream` defaults to stderr; `enabled_access`
    switches off access lines (errors are always written)."""

    def __init__(self, stream: TextIO | None = None, *, access: bool = True) -> None:
        self._stream = stream
        self.access_enabled = access

    def _write(self, record: dict[str, Any]) -> None:
        stream = self._stream or sys.stderr
        stream.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        stream.flush()

    def event(self, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "pid": os.getpid(),  # tells the workers of `serve --workers N` apart
            "event": event,
        }
        record.update(fields)
        self._write(record)

    def access(self, **fields: Any) -> None:
        if self.access_enabled:
            self.event("access", **fields)

    def error(self, cause: str, **fields: Any) -> None:
        self.event("error", cause=cause, **fields)


class RateLimitedEvent:
    """One kind of line at most once per `interval_s`, for conditions that strike many
    times a second (out of file descriptors). An occurrence inside the interval is held
    back and counted; when the interval ends, the latest one held back is written with
    `suppressed` saying how many others were. Every line thus stands for 1 + suppressed
    occurrences, and none is lost."""

    def __init__(
        self, log: JsonLog, event: str, interval_s: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.log = log
        self.event = event
        self.interval_s = interval_s
        self.loop = loop
        self._quiet_until = float("-inf")
        self._held = 0
        self._latest: dict[str, Any] = {}
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, **fields: Any) -> None:
        now = self.loop.time()
        if now >= self._quiet_until and not self._held:
            self._write(fields, 0, now)
            return
        self._held += 1
        self._latest = fields
        if self._timer is None:
            self._timer = self.loop.call_at(self._quiet_until, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._held:
            held, self._held = self._held, 0
            self._write(self._latest, held - 1, self.loop.time())

    def _write(self, fields: dict[str, Any], suppressed: int, now: float) -> None:
        self._quiet_until = now + self.interval_s
        self.log.event(self.event, suppressed=suppressed, **fields)

    def close(self) -> None:
        """Write what is held back, and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()

"""One line per event on stderr: access lines for requests and tunnels, and one line for
every error the gateway makes, with its cause code and timings.

Lines are JSON objects (`--log-format json`, the default) or `key=value` text
(`--log-format text`), each with a UTC timestamp to the millisecond, the worker's pid and
a level. `--log-level` drops the lines below it: access lines and most events are
`info`, conditions an operator should look at (a backend down or ejected, out of
descriptors) are `warning`, and the gateway's explained errors are `error`.

An observer (`LogObserver`, the metrics) sees every error and event line, written or
not, so that counting needs no second hook in the code that logs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
import weakref
from typing import Any, Protocol, TextIO

import orjson

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("json", "text")
_RANK = {name: rank for rank, name in enumerate(LEVELS)}
# Lines of every connection, held for one write per loop iteration while batching (see
# JsonLog.batch); the rest, rare, are written at once.
HELD_EVENTS = frozenset({"tunnel_end"})
# The pid, read once and again in a forked child, whose copy of a log holds no lines of
# its parent's (os.getpid() is a system call, and every line has it).
_pid = os.getpid()
_LOGS: weakref.WeakSet[JsonLog] = weakref.WeakSet()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()
    for log in _LOGS:
        log._pending = []


os.register_at_fork(after_in_child=_after_fork)
# Events that call for an operator's eye; every other event is info.
WARNING_EVENTS = frozenset(
    {
        "accept_failed",
        "backend_down",
        "backend_ejected",
        "out_of_file_descriptors",
        "parent_gone",
        "reload_failed",
        "sighup_ignored",
        "tls_alpn_refused",
        "tls_insecure_backend",
    }
)


class LogObserver(Protocol):
    """Sees every error and event line (the metrics count them)."""

    def on_error(self, cause: str, fields: dict[str, Any]) -> None: ...
    def on_event(self, event: str, fields: dict[str, Any]) -> None: ...


@functools.lru_cache(maxsize=1)
def _whole_second(seconds: int) -> str:
    # Formatted once a second: every log line has a time stamp.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def timestamp(now: float) -> str:
    """`now` (time.time()) as UTC ISO 8601 with milliseconds: 2026-11-30T10:04:05.123Z."""
    seconds = int(now)
    return f"{_whole_second(seconds)}.{int((now - seconds) * 1000):03d}Z"


def _text_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value if value and not any(c in value for c in ' "=\n') else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def json_line(record: dict[str, Any]) -> str:
    """`record` as one compact JSON line (orjson: two lines a handshake, each a tenth of
    json.dumps' time); json.dumps for what orjson refuses (an integer past 64 bits)."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE).decode()
    except TypeError:
        return json.dumps(record, separators=(",", ":"), default=str) + "\n"


def text_line(record: dict[str, Any]) -> str:
    """`TIME LEVEL EVENT key=value ...`: for a terminal; JSON is for machines."""
    head = f"{record['time']} {record['level'].upper():<7} {record['event']}"
    rest = " ".join(
        f"{key}={_text_value(value)}"
        for key, value in record.items()
        if key not in ("time", "level", "event")
    )
    return f"{head} {rest}" if rest else head


class JsonLog:
    """Writes events as lines. `stream` defaults to stderr; `access` switches off access
    lines (errors are always written, at any level up to error); `fmt` is json or text;
    `level` the lowest level written."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        access: bool = True,
        fmt: str = "json",
        level: str = "info",
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        if level not in _RANK:
            raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, got {level!r}")
        self._stream = stream
        self.fmt = fmt
        self.level = level
        self._min = _RANK[level]
        self.access_enabled = access and self._min <= _RANK["info"]
        self.observer: LogObserver | None = None
        _LOGS.add(self)
        # Connections' lines held until the end of the loop's iteration (see `batch`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[str] = []

    def batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on the lines of every connection (access lines, tunnel ends) are
        written together once per iteration of `loop`, one write for all the lines of the
        iteration instead of one each; any other line is written at once, after the
        lines held.
        `unbatch` (the gateway's stop) writes what is held and ends this."""
        self._loop = loop

    def unbatch(self) -> None:
        self._loop = None
        self.flush()

    def flush(self) -> None:
        """Write the lines held for the end of the loop's iteration."""
        if self._pending:
            text, self._pending = "".join(self._pending), []
            stream = self._stream or sys.stderr
            stream.write(text)
            stream.flush()

    def _write(self, record: dict[str, Any], held: bool) -> None:
        line = json_line(record) if self.fmt == "json" else text_line(record) + "\n"
        loop = self._loop
        if loop is not None and held:
            if not self._pending:
                loop.call_soon(self.flush)
            self._pending.append(line)
            return
        self._pending.append(line)
        self.flush()

    def _emit(self, level: str, event: str, fields: dict[str, Any], *, held: bool = False) -> None:
        if _RANK[level] < self._min:
            return
        record: dict[str, Any] = {
            "time": timestamp(time.time()),
            "level": level,
            "pid": _pid,  # tells the workers of `serve --workers N` apart
            "event": event,
        }
        record.update(fields)
        self._write(record, held)

    def event(self, event: str, **fields: Any) -> None:
        observer = self.observer
        if observer is not None:
            observer.on_event(event, fields)
        if event in WARNING_EVENTS:
            self._emit("warning", event, fields)
        else:
            self._emit("info", event, fields, held=event in HELD_EVENTS)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def access(self, **fields: Any) -> None:
        if self.access_enabled:
            self._emit("info", "access", fields, held=True)

    def error(self, cause: str, **fields: Any) -> None:
        observer = self.observer
        if observer is not None:
            observer.on_error(cause, fields)
        self._emit("error", "error", {"cause": cause, **fields})


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

"""Log lines: millisecond timestamps, JSON and text, levels, and the observer."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wsgate.observe.log import JsonLog, text_line, timestamp


class Seen:
    def __init__(self) -> None:
        self.errors: list[tuple[str, dict[str, Any]]] = []
        self.events: list[str] = []

    def on_error(self, cause: str, fields: dict[str, Any]) -> None:
        self.errors.append((cause, fields))

    def on_event(self, event: str, fields: dict[str, Any]) -> None:
        self.events.append(event)


def test_timestamp_has_milliseconds() -> None:
    assert timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(1_800_000_000.0456) == "2027-01-15T08:00:00.045Z"
    assert timestamp(59.999) == "1970-01-01T00:00:59.999Z"


def test_json_lines() -> None:
    stream = io.StringIO()
    log = JsonLog(stream)
    log.error("no_route", client="10.0.0.1", detail="Host 'x'")
    record = json.loads(stream.getvalue())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert (record["level"], record["event"], record["cause"]) == ("error", "error", "no_route")


def test_text_lines() -> None:
    stream = io.StringIO()
    JsonLog(stream, fmt="text").event("backend_ejected", pool="app", until_s=2.0, note="a b")
    line = stream.getvalue()
    assert re.fullmatch(
        r"\S+Z WARNING backend_ejected pid=\d+ pool=app until_s=2.0 note=\"a b\"\n", line
    )
    assert text_line({"time": "T", "level": "info", "event": "x", "v": None}) == "T INFO    x v=-"


@pytest.mark.parametrize(
    ("level", "written"),
    [
        ("debug", ["debug_thing", "access", "listening", "backend_down", "error"]),
        ("info", ["access", "listening", "backend_down", "error"]),
        ("warning", ["backend_down", "error"]),
        ("error", ["error"]),
    ],
)
def test_levels(level: str, written: list[str]) -> None:
    stream = io.StringIO()
    log = JsonLog(stream, level=level)
    seen = Seen()
    log.observer = seen
    log.debug("debug_thing")
    log.access(status=101)
    log.event("listening")
    log.event("backend_down")
    log.error("upstream_connect_refused", pool="app")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == written
    # The observer sees every error and event, written or not.
    assert seen.errors == [("upstream_connect_refused", {"pool": "app"})]
    assert seen.events == ["listening", "backend_down"]
    assert log.access_enabled == (level in ("debug", "info"))


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="log format"):
        JsonLog(fmt="xml")
    with pytest.raises(ValueError, match="log level"):
        JsonLog(level="loud")


class CountingStream(io.StringIO):
    """Counts the writes that reach it: one per line unbatched, one per loop iteration
    batched."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@dataclass
class Batched:
    """A log batching on a loop of its own, and the stream it writes to."""

    stream: CountingStream
    log: JsonLog
    loop: asyncio.AbstractEventLoop


@pytest.fixture
def batched() -> Iterator[Batched]:
    stream = CountingStream()
    log = JsonLog(stream)
    loop = asyncio.new_event_loop()
    log.batch(loop)
    try:
        yield Batched(stream, log, loop)
    finally:
        loop.close()


def test_batched_info_lines_are_one_write_per_loop_iteration(batched: Batched) -> None:
    stream, log = batched.stream, batched.log
    for n in range(4):
        log.access(n=n)
    log.event("tunnel_end", n=4)
    assert stream.getvalue() == ""  # held until the iteration ends
    batched.loop.run_until_complete(asyncio.sleep(0))
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == list(range(5))
    assert stream.writes == 1


def test_lines_other_than_a_connection_s_are_written_at_once_after_the_lines_held(
    batched: Batched,
) -> None:
    stream, log = batched.stream, batched.log
    log.access(n=1)
    log.event("backend_down", backend="a")  # a warning: not held
    log.error("upstream_connect_refused", backend="b")
    log.event("reload_done")  # info, but not a connection's line: not held
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["access", "backend_down", "error", "reload_done"]


def test_unbatch_writes_what_is_held_and_ends_batching(batched: Batched) -> None:
    stream, log = batched.stream, batched.log
    log.access(n=1)
    log.unbatch()
    assert json.loads(stream.getvalue())["n"] == 1
    log.access(n=2)  # no loop iteration needed any more
    assert json.loads(stream.getvalue().splitlines()[1])["n"] == 2


def test_the_pid_is_the_process_s_own_after_a_fork() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its line, through the pipe
        stream = io.StringIO()
        JsonLog(stream).event("child")
        os.write(write, stream.getvalue().encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        line = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert line["pid"] == pid != os.getpid()


def test_json_lines_are_what_json_reads_back_whatever_the_values() -> None:
    from wsgate.observe.log import json_line

    record: dict[str, Any] = {
        "target": '/caf\u00e9?q="x"\n',
        "big": 2**70,  # past orjson's 64 bits: json.dumps writes it
        "ratio": 0.1,
        "none": None,
        "path": Path("/tmp/x"),  # not JSON: its str()
        "ok": True,
    }
    line = json_line(record)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {**record, "path": "/tmp/x"}
    small = {"a": 1, "b": [1, 2], "c": "x"}
    assert json_line(small) == json.dumps(small, separators=(",", ":")) + "\n"

"""One gateway in this process (gateway/launch.py): the soft descriptor limit it raises,
the collector it tunes, and its one-write lines on stderr. What changes the process (its
limits, its collector) runs in a child Python, never in the test's own process; the exit
statuses of `run_one` are checked on real processes in tests/gateway/test_serve_errors.py
and tests/e2e/."""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys

import pytest

from wsgate.gateway import launch
from wsgate.gateway.launch import GC_GEN0_THRESHOLD, open_files_target, say

INFINITY = resource.RLIM_INFINITY
NR_OPEN = 1_048_576


def run_python(code: str) -> str:
    """`code` in a child interpreter (this one, so it imports wsgate); its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("soft", "hard", "nr_open", "target"),
    [
        (1024, 4096, None, 4096),  # the usual case: up to the hard limit
        (1024, 4096, NR_OPEN, 4096),  # nr_open matters only when the hard limit is infinite
        (4096, 4096, None, None),  # already there
        (8192, 4096, None, None),  # never lowered
        (1024, INFINITY, NR_OPEN, NR_OPEN),  # infinite hard limit: fs.nr_open is the ceiling
        (1024, INFINITY, None, None),  # ... and where it cannot be read, nothing is set
        (NR_OPEN, INFINITY, NR_OPEN, None),
        (INFINITY, INFINITY, NR_OPEN, None),  # nothing is above infinite
    ],
)
def test_the_soft_limit_to_set(
    soft: int, hard: int, nr_open: int | None, target: int | None
) -> None:
    assert open_files_target(soft, hard, infinity=INFINITY, nr_open=nr_open) == target


def test_nr_open_is_read_where_linux_has_it() -> None:
    found = launch.read_nr_open()
    if sys.platform.startswith("linux"):
        assert found is not None and found > 0
    else:
        assert found is None


LOWERED = """
import json, resource
from wsgate.gateway.launch import raise_open_files_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
low = 64 if hard == resource.RLIM_INFINITY else min(64, hard)
resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
raise_open_files_limit()
print(json.dumps([low, hard, *resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def test_a_low_soft_limit_is_raised_to_the_hard_one() -> None:
    low, hard, soft_after, hard_after = json.loads(run_python(LOWERED))
    assert hard == INFINITY or low < hard  # else there is nothing to raise
    assert hard_after == hard  # the hard limit is never touched
    assert soft_after == (launch.read_nr_open() if hard == INFINITY else hard)


TUNED = """
import gc, json
from wsgate.gateway.launch import tune_gc
before = gc.get_freeze_count()
tune_gc()
print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))
"""


def test_the_collector_freezes_startup_and_collects_less_often() -> None:
    before, frozen, threshold = json.loads(run_python(TUNED))
    assert before == 0 and frozen > 0  # what startup made is out of the collector's walks
    assert threshold == [GC_GEN0_THRESHOLD, 20, 20]


class Writes(io.StringIO):
    """A stream that keeps each write apart, as two processes sharing stderr see them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_say_is_one_write_with_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Writes()
    monkeypatch.setattr(sys, "stderr", stream)
    say("wsgate: cannot listen on 127.0.0.1:1: Address already in use")
    say("second")
    assert stream.writes == [
        "wsgate: cannot listen on 127.0.0.1:1: Address already in use\n",
        "second\n",
    ]

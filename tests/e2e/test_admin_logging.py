"""serve --log-format text --log-level warning: text lines with millisecond timestamps,
errors and warnings only; the default stays JSON with every line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.admin import serve
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e

CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]

[pools.dead]
backends = ["127.0.0.1:DEAD"]
health = { kind = "none" }
"""


def refused(url: str) -> int:
    with pytest.raises(InvalidStatus) as caught:
        connect(url, open_timeout=30)
    return caught.value.response.status_code


def test_text_lines_at_warning_level(tmp_path: Path) -> None:
    text = CONFIG.replace("DEAD", str(free_port()))
    args = ("--log-format", "text", "--log-level", "warning")
    with serve(tmp_path, text, args=args) as gw:
        assert refused(f"{gw.url}/x") == 502
        gw.proc.popen.terminate()
        assert gw.proc.popen.wait(timeout=30) == 0
        lines = gw.log_lines()
    assert lines, "no log line"
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    for line in lines:
        assert re.match(rf"{stamp} (ERROR|WARNING) +\w+ pid=\d+", line), line
    (error,) = [line for line in lines if " ERROR " in line]
    assert "cause=upstream_connect_refused" in error and "pool=dead" in error
    assert not [line for line in lines if "listening" in line or " access " in line]

"""The gateway's JSON log: `access_log` switches access and tunnel-end lines, never errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import ws_server
from tests.support.gateway import gateway
from tests.support.procs import free_port

CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
access_log = ACCESS

[pools.live]
backends = ["127.0.0.1:LIVE"]

[pools.dead]
backends = ["127.0.0.1:DEAD"]

[[routes]]
path_prefix = "/dead"
pool = "dead"

[[routes]]
path_prefix = "/"
pool = "live"
"""


def _records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize("access", [True, False])
def test_access_log_switch(tmp_path: Path, access: bool) -> None:
    dead = free_port()  # nothing listens there: the connect is refused
    with ws_server() as live:
        config = CONFIG.replace("ACCESS", "true" if access else "false")
        config = config.replace("LIVE", str(live)).replace("DEAD", str(dead))
        with gateway(tmp_path, config=config) as gw:
            with connect(f"{gw.url}/chat") as ws:
                ws.send("hello")
                assert ws.recv(timeout=20) == "hello"
            with pytest.raises(InvalidStatus) as refused:
                connect(f"{gw.url}/dead", open_timeout=30)
            assert refused.value.response.status_code == 502
            gw.proc.popen.terminate()  # by PID; the gateway writes every line before it exits
            assert gw.proc.popen.wait(timeout=30) == 0
            records = _records(gw.log_lines())
    events = [r["event"] for r in records]
    errors = [r for r in records if r["event"] == "error"]
    assert [e["cause"] for e in errors] == ["upstream_connect_refused"]
    assert errors[0]["request_id"]
    if access:
        (upgrade,) = [r for r in records if r["event"] == "access" and r["status"] == 101]
        assert upgrade["target"] == "/chat"
        (end,) = [r for r in records if r["event"] == "tunnel_end"]
        assert end["bytes_up"] > 0 and end["bytes_down"] > 0
        # One request id for the exchange and its tunnel, made by the gateway.
        assert len(upgrade["request_id"]) == 16 and end["request_id"] == upgrade["request_id"]
    else:
        assert "access" not in events
        assert "tunnel_end" not in events

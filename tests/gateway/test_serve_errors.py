"""`wsgate serve` errors that name the address at fault: a listen address that is taken,
a backend name that does not resolve."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_gateway_errors import Parsed, assert_explained
from tests.support.gateway import gateway
from tests.support.raw import raw_request, upgrade_request


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cannot_listen_names_the_address(workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "wsgate", "serve", "--workers", workers]
        argv += ["--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:1"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines  # one line per worker process, each the same
    assert set(lines) == {f"wsgate: cannot listen on 127.0.0.1:{port}: Address already in use"}


# glibc refuses a name with a space (or an empty label, which Python's IDNA codec refuses
# first) before it asks any DNS server, so these lookups never leave the machine; a name
# under .invalid would be sent to the configured nameserver.
@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("no such host.invalid", "the name does not resolve (Name or service not known)"),
        ("empty..label", "the name is not a valid host name (label empty or too long)"),
    ],
)
def test_unresolvable_backend_names_the_address(tmp_path: Path, host: str, words: str) -> None:
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = ["{host}:80"]
[pools.app.health]
kind = "none"
"""
    with gateway(tmp_path, config=config) as gw:
        response = Parsed(raw_request(gw.port, upgrade_request()))
        assert_explained(response, 502, "upstream_connect_failed")
        assert f"Backend {host}:80: {words}.".encode() in response.body

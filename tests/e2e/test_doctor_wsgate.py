"""`wsgate doctor` through `wsgate serve` itself: healthy, and a dead backend explained by
wsgate's own X-Wsgate-Cause and Proxy-Status headers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.doctor.harness import codes, doctor, errors, finding
from tests.support.backends import ws_server
from tests.support.procs import free_port, running

pytestmark = pytest.mark.e2e


@contextmanager
def wsgate_serve(tmp_path: Path, backend: int) -> Iterator[int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "wsgate", "serve",
        "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}",
    ]  # fmt: skip
    with running(argv, tmp_path / "wsgate.log", port):
        yield port


def test_healthy_through_wsgate(tmp_path: Path) -> None:
    with ws_server() as backend, wsgate_serve(tmp_path, backend) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--echo", "hello")
    assert status == 0
    assert codes(report) == ["healthy"]
    assert errors(report) == []


def test_wsgate_dead_backend_is_explained_by_its_cause_header(tmp_path: Path) -> None:
    with wsgate_serve(tmp_path, free_port()) as port:
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--timeout", "20")
    assert status == 1
    assert codes(report) == ["gateway_upstream_unreachable"]
    evidence = finding(report, "gateway_upstream_unreachable")["evidence"]
    assert "from wsgate itself" in evidence
    assert "X-Wsgate-Cause: upstream_connect_refused" in evidence

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
def wsgate_serve(tmp_path: Path, backend: int, pool_extra: str = "") -> Iterator[int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "wsgate", "serve",
        "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{backend}",
    ]  # fmt: skip
    if pool_extra:
        config = tmp_path / "wsgate.toml"
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:{port}"]\n'
            f'[pools.app]\nbackends = ["127.0.0.1:{backend}"]\n{pool_extra}\n'
        )
        argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(config)]
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


def test_wsgate_tunnel_idle_timeout_is_idle_cut_by_close_frame(tmp_path: Path) -> None:
    with (
        ws_server(ping_interval=None) as backend,
        wsgate_serve(tmp_path, backend, "tunnel_idle_timeout_s = 2") as port,
    ):
        status, report = doctor(f"ws://127.0.0.1:{port}/", "--idle", "10")
    assert status == 1
    assert errors(report) == ["idle_cut"]
    assert "by a close frame 1001 'idle timeout'" in finding(report, "idle_cut")["evidence"]

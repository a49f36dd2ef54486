"""The admin listener from a test: GET and POST with the standard library, the metrics
parsed with prometheus_client's own parser, and a wait for a condition to hold."""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateway import RunningGateway
from tests.support.procs import free_port, running, wait_for_port

T = TypeVar("T")


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = request(port, "GET", path, headers)
    return status, json.loads(body)


def scrape(port: int, headers: dict[str, str] | None = None) -> list[Any]:
    """/metrics, parsed by prometheus_client's parser (which fails on a malformed line)."""
    status, found, body = request(port, "GET", "/metrics", headers)
    assert status == 200, body
    assert found["Content-Type"].startswith("text/plain; version=0.0.4")
    return list(text_string_to_metric_families(body.decode()))


def value(families: list[Any], name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels`."""
    total = 0.0
    for family in families:
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def wait_until(probe: Callable[[], T | None], timeout_s: float = 10.0, every_s: float = 0.1) -> T:
    """Call `probe` until it returns something truthy; its last answer fails the test."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {timeout_s} s: {found!r}")
        time.sleep(every_s)


@contextlib.contextmanager
def serve(
    tmp_path: Path, config: str, *, workers: int = 1, args: tuple[str, ...] = ()
) -> Iterator[RunningGateway]:
    """`wsgate serve --config` with `workers` worker processes; `config` may use {port}
    for the traffic port. Waits for the traffic port and, where the config has one, the
    admin listener (the gateway opens it after the traffic listeners). Stopped by PID."""
    port = free_port()
    path = tmp_path / f"wsgate-{port}.toml"
    text = config.replace("{port}", str(port))
    path.write_text(text)
    admin_listen = tomllib.loads(text).get("admin", {}).get("listen")
    argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(path), *args]
    if workers != 1:
        argv += ["--workers", str(workers)]
    with running(argv, tmp_path / f"wsgate-{port}.log", port) as proc:
        if admin_listen:
            host, _, admin_port = str(admin_listen).rpartition(":")
            try:
                wait_for_port(int(admin_port), host.strip("[]"))
            except TimeoutError:
                raise RuntimeError(f"no admin listener:\n{proc.log()}") from None
        yield RunningGateway(port, proc)

"""Run `wsgate serve` as a real subprocess on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import Proc, free_port, running


@dataclass
class RunningGateway:
    port: int
    proc: Proc

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.proc.log().splitlines()

    def wait_for_log(self, text: str, timeout_s: float = 20.0) -> str:
        """The first log line containing `text`, waited for: the gateway writes a line
        after the bytes that a client may already have seen."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log_lines():
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {text!r}: {self.log_lines()[-20:]}")
            time.sleep(0.05)


@contextlib.contextmanager
def gateway(
    tmp_path: Path,
    *,
    upstreams: list[int] | None = None,
    config: str | None = None,
    port: int | None = None,
) -> Iterator[RunningGateway]:
    """Start the gateway: either a single pool of `upstreams` ports (zero-config flags),
    or a TOML `config` whose text may use {port} for the listen port."""
    port = port or free_port()
    argv = [sys.executable, "-m", "wsgate", "serve"]
    if config is not None:
        path = tmp_path / f"wsgate-{port}.toml"
        path.write_text(config.replace("{port}", str(port)))
        argv += ["--config", str(path)]
    else:
        argv += ["--listen", f"127.0.0.1:{port}"]
        for upstream in upstreams or []:
            argv += ["--upstream", f"127.0.0.1:{upstream}"]
    with running(argv, tmp_path / f"wsgate-{port}.log", port) as proc:
        running_gateway = RunningGateway(port, proc)
        # The first port answers before the other listeners (a TLS one, say) are bound;
        # the `listening` line comes once they all are.
        running_gateway.wait_for_log("listening")
        yield running_gateway

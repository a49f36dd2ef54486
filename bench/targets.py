"""Start the benchmark's processes on 127.0.0.1 and measure them through /proc.

Backends and targets (direct, nginx, HAProxy, wsgate) are started by argv, waited for on
their port, and stopped by PID, never by name. `tree_cpu_s` and `tree_rss_kib` read a
process and its descendants, so nginx's workers and wsgate's worker processes count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TARGETS = (
    "direct",
    "nginx",
    "haproxy",
    "wsgate",
    "wsgate-patient",
    "wsgate-fixed",
    "wsgate-base",
    "wsgate-metrics",
    "wsgate-frames",
    "wsgate-close",
    "nginx-log",
    "wsgate-log",
    "wsgate-wide",
    "floor",
)
# wsgate with other admission settings (bench/<name>.toml). They differ from `wsgate` only
# while handshakes wait in its queue, so only the S1 storms run them.
S1_ONLY = frozenset({"wsgate-patient", "wsgate-fixed"})
# `wsgate-base`: the `wsgate` target's config run from another checkout's source tree (run.py
# --base REV exports it), so that a change is measured against its base in the same run.
BASE_SRC_ENV = "WSGATE_BENCH_BASE_SRC"
# `wsgate-metrics`: the `wsgate` target with the admin listener and its metrics on (the
# `wsgate` target has none), to measure what counting costs on the hot path.
# `wsgate-frames`: the `wsgate` target with frame-aware tunnels (keepalive and frame limits on,
# never reached), to measure what reading both directions' frame headers costs (S3).
# `wsgate-close`: every handshake turned away (a per-client rate limit that the bench's one
# client address is always over) with the close answer a browser can read: a 101 and a 1008
# close made by the gateway; S2's CPU per handshake is then the cost of that answer.
# `nginx-log` and `wsgate-log`: nginx and wsgate with their access logs on (to a file), as
# each ships: the comparison issue 16 asks for.
# `wsgate-wide`: the `wsgate` target with a handshake limit no scenario reaches, so that
# nothing waits in its queue: beside `wsgate` in S2, what admission's queueing costs.
# `floor`: bench/floor_proxy.py, the least a Python proxy on uvloop spends per handshake
# (accept, read the head, connect, copy both ways; nothing parsed, checked or logged).


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=15)


@contextlib.contextmanager
def running(
    name: str, argv: list[str], port: int, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Proc]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    proc = Proc(name, popen, log)
    try:
        try:
            wait_for_port(port)
        except TimeoutError:
            raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}") from None
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def backends(
    work_ms: float, limit: int, workdir: Path, backlog: int = 16
) -> Iterator[tuple[list[int], list[int]]]:
    """Two backends (a pool of 2); yields their ports and PIDs."""
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        pids = []
        for i, port in enumerate(ports):
            argv = [sys.executable, "-m", "bench.backend", "--port", str(port)]
            argv += ["--work-ms", str(work_ms), "--limit", str(limit), "--backlog", str(backlog)]
            pids.append(stack.enter_context(running(f"backend{i + 1}", argv, port, workdir)).pid)
        yield ports, pids


@dataclass
class Target:
    name: str
    urls: list[str]
    pids: list[int]  # roots of the process trees whose CPU and memory are the target's


@contextlib.contextmanager
def target(
    name: str, backend_ports: list[int], workdir: Path, workers: int = 1
) -> Iterator[Target]:
    """Start one target in front of the backends; `direct` starts nothing. `workers` 0
    means every core: nginx `worker_processes auto`, HAProxy one thread per core."""
    if name == "direct":
        yield Target(name, [f"ws://127.0.0.1:{p}/" for p in backend_ports], [])
        return
    port = free_port()
    fill = {
        "port": port,
        "backend1": backend_ports[0],
        "backend2": backend_ports[1],
        "admin": free_port(),
    }
    prefix = workdir / f"{name}-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    if name in ("nginx", "nginx-log"):
        conf = prefix / "nginx.conf"
        access_log = f"{prefix}/access.log" if name == "nginx-log" else "off"
        conf.write_text(
            (HERE / "nginx.conf")
            .read_text()
            .format(prefix=prefix, workers=workers or "auto", access_log=access_log, **fill)
        )
        argv = [NGINX, "-p", str(prefix), "-c", str(conf)]
    elif name == "haproxy":
        conf = prefix / "haproxy.cfg"
        conf.write_text((HERE / "haproxy.cfg").read_text().format(workers=workers or cores, **fill))
        argv = [HAPROXY, "-db", "-f", str(conf)]
    elif name.startswith("wsgate"):
        conf = prefix / "wsgate.toml"
        toml = "wsgate" if name == "wsgate-base" else name
        conf.write_text((HERE / f"{toml}.toml").read_text().format(**fill))
        argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(conf)]
        if workers != 1:
            argv += ["--workers", str(workers or cores)]
    elif name == "floor":
        argv = [sys.executable, "-m", "bench.floor_proxy", "--port", str(port)]
        argv += ["--backend1", str(backend_ports[0]), "--backend2", str(backend_ports[1])]
    else:
        raise ValueError(f"unknown target {name!r}")
    env = None
    if name == "wsgate-base":
        base = os.environ.get(BASE_SRC_ENV)
        if not base:
            raise RuntimeError(f"wsgate-base needs {BASE_SRC_ENV} (bench.run --base REV)")
        env = {**os.environ, "PYTHONPATH": base}
    with running(name, argv, port, prefix, env) as proc:
        time.sleep(0.3)  # let every worker process of the target come up
        yield Target(name, [f"ws://127.0.0.1:{port}/"], [proc.pid])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_pids(roots: list[int]) -> list[int]:
    tree = _children()
    out: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += tree.get(pid, [])
    return out


def tree_cpu_s(roots: list[int]) -> float:
    """User + system CPU seconds of the live processes in these trees."""
    total = 0
    for pid in tree_pids(roots):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def tree_rss_kib(roots: list[int]) -> int:
    """Resident memory of the trees (summed; shared pages count once per process)."""
    total = 0
    for pid in tree_pids(roots):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
        except OSError:
            continue
    return total

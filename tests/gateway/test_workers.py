"""`serve --workers N` (gateway/workers.py): the ready pipe the parent reads, a worker's
death signal tied to its parent, and the parent's own signals and run directory on a real
`wsgate serve --workers 2` with an admin listener. Every process is stopped by its PID;
every wait is for a condition, under a deadline.

Covered elsewhere: SIGHUP forwarded and a SIGKILLed parent's workers draining
(tests/e2e/test_gateway_lifecycle.py), the port shared (tests/e2e/test_gateway_websocket.py),
READY once every worker listens (tests/e2e/test_deploy.py), a worker that cannot listen
(tests/gateway/test_serve_errors.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tests.support.admin import request
from tests.support.procs import Proc, free_port, start_process, wait_for_port
from wsgate.gateway.process import UPGRADE_NOT_WITH_WORKERS
from wsgate.gateway.workers import child_exit_status, workers_ready

DEADLINE_S = 30.0
T = TypeVar("T")


# == the ready pipe ==========================================================================
def ready_in_thread(fd: int, workers: int) -> Callable[[], bool]:
    """workers_ready(fd, workers) in a thread; the answer, waited for under DEADLINE_S."""
    answer: list[bool] = []
    thread = threading.Thread(target=lambda: answer.append(workers_ready(fd, workers)))
    thread.start()

    def result() -> bool:
        thread.join(DEADLINE_S)
        assert answer, "workers_ready is still reading"
        return answer[0]

    return result


def test_every_worker_wrote_its_byte() -> None:
    read_fd, write_fd = os.pipe()
    try:
        result = ready_in_thread(read_fd, 3)
        for _ in range(3):  # one write each, as each worker makes its own
            os.write(write_fd, b"1")
        # True as soon as the bytes are in, before the workers close their ends.
        assert result() is True
    finally:
        os.close(write_fd)
        os.close(read_fd)


def test_a_worker_that_died_before_listening() -> None:
    read_fd, write_fd = os.pipe()
    try:
        result = ready_in_thread(read_fd, 2)
        os.write(write_fd, b"1")
        os.close(write_fd)  # the last end closes: one worker wrote, one died
        write_fd = -1
        assert result() is False
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)


def test_no_worker_listened() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    try:
        assert workers_ready(read_fd, 1) is False
    finally:
        os.close(read_fd)


# == a worker ends with its parent ===========================================================
def alive(pid: int) -> bool:
    """Running: an exited process not yet reaped by whoever adopted it (a zombie) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(probe: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while not (found := probe()):
        assert time.monotonic() < deadline, f"not so after {DEADLINE_S} s: {what}"
        time.sleep(0.05)
    return found


def read_if_there(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


# The parent forks a child that asks for its death signal, then writes its pid (renamed
# into place: the test never reads half of it); both wait for signals.
ORPHAN = """
import os, signal, sys
from wsgate.gateway.workers import die_with_parent
parent, path = os.getpid(), sys.argv[1]
if os.fork() == 0:
    die_with_parent(parent)
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    while True:
        signal.pause()
while True:
    signal.pause()
"""


def test_a_worker_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN, str(pid_file)])
    child = None
    try:
        child = int(wait_for(lambda: read_if_there(pid_file), "the child's pid"))
        assert alive(child)
        parent.kill()  # SIGKILL: the parent has no chance to pass anything on
        parent.wait(DEADLINE_S)
        wait_for(lambda: not alive(child), f"worker {child} gone after its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(DEADLINE_S)
        if child is not None and alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


# A parent that is gone before the child asked (here: a pid that is not its parent's).
TOO_LATE = """
import os
from wsgate.gateway.workers import die_with_parent
pid = os.fork()
if pid == 0:
    die_with_parent(os.getppid() + 1)
    os._exit(0)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_worker_whose_parent_is_already_gone_exits_at_once() -> None:
    result = subprocess.run(
        [sys.executable, "-c", TOO_LATE], capture_output=True, text=True, timeout=DEADLINE_S
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


# == the parent of `serve --workers 2` =======================================================
def children_of(pid: int) -> set[int]:
    """The PIDs whose parent is `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                # "PID (COMM) STATE PPID ...": COMM may hold spaces.
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return found


def records(proc: Proc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]


def listening(proc: Proc, count: int) -> set[int] | None:
    """The PIDs that logged `listening`, once there are `count` of them."""
    pids = {r["pid"] for r in records(proc) if r["event"] == "listening"}
    return pids if len(pids) == count else None


@contextlib.contextmanager
def serving_workers(tmp_path: Path, argv: list[str]) -> Iterator[Proc]:
    """`wsgate serve --workers 2 ARGV` with its temporary files under tmp_path/tmp; every
    process of it stopped by PID at the end, whatever the test did."""
    run_tmp = tmp_path / "tmp"
    run_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(run_tmp)}
    serve = [sys.executable, "-m", "wsgate", "serve", "--workers", "2", *argv]
    proc = start_process(serve, tmp_path / "serve.log", env)
    try:
        yield proc
    finally:
        left = children_of(proc.pid)
        proc.stop(timeout_s=DEADLINE_S)
        for pid in left:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_the_parent_refuses_an_upgrade_and_drains_on_sigint(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    argv = ["--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:1"]
    argv += ["--admin", f"127.0.0.1:{admin}"]
    with serving_workers(tmp_path, argv) as proc:
        parent = proc.pid
        wait_for_port(port, timeout_s=DEADLINE_S)
        wait_for_port(admin, timeout_s=DEADLINE_S)
        workers = wait_for(lambda: listening(proc, 2), "two workers listening")
        # Two workers and the admin process, each a child of the parent.
        children = children_of(parent)
        assert workers < children and len(children) == 3
        # The workers' snapshots go to one run directory the parent made.
        (run_dir,) = (tmp_path / "tmp").iterdir()
        assert run_dir.name.startswith("wsgate-admin-")

        # SIGUSR2 to the parent: no binary upgrade with workers, said once, by the parent.
        os.kill(parent, signal.SIGUSR2)
        refused = wait_for(
            lambda: [r for r in records(proc) if r["event"] == "upgrade_failed"], "upgrade_failed"
        )
        assert [(r["pid"], r["error"]) for r in refused] == [(parent, UPGRADE_NOT_WITH_WORKERS)]
        assert children_of(parent) == children
        assert request(admin, "GET", "/healthz")[0] == 200
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S):
            pass

        # Ctrl-C reaches the parent only: it passes SIGINT on to each child by PID.
        os.kill(parent, signal.SIGINT)
        assert proc.popen.wait(timeout=DEADLINE_S) == 0
        stopped = {r["pid"] for r in records(proc) if r["event"] == "stopped"}
        assert stopped == workers
        wait_for(lambda: not any(alive(pid) for pid in children), "every child gone")
        assert not run_dir.exists()  # removed once every child has ended


def test_an_admin_address_in_use_stops_the_parent_before_any_fork(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        admin = taken.getsockname()[1]
        argv = ["--listen", f"127.0.0.1:{free_port()}", "--upstream", "127.0.0.1:1"]
        argv += ["--admin", f"127.0.0.1:{admin}"]
        with serving_workers(tmp_path, argv) as proc:
            assert proc.popen.wait(timeout=DEADLINE_S) == 1
    lines = proc.log().splitlines()
    assert lines == [f"wsgate: cannot listen on 127.0.0.1:{admin}: Address already in use"]
    assert list((tmp_path / "tmp").iterdir()) == []  # no run directory made


def test_a_worker_killed_by_a_signal_is_not_an_exit_of_0() -> None:
    # As a shell reports it: 128 + the signal (137 for SIGKILL); an exit code stays.
    child = os.fork()
    if child == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    assert child_exit_status(status) == 128 + signal.SIGKILL
    child = os.fork()
    if child == 0:
        os._exit(3)
    _, status = os.waitpid(child, 0)
    assert child_exit_status(status) == 3

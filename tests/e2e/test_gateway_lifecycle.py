"""The gateway's life as a process: signals (SIGHUP, SIGTERM, the parent's death with
--workers), draining, and running out of file descriptors. Real processes on 127.0.0.1,
every one stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.test_gateway_errors import Parsed
from tests.support.backends import named_backend, ws_server
from tests.support.gateway import gateway
from tests.support.procs import Proc, free_port, running
from tests.support.raw import raw_request, upgrade_request

Record = dict[str, Any]


def records(proc: Proc) -> list[Record]:
    return [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]


def wait_for_records(
    proc: Proc, want: Callable[[list[Record]], bool], timeout_s: float = 30.0
) -> list[Record]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = records(proc)
        if want(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"log never had what the test waits for:\n{proc.log()}")
        time.sleep(0.05)


def count_is(event: str, n: int) -> Callable[[list[Record]], bool]:
    return lambda found: sum(r["event"] == event for r in found) == n


def children_of(pid: int) -> set[int]:
    """The PIDs whose parent is `pid`, from /proc (this kernel may lack .../children)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # "PID (COMM) STATE PPID ...": COMM may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running, not exited: a zombie (exited, not yet reaped by whoever adopted it) counts
    as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pids: set[int], timeout_s: float) -> set[int]:
    """The PIDs still alive after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@contextlib.contextmanager
def killed_at_exit(pids: set[int]) -> Iterator[None]:
    """Whatever the test did, no worker it saw outlives it (SIGKILL by PID)."""
    try:
        yield
    finally:
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def echo_once(url: str, text: str) -> None:
    with connect(url, open_timeout=20) as ws:
        ws.send(text)
        assert ws.recv(timeout=20) == text


# -- D6: SIGHUP, and workers that end with their parent -------------------------------------


def test_sighup_reloads_and_keeps_the_tunnel(tmp_path: Path) -> None:
    # Before the fix SIGHUP killed the gateway (exit 129), silently, cutting every tunnel;
    # then it was logged and ignored; now it reloads the config (the same flags here).
    with ws_server() as backend, gateway(tmp_path, upstreams=[backend]) as gw:
        with connect(f"{gw.url}/", open_timeout=20) as ws:
            ws.send("before")
            assert ws.recv(timeout=20) == "before"
            os.kill(gw.proc.pid, signal.SIGHUP)
            found = wait_for_records(
                gw.proc, lambda rs: any(r["event"] == "reload_done" for r in rs)
            )
            done = next(r for r in found if r["event"] == "reload_done")
            assert done["pid"] == gw.proc.pid
            assert done["backends_removed"] == [] and done["tunnels_closing"] == 0
            ws.send("after")
            assert ws.recv(timeout=20) == "after"
        assert gw.proc.popen.poll() is None
        echo_once(f"{gw.url}/", "new")


def test_workers_reload_on_sighup_and_end_with_a_killed_parent(tmp_path: Path) -> None:
    # Before the fix SIGHUP killed the parent (129) and the workers served on as orphans;
    # a SIGKILLed parent left them serving forever. SIGHUP now reloads: the parent passes
    # it to every worker.
    with ws_server() as backend:
        port = free_port()
        config = tmp_path / "workers.toml"
        config.write_text(
            f"""
[server]
listen = ["127.0.0.1:{port}"]
drain_timeout_s = 2
[pools.app]
backends = ["127.0.0.1:{backend}"]
"""
        )
        argv = [sys.executable, "-m", "wsgate", "serve", "--workers", "2", "-c", str(config)]
        with running(argv, tmp_path / "workers.log", port) as proc:
            parent = proc.pid
            found = wait_for_records(
                proc, lambda rs: len({r["pid"] for r in rs if r["event"] == "listening"}) == 2
            )
            workers = {r["pid"] for r in found if r["event"] == "listening"}
            with killed_at_exit(workers):
                assert children_of(parent) == workers
                url = f"ws://127.0.0.1:{port}/"
                with connect(url, open_timeout=20) as ws:
                    ws.send("before")
                    assert ws.recv(timeout=20) == "before"

                    # SIGHUP to the parent: passed to both workers, each reloads; then
                    # to each worker (as a terminal hangup reaches the whole process
                    # group): it reloads and serves on.
                    os.kill(parent, signal.SIGHUP)
                    wait_for_records(proc, count_is("reload_done", 2))
                    for index, pid in enumerate(sorted(workers)):
                        os.kill(pid, signal.SIGHUP)
                        wait_for_records(proc, count_is("reload_done", 3 + index))
                    found = records(proc)
                    forwarded = [r["pid"] for r in found if r["event"] == "reload_forwarded"]
                    assert forwarded == [parent]
                    reloads = [r["pid"] for r in found if r["event"] == "reload_done"]
                    assert sorted(reloads) == sorted([*workers, *workers])
                    assert proc.popen.poll() is None
                    assert all(alive(pid) for pid in workers)
                    ws.send("after")
                    assert ws.recv(timeout=20) == "after"
                    for index in range(6):
                        echo_once(url, f"new {index}")

                    # The parent dies without a chance to forward anything.
                    os.kill(parent, signal.SIGKILL)
                    proc.popen.wait(timeout=20)
                    # The worker holding the tunnel drains: 1001 after drain_timeout_s.
                    with pytest.raises(ConnectionClosed):
                        ws.recv(timeout=30)
                    assert ws.close_code == 1001
                assert wait_gone(workers, timeout_s=30) == set()
        found = records(proc)
        assert {r["pid"] for r in found if r["event"] == "parent_gone"} == workers
        assert {r["pid"] for r in found if r["event"] == "stopped"} == workers


# -- D7: a drain answers queued and new handshakes 503 shutting_down ------------------------


def read_answer(sock: socket.socket) -> bytes:
    """Everything until the gateway closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def assert_shutting_down(answer: bytes) -> None:
    response = Parsed(answer)
    assert response.status == 503, answer
    assert response.headers["x-wsgate-cause"] == "shutting_down"
    assert int(response.headers["retry-after"]) >= 1


def test_drain_answers_queued_and_new_handshakes_at_once(tmp_path: Path) -> None:
    # Before the fix the queued clients got a bare close when the drain ended (here after
    # 120 s) and a client that connected after SIGTERM was refused.
    backend_port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
drain_timeout_s = 120
[pools.app]
backends = ["127.0.0.1:{backend_port}"]
max_handshakes_per_backend = 1
queue_timeout_s = 120
response_timeout_s = 120
[pools.app.health]
kind = "none"
"""
    slow = ("--slow-handshake", "20", "--slots", "1")
    with (
        named_backend(tmp_path, backend_port, "slow", *slow) as backend,
        gateway(tmp_path, config=config) as gw,
        contextlib.ExitStack() as clients,
    ):

        def handshake() -> socket.socket:
            sock = clients.enter_context(socket.create_connection(("127.0.0.1", gw.port)))
            sock.settimeout(60)
            sock.sendall(upgrade_request())
            return sock

        holder = handshake()  # holds the one handshake slot for 20 s
        deadline = time.monotonic() + 30
        while "handshake /" not in backend.log():
            assert time.monotonic() < deadline, backend.log()
            time.sleep(0.05)
        queued = [handshake() for _ in range(4)]
        time.sleep(1.0)  # the gateway reads them and queues them: it has nothing else to do

        gw.proc.popen.send_signal(signal.SIGTERM)
        for sock in queued:
            assert_shutting_down(read_answer(sock))
        # The listener is still open during the drain: new clients are answered too.
        assert_shutting_down(raw_request(gw.port, upgrade_request(), timeout_s=60))
        assert_shutting_down(raw_request(gw.port, b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n"))
        assert gw.proc.popen.poll() is None  # the holder's handshake may still finish

        holder.close()  # the last connection ends: so does the drain, long before 120 s
        assert gw.proc.popen.wait(timeout=60) == 0
        found = records(gw.proc)
        draining = next(r for r in found if r["event"] == "draining")
        assert draining["queued"] == 4  # all four were in line, not just unread
        assert any(r["event"] == "stopped" for r in found)
        # Its SIGTERM would wait for the sleeping handshake: end it by PID at once.
        backend.popen.kill()


# -- D9: out of file descriptors is the gateway's own condition -----------------------------

FD_LIMIT = 64
# `wsgate serve` with RLIMIT_NOFILE at FD_LIMIT, soft and hard: its raise of the soft limit
# to the hard one then changes nothing.
LIMITED_SERVE = (
    "import resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}))\n"
    "from wsgate.cli import main\n"
    "sys.exit(main(['serve', *sys.argv[1:]]))\n"
)


def read_response_head(sock: socket.socket) -> bytes:
    """The response head, or what came before the gateway closed (b"" for nothing)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def handshake_at(port: int, stack: contextlib.ExitStack) -> tuple[socket.socket, Parsed | None]:
    """An upgrade through the gateway; its answer, or None when it was closed unanswered.
    The socket stays open (a tunnel holds two of the gateway's descriptors) until `stack`
    closes it."""
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=60))
    with contextlib.suppress(OSError):  # closed unanswered already
        sock.sendall(upgrade_request())
    head = read_response_head(sock)
    return sock, Parsed(head) if head else None


def open_descriptors(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def settled_descriptors(pid: int) -> int:
    """The gateway's descriptor count once three reads 30 ms apart agree: its
    once-a-second probe holds a spare descriptor for an instant, which a single read can
    catch (the count was then one too high, and the test waited for one too many)."""
    reads = [open_descriptors(pid)]
    while len(reads) < 3 or len(set(reads[-3:])) > 1:
        time.sleep(0.03)
        reads.append(open_descriptors(pid))
    return reads[-1]


def wait_for_descriptors(pid: int, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (now := open_descriptors(pid)) != count:
        assert time.monotonic() < deadline, f"the gateway holds {now} descriptors, not {count}"
        time.sleep(0.02)


def assert_out_of_descriptors(response: Parsed) -> None:
    assert response.status == 503
    assert response.headers["x-wsgate-cause"] == "out_of_file_descriptors"
    assert int(response.headers["retry-after"]) >= 1


def test_out_of_descriptors_is_503_and_spares_the_backend(tmp_path: Path) -> None:
    # Before the fix a flood under a low descriptor limit gave 502 upstream_connect_failed
    # ("Too many open files") and ejected the backend: then 503 no_healthy_upstream.
    with ws_server() as backend:
        port = free_port()
        config = tmp_path / "limited.toml"
        config.write_text(
            f"""
[server]
listen = ["127.0.0.1:{port}"]
[pools.app]
backends = ["127.0.0.1:{backend}"]
[pools.app.health]
kind = "none"
"""
        )
        argv = [sys.executable, "-c", LIMITED_SERVE, "--config", str(config)]
        with running(argv, tmp_path / "limited.log", port) as proc:
            listening = wait_for_records(
                proc, lambda rs: any(r["event"] == "listening" for r in rs)
            )
            assert listening[0]["open_files_limit"] == FD_LIMIT
            tunnels_ended = 0

            # 1. Step by step, counting the gateway's descriptors in /proc: tunnels (two
            # each) until one or two are left; an idle client takes the second.
            with contextlib.ExitStack() as held:
                tunnels = 0
                while FD_LIMIT - settled_descriptors(proc.pid) > 2:
                    before = settled_descriptors(proc.pid)
                    _, response = handshake_at(port, held)
                    assert response is not None and response.status == 101
                    tunnels += 1
                    wait_for_descriptors(proc.pid, before + 2)
                if FD_LIMIT - settled_descriptors(proc.pid) == 2:
                    held.enter_context(socket.create_connection(("127.0.0.1", port)))
                    wait_for_descriptors(proc.pid, FD_LIMIT - 1)
                # One left: the client gets in, its backend connection does not.
                _, response = handshake_at(port, held)
                assert response is not None
                assert_out_of_descriptors(response)
                wait_for_descriptors(proc.pid, FD_LIMIT - 1)  # that client's, closed
                # An idle client takes the last one: accepts now fail, which is logged.
                held.enter_context(socket.create_connection(("127.0.0.1", port)))
                wait_for_descriptors(proc.pid, FD_LIMIT)
                wait_for_records(proc, lambda rs: any(r["event"] == "accept_failed" for r in rs))
                tunnels_ended += tunnels
            wait_for_records(proc, count_is("tunnel_end", tunnels_ended))

            # 2. A flood of 400 at once: many are closed unanswered (the event loop
            # accepts and closes what it has no descriptor for), none gets a 502.
            with contextlib.ExitStack() as flood:
                socks = []
                for index in range(400):
                    sock = flood.enter_context(socket.create_connection(("127.0.0.1", port)))
                    sock.settimeout(60)
                    plain = b"GET /page HTTP/1.1\r\nHost: gw\r\n\r\n"
                    with contextlib.suppress(OSError):  # closed unanswered already
                        sock.sendall(upgrade_request() if index % 2 else plain)
                    socks.append(sock)
                heads = [read_response_head(sock) for sock in socks]
            answered = [Parsed(head) for head in heads if head]
            by_status: dict[int, int] = {}
            for response in answered:
                by_status[response.status] = by_status.get(response.status, 0) + 1
            assert 502 not in by_status, by_status
            for response in answered:
                if response.status == 503:
                    assert_out_of_descriptors(response)
            tunnels_ended += by_status.get(101, 0)
            wait_for_records(proc, count_is("tunnel_end", tunnels_ended))
            # The backend was not ejected: the next handshake succeeds, first time.
            with contextlib.ExitStack() as one:
                _, response = handshake_at(port, one)
                assert response is not None and response.status == 101, by_status

        found = records(proc)
        assert not [r for r in found if r["event"] == "backend_ejected"]
        lines = [r for r in found if r["event"] == "out_of_file_descriptors"]
        assert lines and all(r["pool"] == "app" and r["errno"] == "EMFILE" for r in lines)
        accept_failed = next(r for r in found if r["event"] == "accept_failed")
        assert accept_failed["errno"] == "EMFILE"
        assert accept_failed["open_files_limit"] == FD_LIMIT

"""`serve --workers N`: the parent process that forks N workers sharing each listening
port (SO_REUSEPORT) and, with an admin listener, one admin process that serves it for all
of them; it passes signals on to them by PID, tells systemd once every worker listens,
and waits for all. Each worker runs `launch.run_one`; the children end with the parent
whatever ends it (`die_with_parent`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from wsgate.config import Config
from wsgate.gateway import notify
from wsgate.gateway.launch import run_one, say
from wsgate.observe.log import JsonLog

# The signals the workers' parent handles; blocked while it forks, so that none finds a
# child between fork() and the child's own handlers (it would run the parent's there).
PARENT_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2})
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """In a worker right after fork(): have the kernel send SIGTERM when the parent ends,
    however it ends (SIGKILL included), so that the worker drains instead of serving on
    as an orphan. A parent that died before prctl() took effect is seen by getppid()."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _worker(
    config: Config,
    log: JsonLog,
    parent_pid: int,
    run_dir: Path | None,
    admin_sock: socket.socket | None,
    ready: tuple[int, int],
    reloader: Callable[[], Config] | None,
) -> NoReturn:
    """The child side of fork(): the signal dispositions of a worker, then serve. It
    writes one byte to the `ready` pipe once it listens (the parent tells systemd)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the gateway's own handler
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        die_with_parent(parent_pid)
        if admin_sock is not None:
            admin_sock.close()  # the admin process's
        os.close(ready[0])
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
        code = run_one(
            config,
            log,
            reuse_port=True,
            parent_pid=parent_pid,
            run_dir=run_dir,
            reloader=reloader,
            ready_fd=ready[1],
        )
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)  # never back into the parent's code


def _admin_process(
    config: Config, log: JsonLog, parent_pid: int, run_dir: Path, sock: socket.socket
) -> NoReturn:
    """The child side of fork() that serves the admin listener for all workers: it
    reads their snapshots and metrics files in `run_dir` (see gateway.monitor)."""
    code = 1
    try:
        import uvloop

        from wsgate.gateway.admin import serve_admin_process
        from wsgate.gateway.server import CLOSE_GRACE_S

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        die_with_parent(parent_pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
        drain_s = config.server.drain_timeout_s + CLOSE_GRACE_S + 2.0
        uvloop.run(serve_admin_process(config.admin, sock, run_dir, log, drain_s))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def child_exit_status(wait_status: int) -> int:
    """A child's exit code as a shell reports it: a worker killed by a signal (SIGKILL
    by the OOM killer, say) is 128 + the signal, not 0."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _admin_run_dir(config: Config) -> Path:
    """A fresh directory for the workers' snapshots and, with metrics on, their
    prometheus_client files; set before the first fork so that every worker writes there."""
    run_dir = Path(tempfile.mkdtemp(prefix="wsgate-admin-"))
    if config.admin.metrics:
        from wsgate.gateway.run_dir import METRICS_DIR
        from wsgate.observe.metrics import use_multiprocess_dir

        (run_dir / METRICS_DIR).mkdir()
        use_multiprocess_dir(run_dir / METRICS_DIR)
    return run_dir


def run_workers(
    config: Config,
    log: JsonLog,
    workers: int,
    reloader: Callable[[], Config] | None = None,
) -> int:
    """Fork `workers` processes that share each listening port (SO_REUSEPORT), and with
    an admin listener one more process that serves it; forward SIGINT/SIGTERM and SIGHUP
    (each worker reloads its config) to them by PID, and wait for all. The children end
    with the parent whatever ends it (see `die_with_parent`)."""

    parent_pid = os.getpid()
    children: list[int] = []
    run_dir: Path | None = None
    admin_sock: socket.socket | None = None
    if config.admin.enabled:
        from wsgate.gateway.admin import bind

        try:
            admin_sock = bind(config.admin)
        except OSError as exc:
            from wsgate.gateway.listeners import os_error_reason

            say(f"wsgate: cannot listen on {config.admin.listen}: {os_error_reason(exc)}")
            return 1
        run_dir = _admin_run_dir(config)

    def forward(signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            notify.stopping(f"draining {workers} workers")
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.pthread_sigmask(signal.SIG_BLOCK, PARENT_SIGNALS)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)

    def hangup(signum: int, frame: object) -> None:
        log.event("reload_forwarded", workers=workers)
        forward(signum, frame)

    signal.signal(signal.SIGHUP, hangup)
    signal.signal(
        signal.SIGUSR2,
        lambda _s, _f: log.event("upgrade_failed", error="not with --workers N: restart it"),
    )
    status = 0
    ready = os.pipe()
    try:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:
                _worker(config, log, parent_pid, run_dir, admin_sock, ready, reloader)
            children.append(pid)
        if admin_sock is not None and run_dir is not None:
            pid = os.fork()
            if pid == 0:
                os.close(ready[0])
                os.close(ready[1])
                _admin_process(config, log, parent_pid, run_dir, admin_sock)
            children.append(pid)
    except OSError as exc:
        print(f"wsgate: cannot start a worker: {exc.strerror or exc}", file=sys.stderr)
        forward(signal.SIGTERM, None)
        status = 1
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, PARENT_SIGNALS)
    if admin_sock is not None:
        admin_sock.close()
    os.close(ready[1])
    if workers_ready(ready[0], workers) and status == 0:
        notify.ready(f"{workers} workers listening")
    os.close(ready[0])
    for child in children:
        _, code = os.waitpid(child, 0)
        status = max(status, child_exit_status(code))
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return status


def workers_ready(fd: int, workers: int) -> bool:
    """Whether every worker wrote its byte before closing the pipe: each closes its end
    once it listens, or dies, so the read ends either way."""
    got = 0
    while got < workers:
        try:
            chunk = os.read(fd, workers)
        except InterruptedError:  # pragma: no cover (PEP 475 retries)
            continue
        if not chunk:
            break
        got += len(chunk)
    return got >= workers

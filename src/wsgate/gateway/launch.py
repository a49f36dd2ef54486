"""One gateway in this process, as `serve` runs it (and each worker of `--workers N`):
the descriptor limit raised, the garbage collector tuned, the event loop run until the
drain ends, and what stops it turned into one line on stderr and an exit status."""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from wsgate.config import Config
from wsgate.observe.log import JsonLog

# Young objects allocated between two collections (CPython's default is 700).
GC_GEN0_THRESHOLD = 10_000


def raise_open_files_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard one, as nginx (worker_rlimit_nofile) and
    Go programs do: every proxied connection holds two descriptors, so the usual soft
    limit of 1024 would stop the gateway near 500 connections. The figure is in the
    "listening" line (open_files_limit)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    nr_open = read_nr_open() if hard == infinity else None
    target = open_files_target(soft, hard, infinity=infinity, nr_open=nr_open)
    if target is None:
        return
    with contextlib.suppress(OSError, ValueError):  # macOS caps it lower (OPEN_MAX)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def open_files_target(soft: int, hard: int, *, infinity: int, nr_open: int | None) -> int | None:
    """The soft RLIMIT_NOFILE to set, or None to leave it: the hard limit, or with an
    infinite hard limit `nr_open` (Linux refuses an infinite soft limit for descriptors;
    fs.nr_open is the ceiling), when that is higher than `soft`."""
    target = hard
    if hard == infinity:
        if nr_open is None:
            return None
        target = nr_open
    if soft == infinity or soft >= target:
        return None
    return target


def read_nr_open() -> int | None:
    """Linux's ceiling on a process's descriptors, or None where it cannot be read."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return None


def run_one(
    config: Config,
    log: JsonLog,
    *,
    reuse_port: bool,
    parent_pid: int | None = None,
    run_dir: Path | None = None,
    reloader: Callable[[], Config] | None = None,
    notify: bool = False,
    ready_fd: int | None = None,
    inherited: dict[tuple[str, int, bool], socket.socket] | None = None,
    on_listening: Callable[[], None] | None = None,
) -> int:
    """Serve `config` here until a signal ends the drain: 0, or 1 with the reason on
    stderr when it cannot listen. `parent_pid` and `run_dir`: this is a worker of
    `--workers N` (see workers.py); `inherited` and `ready_fd`: a binary upgrade's
    successor (see upgrade.py)."""
    import uvloop

    from wsgate.gateway.listeners import ListenError, os_error_reason
    from wsgate.gateway.process import serve_until_signalled

    # Until the gateway installs its own handler (which logs it): not the default, which
    # would end the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    tune_gc()
    try:
        uvloop.run(
            serve_until_signalled(
                config,
                reuse_port=reuse_port,
                parent_pid=parent_pid,
                run_dir=run_dir,
                log=log,
                reloader=reloader,
                notify=notify,
                ready_fd=ready_fd,
                inherited=inherited,
                on_listening=on_listening,
                upgradable=parent_pid is None,
            )
        )
    except ListenError as exc:
        say(f"wsgate: {exc}")
        return 1
    except OSError as exc:
        say(f"wsgate: {os_error_reason(exc)}")
        return 1
    return 0


def say(line: str) -> None:
    """One line on stderr in one write: the workers of `--workers N` share the stream,
    and print() writes the newline apart, so two workers' lines could run together."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def tune_gc() -> None:
    """Every handshake allocates a few dozen container objects, so with the default
    thresholds (700, 10, 10) the cyclic collector ran every few handshakes and took about
    6 % of the gateway's CPU in S2 (py-spy). Freeze what startup made (config, code) so that
    no collection walks it again, and let the young generation grow larger between
    collections: garbage cycles (a connection and its tunnel) wait a little longer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)

"""The gateway as a process: its signals, until it has drained.

    SIGTERM, SIGINT   drain (see server.py), then return
    SIGHUP            reload: read the config again (`reloader`) and apply it
                      (`Gateway.reload`); an invalid one is logged and changes nothing.
                      Without a reloader, logged and ignored (`sighup_ignored`).
    SIGUSR2           binary upgrade (gateway/upgrade.py): start the successor, hand it
                      the listening sockets, then drain with 1012 (one process only)
    parent gone       a worker of `serve --workers N` drains too

With `notify`, systemd hears READY=1 once the gateway listens, RELOADING=1 and READY=1
around a reload, STOPPING=1 when the drain begins (gateway/notify.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from wsgate.config.load import ConfigError
from wsgate.config.model import Config
from wsgate.gateway import notify as sd_notify
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog

SIGHUP_DETAIL = (
    "Reloading the config needs the process started by `wsgate serve`: SIGHUP changes "
    "nothing here. Restart the gateway (SIGTERM drains it) to load a new config."
)
PARENT_CHECK_S = 1.0


UPGRADE_NOT_WITH_WORKERS = "not with --workers N: restart it"
UPGRADE_BUSY = "the gateway is draining or upgrading"


class Hangup(Enum):
    """What a SIGHUP does (see `on_hangup`)."""

    IGNORE = "ignore"  # nothing reloads here: logged (sighup_ignored)
    REFUSE = "refuse"  # draining: a reload now would fight the drain (reload_failed)
    RELOAD = "reload"


def hangup_action(*, can_reload: bool, stopping: bool) -> Hangup:
    if not can_reload:
        return Hangup.IGNORE
    return Hangup.REFUSE if stopping else Hangup.RELOAD


def upgrade_refusal(*, upgradable: bool, stopping: bool, upgrading: bool) -> str | None:
    """Why a SIGUSR2 starts no successor (the `upgrade_failed` error), or None to start one.
    Workers of `--workers N` share their ports with SO_REUSEPORT and have no one process to
    hand them over."""
    if not upgradable:
        return UPGRADE_NOT_WITH_WORKERS
    if stopping or upgrading:
        return UPGRADE_BUSY
    return None


def parent_is_gone(parent_pid: int | None, ppid: int, *, stopping: bool) -> bool:
    """Whether a worker (`parent_pid` set) outlived its parent: it has been re-parented
    (`ppid`, from os.getppid(), is another process), and it is not draining already."""
    return parent_pid is not None and ppid != parent_pid and not stopping


def log_sighup(log: JsonLog) -> None:
    """SIGHUP where nothing reloads: logged, not the default (which would kill the
    gateway and cut every tunnel: a terminal hangup, or `systemctl reload`)."""
    log.event("sighup_ignored", detail=SIGHUP_DETAIL)


class Reloads:
    """One reload at a time: a SIGHUP during a reload runs one more after it, so that
    the last config written is the one applied."""

    def __init__(self, gateway: Gateway, reloader: Callable[[], Config], *, notify: bool) -> None:
        self.gateway = gateway
        self.reloader = reloader
        self.notify = notify
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._task is not None:
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                await self._once()
                if not self._again:
                    return
        finally:
            self._task = None

    async def _once(self) -> None:
        gateway = self.gateway
        metrics = gateway.metrics
        if self.notify:
            sd_notify.reloading("reloading the config")
        try:
            new = self.reloader()
        except ConfigError as exc:
            gateway.log.event("reload_failed", error=str(exc))
            ok = False
        else:
            ok = await gateway.reload(new)
        if metrics is not None:
            metrics.reload("ok" if ok else "failed")
        if self.notify:
            addresses = ", ".join(gateway.bound_addresses())
            sd_notify.ready(
                f"listening on {addresses}" + ("" if ok else " (reload failed: see the log)")
            )

    async def wait(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


async def serve_until_signalled(
    config: Config,
    *,
    reuse_port: bool = False,
    parent_pid: int | None = None,
    run_dir: Path | None = None,
    log: JsonLog | None = None,
    reloader: Callable[[], Config] | None = None,
    notify: bool = False,
    ready_fd: int | None = None,
    inherited: dict[tuple[str, int, bool], socket.socket] | None = None,
    on_listening: Callable[[], None] | None = None,
    upgradable: bool = False,
) -> None:
    """Run a gateway until SIGINT or SIGTERM, then drain; SIGHUP reloads with `reloader`.
    A worker (`parent_pid` set) also drains when its parent is gone: the parent asks the
    kernel for a SIGTERM then (PR_SET_PDEATHSIG), and this check covers the rest.
    Once listening: `on_listening` is called (the pid file); with `notify`, systemd is
    told (sd_notify); a byte is written to `ready_fd` (a worker's parent, or the gateway
    this successor replaces, which hands over its `inherited` sockets)."""
    loop = asyncio.get_running_loop()
    gateway = Gateway(config, log)
    stop = asyncio.Event()
    watch: asyncio.TimerHandle | None = None
    reloads = Reloads(gateway, reloader, notify=notify) if reloader is not None else None
    handed_over = False
    upgrading: asyncio.Task[None] | None = None

    def parent_gone() -> bool:
        if not parent_is_gone(parent_pid, os.getppid(), stopping=stop.is_set()):
            return False
        gateway.log.event("parent_gone", parent_pid=parent_pid)
        return True

    def on_stop_signal() -> None:
        parent_gone()  # says why, when the SIGTERM is the parent's death signal
        stop.set()

    def check_parent() -> None:
        nonlocal watch
        if parent_gone():
            stop.set()
            return
        watch = loop.call_later(PARENT_CHECK_S, check_parent)

    def on_hangup() -> None:
        action = hangup_action(can_reload=reloads is not None, stopping=stop.is_set())
        if action is Hangup.IGNORE:
            log_sighup(gateway.log)
        elif action is Hangup.REFUSE:
            gateway.log.event("reload_failed", error="the gateway is draining")
        elif reloads is not None:
            reloads.request()

    async def upgrade() -> None:
        nonlocal handed_over, upgrading
        from wsgate.gateway.upgrade import start_successor

        try:
            if await start_successor(gateway, notify=notify) is not None:
                handed_over = True
                stop.set()
        finally:
            upgrading = None

    def on_upgrade() -> None:
        nonlocal upgrading
        refusal = upgrade_refusal(
            upgradable=upgradable, stopping=stop.is_set(), upgrading=upgrading is not None
        )
        if refusal is not None:
            gateway.log.event("upgrade_failed", error=refusal)
        else:
            upgrading = loop.create_task(upgrade())

    # Before listening: a signal that comes as soon as the port answers finds them.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_stop_signal)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    loop.add_signal_handler(signal.SIGUSR2, on_upgrade)
    await gateway.start(reuse_port=reuse_port, run_dir=run_dir, inherited=inherited)
    if on_listening is not None:
        on_listening()
    if notify:
        sd_notify.ready("listening on " + ", ".join(gateway.bound_addresses()))
    if ready_fd is not None:
        with contextlib.suppress(OSError):
            os.write(ready_fd, b"1")
        with contextlib.suppress(OSError):
            os.close(ready_fd)
    if parent_pid is not None:
        check_parent()
    await stop.wait()
    if watch is not None:
        watch.cancel()
    if reloads is not None:
        await reloads.wait()  # a reload under way ends first: no half-applied config
    if upgrading is not None:
        upgrading.cancel()  # SIGTERM during an upgrade: this one drains as usual
    if notify and not handed_over:
        sd_notify.stopping(f"draining {len(gateway.connections)} connections")
    await gateway.drain(handed_over=handed_over)

"""A binary upgrade without dropping a connection: the running gateway starts its
successor (the `wsgate` now installed, with the same command line and environment), hands
it its listening sockets, and once the successor listens, stops accepting and drains its
own tunnels at a pace with 1012.

    kill -USR2 PID     (or `wsgate upgrade --pid-file PATH`, or `systemctl kill -s USR2`)
      old: starts `sys.orig_argv` again with its listening descriptors inherited
           (WSGATE_INHERIT_FDS) and the write end of a pipe (WSGATE_UPGRADE_READY_FD)
      new: listens on the inherited sockets (the same sockets: one accept queue, so no
           connection waiting in it is lost), writes a byte to the pipe, writes the pid
           file, tells systemd it is the main process now (through the old one)
      old: stops listening, closes its tunnels with 1012 over drain_window_s, exits 0
    A successor that fails or says nothing within UPGRADE_TIMEOUT_S is stopped, logged
    (upgrade_failed), and the old gateway serves on.

Listeners whose address has more than one socket (a host name for IPv4 and IPv6) are
bound again by the successor, which fails while the old one holds them: list addresses,
not names, to upgrade. `serve --workers N` does not upgrade this way (a reload does not
need it); restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping

from wsgate.gateway import notify as sd_notify
from wsgate.gateway.server import Gateway

INHERIT_ENV = "WSGATE_INHERIT_FDS"
READY_ENV = "WSGATE_UPGRADE_READY_FD"
UPGRADE_TIMEOUT_S = 30.0


def take_inherited(
    environ: dict[str, str] | None = None,
) -> tuple[dict[tuple[str, int, bool], socket.socket], int | None]:
    """In the successor: the listening sockets handed over, by listener key, and the
    descriptor to write its readiness to; both variables are removed, so that no later
    child inherits them."""
    env = os.environ if environ is None else environ
    raw = env.pop(INHERIT_ENV, "")
    ready_text = env.pop(READY_ENV, "")
    sockets: dict[tuple[str, int, bool], socket.socket] = {}
    try:
        fds: Mapping[str, int] = json.loads(raw) if raw else {}
    except ValueError:
        fds = {}
    for key, fd in fds.items():
        host, port, tls = key.split(" ")
        with contextlib.suppress(OSError, ValueError):
            sockets[(host, int(port), tls == "1")] = socket.socket(fileno=int(fd))
    ready = int(ready_text) if ready_text.isdigit() else None
    return sockets, ready


async def start_successor(gateway: Gateway, *, notify: bool) -> int | None:
    """Start the successor and wait until it listens: its PID, or None (logged) when it
    failed; then the caller drains (`Gateway.drain(handed_over=True)`)."""
    loop = asyncio.get_running_loop()
    fds = gateway.listener_fds()
    read_end, write_end = os.pipe()
    env = dict(os.environ)
    env[INHERIT_ENV] = json.dumps(fds)
    env[READY_ENV] = str(write_end)
    argv = list(sys.orig_argv)
    try:
        # Popen, not asyncio's subprocess: the successor must outlive this loop, whose
        # subprocess transports kill their process when it closes. It returns at once.
        child = subprocess.Popen(  # noqa: ASYNC220
            argv, pass_fds=[*fds.values(), write_end], env=env, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        gateway.log.event("upgrade_failed", error=f"cannot start {argv[0]}: {exc}")
        return None
    os.close(write_end)
    gateway.log.event("upgrade_started", new_pid=child.pid, listeners=sorted(fds))
    said: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not said.done():
            try:
                said.set_result(os.read(read_end, 1))
            except OSError:
                said.set_result(b"")

    loop.add_reader(read_end, readable)
    try:
        async with asyncio.timeout(UPGRADE_TIMEOUT_S):
            answer = await said
    except TimeoutError:
        answer = b""
    finally:
        loop.remove_reader(read_end)
        os.close(read_end)
    if answer != b"1":
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        gateway.log.event(
            "upgrade_failed",
            new_pid=child.pid,
            error="the new gateway did not start listening (its own lines say why)",
        )
        return None
    gateway.log.event("upgrade_handover", new_pid=child.pid)
    if notify:
        sd_notify.notify(sd_notify.message(MAINPID=child.pid, STATUS=f"handed over to {child.pid}"))
    return child.pid

"""What a running gateway does on its own timers, apart from any connection.

- Once a minute, drop the per-client state that no longer limits anybody
  (`ClientLimits.sweep`).
- Say so when accepts fail for lack of file descriptors, in one rate-limited
  `accept_failed` line: asyncio's loop reports such an accept() to the loop's exception
  handler (`on_loop_exception`), many times a second; uvloop never reports it, so a probe
  looks for a free descriptor once a second (`probe_descriptors`).

`Gateway.start` installs the handler and calls `start`; `Gateway.stop` calls `stop`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from wsgate.gateway.dial import FD_LOG_INTERVAL_S, OUT_OF_DESCRIPTORS, open_files_limit
from wsgate.observe.log import JsonLog, RateLimitedEvent

FD_PROBE_S = 1.0  # how often to check that a file descriptor is to be had
SWEEP_S = 60.0  # how often to drop per-client state that limits nobody


class Upkeep:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        log: JsonLog,
        sweep_clients: Callable[[float], None],
        first_socket: Callable[[], socket.socket | None],
    ) -> None:
        self.loop = loop
        # ClientLimits.sweep: drops what limits nobody at the `now` it is given.
        self.sweep_clients = sweep_clients
        # A listening socket to probe with (Listeners.first_socket); None before any listens.
        self.first_socket = first_socket
        self.accept_log = RateLimitedEvent(log, "accept_failed", FD_LOG_INTERVAL_S, loop)
        self._sweeper: asyncio.TimerHandle | None = None
        self._fd_probe: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Sweep and probe now, then on their timers until `stop`."""
        self.sweep()
        self.probe_descriptors()

    def stop(self) -> None:
        """Cancel both timers and write the accept_failed line held back, if any."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._fd_probe is not None:
            self._fd_probe.cancel()
        self.accept_log.close()

    def on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An accept() that failed for lack of descriptors becomes one rate-limited line
        (asyncio's own loop reports it here, many times a second); the rest goes to the
        default handler."""
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS and "accept" in message:
            self.accept_log.emit(
                errno=errno.errorcode[exc.errno],
                open_files_limit=open_files_limit(),
                detail=f"{message}: {exc.strerror or exc}.",
            )
            return
        loop.default_exception_handler(context)

    def probe_descriptors(self) -> None:
        """uvloop never reports an accept() that failed for lack of descriptors: libuv
        then accepts and closes the waiting connections itself, and those clients see
        their connection closed without a word. So once a second, see whether a
        descriptor is to be had; when none is, accepts are failing: say so."""
        self._fd_probe = self.loop.call_later(FD_PROBE_S, self.probe_descriptors)
        sock = self.first_socket()
        if sock is None:
            return
        try:
            os.close(os.dup(sock.fileno()))
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self.accept_log.emit(
                    errno=errno.errorcode[exc.errno],
                    open_files_limit=open_files_limit(),
                    detail="The gateway holds as many file descriptors as its limit allows: "
                    "new connections are closed unanswered until some close.",
                )

    def sweep(self) -> None:
        """Drop per-client state that no longer limits anybody, once a minute."""
        self.sweep_clients(self.loop.time())
        self._sweeper = self.loop.call_later(SWEEP_S, self.sweep)

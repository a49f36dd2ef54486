"""The gateway's paced tunnel closes: its own drain (SIGTERM, a binary upgrade), a
backend drained through the admin API, and the backends a reload removed. Each is one
`PacedCloser` under a key ("" for the drain, the backend's name, "reload"); it picks its
tunnels among the live connections, plans their times (policy/pacing.py) and closes
each with its code. A connection asked to go once is not planned again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from wsgate.gateway.client import ClientConnection
from wsgate.gateway.pacer import PacedCloser
from wsgate.gateway.pool import Backend, Pool
from wsgate.observe.log import JsonLog
from wsgate.policy.pacing import close_times
from wsgate.protocol.frames import CloseCode

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics


class DrainHost(Protocol):
    """What the paced closes read of the gateway (server.Gateway), each time anew."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def log(self) -> JsonLog: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def connections(self) -> Collection[ClientConnection]: ...
    @property
    def pools(self) -> Mapping[str, Pool]: ...
    @property
    def metrics(self) -> Metrics | None: ...


class Drains:
    """The paced closes under way, one per key; a new one under a key replaces the old."""

    def __init__(self, gw: DrainHost) -> None:
        self.gw = gw
        self._closers: dict[str, PacedCloser[ClientConnection]] = {}
        # The connections a paced close has already asked to go: not planned again.
        self._asked: set[ClientConnection] = set()

    def close_tunnels_paced(
        self, code: int, window_s: float, deadline: float, *, rate_per_s: float
    ) -> None:
        """The gateway's drain: close every tunnel at a pace, over `window_s` from now or
        at `rate_per_s`; one that becomes a tunnel meanwhile (its 101 was on the way) is
        planned when the last planned one is closed, over what is left of the window.
        The gateway's `stop` closes with 1001 what is still open at `deadline`."""
        self.pace(
            "",
            lambda backend: True,
            (code, "server shutting down", "shutdown"),
            window_s,
            deadline,
            rate_per_s=rate_per_s,
        )

    def pace(
        self,
        key: str,
        pick: Callable[[Backend], bool],
        close_with: tuple[int, str, str],
        window_s: float,
        deadline: float,
        *,
        rate_per_s: float = 0.0,
    ) -> int:
        """Close the tunnels whose backend `pick` takes, at a pace (see
        `close_tunnels_paced`), with `close_with` (code, text, reason); those that
        appear meanwhile are planned after, until `deadline`. Returns how many now."""
        gw = self.gw
        now = gw.loop.time()
        victims = [
            c
            for c in gw.connections
            if (b := c.tunnel_backend) is not None and pick(b) and c not in self._asked
        ]
        if not victims or now >= deadline:
            return 0
        gw.rng.shuffle(victims)
        times = close_times(len(victims), now, window_s=window_s, rate_per_s=rate_per_s, rng=gw.rng)
        code, text, reason = close_with
        gw.log.event(
            "drain_closing",
            reason=reason,
            tunnels=len(victims),
            window_s=round(window_s, 3),
            rate_per_s=rate_per_s or None,
            close_code=code,
            last_in_s=round(times[-1] - now, 3),
        )
        end = now + window_s

        def again() -> None:
            self._closers.pop(key, None)
            left = max(0.0, min(end, deadline) - gw.loop.time())
            self.pace(key, pick, close_with, left, deadline, rate_per_s=rate_per_s)

        def close(conn: ClientConnection) -> None:
            self._close_one(conn, code, text, reason)

        self._run(key, victims, times, close, again)
        return len(victims)

    def drain_backend(self, name: str, drained: bool, over_s: float) -> int:
        """Take the backend called `name` (in every pool that has it) out of service, or
        put it back. Drained: no new handshakes or requests go to it, and its tunnels are
        closed with 1012 (service restart: clients reconnect, to another backend) evenly
        over `over_s`, so that they do not all come back at once. Returns how many tunnels
        are to be closed; KeyError when no pool has such a backend."""
        gw = self.gw
        found = [(p, b) for p in gw.pools.values() for b in p.backends if b.name == name]
        if not found:
            raise KeyError(name)
        action = "drain" if drained else "enable"
        for pool, backend in found:
            if pool.set_drained(backend, drained) and gw.metrics is not None:
                gw.metrics.admin_action(pool.config.name, backend.name, action)
        closer = self._closers.pop(name, None)
        if closer is not None:
            closer.cancel()
        victims: list[ClientConnection] = []
        if drained:
            backends: set[Backend] = {b for _, b in found}
            victims = [c for c in gw.connections if c.tunnel_backend in backends]
        gw.log.event(
            "backend_drained" if drained else "backend_enabled",
            backend=name,
            pools=[p.config.name for p, _ in found],
            tunnels=len(victims),
            over_s=over_s if drained else None,
        )
        if victims:
            gw.rng.shuffle(victims)
            times = close_times(len(victims), gw.loop.time(), window_s=over_s, rng=gw.rng)

            def close(conn: ClientConnection) -> None:
                self._close_one(
                    conn, CloseCode.SERVICE_RESTART, "backend drained", "backend_drained"
                )

            self._run(name, victims, times, close)
        return len(victims)

    def forget(self, conn: ClientConnection) -> None:
        """`conn` is gone."""
        self._asked.discard(conn)

    def cancel_all(self) -> None:
        """The gateway stops: no more paced closes (it closes what is left itself)."""
        for closer in self._closers.values():
            closer.cancel()
        self._closers.clear()

    def _run(
        self,
        key: str,
        victims: list[ClientConnection],
        times: list[float],
        close: Callable[[ClientConnection], None],
        on_done: Callable[[], None] | None = None,
    ) -> None:
        old = self._closers.pop(key, None)
        if old is not None:
            old.cancel()
        closer = PacedCloser(self.gw.loop, victims, times, close, on_done)
        self._closers[key] = closer
        closer.start()
        if closer.done and self._closers.get(key) is closer:
            del self._closers[key]

    def _close_one(self, conn: ClientConnection, code: int, text: str, reason: str) -> None:
        if conn in self.gw.connections:
            self._asked.add(conn)
            conn.close_tunnel(code, text, reason_code=reason)

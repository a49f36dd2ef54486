"""A reload (SIGHUP): the running gateway moved to a new config without closing a tunnel
whose backend stays. What changes is decided by config/diff.py; this module carries it
out on the gateway, which it reaches through a Protocol (`Reloadable`), so that it need
not import the server that calls it."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Protocol

from wsgate.config.diff import diff
from wsgate.config.load import ConfigError
from wsgate.config.model import Address, Config
from wsgate.gateway.drains import Drains
from wsgate.gateway.listeners import ListenError, Listeners
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.router import Router
from wsgate.gateway.tls import ServerTls, client_contexts
from wsgate.observe.log import JsonLog
from wsgate.policy.clients import ClientLimits
from wsgate.protocol.frames import CloseCode

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics

# How long tunnels to a removed backend that open late (their 101 was on the way) are
# still looked for, at the least.
DRAIN_LATE_S = 5.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Monitored(Protocol):
    def publish(self) -> object: ...


class Reloadable(Protocol):
    """What a reload reads and replaces of the running gateway (server.Gateway)."""

    config: Config
    tls: ServerTls | None
    router: Router
    trusted_proxies: list[Network]

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def log(self) -> JsonLog: ...
    @property
    def metrics(self) -> Metrics | None: ...
    @property
    def monitor(self) -> Monitored | None: ...
    @property
    def client_limits(self) -> ClientLimits: ...
    @property
    def pools(self) -> MutableMapping[str, Pool]: ...
    @property
    def retired(self) -> list[Pool]: ...
    @property
    def listeners(self) -> Listeners: ...
    @property
    def drains(self) -> Drains: ...


async def reload(gw: Reloadable, new: Config) -> bool:
    """Apply `new` to the running gateway `gw`: listeners opened and closed, certificates
    swapped (every TLS listener's SNI callback moves to the new ones, so the next
    handshake has them), routes, limits and pools replaced, kept backends kept (see
    config/diff.py), new handshakes on the new config at once, queued ones in their
    places. Tunnels to a backend that is gone are closed with 1012 over
    `drain_window_s`. Nothing changes when the new certificates, CA files or listeners
    cannot be had: False, and a `reload_failed` line."""
    try:
        tls = ServerTls(new.tls, new.source) if new.tls.certificates else None
        contexts = client_contexts(new.pools)
    except ConfigError as exc:
        gw.log.event("reload_failed", error=str(exc))
        return False
    change = diff(gw.config, new)
    opened: list[tuple[Address, asyncio.Server]] = []
    for address in change.listen_open:
        try:
            # Until the reload is done, the old config's header timeout is in force.
            timeout_s = gw.config.server.header_timeout_s
            opened.append((address, await gw.listeners.open(address, tls, timeout_s)))
        except OSError as exc:
            for _, listener in opened:
                listener.close()
            gw.log.event("reload_failed", error=str(ListenError(address, exc)))
            return False
    gw.tls = tls
    if tls is not None:
        gw.listeners.use_certificates(tls)
    gw.config = new
    gw.router = Router(new.routes)
    settings = new.server
    limits = gw.client_limits
    limits.max_connections = settings.client_max_connections
    limits.rate = settings.client_handshake_rate
    limits.burst = settings.client_handshake_burst
    gw.trusted_proxies = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
    gone: set[Backend] = set()
    for name in change.pools_removed:
        pool = gw.pools.pop(name)
        pool.turn_away_waiters()
        pool.stop_checks()
        gone.update(pool.backends)
        gw.retired.append(pool)
    for name in change.pools_kept:
        gone.update(gw.pools[name].reconfigure(new.pools[name], contexts.get(name)))
    high = settings.tunnel_high_water_bytes
    for name in change.pools_added:
        pool = Pool(new.pools[name], high, gw.log, gw.metrics)
        gw.pools[name] = pool
        pool.start_checks()
    for pool in gw.pools.values():
        if pool.config.tls_insecure and pool.config.name in change.pools_added:
            gw.log.event("tls_insecure_backend", pool=pool.config.name)
    for address, listener in opened:
        gw.listeners.add(address, listener)
    for address in change.listen_close:
        gw.listeners.close(address)
    closing = 0
    if gone:
        window = settings.drain_window_s
        closing = gw.drains.pace(
            "reload",
            gone.__contains__,
            (CloseCode.SERVICE_RESTART, "backend removed", "backend_removed"),
            window,
            gw.loop.time() + max(window, DRAIN_LATE_S),
        )
    gw.log.event(
        "reload_done",
        source=new.source,
        **change.summary,
        certificates=len(new.tls.certificates),
        tunnels_closing=closing,
        addresses=gw.listeners.bound_addresses(),
    )
    if gw.monitor is not None:
        gw.monitor.publish()
    return True

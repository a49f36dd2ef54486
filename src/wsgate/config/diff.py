"""What a reload changes: two `Config`s in, a `ConfigDiff` out. Pure, so that what a
SIGHUP will do is decided (and tested) without a socket; the gateway carries it out
(`Gateway.reload`).

Listeners are the same when host, port and TLS are; backends when their address is (in
the same pool): a kept backend keeps its connections, its tunnels and its state (health,
learned limit, an admin drain), and only its weight or limits change. A backend that is
gone from its pool (or whose pool is gone) has its tunnels closed at a pace.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsgate.config.model import Address, Config

# Settings a reload does not apply: the admin listener is bound once, by the parent of
# `--workers N` too.
NEEDS_RESTART = ("admin",)


def listener_key(address: Address) -> tuple[str, int, bool]:
    return (address.host, address.port, address.tls)


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    listen_open: tuple[Address, ...]  # new listeners, in the new config's order
    listen_close: tuple[Address, ...]  # listeners the new config no longer has
    pools_added: tuple[str, ...]
    pools_removed: tuple[str, ...]
    pools_kept: tuple[str, ...]  # reconfigured in place (settings and backends)
    backends_added: tuple[tuple[str, Address], ...]  # (pool, address)
    backends_removed: tuple[tuple[str, Address], ...]  # of kept pools and removed ones
    routes_changed: bool
    restart_needed: tuple[str, ...]  # tables whose changes wait for a restart

    @property
    def summary(self) -> dict[str, object]:
        """The fields of the reload_done line."""
        return {
            "listeners_opened": [str(a) for a in self.listen_open],
            "listeners_closed": [str(a) for a in self.listen_close],
            "pools_added": list(self.pools_added),
            "pools_removed": list(self.pools_removed),
            "backends_added": [f"{p}/{a}" for p, a in self.backends_added],
            "backends_removed": [f"{p}/{a}" for p, a in self.backends_removed],
            "routes_changed": self.routes_changed,
            "restart_needed": list(self.restart_needed),
        }


def diff(old: Config, new: Config) -> ConfigDiff:
    old_listen = {listener_key(a) for a in old.server.listen}
    new_listen = {listener_key(a) for a in new.server.listen}
    added_backends: list[tuple[str, Address]] = []
    removed_backends: list[tuple[str, Address]] = []
    for name, pool in new.pools.items():
        before = old.pools.get(name)
        if before is None:
            continue
        had = set(before.addresses)
        has = set(pool.addresses)
        added_backends += [(name, a) for a in pool.addresses if a not in had]
        removed_backends += [(name, a) for a in before.addresses if a not in has]
    for name, pool in old.pools.items():
        if name not in new.pools:
            removed_backends += [(name, a) for a in pool.addresses]
    restart = tuple(table for table in NEEDS_RESTART if getattr(old, table) != getattr(new, table))
    return ConfigDiff(
        listen_open=tuple(a for a in new.server.listen if listener_key(a) not in old_listen),
        listen_close=tuple(a for a in old.server.listen if listener_key(a) not in new_listen),
        pools_added=tuple(n for n in new.pools if n not in old.pools),
        pools_removed=tuple(n for n in old.pools if n not in new.pools),
        pools_kept=tuple(n for n in new.pools if n in old.pools),
        backends_added=tuple(added_backends),
        backends_removed=tuple(removed_backends),
        routes_changed=old.routes != new.routes,
        restart_needed=restart,
    )

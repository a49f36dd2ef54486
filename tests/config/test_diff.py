"""What a reload changes (config/diff.py): two configs in, listeners, pools and backends
to open, keep and close out."""

from __future__ import annotations

import dataclasses

from wsgate.config.diff import diff
from wsgate.config.model import (
    Address,
    AdminConfig,
    BackendConfig,
    Config,
    PoolConfig,
    RouteConfig,
    ServerConfig,
)


def addr(port: int, tls: bool = False) -> Address:
    return Address("127.0.0.1", port, tls=tls)


def config(listen: list[Address], pools: dict[str, list[int]], **kwargs: object) -> Config:
    built = {
        name: PoolConfig(name, tuple(BackendConfig(addr(p)) for p in ports))
        for name, ports in pools.items()
    }
    routes = tuple(RouteConfig(name, path_prefix=f"/{name}") for name in pools)
    return Config(ServerConfig(listen=tuple(listen)), built, routes, **kwargs)  # type: ignore[arg-type]


def test_the_same_config_changes_nothing() -> None:
    old = config([addr(80)], {"app": [1, 2]})
    change = diff(old, old)
    assert change.summary == {
        "listeners_opened": [],
        "listeners_closed": [],
        "pools_added": [],
        "pools_removed": [],
        "backends_added": [],
        "backends_removed": [],
        "routes_changed": False,
        "restart_needed": [],
    }
    assert change.pools_kept == ("app",)


def test_backends_added_and_removed_by_address_within_their_pool() -> None:
    old = config([addr(80)], {"app": [1, 2], "chat": [5], "old": [9]})
    new = config([addr(80)], {"app": [1, 3], "chat": [5], "fresh": [7]})
    change = diff(old, new)
    assert change.backends_added == (("app", addr(3)),)
    # The removed pool's backends count as removed: their tunnels are closed too.
    assert change.backends_removed == (("app", addr(2)), ("old", addr(9)))
    assert change.pools_added == ("fresh",) and change.pools_removed == ("old",)
    assert change.pools_kept == ("app", "chat")
    assert change.routes_changed


def test_listeners_by_host_port_and_tls() -> None:
    old = config([addr(80), addr(443, tls=True), addr(8080)], {"app": [1]})
    new = config([addr(80), addr(443), addr(9090)], {"app": [1]})
    change = diff(old, new)
    # 443 changes from TLS to plain: closed and opened again.
    assert change.listen_open == (addr(443), addr(9090))
    assert change.listen_close == (addr(443, tls=True), addr(8080))


def test_the_admin_listener_needs_a_restart() -> None:
    old = config([addr(80)], {"app": [1]})
    new = dataclasses.replace(old, admin=AdminConfig(enabled=True))
    assert diff(old, new).restart_needed == ("admin",)

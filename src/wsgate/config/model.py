"""The configuration as frozen dataclasses. Defaults suit long-lived WebSockets: no idle
cut of tunnels, a generous time to the response head, a short connect timeout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

KIB = 1024


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class PoolConfig:
    name: str
    backends: tuple[Address, ...]
    balance: str = "round_robin"
    connect_timeout_s: float = 5.0
    # Time from the request head sent to the response head received: the backend's
    # handshake time for a WebSocket, its time to first byte for a page.
    response_timeout_s: float = 60.0
    # 0 means off: WebSockets live for hours and many apps ping less often than a minute.
    tunnel_idle_timeout_s: float = 0.0
    max_idle_per_backend: int = 32


@dataclass(frozen=True, slots=True)
class RouteConfig:
    pool: str
    host: str = "*"
    path_prefix: str = "/"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[Address, ...] = (Address("127.0.0.1", 8080),)
    max_header_bytes: int = 16 * KIB
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    # Per direction: a side's reads pause while the other side has this much unsent.
    tunnel_high_water_bytes: int = 256 * KIB
    drain_timeout_s: float = 30.0
    access_log: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    pools: Mapping[str, PoolConfig]
    routes: tuple[RouteConfig, ...]
    source: str = field(default="<defaults>")

"""TOML to `Config`, checking every key. An error names the file, the key path and what
was expected, e.g. `gw.toml: pools.app.connect_timeout_s: expected a number >= 0.001, got '5s'`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wsgate.config.model import (
    Address,
    AdminConfig,
    BackendConfig,
    CertificateConfig,
    Config,
    HealthCheckConfig,
    PoolConfig,
    RouteConfig,
    ServerConfig,
    TlsConfig,
)
from wsgate.errors import InputError
from wsgate.protocol.handshake_policy import FALLBACKS, TOKEN, parse_origin

OVERLOAD_ANSWERS = ("auto", "http", "close")

BALANCERS = ("least_conn", "round_robin", "weighted", "consistent_hash")
HEALTH_KINDS = ("tcp", "http", "websocket", "none")
_SERVER_DEFAULTS = ServerConfig()

# Upper bounds: a value past them is a typo or a unit mistake, and some would overflow
# later (a float timer, a C buffer limit) on every connection instead of failing here.
DAY_S = 86_400.0  # any time in seconds
MAX_BYTES = 1 << 30  # any size in bytes: 1 GiB
MAX_COUNT = 10_000_000  # connections, queue places, handshakes in flight, failures
MAX_RATE = 1_000_000.0  # anything per second
MAX_WEIGHT = 1000  # a backend's weight (160 ring points each for consistent_hash)
MAX_RETRIES = 100
MAX_RISE_FALL = 1000
MIN_PING_IDLE_S = 0.1  # a keepalive more often than this is a unit mistake (ms for s)
MIN_TOKEN_CHARS = 16  # an admin token shorter than this is guessable


class ConfigError(InputError):
    """A config that cannot be used; str() is the whole message for the user."""

    def __init__(self, source: str, key: str, expected: str, got: object = None) -> None:
        shown = "" if got is None else f", got {got!r}"
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(f"{where}expected {expected}{shown}")
        self.source = source
        self.key = key


# Default ports of the URL schemes people write where an address belongs.
_URL_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}


def _not_a_url(text: str) -> str:
    """The words for a URL given where HOST:PORT belongs, with the address to write."""
    scheme, _, rest = text.rpartition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if authority and not re.search(r":\d+$", authority):
        authority += f":{_URL_PORTS.get(scheme.lower(), 80)}"
    words = "HOST:PORT, not a URL"
    if scheme.lower() in ("wss", "https"):
        return words + (
            f' (for wss:// backends write "{authority}" and set tls = true in the pool)'
            if authority
            else " (for wss:// backends set tls = true in the pool)"
        )
    if authority:
        words += f': write "{authority}" (requests keep the path the client sent)'
    return words


def parse_address(text: str) -> Address:
    """`host:port` or `[v6]:port` to an Address; ValueError says what is wrong."""
    if "://" in text or "/" in text:
        raise ValueError(_not_a_url(text))
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError("HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError("[IPV6]:PORT with brackets")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("a port from 1 to 65535")
    return Address(host, int(port_text))


def _overlap(first: Address, second: Address) -> str:
    """Why `second` cannot be listened on next to `first`, or "" when it can: the same
    address, or one covered by an unspecified one (0.0.0.0 or ::) on the same port."""
    if first.port != second.port:
        return ""
    a, b = _ip_or_name(first.host), _ip_or_name(second.host)
    if a == b:
        return "different from"
    if (
        isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
        and isinstance(b, ipaddress.IPv4Address | ipaddress.IPv6Address)
        and a.version == b.version
        and (a.is_unspecified or b.is_unspecified)
    ):
        return "on another port than the catch-all"
    return ""


def _ip_or_name(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return host.lower().rstrip(".")


class _Table:
    """One TOML table being read; remembers which keys were used to reject the rest."""

    def __init__(self, data: object, path: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(source, path, "a table", data)
        self.data: dict[str, Any] = data
        self.path = path
        self.source = source
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def fail(self, name: str, expected: str, got: object) -> ConfigError:
        return ConfigError(self.source, self.key(name), expected, got)

    def number(self, name: str, default: float, *, minimum: float = 0.0, maximum: float) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.fail(name, f"a number >= {minimum:g}", value)
        if not math.isfinite(value) or value > maximum:
            raise self.fail(name, f"a number from {minimum:g} to {maximum:g}", value)
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int) -> int:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(name, f"an integer >= {minimum}", value)
        if value > maximum:
            raise self.fail(name, f"an integer from {minimum} to {maximum}", value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, "true or false", value)
        return value

    def string(self, name: str, default: str | None, choices: Iterable[str] = ()) -> str:
        value = self._get(name)
        if value is None:
            if default is None:
                raise self.fail(name, "a string (required)", None)
            return default
        allowed = tuple(choices)
        if not isinstance(value, str) or (allowed and value not in allowed):
            expected = f"one of {', '.join(allowed)}" if allowed else "a string"
            raise self.fail(name, expected, value)
        return value

    def addresses(
        self, name: str, default: tuple[Address, ...] | None, *, tls: bool = False
    ) -> tuple[Address, ...]:
        """A list of "host:port" strings; with `tls`, an entry may also be a table
        {address = "host:port", tls = true}: a listener that terminates TLS."""
        value = self._get(name)
        if value is None:
            if default is None:
                raise self.fail(name, 'a list of "host:port" strings (required)', None)
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(name, 'a non-empty list of "host:port" strings', value)
        found: list[Address] = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            secure = False
            if tls and isinstance(item, dict):
                entry = _Table(item, key, self.source)
                item = entry.string("address", None)
                secure = entry.boolean("tls", False)
                entry.finish()
            try:
                if not isinstance(item, str):
                    raise ValueError('a "host:port" string' + (" or a table" if tls else ""))
                address = parse_address(item)
            except ValueError as exc:
                raise ConfigError(self.source, key, str(exc), item) from None
            if secure:
                address = Address(address.host, address.port, tls=True)
            for before, other in enumerate(found):
                clash = _overlap(other, address)
                if clash:
                    where = f"{self.key(name)}[{before}] ({other})"
                    raise ConfigError(self.source, key, f"an address {clash} {where}", item)
            found.append(address)
        return tuple(found)

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, "a list of strings", value)
        return tuple(value)

    def integers(
        self, name: str, default: tuple[int, ...], *, minimum: int, maximum: int
    ) -> tuple[int, ...]:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise self.fail(name, "a list of integers", value)
        for index, item in enumerate(value):
            if not minimum <= item <= maximum:
                raise ConfigError(
                    self.source,
                    f"{self.key(name)}[{index}]",
                    f"an integer from {minimum} to {maximum}",
                    item,
                )
        return tuple(value)

    def table(self, name: str) -> _Table:
        value = self._get(name)
        return _Table(value if value is not None else {}, self.key(name), self.source)

    def backends(self, name: str) -> tuple[BackendConfig, ...]:
        value = self._get(name)
        expected = 'a non-empty list of "host:port" strings or {address, weight} tables'
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(name, expected + " (required)" if value is None else expected, value)
        found = []
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            weight = 1
            if isinstance(item, dict):
                entry = _Table(item, key, self.source)
                text = entry.string("address", None)
                weight = entry.integer("weight", 1, minimum=1, maximum=MAX_WEIGHT)
                entry.finish()
            elif isinstance(item, str):
                text = item
            else:
                raise ConfigError(self.source, key, expected, item)
            try:
                found.append(BackendConfig(parse_address(text), weight))
            except ValueError as exc:
                raise ConfigError(self.source, key, str(exc), text) from None
        return tuple(found)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise ConfigError(self.source, self.key(unknown[0]), f"a known key ({known})", None)


def _server(data: object, source: str) -> ServerConfig:
    table = _Table(data if data is not None else {}, "server", source)
    d = _SERVER_DEFAULTS
    server = ServerConfig(
        listen=table.addresses("listen", d.listen, tls=True),
        max_header_bytes=table.integer(
            "max_header_bytes", d.max_header_bytes, minimum=256, maximum=MAX_BYTES
        ),
        header_timeout_s=table.number(
            "header_timeout_s", d.header_timeout_s, minimum=0.001, maximum=DAY_S
        ),
        body_timeout_s=table.number(
            "body_timeout_s", d.body_timeout_s, minimum=0.001, maximum=DAY_S
        ),
        max_response_header_bytes=table.integer(
            "max_response_header_bytes",
            d.max_response_header_bytes,
            minimum=1024,
            maximum=MAX_BYTES,
        ),
        keepalive_timeout_s=table.number(
            "keepalive_timeout_s", d.keepalive_timeout_s, maximum=DAY_S
        ),
        tunnel_high_water_bytes=table.integer(
            "tunnel_high_water_bytes", d.tunnel_high_water_bytes, minimum=1024, maximum=MAX_BYTES
        ),
        drain_timeout_s=table.number("drain_timeout_s", d.drain_timeout_s, maximum=DAY_S),
        drain_grace_s=table.number("drain_grace_s", d.drain_grace_s, maximum=DAY_S),
        drain_window_s=table.number("drain_window_s", d.drain_window_s, maximum=DAY_S),
        drain_rate_per_s=table.number("drain_rate_per_s", d.drain_rate_per_s, maximum=MAX_RATE),
        drain_close_code=_close_code(table, "drain_close_code", d.drain_close_code),
        access_log=table.boolean("access_log", d.access_log),
        max_connections=table.integer(
            "max_connections", d.max_connections, minimum=1, maximum=MAX_COUNT
        ),
        client_max_connections=table.integer(
            "client_max_connections", d.client_max_connections, maximum=MAX_COUNT
        ),
        client_handshake_rate=table.number(
            "client_handshake_rate", d.client_handshake_rate, maximum=MAX_RATE
        ),
        client_handshake_burst=table.integer(
            "client_handshake_burst", d.client_handshake_burst, minimum=1, maximum=MAX_COUNT
        ),
        trusted_proxies=table.strings("trusted_proxies", d.trusted_proxies),
        proxy_protocol=table.boolean("proxy_protocol", d.proxy_protocol),
        client_script_path=table.string("client_script_path", d.client_script_path),
    )
    table.finish()
    for index, network in enumerate(server.trusted_proxies):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                source, f"server.trusted_proxies[{index}]", "an address or CIDR network", network
            ) from None
    path = server.client_script_path
    if path and (not path.startswith("/") or "?" in path or " " in path):
        raise table.fail(
            "client_script_path", '"" (off) or a path such as "/wsgate-client.js"', path
        )
    return server


# The close codes a drain may send: going away (RFC 6455 section 7.4.1) or service restart
# (IANA registry): a client library reconnects on either.
DRAIN_CLOSE_CODES = (1001, 1012)


def _close_code(table: _Table, name: str, default: int) -> int:
    code = table.integer(name, default, minimum=1000, maximum=4999)
    if code not in DRAIN_CLOSE_CODES:
        raise table.fail(name, "1001 (going away) or 1012 (service restart)", code)
    return code


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost": only this machine can connect."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _admin(data: object, source: str) -> AdminConfig:
    if data is None:
        return AdminConfig()
    table = _Table(data, "admin", source)
    d = AdminConfig()
    admin = AdminConfig(
        enabled=table.boolean("enabled", True),
        listen=table.addresses("listen", (d.listen,))[0],
        token=table.string("token", d.token),
        metrics=table.boolean("metrics", d.metrics),
        backend_drain_s=table.number("backend_drain_s", d.backend_drain_s, maximum=DAY_S),
    )
    if isinstance(table.data.get("listen"), list) and len(table.data["listen"]) != 1:
        raise table.fail("listen", 'one "host:port" string', table.data["listen"])
    table.finish()
    check_admin(admin, source)
    return admin


def check_admin(admin: AdminConfig, source: str, key: str = "admin.token") -> None:
    """A token, when set, must be long enough and printable; one is required when the
    admin listener is bound to anything but loopback."""
    token = admin.token
    if token and (len(token) < MIN_TOKEN_CHARS or not token.isprintable() or " " in token):
        raise ConfigError(
            source, key, f"a token of at least {MIN_TOKEN_CHARS} printable characters, no spaces"
        )
    if admin.enabled and not token and not is_loopback(admin.listen.host):
        raise ConfigError(
            source,
            key,
            f"a token (at least {MIN_TOKEN_CHARS} characters) when the admin listener is "
            f"bound to {admin.listen}, which is not a loopback address",
        )


def _health(table: _Table) -> HealthCheckConfig:
    d = HealthCheckConfig()
    kind = table.string("kind", d.kind, HEALTH_KINDS)
    health = HealthCheckConfig(
        kind=kind,
        path=table.string("path", d.path),
        expect_status=table.integer(
            "expect_status",
            101 if kind == "websocket" else d.expect_status,
            minimum=100,
            maximum=599,
        ),
        interval_s=table.number("interval_s", d.interval_s, minimum=0.05, maximum=DAY_S),
        down_interval_s=_down_interval(table, d.down_interval_s),
        timeout_s=table.number("timeout_s", d.timeout_s, minimum=0.01, maximum=DAY_S),
        rise=table.integer("rise", d.rise, minimum=1, maximum=MAX_RISE_FALL),
        fall=table.integer("fall", d.fall, minimum=1, maximum=MAX_RISE_FALL),
    )
    table.finish()
    return health


def _down_interval(table: _Table, default: float) -> float:
    value = table.number("down_interval_s", default, maximum=DAY_S)
    if 0 < value < 0.05:
        raise table.fail("down_interval_s", "0 (as interval_s) or at least 0.05", value)
    return value


def _hash_key(table: _Table, value: str) -> str:
    kind, _, name = value.partition(":")
    if value == "ip" or (kind in ("header", "cookie", "query") and name):
        return value
    raise table.fail("hash_key", '"ip", "header:NAME", "cookie:NAME" or "query:NAME"', value)


def _pool(name: str, data: object, source: str) -> PoolConfig:
    table = _Table(data, f"pools.{name}", source)
    d = PoolConfig(name=name, backends=())
    pool = PoolConfig(
        name=name,
        backends=table.backends("backends"),
        balance=table.string("balance", d.balance, BALANCERS),
        hash_key=_hash_key(table, table.string("hash_key", d.hash_key)),
        connect_timeout_s=table.number(
            "connect_timeout_s", d.connect_timeout_s, minimum=0.001, maximum=DAY_S
        ),
        response_timeout_s=table.number(
            "response_timeout_s", d.response_timeout_s, minimum=0.001, maximum=DAY_S
        ),
        tunnel_idle_timeout_s=table.number(
            "tunnel_idle_timeout_s", d.tunnel_idle_timeout_s, maximum=DAY_S
        ),
        max_idle_per_backend=table.integer(
            "max_idle_per_backend", d.max_idle_per_backend, maximum=MAX_COUNT
        ),
        preconnect=table.boolean("preconnect", d.preconnect),
        max_handshakes_per_backend=table.integer(
            "max_handshakes_per_backend", d.max_handshakes_per_backend, maximum=MAX_COUNT
        ),
        max_handshakes=table.integer("max_handshakes", d.max_handshakes, maximum=MAX_COUNT),
        queue_size=table.integer("queue_size", d.queue_size, maximum=MAX_COUNT),
        queue_timeout_s=table.number("queue_timeout_s", d.queue_timeout_s, maximum=DAY_S),
        max_connections_per_backend=table.integer(
            "max_connections_per_backend", d.max_connections_per_backend, maximum=MAX_COUNT
        ),
        retry_after_s=table.number("retry_after_s", d.retry_after_s, minimum=1, maximum=DAY_S),
        retries=table.integer("retries", d.retries, maximum=MAX_RETRIES),
        retry_budget_ratio=table.number("retry_budget_ratio", d.retry_budget_ratio, maximum=100.0),
        retry_budget_min_per_s=table.number(
            "retry_budget_min_per_s", d.retry_budget_min_per_s, maximum=MAX_RATE
        ),
        retry_on_status=table.integers(
            "retry_on_status", d.retry_on_status, minimum=100, maximum=599
        ),
        eject_after_failures=table.integer(
            "eject_after_failures", d.eject_after_failures, minimum=1, maximum=MAX_COUNT
        ),
        eject_base_s=table.number("eject_base_s", d.eject_base_s, maximum=DAY_S),
        eject_max_s=table.number("eject_max_s", d.eject_max_s, maximum=DAY_S),
        slow_start_s=table.number("slow_start_s", d.slow_start_s, maximum=DAY_S),
        health=_health(table.table("health")),
        ping_idle_s=table.number("ping_idle_s", d.ping_idle_s, maximum=DAY_S),
        ping_timeout_s=table.number(
            "ping_timeout_s", d.ping_timeout_s, minimum=0.001, maximum=DAY_S
        ),
        max_message_bytes=table.integer(
            "max_message_bytes", d.max_message_bytes, maximum=MAX_BYTES
        ),
        max_frame_bytes=table.integer("max_frame_bytes", d.max_frame_bytes, maximum=MAX_BYTES),
        max_messages_per_s=table.number(
            "max_messages_per_s", d.max_messages_per_s, maximum=MAX_RATE
        ),
        message_burst=table.integer("message_burst", d.message_burst, maximum=MAX_COUNT),
        allowed_origins=table.strings("allowed_origins", d.allowed_origins),
        allowed_subprotocols=table.strings("allowed_subprotocols", d.allowed_subprotocols),
        subprotocol_fallback=table.string(
            "subprotocol_fallback", d.subprotocol_fallback, FALLBACKS
        ),
        tls=table.boolean("tls", d.tls),
        tls_ca_file=table.string("tls_ca_file", d.tls_ca_file),
        tls_server_name=table.string("tls_server_name", d.tls_server_name),
        tls_insecure=table.boolean("tls_insecure", d.tls_insecure),
    )
    table.finish()
    if pool.tls_ca_file:
        ca_file = _path(source, pool.tls_ca_file)
        if not Path(ca_file).is_file():
            raise table.fail("tls_ca_file", "a readable PEM file", ca_file)
        pool = dataclasses.replace(pool, tls_ca_file=ca_file)
    if (pool.tls_ca_file or pool.tls_server_name or pool.tls_insecure) and not pool.tls:
        raise table.fail(
            "tls", "true when tls_ca_file, tls_server_name or tls_insecure is set", False
        )
    _check_frames(pool, table)
    return pool


def _check_frames(pool: PoolConfig, table: _Table) -> None:
    """What the per-key checks cannot see: a keepalive interval in milliseconds by mistake,
    and each entry of the handshake lists."""
    if 0 < pool.ping_idle_s < MIN_PING_IDLE_S:
        raise table.fail(
            "ping_idle_s",
            f"0 (off) or a number from {MIN_PING_IDLE_S:g} to {DAY_S:g}",
            pool.ping_idle_s,
        )
    for index, entry in enumerate(pool.allowed_origins):
        try:
            parse_origin(entry)
        except ValueError as exc:
            key = f"{table.key('allowed_origins')}[{index}]"
            raise ConfigError(table.source, key, str(exc), entry) from None
    for index, name in enumerate(pool.allowed_subprotocols):
        if not TOKEN.fullmatch(name):
            key = f"{table.key('allowed_subprotocols')}[{index}]"
            raise ConfigError(table.source, key, "a subprotocol name (an HTTP token)", name)


def _routes(data: object, pools: dict[str, PoolConfig], source: str) -> tuple[RouteConfig, ...]:
    if data is None:
        if len(pools) == 1:
            return (RouteConfig(pool=next(iter(pools))),)
        raise ConfigError(source, "routes", "[[routes]] entries when there is more than one pool")
    if not isinstance(data, list):
        raise ConfigError(source, "routes", "an array of tables ([[routes]])", data)
    routes = []
    for index, item in enumerate(data):
        table = _Table(item, f"routes[{index}]", source)
        route = RouteConfig(
            pool=table.string("pool", None),
            host=table.string("host", "*").lower(),
            path_prefix=table.string("path_prefix", "/"),
            overload_answer=table.string("overload_answer", "auto", OVERLOAD_ANSWERS),
        )
        table.finish()
        if route.pool not in pools:
            names = ", ".join(sorted(pools)) or "none defined"
            raise ConfigError(source, table.key("pool"), f"a pool name ({names})", route.pool)
        if not route.path_prefix.startswith("/"):
            raise ConfigError(
                source, table.key("path_prefix"), "a path starting with /", route.path_prefix
            )
        routes.append(route)
    return tuple(routes)


def parse_config(data: dict[str, Any], source: str) -> Config:
    """Check a decoded TOML document and build the Config."""
    top = _Table(data, "", source)
    server = _server(top._get("server"), source)
    pools_data = top._get("pools")
    if not isinstance(pools_data, dict) or not pools_data:
        raise ConfigError(source, "pools", "at least one [pools.NAME] table", pools_data)
    pools = {name: _pool(name, value, source) for name, value in pools_data.items()}
    routes = _routes(top._get("routes"), pools, source)
    admin = _admin(top._get("admin"), source)
    tls = _tls(top._get("tls"), source, server)
    top.finish()
    return Config(server=server, pools=pools, routes=routes, source=source, admin=admin, tls=tls)


TLS_VERSIONS = ("1.2", "1.3")


def _path(source: str, text: str) -> str:
    """A file named in the config: relative to the config file's directory (to the
    working directory for a config from the command line)."""
    path = Path(text).expanduser()
    if not path.is_absolute() and Path(source).is_file():
        path = Path(source).resolve().parent / path
    return str(path)


def _tls(data: object, source: str, server: ServerConfig) -> TlsConfig:
    """`[tls]`: required with a listener marked tls; each certificate's files must exist
    (whether they hold a usable chain and key is the gateway's to say: `wsgate check`
    and `serve` load them)."""
    tls_listeners = [str(a) for a in server.listen if a.tls]
    if data is None:
        if tls_listeners:
            raise ConfigError(
                source,
                "tls.certificates",
                f"[[tls.certificates]] for the TLS listener {tls_listeners[0]}",
            )
        return TlsConfig()
    table = _Table(data, "tls", source)
    d = TlsConfig()
    min_version = table.string("min_version", d.min_version, TLS_VERSIONS)
    raw = table._get("certificates")
    if not isinstance(raw, list) or not raw:
        raise table.fail("certificates", "at least one [[tls.certificates]] table", raw)
    certificates = []
    for index, item in enumerate(raw):
        entry = _Table(item, f"tls.certificates[{index}]", source)
        cert = _path(source, entry.string("cert", None))
        key = _path(source, entry.string("key", None))
        names = tuple(n.lower().rstrip(".") for n in entry.strings("names", ()))
        entry.finish()
        for field_name, path in (("cert", cert), ("key", key)):
            if not Path(path).is_file():
                raise ConfigError(source, entry.key(field_name), "a readable PEM file", path)
        for position, host in enumerate(names):
            label = host[2:] if host.startswith("*.") else host
            if not label or "*" in label or " " in label:
                raise ConfigError(
                    source,
                    f"{entry.key('names')}[{position}]",
                    'a host name, or "*.example.com"',
                    host,
                )
        certificates.append(CertificateConfig(cert, key, names))
    table.finish()
    return TlsConfig(certificates=tuple(certificates), min_version=min_version)


def load_config(path: str | Path) -> Config:
    """Read and check a TOML config file. Raises ConfigError, never a bare OSError."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", "a readable UTF-8 file", str(exc)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", "valid TOML", str(exc)) from None
    return parse_config(data, source)


def single_pool_config(listen: list[str], upstreams: list[str]) -> Config:
    """The zero-config form: everything from `listen` goes to one pool of `upstreams`."""
    data: dict[str, Any] = {"pools": {"default": {"backends": upstreams}}}
    if listen:
        data["server"] = {"listen": listen}
    return parse_config(data, "command line")

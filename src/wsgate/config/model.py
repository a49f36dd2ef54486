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
    # A listener that terminates TLS ([tls] has its certificates). Not part of equality:
    # two listeners on one address clash whatever they speak.
    tls: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BackendConfig:
    address: Address
    weight: int = 1


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    # "tcp" connects; "http" GETs `path` and expects `expect_status`; "websocket" does a
    # full handshake on `path` and expects 101; "none" relies on passive ejection only.
    kind: str = "tcp"
    path: str = "/"
    expect_status: int = 200
    interval_s: float = 5.0
    # Between the checks of a backend that is down (HAProxy's `downinter`): shorter, it
    # is seen back sooner after a restart. 0: interval_s.
    down_interval_s: float = 0.0
    timeout_s: float = 2.0
    rise: int = 2
    fall: int = 3

    @property
    def interval_when_down_s(self) -> float:
        return self.down_interval_s or self.interval_s


@dataclass(frozen=True, slots=True)
class PoolConfig:
    name: str
    backends: tuple[BackendConfig, ...]
    # least_conn suits long-lived WebSockets: turns do not measure load, connections do.
    balance: str = "least_conn"
    hash_key: str = "ip"  # ip | header:NAME | cookie:NAME | query:NAME
    connect_timeout_s: float = 5.0
    # Time from the request head sent to the response head received: the backend's
    # handshake time for a WebSocket, its time to first byte for a page.
    response_timeout_s: float = 60.0
    # 0 means off: WebSockets live for hours and many apps ping less often than a minute.
    tunnel_idle_timeout_s: float = 0.0
    # Frame-aware tunnels, each off at 0; with all off the tunnel copies bytes unparsed.
    # A side silent ping_idle_s gets a ping; silent ping_timeout_s more, it is dead.
    ping_idle_s: float = 0.0
    ping_timeout_s: float = 20.0
    max_message_bytes: int = 0  # a message's frames added up
    max_frame_bytes: int = 0
    max_messages_per_s: float = 0.0  # from the client, per connection
    message_burst: int = 0  # 0: one second's worth of max_messages_per_s
    # The handshake policy, any pool: the Origin values allowed (exact, "https://*.x.com",
    # "null", "*"; empty: any) and the subprotocols passed on (empty: any). When none of
    # the offered subprotocols is allowed: "reject" (400) or "forward" without the header.
    allowed_origins: tuple[str, ...] = ()
    allowed_subprotocols: tuple[str, ...] = ()
    subprotocol_fallback: str = "reject"
    max_idle_per_backend: int = 32
    # While handshakes wait in the queue, one connection per backend opened ahead, so a
    # freed slot's next handshake goes out at once (gateway/spares.py).
    preconnect: bool = False
    # Admission of WebSocket handshakes. 0 per backend means adaptive (learned from
    # handshake latency); 0 for the pool means no pool-wide cap beyond the backends'.
    max_handshakes_per_backend: int = 0
    max_handshakes: int = 0
    queue_size: int = 4096
    queue_timeout_s: float = 30.0
    max_connections_per_backend: int = 0  # 0: unlimited
    retry_after_s: float = 5.0
    # Retries before anything reached the client: extra attempts, within a budget.
    retries: int = 2
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_s: float = 3.0
    retry_on_status: tuple[int, ...] = (502, 503, 504)
    eject_after_failures: int = 3
    eject_base_s: float = 2.0
    eject_max_s: float = 60.0
    slow_start_s: float = 30.0
    health: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    # wss:// to the backends: TLS, the certificate verified against the system's CAs or
    # tls_ca_file, for tls_server_name (default: the backend's host). tls_insecure skips
    # the verification (a warning at start).
    tls: bool = False
    tls_ca_file: str = ""
    tls_server_name: str = ""
    tls_insecure: bool = False

    @property
    def addresses(self) -> tuple[Address, ...]:
        return tuple(b.address for b in self.backends)

    @property
    def frame_aware(self) -> bool:
        """Whether this pool's tunnels read frame headers both ways (else bytes only)."""
        return bool(
            self.ping_idle_s
            or self.max_message_bytes
            or self.max_frame_bytes
            or self.max_messages_per_s
        )


@dataclass(frozen=True, slots=True)
class RouteConfig:
    pool: str
    host: str = "*"
    path_prefix: str = "/"
    # How a WebSocket handshake turned away for overload, shutdown or a rate limit is
    # answered: "http" (503/429 with Retry-After), "close" (a 101 and at once a close
    # frame 1013/1012/1008 whose reason says "retry-after=N; cause=...", which a browser
    # can read), or "auto": "close" when the request carries an Origin (a browser).
    overload_answer: str = "auto"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[Address, ...] = (Address("127.0.0.1", 8080),)
    max_header_bytes: int = 16 * KIB
    header_timeout_s: float = 10.0
    # The longest gap between two reads of a request body (nginx's client_body_timeout).
    body_timeout_s: float = 30.0
    # A backend's response head may not be larger (nginx: "upstream sent too big header").
    max_response_header_bytes: int = 64 * KIB
    keepalive_timeout_s: float = 75.0
    # Per direction: a side's reads pause while the other side has this much unsent.
    tunnel_high_water_bytes: int = 256 * KIB
    drain_timeout_s: float = 30.0
    # A drain (SIGTERM): /readyz says no at once and new handshakes get 503; after
    # drain_grace_s (for load balancers to notice) the tunnels are closed over
    # drain_window_s, each at a random point of its own slot, or at drain_rate_per_s
    # when set; all within drain_timeout_s, the rest closed with 1001 then. Close code:
    # 1001 (going away), or 1012 (service restart) when a restart follows.
    drain_grace_s: float = 1.0
    drain_window_s: float = 10.0
    drain_rate_per_s: float = 0.0
    drain_close_code: int = 1001
    access_log: bool = True
    max_connections: int = 10_000  # all clients together; more get 503 at_capacity
    # Per client IP; 0 switches a limit off. Clients behind one NAT share an address.
    client_max_connections: int = 0
    client_handshake_rate: float = 0.0  # per second
    client_handshake_burst: int = 20
    # The client address comes from X-Forwarded-For only when the peer is one of these.
    trusted_proxies: tuple[str, ...] = ()
    proxy_protocol: bool = False  # expect a PROXY v1/v2 header on every connection
    # The gateway itself answers GET at this path with wsgate-client.js (the reconnecting
    # browser client); "" leaves every path to the backends.
    client_script_path: str = ""


@dataclass(frozen=True, slots=True)
class CertificateConfig:
    """One certificate of the TLS listeners: its PEM chain (leaf first) and key, and the
    SNI names it is chosen for (default: the DNS names in the certificate)."""

    cert: str
    key: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """`[tls]`: the certificates of every listener marked `tls = true`; the first is the
    default, for a client that names no server or one no certificate is for."""

    certificates: tuple[CertificateConfig, ...] = ()
    min_version: str = "1.2"  # "1.2" or "1.3"


ADMIN_PORT = 9180


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The admin listener (`[admin]`): /metrics, /healthz, /readyz, /api/state and the
    dashboard, on its own port. Off unless the config has an `[admin]` table or `serve`
    gets `--admin`. A `token` is required when `listen` is not a loopback address."""

    enabled: bool = False
    listen: Address = Address("127.0.0.1", ADMIN_PORT)
    token: str = ""  # "Authorization: Bearer TOKEN"; "" on loopback means none
    metrics: bool = True  # count and serve /metrics; off leaves the hot path untouched
    # A backend drained through the API has its tunnels closed evenly over this long.
    backend_drain_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    pools: Mapping[str, PoolConfig]
    routes: tuple[RouteConfig, ...]
    source: str = field(default="<defaults>")
    admin: AdminConfig = field(default_factory=AdminConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)

"""The fakes and helpers of the gateway core's playbook tests (test_core.py and the tests
of the modules cut from the core): a pool that records the calls the core makes and
answers as the test says, a gateway view, `make()` for a core in front of them, and the
requests and answers as literal bytes. Also `RecordingWaiter`, a handshake waiting on a
real `Pool` (test_pool.py, test_spares.py), and `run_pool()` for such a pool on a fresh
loop (the tests of pool.py and of the modules cut from it)."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from wsgate.config.model import (
    Address,
    BackendConfig,
    Config,
    PoolConfig,
    RouteConfig,
    ServerConfig,
)
from wsgate.gateway.commands import (
    Command,
    Log,
    SendToClient,
    SendToUpstream,
)
from wsgate.gateway.core import ClientCore
from wsgate.gateway.pool import Backend as PoolBackend
from wsgate.gateway.pool import Pool
from wsgate.gateway.pool_settings import health_settings
from wsgate.gateway.router import Router
from wsgate.gateway.upstream_side import UpstreamSide
from wsgate.observe.log import JsonLog
from wsgate.observe.metrics import Metrics
from wsgate.policy.clients import ClientLimits
from wsgate.policy.health import BackendHealth
from wsgate.policy.retry import RetryBudget
from wsgate.protocol.handshake import accept_value
from wsgate.protocol.headers import HeaderList

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (
    b"GET /chat HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
GET = b"GET /page HTTP/1.1\r\nHost: gw.test\r\n\r\n"


# -- a fake pool: the calls the core makes, recorded; answers set by the test -------------
def fresh_health() -> BackendHealth:
    """A real backend health, up and never ejected, with the config's defaults: the
    compiled choice of a backend takes no stand-in for it."""
    return BackendHealth(health_settings(pool_config()), 0.0)


@dataclass(eq=False)
class FakeBackend:
    name: str
    pool: FakePool
    inflight: int = 0
    health: BackendHealth = field(default_factory=fresh_health)

    @property
    def address(self) -> Address:
        host, port = self.name.split(":")
        return Address(host, int(port))

    def __repr__(self) -> str:
        return f"FakeBackend({self.name})"


class FakePool:
    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.rng = random.Random(1)
        self.budget = RetryBudget(1.0, 100.0)
        self.backends = [FakeBackend(str(b.address), self) for b in config.backends]
        self.answers: list[object] = []  # what admit answers, in turn; default: a backend
        self.calls: list[tuple[Any, ...]] = []

    def admit(self, waiter: object, now: float, *, front: bool = False) -> object:
        self.calls.append(("admit", front))
        if self.answers:
            return self.answers.pop(0)
        excluded = cast(Any, waiter).excluded()
        return next(b for b in self.backends if b not in excluded)

    def cancel(self, waiter: object) -> None:
        self.calls.append(("cancel",))

    def handshake_done(self, backend: FakeBackend, rtt: float, inflight: int, outcome: str) -> None:
        self.calls.append(("done", backend.name, outcome))

    def pick_for_request(
        self, now: float, exclude: frozenset[FakeBackend], key: bytes | None
    ) -> FakeBackend | None:
        return next((b for b in self.backends if b not in exclude), None)

    def retry_after(self) -> int:
        return 5

    def note_failure(self, backend: FakeBackend) -> None:
        self.calls.append(("failure", backend.name))

    def note_success(self, backend: FakeBackend) -> None:
        self.calls.append(("success", backend.name))

    def tunnel_opened(self, backend: FakeBackend) -> None:
        self.calls.append(("tunnel_opened", backend.name))

    def tunnel_closed(self, backend: FakeBackend) -> None:
        self.calls.append(("tunnel_closed", backend.name))


@dataclass
class FakeGateway:
    config: Config
    router: Router
    pools: Mapping[str, Any]
    client_limits: ClientLimits
    trusted_proxies: Sequence[Any] = ()
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    draining: bool = False
    client_script: bytes = b"export class Fake {}\n"


class FakeWaiter:
    def __init__(self) -> None:
        self.core: ClientCore | None = None

    def excluded(self) -> frozenset[Any]:
        assert self.core is not None
        return UpstreamSide(self.core).excluded()

    def hash_key(self) -> bytes | None:
        assert self.core is not None
        return UpstreamSide(self.core).hash_key()


def make(
    backends: int = 2,
    *,
    server: ServerConfig | None = None,
    overload_answer: str = "auto",
    **pool: Any,
) -> tuple[ClientCore, FakePool, FakeGateway]:
    pool_config = PoolConfig(
        "app",
        tuple(BackendConfig(Address("127.0.0.1", 9001 + n)) for n in range(backends)),
        **pool,
    )
    config = Config(
        server=server or ServerConfig(access_log=False),
        pools={"app": pool_config},
        routes=(RouteConfig("app", overload_answer=overload_answer),),
    )
    fake = FakePool(pool_config)
    gw = FakeGateway(config, Router(config.routes), {"app": fake}, ClientLimits(0, 0.0, 20))
    waiter = FakeWaiter()
    core = ClientCore(cast(Any, gw), "192.0.2.7", cast(Any, waiter))
    waiter.core = core
    return core, fake, gw


def sent(commands: list[Command]) -> bytes:
    return b"".join(c.data for c in commands if isinstance(c, SendToClient))


def upstream_bytes(commands: list[Command]) -> bytes:
    return b"".join(c.data for c in commands if isinstance(c, SendToUpstream))


def without_logs(commands: list[Command]) -> list[Command]:
    return [c for c in commands if not isinstance(c, Log)]


def errors(commands: list[Command]) -> list[str]:
    return [c.name for c in commands if isinstance(c, Log) and c.kind == "error"]


def status_and_cause(data: bytes) -> tuple[int, str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    status = int(head.split(" ", 2)[1])
    causes = [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("x-wsgate-cause:")
    ]
    return status, causes[0] if causes else ""


def switching(key: bytes = KEY) -> HeaderList:
    headers = HeaderList()
    headers.append((b"Upgrade", b"websocket"))
    headers.append((b"Connection", b"Upgrade"))
    headers.append((b"Sec-WebSocket-Accept", accept_value(key)))
    return headers


def sized(body: bytes = b"ok") -> HeaderList:
    headers = HeaderList()
    headers.append((b"Content-Length", str(len(body)).encode()))
    return headers


# -- a handshake waiting on a real Pool: what the pool tells it, recorded ----------------
class RecordingWaiter:
    """Records what the pool tells it; `on_admitted` plays the client's part."""

    def __init__(self, name: str, heard: list[tuple[str, str]]) -> None:
        self.name = name
        self.heard = heard
        self.on_admitted: Callable[[PoolBackend], None] | None = None
        self.on_rejected: Callable[[], None] | None = None

    def admitted(self, backend: PoolBackend) -> None:
        self.heard.append((self.name, backend.name))
        if self.on_admitted is not None:
            self.on_admitted(backend)

    def rejected(self, cause: str, detail: str, retry_after_s: int) -> None:
        self.heard.append((self.name, cause))
        if self.on_rejected is not None:
            self.on_rejected()

    def hash_key(self) -> bytes | None:
        return None

    def excluded(self) -> frozenset[PoolBackend]:
        return frozenset()


# -- a real Pool on a fresh loop, its backends where nothing listens ------------------------
def pool_config(backends: int = 1, **values: Any) -> PoolConfig:
    """Pool `app` with `backends` at 127.0.0.1:9000 and up, one slot each unless `values`
    say otherwise."""
    addresses = tuple(BackendConfig(Address("127.0.0.1", 9000 + i)) for i in range(backends))
    values.setdefault("max_handshakes_per_backend", 1)
    return PoolConfig("app", addresses, **values)


def run_pool(
    body: Callable[[Pool, list[tuple[str, str]]], Awaitable[Any]],
    config: PoolConfig,
    metrics: Metrics | None = None,
) -> tuple[Any, str]:
    """Runs `body(pool, heard)` on a fresh loop (`heard`: for the `RecordingWaiter`s);
    returns its result and the pool's log."""
    stream = io.StringIO()

    async def main() -> Any:
        pool = Pool(config, 65536, JsonLog(stream), metrics)
        try:
            return await body(pool, [])
        finally:
            await pool.close()

    return asyncio.run(main()), stream.getvalue()


async def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Waits on the running loop until `check()` holds; fails after `within_s`, generous
    for a slow shared machine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        assert loop.time() < deadline, "not so in time"
        await asyncio.sleep(0.01)

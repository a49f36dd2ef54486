"""One request on a client connection, and the states a client connection goes through."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from wsgate.gateway.pool import Backend, ConnectError, Pool
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import Headers


class State(enum.Enum):
    HEAD = "head"
    EXCHANGE = "exchange"
    UPGRADING = "upgrading"
    TUNNEL = "tunnel"
    CLOSED = "closed"


@dataclass(slots=True, eq=False)
class Request:
    method: bytes
    target: bytes
    version: str
    headers: Headers
    keep_alive: bool
    framing: Framing
    received_at: float
    ws_key: bytes | None = None
    upgrade: bool = False  # any Upgrade request (websocket, h2c, ...): its connection dies
    error: ProtocolError | None = None
    body: list[bytes] = field(default_factory=list)
    buffered: int = 0
    complete: bool = False
    pool: Pool | None = None
    backend: Backend | None = None
    client: str = "-"
    tried: set[Backend] = field(default_factory=set)
    last_failure: ConnectError | None = None
    attempts: int = 1
    slot: Backend | None = None  # the handshake slot this request holds
    slot_since: float = 0.0
    slot_inflight: int = 0
    queued_at: float | None = None
    stale_retry_done: bool = False
    head_sent: bool = False
    head_sent_at: float = 0.0
    connect_ms: float | None = None
    status: int = 0


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

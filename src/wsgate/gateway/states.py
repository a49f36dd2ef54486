"""One request on a client connection, and the state machines of a client connection,
each with its allowed moves in one table (as h11's `_state.py`).

The *reader* follows the client's bytes: request heads, bodies, and what comes after an
upgrade request. The *connection* follows what the connection is for: between requests,
busy with one, or a tunnel. The *exchange* follows one request's trip to a backend and
back. They are apart because a pipelining client sends the next head while the previous
answer streams, and because a tunnel outlives the request that made it.

    reader:      HEAD <-> BODY,  HEAD/BODY -> UPGRADE (bytes held for a tunnel)
                 any -> STOPPED (refused or half-closed: nothing more is parsed)
    connection:  IDLE <-> BUSY -> TUNNEL;  any -> CLOSED
    exchange:    WAITING (for a slot or a connection) -> FORWARDED (head sent)
                 FORWARDED -> RESPONDING (answer head relayed) -> DONE
                 FORWARDED -> UPGRADING (101 relayed) -> SWITCHED (the tunnel has it)
                 FORWARDED -> WAITING (a retry);  WAITING/FORWARDED/UPGRADING -> DONE
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsgate.errors import WsgateError
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing
from wsgate.protocol.headers import Headers

if TYPE_CHECKING:
    from wsgate.gateway.pool import Backend, Pool


# IntEnum, not Enum: the tables below are looked up on every move, and an Enum member
# hashes in Python code while an IntEnum member hashes as its int.
class Reader(enum.IntEnum):
    HEAD = 1
    BODY = 2
    UPGRADE = 3
    STOPPED = 4


class Phase(enum.IntEnum):
    IDLE = 1
    BUSY = 2
    TUNNEL = 3
    CLOSED = 4


class Stage(enum.IntEnum):
    WAITING = 1
    FORWARDED = 2
    RESPONDING = 3
    UPGRADING = 4
    SWITCHED = 5
    DONE = 6


READER_MOVES: dict[Reader, frozenset[Reader]] = {
    Reader.HEAD: frozenset({Reader.BODY, Reader.UPGRADE, Reader.STOPPED}),
    Reader.BODY: frozenset({Reader.HEAD, Reader.UPGRADE, Reader.STOPPED}),
    Reader.UPGRADE: frozenset({Reader.STOPPED}),
    Reader.STOPPED: frozenset(),
}

PHASE_MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.BUSY, Phase.CLOSED}),
    Phase.BUSY: frozenset({Phase.IDLE, Phase.TUNNEL, Phase.CLOSED}),
    Phase.TUNNEL: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}

STAGE_MOVES: dict[Stage, frozenset[Stage]] = {
    Stage.WAITING: frozenset({Stage.FORWARDED, Stage.DONE}),
    Stage.FORWARDED: frozenset({Stage.RESPONDING, Stage.UPGRADING, Stage.WAITING, Stage.DONE}),
    Stage.RESPONDING: frozenset({Stage.DONE}),
    Stage.UPGRADING: frozenset({Stage.SWITCHED, Stage.DONE}),
    Stage.SWITCHED: frozenset(),
    Stage.DONE: frozenset(),
}


class BadTransitionError(WsgateError):
    """A move a state table does not allow (these, or the gateway's phases in server.py):
    a bug in the gateway, never the peer's fault."""


# A written __init__, not the dataclass one: compiled, the generated __init__ stays an
# interpreted function, and a request sets some thirty fields (1.2 % of a handshake's CPU).
@dataclass(slots=True, eq=False, init=False)
class Request:
    method: bytes
    target: bytes
    version: str
    headers: Headers
    keep_alive: bool
    framing: Framing
    received_at: float
    ws_key: bytes | None
    upgrade: bool  # any Upgrade request (websocket, h2c, ...): its connection dies
    error: ProtocolError | None
    body: list[bytes]
    buffered: int
    complete: bool
    close_after: bool  # the connection closes once this request is answered
    pool: Pool | None
    backend: Backend | None
    client: str
    tried: set[Backend]
    last_failure: tuple[str, str] | None  # (cause, detail)
    attempts: int
    slot: Backend | None  # the handshake slot this request holds
    slot_since: float
    slot_inflight: int
    queued_at: float | None
    stale_retry_done: bool
    head_sent: bool
    head_sent_at: float
    connect_ms: float | None
    status: int
    # X-Request-Id: the client's, or one the gateway made (`request_id_made`); it is in
    # every log line of the exchange and its tunnel, and the backend gets it.
    request_id: str
    request_id_made: bool
    overload_answer: str  # its route's: how a turned-away handshake is answered
    # The answer towards the client and from the backend (RESPONDING only).
    framing_out: Framing
    upstream_framing: Framing
    upstream_reusable: bool

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: str,
        headers: Headers,
        keep_alive: bool,
        framing: Framing,
        received_at: float,
        ws_key: bytes | None = None,
        upgrade: bool = False,
        error: ProtocolError | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.framing = framing
        self.received_at = received_at
        self.ws_key = ws_key
        self.upgrade = upgrade
        self.error = error
        self.body = []
        self.buffered = 0
        self.complete = False
        self.close_after = False
        self.pool = None
        self.backend = None
        self.client = "-"
        self.tried = set()
        self.last_failure = None
        self.attempts = 1
        self.slot = None
        self.slot_since = 0.0
        self.slot_inflight = 0
        self.queued_at = None
        self.stale_retry_done = False
        self.head_sent = False
        self.head_sent_at = 0.0
        self.connect_ms = None
        self.status = 0
        self.request_id = ""
        self.request_id_made = False
        self.overload_answer = "http"
        self.framing_out = Framing.NONE
        self.upstream_framing = Framing.NONE
        self.upstream_reusable = False


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

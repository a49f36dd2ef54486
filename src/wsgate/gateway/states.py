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
from dataclasses import dataclass, field
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
    close_after: bool = False  # the connection closes once this request is answered
    pool: Pool | None = None
    backend: Backend | None = None
    client: str = "-"
    tried: set[Backend] = field(default_factory=set)
    last_failure: tuple[str, str] | None = None  # (cause, detail)
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
    # X-Request-Id: the client's, or one the gateway made (`request_id_made`); it is in
    # every log line of the exchange and its tunnel, and the backend gets it.
    request_id: str = ""
    request_id_made: bool = False
    overload_answer: str = "http"  # its route's: how a turned-away handshake is answered
    # The answer towards the client and from the backend (RESPONDING only).
    framing_out: Framing = Framing.NONE
    upstream_framing: Framing = Framing.NONE
    upstream_reusable: bool = False


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

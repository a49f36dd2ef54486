"""What the pure client core (`core.py`) asks its asyncio adapter (`client.py`) to do.

The core never touches a socket, a timer or a log stream: every call into it returns a
list of these commands, which the adapter carries out in order. Slotted dataclasses in the
manner of h11's and wsproto's events, treated as immutable but not frozen: a frozen
dataclass sets each field through object.__setattr__, and a handshake makes several.
Each has a written `__init__` (`init=False`): compiled, the one the dataclass module
generates stays an interpreted function, called for every command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, init=False)
class SendToClient:
    data: bytes

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(slots=True, init=False)
class CloseClient:
    """Close the client connection: flush what was written (or drop it, `abort`), and
    let go of the upstream connection the same way."""

    abort: bool = False

    def __init__(self, abort: bool = False) -> None:
        self.abort = abort


@dataclass(slots=True, init=False)
class ClientReading:
    """Pause (`on=False`) or resume reading from the client."""

    on: bool

    def __init__(self, on: bool) -> None:
        self.on = on


@dataclass(slots=True, init=False)
class Wakeup:
    """Call `ClientCore.timer` at `at` (the core's clock); None cancels the wakeup."""

    at: float | None

    def __init__(self, at: float | None) -> None:
        self.at = at


@dataclass(slots=True, init=False)
class OpenUpstream:
    """Get a connection to `backend` (an idle keep-alive one, or a new one) and report
    `upstream_ready` or `upstream_failed`. `head_request`: the response has no body
    whatever it says; `head_limit`: the largest response head to accept."""

    backend: Any
    head_request: bool
    head_limit: int
    fresh: bool = False  # a new connection: the idle one just failed

    def __init__(
        self, backend: Any, head_request: bool, head_limit: int, fresh: bool = False
    ) -> None:
        self.backend = backend
        self.head_request = head_request
        self.head_limit = head_limit
        self.fresh = fresh


@dataclass(slots=True, init=False)
class SendToUpstream:
    data: bytes

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(slots=True, init=False)
class ReleaseUpstream:
    """Let go of the upstream connection: back to its pool's idle list when `reuse`,
    else closed (`abort`: at once, unsent bytes dropped)."""

    reuse: bool = False
    abort: bool = False

    def __init__(self, reuse: bool = False, abort: bool = False) -> None:
        self.reuse = reuse
        self.abort = abort


@dataclass(slots=True, init=False)
class StartTunnel:
    """After a relayed 101: copy bytes both ways from now on, starting with `tail` (what
    the backend sent behind its 101) and `early` (what the client sent behind its
    request). The core is done with the connection: the tunnel takes over its last
    duties, which are to give back, when it ends, the tunnel's count on `backend` and the
    per-client count of `client` (either None when not held)."""

    tail: bytes
    early: bytes
    fields: dict[str, Any]
    idle_timeout_s: float
    backend: Any = None
    client: str | None = None

    def __init__(
        self,
        tail: bytes,
        early: bytes,
        fields: dict[str, Any],
        idle_timeout_s: float,
        backend: Any = None,
        client: str | None = None,
    ) -> None:
        self.tail = tail
        self.early = early
        self.fields = fields
        self.idle_timeout_s = idle_timeout_s
        self.backend = backend
        self.client = client


@dataclass(slots=True, init=False)
class CloseTunnel:
    """End the tunnel from the gateway's side with a close frame (RFC 6455 7.4.1)."""

    code: int
    text: str
    reason: str

    def __init__(self, code: int, text: str, reason: str) -> None:
        self.code = code
        self.text = text
        self.reason = reason


@dataclass(slots=True)
class CallSoon:
    """Call `ClientCore.proceed` on the next turn of the loop (the next pipelined
    request starts after the current read is done with)."""


@dataclass(slots=True, init=False)
class Log:
    """One JSON log line: `kind` is "error" (with `name` the cause code), "access" or
    "event" (with `name` the event)."""

    kind: str
    name: str
    fields: dict[str, Any]

    def __init__(self, kind: str, name: str, fields: dict[str, Any]) -> None:
        self.kind = kind
        self.name = name
        self.fields = fields


Command = (
    SendToClient
    | CloseClient
    | ClientReading
    | Wakeup
    | OpenUpstream
    | SendToUpstream
    | ReleaseUpstream
    | StartTunnel
    | CloseTunnel
    | CallSoon
    | Log
)

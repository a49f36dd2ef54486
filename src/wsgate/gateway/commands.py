"""What the pure client core (`core.py`) asks its asyncio adapter (`client.py`) to do.

The core never touches a socket, a timer or a log stream: every call into it returns a
list of these commands, which the adapter carries out in order. Slotted dataclasses in the
manner of h11's and wsproto's events, treated as immutable but not frozen: a frozen
dataclass sets each field through object.__setattr__, and a handshake makes several.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class SendToClient:
    data: bytes


@dataclass(slots=True)
class CloseClient:
    """Close the client connection: flush what was written (or drop it, `abort`), and
    let go of the upstream connection the same way."""

    abort: bool = False


@dataclass(slots=True)
class ClientReading:
    """Pause (`on=False`) or resume reading from the client."""

    on: bool


@dataclass(slots=True)
class Wakeup:
    """Call `ClientCore.timer` at `at` (the core's clock); None cancels the wakeup."""

    at: float | None


@dataclass(slots=True)
class OpenUpstream:
    """Get a connection to `backend` (an idle keep-alive one, or a new one) and report
    `upstream_ready` or `upstream_failed`. `head_request`: the response has no body
    whatever it says; `head_limit`: the largest response head to accept."""

    backend: Any
    head_request: bool
    head_limit: int
    fresh: bool = False  # a new connection: the idle one just failed


@dataclass(slots=True)
class SendToUpstream:
    data: bytes


@dataclass(slots=True)
class ReleaseUpstream:
    """Let go of the upstream connection: back to its pool's idle list when `reuse`,
    else closed (`abort`: at once, unsent bytes dropped)."""

    reuse: bool = False
    abort: bool = False


@dataclass(slots=True)
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


@dataclass(slots=True)
class CloseTunnel:
    """End the tunnel from the gateway's side with a close frame (RFC 6455 7.4.1)."""

    code: int
    text: str
    reason: str


@dataclass(slots=True)
class CallSoon:
    """Call `ClientCore.proceed` on the next turn of the loop (the next pipelined
    request starts after the current read is done with)."""


@dataclass(slots=True)
class Log:
    """One JSON log line: `kind` is "error" (with `name` the cause code), "access" or
    "event" (with `name` the event)."""

    kind: str
    name: str
    fields: dict[str, Any]


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

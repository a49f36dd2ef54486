"""`wsgate.client`: a Python WebSocket client that reconnects by itself, with the
back-off policy of `wsgate.policy.backoff` (full jitter, a cap, the server's hints
honoured, give-up where retrying cannot help). See docs/client.md.

    async with connect("ws://127.0.0.1:8080/chat", queue_while_disconnected=100) as conn:
        await conn.send("hello")
        async for message in conn:
            ...
"""

from __future__ import annotations

from wsgate.client.connection import (
    ClientStats,
    Message,
    OnConnect,
    OnDisconnect,
    ReconnectingConnection,
    connect,
    connect_failure,
)
from wsgate.client.errors import ClientClosedError, ClientError, GaveUpError, NotConnectedError
from wsgate.policy.backoff import BackoffConfig, Closed, Failure, Refused, Unreachable

__all__ = [
    "BackoffConfig",
    "ClientClosedError",
    "ClientError",
    "ClientStats",
    "Closed",
    "Failure",
    "GaveUpError",
    "Message",
    "NotConnectedError",
    "OnConnect",
    "OnDisconnect",
    "ReconnectingConnection",
    "Refused",
    "Unreachable",
    "connect",
    "connect_failure",
]

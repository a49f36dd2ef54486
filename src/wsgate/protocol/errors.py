"""One error type for the pure protocol layer: it carries the cause code and a reason."""

from __future__ import annotations

from wsgate.errors import GatewayError


class ProtocolError(GatewayError):
    """A request or response that breaks the protocol.

    `cause` is a code from `wsgate.findings` (it decides the HTTP status, see
    `GatewayError`); `reason` is one line for the person who reads the response body or
    the log.
    """

    def __init__(self, cause: str, reason: str) -> None:
        super().__init__(cause, f"{cause}: {reason}")
        self.reason = reason

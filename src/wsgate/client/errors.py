"""The errors `wsgate.client` raises, under `wsgate.errors.WsgateError`."""

from __future__ import annotations

from wsgate.errors import WsgateError
from wsgate.policy.backoff import Failure


class ClientError(WsgateError):
    """Anything a reconnecting connection raises to its caller."""


class GaveUpError(ClientError):
    """The back-off policy gave up: retrying cannot help (HTTP 400/401/403/404/426, a
    close 1008 without a retry-after, a configured status or code, or `max_attempts`).
    `failure` is the last failure, `reason` one sentence for the user."""

    def __init__(self, reason: str, failure: Failure) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure = failure


class NotConnectedError(ClientError):
    """A message sent while disconnected that could not be queued: the queue is full
    (`queue_while_disconnected` messages) or queueing is off (0)."""


class ClientClosedError(ClientError):
    """The caller closed the connection (`close()`); nothing more is sent or received."""

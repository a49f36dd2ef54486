"""The answers of handshake admission. Pure data, shared by the pool that decides and
the client core that asks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejected:
    """No slot and no place in line: answer `cause` with a Retry-After."""

    cause: str
    detail: str
    retry_after_s: int


class Queued:
    """The waiter is in line; `admitted` or `rejected` follows."""

    __slots__ = ()


QUEUED = Queued()

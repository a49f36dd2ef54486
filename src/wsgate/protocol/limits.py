"""Size limits on message heads that arrive in pieces. Pure: counts and bytes in."""

from __future__ import annotations

HEAD_END = b"\r\n\r\n"


def head_overflows(count: int, tail: bytes, data: bytes, limit: int) -> bool:
    """Whether a head of which `count` bytes have arrived, ending in `tail` (its last
    three bytes), passes `limit` with the read `data` before it ends. A read may carry
    the end of the head and then a body or the next message: only the part of `data`
    within the limit must hold the end."""
    if count + len(data) <= limit:
        return False
    allowed = max(limit - count, 0)
    return HEAD_END not in tail + data[:allowed]


def head_tail(tail: bytes, data: bytes) -> bytes:
    """The last three bytes read so far, for `head_overflows` on the next read."""
    return (tail + data)[-3:]

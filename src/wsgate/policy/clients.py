"""Per-client limits: concurrent WebSockets and handshake rate per client address.

Memory stays bounded: an address with no open connection and a full bucket carries no
state, and `sweep` drops such entries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from wsgate.policy.buckets import TokenBucket


class ClientLimits:
    def __init__(self, max_connections: int, rate: float, burst: int) -> None:
        self.max_connections = max_connections
        self.rate = rate
        self.burst = burst
        self._open: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, client: str, now: float) -> float | None:
        """None when this client may start a handshake (and it is counted as open);
        otherwise the seconds after which it may try again."""
        if self.max_connections and self._open.get(client, 0) >= self.max_connections:
            return 1.0
        if self.rate > 0:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, now)
            if not bucket.take(now):
                return max(1.0, bucket.wait_s(now))
        self._open[client] = self._open.get(client, 0) + 1
        return None

    def release(self, client: str) -> None:
        count = self._open.get(client, 0) - 1
        if count > 0:
            self._open[client] = count
        else:
            self._open.pop(client, None)

    def open_count(self, client: str) -> int:
        return self._open.get(client, 0)

    def sweep(self, now: float) -> None:
        for client in [c for c, b in self._buckets.items() if b.full(now)]:
            del self._buckets[client]


def client_address(
    peer: str,
    forwarded_for: bytes | None,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case
    the right-most X-Forwarded-For entry that is not itself trusted (nginx's
    real_ip_recursive)."""
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _valid(hop) else peer
    return hops[0] if hops and _valid(hops[0]) else peer


def _valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(
    text: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in trusted)

"""Backend choice among the available backends of a pool.

Every balancer sees each backend through `Candidate`: its weight, its live connections
(tunnels and handshakes in flight) and its slow-start share (0..1, 1 when fully in
service). A backend in slow start gets its share of a healthy backend's traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from wsgate.policy.ring import HashRing, hash64


class Candidate(Protocol):
    name: str
    weight: int

    @property
    def load(self) -> int: ...


class Balancer(Protocol):
    def pick(
        self, candidates: Sequence[Candidate], shares: Sequence[float], key: bytes | None
    ) -> Candidate | None: ...


class LeastConnections:
    """Fewest live connections per unit of (weight x share); ties rotate. The default:
    WebSocket connections live long, so counting them balances better than turns."""

    def __init__(self) -> None:
        self._turn = 0

    def pick(
        self, candidates: Sequence[Candidate], shares: Sequence[float], key: bytes | None
    ) -> Candidate | None:
        best: Candidate | None = None
        best_score = 0.0
        count = len(candidates)
        self._turn += 1
        for step in range(count):
            index = (self._turn + step) % count
            candidate = candidates[index]
            capacity = candidate.weight * shares[index]
            if capacity <= 0:
                continue
            score = (candidate.load + 1) / capacity
            if best is None or score < best_score:
                best, best_score = candidate, score
        return best


class SmoothWeighted:
    """Smooth weighted round robin (nginx's): evenly interleaved, proportional to
    weight x share. With equal weights it is plain round robin."""

    def __init__(self) -> None:
        self._current: dict[str, float] = {}

    def pick(
        self, candidates: Sequence[Candidate], shares: Sequence[float], key: bytes | None
    ) -> Candidate | None:
        total = 0.0
        best: Candidate | None = None
        best_current = 0.0
        for candidate, share in zip(candidates, shares, strict=True):
            effective = candidate.weight * share
            if effective <= 0:
                continue
            current = self._current.get(candidate.name, 0.0) + effective
            self._current[candidate.name] = current
            total += effective
            if best is None or current > best_current:
                best, best_current = candidate, current
        if best is not None:
            self._current[best.name] -= total
        return best


class ConsistentHash:
    """Sticky choice by key on a ring of all configured backends; an unavailable backend's
    keys go to the next one clockwise. A backend in slow start keeps only the fraction of
    its keys equal to its share (decided by the key's hash, so the same keys stay)."""

    def __init__(self, all_backends: Sequence[Candidate]) -> None:
        self._ring: HashRing[str] = HashRing((c.name, c.name, c.weight) for c in all_backends)
        self._fallback = LeastConnections()

    def pick(
        self, candidates: Sequence[Candidate], shares: Sequence[float], key: bytes | None
    ) -> Candidate | None:
        if key is None:
            return self._fallback.pick(candidates, shares, key)
        by_name = {c.name: (c, s) for c, s in zip(candidates, shares, strict=True)}
        fraction = (hash64(b"share:" + key) % 10_000) / 10_000

        def accept(name: str) -> bool:
            found = by_name.get(name)
            return found is not None and fraction < found[1]

        chosen = self._ring.lookup(key, accept)
        if chosen is None:
            chosen = self._ring.lookup(key, lambda name: name in by_name)
        return by_name[chosen][0] if chosen is not None else None


def make_balancer(kind: str, all_backends: Sequence[Candidate]) -> Balancer:
    if kind == "least_conn":
        return LeastConnections()
    if kind in ("round_robin", "weighted"):
        return SmoothWeighted()
    if kind == "consistent_hash":
        return ConsistentHash(all_backends)
    raise ValueError(f"unknown balancer {kind!r}")

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from wsgate.policy.balancers import ConsistentHash, LeastConnections, SmoothWeighted
from wsgate.policy.ring import HashRing


@dataclass
class B:
    name: str
    weight: int = 1
    conns: int = 0

    @property
    def load(self) -> int:
        return self.conns


def test_ring_removing_one_of_n_remaps_about_one_nth() -> None:
    names = [f"10.0.0.{i}:80" for i in range(5)]
    full = HashRing((n, n, 1) for n in names)
    less = HashRing((n, n, 1) for n in names[:-1])
    keys = [f"client-{i}".encode() for i in range(20_000)]
    moved = sum(1 for k in keys if full.lookup(k) != less.lookup(k))
    owned_by_removed = sum(1 for k in keys if full.lookup(k) == names[-1])
    # Only the removed backend's keys move, and that is about 1/N of them.
    assert moved == owned_by_removed
    assert 0.15 < moved / len(keys) < 0.25


def test_ring_spreads_keys_evenly() -> None:
    names = [f"b{i}" for i in range(4)]
    ring = HashRing((n, n, 1) for n in names)
    counts = Counter(ring.lookup(f"k{i}".encode()) for i in range(20_000))
    assert all(4000 < c < 6000 for c in counts.values())


def test_least_connections_prefers_idle_and_respects_share() -> None:
    a, b = B("a", conns=10), B("b", conns=2)
    lc = LeastConnections()
    assert lc.pick([a, b], [1.0, 1.0], None) is b
    # b in slow start at 10% share looks ten times as loaded.
    assert lc.pick([a, b], [1.0, 0.1], None) is a


def test_least_connections_rotates_ties() -> None:
    backends = [B("a"), B("b"), B("c")]
    lc = LeastConnections()
    picks = {lc.pick(backends, [1.0] * 3, None).name for _ in range(6)}  # type: ignore[union-attr]
    assert picks == {"a", "b", "c"}


def test_smooth_weighted_is_proportional_and_interleaved() -> None:
    a, b = B("a", weight=3), B("b", weight=1)
    wrr = SmoothWeighted()
    picks = [wrr.pick([a, b], [1.0, 1.0], None).name for _ in range(8)]  # type: ignore[union-attr]
    assert Counter(picks) == {"a": 6, "b": 2}
    assert picks[:4] != ["a", "a", "a", "b"] or picks[4:] == picks[:4]


def test_consistent_hash_is_sticky_and_fails_over() -> None:
    backends = [B("a"), B("b"), B("c")]
    ch = ConsistentHash(backends)
    first = {i: ch.pick(backends, [1.0] * 3, b"user%d" % i) for i in range(300)}
    again = {i: ch.pick(backends, [1.0] * 3, b"user%d" % i) for i in range(300)}
    assert first == again
    without_b = [backends[0], backends[2]]
    moved = [i for i in range(300) if ch.pick(without_b, [1.0, 1.0], b"user%d" % i) is not first[i]]
    assert all(first[i] is backends[1] for i in moved)


def test_consistent_hash_slow_start_keeps_a_share_of_keys() -> None:
    backends = [B("a"), B("b")]
    ch = ConsistentHash(backends)
    keys = [b"k%d" % i for i in range(4000)]
    owned = [k for k in keys if ch.pick(backends, [1.0, 1.0], k) is backends[1]]
    kept = [k for k in owned if ch.pick(backends, [1.0, 0.25], k) is backends[1]]
    assert 0.15 < len(kept) / len(owned) < 0.35

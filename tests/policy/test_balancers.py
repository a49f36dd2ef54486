"""The balancers (policy/balancers.py): least connections, smooth weighted round robin
and consistent hashing, each seeing a backend's weight, load and slow-start share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from wsgate.policy.balancers import (
    Candidate,
    ConsistentHash,
    LeastConnections,
    SmoothWeighted,
    make_balancer,
)


@dataclass
class B:
    name: str
    weight: int = 1
    conns: int = 0

    @property
    def load(self) -> int:
        return self.conns


def names(picks: list[Candidate | None]) -> list[str]:
    return [p.name if p is not None else "-" for p in picks]


def test_least_connections_prefers_idle_and_respects_share() -> None:
    a, b = B("a", conns=10), B("b", conns=2)
    lc = LeastConnections()
    assert lc.pick([a, b], [1.0, 1.0], None) is b
    # b in slow start at 10% share looks ten times as loaded.
    assert lc.pick([a, b], [1.0, 0.1], None) is a


def test_least_connections_rotates_ties() -> None:
    backends = [B("a"), B("b"), B("c")]
    lc = LeastConnections()
    picks = names([lc.pick(backends, [1.0] * 3, None) for _ in range(6)])
    assert picks == ["b", "c", "a", "b", "c", "a"]


def test_least_connections_divides_load_by_weight() -> None:
    # (4 + 1) / 4 < (1 + 1) / 1: the heavy backend with four connections is still less
    # loaded than the light one with one.
    heavy, light = B("heavy", weight=4, conns=4), B("light", conns=1)
    assert LeastConnections().pick([heavy, light], [1.0, 1.0], None) is heavy


def test_least_connections_skips_a_zero_share_and_finds_none_when_all_are() -> None:
    a, b = B("a", conns=100), B("b")
    lc = LeastConnections()
    assert lc.pick([a, b], [1.0, 0.0], None) is a
    assert lc.pick([a, b], [0.0, 0.0], None) is None
    assert lc.pick([B("z", weight=0)], [1.0], None) is None
    assert lc.pick([], [], None) is None


def test_smooth_weighted_is_nginx_s_sequence() -> None:
    # nginx's example: weights 5, 1, 1 give a a b a c a a.
    a, b, c = B("a", weight=5), B("b"), B("c")
    wrr = SmoothWeighted()
    picks = names([wrr.pick([a, b, c], [1.0] * 3, None) for _ in range(7)])
    assert picks == ["a", "a", "b", "a", "c", "a", "a"]


def test_smooth_weighted_is_proportional_and_interleaved() -> None:
    a, b = B("a", weight=3), B("b", weight=1)
    wrr = SmoothWeighted()
    picks = names([wrr.pick([a, b], [1.0, 1.0], None) for _ in range(8)])
    assert Counter(picks) == {"a": 6, "b": 2}
    assert picks[:4] == picks[4:]


def test_smooth_weighted_scales_by_share_and_skips_zero() -> None:
    a, b, c = B("a", weight=5), B("b"), B("c")
    wrr = SmoothWeighted()
    picks = names([wrr.pick([a, b, c], [1.0, 0.5, 0.0], None) for _ in range(7)])
    assert picks == ["a", "a", "a", "a", "a", "b", "a"]
    assert SmoothWeighted().pick([a], [0.0], None) is None


def test_consistent_hash_is_sticky_and_fails_over() -> None:
    backends = [B("a"), B("b"), B("c")]
    ch = ConsistentHash(backends)
    first = {i: ch.pick(backends, [1.0] * 3, b"user%d" % i) for i in range(300)}
    again = {i: ch.pick(backends, [1.0] * 3, b"user%d" % i) for i in range(300)}
    assert first == again
    assert {b.name for b in first.values() if b is not None} == {"a", "b", "c"}
    without_b = [backends[0], backends[2]]
    moved = [i for i in range(300) if ch.pick(without_b, [1.0, 1.0], b"user%d" % i) is not first[i]]
    assert moved and all(first[i] is backends[1] for i in moved)


def test_consistent_hash_slow_start_keeps_a_share_of_keys() -> None:
    backends = [B("a"), B("b")]
    ch = ConsistentHash(backends)
    keys = [b"k%d" % i for i in range(4000)]
    owned = [k for k in keys if ch.pick(backends, [1.0, 1.0], k) is backends[1]]
    kept = [k for k in owned if ch.pick(backends, [1.0, 0.25], k) is backends[1]]
    assert 0.15 < len(kept) / len(owned) < 0.35


def test_consistent_hash_with_every_share_zero_still_picks_an_available_backend() -> None:
    # No backend takes the key by share: the ring's owner among the available ones.
    backends = [B("a"), B("b")]
    ch = ConsistentHash(backends)
    assert ch.pick(backends, [0.0, 0.0], b"key") in backends
    assert ch.pick([], [], b"key") is None


def test_consistent_hash_without_a_key_is_least_connections() -> None:
    a, b = B("a", conns=3), B("b")
    assert ConsistentHash([a, b]).pick([a, b], [1.0, 1.0], None) is b


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("least_conn", LeastConnections),
        ("round_robin", SmoothWeighted),
        ("weighted", SmoothWeighted),
        ("consistent_hash", ConsistentHash),
    ],
)
def test_make_balancer_by_kind(kind: str, expected: type) -> None:
    assert type(make_balancer(kind, [B("a")])) is expected


def test_make_balancer_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown balancer 'random'"):
        make_balancer("random", [])

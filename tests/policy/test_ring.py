"""The consistent-hash ring (policy/ring.py): where keys land, what moves when a member
goes, and the walk past members a caller will not take."""

from __future__ import annotations

from collections import Counter

from wsgate.policy.ring import VNODES_PER_WEIGHT, HashRing, hash64


def test_hash64_is_blake2b_of_eight_bytes() -> None:
    # The ring's placement rests on this value: a change would move every sticky client.
    assert hash64(b"") == 16476032584258269876
    assert hash64(b"a") == 4681665781835383343


def test_an_empty_ring_finds_nobody() -> None:
    ring: HashRing[str] = HashRing([])
    assert ring.lookup(b"key") is None


def test_a_lookup_is_the_same_every_time_and_on_a_ring_built_again() -> None:
    names = ["a", "b", "c"]
    ring = HashRing((n, n, 1) for n in names)
    again = HashRing((n, n, 1) for n in reversed(names))  # order of members does not matter
    for i in range(500):
        key = b"user%d" % i
        assert ring.lookup(key) == ring.lookup(key) == again.lookup(key)


def test_accept_walks_clockwise_to_the_next_member() -> None:
    names = ["a", "b", "c"]
    ring = HashRing((n, n, 1) for n in names)
    owner = ring.lookup(b"key")
    assert owner is not None
    other = ring.lookup(b"key", lambda name: name != owner)
    assert other is not None and other != owner
    assert (
        ring.lookup(b"key", lambda name: name not in (owner, other))
        == ({"a", "b", "c"} - {owner, other}).pop()
    )


def test_nobody_accepted_is_none() -> None:
    ring = HashRing((n, n, 1) for n in ["a", "b"])
    assert ring.lookup(b"key", lambda _: False) is None


def test_the_stable_name_places_the_member_not_the_member_itself() -> None:
    by_name = HashRing(((1, "a", 1), (2, "b", 1)))
    swapped = HashRing(((2, "b", 1), (1, "a", 1)))
    assert [by_name.lookup(b"k%d" % i) for i in range(200)] == [
        swapped.lookup(b"k%d" % i) for i in range(200)
    ]


def test_weight_multiplies_the_virtual_nodes() -> None:
    assert VNODES_PER_WEIGHT == 160
    ring = HashRing((("heavy", "heavy", 3), ("light", "light", 1)))
    counts = Counter(ring.lookup(b"k%d" % i) for i in range(20_000))
    assert 0.68 < counts["heavy"] / 20_000 < 0.82  # about 3/4


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

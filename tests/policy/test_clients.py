"""Per-client limits and the client's address (policy/clients.py), on a clock the test
moves."""

from __future__ import annotations

import ipaddress

import pytest

from wsgate.policy.clients import ClientLimits, client_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def test_no_limits_admit_everybody_and_count_them() -> None:
    limits = ClientLimits(max_connections=0, rate=0.0, burst=0)
    assert [limits.admit("192.0.2.1", 0.0) for _ in range(50)] == [None] * 50
    assert limits.open_count("192.0.2.1") == 50


def test_max_connections_per_client_and_release() -> None:
    limits = ClientLimits(max_connections=2, rate=0.0, burst=0)
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) == 1.0  # the third: come back in a second
    assert limits.admit("192.0.2.2", 0.0) is None  # another client is not held back
    limits.release("192.0.2.1")
    assert limits.open_count("192.0.2.1") == 1
    assert limits.admit("192.0.2.1", 0.0) is None


def test_a_release_too_many_leaves_no_negative_count() -> None:
    limits = ClientLimits(max_connections=1, rate=0.0, burst=0)
    limits.release("192.0.2.1")
    assert limits.open_count("192.0.2.1") == 0
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) == 1.0


def test_handshake_rate_per_client_with_its_burst() -> None:
    limits = ClientLimits(max_connections=0, rate=0.5, burst=2)
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.1", 0.0) == 2.0  # a token every 2 s
    assert limits.admit("192.0.2.1", 1.5) == 1.0  # never less than a second
    assert limits.admit("192.0.2.1", 2.0) is None
    assert limits.open_count("192.0.2.1") == 3  # a refused handshake is not counted


def test_sweep_forgets_only_full_buckets() -> None:
    limits = ClientLimits(max_connections=0, rate=1.0, burst=1)
    assert limits.admit("192.0.2.1", 0.0) is None
    assert limits.admit("192.0.2.2", 5.0) is None
    limits.sweep(5.5)  # 192.0.2.1's bucket is full again; 192.0.2.2's is not
    # A forgotten bucket starts full: 192.0.2.1 may go at once; 192.0.2.2 still waits.
    assert limits.admit("192.0.2.1", 5.5) is None
    assert limits.admit("192.0.2.2", 5.5) == 1.0


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # No header, or a peer that is not a trusted proxy: the peer.
        ("10.1.1.1", None, "10.1.1.1"),
        ("192.0.2.9", b"203.0.113.5", "192.0.2.9"),
        # A trusted proxy: the right-most entry it did not add itself.
        ("10.1.1.1", b"203.0.113.5", "203.0.113.5"),
        ("10.1.1.1", b"198.51.100.1, 203.0.113.5, 10.2.2.2", "203.0.113.5"),
        ("10.1.1.1", b" 203.0.113.5 ,, ", "203.0.113.5"),
        ("fd00::1", b"2001:db8::7", "2001:db8::7"),
        # Every hop trusted: the left-most one.
        ("10.1.1.1", b"10.3.3.3, 10.2.2.2", "10.3.3.3"),
        # Not an address where one is taken: the peer, never the junk.
        ("10.1.1.1", b"unknown", "10.1.1.1"),
        ("10.1.1.1", b"", "10.1.1.1"),
        ("10.1.1.1", b" , ", "10.1.1.1"),
    ],
)
def test_client_address(peer: str, forwarded_for: bytes | None, expected: str) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


def test_client_address_trusts_nobody_without_a_list() -> None:
    assert client_address("10.1.1.1", b"203.0.113.5", ()) == "10.1.1.1"

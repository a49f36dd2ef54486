"""Consistent hashing on a ring with virtual nodes (Karger et al.; as in nginx's
`hash ... consistent` / ketama): removing one of N backends remaps only the keys that
backend owned, about 1/N of them."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

VNODES_PER_WEIGHT = 160


def hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HashRing(Generic[T]):
    def __init__(self, members: Iterable[tuple[T, str, int]]) -> None:
        """`members`: (member, stable name, weight); the name places its virtual nodes."""
        points: list[tuple[int, int]] = []
        self._members: list[T] = []
        for index, (member, name, weight) in enumerate(members):
            self._members.append(member)
            for vnode in range(max(1, weight) * VNODES_PER_WEIGHT):
                points.append((hash64(f"{name}#{vnode}".encode()), index))
        points.sort()
        self._hashes = [h for h, _ in points]
        self._owners = [i for _, i in points]

    def lookup(self, key: bytes, accept: Callable[[T], bool] = lambda _: True) -> T | None:
        """The first member clockwise from the key's hash that `accept` takes."""
        if not self._hashes:
            return None
        start = bisect.bisect(self._hashes, hash64(key)) % len(self._hashes)
        tried: set[int] = set()
        count = len(self._hashes)
        for step in range(count):
            owner = self._owners[(start + step) % count]
            if owner in tried:
                continue
            tried.add(owner)
            member = self._members[owner]
            if accept(member):
                return member
            if len(tried) == len(self._members):
                break
        return None

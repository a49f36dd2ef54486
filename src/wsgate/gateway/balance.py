"""Backend choice. Pure: the gateway feeds it the pool's backends and asks for one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RoundRobin(Generic[T]):
    """Each call to `pick` returns the next backend, skipping those in `exclude`."""

    def __init__(self, backends: Sequence[T]) -> None:
        if not backends:
            raise ValueError("a pool needs at least one backend")
        self._backends = tuple(backends)
        self._next = 0

    def pick(self, exclude: frozenset[T] = frozenset()) -> T | None:
        count = len(self._backends)
        for step in range(count):
            backend = self._backends[(self._next + step) % count]
            if backend not in exclude:
                self._next = (self._next + step + 1) % count
                return backend
        return None

"""The bounded FIFO where handshakes wait for a free slot, with a wait timeout."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class WaitQueue(Generic[T]):
    """FIFO of waiters; `push` refuses when full, `expired` hands back the ones that
    waited longer than `timeout_s`, `remove` drops one whose client went away."""

    def __init__(self, max_size: int, timeout_s: float) -> None:
        self.max_size = max_size
        self.timeout_s = timeout_s
        self._items: OrderedDict[T, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T, now: float) -> bool:
        if len(self._items) >= self.max_size:
            return False
        self._items[item] = now
        return True

    def push_front(self, item: T, now: float) -> bool:
        """Put a retried waiter ahead of the line. It also takes the head's time if that
        is older, so the times stay in line order: `expired` stops at the first waiter
        that has not expired, and a fresh time at the head would hold back older ones."""
        if len(self._items) >= self.max_size:
            return False
        head = next(iter(self._items.values()), None)
        self._items[item] = now if head is None else min(now, head)
        self._items.move_to_end(item, last=False)
        return True

    def peek(self) -> T | None:
        return next(iter(self._items), None)

    def pop(self) -> T | None:
        if not self._items:
            return None
        item, _ = self._items.popitem(last=False)
        return item

    def newest(self) -> tuple[T, float] | None:
        """The last waiter in line and when it joined, or None when nobody waits."""
        if not self._items:
            return None
        item = next(reversed(self._items))
        return item, self._items[item]

    def pop_newest(self) -> T | None:
        if not self._items:
            return None
        item, _ = self._items.popitem(last=True)
        return item

    def remove(self, item: T) -> bool:
        return self._items.pop(item, None) is not None

    def expired(self, now: float) -> list[T]:
        out: list[T] = []
        while self._items:
            item, since = next(iter(self._items.items()))
            if now - since < self.timeout_s:
                break
            self._items.popitem(last=False)
            out.append(item)
        return out

    def next_deadline(self) -> float | None:
        """When the oldest waiter times out, or None when nobody waits."""
        if not self._items:
            return None
        return next(iter(self._items.values())) + self.timeout_s

    def oldest_wait(self, now: float) -> float:
        if not self._items:
            return 0.0
        return now - next(iter(self._items.values()))

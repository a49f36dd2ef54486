"""What a pool counts in the metrics of its admission: each decision (admitted, queued,
dequeued, each refusal by cause), the time a handshake waited in the queue, and the
retries its budget allows and refuses. Only made when the admin listener serves
metrics: without it, the pool counts nothing."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

from wsgate.policy.admission import QUEUED, Rejected
from wsgate.policy.retry import RetryBudget

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics

# A refusal's cause as an admission decision (see `Metrics.admission`); a queue timeout
# is `queue_timeout` from the queue's timer and `shed` when predicted.
REFUSALS = {
    "overloaded_queue_full": "queue_full",
    "overloaded_queue_timeout": "shed",
    "no_healthy_upstream": "no_healthy_upstream",
    "at_capacity": "at_capacity",
    "shutting_down": "shutting_down",
}


class MeteredBudget(RetryBudget):
    """The pool's retry budget, counting the retries it allows and refuses."""

    def __init__(self, ratio: float, min_per_s: float, metrics: Metrics, pool: str) -> None:
        super().__init__(ratio, min_per_s)
        self.metrics = metrics
        self.pool = pool

    def try_retry(self, now: float) -> bool:
        allowed = super().try_retry(now)
        self.metrics.retry(self.pool, allowed)
        return allowed


class AdmissionMeter:
    """Counts the admission controller's answers for the pool called `pool`, as the pool
    gets them (`answered`) and delivers them (`delivered`)."""

    def __init__(self, metrics: Metrics, pool: str) -> None:
        self.metrics = metrics
        self.pool = pool
        # When each queued handshake joined the line.
        self._queued_at: dict[Hashable, float] = {}

    def answered(self, waiter: Hashable, answer: object, now: float) -> None:
        """`admit`'s answer: a backend, QUEUED, or a rejection."""
        if answer is QUEUED:
            self._queued_at[waiter] = now
            self.metrics.admission(self.pool, "queued")
        elif isinstance(answer, Rejected):
            self.metrics.admission(self.pool, REFUSALS.get(answer.cause, answer.cause))
        else:
            self.metrics.admission(self.pool, "admitted")

    def cancelled(self, waiter: Hashable) -> None:
        self._queued_at.pop(waiter, None)

    def delivered(
        self, decisions: Iterable[tuple[Hashable, object]], timeout: str, now: float
    ) -> None:
        """Answers given to queued handshakes. `timeout`: what a queue timeout counts as
        here: `shed` when predicted, `queue_timeout` from the queue's timer."""
        metrics, name = self.metrics, self.pool
        for waiter, answer in decisions:
            since = self._queued_at.pop(waiter, None)
            if since is not None:
                metrics.queue_wait(name, now - since)
            if not isinstance(answer, Rejected):
                metrics.admission(name, "dequeued")
            elif answer.cause == "overloaded_queue_timeout":
                metrics.admission(name, timeout)
            else:
                metrics.admission(name, REFUSALS.get(answer.cause, answer.cause))

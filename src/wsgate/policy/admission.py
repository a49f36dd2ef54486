"""Handshake admission: who gets a handshake slot on which backend, who waits in line, and
who is turned away with which Retry-After. Pure: every call takes `now`, nothing here reads
a clock, sets a timer or calls a waiter back.

`AdmissionController` answers `admit` at once with a backend (a slot is taken), `QUEUED`
or a `Rejected`. A queued waiter's answer comes later, from whichever event frees a slot or
ends its wait: `on_done`, `tunnel_closed`, `dispatch`, `expire`, `shed` and `turn_away_all`
return the decisions, `(waiter, backend or Rejected)` in the order they were made, and the
adapter (`gateway.pool.Pool`) delivers them. The adapter also owes the controller two
wakeups: `expire` at `next_deadline()`, and `dispatch` when a backend in `ejected` comes
back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

from mypy_extensions import mypyc_attr

from wsgate.policy.balancers import make_balancer
from wsgate.policy.buckets import jittered_retry_after
from wsgate.policy.drain import DrainRate, ReturnSchedule, beyond_deadline
from wsgate.policy.health import BackendHealth, HealthSettings
from wsgate.policy.limits import AdaptiveLimit, FixedLimit
from wsgate.policy.outcome import Outcome
from wsgate.policy.queue import WaitQueue
from wsgate.policy.retry import RetryBudget

# Turning a waiter away on a prediction needs a steady rate: in the first seconds of a storm
# the gateway is busy accepting it and the adaptive limit is still settling, and the S1
# overload benchmark showed a 1 s measurement underrating the pool by a quarter (961 of the
# 1,260 handshakes it could serve in 30 s were kept). Five seconds of saturation (one time
# constant of DrainRate) is still far sooner than a 30 s timeout.
SHED_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class Rejected:
    """No slot and no place in line: answer `cause` with a Retry-After."""

    cause: str
    detail: str
    retry_after_s: int


class Queued:
    """The waiter is in line; `admitted` or `rejected` follows."""

    __slots__ = ()


QUEUED = Queued()


@dataclass(frozen=True, slots=True)
class AdmissionSettings:
    """A pool's admission knobs, every one required: their defaults live in the config
    model only (`PoolConfig`), and the gateway's pool copies them here. 0 switches
    `max_handshakes` and `max_connections_per_backend` off, and `max_handshakes_per_backend`
    (see `BackendState`) means an adaptive limit."""

    pool: str  # the pool's name, for the details of rejections
    balance: str  # least_conn | round_robin | weighted | consistent_hash
    max_handshakes: int
    max_connections_per_backend: int
    queue_size: int
    queue_timeout_s: float
    retry_after_s: float
    retry_budget_ratio: float
    retry_budget_min_per_s: float


# Subclassed in Python by gateway/pool.py (Backend): a compiled class must allow it.
@mypyc_attr(allow_interpreted_subclasses=True)
class BackendState:
    """One backend as admission sees it: health, handshake limit, and load (handshakes
    holding a slot, established tunnels). The gateway's `Backend` adds its address and
    connections."""

    def __init__(
        self, name: str, weight: int, health: HealthSettings, max_handshakes: int, now: float
    ) -> None:
        self.name = name
        self.weight = weight
        self.health = BackendHealth(health, now)
        self.limiter: AdaptiveLimit | FixedLimit = (
            FixedLimit(max_handshakes) if max_handshakes else AdaptiveLimit()
        )
        self.inflight = 0  # handshakes holding a slot
        self.connections = 0  # established tunnels

    @property
    def load(self) -> int:
        return self.inflight + self.connections

    def handshake_capacity(self, now: float) -> int:
        return max(1, int(self.limiter.value * self.health.share(now)))


class Applicant(Protocol):
    """A handshake asking for a slot, as the controller sees it while it waits."""

    def hash_key(self) -> bytes | None: ...
    def excluded(self) -> Container[object]: ...  # backends it already tried
    def __hash__(self) -> int: ...


B = TypeVar("B", bound=BackendState)
W = TypeVar("W", bound=Applicant)

NO_DECISIONS: tuple[()] = ()  # the usual answer, shared: no allocation per handshake


class AdmissionController(Generic[B, W]):
    """Slots per backend (`BackendState.handshake_capacity`, `max_connections_per_backend`)
    and for the pool (`max_handshakes`), the bounded FIFO `queue` with its timeout, and the
    measured drain rate that predicts a wait (`SHED_AFTER_S`) and sizes Retry-After."""

    def __init__(
        self, settings: AdmissionSettings, backends: Sequence[B], rng: random.Random
    ) -> None:
        self.settings = settings
        self.backends = list(backends)
        self.balancer = make_balancer(settings.balance, self.backends)
        self._sticky = settings.balance == "consistent_hash"
        self.queue: WaitQueue[W] = WaitQueue(settings.queue_size, settings.queue_timeout_s)
        self.budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_min_per_s)
        self.drain = DrainRate()
        self.returns = ReturnSchedule()  # when the clients turned away should come back
        self._last_queued = -math.inf  # when a handshake last joined the line
        self.rng = rng
        self.inflight = 0  # handshakes holding a slot, all backends together
        self.shutting_down = False  # the gateway drains: nobody joins the queue any more
        # Backends that passive ejection took out, for the adapter to log and to call
        # `dispatch` again when their ejection ends; it empties the list.
        self.ejected: list[B] = []

    def reconfigure(self, settings: AdmissionSettings, backends: Sequence[B]) -> None:
        """A reload: new knobs and backends. The waiters keep their places (a new queue
        timeout counts from when each joined; a smaller size turns nobody away), slots
        held stay held (a backend that is gone gives its back as its handshakes end), and
        the measured drain rate goes on. The retry budget is the adapter's to replace."""
        self.settings = settings
        self.backends = list(backends)
        self.balancer = make_balancer(settings.balance, self.backends)
        self._sticky = settings.balance == "consistent_hash"
        self.queue.max_size = settings.queue_size
        self.queue.timeout_s = settings.queue_timeout_s

    # -- choosing a backend ---------------------------------------------------------------
    def _eligible(self, now: float, exclude: Container[object]) -> list[B]:
        return [b for b in self.backends if b not in exclude and b.health.available(now)]

    def _pick(self, candidates: list[B], now: float, key: bytes | None) -> B | None:
        if not candidates:
            return None
        shares = [b.health.share(now) for b in candidates]
        # The balancer hands back one of `candidates`: a B.
        return cast("B | None", self.balancer.pick(candidates, shares, key))

    def _has_room(self, backend: B, now: float) -> bool:
        limit = self.settings.max_connections_per_backend
        if limit and backend.load >= limit:
            return False
        return backend.inflight < backend.handshake_capacity(now)

    def pick_for_request(
        self, now: float, exclude: Container[object], key: bytes | None
    ) -> B | None:
        """A backend for a plain HTTP request: no handshake slot, any healthy backend."""
        return self._pick(self._eligible(now, exclude), now, key)

    def retry_after(self) -> int:
        return jittered_retry_after(self.settings.retry_after_s, self.rng)

    def queue_retry_after(
        self, now: float, *, expired: bool = False, served: float | None = None
    ) -> int:
        """For a client the queue turns away: come back at its own turn after the line
        (drain.ReturnSchedule); the jittered base while the pool's rate is unknown.

        The line ahead is what the queue will serve before its timeouts run out: at most
        `queue_timeout_s` of the pool's rate (the rest will be turned away and told a turn of
        their own); for a waiter whose timeout ran out, at most what is left of the timeout
        of the one now at the front, as the waiters behind it mostly came with it and run
        out too: counting them all would leave the backends idle while every client waits
        for a line that is gone. `served`: the line ahead, where the caller knows it."""
        rate = self.drain.rate(now)
        if not rate:
            return jittered_retry_after(self.settings.retry_after_s, self.rng)
        if served is None:
            timeout = self.settings.queue_timeout_s
            time_left = max(0.0, timeout - self.queue.oldest_wait(now)) if expired else timeout
            served = min(len(self.queue), rate * time_left)
        wait_s = self.returns.promise(now, served, rate, self.settings.retry_after_s)
        # Whole seconds rounded down, 0 for a turn within the second: a client adds a
        # spread of its own on top (wsgate's up to a second), so that on average it comes
        # back at the turn it was given. A floor of 1 s kept the clients of the first
        # second away until the line had run dry (S5: a hole of about a second).
        return math.floor(wait_s)

    # -- a handshake asks -----------------------------------------------------------------
    def admit(self, waiter: W, now: float, *, front: bool = False) -> B | Rejected | Queued:
        """A slot now (the backend; call `on_done` when the handshake ends), a place in line
        (`QUEUED`: the adapter arms `next_deadline()`), or a rejection. `front`: a retry
        after a failed attempt, which goes ahead of the line."""
        eligible = self._eligible(now, waiter.excluded())
        if not eligible:
            return self._no_healthy_upstream(now)
        limit = self.settings.max_connections_per_backend
        if limit and all(b.load >= limit for b in eligible):
            return Rejected(
                "at_capacity",
                f"Every backend of pool {self.settings.pool} holds {limit} connections.",
                self.retry_after(),
            )
        queue = self.queue
        if front or not len(queue):
            backend = self._try_slot(eligible, now, waiter.hash_key())
            if backend is not None:
                return backend
        if self.shutting_down:
            return self._shutting_down()
        if not len(queue):
            if now - self._last_queued > self.drain.tau_s:
                # Saturated again after a quiet spell: measure capacity afresh. A line that
                # emptied for a moment keeps its measure (a reset then would leave the
                # clients turned away next with the plain base instead of their turn).
                self.drain = DrainRate()
        elif not front:
            rate = self.drain.rate(now, SHED_AFTER_S)
            if rate and beyond_deadline(len(queue) + 1, 0.0, queue.timeout_s, rate):
                return self._predicted_timeout(now, rate)
        pushed = queue.push_front(waiter, now) if front else queue.push(waiter, now)
        self._last_queued = now
        if not pushed:
            return Rejected(
                "overloaded_queue_full",
                f"{len(queue)} handshakes already wait for pool {self.settings.pool}.",
                self.queue_retry_after(now),
            )
        return QUEUED

    def _try_slot(self, eligible: list[B], now: float, key: bytes | None) -> B | None:
        if self.settings.max_handshakes and self.inflight >= self.settings.max_handshakes:
            return None
        if self._sticky:
            # Stickiness first: the key's backend, if it has room; else wait for it.
            backend = self._pick(eligible, now, key)
            if backend is None or not self._has_room(backend, now):
                return None
        else:
            backend = self._pick([b for b in eligible if self._has_room(b, now)], now, key)
            if backend is None:
                return None
        backend.inflight += 1
        self.inflight += 1
        return backend

    def cancel(self, waiter: W) -> None:
        """The waiter went away: it leaves the line (nothing if it is not in it)."""
        self.queue.remove(waiter)

    def next_deadline(self) -> float | None:
        """When `expire` has something to do: the oldest waiter's timeout, or None when
        nobody waits. It moves only later while waiters join, so one timer will do."""
        return self.queue.next_deadline()

    # -- events ---------------------------------------------------------------------------
    def on_done(
        self, backend: B, rtt_s: float, inflight_at_start: int, outcome: str, now: float
    ) -> Sequence[tuple[W, B | Rejected]]:
        """A handshake released its slot. `outcome` (an `Outcome`): ok (any answer), failed
        (refused, closed, 5xx) or dropped (timed out), aborted (the client went away or the
        gateway shut down): failures feed passive ejection, latency the adaptive limit;
        aborts neither. The freed slot goes to the head of the line, and the waiters that
        would now time out before their turn are turned away."""
        backend.inflight -= 1
        self.inflight -= 1
        self.drain.on_done(now)
        if outcome == Outcome.OK:
            backend.limiter.on_sample(rtt_s, inflight_at_start, now)
            backend.health.on_success(now)
        elif outcome != Outcome.ABORTED:  # the client or the gateway gave up: says nothing
            if outcome == Outcome.DROPPED:
                backend.limiter.on_sample(rtt_s, inflight_at_start, now, dropped=True)
            self.on_failure(backend, now)
        if not len(self.queue):
            return NO_DECISIONS
        decisions = self.dispatch(now)
        shed = self.shed(now)
        if not shed:
            return decisions
        return [*decisions, *shed]

    def on_failure(self, backend: B, now: float) -> bool:
        """A connect or handshake failure on `backend`; True (and `backend` in `ejected`)
        when it ejects the backend."""
        if not backend.health.on_failure(now):
            return False
        self.ejected.append(backend)
        return True

    def on_success(self, backend: B, now: float) -> None:
        backend.health.on_success(now)

    def on_check(self, backend: B, ok: bool, now: float) -> bool:
        """An active health check's result; True when the backend went up or down. When it
        came up, `dispatch` has slots to give."""
        return backend.health.on_check(ok, now)

    def tunnel_opened(self, backend: B) -> None:
        backend.connections += 1

    def tunnel_closed(self, backend: B, now: float) -> Sequence[tuple[W, B | Rejected]]:
        backend.connections -= 1
        if not len(self.queue):
            return NO_DECISIONS
        return self.dispatch(now)

    def dispatch(self, now: float) -> Sequence[tuple[W, B | Rejected]]:
        """Hand free slots to waiters, first come first served: a waiter at the head whose
        backends are all gone is turned away, the first that finds no slot stops it."""
        decisions: list[tuple[W, B | Rejected]] | None = None
        queue = self.queue
        while (waiter := queue.peek()) is not None:
            eligible = self._eligible(now, waiter.excluded())
            answer: B | Rejected | None
            if not eligible:
                answer = self._no_healthy_upstream(now)
            else:
                answer = self._try_slot(eligible, now, waiter.hash_key())
                if answer is None:
                    break
            queue.pop()
            if decisions is None:
                decisions = []
            decisions.append((waiter, answer))
        return NO_DECISIONS if decisions is None else decisions

    def shed(self, now: float) -> Sequence[tuple[W, Rejected]]:
        """Turn away, newest first, the waiters that would time out before their turn;
        each is told its turn after the line that stays, in the order they came (the
        line that stays is all served in time: counting the ones turned away with it
        would leave the backends idle before they come back)."""
        rate = self.drain.rate(now, SHED_AFTER_S)
        if not rate:
            return NO_DECISIONS  # no prediction yet: only the real timeout applies
        gone: list[W] | None = None
        queue = self.queue
        while (newest := queue.newest()) is not None:
            waiter, since = newest
            if not beyond_deadline(len(queue), now - since, queue.timeout_s, rate):
                break
            queue.pop_newest()
            if gone is None:
                gone = []
            gone.append(waiter)
        if gone is None:
            return NO_DECISIONS
        kept = len(queue)
        gone.reverse()
        return [
            (waiter, self._predicted_timeout(now, rate, ahead=kept + i, served=kept))
            for i, waiter in enumerate(gone)
        ]

    def expire(self, now: float) -> Sequence[tuple[W, Rejected]]:
        """The waiters whose queue timeout ran out, turned away; then `next_deadline()`."""
        expired = self.queue.expired(now)
        if not expired:
            return NO_DECISIONS
        detail = f"Waited {self.settings.queue_timeout_s:g} s in pool {self.settings.pool}'s queue."
        return [
            (
                waiter,
                Rejected(
                    "overloaded_queue_timeout", detail, self.queue_retry_after(now, expired=True)
                ),
            )
            for waiter in expired
        ]

    def turn_away_all(self, now: float) -> Sequence[tuple[W, Rejected]]:
        """The gateway starts to drain: every waiter is turned away (shutting_down, with a
        Retry-After), and from now on `admit` answers shutting_down where it would queue.
        Handshakes that hold a slot go on."""
        self.shutting_down = True
        decisions: list[tuple[W, Rejected]] = []
        while (waiter := self.queue.pop()) is not None:
            decisions.append((waiter, self._shutting_down()))
        return decisions

    # -- rejections -----------------------------------------------------------------------
    def _no_healthy_upstream(self, now: float) -> Rejected:
        # Come back when the first backend should be back (an ejection's end, the checks
        # it still needs), within the configured base: a restart that takes a second must
        # not keep every client away for retry_after_s.
        base = self.settings.retry_after_s
        back = [t for b in self.backends if (t := b.health.back_in(now)) is not None]
        if back:
            base = min(base, max(1.0, min(back)))
        return Rejected(
            "no_healthy_upstream",
            f"Pool {self.settings.pool}: no backend is up.",
            jittered_retry_after(base, self.rng),
        )

    def _shutting_down(self) -> Rejected:
        return Rejected(
            "shutting_down",
            f"The gateway is draining: pool {self.settings.pool} queues no more handshakes.",
            self.retry_after(),
        )

    def _predicted_timeout(
        self, now: float, rate: float, *, ahead: int | None = None, served: float | None = None
    ) -> Rejected:
        if ahead is None:
            ahead = len(self.queue)
        return Rejected(
            "overloaded_queue_timeout",
            f"{ahead} handshakes wait ahead in pool {self.settings.pool}'s queue, "
            f"which completes {rate:.1f}/s: about {ahead / rate:.0f} s, more "
            f"than its queue timeout of {self.settings.queue_timeout_s:g} s.",
            self.queue_retry_after(now, served=served),
        )

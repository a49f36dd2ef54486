"""How a handshake ended, as the pool hears it when the handshake releases its slot.

The outcome decides what the backend's health and adaptive limit learn from it (see
`Pool.handshake_done`): an answer is a success and a latency sample; a failure counts
towards passive ejection; a timeout also tells the limit that the backend is overloaded;
an abort says nothing about the backend at all.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """A member equals its plain string, so `outcome == "ok"` keeps working."""

    OK = "ok"  # the backend answered (any status)
    FAILED = "failed"  # refused, closed early, a bad answer: the backend's fault
    DROPPED = "dropped"  # timed out: a failure, and overload for the adaptive limit
    ABORTED = "aborted"  # the client went away or the gateway shut down

    @property
    def is_failure(self) -> bool:
        """Whether it counts against the backend (passive ejection)."""
        return self in (Outcome.FAILED, Outcome.DROPPED)

    @property
    def is_latency_sample(self) -> bool:
        """Whether its round-trip time feeds the adaptive limit (a drop as overload)."""
        return self in (Outcome.OK, Outcome.DROPPED)

from __future__ import annotations

from wsgate.policy.outcome import Outcome


def test_members_are_the_plain_strings_the_pool_compares() -> None:
    assert [str(outcome) for outcome in Outcome] == ["ok", "failed", "dropped", "aborted"]
    assert Outcome("dropped") is Outcome.DROPPED
    plain: str = "ok"  # typed str: mypy takes a member and a literal for disjoint
    assert plain == Outcome.OK


def test_what_each_outcome_teaches_the_pool() -> None:
    # Mirrors Pool.handshake_done: ok feeds health and the limit, failed and dropped
    # count against the backend, dropped is also an overload sample, aborted says nothing.
    assert {o: (o.is_failure, o.is_latency_sample) for o in Outcome} == {
        Outcome.OK: (False, True),
        Outcome.FAILED: (True, False),
        Outcome.DROPPED: (True, True),
        Outcome.ABORTED: (False, False),
    }

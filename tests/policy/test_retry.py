"""The retry budget (policy/retry.py): a ratio of recent first attempts plus a minimum,
over a window moved by the test's clock."""

from __future__ import annotations

from wsgate.policy.retry import RetryBudget


def test_retry_budget_allows_ratio_plus_minimum() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.1, window_s=10)  # minimum: 1 per window
    for _ in range(100):
        budget.on_attempt(0.0)
    allowed = sum(budget.try_retry(0.0) for _ in range(100))
    assert allowed == 21  # 20 % of 100, plus 1
    assert not budget.try_retry(5.0)
    assert budget.try_retry(10.5)  # the window moved on


def test_a_quiet_pool_still_gets_its_minimum() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.3, window_s=10)  # 3 per window
    assert [budget.try_retry(1.0) for _ in range(4)] == [True, True, True, False]


def test_the_defaults() -> None:
    budget = RetryBudget()
    assert (budget.ratio, budget.min_per_s, budget.window_s) == (0.2, 3.0, 10.0)
    # 30 retries a window with no attempts at all, the 31st refused.
    assert sum(budget.try_retry(0.0) for _ in range(31)) == 30


def test_events_leave_the_window_at_exactly_window_s() -> None:
    budget = RetryBudget(ratio=1.0, min_per_s=0.0, window_s=10)
    budget.on_attempt(0.0)
    assert budget.try_retry(0.0)
    assert not budget.try_retry(9.999)  # one attempt, one retry: spent
    budget.on_attempt(10.0)  # the first attempt and its retry fall out of the window
    assert budget.try_retry(10.0)
    assert not budget.try_retry(10.0)


def test_no_attempts_and_no_minimum_allow_no_retry() -> None:
    assert not RetryBudget(ratio=0.5, min_per_s=0.0).try_retry(0.0)

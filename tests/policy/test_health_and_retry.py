from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from wsgate.config import PoolConfig
from wsgate.policy.health import MIN_SHARE, BackendHealth, HealthSettings
from wsgate.policy.retry import RetryBudget


def settings(**changes: Any) -> HealthSettings:
    """The config's defaults (the pool copies PoolConfig the same way), with `changes`."""
    pc = PoolConfig(name="p", backends=())
    defaults = HealthSettings(
        rise=pc.health.rise,
        fall=pc.health.fall,
        eject_after=pc.eject_after_failures,
        eject_base_s=pc.eject_base_s,
        eject_max_s=pc.eject_max_s,
        slow_start_s=pc.slow_start_s,
    )
    return dataclasses.replace(defaults, **changes)


def test_settings_have_no_defaults_of_their_own() -> None:
    # One home for defaults: the config model. Two disagreed once (slow start 0 vs 30 s).
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(HealthSettings))
    with pytest.raises(TypeError):
        HealthSettings()  # type: ignore[call-arg]


def test_rise_and_fall_thresholds() -> None:
    health = BackendHealth(settings(rise=2, fall=3), now=0)
    assert health.up
    assert not health.on_check(False, 1) and not health.on_check(False, 2)
    assert health.on_check(False, 3) and not health.up  # third failure: down
    assert not health.on_check(True, 4)
    assert health.on_check(True, 5) and health.up  # second success: up


def test_passive_ejection_with_backoff_and_trial() -> None:
    health = BackendHealth(settings(eject_after=3, eject_base_s=2, eject_max_s=5), now=0)
    assert not health.on_failure(0) and not health.on_failure(0)
    assert health.on_failure(0)  # third in a row ejects for 2 s
    assert not health.available(1.9)
    assert health.available(2.0)  # the trial
    assert health.on_failure(2.0)  # trial failed: ejected again, 4 s
    assert not health.available(5.9) and health.available(6.0)
    assert health.on_failure(6.0)  # capped at 5 s
    assert not health.available(10.9) and health.available(11.0)
    health.on_success(11.0)
    assert health.available(11.0) and health.ejections == 0


def test_a_backend_ejected_thousands_of_times_keeps_the_capped_backoff() -> None:
    # 2 ** 1024 does not fit a float: the back-off overflowed after ~1024 ejections in a
    # row (about 17 hours down with a 60 s cap) and every later failure raised.
    health = BackendHealth(settings(eject_after=1, eject_base_s=2, eject_max_s=60), now=0)
    now = 0.0
    for _ in range(2000):
        assert health.on_failure(now)
        assert 0 < health.ejected_until - now <= 60
        now = health.ejected_until


def test_slow_start_ramps_share_after_coming_back() -> None:
    health = BackendHealth(settings(fall=1, rise=1, slow_start_s=10), now=0)
    assert health.share(0) == 1.0  # in service from the start
    health.on_check(False, 1)
    health.on_check(True, 20)  # came back at t=20
    assert health.share(20) == MIN_SHARE
    assert abs(health.share(25) - 0.5) < 1e-9
    assert health.share(30) == 1.0


def test_retry_budget_allows_ratio_plus_minimum() -> None:
    budget = RetryBudget(ratio=0.2, min_per_s=0.1, window_s=10)  # minimum: 1 per window
    for _ in range(100):
        budget.on_attempt(0.0)
    allowed = sum(budget.try_retry(0.0) for _ in range(100))
    assert allowed == 21  # 20 % of 100, plus 1
    assert not budget.try_retry(5.0)
    assert budget.try_retry(10.5)  # the window moved on

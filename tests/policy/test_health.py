"""A backend's health (policy/health.py): rise and fall, passive ejection with back-off
and a trial, slow start, on a clock the test moves."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from wsgate.config import PoolConfig
from wsgate.policy.health import MIN_SHARE, BackendHealth, HealthSettings


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
        check_interval_s=pc.health.interval_s,
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


def test_a_trial_that_succeeds_ends_the_ejection_and_ramps_up_again() -> None:
    health = BackendHealth(settings(eject_after=1, eject_base_s=2, slow_start_s=10), now=0)
    assert health.on_failure(0.0)
    assert health.available(2.0)  # the trial
    health.on_success(2.0)
    assert health.ejections == 0 and health.failures == 0
    assert health.share(2.0) == MIN_SHARE and health.share(12.0) == 1.0
    assert health.on_failure(13.0)
    assert health.ejected_until == 15.0  # the back-off starts again from its base


def test_a_success_between_failures_resets_the_count() -> None:
    health = BackendHealth(settings(eject_after=2), now=0)
    assert not health.on_failure(0.0)
    health.on_success(0.1)
    assert not health.on_failure(0.2)  # the count started again
    assert health.on_failure(0.3)


def test_a_down_backend_is_unavailable_whatever_its_ejection() -> None:
    health = BackendHealth(settings(fall=1), now=0)
    assert health.on_check(False, 1.0)
    assert not health.available(1.0) and not health.available(1000.0)


def test_without_slow_start_the_share_is_whole_at_once() -> None:
    health = BackendHealth(settings(fall=1, rise=1, slow_start_s=0), now=0)
    health.on_check(False, 1)
    assert health.on_check(True, 2)
    assert health.share(2) == 1.0


def test_back_in_says_when_an_ejected_or_down_backend_may_take_handshakes_again() -> None:
    health = BackendHealth(settings(eject_after=1, eject_base_s=2.0, rise=2), now=0.0)
    assert health.back_in(0.0) == 0.0
    health.on_failure(10.0)  # ejected for 2 s
    assert health.back_in(10.5) == 1.5
    assert health.back_in(13.0) == 0.0
    for t in (20.0, 25.0, 30.0):
        health.on_check(False, t)  # fall = 3: down
    assert not health.up
    assert health.back_in(30.0) == 2 * 5.0  # two passing checks, 5 s apart
    health.on_check(True, 35.0)
    assert health.back_in(35.0) == 5.0
    no_checks = BackendHealth(settings(check_interval_s=0.0), now=0.0)
    no_checks.up = False  # down, and nothing that would say when it is back
    assert no_checks.back_in(1.0) is None


def test_a_drained_backend_is_unavailable_whatever_its_checks_say() -> None:
    health = BackendHealth(settings(), now=100.0)
    assert health.available(100.0)
    health.drained = True  # the admin API's drain
    assert health.up and not health.available(100.0)
    health.drained = False
    assert health.available(100.0)
    health.up = False  # its checks still count
    assert not health.available(100.0)

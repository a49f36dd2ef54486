"""gateway/pool_settings.py: what a PoolConfig makes of the pure policy objects (every
key copied, none defaulted here), the operator's drain over a backend's health, and the
retry budget with and without metrics."""

from __future__ import annotations

from wsgate.config.model import Address, BackendConfig, HealthCheckConfig, PoolConfig
from wsgate.gateway.pool_metrics import MeteredBudget
from wsgate.gateway.pool_settings import (
    admission_settings,
    health_settings,
    retry_budget,
)
from wsgate.observe.metrics import Metrics
from wsgate.policy.admission import AdmissionSettings
from wsgate.policy.health import HealthSettings
from wsgate.policy.retry import RetryBudget

BACKENDS = (BackendConfig(Address("127.0.0.1", 9001)),)

# Every key away from its default, so that a key not copied shows.
CONFIG = PoolConfig(
    "chat",
    BACKENDS,
    balance="round_robin",
    max_handshakes=11,
    max_connections_per_backend=12,
    queue_size=13,
    queue_timeout_s=14.5,
    retry_after_s=15.5,
    retry_budget_ratio=0.35,
    retry_budget_min_per_s=1.5,
    eject_after_failures=7,
    eject_base_s=3.5,
    eject_max_s=90.0,
    slow_start_s=12.0,
    health=HealthCheckConfig(kind="http", rise=4, fall=5, interval_s=2.5),
)


def test_admission_settings_copy_every_key() -> None:
    assert admission_settings(CONFIG) == AdmissionSettings(
        pool="chat",
        balance="round_robin",
        max_handshakes=11,
        max_connections_per_backend=12,
        queue_size=13,
        queue_timeout_s=14.5,
        retry_after_s=15.5,
        retry_budget_ratio=0.35,
        retry_budget_min_per_s=1.5,
    )


def test_health_settings_copy_every_key() -> None:
    assert health_settings(CONFIG) == HealthSettings(
        rise=4,
        fall=5,
        eject_after=7,
        eject_base_s=3.5,
        eject_max_s=90.0,
        slow_start_s=12.0,
        check_interval_s=2.5,
    )


def test_defaults_come_from_the_config_model() -> None:
    plain = PoolConfig("app", BACKENDS)
    settings = health_settings(plain)
    assert settings.slow_start_s == plain.slow_start_s == 30.0
    assert settings.check_interval_s == plain.health.interval_s
    assert admission_settings(plain).queue_size == plain.queue_size


def test_a_down_backend_is_checked_at_the_down_interval() -> None:
    # back_in() counts the checks a down backend still needs at this interval.
    health = HealthCheckConfig(interval_s=5.0, down_interval_s=0.5)
    assert health_settings(PoolConfig("app", BACKENDS, health=health)).check_interval_s == 0.5


def test_no_active_checks_means_no_check_interval() -> None:
    none = PoolConfig("app", BACKENDS, health=HealthCheckConfig(kind="none", interval_s=2.5))
    assert health_settings(none).check_interval_s == 0.0


def test_the_retry_budget_counts_in_the_metrics_only_when_there_are_any() -> None:
    plain = retry_budget(CONFIG, None)
    assert type(plain) is RetryBudget
    assert (plain.ratio, plain.min_per_s) == (0.35, 1.5)
    metrics = Metrics()
    metered = retry_budget(CONFIG, metrics)
    assert isinstance(metered, MeteredBudget)
    assert (metered.ratio, metered.min_per_s, metered.pool) == (0.35, 1.5, "chat")
    assert metered.try_retry(100.0)
    assert metrics.registry.get_sample_value("wsgate_retries_total", {"pool": "chat"}) == 1.0

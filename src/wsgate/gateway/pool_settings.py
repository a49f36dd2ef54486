"""What a pool's config makes of the pure policy objects: the admission controller's
settings, the backends' health settings and the retry budget. Used by `pool.Pool` at
start and again at each reload."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsgate.config.model import PoolConfig
from wsgate.gateway.pool_metrics import MeteredBudget
from wsgate.policy.admission import AdmissionSettings
from wsgate.policy.health import HealthSettings
from wsgate.policy.retry import RetryBudget

if TYPE_CHECKING:
    from wsgate.observe.metrics import Metrics


def admission_settings(config: PoolConfig) -> AdmissionSettings:
    return AdmissionSettings(
        pool=config.name,
        balance=config.balance,
        max_handshakes=config.max_handshakes,
        max_connections_per_backend=config.max_connections_per_backend,
        queue_size=config.queue_size,
        queue_timeout_s=config.queue_timeout_s,
        retry_after_s=config.retry_after_s,
        retry_budget_ratio=config.retry_budget_ratio,
        retry_budget_min_per_s=config.retry_budget_min_per_s,
    )


def health_settings(config: PoolConfig) -> HealthSettings:
    return HealthSettings(
        rise=config.health.rise,
        fall=config.health.fall,
        eject_after=config.eject_after_failures,
        eject_base_s=config.eject_base_s,
        eject_max_s=config.eject_max_s,
        slow_start_s=config.slow_start_s,
        check_interval_s=(
            config.health.interval_when_down_s if config.health.kind != "none" else 0.0
        ),
    )


def retry_budget(config: PoolConfig, metrics: Metrics | None) -> RetryBudget:
    """The pool's retry budget, counted in the metrics when there are any."""
    if metrics is None:
        return RetryBudget(config.retry_budget_ratio, config.retry_budget_min_per_s)
    return MeteredBudget(
        config.retry_budget_ratio, config.retry_budget_min_per_s, metrics, config.name
    )

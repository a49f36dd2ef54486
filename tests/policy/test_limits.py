from __future__ import annotations

from wsgate.policy.limits import AdaptiveLimit, AdaptiveSettings, FixedLimit


def simulate(capacity: int, service_s: float, steps: int = 3000) -> AdaptiveLimit:
    """A backend that serves `capacity` handshakes at once, each in `service_s`; more in
    flight queue inside it, so latency grows with inflight / capacity. The gateway keeps
    the limit full (a storm)."""
    limiter = AdaptiveLimit(AdaptiveSettings(initial=4, max_limit=1000))
    now = 0.0
    for _ in range(steps):
        inflight = limiter.value
        rtt = service_s * max(1.0, inflight / capacity)
        now += rtt / inflight  # completions arrive at the backend's throughput
        limiter.on_sample(rtt, inflight, now)
    return limiter


def test_adaptive_limit_finds_a_slow_backends_capacity() -> None:
    limiter = simulate(capacity=4, service_s=0.095)
    # Equilibrium: limit = tolerance * capacity + sqrt(limit), about 11.4 here; the
    # baseline's slow drift may add one. Far below the 1,000 it could grow to.
    assert 8 <= limiter.value <= 14


def test_adaptive_limit_grows_for_a_roomy_backend() -> None:
    limiter = simulate(capacity=200, service_s=0.01)
    assert limiter.value >= 150


def test_adaptive_limit_does_not_grow_when_unused() -> None:
    limiter = AdaptiveLimit(AdaptiveSettings(initial=20))
    for _ in range(500):
        limiter.on_sample(0.01, inflight=2, now=0.0)
    assert limiter.value == 20


def test_drops_shrink_the_limit_but_not_below_min() -> None:
    limiter = AdaptiveLimit(AdaptiveSettings(initial=10, min_limit=2))
    for _ in range(100):
        limiter.on_sample(1.0, inflight=10, now=0.0, dropped=True)
    assert limiter.value == 2


def test_fixed_limit_ignores_samples() -> None:
    limit = FixedLimit(7)
    limit.on_sample(100.0, 7, 0.0, dropped=True)
    assert limit.value == 7

"""gateway/pool_metrics.py against a real Metrics (its prometheus_client registry read
back): each admission answer counted by its decision, refusals by cause, the queue wait
observed when a queued handshake is answered, a queue timeout counted as shed or
queue_timeout, a cancelled wait forgotten, and the retry budget's yes and no."""

from __future__ import annotations

from wsgate.gateway.pool_metrics import REFUSALS, AdmissionMeter, MeteredBudget
from wsgate.observe.metrics import OTHER, Metrics
from wsgate.policy.admission import QUEUED, Rejected


def decisions(metrics: Metrics, decision: str, pool: str = "app") -> float:
    labels = {"pool": pool, "decision": decision}
    value = metrics.registry.get_sample_value("wsgate_admission_decisions_total", labels)
    return value or 0.0


def waits(metrics: Metrics, pool: str = "app") -> tuple[float, float]:
    """(how many waits were observed, their sum in seconds)."""
    read = metrics.registry.get_sample_value
    count = read("wsgate_queue_wait_seconds_count", {"pool": pool}) or 0.0
    total = read("wsgate_queue_wait_seconds_sum", {"pool": pool}) or 0.0
    return count, total


def refused(cause: str) -> Rejected:
    return Rejected(cause, "words", 5)


def test_each_answer_is_counted_by_its_decision() -> None:
    metrics = Metrics()
    meter = AdmissionMeter(metrics, "app")
    meter.answered("a", QUEUED, 10.0)
    meter.answered("b", "a backend", 10.0)
    meter.answered("c", "a backend", 10.0)
    for cause in REFUSALS:
        meter.answered(cause, refused(cause), 10.0)
    meter.answered("d", refused("some_new_cause"), 10.0)
    assert (decisions(metrics, "queued"), decisions(metrics, "admitted")) == (1.0, 2.0)
    for decision in ("queue_full", "shed", "no_healthy_upstream", "at_capacity"):
        assert decisions(metrics, decision) == 1.0, decision
    assert decisions(metrics, "shutting_down") == 1.0
    # A cause with no decision of its own: counted, under the catch-all label.
    assert decisions(metrics, "some_new_cause") == 0.0
    assert decisions(metrics, OTHER) == 1.0
    assert decisions(metrics, "queued", pool="other") == 0.0


def test_a_queued_handshake_answered_later_has_its_wait_observed() -> None:
    metrics = Metrics()
    meter = AdmissionMeter(metrics, "app")
    meter.answered("a", QUEUED, 10.0)
    meter.answered("b", QUEUED, 11.0)
    meter.delivered([("a", "a backend")], "queue_timeout", 12.5)
    assert decisions(metrics, "dequeued") == 1.0
    assert waits(metrics) == (1.0, 2.5)
    meter.delivered([("b", refused("overloaded_queue_timeout"))], "queue_timeout", 14.0)
    assert decisions(metrics, "queue_timeout") == 1.0 and decisions(metrics, "shed") == 0.0
    assert waits(metrics) == (2.0, 5.5)
    # Answered once: a second delivery for the same waiter observes no second wait.
    meter.delivered([("b", refused("overloaded_queue_timeout"))], "shed", 20.0)
    assert decisions(metrics, "shed") == 1.0 and waits(metrics) == (2.0, 5.5)


def test_a_predicted_timeout_is_shed_and_other_refusals_keep_their_cause() -> None:
    metrics = Metrics()
    meter = AdmissionMeter(metrics, "app")
    meter.answered("a", QUEUED, 0.0)
    meter.answered("b", QUEUED, 0.0)
    meter.delivered(
        [("a", refused("overloaded_queue_timeout")), ("b", refused("no_healthy_upstream"))],
        "shed",
        1.0,
    )
    assert decisions(metrics, "shed") == 1.0
    assert decisions(metrics, "no_healthy_upstream") == 1.0
    assert decisions(metrics, "dequeued") == 0.0


def test_a_cancelled_wait_is_not_observed() -> None:
    metrics = Metrics()
    meter = AdmissionMeter(metrics, "app")
    meter.answered("a", QUEUED, 0.0)
    meter.cancelled("a")
    meter.cancelled("never queued")
    meter.delivered([("a", "a backend")], "queue_timeout", 3.0)
    assert waits(metrics) == (0.0, 0.0)


def test_the_metered_budget_counts_retries_allowed_and_refused() -> None:
    metrics = Metrics()
    budget = MeteredBudget(0.0, 0.1, metrics, "app")  # one retry in its 10 s window
    assert budget.try_retry(100.0)
    assert not budget.try_retry(100.5)
    read = metrics.registry.get_sample_value
    assert read("wsgate_retries_total", {"pool": "app"}) == 1.0
    assert read("wsgate_retry_budget_refusals_total", {"pool": "app"}) == 1.0

"""The metrics object on its own registry: what each hot-path call moves, bounded labels,
gauges from a snapshot, and text that prometheus_client's parser reads back."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from wsgate.observe.metrics import Metrics, exposition, sample_value


def families(metrics: Metrics) -> list[Any]:
    return list(text_string_to_metric_families(exposition(metrics.registry).decode()))


SNAPSHOT = {
    "phase": "draining",
    "connections": 7,
    "pools": {
        "app": {
            "queue": 3,
            "queue_size": 10,
            "backends": [
                {
                    "name": "b1",
                    "inflight": 2,
                    "limit": 8,
                    "tunnels": 5,
                    "healthy": False,
                    "ejected": True,
                    "drained": False,
                    "share": 0.25,
                }
            ],
        }
    },
}


def test_hot_path_counts() -> None:
    m = Metrics()
    m.handshake_done("app", "b1", "ok", 0.02)
    m.handshake_done("app", "b1", "ok", 0.2)
    m.handshake_done("app", "b1", "failed", 5.0)  # no latency for a failure
    m.admission("app", "queued")
    m.admission("app", "weird")
    m.queue_wait("app", 1.5)
    m.tunnel_opened("app", "b1")
    m.tunnel_closed("app", 10, 0)
    m.error("app", "overloaded_queue_full")
    m.error(None, "no_route")
    m.error("app", "made_up_cause")
    m.retry("app", True)
    m.retry("app", False)
    m.ejection("app", "b1")
    m.reload("unsupported")
    m.admin_action("app", "b1", "drain")
    f = families(m)
    assert sample_value(f, "wsgate_handshakes_total", {"outcome": "ok"}) == 2
    assert sample_value(f, "wsgate_handshakes_total", {"outcome": "failed"}) == 1
    assert sample_value(f, "wsgate_handshake_duration_seconds_count") == 2
    assert sample_value(f, "wsgate_handshake_duration_seconds_bucket", {"le": "0.025"}) == 1
    assert sample_value(f, "wsgate_admission_decisions_total", {"decision": "other"}) == 1
    assert sample_value(f, "wsgate_queue_wait_seconds_bucket", {"le": "1.0"}) == 0
    assert sample_value(f, "wsgate_queue_wait_seconds_bucket", {"le": "2.5"}) == 1
    assert sample_value(f, "wsgate_upgrades_total", {"pool": "app"}) == 1
    assert sample_value(f, "wsgate_tunnel_bytes_total", {"direction": "up"}) == 10
    assert sample_value(f, "wsgate_tunnel_bytes_total", {"direction": "down"}) == 0
    assert sample_value(f, "wsgate_errors_total", {"pool": "", "cause": "no_route"}) == 1
    assert sample_value(f, "wsgate_errors_total", {"cause": "other"}) == 1
    assert sample_value(f, "wsgate_retries_total") == 1
    assert sample_value(f, "wsgate_retry_budget_refusals_total") == 1
    assert sample_value(f, "wsgate_backend_ejections_total") == 1
    assert sample_value(f, "wsgate_reloads_total") == 1
    assert sample_value(f, "wsgate_backend_admin_actions_total", {"action": "drain"}) == 1
    assert not [s for fam in f for s in fam.samples if s.name.endswith("_created")]


def test_gauges_from_a_snapshot() -> None:
    m = Metrics()
    m.set_gauges(SNAPSHOT)
    f = families(m)
    assert sample_value(f, "wsgate_queue_length", {"pool": "app"}) == 3
    assert sample_value(f, "wsgate_queue_capacity") == 10
    assert sample_value(f, "wsgate_handshakes_in_flight", {"backend": "b1"}) == 2
    assert sample_value(f, "wsgate_handshake_limit") == 8
    assert sample_value(f, "wsgate_tunnels_open") == 5
    assert sample_value(f, "wsgate_backend_healthy") == 0
    assert sample_value(f, "wsgate_backend_ejected") == 1
    assert sample_value(f, "wsgate_backend_slow_start_share") == 0.25
    assert sample_value(f, "wsgate_client_connections") == 7
    assert sample_value(f, "wsgate_workers", {"phase": "draining"}) == 1
    assert sample_value(f, "wsgate_workers", {"phase": "running"}) == 0


def test_every_metric_has_help_and_two_gateways_do_not_clash() -> None:
    first, second = Metrics(), Metrics()  # a registry each: no duplicate names
    first.set_gauges(SNAPSHOT)
    second.handshake_done("app", "b1", "ok", 0.1)
    for fam in families(first) + families(second):
        assert fam.name.startswith("wsgate_") and fam.documentation

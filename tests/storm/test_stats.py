from __future__ import annotations

import json

import pytest

from wsgate.storm import stats
from wsgate.storm.stats import OK, Recorder


def worker_a() -> Recorder:
    rec = Recorder(bucket_s=1.0)
    for i in range(100):  # 1..100 ms, all in the first second
        rec.record_start()
        rec.record_handshake(done_s=0.5, latency_s=(i + 1) / 1000.0, outcome=OK)
    rec.record_rtt(done_s=0.6, rtt_s=0.002)
    return rec


def worker_b() -> Recorder:
    rec = Recorder(bucket_s=1.0)
    for _ in range(50):
        rec.record_start()
        rec.record_handshake(done_s=2.5, latency_s=2.0, outcome=OK)
    rec.record_start()
    rec.record_handshake(done_s=60.2, latency_s=60.0, outcome=stats.status_outcome(504))
    rec.record_start()
    rec.record_handshake(done_s=1.2, latency_s=0.001, outcome=stats.REFUSED)
    rec.record_session_error("echo_timeout")
    return rec


def test_status_outcome_keys() -> None:
    assert stats.status_outcome(101) == "101"
    assert stats.status_outcome(502) == "502"
    assert stats.status_outcome(502, "upstream_connect_timeout") == "502 upstream_connect_timeout"
    names = ["timeout", "504", "101", "refused", "502 upstream_closed_early"]
    assert sorted(names, key=stats.outcome_sort_key) == [
        "101",
        "502 upstream_closed_early",
        "504",
        "refused",
        "timeout",
    ]


def test_merge_adds_counts_and_histograms_across_workers() -> None:
    merged = stats.merge([worker_a(), worker_b()])
    assert merged.started == 152
    assert merged.outcomes == {OK: 150, "504": 1, "refused": 1}
    assert merged.handshake.get_total_count() == 150
    # 100 successes at 1..100 ms and 50 at 2000 ms: the 75th of 150 is 75 ms.
    assert merged.handshake.get_value_at_percentile(50) == pytest.approx(75_000, rel=0.001)
    assert merged.handshake.get_value_at_percentile(90) == pytest.approx(2_000_000, rel=0.001)
    assert merged.last_success_s == 2.5
    assert merged.last_done_s == 60.2
    assert merged.session_errors == {"echo_timeout": 1}
    assert sorted(merged.buckets) == [0, 1, 2, 60]
    assert merged.buckets[0].outcomes == {OK: 100}
    assert merged.buckets[0].messages == 1
    assert merged.buckets[60].outcomes == {"504": 1}


def test_merge_survives_the_trip_through_json_as_between_processes() -> None:
    parts = [
        Recorder.from_dict(json.loads(json.dumps(r.to_dict()))) for r in (worker_a(), worker_b())
    ]
    direct = stats.merge([worker_a(), worker_b()])
    merged = stats.merge(parts)
    assert merged.outcomes == direct.outcomes
    assert merged.handshake.get_total_count() == direct.handshake.get_total_count()
    for pct in (50, 90, 99, 99.9, 100):
        assert merged.handshake.get_value_at_percentile(
            pct
        ) == direct.handshake.get_value_at_percentile(pct)
    assert merged.buckets[2].handshake.get_total_count() == 50
    assert merged.buckets[0].rtt is not None
    assert merged.buckets[1].rtt is None


def test_merge_refuses_mixed_bucket_widths_and_nothing() -> None:
    with pytest.raises(ValueError, match="bucket widths"):
        stats.merge([Recorder(bucket_s=1.0), Recorder(bucket_s=0.5)])
    with pytest.raises(ValueError):
        stats.merge([])


def test_summary_figures() -> None:
    merged = stats.merge([worker_a(), worker_b()])
    out = stats.summary(merged, elapsed_s=61.0)
    assert out["completed"] == 152
    assert out["ok"] == 150
    assert out["failed"] == 2
    assert list(out["outcomes"]) == ["101", "504", "refused"]
    hs = out["handshake_ms"]
    assert hs["count"] == 150
    assert hs["p50"] == pytest.approx(75.0, rel=0.001)
    assert hs["p99"] == pytest.approx(2000.0, rel=0.001)
    assert hs["max"] == pytest.approx(2000.0, rel=0.001)
    assert out["rtt_ms"]["count"] == 1
    assert out["rtt_ms"]["p50"] == pytest.approx(2.0, rel=0.001)
    assert out["time_to_last_success_s"] == 2.5
    assert out["handshakes_per_s"] == round(150 / 61.0, 3)
    json.dumps(out)  # the result file must be plain JSON


def test_series_fills_gaps_with_zeros_and_none() -> None:
    out = stats.series(stats.merge([worker_a(), worker_b()]))
    assert out["t"][:4] == [0.0, 1.0, 2.0, 3.0]
    assert len(out["t"]) == 61
    assert out["outcomes"]["101"][:4] == [100, 0, 50, 0]
    assert out["outcomes"]["504"][60] == 1
    assert out["outcomes"]["refused"][1] == 1
    assert out["handshake_p50_ms"][1] is None
    assert out["handshake_max_ms"][2] == pytest.approx(2000.0, rel=0.01)
    assert out["ok_per_s"][0] == 100.0
    assert out["messages_per_s"][0] == 1.0


def test_empty_recorder_summarizes_without_numbers() -> None:
    out = stats.summary(Recorder(bucket_s=0.5), elapsed_s=0.0)
    assert out["completed"] == 0
    assert out["handshake_ms"] == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "p999": None,
        "max": None,
        "mean": None,
    }
    assert out["series"]["t"] == []
    assert out["handshakes_per_s"] is None


def test_percentile_curve_is_monotonic_and_ends_at_max() -> None:
    curve = stats.percentile_curve(stats.merge([worker_a(), worker_b()]).handshake)
    pcts = [p for p, _ in curve]
    values = [v for _, v in curve]
    assert pcts[0] == 0.0 and pcts[-1] == 100.0
    assert pcts == sorted(pcts)
    assert values == sorted(values)
    assert values[-1] == pytest.approx(2000.0, rel=0.001)


@pytest.mark.parametrize(
    ("span", "width"),
    [(1.0, 0.1), (30.0, 0.1), (31.0, 0.25), (72.0, 0.25), (130.0, 0.5), (3600, 30.0)],
)
def test_choose_bucket(span: float, width: float) -> None:
    assert stats.choose_bucket_s(span) == width


def test_latency_is_clamped_into_the_histogram_range() -> None:
    rec = Recorder(bucket_s=1.0)
    rec.record_handshake(done_s=0.0, latency_s=0.0, outcome=OK)
    rec.record_handshake(done_s=0.0, latency_s=10_000.0, outcome=OK)
    assert rec.handshake.get_min_value() == stats.LOWEST_US
    assert rec.handshake.get_total_count() == 2


def test_every_outcome_has_its_time_to_outcome() -> None:
    merged = stats.merge([worker_a(), worker_b()])
    assert set(merged.outcome_latency) == {"504", "refused"}
    out = stats.summary(merged, elapsed_s=61.0)
    assert list(out["outcome_ms"]) == ["101", "504", "refused"]
    assert out["outcome_ms"]["504"]["p50"] == pytest.approx(60_000.0, rel=0.001)
    assert out["outcome_ms"]["refused"]["max"] == pytest.approx(1.0, rel=0.001)
    assert out["outcome_ms"]["101"] == out["handshake_ms"]
    assert out["failed_ms"]["count"] == 2
    assert out["failed_ms"]["max"] == pytest.approx(60_000.0, rel=0.001)
    assert set(out["percentiles"]["outcome_ms"]) == {"101", "504", "refused"}
    # Per bucket: the time to a failure that ended there.
    assert out["series"]["failed_p50_ms"][1] == pytest.approx(1.0, rel=0.01)
    assert out["series"]["failed_p99_ms"][0] is None


def test_time_to_outcome_survives_the_trip_through_json() -> None:
    part = Recorder.from_dict(json.loads(json.dumps(worker_b().to_dict())))
    assert part.outcome_latency["504"].get_total_count() == 1
    assert part.buckets[60].failed is not None
    assert part.buckets[2].failed is None


def test_rare_outcomes_share_one_histogram() -> None:
    rec = Recorder(bucket_s=1.0)
    for i in range(stats.MAX_OUTCOME_HISTOGRAMS + 5):
        rec.record_handshake(done_s=0.0, latency_s=0.01, outcome=f"error E{i}")
    assert len(rec.outcome_latency) == stats.MAX_OUTCOME_HISTOGRAMS + 1
    assert rec.outcome_latency[stats.OTHER].get_total_count() == 5
    assert sum(rec.outcomes.values()) == stats.MAX_OUTCOME_HISTOGRAMS + 5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"5", 5), (" 12 ", 12), (b"0", 0), (b"999999", stats.RETRY_AFTER_MAX_S), (b"-1", None)],
)
def test_retry_after_seconds(value: bytes | str, seconds: int | None) -> None:
    assert stats.retry_after_seconds(value) == seconds


def test_retry_after_http_date_is_not_seconds() -> None:
    assert stats.retry_after_seconds(b"Fri, 31 Dec 1999 23:59:59 GMT") is None


def test_retry_after_values_are_counted_and_merged() -> None:
    a, b = Recorder(bucket_s=1.0), Recorder(bucket_s=1.0)
    for seconds in (3, 3, 4):
        a.record_handshake(0.1, 0.005, "503 overloaded_queue_full", retry_after_s=seconds)
    b.record_handshake(0.2, 0.005, "503 overloaded_queue_full", retry_after_s=9)
    b.record_handshake(0.2, 0.005, "503 (no Retry-After)")
    merged = stats.merge([Recorder.from_dict(json.loads(json.dumps(r.to_dict()))) for r in (a, b)])
    assert stats.summary(merged, 1.0)["retry_after_s"] == {
        "count": 4,
        "min": 3,
        "p50": 3,
        "max": 9,
        "values": {"3": 2, "4": 1, "9": 1},
    }
    assert stats.summary(Recorder(bucket_s=1.0), 0.0)["retry_after_s"]["count"] == 0


def test_a_sliver_of_a_last_bucket_is_folded_into_the_one_before() -> None:
    rec = Recorder(bucket_s=1.0)
    for i in range(20):
        rec.record_handshake(done_s=i / 10, latency_s=0.01, outcome=OK)
    rec.record_handshake(done_s=2.05, latency_s=0.01, outcome=OK)  # the run ends at 2.1 s
    s = stats.series(rec, end_s=2.1)
    assert s["t"] == [0.0, 1.0]
    assert s["width_s"] == [1.0, 1.1]
    assert s["outcomes"]["101"] == [10, 11]
    assert s["ok_per_s"] == [10.0, 10.0]


def test_ideal_for_a_burst_and_a_rate() -> None:
    burst = (0.0,) * 500
    assert stats.ideal_last_success_s(burst, 250.0) == 2.0
    assert stats.ideal_successes(burst, 250.0, [0.0, 1.0, 2.0, 3.0]) == [0, 250, 500, 500]
    # A rate under the capacity: each handshake done as it starts (plus 1/C).
    rate = tuple(i / 10 for i in range(10))
    assert stats.ideal_last_success_s(rate, 100.0) == pytest.approx(0.91)
    assert stats.ideal_successes(rate, 100.0, [0.0, 0.45, 1.0]) == [0, 5, 10]
    # A closed loop always has one waiting: the capacity, up to the limit.
    assert stats.ideal_successes(None, 10.0, [0.0, 1.0, 5.0], limit=30) == [0, 10, 30]
    assert stats.ideal_last_success_s((), 10.0) is None

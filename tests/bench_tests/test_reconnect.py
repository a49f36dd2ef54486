"""Bench S5, the reconnect storm: its bookkeeping fed by hand, and a small real run
through wsgate with wsgate.client clients, where every client must come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bench import reconnect
from bench.reconnect_tally import (
    CAUSES,
    ClientTally,
    cause_of,
    failures_per_second,
    peak_rate,
    per_second,
    summary,
)


def test_causes_of_failure_codes() -> None:
    assert cause_of("http_503", 2.0) == "503_retry_after"
    assert cause_of("http_503", None) == "503"
    assert cause_of("http_429", 1.0) == "other"
    assert cause_of("close_1013", 3.0) == "close_1013"
    assert cause_of("http_502", None) == "502"
    assert cause_of("http_504", None) == "504"
    assert cause_of("unreachable_refused", None) == "refused"
    assert cause_of("unreachable_timeout", None) == "timeout"
    assert cause_of("close_1006", None) == "reset"
    assert cause_of("unreachable_error", None) == "other"


def test_the_drop_is_not_a_failed_attempt_and_hintless_failures_are_counted() -> None:
    tally = ClientTally()
    tally.failed("close_1001", None)  # the backends went away: the drop
    tally.failed("http_503", 4.0)
    tally.failed("http_502", None)
    assert tally.failures == {"503_retry_after": 1, "502": 1}
    assert tally.unexplained == 1
    assert tally.hints_s == [4.0]


def test_summary_against_the_ideal_and_the_peak_of_both_backends() -> None:
    first, second = ClientTally(dropped=True), ClientTally(dropped=True)
    second.failed("close_1013", 2.0)
    second.failed("unreachable_refused", None)
    result = summary(
        [first, second],
        reconnected=2,
        back_at=100.0,
        all_at=103.0,
        capacity_per_s=1.0,
        peak_per_s=peak_rate([{"5": 2, "6": 1}, {"5": 1}]),
    )
    assert result["time_to_all_s"] == 3.0
    assert result["ideal_s"] == 2.0
    assert result["ratio_to_ideal"] == 1.5
    assert (result["failed_mean"], result["failed_max"]) == (1.0, 2)
    assert result["failed_by_cause"] == {"close_1013": 1, "refused": 1}
    assert (result["unexplained"], result["clients_with_unexplained"]) == (1, 1)
    assert result["peak_backend_handshakes_per_s"] == 30.0  # 3 in one 100 ms bucket
    assert result["answered_503_1013_share"] == 0.25  # 1 of 2 failed + 2 successful


def test_handshakes_and_failures_per_second_from_the_restart() -> None:
    # Counts keyed by tenths of a wall-clock second; the restart at 100.25 s.
    first = {"1002": 5, "1003": 2, "1012": 4, "1035": 1}
    second = {"1003": 3, "1009": 1}
    # The tenth the restart falls in counts from the restart.
    assert per_second([first, second], 100.25) == [5 + 2 + 3 + 1, 4, 0, 1]
    failed = [(49.5, "close_1013"), (50.2, "close_1013"), (50.9, "timeout"), (52.0, "503")]
    assert failures_per_second(failed, 50.0) == {
        "-1 close_1013": 1,
        "0 close_1013": 1,
        "0 timeout": 1,
        "2 503": 1,
    }


def test_summary_of_a_run_that_hit_its_deadline() -> None:
    result = summary(
        [ClientTally(dropped=True)],
        reconnected=0,
        back_at=0.0,
        all_at=None,
        capacity_per_s=10.0,
        peak_per_s=0.0,
    )
    assert result["all_reconnected"] is False
    assert result["time_to_all_s"] is None and result["ratio_to_ideal"] is None


@pytest.mark.e2e
@pytest.mark.slow
def test_a_small_reconnect_storm_through_wsgate_with_its_client(tmp_path: Path) -> None:
    n = 40
    reconnect.enough_descriptors(n)
    run = asyncio.run(reconnect.one_run("wsgate", "wsgate", n, tmp_path))
    result = reconnect.measured(run)
    print(result)
    assert result["all_reconnected"] is True, result
    assert result["reconnected"] == n, result
    assert result["time_to_all_s"] is not None and result["time_to_all_s"] >= 0
    assert result["ideal_s"] == round(n / result["capacity_per_s"], 2)
    assert result["ratio_to_ideal"] is not None
    # The restarted backends did every handshake of the second wave, within capacity.
    assert result["peak_backend_handshakes_per_s"] > 0
    assert set(result["failed_by_cause"]) <= set(CAUSES)
    assert result["failed_max"] >= 0 and result["gave_up"] == 0
    # Stopped while they answered: each client met wsgate's hints (503 or 1013) at most
    # a few times; each answer counted as one attempt of the share.
    assert 0.0 <= result["answered_503_1013_share"] <= 1.0
    assert "| time / ideal |" in reconnect.markdown({"wsgate+wsgate": result})

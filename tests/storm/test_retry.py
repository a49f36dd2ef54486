"""The retrying storm's pure parts: the naive policy, the policy per mode, storm outcomes
as failures, the per-client records and their summary, and the CLI flags."""

from __future__ import annotations

import argparse
import random
from collections import Counter
from typing import Any

import pytest
from rich.console import Console

from wsgate.policy.backoff import Backoff, Closed, GiveUp, Refused, Retry, Unreachable
from wsgate.storm import plan
from wsgate.storm.cli import UsageError, build_config, register
from wsgate.storm.client import Target
from wsgate.storm.report_text import print_result, retry_rows
from wsgate.storm.retry import (
    DEFAULT_MAX_ATTEMPTS,
    ClientRecord,
    NaiveRetry,
    failure_of,
    make_policy,
    summary,
)
from wsgate.storm.runner import StormConfig, make_jobs


def test_naive_retries_at_once_and_gives_up_at_max_attempts() -> None:
    policy = NaiveRetry(3)
    first = policy.failed(Refused(503, 10.0), 5.0)  # a hint means nothing to it
    assert first == Retry(at=5.0, delay_s=0.0, attempt=1)
    assert isinstance(policy.failed(Unreachable(), 5.0), Retry)
    assert isinstance(policy.failed(Unreachable(), 5.0), GiveUp)


def test_naive_starts_counting_again_once_connected() -> None:
    policy = NaiveRetry(2)
    policy.failed(Unreachable(), 0.0)
    policy.connected(1.0)
    assert isinstance(policy.failed(Closed(1012), 2.0), Retry)


def test_each_mode_gets_its_policy() -> None:
    rng = random.Random(1)
    assert isinstance(make_policy("naive", rng, 5), NaiveRetry)
    jitter = make_policy("jitter", rng, 5)
    wsgate = make_policy("wsgate", rng, 5)
    assert isinstance(jitter, Backoff) and isinstance(wsgate, Backoff)
    assert not jitter.config.honour_hints
    assert wsgate.config.honour_hints
    assert jitter.config.max_attempts == wsgate.config.max_attempts == 5
    with pytest.raises(ValueError, match="none"):
        make_policy("none", rng, 5)


def test_jitter_ignores_the_hint_that_wsgate_honours() -> None:
    told = Closed(1013, "retry-after=30; cause=overloaded_queue_full")
    jitter = make_policy("jitter", random.Random(1), 5).failed(told, 0.0)
    wsgate = make_policy("wsgate", random.Random(1), 5).failed(told, 0.0)
    assert isinstance(jitter, Retry) and isinstance(wsgate, Retry)
    assert jitter.delay_s <= 0.5
    assert wsgate.delay_s >= 30.0


@pytest.mark.parametrize(
    ("outcome", "retry_after_s", "close", "failure"),
    [
        ("503", 7, None, Refused(503, 7.0)),
        ("503 overloaded_queue_full", 4, None, Refused(503, 4.0, spread_by_server=True)),
        ("429 (no Retry-After)", None, None, Refused(429, None)),
        ("403", None, None, Refused(403, None)),
        ("refused", None, None, Unreachable("refused")),
        ("error ECONNABORTED", None, None, Unreachable("error_ECONNABORTED")),
        ("101 closed 1013", None, (1013, "retry-after=2"), Closed(1013, "retry-after=2")),
    ],
)
def test_storm_outcomes_as_failures(
    outcome: str, retry_after_s: int | None, close: tuple[int, str] | None, failure: object
) -> None:
    assert failure_of(outcome, retry_after_s, close) == failure


def record(
    started: float, connected: float | None, *causes: str, last: float | None = None
) -> ClientRecord:
    rec = ClientRecord(started_at=started)
    for cause in causes:
        rec.attempt()
        rec.failed(cause)
    if connected is not None:
        rec.attempt()
        rec.connected(connected)
        if last is not None:
            rec.attempt()
            rec.connected(last)
    return rec


def test_summary_of_clients() -> None:
    records = [
        record(0.0, 0.5),
        record(0.0, 3.0, "http_503", "close_1013"),
        record(1.0, 2.0, "http_503", last=9.0),
    ]
    got = summary(records, "wsgate")
    assert got["mode"] == "wsgate"
    assert (got["clients"], got["connected"], got["never_connected"], got["gave_up"]) == (
        3,
        3,
        0,
        0,
    )
    assert got["time_until_all_connected_s"] == 3.0
    assert got["last_connected_s"] == 9.0
    assert got["reconnects"] == 1
    assert got["attempts"] == 1 + 3 + 3
    assert got["failed_attempts"] == 3
    assert got["clients_without_failure"] == 1
    assert got["failures_by_cause"] == {"http_503": 2, "close_1013": 1}
    assert got["failed_attempts_per_client"] == {
        "mean": 1.0,
        "p50": 1.0,
        "p90": 2.0,
        "p99": 2.0,
        "max": 2.0,
    }
    assert got["time_to_connected_s"]["max"] == 3.0
    assert got["time_to_connected_s"]["p50"] == 1.0


def test_a_client_that_never_connected_means_never_all_connected() -> None:
    lost = record(0.0, None, "unreachable_refused", "unreachable_refused")
    lost.gave_up = True
    got = summary([record(0.0, 1.0), lost], "naive")
    assert got["time_until_all_connected_s"] is None
    assert (got["never_connected"], got["gave_up"]) == (1, 1)
    rows = dict(retry_rows(got))
    assert rows["  time until all connected"] == "never (1 missing)"
    assert rows["    unreachable_refused"] == "2"


def test_records_cross_the_process_boundary_as_rows() -> None:
    rec = record(0.5, 2.0, "http_503", last=4.0)
    rec.gave_up = False
    again = ClientRecord.from_row(rec.to_row())
    assert again == rec
    assert summary([], "wsgate")["failed_attempts_per_client"]["max"] is None


def test_the_report_shows_time_until_all_connected_and_failures_per_client() -> None:
    got = summary([record(0.0, 1.5, "http_503"), record(0.0, 0.2)], "wsgate")
    rows = dict(retry_rows(got))
    assert rows["clients (wsgate)"] == "2"
    assert rows["  time until all connected"] == "1.50 s"
    assert rows["  failed attempts per client max"] == "1"
    assert retry_rows(None) == []
    result = minimal_result(retry=got)
    console = Console(width=120, record=True)
    print_result(result, console)
    text = console.export_text()
    assert "time until all connected" in text and "http_503" in text


def minimal_result(retry: dict[str, Any] | None) -> dict[str, Any]:
    latency = {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    return {
        "label": "x",
        "url": "ws://127.0.0.1:1/",
        "summary": {
            "started": 2,
            "ok": 2,
            "failed": 0,
            "outcomes": {"101": 2},
            "session_errors": {},
            "handshake_ms": latency,
            "rtt_ms": latency,
            "time_to_last_success_s": 1.5,
            "elapsed_s": 2.0,
            "handshakes_per_s": 1.0,
        },
        "client": {"cpu_s": 0.1, "notes": []},
        "retry": retry,
    }


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["storm", *argv])


def test_the_client_flags_reach_the_config_and_the_jobs() -> None:
    config = build_config(
        parse("ws://127.0.0.1:9/", "--burst", "4", "--client", "wsgate", "--max-attempts", "7")
    )
    assert (config.client_mode, config.max_attempts, config.retry_window_s) == ("wsgate", 7, 120.0)
    assert config.describe()["client_mode"] == "wsgate"
    jobs, _ = make_jobs(config)
    assert all(job.client_mode == "wsgate" and job.max_attempts == 7 for job in jobs)
    one_shot, _ = make_jobs(build_config(parse("ws://127.0.0.1:9/", "--burst", "4")))
    # The retry window is added to the deadline only for clients that retry.
    assert jobs[0].deadline_s == pytest.approx(one_shot[0].deadline_s + 120.0)
    assert one_shot[0].client_mode == "none"


def test_the_default_stays_one_try_each() -> None:
    config = build_config(parse("ws://127.0.0.1:9/", "--burst", "4"))
    assert config.client_mode == "none"
    assert config.describe()["max_attempts"] is None
    assert config.max_attempts == DEFAULT_MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--max-attempts", "3"), "use with --client"),
        (("--retry-for", "10s"), "use with --client"),
        (("--client", "naive", "--max-attempts", "0"), "--max-attempts must be between"),
        (("--client", "naive", "--retry-for", "2h"), "--retry-for must be"),
    ],
)
def test_bad_client_flags(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_config(parse("ws://127.0.0.1:9/", "--burst", "4", *argv))


def test_an_unknown_client_mode_is_refused_by_argparse() -> None:
    with pytest.raises(SystemExit):
        parse("ws://127.0.0.1:9/", "--burst", "1", "--client", "eager")


def test_counter_type_survives_rows() -> None:
    rec = ClientRecord.from_row([0.0, 2, {"http_503": 2}, None, None, 0, True])
    assert isinstance(rec.failures, Counter) and rec.failures["http_503"] == 2


def test_storm_config_default_is_none() -> None:
    config = StormConfig(url="ws://x/", targets=(Target("127.0.0.1", 1),), arrival=plan.Burst(1))
    assert config.client_mode == "none"

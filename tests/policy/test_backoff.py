"""The client's back-off: full jitter under a growing, capped window; server hints as a
floor with a spread; give-up answers; all with a number for `now` and seeded randomness."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from wsgate.policy.backoff import (
    Backoff,
    BackoffConfig,
    Closed,
    GiveUp,
    Refused,
    Retry,
    Unreachable,
    failure_cause,
    parse_retry_after,
)

CONFIG = BackoffConfig(base_s=0.5, cap_s=8.0, hint_spread_ratio=0.5, hint_spread_min_s=1.0)


def retry(decision: GiveUp | Retry) -> Retry:
    assert isinstance(decision, Retry), decision
    return decision


def delays_of_nth_failure(n: int, samples: int, seed: int = 1) -> list[float]:
    """The delay after the n-th failure in a row, for `samples` clients."""
    rng = random.Random(seed)
    out = []
    for _ in range(samples):
        policy = Backoff(CONFIG, rng)
        now = 0.0
        for _ in range(n):
            decision = retry(policy.failed(Unreachable("refused"), now))
            now = decision.at
        out.append(decision.delay_s)
    return out


@pytest.mark.parametrize(("n", "window"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0)])
def test_the_window_doubles_and_the_delay_fills_it(n: int, window: float) -> None:
    delays = delays_of_nth_failure(n, samples=400)
    assert all(0.0 <= d <= window for d in delays)
    # Full jitter: the draws reach both ends of the window, not just its top half.
    assert min(delays) < 0.1 * window
    assert max(delays) > 0.9 * window


def test_the_window_stops_at_the_cap() -> None:
    delays = delays_of_nth_failure(40, samples=200)
    assert all(d <= CONFIG.cap_s for d in delays)
    assert max(delays) > 0.9 * CONFIG.cap_s


def test_a_thousand_failures_in_a_row_do_not_overflow() -> None:
    delays = delays_of_nth_failure(1000, samples=1)
    assert 0.0 <= delays[0] <= CONFIG.cap_s


def test_the_same_seed_gives_the_same_delays() -> None:
    assert delays_of_nth_failure(3, 20, seed=7) == delays_of_nth_failure(3, 20, seed=7)
    assert delays_of_nth_failure(3, 20, seed=7) != delays_of_nth_failure(3, 20, seed=8)


def test_retry_at_is_now_plus_the_delay_and_attempts_count() -> None:
    policy = Backoff(CONFIG, random.Random(3))
    first = retry(policy.failed(Unreachable(), 100.0))
    second = retry(policy.failed(Unreachable(), 200.0))
    assert first.at == 100.0 + first.delay_s
    assert second.at == 200.0 + second.delay_s
    assert (first.attempt, second.attempt, policy.failures_in_row) == (1, 2, 2)
    assert first.hint_s is None


def test_a_503_retry_after_is_a_floor_with_a_spread() -> None:
    policy = Backoff(CONFIG, random.Random(5))
    decision = retry(policy.failed(Refused(503, retry_after_s=6.0), 0.0))
    assert decision.hint_s == 6.0
    assert 6.0 <= decision.delay_s <= 6.0 + 3.0


def test_a_small_hint_still_spreads_over_the_minimum() -> None:
    delays = [
        retry(Backoff(CONFIG, random.Random(i)).failed(Refused(429, 0.0), 0.0)).delay_s
        for i in range(200)
    ]
    assert all(0.0 <= d <= 1.0 for d in delays)
    assert max(delays) > 0.5


def test_a_hint_in_the_close_reason_is_honoured() -> None:
    policy = Backoff(CONFIG, random.Random(5))
    closed = Closed(1013, "retry-after=12; cause=overloaded_queue_full")
    decision = retry(policy.failed(closed, 50.0))
    assert decision.hint_s == 12.0
    # The spread is half the hint, but no more than the cap.
    assert 62.0 <= decision.at <= 62.0 + 6.0


def test_the_spread_is_capped_and_a_huge_hint_is_believed_only_up_to_max_hint() -> None:
    config = BackoffConfig(base_s=0.5, cap_s=4.0, max_hint_s=60.0)
    decision = retry(Backoff(config, random.Random(1)).failed(Refused(503, 100_000.0), 0.0))
    assert 60.0 <= decision.delay_s <= 64.0


def test_a_close_without_hint_backs_off_as_usual() -> None:
    for code in (1001, 1012, 1013, 1006):
        decision = retry(Backoff(CONFIG, random.Random(2)).failed(Closed(code), 0.0))
        assert decision.hint_s is None
        assert 0.0 <= decision.delay_s <= CONFIG.base_s


def test_hints_are_ignored_when_not_honoured() -> None:
    config = BackoffConfig(base_s=0.5, cap_s=8.0, honour_hints=False)
    decision = retry(Backoff(config, random.Random(2)).failed(Refused(503, 30.0), 0.0))
    assert decision.hint_s is None
    assert decision.delay_s <= 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 426])
def test_statuses_where_retrying_cannot_help_give_up(status: int) -> None:
    decision = Backoff(CONFIG, random.Random(1)).failed(Refused(status), 0.0)
    assert isinstance(decision, GiveUp)
    assert str(status) in decision.reason


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_statuses_that_may_pass_are_retried(status: int) -> None:
    assert isinstance(Backoff(CONFIG, random.Random(1)).failed(Refused(status), 0.0), Retry)


def test_the_give_up_list_is_configurable() -> None:
    config = BackoffConfig(give_up_statuses=frozenset({418}), give_up_close_codes=frozenset())
    policy = Backoff(config, random.Random(1))
    assert isinstance(policy.failed(Refused(404), 0.0), Retry)
    assert isinstance(policy.failed(Closed(1008), 0.0), Retry)
    assert isinstance(policy.failed(Refused(418), 0.0), GiveUp)


def test_a_policy_violation_gives_up_unless_it_says_when_to_come_back() -> None:
    refused = Backoff(CONFIG, random.Random(1)).failed(Closed(1008, "banned"), 0.0)
    assert isinstance(refused, GiveUp)
    assert "1008 (banned)" in refused.reason
    limited = Closed(1008, "retry-after=3; cause=rate_limited")
    assert retry(Backoff(CONFIG, random.Random(1)).failed(limited, 0.0)).hint_s == 3.0


def test_max_attempts_gives_up_at_n_and_not_before() -> None:
    policy = Backoff(BackoffConfig(max_attempts=3), random.Random(1))
    assert isinstance(policy.failed(Unreachable(), 0.0), Retry)
    assert isinstance(policy.failed(Unreachable(), 1.0), Retry)
    decision = policy.failed(Unreachable("timeout"), 2.0)
    assert isinstance(decision, GiveUp)
    assert "unreachable_timeout" in decision.reason


def test_a_stable_connection_resets_the_count_and_a_brief_one_does_not() -> None:
    policy = Backoff(CONFIG, random.Random(1))
    for now in (0.0, 1.0, 2.0):
        policy.failed(Unreachable(), now)
    policy.connected(10.0)
    policy.failed(Closed(1013), 10.1)  # accepted then closed at once: an overload answer
    assert policy.failures_in_row == 4
    policy.connected(20.0)
    policy.failed(Closed(1006), 20.0 + CONFIG.stable_after_s)
    assert policy.failures_in_row == 1


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="base_s"):
        BackoffConfig(base_s=0.0)
    with pytest.raises(ValueError, match="base_s"):
        BackoffConfig(base_s=2.0, cap_s=1.0)
    with pytest.raises(ValueError, match="max_attempts"):
        BackoffConfig(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        BackoffConfig(hint_spread_ratio=-1.0)


def test_first_retries_of_a_thousand_clients_told_ten_seconds_spread_over_the_window() -> None:
    """1,000 clients closed at the same instant with retry-after=10 come back over
    [10, 15] (spread = half the hint), each second of it getting about a fifth."""
    rng = random.Random(2024)
    told_at = 1_000.0
    closed = Closed(1013, "retry-after=10")
    retries = [retry(Backoff(CONFIG, rng).failed(closed, told_at)).at for _ in range(1000)]
    assert min(retries) >= told_at + 10.0
    assert max(retries) <= told_at + 15.0
    per_second = Counter(int(at - told_at) for at in retries)
    assert sorted(per_second) == [10, 11, 12, 13, 14]
    # Flat-ish: each second expects 200; the bounds are wide enough for any fair seed.
    assert all(130 <= count <= 270 for count in per_second.values()), per_second
    # And not bunched at the start of a second either: halves of the window balance.
    early = sum(1 for at in retries if at - told_at < 12.5)
    assert 400 <= early <= 600


def test_without_hints_the_crowd_spreads_over_the_first_window() -> None:
    rng = random.Random(99)
    retries = [retry(Backoff(CONFIG, rng).failed(Closed(1006), 0.0)).at for _ in range(1000)]
    per_tenth = Counter(int(at * 10) for at in retries)
    assert sorted(per_tenth) == [0, 1, 2, 3, 4]
    assert all(130 <= count <= 270 for count in per_tenth.values()), per_tenth


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12", 12.0),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # 100 s after the epoch, now is 40
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("-3", None),
        ("1.5", None),
        ("", None),
        ("Thu, 01 Jan 1970 00:01:40", None),  # no zone: not an HTTP-date
    ],
)
def test_retry_after_header(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, now_epoch_s=40.0) == seconds


def test_failure_causes_are_short_codes() -> None:
    assert failure_cause(Refused(503, 2.0)) == "http_503"
    assert failure_cause(Closed(1013, "retry-after=1")) == "close_1013"
    assert failure_cause(Unreachable("refused")) == "unreachable_refused"


def test_a_server_that_spreads_its_hints_gets_only_the_minimum_spread_on_top() -> None:
    # wsgate tells each client turned away its own time (and says so with its cause): a
    # spread of half the hint on top would only bring the last client back 50 % late.
    rng = random.Random(7)
    for failure in (
        Closed(1013, "retry-after=10; cause=overloaded_queue_full"),
        Refused(503, 10.0, spread_by_server=True),
    ):
        delays = [retry(Backoff(CONFIG, rng).failed(failure, 0.0)).delay_s for _ in range(500)]
        assert min(delays) >= 10.0 and max(delays) <= 10.0 + CONFIG.hint_spread_min_s
        assert max(delays) - min(delays) > 0.9  # still spread within that second
    plain = [
        retry(Backoff(CONFIG, rng).failed(Refused(503, 10.0), 0.0)).delay_s for _ in range(500)
    ]
    assert max(plain) > 14.0  # a bare Retry-After: the spread of half the hint

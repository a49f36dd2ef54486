"""The runner's pure parts: how a storm is dealt to worker processes."""

from __future__ import annotations

import pytest

from wsgate.storm import plan
from wsgate.storm.client import Target
from wsgate.storm.runner import IDEAL_POINTS, StormConfig, ideal_run, make_jobs
from wsgate.storm.worker import Session

TARGETS = (Target("127.0.0.1", 9001), Target("127.0.0.1", 9002))


def config(arrival: plan.Arrival, workers: int, **kw: object) -> StormConfig:
    return StormConfig(url="ws://x/", targets=TARGETS, arrival=arrival, workers=workers, **kw)  # type: ignore[arg-type]


def test_open_schedule_is_dealt_to_every_worker() -> None:
    jobs, bucket = make_jobs(config(plan.Rate(10.0, 1.0), workers=3, timeout_s=5.0))
    assert [job.index for job in jobs] == [0, 1, 2]
    assert [job.schedule for job in jobs] == [
        (0.0, 0.3, 0.6, 0.9),
        (0.1, 0.4, 0.7),
        (0.2, 0.5, 0.8),
    ]
    assert all(job.workers == 3 and job.targets == TARGETS for job in jobs)
    assert bucket == 0.1  # 0.9 s of arrivals + 5 s timeout fits 300 buckets of 0.1 s
    # The deadline covers the last arrival, its timeout, the session and a margin.
    assert jobs[0].deadline_s == pytest.approx(0.9 + 5.0 + Session().max_duration_s() + 10.0)


def test_workers_beyond_the_schedule_are_not_started() -> None:
    jobs, _ = make_jobs(config(plan.Burst(2), workers=4))
    assert [len(job.schedule or ()) for job in jobs] == [1, 1]


def test_closed_loop_shares_concurrency_and_count() -> None:
    jobs, _ = make_jobs(config(plan.ClosedLoop(5, 10.0, max_count=3), workers=4))
    # Concurrency 2,1,1,1 and counts 1,1,1,0: the fourth worker would have no count left.
    assert [(job.concurrency, job.loop_max_count) for job in jobs] == [(2, 1), (1, 1), (1, 1)]
    assert all(job.schedule is None and job.loop_duration_s == 10.0 for job in jobs)


def test_closed_loop_without_a_count_bounds_by_time_only() -> None:
    jobs, _ = make_jobs(config(plan.ClosedLoop(3, 2.0), workers=2))
    assert [(job.concurrency, job.loop_max_count) for job in jobs] == [(2, 0), (1, 0)]


def test_session_bound() -> None:
    assert (
        Session(messages=3, interval_s=1.0, message_timeout_s=2.0, hold_s=4.0).max_duration_s()
        == 18.0
    )


def test_no_ideal_without_a_capacity() -> None:
    assert ideal_run(config(plan.Burst(10), workers=1), end_s=3.0) is None
    assert config(plan.Burst(10), workers=1).describe()["capacity_per_s"] is None


def test_ideal_of_a_burst() -> None:
    cfg = config(plan.Burst(500), workers=2, capacity_per_s=250.0)
    ideal = ideal_run(cfg, end_s=4.45)
    assert ideal is not None
    assert ideal["capacity_per_s"] == 250.0
    assert ideal["time_to_last_success_s"] == 2.0
    assert ideal["t"][0] == 0.0 and ideal["t"][-1] == 4.45
    assert len(ideal["t"]) == len(ideal["ok_total"]) == IDEAL_POINTS + 1
    assert ideal["ok_total"][-1] == 500
    halfway = ideal["t"].index(next(t for t in ideal["t"] if t >= 1.0))
    assert ideal["ok_total"][halfway] == pytest.approx(250, abs=4)
    assert cfg.describe()["capacity_per_s"] == 250.0


def test_ideal_of_a_closed_loop_stops_at_its_count_or_duration() -> None:
    by_count = ideal_run(config(plan.ClosedLoop(4, 10.0, 30), workers=1, capacity_per_s=10.0), 5)
    assert by_count is not None and by_count["time_to_last_success_s"] == 3.0
    by_time = ideal_run(config(plan.ClosedLoop(4, 2.0), workers=1, capacity_per_s=10.0), 5)
    assert by_time is not None and by_time["ok_total"][-1] == 20

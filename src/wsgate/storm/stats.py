"""Storm statistics: outcome counts, HDR latency histograms and time series.

Pure: callers pass times (seconds from the storm's start) and latencies in; nothing here
reads a clock or a socket. Each worker fills a `Recorder`, sends `to_dict()` to the parent,
which rebuilds them with `Recorder.from_dict` and `merge`s them; `summary` then gives the
figures a report shows. Histograms hold microseconds.

Every handshake's time to its outcome is kept, failures too (a 503 after 5 ms and a timeout
after 60 s are different news): `handshake` holds the 101s, `outcome_latency` one histogram
per other outcome. `ideal_successes` is the bar a run is held to when the target's capacity
is known.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: any latency a bounded storm can see
DIGITS = 3  # whole-run histograms: 0.1 % resolution
BUCKET_DIGITS = 2  # per-time-bucket histograms: 1 % is plenty for a plot, 8x less memory
MAX_BUCKETS = 300
BUCKET_CHOICES_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_OUTCOME_HISTOGRAMS = 24  # time-to-outcome histograms; rarer outcomes share OTHER
OTHER = "(other outcomes)"
RETRY_AFTER_MAX_S = 86_400  # a Retry-After above a day is counted as a day
# A last time bucket that the run covers less than this share of is folded into the one
# before it: its rate over a sliver of time would be a spike, over the whole width a drop.
MIN_LAST_BUCKET_SHARE = 0.2

OK = "101"
REFUSED = "refused"  # connect refused: nothing listens, or the backlog overflowed
RESET = "reset"  # connection reset before a complete response head
TIMEOUT = "timeout"  # no complete response head within the storm's timeout
CLOSED = "closed"  # the peer closed cleanly before a complete response head
BAD_RESPONSE = "bad_response"  # bytes that are not an HTTP/1.1 response head
BAD_ACCEPT = "bad_accept"  # 101 with a Sec-WebSocket-Accept that does not match the key


# Statuses that tell a client when to come back (RFC 9110 10.2.3, RFC 6585 4).
RETRY_STATUSES = frozenset({429, 503})
NO_RETRY_AFTER = "(no Retry-After)"


def status_outcome(status: int, cause: str | None = None, retry_after: bool = True) -> str:
    """The outcome key of a response: "101", "503", or "502 upstream_connect_timeout"
    when a wsgate gateway named its cause in X-Wsgate-Cause. A 429 or 503 without a
    Retry-After is marked, since its clients are left to come back all at once."""
    if status == 101:
        return OK
    key = f"{status} {cause}" if cause else str(status)
    if status in RETRY_STATUSES and not retry_after:
        key += " " + NO_RETRY_AFTER
    return key


def retry_after_seconds(value: bytes | str) -> int | None:
    """The delta-seconds of a Retry-After field (RFC 9110 10.2.3), capped at a day; None for
    an HTTP-date or garbage (wsgate, nginx and HAProxy send seconds)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.isdigit() or not text.isascii():
        return None
    return min(int(text), RETRY_AFTER_MAX_S)


def outcome_sort_key(outcome: str) -> tuple[int, str]:
    """101 first, then statuses in order, then transport failures."""
    head = outcome.split(" ", 1)[0]
    return (0 if outcome == OK else 1 if head.isdigit() else 2, outcome)


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def to_us(seconds: float) -> int:
    return min(max(round(seconds * 1_000_000), LOWEST_US), HIGHEST_US)


def choose_bucket_s(span_s: float) -> float:
    """The smallest time bucket that keeps a storm of `span_s` to at most MAX_BUCKETS."""
    for choice in BUCKET_CHOICES_S:
        if span_s / choice <= MAX_BUCKETS:
            return choice
    return BUCKET_CHOICES_S[-1]


@dataclass
class Bucket:
    """What completed during one time bucket."""

    outcomes: Counter[str] = field(default_factory=Counter)
    handshake: HdrHistogram = field(default_factory=lambda: new_histogram(BUCKET_DIGITS))
    messages: int = 0
    rtt: HdrHistogram | None = None  # made on the first round trip: most storms have none
    failed: HdrHistogram | None = None  # time to a failed outcome; made on the first failure


@dataclass
class Recorder:
    """One worker's (or, after `merge`, the whole storm's) measurements."""

    bucket_s: float
    handshake: HdrHistogram = field(default_factory=new_histogram)
    rtt: HdrHistogram = field(default_factory=new_histogram)
    outcomes: Counter[str] = field(default_factory=Counter)
    session_errors: Counter[str] = field(default_factory=Counter)
    buckets: dict[int, Bucket] = field(default_factory=dict)
    # Time to outcome of every outcome but 101 (which `handshake` holds), by outcome.
    outcome_latency: dict[str, HdrHistogram] = field(default_factory=dict)
    retry_after: Counter[int] = field(default_factory=Counter)  # seconds -> answers
    started: int = 0
    last_success_s: float | None = None
    last_done_s: float | None = None

    def _bucket(self, at_s: float) -> Bucket:
        index = max(int(at_s // self.bucket_s), 0)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket()
        return bucket

    def record_start(self) -> None:
        self.started += 1

    def record_handshake(
        self, done_s: float, latency_s: float, outcome: str, retry_after_s: int | None = None
    ) -> None:
        """One handshake attempt ended at `done_s` after `latency_s`, with `outcome` (and a
        `Retry-After` of `retry_after_s`, see `retry_after_seconds`). A 101's latency goes
        to `handshake`, any other's to that outcome's time-to-outcome histogram, so the
        handshake p99 is never a timeout and a fast 503 is still seen."""
        self.outcomes[outcome] += 1
        bucket = self._bucket(done_s)
        bucket.outcomes[outcome] += 1
        value = to_us(latency_s)
        if outcome == OK:
            bucket.handshake.record_value(value)
            self.handshake.record_value(value)
            self.last_success_s = max(self.last_success_s or 0.0, done_s)
        else:
            self._outcome_histogram(outcome).record_value(value)
            if bucket.failed is None:
                bucket.failed = new_histogram(BUCKET_DIGITS)
            bucket.failed.record_value(value)
        if retry_after_s is not None:
            self.retry_after[min(max(int(retry_after_s), 0), RETRY_AFTER_MAX_S)] += 1
        self.last_done_s = max(self.last_done_s or 0.0, done_s)

    def _outcome_histogram(self, outcome: str) -> HdrHistogram:
        hist = self.outcome_latency.get(outcome)
        if hist is None:
            if len(self.outcome_latency) >= MAX_OUTCOME_HISTOGRAMS:
                outcome = OTHER
                hist = self.outcome_latency.get(OTHER)
            if hist is None:
                hist = self.outcome_latency[outcome] = new_histogram()
        return hist

    def record_rtt(self, done_s: float, rtt_s: float) -> None:
        value = to_us(rtt_s)
        self.rtt.record_value(value)
        bucket = self._bucket(done_s)
        bucket.messages += 1
        if bucket.rtt is None:
            bucket.rtt = new_histogram(BUCKET_DIGITS)
        bucket.rtt.record_value(value)

    def record_session_error(self, kind: str) -> None:
        """A failure after the 101: a lost echo, a close before the messages were done."""
        self.session_errors[kind] += 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and pickle-safe form (histograms in their compressed HDR encoding)."""
        return {
            "bucket_s": self.bucket_s,
            "handshake": _encode(self.handshake),
            "rtt": _encode(self.rtt),
            "outcomes": dict(self.outcomes),
            "session_errors": dict(self.session_errors),
            "outcome_latency": {name: _encode(h) for name, h in self.outcome_latency.items()},
            "retry_after": {str(seconds): n for seconds, n in self.retry_after.items()},
            "started": self.started,
            "last_success_s": self.last_success_s,
            "last_done_s": self.last_done_s,
            "buckets": {
                str(index): {
                    "outcomes": dict(bucket.outcomes),
                    "handshake": _encode(bucket.handshake),
                    "messages": bucket.messages,
                    "rtt": _encode(bucket.rtt) if bucket.rtt is not None else None,
                    "failed": _encode(bucket.failed) if bucket.failed is not None else None,
                }
                for index, bucket in self.buckets.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recorder:
        recorder = cls(
            bucket_s=float(data["bucket_s"]),
            handshake=HdrHistogram.decode(data["handshake"]),
            rtt=HdrHistogram.decode(data["rtt"]),
            outcomes=Counter(data["outcomes"]),
            session_errors=Counter(data["session_errors"]),
            outcome_latency={
                name: HdrHistogram.decode(raw)
                for name, raw in data.get("outcome_latency", {}).items()
            },
            retry_after=Counter({int(s): int(n) for s, n in data.get("retry_after", {}).items()}),
            started=int(data["started"]),
            last_success_s=data["last_success_s"],
            last_done_s=data["last_done_s"],
        )
        for index, raw in data["buckets"].items():
            recorder.buckets[int(index)] = Bucket(
                outcomes=Counter(raw["outcomes"]),
                handshake=HdrHistogram.decode(raw["handshake"]),
                messages=int(raw["messages"]),
                rtt=HdrHistogram.decode(raw["rtt"]) if raw["rtt"] else None,
                failed=HdrHistogram.decode(raw["failed"]) if raw.get("failed") else None,
            )
        return recorder


def _encode(histogram: HdrHistogram) -> str:
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def _max_opt(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


def _add_opt(into: HdrHistogram | None, part: HdrHistogram | None) -> HdrHistogram | None:
    """`into` plus `part`, either of which may not exist yet (per-bucket histograms)."""
    if part is None:
        return into
    if into is None:
        into = new_histogram(BUCKET_DIGITS)
    into.add(part)
    return into


def _add_bucket(into: Bucket, part: Bucket) -> None:
    into.outcomes.update(part.outcomes)
    into.handshake.add(part.handshake)
    into.messages += part.messages
    into.rtt = _add_opt(into.rtt, part.rtt)
    into.failed = _add_opt(into.failed, part.failed)


def merge(parts: list[Recorder]) -> Recorder:
    """Add several workers' recorders into one. They must share a bucket width."""
    if not parts:
        raise ValueError("nothing to merge")
    widths = {part.bucket_s for part in parts}
    if len(widths) != 1:
        raise ValueError(f"recorders have different bucket widths: {sorted(widths)}")
    total = Recorder(bucket_s=parts[0].bucket_s)
    for part in parts:
        total.handshake.add(part.handshake)
        total.rtt.add(part.rtt)
        total.outcomes.update(part.outcomes)
        total.session_errors.update(part.session_errors)
        total.started += part.started
        total.retry_after.update(part.retry_after)
        total.last_success_s = _max_opt(total.last_success_s, part.last_success_s)
        total.last_done_s = _max_opt(total.last_done_s, part.last_done_s)
        for name, hist in part.outcome_latency.items():
            mine = total.outcome_latency.get(name)
            if mine is None and len(total.outcome_latency) >= MAX_OUTCOME_HISTOGRAMS:
                name, mine = OTHER, total.outcome_latency.get(OTHER)
            if mine is None:
                mine = total.outcome_latency[name] = new_histogram()
            mine.add(hist)
        for index, bucket in part.buckets.items():
            _add_bucket(total.buckets.setdefault(index, Bucket()), bucket)
    return total


def latency_summary(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """count, and p50/p90/p99/p99.9/max/mean in milliseconds (None when empty)."""
    count = int(histogram.get_total_count())
    out: dict[str, float | int | None] = {"count": count}
    for pct in PERCENTILES:
        key = "p" + f"{pct:g}".replace(".", "")
        out[key] = _ms(histogram.get_value_at_percentile(pct)) if count else None
    out["max"] = _ms(histogram.get_max_value()) if count else None
    out["mean"] = _ms(histogram.get_mean_value()) if count else None
    return out


def percentile_curve(histogram: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, latency ms) points for a percentile chart, denser towards the tail."""
    if histogram.get_total_count() == 0:
        return []
    points: list[tuple[float, float]] = []
    for nines in range(0, 50):
        # 0, 50, 75, 87.5, ... halves the distance to 100 at each step.
        pct = 100.0 * (1.0 - 0.5 ** (nines / 4.0)) if nines else 0.0
        if pct > 99.999:
            break
        points.append((pct, _ms(histogram.get_value_at_percentile(pct))))
    points.append((100.0, _ms(histogram.get_max_value())))
    return points


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3)


def _pct(hist: HdrHistogram | None, p: float) -> float | None:
    if hist is None or hist.get_total_count() == 0:
        return None
    return _ms(hist.get_value_at_percentile(p) if p < 100 else hist.get_max_value())


def _rows(recorder: Recorder, end_s: float | None) -> tuple[list[Bucket], list[float]]:
    """Every bucket from the first to the last that saw anything (empty ones too) and the
    time each covers: the bucket width, but the last one ends at `end_s` (the end of the
    run), and is folded into the one before when that is a sliver of it."""
    width = recorder.bucket_s
    last = max(recorder.buckets)
    empty = Bucket()
    rows = [recorder.buckets.get(index, empty) for index in range(last + 1)]
    widths = [width] * len(rows)
    if end_s is None:
        return rows, widths
    covered = min(max(end_s - last * width, 0.0), width)
    if covered <= 0.0:  # an end before the last outcome: the figures disagree, keep widths
        return rows, widths
    widths[-1] = covered
    if covered < MIN_LAST_BUCKET_SHARE * width and len(rows) > 1:
        folded = Bucket()
        _add_bucket(folded, rows[-2])
        _add_bucket(folded, rows[-1])
        rows[-2:] = [folded]
        widths[-2:] = [width + covered]
    return rows, widths


def series(recorder: Recorder, end_s: float | None = None) -> dict[str, Any]:
    """Per-bucket lists for the plots: time (bucket start, s) and the time each bucket
    covers (`width_s`: the bucket width, but the last bucket ends with the run at `end_s`),
    outcome counts, handshake p50/p99/max (ms, of the 101s that ended in that bucket), the
    time to a failed outcome p50/p99 (ms), and rates per second of the covered time."""
    if not recorder.buckets:
        return {"bucket_s": recorder.bucket_s, "t": [], "width_s": [], "outcomes": {}}
    rows, widths = _rows(recorder, end_s)
    names = sorted(
        {name for bucket in recorder.buckets.values() for name in bucket.outcomes},
        key=outcome_sort_key,
    )
    width = recorder.bucket_s
    return {
        "bucket_s": width,
        "t": [round(index * width, 3) for index in range(len(rows))],
        "width_s": [round(w, 3) for w in widths],
        "outcomes": {name: [row.outcomes.get(name, 0) for row in rows] for name in names},
        "handshake_p50_ms": [_pct(row.handshake, 50) for row in rows],
        "handshake_p99_ms": [_pct(row.handshake, 99) for row in rows],
        "handshake_max_ms": [_pct(row.handshake, 100) for row in rows],
        "failed_p50_ms": [_pct(row.failed, 50) for row in rows],
        "failed_p99_ms": [_pct(row.failed, 99) for row in rows],
        "ok_per_s": [
            round(row.outcomes.get(OK, 0) / w, 3) for row, w in zip(rows, widths, strict=True)
        ],
        "messages_per_s": [round(row.messages / w, 3) for row, w in zip(rows, widths, strict=True)],
        "rtt_p99_ms": [_pct(row.rtt, 99) for row in rows],
    }


def failed_histogram(recorder: Recorder) -> HdrHistogram:
    """Time to outcome of every failed handshake, whatever its outcome."""
    total = new_histogram()
    for hist in recorder.outcome_latency.values():
        total.add(hist)
    return total


def retry_after_summary(values: Counter[int]) -> dict[str, Any]:
    """count, min, p50, max (seconds) and how many answers gave each value."""
    count = sum(values.values())
    if not count:
        return {"count": 0, "min": None, "p50": None, "max": None, "values": {}}
    ordered = sorted(values)
    half, seen, median = (count + 1) // 2, 0, ordered[-1]
    for seconds in ordered:
        seen += values[seconds]
        if seen >= half:
            median = seconds
            break
    return {
        "count": count,
        "min": ordered[0],
        "p50": median,
        "max": ordered[-1],
        "values": {str(seconds): values[seconds] for seconds in ordered},
    }


def summary(recorder: Recorder, elapsed_s: float) -> dict[str, Any]:
    """The figures of a whole run, ready for JSON and the reports."""
    done = sum(recorder.outcomes.values())
    ok = recorder.outcomes.get(OK, 0)
    messages = int(recorder.rtt.get_total_count())
    by_outcome = {OK: recorder.handshake} if ok else {}
    by_outcome.update(recorder.outcome_latency)
    names = sorted(by_outcome, key=outcome_sort_key)
    return {
        "started": recorder.started,
        "completed": done,
        "ok": ok,
        "failed": done - ok,
        "success_ratio": round(ok / done, 6) if done else None,
        "outcomes": dict(sorted(recorder.outcomes.items(), key=lambda kv: outcome_sort_key(kv[0]))),
        "session_errors": dict(sorted(recorder.session_errors.items())),
        "handshake_ms": latency_summary(recorder.handshake),
        "failed_ms": latency_summary(failed_histogram(recorder)),
        "outcome_ms": {name: latency_summary(by_outcome[name]) for name in names},
        "retry_after_s": retry_after_summary(recorder.retry_after),
        "rtt_ms": latency_summary(recorder.rtt),
        "time_to_last_success_s": _round_opt(recorder.last_success_s),
        "time_to_last_outcome_s": _round_opt(recorder.last_done_s),
        "elapsed_s": round(elapsed_s, 3),
        "handshakes_per_s": round(ok / elapsed_s, 3) if elapsed_s > 0 else None,
        "messages_per_s": round(messages / elapsed_s, 3) if elapsed_s > 0 else None,
        "percentiles": {
            "handshake_ms": percentile_curve(recorder.handshake),
            "rtt_ms": percentile_curve(recorder.rtt),
            "outcome_ms": {name: percentile_curve(by_outcome[name]) for name in names},
        },
        "series": series(recorder, elapsed_s if elapsed_s > 0 else None),
    }


def ideal_last_success_s(starts: Sequence[float], capacity_per_s: float) -> float | None:
    """When a target that completes `capacity_per_s` handshakes a second, in order and
    without failing, finishes the last of handshakes started at `starts` (sorted offsets):
    the queue it holds drains at the capacity, so the k-th of n (from 0) is done at the
    latest start's time plus the rest over the capacity, max over k of s_k + (n - k) / C."""
    if not starts or capacity_per_s <= 0:
        return None
    n = len(starts)
    return max(s + (n - k) / capacity_per_s for k, s in enumerate(starts))


def ideal_successes(
    starts: Sequence[float] | None,
    capacity_per_s: float,
    times: Sequence[float],
    limit: float = math.inf,
) -> list[float]:
    """Successes so far at each of `times` (ascending, from 0) for that ideal target: a
    queue fed by `starts` (sorted offsets; None for a closed loop, whose clients always have
    a handshake waiting) that completes `capacity_per_s` a second, at most `limit` in all.
    S(t) = min(A(t), S(t') + C (t - t')) from one time to the next: exact at each time
    for a burst, and for a rate as fine as the times are."""
    out: list[float] = []
    done, before = 0.0, 0.0
    for now in times:
        arrived = limit if starts is None else float(bisect.bisect_right(starts, now))
        done = min(arrived, limit, done + capacity_per_s * max(now - before, 0.0))
        out.append(round(done, 3))
        before = now
    return out


def _round_opt(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 3)

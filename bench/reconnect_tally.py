"""S5's bookkeeping, pure: what each client's failed attempts were, and the figures of a
run (time to all reconnected against the ideal, failures by cause, the backends' peak
handshake rate). No clock and no sockets: the scenario passes times and counts in."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The causes S5 reports, in the order of its table.
CAUSES = (
    "503_retry_after",
    "503",  # without a Retry-After (HAProxy's answer when no server is up)
    "close_1013",
    "refused",
    "reset",
    "502",
    "504",
    "timeout",
    "other",
)
BUCKETS_PER_S = 10  # the backends count handshakes per 100 ms


def cause_of(code: str, hint_s: float | None) -> str:
    """One of CAUSES for a failure code of `wsgate.policy.backoff.failure_cause`
    (`http_503`, `close_1013`, `unreachable_refused`, ...) and the server's hint."""
    if code == "http_503":
        return "503" if hint_s is None else "503_retry_after"
    if code == "close_1013":
        return "close_1013"
    if code in ("http_502", "http_504"):
        return code.removeprefix("http_")
    if code in ("unreachable_refused", "unreachable_reset", "unreachable_timeout"):
        return code.removeprefix("unreachable_")
    if code == "close_1006":  # ended without a close frame: a reset seen after the 101
        return "reset"
    return "other"


@dataclass
class ClientTally:
    """One client's attempts after the backends went away. The drop itself (its open
    connection closing as the backends stop) is not a failed attempt."""

    dropped: bool = False
    failures: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)  # as failure_cause writes them
    hints_s: list[float] = field(default_factory=list)
    unexplained: int = 0
    connected_at: float | None = None  # the last time a connection opened
    open: bool = False
    gave_up: bool = False

    def failed(self, code: str, hint_s: float | None) -> None:
        if not self.dropped:
            self.dropped = True
            return
        self.failures[cause_of(code, hint_s)] += 1
        self.codes[code] += 1
        if hint_s is None:
            self.unexplained += 1
        else:
            self.hints_s.append(hint_s)

    @property
    def failed_attempts(self) -> int:
        return sum(self.failures.values())


def peak_rate(backend_buckets: Iterable[Mapping[str, int]]) -> float:
    """The highest handshake rate per second the backends saw together, from their
    per-100-ms counts keyed by the same wall-clock tenths."""
    total: Counter[str] = Counter()
    for buckets in backend_buckets:
        total.update(buckets)
    return float(max(total.values(), default=0) * BUCKETS_PER_S)


def per_second(backend_buckets: Iterable[Mapping[str, int]], start_wall: float) -> list[int]:
    """The handshakes the backends completed together in each second from `start_wall`
    (the restart, on the wall clock the counts are keyed by): where a run lost time."""
    first = int(start_wall * BUCKETS_PER_S)
    seconds: Counter[int] = Counter()
    for buckets in backend_buckets:
        for tenth, count in buckets.items():
            if int(tenth) >= first:
                seconds[(int(tenth) - first) // BUCKETS_PER_S] += count
    return [seconds[k] for k in range(max(seconds, default=-1) + 1)]


def failures_per_second(failed_at: Iterable[tuple[float, str]], start: float) -> dict[str, int]:
    """Failed attempts by second from `start` (the restart; negative: before it) and
    cause, as "SECOND CAUSE": where in a run the failures came."""
    counted: Counter[str] = Counter()
    for at, cause in failed_at:
        counted[f"{math.floor(at - start)} {cause}"] += 1
    return dict(sorted(counted.items(), key=lambda item: int(item[0].split()[0])))


def summary(
    tallies: list[ClientTally],
    *,
    reconnected: int,
    back_at: float,
    all_at: float | None,
    capacity_per_s: float,
    peak_per_s: float,
) -> dict[str, Any]:
    """The figures of one (target, client kind) run. `back_at`: when the restarted
    backends listened again; `all_at`: when the last client was connected again, None
    when the deadline came first."""
    n = len(tallies)
    failed = [t.failed_attempts for t in tallies]
    causes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    hints = sorted(h for t in tallies for h in t.hints_s)
    for t in tallies:
        causes.update(t.failures)
        codes.update(t.codes)
    total_failed = sum(failed)
    unexplained = sum(t.unexplained for t in tallies)
    ideal_s = n / capacity_per_s
    took_s = None if all_at is None else max(all_at - back_at, 0.0)
    hinted = causes["503_retry_after"] + causes["close_1013"]
    attempts = total_failed + reconnected
    return {
        "n": n,
        "reconnected": reconnected,
        "all_reconnected": all_at is not None,
        "time_to_all_s": None if took_s is None else round(took_s, 2),
        "ideal_s": round(ideal_s, 2),
        "ratio_to_ideal": None if took_s is None else round(took_s / ideal_s, 2),
        "failed_mean": round(total_failed / max(n, 1), 2),
        "failed_max": max(failed, default=0),
        "failed_by_cause": {c: causes[c] for c in CAUSES if causes[c]},
        "failed_by_code": dict(codes.most_common()),
        "hints_s": {"count": len(hints), "min": hints[0], "max": hints[-1]} if hints else None,
        "unexplained": unexplained,
        "unexplained_share": round(unexplained / total_failed, 3) if total_failed else 0.0,
        "clients_with_unexplained": sum(1 for t in tallies if t.unexplained),
        "gave_up": sum(1 for t in tallies if t.gave_up),
        "peak_backend_handshakes_per_s": peak_per_s,
        "capacity_per_s": capacity_per_s,
        "answered_503_1013_share": round(hinted / attempts, 3) if attempts else 0.0,
    }

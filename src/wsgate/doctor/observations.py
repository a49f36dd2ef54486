"""What the doctor saw, layer by layer: frozen records with timings, no judgement.

`probe.py` fills these in from real sockets; `verdicts.py` turns them into findings. Tests
build them by hand, so every field is plain data (strings, numbers, tuples).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Bytes of a non-101 answer's body kept as evidence.
BODY_EXCERPT_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Target:
    """The URL being probed, split into what each layer needs."""

    url: str
    host: str
    port: int
    resource: str
    secure: bool

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    """The options the probe ran with (part of the evidence)."""

    timeout_s: float = 10.0
    origin: str | None = None
    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    insecure: bool = False
    cacert: str | None = None
    slow_ms: float = 1000.0
    echo: str | None = None
    idle_s: float | None = None
    idle_bisect: bool = False
    idle_conns: int = 8
    burst: int | None = None
    # --connect-to: (host, port, secure) to send the same request to, for comparison.
    connect_to: tuple[str, int, bool] | None = None


@dataclass(frozen=True, slots=True)
class DnsObs:
    host: str
    addresses: tuple[str, ...]
    ms: float
    error: str = ""
    literal: bool = False


class TcpOutcome(enum.StrEnum):
    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TcpAttempt:
    address: str
    port: int
    outcome: TcpOutcome
    ms: float
    error: str = ""


class TlsFailure(enum.StrEnum):
    UNTRUSTED = "untrusted"
    EXPIRED = "expired"
    HOSTNAME = "hostname"
    NO_ALPN = "no_alpn"
    HANDSHAKE = "handshake"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class TlsObs:
    ms: float
    version: str = ""
    alpn: str | None = None
    verified: bool = False
    cert_subject: str = ""
    cert_not_after: str = ""
    # Days until notAfter when verified; None when unknown.
    days_left: float | None = None
    failure: TlsFailure | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None


class AnswerKind(enum.StrEnum):
    RESPONSE = "response"  # a status line and a complete head
    EOF = "eof"  # closed before a complete head
    RESET = "reset"  # TCP reset before a complete head
    TIMEOUT = "timeout"  # nothing complete before the timeout
    GARBAGE = "garbage"  # bytes that are not an HTTP/1.x response


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to one upgrade request (or its absence)."""

    kind: AnswerKind
    elapsed_ms: float
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    ttfb_ms: float | None = None
    received_bytes: int = 0
    error: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class UpgradeObs:
    """The parts of a 101 answer that RFC 6455 section 4.1 asks the client to check."""

    accept_expected: str
    accept_received: str | None
    upgrade: str | None
    connection: str | None
    subprotocols_offered: tuple[str, ...] = ()
    subprotocol: str | None = None
    extensions: str | None = None


@dataclass(frozen=True, slots=True)
class PingObs:
    ok: bool
    ms: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class EchoObs:
    sent: str
    ok: bool
    ms: float
    received: str | None = None


@dataclass(frozen=True, slots=True)
class CloseObs:
    ms: float
    clean: bool
    code: int | None = None
    error: str = ""


class IdleEnd(enum.StrEnum):
    SURVIVED = "survived"  # quiet for the whole span, then a ping got its pong
    CLOSE_FRAME = "close_frame"  # the other side sent a close frame
    EOF = "eof"  # TCP closed without a close frame
    RESET = "reset"  # TCP reset
    SILENT = "silent"  # no EOF, but no pong after the span: dropped on the way
    FAILED = "failed"  # the connection could not be opened


@dataclass(frozen=True, slots=True)
class IdleSpan:
    """One connection held quiet for `span_s`; `ended_s` is when the cut was seen."""

    span_s: float
    end: IdleEnd
    ended_s: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    error: str = ""
    # Pings the server sent during the span: they keep proxies' idle timers from firing.
    server_pings: int = 0
    # Of those, pings with wsgate's keepalive payload: a gateway on the way keeps the
    # connection alive, whatever the application does.
    keepalive_pings: int = 0

    @property
    def cut(self) -> bool:
        return self.end in (IdleEnd.CLOSE_FRAME, IdleEnd.EOF, IdleEnd.RESET, IdleEnd.SILENT)


@dataclass(frozen=True, slots=True)
class IdleObs:
    requested_s: float
    spans: tuple[IdleSpan, ...]
    bisect: bool = False
    ms: float = 0.0

    @property
    def first_cut(self) -> IdleSpan | None:
        """The cut seen earliest (by its time), or None when every span survived."""
        cuts = [span for span in self.spans if span.cut]
        if not cuts:
            return None
        return min(cuts, key=lambda s: s.ended_s if s.ended_s is not None else s.span_s)

    @property
    def longest_survived_s(self) -> float | None:
        alive = [span.span_s for span in self.spans if span.end is IdleEnd.SURVIVED]
        return max(alive) if alive else None


@dataclass(frozen=True, slots=True)
class BurstObs:
    """N simultaneous handshakes against one single handshake's time."""

    n: int
    outcomes: tuple[tuple[str, int], ...]
    p50_ms: float
    p95_ms: float
    max_ms: float
    single_ms: float
    ms: float

    @property
    def failures(self) -> int:
        return sum(count for outcome, count in self.outcomes if outcome != "101")


@dataclass(frozen=True, slots=True)
class CompareObs:
    """The same upgrade request sent to --connect-to, for comparison."""

    target: str
    answer: Answer | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class QuietObs:
    """After a connection dropped without a status: a second TCP connection that sends
    nothing for up to `waited_s`. A server waits for the request; a TCP-level proxy whose
    own backend is down closes it anyway (`closed`, after `ms`)."""

    waited_s: float
    closed: bool
    ms: float
    reset: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observations:
    target: Target
    settings: Settings = field(default_factory=Settings)
    dns: DnsObs | None = None
    tcp: tuple[TcpAttempt, ...] = ()
    tls: TlsObs | None = None
    answer: Answer | None = None
    upgrade: UpgradeObs | None = None
    ping: PingObs | None = None
    echo: EchoObs | None = None
    close: CloseObs | None = None
    idle: IdleObs | None = None
    burst: BurstObs | None = None
    compare: CompareObs | None = None
    quiet: QuietObs | None = None
    # Time from TCP connect to the 101 (or other answer), the single-handshake latency.
    handshake_ms: float | None = None


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of `samples` (0 for none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise_burst(
    outcomes: Sequence[tuple[str, float]], single_ms: float, wall_ms: float
) -> BurstObs:
    """Fold (outcome, latency ms) pairs of a burst into counts and percentiles."""
    counts: dict[str, int] = {}
    for outcome, _ in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    latencies = [ms for _, ms in outcomes]
    return BurstObs(
        n=len(outcomes),
        outcomes=tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        max_ms=max(latencies, default=0.0),
        single_ms=single_ms,
        ms=wall_ms,
    )

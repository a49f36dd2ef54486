"""`wsgate doctor URL [options]`: the command line of the doctor.

Exit status: 0 healthy (warnings allowed), 1 at least one error finding, 2 the probe could
not run (bad arguments). The probe's modules are imported inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsgate.errors import InputError

if TYPE_CHECKING:
    from wsgate.doctor.observations import Settings

# Bounds on options, so a typo cannot open a million sockets or hold one for a day.
MAX_TIMEOUT_S = 600.0
MAX_IDLE_S = 3600.0
MAX_BURST = 2000
MAX_IDLE_CONNS = 64


class ArgError(InputError, ValueError):
    """A bad argument, reported as 'wsgate doctor: error: ...' with exit status 2."""


def _positive(kind: str, limit: float) -> Any:
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, not {text!r}") from None
        if not 0 < value <= limit:
            raise argparse.ArgumentTypeError(f"{kind} must be > 0 and <= {limit:g}, not {text}")
        return value

    return check


def _count(kind: str, low: int, high: int) -> Any:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{kind} must be {low}..{high}, not {value}")
        return value

    return check


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="probe a ws:// or wss:// URL layer by layer and explain what fails",
        description="Probe a WebSocket URL layer by layer (DNS, TCP, TLS, upgrade, 101, ping, "
        "close), stop at the first failing layer and name the cause and the fix. "
        "Exit status: 0 healthy, 1 error findings, 2 bad arguments.",
    )
    parser.add_argument("url", help="ws://host[:port]/path or wss://...")
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="extra request header"
    )
    parser.add_argument("--origin", help="Origin header to send")
    parser.add_argument(
        "--subprotocol", action="append", default=[], metavar="NAME", help="offer a subprotocol"
    )
    parser.add_argument(
        "--timeout",
        type=_positive("--timeout", MAX_TIMEOUT_S),
        default=10.0,
        metavar="SECONDS",
        help="bound on every wait (default 10)",
    )
    parser.add_argument("--insecure", action="store_true", help="do not verify certificates")
    parser.add_argument("--cacert", metavar="FILE", help="trust the CA certificates in FILE")
    parser.add_argument(
        "--connect-to",
        metavar="HOST:PORT",
        help="also send the same request to HOST:PORT (e.g. the backend) and compare; "
        "prefix ws:// or wss:// to choose TLS",
    )
    parser.add_argument(
        "--idle",
        type=_positive("--idle", MAX_IDLE_S),
        metavar="SECONDS",
        help="hold the WebSocket quiet this long and report if and when it is cut",
    )
    parser.add_argument(
        "--idle-bisect",
        action="store_true",
        help="with --idle: staggered parallel connections, each quiet for a different span",
    )
    parser.add_argument(
        "--idle-conns",
        type=_count("--idle-conns", 2, MAX_IDLE_CONNS),
        default=8,
        metavar="N",
        help="connections for --idle-bisect (default 8)",
    )
    parser.add_argument(
        "--burst",
        type=_count("--burst", 1, MAX_BURST),
        metavar="N",
        help="open N handshakes at once and compare with a single one",
    )
    parser.add_argument("--echo", metavar="TEXT", help="send TEXT and expect a message back")
    parser.add_argument(
        "--slow-ms",
        type=_positive("--slow-ms", 600_000),
        default=1000.0,
        metavar="MS",
        help="warn when the 101 takes longer (default 1000)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=handle)


def _headers(values: list[str]) -> tuple[tuple[str, str], ...]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in content:
            raise ArgError(f"--header must look like 'Name: value', not {value!r}")
        headers.append((name, content.strip()))
    return tuple(headers)


def parse_connect_to(value: str, secure: bool) -> tuple[str, int, bool]:
    """HOST:PORT, [V6]:PORT, or ws://HOST:PORT / wss://HOST:PORT."""
    text = value
    for scheme, tls in (("ws://", False), ("wss://", True)):
        if text.startswith(scheme):
            text, secure = text[len(scheme) :].rstrip("/"), tls
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ArgError(f"--connect-to must be HOST:PORT, not {value!r}")
    return host, int(port_text), secure


def settings_from(args: argparse.Namespace, secure: bool) -> Settings:
    """The probe's frozen settings from parsed arguments; ArgError on a bad combination."""
    from wsgate.doctor.observations import Settings

    if args.idle_bisect and args.idle is None:
        raise ArgError("--idle-bisect needs --idle SECONDS (the longest span to try)")
    if args.cacert is not None and not Path(args.cacert).is_file():
        raise ArgError(f"--cacert: no such file: {args.cacert}")
    connect_to = parse_connect_to(args.connect_to, secure) if args.connect_to else None
    return Settings(
        timeout_s=args.timeout,
        origin=args.origin,
        subprotocols=tuple(args.subprotocol),
        headers=_headers(args.header),
        insecure=args.insecure,
        cacert=args.cacert,
        slow_ms=args.slow_ms,
        echo=args.echo,
        idle_s=args.idle,
        idle_bisect=args.idle_bisect,
        idle_conns=args.idle_conns,
        burst=args.burst,
        connect_to=connect_to,
    )


def handle(args: argparse.Namespace) -> int:
    # Imported here so that `wsgate lint` or `wsgate serve` never load the probe.
    from wsgate.doctor import progress, report, runner
    from wsgate.doctor.probe import parse_target
    from wsgate.doctor.verdicts import diagnose

    try:
        target = parse_target(args.url)
        settings = settings_from(args, target.secure)
    except ValueError as exc:
        print(f"wsgate doctor: error: {exc}", file=sys.stderr)
        return 2
    # Bars on stderr only while it is a terminal: pipes and --json get no extra bytes.
    with progress.terminal() as bars:
        observations = runner.run_sync(target, settings, bars)
    diagnosis = diagnose(observations)
    if args.json:
        print(report.to_json(target.url, diagnosis))
    else:
        print(report.to_text(target.url, diagnosis))
    return 0 if diagnosis.ok else 1

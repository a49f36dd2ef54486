"""`wsgate storm`: flags -> a checked `StormConfig`, then run it or compare two results.

Bad arguments print one line and exit 2. Targets must be loopback (127.0.0.0/8, ::1,
localhost) unless `--allow-remote` is given: a storm is an attack on anything else.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wsgate.errors import InputError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class UsageError(InputError, ValueError):
    """A flag or URL the storm cannot use; the message is shown as is."""


def parse_duration(text: str) -> float:
    """ "10", "10s", "250ms", "2m" -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"not a duration: {text!r} (examples: 10, 10s, 250ms, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_rate(text: str) -> float:
    """ "100", "100/s", "6000/m" -> per second."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if per is None or value < 0:
        raise UsageError(f"not a rate: {text!r} (examples: 100, 100/s, 6000/m)")
    return value / per


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n"):
        raise UsageError(f"not a header: {text!r} (expected 'Name: value')")
    return name.strip(), value.strip()


def resolve_target(url: str, allow_remote: bool) -> tuple[str, int, str, str]:
    """(address to connect to, port, path with query, Host header) of a ws:// URL.

    Only loopback is allowed without `allow_remote`; names other than localhost are not
    even resolved then, so no DNS query leaves the machine either."""
    parts = urlsplit(url)
    if parts.scheme == "wss":
        raise UsageError("wss:// is not supported yet: storm a plain ws:// port")
    if parts.scheme != "ws":
        raise UsageError(f"the URL must start with ws://, got {url!r}")
    host = parts.hostname
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"bad port in {url!r}") from None
    if not host:
        raise UsageError(f"no host in {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    if host == "localhost":
        return "127.0.0.1", port, path, host_header
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return str(address), port, path, host_header
    if not allow_remote:
        raise UsageError(
            f"refusing to storm {host}: only 127.0.0.0/8, ::1 and localhost are allowed "
            "without --allow-remote (a storm against someone else's host is an attack)"
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve {host}: {exc}") from None
    return str(infos[0][4][0]), port, path, host_header


def register(subparsers: Any) -> None:
    """Add `storm` to the `wsgate` command."""
    p = subparsers.add_parser(
        "storm",
        help="load-test WebSocket handshakes and messages",
        description="Storm a WebSocket endpoint with handshakes (and optional echo "
        "messages), then report outcomes, latency percentiles and time series.",
    )
    p.add_argument(
        "url",
        nargs="*",
        help="ws://HOST:PORT/PATH (loopback only by default); several: round robin",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--burst", type=int, metavar="N", help="N handshakes at once")
    mode.add_argument("--rate", metavar="R", help="R handshakes per second for --duration")
    mode.add_argument("--ramp", metavar="R1:R2", help="rate rising from R1 to R2 over --duration")
    mode.add_argument(
        "--concurrency", type=int, metavar="C", help="closed loop: C clients connecting in turn"
    )
    p.add_argument("--duration", default="10s", help="for --rate, --ramp, --concurrency")
    p.add_argument("--count", type=int, default=0, help="closed loop: stop after N handshakes")
    p.add_argument("--workers", type=int, default=1, help="client processes (default 1)")
    p.add_argument("--messages", type=int, default=0, help="echo round trips per connection")
    p.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    p.add_argument("--interval", default="0", help="pause between messages")
    p.add_argument("--hold", default="0", help="keep each connection open this long")
    p.add_argument("--timeout", default="60s", help="handshake timeout (default 60s)")
    p.add_argument("--message-timeout", default="10s", help="echo timeout (default 10s)")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    p.add_argument("--origin")
    p.add_argument("--subprotocol")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--spacing", choices=("uniform", "poisson"), default="uniform")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--label", default="", help="name of this run in reports")
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a target outside 127.0.0.0/8 and ::1"
    )
    p.add_argument(
        "--compare", nargs=2, metavar=("A.json", "B.json"), help="render two results side by side"
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        if args.compare:
            if args.url:
                raise UsageError("--compare takes two result files, not URLs")
            return _compare(args)
        config = build_config(args)
    except UsageError as exc:
        print(f"wsgate storm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(config, args)


def build_config(args: argparse.Namespace) -> Any:
    from wsgate.storm import plan
    from wsgate.storm.client import Target
    from wsgate.storm.runner import StormConfig
    from wsgate.storm.worker import Session

    if not args.url:
        raise UsageError("give a ws:// URL to storm (or --compare A.json B.json)")
    if len(args.url) > 64:
        raise UsageError("at most 64 URLs")
    headers = tuple(parse_header(h) for h in args.header)
    targets = []
    for url in args.url:
        host, port, path, host_header = resolve_target(url, args.allow_remote)
        targets.append(
            Target(
                connect_host=host,
                port=port,
                path=path,
                host_header=host_header,
                origin=args.origin,
                subprotocol=args.subprotocol,
                headers=headers,
            )
        )
    duration = parse_duration(args.duration)
    arrival: plan.Arrival
    if args.burst is not None:
        arrival = plan.Burst(args.burst)
    elif args.rate is not None:
        arrival = plan.Rate(parse_rate(args.rate), duration)
    elif args.ramp is not None:
        low, sep, high = args.ramp.partition(":")
        if not sep:
            raise UsageError(f"--ramp takes R1:R2, got {args.ramp!r}")
        arrival = plan.Ramp(parse_rate(low), parse_rate(high), duration)
    elif args.concurrency is not None:
        arrival = plan.ClosedLoop(args.concurrency, duration, args.count)
    else:
        raise UsageError("choose one of --burst, --rate, --ramp or --concurrency")
    checks = [
        ("--workers", args.workers, 1, 256),
        ("--messages", args.messages, 0, 1_000_000),
        ("--size", args.size, 1, 16 * 1024 * 1024),
        ("--count", args.count, 0, plan.MAX_CONNECTIONS),
    ]
    for flag, value, low, high in checks:
        if not low <= value <= high:
            raise UsageError(f"{flag} must be between {low} and {high}, got {value}")
    timeout = parse_duration(args.timeout)
    if not 0 < timeout <= 3600:
        raise UsageError("--timeout must be above 0 and at most 1h")
    try:
        plan.validate(arrival)
    except plan.PlanError as exc:
        raise UsageError(str(exc)) from None
    session = Session(
        messages=args.messages,
        size=args.size,
        interval_s=parse_duration(args.interval),
        hold_s=parse_duration(args.hold),
        message_timeout_s=parse_duration(args.message_timeout),
    )
    if session.hold_s > plan.MAX_DURATION_S or session.interval_s > plan.MAX_DURATION_S:
        raise UsageError("--hold and --interval must be at most 1h")
    return StormConfig(
        url=" ".join(args.url),
        targets=tuple(targets),
        arrival=arrival,
        workers=args.workers,
        session=session,
        timeout_s=timeout,
        seed=args.seed,
        spacing=args.spacing,
        label=args.label,
    )


def _run(config: Any, args: argparse.Namespace) -> int:
    from rich.console import Console

    from wsgate.storm import plan, report_text
    from wsgate.storm.runner import StormError, run_storm

    console = Console(stderr=True)
    try:
        result = run_storm(config, console=None if args.quiet else console)
    except plan.PlanError as exc:
        print(f"wsgate storm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StormError as exc:
        print(f"wsgate storm: {exc}", file=sys.stderr)
        return EXIT_FAILED
    report_text.print_result(result, Console())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.html:
        from wsgate.storm import report_html

        Path(args.html).write_text(report_html.render([result]))
    if result["interrupted"]:
        print("wsgate storm: interrupted; the figures cover the part that ran", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from wsgate.storm import report_html, report_text

    results = [load_result(Path(name)) for name in args.compare]
    out = Path(args.html or "storm-compare.html")
    out.write_text(report_html.render(results))
    report_text.print_compare(results, Console())
    print(f"wrote {out}")
    return EXIT_OK


def load_result(path: Path) -> dict[str, Any]:
    from wsgate.storm.runner import RESULT_KIND

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != RESULT_KIND:
        raise UsageError(f"{path} is not a wsgate storm result (--json output)")
    return data

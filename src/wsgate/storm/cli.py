"""`wsgate storm`: flags -> a checked `StormConfig`, then run it or compare two results.

Bad arguments print one line and exit 2, before a single handshake: flags that do not go
together (`--duration` with `--burst`, `--count` without `--concurrency`, run flags with
`--compare`), a mode without what it needs (`--rate`, `--ramp` and `--concurrency` need
`--duration`), and `--json`/`--html` paths that cannot be written. Targets must be loopback
(127.0.0.0/8, ::1, localhost) unless `--allow-remote` is given: a storm is an attack on
anything else.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wsgate.errors import InputError
from wsgate.storm.retry import DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_LIMIT

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
    """(address to connect to, port, path with query, Host header) of a ws:// or wss://
    URL.

    Only loopback is allowed without `allow_remote`; names other than localhost are not
    even resolved then, so no DNS query leaves the machine either."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise UsageError(f"the URL must start with ws:// or wss://, got {url!r}")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
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
        help="ws://HOST:PORT/PATH or wss://... (loopback only by default); several: round robin",
    )
    p.add_argument("--cacert", metavar="FILE", help="wss://: trust the CA certificates in FILE")
    p.add_argument("--insecure", action="store_true", help="wss://: do not verify the certificate")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--burst", type=int, metavar="N", help="N handshakes at once")
    mode.add_argument("--rate", metavar="R", help="R handshakes per second for --duration")
    mode.add_argument("--ramp", metavar="R1:R2", help="rate rising from R1 to R2 over --duration")
    mode.add_argument(
        "--concurrency", type=int, metavar="C", help="closed loop: C clients connecting in turn"
    )
    p.add_argument(
        "--duration", help="how long --rate, --ramp and --concurrency run (required by them)"
    )
    p.add_argument("--count", type=int, help="with --concurrency: stop after N handshakes")
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
    p.add_argument(
        "--capacity",
        metavar="R",
        help="handshakes per second the target can complete, if known (e.g. 250/s): the "
        "report draws the ideal run beside the real one",
    )
    p.add_argument(
        "--client",
        choices=("none", "naive", "jitter", "wsgate"),
        help="clients that retry a failed handshake and reconnect when the server closes "
        "during --hold: naive (at once), jitter (back-off with full jitter, no server "
        "hints), wsgate (wsgate.client's policy: back-off honouring Retry-After and the "
        "1013/1012 retry-after); default none: one try each",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        help=f"with --client: failures in a row before a client gives up "
        f"(default {DEFAULT_MAX_ATTEMPTS})",
    )
    p.add_argument(
        "--retry-for",
        help="with --client: how much longer the storm may run for retries (default 120s)",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a target outside 127.0.0.0/8 and ::1"
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print two results side by side (and with --html PATH, write their report)",
    )
    p.set_defaults(handler=handle)


# Flags that shape a storm: none of them means anything to --compare.
_RUN_FLAGS = (
    "burst",
    "rate",
    "ramp",
    "concurrency",
    "duration",
    "count",
    "capacity",
    "json",
    "client",
    "max_attempts",
    "retry_for",
)


def handle(args: argparse.Namespace) -> int:
    try:
        if args.compare:
            check_compare_args(args)
            return _compare(args)
        config = build_config(args)
        check_outputs(args.json, args.html)
    except UsageError as exc:
        print(f"wsgate storm: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(config, args)


def check_compare_args(args: argparse.Namespace) -> None:
    if args.url:
        raise UsageError("--compare takes two result files, not URLs")
    given = [
        "--" + name.replace("_", "-")
        for name in _RUN_FLAGS
        if getattr(args, name, None) is not None
    ]
    if given:
        raise UsageError(
            f"--compare renders two earlier results; {', '.join(given)} "
            f"{'does' if len(given) == 1 else 'do'} not apply to it"
        )
    check_outputs(None, args.html)
    if args.html:
        out = Path(args.html).resolve()
        for name in args.compare:
            if Path(name).resolve() == out:
                raise UsageError(f"--html {args.html} would overwrite the result {name}")


def check_output_path(flag: str, name: str) -> Path:
    """A path the storm can write its output to once it has run: checked before, so a
    long storm is never lost to a typo in a directory name."""
    path = Path(name)
    parent = path.parent
    if not name or path.is_dir():
        raise UsageError(f"{flag} {name}: is a directory; give a file name")
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{flag} {name}: the directory {parent} {why}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {name}: cannot write this file (permission denied)")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {name}: cannot create files in {parent} (permission denied)")
    return path


def check_outputs(json_path: str | None, html_path: str | None) -> None:
    named = (("--json", json_path), ("--html", html_path))
    paths = [check_output_path(flag, name) for flag, name in named if name]
    if len(paths) == 2 and paths[0].resolve() == paths[1].resolve():
        raise UsageError("--json and --html name the same file")


def _needs_duration(flag: str, example: str) -> UsageError:
    return UsageError(
        f"{flag} needs --duration: how long to run it (e.g. {example} --duration 10s)"
    )


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
    if args.cacert is not None and not Path(args.cacert).is_file():
        raise UsageError(f"--cacert: no such file: {args.cacert}")
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
                tls=urlsplit(url).scheme == "wss",
                server_name=urlsplit(url).hostname or host,
                cafile=args.cacert,
                insecure=args.insecure,
            )
        )
    arrival = build_arrival(args)
    count = args.count or 0
    checks = [
        ("--workers", args.workers, 1, 256),
        ("--messages", args.messages, 0, 1_000_000),
        ("--size", args.size, 1, 16 * 1024 * 1024),
        ("--count", count, 0, plan.MAX_CONNECTIONS),
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
    capacity = parse_rate(args.capacity) if args.capacity is not None else None
    if capacity is not None and not 0 < capacity <= plan.MAX_RATE_PER_S:
        raise UsageError(f"--capacity must be above 0 and at most {plan.MAX_RATE_PER_S:,.0f}/s")
    client_mode, max_attempts, retry_window_s = build_retry(args)
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
        capacity_per_s=capacity,
        client_mode=client_mode,
        max_attempts=max_attempts,
        retry_window_s=retry_window_s,
    )


def build_retry(args: argparse.Namespace) -> tuple[str, int, float]:
    """(client mode, max attempts, retry window) from --client, --max-attempts and
    --retry-for; the last two mean nothing to clients that do not retry."""
    mode = args.client or "none"
    if mode == "none":
        given = [
            flag
            for flag, value in (
                ("--max-attempts", args.max_attempts),
                ("--retry-for", args.retry_for),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"{' and '.join(given)} shape retrying clients: use with --client naive, "
                "jitter or wsgate"
            )
    max_attempts = DEFAULT_MAX_ATTEMPTS if args.max_attempts is None else args.max_attempts
    if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise UsageError(
            f"--max-attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {max_attempts}"
        )
    window = parse_duration(args.retry_for) if args.retry_for is not None else 120.0
    if not 0 < window <= 3600:
        raise UsageError("--retry-for must be above 0 and at most 1h")
    return mode, max_attempts, window


def build_arrival(args: argparse.Namespace) -> Any:
    """The one arrival mode the flags ask for, with the flags it needs and none it ignores."""
    from wsgate.storm import plan

    duration = parse_duration(args.duration) if args.duration is not None else None
    if args.count is not None and args.concurrency is None:
        raise UsageError("--count bounds a closed loop: use it with --concurrency")
    if args.burst is not None:
        if duration is not None:
            raise UsageError(
                "--burst starts all N handshakes at once, so --duration does not apply "
                "(to spread them out use --rate R --duration D)"
            )
        return plan.Burst(args.burst)
    if args.rate is not None:
        rate = parse_rate(args.rate)
        if duration is None:
            raise _needs_duration("--rate", f"--rate {args.rate}")
        return plan.Rate(rate, duration)
    if args.ramp is not None:
        low, sep, high = args.ramp.partition(":")
        if not sep:
            raise UsageError(f"--ramp takes R1:R2, got {args.ramp!r}")
        start, end = parse_rate(low), parse_rate(high)
        if duration is None:
            raise _needs_duration("--ramp", f"--ramp {args.ramp}")
        return plan.Ramp(start, end, duration)
    if args.concurrency is not None:
        if duration is None:
            raise _needs_duration("--concurrency", f"--concurrency {args.concurrency}")
        return plan.ClosedLoop(args.concurrency, duration, args.count or 0)
    raise UsageError("choose one of --burst, --rate, --ramp or --concurrency")


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
    status = EXIT_OK
    if args.json and not write_output(args.json, lambda: json.dumps(result, indent=1) + "\n"):
        status = EXIT_FAILED
    if args.html:
        from wsgate.storm import report_html

        if not write_output(args.html, lambda: report_html.render([result])):
            status = EXIT_FAILED
    if result["interrupted"]:
        print("wsgate storm: interrupted; the figures cover the part that ran", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


def write_output(name: str, render: Any) -> bool:
    """Write what `render()` gives to `name`; a failure (the directory went away during the
    run, a full disk) is one line, and the other output is still written."""
    try:
        Path(name).write_text(render())
    except OSError as exc:
        print(f"wsgate storm: cannot write {name}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from wsgate.storm import report_html, report_text

    results = [load_result(Path(name)) for name in args.compare]
    report_text.print_compare(results, Console())
    if not args.html:
        print("wsgate storm: no --html PATH given: printed the table only", file=sys.stderr)
        return EXIT_OK
    if not write_output(args.html, lambda: report_html.render(results)):
        return EXIT_FAILED
    print(f"wrote {args.html}")
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

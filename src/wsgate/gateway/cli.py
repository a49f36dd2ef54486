"""`wsgate serve`, `wsgate check` and `wsgate demo`."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from wsgate.config import Config, ConfigError, load_config, single_pool_config
from wsgate.config.load import check_admin, parse_address
from wsgate.gateway.launch import raise_open_files_limit, run_one, say
from wsgate.gateway.workers import run_workers
from wsgate.observe.log import FORMATS, LEVELS, JsonLog


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the gateway",
        description="Run the WebSocket-aware reverse proxy. Either --config FILE, or "
        "--listen and --upstream for a zero-config start that sends everything to one pool. "
        "Each flag may come from its environment variable instead (WSGATE_CONFIG, "
        "WSGATE_LISTEN, WSGATE_UPSTREAMS, WSGATE_WORKERS, WSGATE_ADMIN, WSGATE_PID_FILE, "
        "WSGATE_LOG_FORMAT, WSGATE_LOG_LEVEL); the flag wins. SIGTERM drains at a pace, "
        "SIGHUP reloads the config. Exit status: 0 after a drain, 1 when it cannot run "
        "(a port in use, a worker that failed), 2 for a config or usage error.",
    )
    serve.add_argument("--config", "-c", metavar="FILE", help="TOML config file")
    serve.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="address to listen on (repeatable; default 127.0.0.1:8080); with --config, "
        "replaces its [server] listen",
    )
    serve.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="backend of the single pool (repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes sharing the port with SO_REUSEPORT (default 1)",
    )
    serve.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve the admin listener (dashboard, /metrics, /healthz, /readyz, /api) on "
        "this address; overrides [admin] listen. A non-loopback address needs [admin] token",
    )
    serve.add_argument(
        "--pid-file",
        metavar="PATH",
        help="write the gateway's PID here (removed at exit), for `wsgate reload`",
    )
    _log_options(serve, default=None)
    serve.set_defaults(handler=run_serve)

    reload = subparsers.add_parser(
        "reload",
        help="make a running gateway re-read its config (SIGHUP by its pid file)",
        description="Send SIGHUP to the gateway whose PID is in --pid-file (or "
        "WSGATE_PID_FILE): it re-reads its config without closing tunnels. Exit status: 0 "
        "signalled, 1 no such process, 2 no pid file given or readable.",
    )
    reload.add_argument("--pid-file", metavar="PATH", help="the PID file `serve` wrote")
    reload.set_defaults(handler=run_reload)

    upgrade = subparsers.add_parser(
        "upgrade",
        help="hand a running gateway over to the wsgate now installed (SIGUSR2)",
        description="Send SIGUSR2 to the gateway whose PID is in --pid-file (or "
        "WSGATE_PID_FILE): it starts the wsgate now installed with the same command line, "
        "hands it its listening sockets, and drains its own tunnels with 1012 once the new "
        "one listens. Exit status as for reload.",
    )
    upgrade.add_argument("--pid-file", metavar="PATH", help="the PID file `serve` wrote")
    upgrade.set_defaults(handler=run_upgrade)

    check = subparsers.add_parser(
        "check", help="validate a config file", description="Validate a wsgate TOML config."
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=run_check)

    demo = subparsers.add_parser(
        "demo",
        help="the gateway in front of built-in demo backends",
        description="Run the gateway on 127.0.0.1:8080 in front of two demo backends "
        "(echo and a broadcast chat with a web page).",
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="dashboard and admin API port on 127.0.0.1 (default: the gateway port + 1)",
    )
    demo.add_argument(
        "--storm",
        action="store_true",
        help="also run a small storm of handshakes against a slow demo backend, to watch "
        "queueing, shedding and their causes on the dashboard",
    )
    demo.set_defaults(handler=run_demo)


def _log_options(parser: Any, default: str | None = "") -> None:
    """--log-format and --log-level; `default=None` leaves them unset when not given
    (serve fills them from the environment, then json and info)."""
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="json" if default == "" else default,
        help="log lines as JSON objects (default) or key=value text",
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info" if default == "" else default,
        help="the lowest level written (default info: every line)",
    )


def _config_from_args(args: argparse.Namespace) -> Config:
    if args.config:
        if args.upstream:
            raise ConfigError("command line", "", "either --config or --upstream, not both")
        config = load_config(args.config)
        if args.listen:
            config = _listen_instead(config, args.listen)
    elif not args.upstream:
        raise ConfigError(
            "command line", "--upstream", "at least one --upstream HOST:PORT (or --config FILE)"
        )
    else:
        config = single_pool_config(args.listen, args.upstream)
    admin_arg = getattr(args, "admin", None)
    if admin_arg:
        try:
            listen = parse_address(admin_arg)
        except ValueError as exc:
            raise ConfigError("command line", "--admin", str(exc), admin_arg) from None
        admin = dataclasses.replace(config.admin, enabled=True, listen=listen)
        check_admin(admin, "command line", "--admin (with [admin] token)")
        config = dataclasses.replace(config, admin=admin)
    return config


def _listen_instead(config: Config, listen: list[str]) -> Config:
    """The config with --listen (or WSGATE_LISTEN) in place of its [server] listen."""
    replaced = single_pool_config(listen, ["127.0.0.1:1"]).server.listen
    return dataclasses.replace(config, server=dataclasses.replace(config.server, listen=replaced))


def _log(args: argparse.Namespace, config: Config) -> JsonLog:
    return JsonLog(access=config.server.access_log, fmt=args.log_format, level=args.log_level)


def run_check(args: argparse.Namespace) -> int:
    """Load the config as `serve` would (2 when it refuses it), then lint it as
    `wsgate lint` does: its findings are printed below the summary, and an error finding
    fails the check (1); warnings do not."""
    from wsgate.findings.model import Severity
    from wsgate.gateway.tls import check_tls
    from wsgate.lint.engine import lint_config
    from wsgate.lint.loader import load
    from wsgate.lint.model import LintError
    from wsgate.lint.report import render_text

    try:
        config = load_config(args.file)
        check_tls(config)  # the certificates and CA files load, as at start
        findings = lint_config(load(args.file, "wsgate"))
    except (ConfigError, LintError) as exc:
        print(f"wsgate: {exc}", file=sys.stderr)
        return 2
    pools = ", ".join(f"{p.name} ({len(p.backends)} backends)" for p in config.pools.values())
    listen = ", ".join(str(a) for a in config.server.listen)
    summary = f"listen {listen}; pools {pools}; {len(config.routes)} routes"
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if errors:
        print(f"{args.file}: loads, but lint finds {errors} error(s): {summary}")
    elif findings:
        print(f"{args.file}: ok, with {len(findings)} lint finding(s) below: {summary}")
    else:
        print(f"{args.file}: ok: {summary}")
    if findings:
        sys.stdout.write(render_text(findings))
    return 1 if errors else 0


def run_serve(args: argparse.Namespace) -> int:
    from wsgate.gateway.environ import apply_environment

    try:
        apply_environment(args, os.environ)
        config = _config_from_args(args)
    except ConfigError as exc:
        print(f"wsgate: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("wsgate: --workers: expected an integer >= 1", file=sys.stderr)
        return 2
    raise_open_files_limit()
    log = _log(args, config)

    def reloader() -> Config:
        """SIGHUP: the config again, from the same flags and variables as at start."""
        return _config_from_args(args)

    from wsgate.gateway.upgrade import take_inherited

    # A binary upgrade's successor: the listening sockets of the gateway it replaces.
    inherited, upgrade_fd = take_inherited()
    with _pid_file(args.pid_file, later=upgrade_fd is not None) as (written, write_pid):
        if not written:
            return 1
        if args.workers == 1:
            return run_one(
                config,
                log,
                reuse_port=False,
                reloader=reloader,
                notify=True,
                ready_fd=upgrade_fd,
                inherited=inherited,
                on_listening=write_pid,
            )
        return run_workers(config, log, args.workers, reloader)


@contextlib.contextmanager
def _pid_file(
    path: str | None, *, later: bool = False
) -> Iterator[tuple[bool, Callable[[], None]]]:
    """Write this process's PID to `path` for the run: (False when it could not be
    written, a function that writes it). With `later` (a binary upgrade's successor) it
    is written once the gateway listens, by that function: the old gateway's stays until
    then. Removed at exit if it still names this process."""
    if not path:
        yield True, lambda: None
        return
    pid_path = Path(path)

    def write() -> None:
        with contextlib.suppress(OSError):
            pid_path.write_text(f"{os.getpid()}\n")

    if not later:
        try:
            pid_path.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            say(f"wsgate: --pid-file: cannot write {path}: {exc.strerror or exc}")
            yield False, write
            return
    try:
        yield True, write
    finally:
        with contextlib.suppress(OSError):
            if pid_path.read_text().strip() == str(os.getpid()):
                pid_path.unlink()


def run_reload(args: argparse.Namespace) -> int:
    """Signal the gateway named by its pid file to reload its config (SIGHUP)."""
    return _signal_gateway(args, "reload", signal.SIGHUP, "reload_done or reload_failed")


def run_upgrade(args: argparse.Namespace) -> int:
    """Signal the gateway named by its pid file to hand over to the wsgate now installed
    (SIGUSR2)."""
    return _signal_gateway(args, "upgrade", signal.SIGUSR2, "upgrade_handover or upgrade_failed")


def _signal_gateway(
    args: argparse.Namespace, command: str, signum: signal.Signals, lines: str
) -> int:
    path = args.pid_file or os.environ.get("WSGATE_PID_FILE", "")
    if not path:
        say(f"wsgate {command}: --pid-file PATH (or WSGATE_PID_FILE) names the gateway")
        return 2
    try:
        text = Path(path).read_text().strip()
        pid = int(text)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not a PID: {text!r}"
        say(f"wsgate {command}: cannot read {path}: {reason or exc}")
        return 2
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        say(f"wsgate {command}: no process {pid} (from {path}): is the gateway running?")
        return 1
    except PermissionError:
        say(f"wsgate {command}: not allowed to signal process {pid} (from {path})")
        return 1
    print(f"wsgate {command}: {signum.name} sent to {pid}; the gateway logs {lines}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import uvloop

    from wsgate.gateway.demo import run_demo_forever
    from wsgate.gateway.listeners import ListenError

    try:
        uvloop.run(run_demo_forever(args.port, args.admin_port, args.storm))
    except ListenError as exc:  # the gateway's or the admin listener's port is taken
        print(f"wsgate demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a demo backend's
        print(f"wsgate demo: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0

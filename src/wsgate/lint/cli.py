"""`wsgate lint PATH...`: the command line of lint. Exit 0 clean, 1 error findings (or
warnings with --fail-on warning), 2 unreadable or unparsable input (printed as
`file:line: error: message`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
_LEVELS = ("info", "warning", "error")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check nginx, HAProxy, Apache, Caddy or wsgate configs for WebSocket mistakes",
        description="Static checks of proxy configs for the WebSocket mistakes behind "
        "400/502/504 and idle disconnects. Exit status: 0 no error finding, 1 some, "
        "2 unreadable or unparsable input.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="config file(s) to check")
    parser.add_argument(
        "--kind",
        choices=("nginx", "haproxy", "apache", "caddy", "wsgate"),
        help="config kind (default: guessed from the file name and content)",
    )
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    parser.add_argument(
        "--ws-path",
        action="append",
        default=[],
        metavar="PREFIX",
        help="a path prefix that serves WebSockets (repeatable); others are guessed from "
        "upgrade headers and names like ws, socket, cable, hub, realtime",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=1000,
        metavar="N",
        help="concurrent WebSockets the proxy must hold (nginx worker_connections check; "
        "default 1000)",
    )
    parser.add_argument(
        "--min-severity",
        choices=_LEVELS,
        default="info",
        help="hide findings below this level (default: show all)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning"),
        default="error",
        help="exit 1 when a finding of this level or higher is shown (default: error)",
    )
    parser.set_defaults(handler=run)


def _display(path: str) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from wsgate.lint.engine import lint_config
    from wsgate.lint.loader import load
    from wsgate.lint.model import Finding, LintError, Options
    from wsgate.lint.report import render

    if args.capacity < 1:
        print("wsgate lint: --capacity must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = Options(ws_paths=tuple(args.ws_path), capacity=args.capacity)
    floor = _LEVELS.index(args.min_severity)
    findings: list[Finding] = []
    bad_input = False
    files = 0
    for path in args.paths:
        try:
            config = load(path, args.kind)
            found = lint_config(config, options)
        except LintError as exc:
            bad_input = True
            where = f"{_display(exc.file)}:{exc.line}" if exc.line else _display(exc.file)
            print(f"{where}: error: {exc.message}", file=sys.stderr)
            continue
        files += len(config.files)
        findings.extend(
            replace(f, file=_display(f.file))
            for f in found
            if _LEVELS.index(f.severity.value) >= floor
        )
    if files or not bad_input:
        sys.stdout.write(render(findings, args.format, files))
    if bad_input:
        return EXIT_BAD_INPUT
    failing = _LEVELS.index(args.fail_on)
    if any(_LEVELS.index(f.severity.value) >= failing for f in findings):
        return EXIT_FINDINGS
    return EXIT_CLEAN

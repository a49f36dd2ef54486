"""The `wsgate` command: one sub-command per face.

Each face owns a `cli` module with `register(subparsers)`, which adds its sub-commands
and sets `handler` (args -> exit status) on each. Faces import their heavy modules inside
the handler, so `wsgate lint` never pays for uvloop and `wsgate serve` never for crossplane.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from wsgate import __version__

# One line per face; each module provides register(subparsers).
FACES: tuple[str, ...] = (
    "wsgate.gateway.cli",
    "wsgate.lint.cli",
    "wsgate.doctor.cli",
    "wsgate.storm.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgate",
        description="WebSocket gateway, doctor, linter and load generator "
        "that explains every 502/504.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"wsgate {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in FACES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())

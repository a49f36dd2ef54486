"""The `wsgate` command: one sub-command per face.

Each face owns a `cli` module with `register(subparsers)`, which adds its sub-commands
and sets `handler` (args -> exit status) on each. Faces import their heavy modules inside
the handler, so `wsgate lint` never pays for uvloop and `wsgate serve` never for crossplane.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import sys
from collections.abc import Sequence
from typing import Any

from wsgate import BUILD, __version__

# One line per face; each module provides register(subparsers).
FACES: tuple[str, ...] = (
    "wsgate.gateway.cli",
    "wsgate.lint.cli",
    "wsgate.doctor.cli",
    "wsgate.storm.cli",
)


def build_name() -> str:
    """Which build runs: "compiled: mypyc" when the gateway's core was loaded from an
    extension module, else "pure Python" (with the reason when a compiled build exists)."""
    core = importlib.import_module("wsgate.gateway.core")
    if str(getattr(core, "__file__", "")).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return "compiled: mypyc"
    return BUILD if BUILD.startswith("pure Python") else "pure Python"


class VersionAction(argparse.Action):
    """-V/--version: the version and the build; the core is imported only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and the build (compiled or pure Python)")
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"wsgate {__version__} ({build_name()})\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsgate",
        description="WebSocket gateway, doctor, linter and load generator "
        "that explains every 502/504.",
    )
    parser.add_argument("-V", "--version", action=VersionAction)
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

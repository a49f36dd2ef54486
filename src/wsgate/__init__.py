"""wsgate: a WebSocket-aware gateway, doctor, linter and load generator.

Importing the package chooses the build: the pure core compiled with mypyc when
scripts/build_compiled.py has built it into the checkout's build/compiled/ from exactly the
sources there now, else pure Python (always with WSGATE_PURE=1). `BUILD` says which and why.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__version__ = "0.1.0"

SRC_DIR = Path(__file__).resolve().parent.parent
# Where scripts/build_compiled.py builds: only a source checkout has one.
COMPILED_DIR = SRC_DIR.parent / "build" / "compiled"


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules as the extension files of the compiled build."""

    def __init__(self, extensions: dict[str, Path]) -> None:
        self.extensions = extensions

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        file = self.extensions.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def compiled_extensions(compiled_dir: Path, src_dir: Path) -> tuple[dict[str, Path], str]:
    """The compiled build's extension file for each module name, or ({}, why not).

    All or nothing: the compiled modules call each other directly, so one stale module
    would run old code even for its callers. A build is stale when any source it read
    (its stamp lists them with their SHA-256) has changed, or the Python is another."""
    try:
        stamp = json.loads((compiled_dir / "stamp.json").read_text())
        key, extensions, sources = stamp["key"], stamp["extensions"], stamp["sources"]
    except (OSError, ValueError, TypeError, KeyError):
        return {}, "not built (scripts/build_compiled.py)"
    if key.get("python") != sys.version:
        return {}, "built for another Python: rebuild (scripts/build_compiled.py)"
    for name, digest in sources.items():
        try:
            data = (src_dir / name).read_bytes()
        except OSError:
            data = b""
        if hashlib.sha256(data).hexdigest() != digest:
            return {}, f"out of date ({name} changed): rebuild (scripts/build_compiled.py)"
    files = {name: compiled_dir / path for name, path in extensions.items()}
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        return {}, f"incomplete ({missing[0]} missing): rebuild (scripts/build_compiled.py)"
    return files, "compiled: mypyc"


def _choose_build() -> str:
    if os.environ.get("WSGATE_PURE", "") not in ("", "0"):
        return "pure Python: WSGATE_PURE is set"
    files, why = compiled_extensions(COMPILED_DIR, SRC_DIR)
    if not files:
        return f"pure Python: compiled build {why}" if COMPILED_DIR.exists() else "pure Python"
    sys.meta_path.insert(0, CompiledFinder(files))
    return why


# "compiled: mypyc", or "pure Python" and the reason when there is a build that is not used.
BUILD = _choose_build()

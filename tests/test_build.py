"""The optional compiled build (scripts/build_compiled.py, mypyc): it is what runs once built,
`wsgate --version` says which build runs, WSGATE_PURE=1 gives the pure one, and a build
older than its sources is never loaded."""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import wsgate
from wsgate import compiled_extensions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
build_compiled = importlib.import_module("build_compiled")  # a script, not a package

EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)
IO_MODULES = {"asyncio", "socket", "time", "uvloop", "selectors", "ssl", "os", "subprocess"}


def version_line(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "wsgate", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout.strip()


def why_no_compiler() -> str | None:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) on this machine"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python.h for this Python (Debian: python3-dev)"
    return None


@pytest.mark.skipif(bool(os.environ.get("WSGATE_PURE")), reason="WSGATE_PURE=1: the pure run")
def test_the_compiled_build_is_what_runs_once_built() -> None:
    files, why = compiled_extensions(wsgate.COMPILED_DIR, wsgate.SRC_DIR)
    if not files:
        no_compiler = why_no_compiler()
        if no_compiler is not None and not os.environ.get("WSGATE_REQUIRE_COMPILED"):
            pytest.skip(f"{no_compiler}: wsgate runs as pure Python here")
        pytest.fail(f"the compiled build is {why}: run bash scripts/setup.sh")
    assert wsgate.BUILD == "compiled: mypyc"
    for name in files:
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(EXTENSION_SUFFIXES), name
    core = importlib.import_module("wsgate.gateway.core")
    assert str(core.__file__).startswith(str(wsgate.COMPILED_DIR))
    assert version_line({}) == f"wsgate {wsgate.__version__} (compiled: mypyc)"


def test_wsgate_pure_gives_the_pure_build() -> None:
    modules = ("wsgate.gateway.core", "wsgate.policy.retry")
    code = f"import {', '.join(modules)}; print({', '.join(m + '.__file__' for m in modules)})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "WSGATE_PURE": "1"},
    )
    assert [Path(f).suffix for f in done.stdout.split()] == [".py", ".py"]
    expected = f"wsgate {wsgate.__version__} (pure Python: WSGATE_PURE is set)"
    assert version_line({"WSGATE_PURE": "1"}) == expected


def fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree of one module and a build of it: a stamp and an extension file (empty:
    the check reads hashes and paths, it loads nothing)."""
    src, out = tmp_path / "src", tmp_path / "compiled"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("X = 1\n")
    ext = Path("lib/pkg/mod" + EXTENSION_SUFFIXES[0])
    (out / ext).parent.mkdir(parents=True)
    (out / ext).write_bytes(b"")
    stamp = {
        "key": {"python": sys.version},
        "extensions": {"pkg.mod": ext.as_posix()},
        "sources": {"pkg/mod.py": hashlib.sha256(b"X = 1\n").hexdigest()},
    }
    (out / "stamp.json").write_text(json.dumps(stamp))
    return src, out


def test_a_build_matching_its_sources_is_loaded(tmp_path: Path) -> None:
    src, out = fake_build(tmp_path)
    files, why = compiled_extensions(out, src)
    assert why == "compiled: mypyc"
    assert files == {"pkg.mod": out / "lib" / "pkg" / ("mod" + EXTENSION_SUFFIXES[0])}


def test_a_changed_source_makes_the_whole_build_stale(tmp_path: Path) -> None:
    src, out = fake_build(tmp_path)
    (src / "pkg" / "mod.py").write_text("X = 2\n")
    assert compiled_extensions(out, src) == (
        {},
        "out of date (pkg/mod.py changed): rebuild (scripts/build_compiled.py)",
    )


def test_a_removed_source_or_extension_or_another_python_is_not_loaded(tmp_path: Path) -> None:
    src, out = fake_build(tmp_path)
    stamp = json.loads((out / "stamp.json").read_text())
    (out / "stamp.json").write_text(json.dumps({**stamp, "key": {"python": "2.7"}}))
    assert "another Python" in compiled_extensions(out, src)[1]
    (out / "stamp.json").write_text(json.dumps(stamp))
    next((out / "lib").rglob("mod*")).unlink()
    assert compiled_extensions(out, src)[1].startswith("incomplete")
    (src / "pkg" / "mod.py").unlink()
    assert compiled_extensions(out, src)[1].startswith("out of date (pkg/mod.py changed)")
    (out / "stamp.json").unlink()
    assert compiled_extensions(out, src) == ({}, "not built (scripts/build_compiled.py)")


def test_the_compiled_modules_are_the_pure_core() -> None:
    src = ROOT / "src"
    modules = build_compiled.compiled_paths(src)
    for name in ("gateway/core.py", "gateway/exchange.py", "protocol/frames.py"):
        assert f"wsgate/{name}" in modules
    assert not [m for m in modules if m.endswith("__init__.py")]
    for relative in modules:
        found = set()
        for node in ast.walk(ast.parse((src / relative).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
        assert not found & IO_MODULES, f"{relative} imports {sorted(found & IO_MODULES)}"


def test_the_stamp_covers_what_the_compiled_modules_import() -> None:
    src = ROOT / "src"
    sources = build_compiled.source_closure(src, ["wsgate/gateway/core.py"])
    for name in ("wsgate/gateway/core.py", "wsgate/gateway/exchange.py", "wsgate/__init__.py"):
        assert name in sources
    assert "wsgate/gateway/client.py" not in sources  # the adapter is no input of the core


def test_the_bench_guard_fails_past_15_percent_over_the_baseline() -> None:
    from bench import guard

    assert guard.verdict(0.40, 0.40)
    assert guard.verdict(0.40, 0.459)  # +14.75 %
    assert not guard.verdict(0.40, 0.461)  # +15.25 %
    assert guard.verdict(0.40, 0.20)  # cheaper is never a failure


def test_the_committed_baseline_names_machines_and_builds() -> None:
    from bench import guard

    machines = guard.load(guard.BASELINE)["machines"]
    assert machines, "bench/baseline.json holds no machine"
    for entry in machines.values():
        builds = {k: v for k, v in entry.items() if k != "description"}
        assert set(builds) <= {"compiled: mypyc", "pure Python"} and builds
        assert all(b[guard.METRIC] > 0 for b in builds.values())

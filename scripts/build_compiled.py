"""Build wsgate's pure core with mypyc into build/compiled/ (the optional compiled build).

    python scripts/build_compiled.py            build if the sources changed since the last
                                                build; a one-line notice and exit 0 where no C
                                                compiler, Python headers or mypyc is present
    python scripts/build_compiled.py --require  the same, but exit 1 where it cannot build
    python scripts/build_compiled.py --force    build even if the stamp says up to date
    python scripts/build_compiled.py --clean    remove build/compiled/

The extension modules are never written next to the sources: they go to
build/compiled/lib/, with build/compiled/stamp.json naming each module's extension file and
the SHA-256 of every source the build read. `import wsgate` loads the extensions only while
every one of those hashes still matches (wsgate/__init__.py), so an edited core.py runs as
Python until the next build instead of as the old compiled code.

Run by scripts/setup.sh; see pyproject.toml's `compile` extra for what it needs.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
OUT = ROOT / "build" / "compiled"
STAMP_NAME = "stamp.json"
# The shared library of the one mypyc group: wsgate/compiled__mypyc.<suffix>.
GROUP = "wsgate.compiled"
# The hot pure modules: every protocol/ and policy/ module, and the gateway's pure core
# (tests/test_layers.py checks that they import no I/O). Package __init__ files stay
# Python, so their packages keep their plain __path__. gateway/ports.py stays Python too:
# it holds only Protocols, with no code to speed up, and compiled their members do not
# show at run time (tests/gateway/test_ports.py reads them).
COMPILED_GLOBS = ("wsgate/protocol/*.py", "wsgate/policy/*.py")
COMPILED_CORE = (
    "wsgate/gateway/core.py",
    "wsgate/gateway/client_side.py",
    "wsgate/gateway/dispatch.py",
    "wsgate/gateway/exchange.py",
    "wsgate/gateway/backend_choice.py",
    "wsgate/gateway/reader.py",
    "wsgate/gateway/states.py",
    "wsgate/gateway/commands.py",
    "wsgate/gateway/upstream_side.py",
    "wsgate/gateway/intake.py",
    "wsgate/gateway/answers.py",
    "wsgate/gateway/relay.py",
    "wsgate/gateway/router.py",
    "wsgate/gateway/responses.py",
)


def compiled_paths(src: Path) -> list[str]:
    """The modules to compile, as paths relative to `src`."""
    found = {
        path.relative_to(src).as_posix()
        for pattern in COMPILED_GLOBS
        for path in src.glob(pattern)
        if path.name != "__init__.py"
    }
    found.update(relative for relative in COMPILED_CORE if (src / relative).exists())
    return sorted(found)


def module_name(relative: str) -> str:
    return relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def wsgate_imports(src: Path, relative: str) -> set[str]:
    """The wsgate source files that `relative` imports, as paths relative to `src`."""
    found: set[str] = set()
    tree = ast.parse((src / relative).read_text())
    package = module_name(relative).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if not name.startswith("wsgate"):
                continue
            stem = src / name.replace(".", "/")
            for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
                if candidate.exists():
                    found.add(candidate.relative_to(src).as_posix())
    return found


def source_closure(src: Path, roots: list[str]) -> list[str]:
    """`roots` and every wsgate module they import, directly or not, with the packages
    on the way: mypyc may fold another module's Final constants into the compiled code,
    so a change to any of them makes the build stale."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        relative = todo.pop()
        if relative in seen:
            continue
        seen.add(relative)
        parent = Path(relative).parent
        while parent != Path():
            init = (parent / "__init__.py").as_posix()
            if (src / init).exists() and init not in seen:
                todo.append(init)
            parent = parent.parent
        todo.extend(wsgate_imports(src, relative) - seen)
    return sorted(seen)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_key() -> dict[str, str]:
    """What else, besides the sources, makes a build unusable when it changes."""
    import mypy.version

    return {
        "python": sys.version,
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",
        "mypy": mypy.version.__version__,
        "script": sha256(Path(__file__)),
    }


def missing_tools() -> str | None:
    """Why this machine cannot build, or None when it can."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not header.exists():
        return f"no Python headers ({header}; on Debian: apt-get install python3-dev)"
    for module in ("mypyc", "setuptools"):
        if importlib.util.find_spec(module) is None:
            return f"no {module} in this Python (pip install -e '.[compile]')"
    return None


def read_stamp(out: Path) -> dict[str, object] | None:
    try:
        stamp = json.loads((out / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def up_to_date(src: Path, out: Path, modules: list[str], key: dict[str, str]) -> bool:
    stamp = read_stamp(out)
    if stamp is None or stamp.get("key") != key:
        return False
    extensions = stamp.get("extensions")
    sources = stamp.get("sources")
    if not isinstance(extensions, dict) or not isinstance(sources, dict):
        return False
    if sorted(extensions) != sorted([*map(module_name, modules), f"{GROUP}__mypyc"]):
        return False
    if any(not (out / str(path)).exists() for path in extensions.values()):
        return False
    return all(
        (src / name).exists() and sha256(src / name) == digest for name, digest in sources.items()
    )


SETUP_CODE = """
import sys
from setuptools import setup
from mypyc.build import mypycify

group, target_dir, *paths = sys.argv[1:sys.argv.index("--")]
script_args = sys.argv[sys.argv.index("--") + 1:]
setup(
    name="wsgate-compiled",
    ext_modules=mypycify(paths, target_dir=target_dir, group_name=group, opt_level="3"),
    script_args=script_args,
)
"""


def build(src: Path, out: Path, modules: list[str], key: dict[str, str]) -> None:
    """Compile `modules` into out/lib and write the stamp last (a build cut short leaves
    no stamp, so nothing loads it)."""
    sources = {name: sha256(src / name) for name in source_closure(src, modules)}
    (out / STAMP_NAME).unlink(missing_ok=True)
    shutil.rmtree(out / "lib", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix="work-") as work:
        argv = [
            sys.executable,
            "-c",
            SETUP_CODE,
            GROUP,
            str(Path(work) / "c"),
            *modules,
            "--",
            "build_ext",
            "--build-lib",
            str(out / "lib"),
            "--build-temp",
            str(Path(work) / "temp"),
        ]
        # cwd=src: mypy names each path's module from the packages above it.
        result = subprocess.run(argv, cwd=src, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-8000:] + result.stderr[-8000:])
            raise SystemExit(f"build_compiled: mypyc failed (exit {result.returncode})")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    extensions = {}
    for name in [*map(module_name, modules), f"{GROUP}__mypyc"]:
        path = Path("lib", *name.split(".")).with_suffix("").as_posix() + suffix
        if not (out / path).exists():
            raise SystemExit(f"build_compiled: the build made no {path}")
        extensions[name] = path
    stamp = {"key": key, "extensions": extensions, "sources": sources}
    tmp = out / (STAMP_NAME + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / STAMP_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require", action="store_true", help="fail where it cannot build")
    parser.add_argument("--force", action="store_true", help="build even if up to date")
    parser.add_argument("--clean", action="store_true", help="remove the compiled build")
    parser.add_argument("--src", type=Path, default=SRC, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    src, out = args.src.resolve(), args.out.resolve()
    if args.clean:
        shutil.rmtree(out, ignore_errors=True)
        print(f"build_compiled: removed {out}")
        return 0
    why = missing_tools()
    if why is not None:
        print(f"build_compiled: {why}: wsgate runs as pure Python (slower handshakes)")
        return 1 if args.require else 0
    modules = compiled_paths(src)
    key = build_key()
    if not args.force and up_to_date(src, out, modules, key):
        print(f"build_compiled: up to date ({len(modules)} modules compiled with mypyc)")
        return 0
    print(f"build_compiled: compiling {len(modules)} modules with mypyc (a minute or two)")
    build(src, out, modules, key)
    print(f"build_compiled: done: {out / 'lib'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

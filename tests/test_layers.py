"""The design's import rules, checked on the source: no import circle in src/ (imports
under TYPE_CHECKING count: a circle hidden from the run time is still one in the design),
and the pure core of the gateway and the pure layers import no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
IO_MODULES = {"asyncio", "socket", "time", "uvloop", "selectors", "ssl"}
PURE = [
    "wsgate/gateway/core.py",
    "wsgate/gateway/client_side.py",
    "wsgate/gateway/dispatch.py",
    "wsgate/gateway/exchange.py",
    "wsgate/gateway/backend_choice.py",
    "wsgate/gateway/reader.py",
    "wsgate/gateway/states.py",
    "wsgate/gateway/commands.py",
    "wsgate/gateway/ports.py",
    "wsgate/gateway/answers.py",
    "wsgate/gateway/intake.py",
    "wsgate/gateway/upstream_side.py",
    "wsgate/gateway/relay.py",
    "wsgate/policy/backoff.py",
    "wsgate/protocol/close_reason.py",
    "wsgate/storm/retry.py",
    "wsgate/policy/admission.py",
    "wsgate/protocol/frame_relay.py",
    "wsgate/protocol/request.py",
    "wsgate/protocol/limits.py",
    "wsgate/protocol/client_handshake.py",
]


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(path: Path, modules: set[str]) -> set[str]:
    """The wsgate modules `path` imports (a name imported from a package counts as its
    submodule when there is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules}


def test_no_import_circle_in_src() -> None:
    paths = {module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(paths)
    graph = {
        name: {m for m in imports(path, modules) if m != name and not name.startswith(m + ".")}
        for name, path in paths.items()
    }
    # Depth-first search for a back edge; the path to it is the circle.
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


@pytest.mark.parametrize("relative", PURE)
def test_pure_modules_import_no_io(relative: str) -> None:
    path = SRC / relative
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    assert not found & IO_MODULES, f"{relative} imports {sorted(found & IO_MODULES)}"

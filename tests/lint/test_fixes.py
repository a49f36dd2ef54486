"""Every printed fix, applied to the corpus config that triggers it, removes its finding and
brings no new one: fixes must not contradict each other, as nginx_header_inheritance's
"repeat `proxy_set_header Connection upgrade;`" once did with nginx_connection_hardcoded.

A fix is read as its reader would: its backticked config lines go where its words say
(`to location /x`, `to backend b`, the http block for a `map`), `Append X to LINE` appends,
`Move LINE above line N` moves, `Delete`/`Drop`/`Remove` removes the finding's line, and a
fix that says to run `wsgate lint --ws-path P` is applied by linting again with that option.

A fix for a location lint does not take for a WebSocket one (an info, or a warning on a
location that only looks prepared) makes it one: what lint says of the config with
`--ws-path` naming that location may then appear too, so the checks every WebSocket
location gets (a read timeout, say) are not counted as new.
wsgate's own TOML config is left out: its rules (lint/wsgate_conf.py) name keys, not lines.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load
from wsgate.lint.model import Config, Finding, Node, Options

CORPUS = Path(__file__).parent / "corpus"
KINDS = ("nginx", "haproxy", "apache", "caddy")
# Fixes that are advice, not an edit of the file linted, and why.
ADVICE = {
    ("apache_wstunnel_missing", "Lint the main config"): "the modules are loaded elsewhere",
}
_TICKS = re.compile(r"`([^`]+)`")


def main_files(kind: str) -> list[Path]:
    """The files lint is pointed at: included ones (conf.d/, sites-enabled/) are reached
    through their main file."""
    root = CORPUS / kind
    included = {"conf.d", "sites-enabled"}
    return sorted(p for p in root.iterdir() if p.is_file() and p.parent.name not in included)


def cases() -> Iterator[pytest.ParameterSet]:
    for kind in KINDS:
        for path in main_files(kind):
            for index, found in enumerate(lint_config(load(str(path)))):
                name = f"{path.relative_to(CORPUS)}:{found.line}:{found.code}"
                yield pytest.param(kind, path, index, id=f"{name}#{index}")


@dataclass(frozen=True)
class Edit:
    file: str
    line: int  # 1-based; 0 with "after" inserts at the top
    action: str  # "replace", "after", "delete"
    text: tuple[str, ...] = ()


def apply(edits: list[Edit]) -> None:
    by_file: dict[str, list[Edit]] = {}
    for edit in edits:
        by_file.setdefault(edit.file, []).append(edit)
    order = {"replace": 0, "delete": 1, "after": 2}
    for file, todo in by_file.items():
        lines = Path(file).read_text().splitlines()
        for edit in sorted(todo, key=lambda e: (-e.line, order[e.action])):
            if edit.action == "replace":
                lines[edit.line - 1 : edit.line] = list(edit.text)
            elif edit.action == "delete":
                del lines[edit.line - 1]
            else:
                lines[edit.line : edit.line] = list(edit.text)
        Path(file).write_text("\n".join(lines) + "\n")


def indent_of(node: Node) -> str:
    line = Path(node.file).read_text().splitlines()[node.line - 1]
    return line[: len(line) - len(line.lstrip())]


def every(config: Config, name: str) -> list[Node]:
    return [n for n in config.root.walk() if n.name.lower() == name.lower()]


def upsert(block: Node, line: str, key: tuple[str, ...]) -> Edit:
    """Replace the block's directive with the same key (name, and the first argument for
    keys of two words), or add the line at the top of the block."""
    for child in block.children():
        child_key = (child.name.lower(), *(a.lower() for a in child.args[: len(key) - 1]))
        if child_key == key:
            return Edit(child.file, child.line, "replace", (indent_of(child) + line,))
    inner = indent_of(block) + "    " if block.name else ""
    return Edit(block.file, block.line if block.name else 0, "after", (inner + line,))


def block_end(node: Node) -> int:
    """The line of a block's closing brace, by counting braces from its first line."""
    lines = Path(node.file).read_text().splitlines()
    depth = 0
    for number in range(node.line, len(lines) + 1):
        depth += lines[number - 1].count("{") - lines[number - 1].count("}")
        if depth <= 0:
            return number
    raise AssertionError(f"no end for {node.name} at {node.file}:{node.line}")


# -- nginx ----------------------------------------------------------------------------------


def nginx_location(config: Config, fix: str) -> Node | None:
    """The location the fix names ("to location /x.", "in location /x:"), longest first."""
    found = []
    for node in every(config, "location"):
        label = "location " + " ".join(node.args)
        if re.search(re.escape(label) + r"(?=[ ,.;:]|$)", fix):
            found.append((len(label), node))
    return max(found, key=lambda pair: pair[0])[1] if found else None


def nginx_edits(config: Config, found: Finding) -> list[Edit]:
    edits: list[Edit] = []
    location = nginx_location(config, found.fix)
    for snippet in _TICKS.findall(found.fix):
        if snippet.startswith("map "):
            variable = snippet.split()[2]
            existing = [n for n in every(config, "map") if n.args[1:] == (variable,)]
            if existing:
                node = existing[0]
                edits.append(Edit(node.file, node.line, "replace", (indent_of(node) + snippet,)))
                edits += [
                    Edit(node.file, line, "delete")
                    for line in range(node.line + 1, block_end(node) + 1)
                ]
            else:
                http = every(config, "http")
                edits.append(upsert(http[0] if http else config.root, snippet, ("map", "*")))
            continue
        if not snippet.endswith(";"):
            continue
        words = snippet.rstrip(";").split()
        key = (
            (words[0].lower(), words[1].lower())
            if words[0] == "proxy_set_header"
            else (words[0].lower(),)
        )
        if words[0] == "worker_connections":
            edits.append(upsert(every(config, "events")[0], snippet, key))
        elif words[0] == "worker_rlimit_nofile":
            edits.append(upsert(config.root, snippet, key))
        else:
            assert location is not None, f"no location named in: {found.fix}"
            edits.append(upsert(location, snippet, key))
    return edits


# -- HAProxy, Apache, Caddy -----------------------------------------------------------------


def haproxy_edits(config: Config, found: Finding) -> list[Edit]:
    delete = Edit(found.file, found.line, "delete")
    if found.fix.startswith("Drop the rule"):
        return [delete]
    sections = {(n.name.lower(), n.args[0]): n for n in config.root.children() if n.args}
    named = [
        (kind, name.rstrip("."))
        for kind, name in re.findall(r"\b(frontend|backend|listen) ([\w.-]+)", found.fix)
    ]
    assert named, f"no section named in: {found.fix}"
    edits = [delete] if found.fix.startswith("Move ") else []
    for snippet in _TICKS.findall(found.fix):
        words = snippet.split()
        key = (
            (words[0], words[1]) if words[0] in ("timeout", "option", "http-check") else (words[0],)
        )
        edits += [upsert(sections[label], snippet, key) for label in named]
    return edits


def apache_edits(config: Config, found: Finding) -> list[Edit]:
    snippets = _TICKS.findall(found.fix)
    text = Path(found.file).read_text().splitlines()
    if found.fix.startswith("Append "):
        param, line = snippets[0], " ".join(snippets[1].split())
        for number, raw in enumerate(text, start=1):
            if " ".join(raw.split()) == line:
                indent = raw[: len(raw) - len(raw.lstrip())]
                return [Edit(found.file, number, "replace", (f"{indent}{line} {param}",))]
        raise AssertionError(f"no line `{line}` in {found.file}")
    if found.fix.startswith("Move "):
        target = re.search(r"above line (\d+)", found.fix)
        assert target is not None, found.fix
        above = int(target.group(1))
        moved = text[found.line - 1]
        return [
            Edit(found.file, found.line, "delete"),
            Edit(found.file, above - 1, "after", (moved,)),
        ]
    if found.fix.startswith("Set "):
        vhost = re.search(r"<VirtualHost ([^>]+)>", found.fix)
        assert vhost is not None
        (scope,) = [n for n in every(config, "VirtualHost") if " ".join(n.args) == vhost[1]]
        return [upsert(scope, snippets[0], (snippets[0].split()[0].lower(),))]
    if found.fix.startswith("Load it"):
        module = next(s for s in snippets if s.startswith("LoadModule"))
        loads = every(config, "LoadModule")
        if loads:
            return [Edit(loads[-1].file, loads[-1].line, "after", (module,))]
        return [Edit(config.files[0], 0, "after", (module,))]
    raise AssertionError(f"cannot apply: {found.fix}")


def caddy_edits(config: Config, found: Finding) -> list[Edit]:
    if found.fix.startswith(("Delete ", "Remove ")):
        return [Edit(found.file, found.line, "delete")]
    if found.fix.startswith("Add "):
        snippet = _TICKS.findall(found.fix)[0]
        raw = Path(found.file).read_text().splitlines()[found.line - 1]
        indent = raw[: len(raw) - len(raw.lstrip())]
        if raw.rstrip().endswith("{"):
            return [Edit(found.file, found.line, "after", (f"{indent}    {snippet}",))]
        return [
            Edit(
                found.file,
                found.line,
                "replace",
                (f"{raw.rstrip()} {{", f"{indent}    {snippet}", f"{indent}}}"),
            )
        ]
    raise AssertionError(f"cannot apply: {found.fix}")


EDITORS = {
    "nginx": nginx_edits,
    "haproxy": haproxy_edits,
    "apache": apache_edits,
    "caddy": caddy_edits,
}

# -- comparing findings ---------------------------------------------------------------------

_PREPARED = re.compile(r" \([^()]* looks prepared for WebSockets: .*\)$")


def ws_path(kind: str, config: Config, found: Finding) -> str | None:
    """The path of the location a fix is about, when lint does not take it for a WebSocket
    one yet (the fix makes it one)."""
    from wsgate.findings import cause

    prepared = _PREPARED.search(found.message) is not None
    if found.severity == cause(found.code).severity and not prepared:
        return None
    if kind == "nginx":
        location = nginx_location(config, found.fix)
        return location.args[-1] if location is not None and location.args else None
    if kind == "apache":
        path = re.search(r"\(path (\S+)\)", found.message)
        return path[1] if path else None
    return None


def counted(findings: list[Finding], root: Path) -> Counter[tuple[str, str]]:
    """Findings by file and code. Not by line or message: an insertion moves lines, and a
    fix may rightly reword another finding of the same place (`wait forever` becomes `wait
    5 s` once a connect timeout is set)."""
    return Counter(
        (str(Path(f.file).resolve().relative_to(root.resolve())), f.code) for f in findings
    )


@pytest.mark.parametrize(("kind", "path", "index"), list(cases()))
def test_a_printed_fix_removes_its_finding_and_adds_none(
    kind: str, path: Path, index: int, tmp_path: Path
) -> None:
    root = tmp_path / kind
    shutil.copytree(CORPUS / kind, root)
    main = str(root / path.name)
    config = load(main)
    found = lint_config(config)[index]
    advice = next((why for (c, s), why in ADVICE.items() if c == found.code and s in found.fix), "")
    if advice:
        pytest.skip(f"advice, not an edit: {advice}")
    named = re.search(r"`wsgate lint --ws-path (\S+) FILE`", found.fix)
    if named:
        # Naming the location is the fix: its finding goes, and lint now checks that
        # location as a WebSocket one, which is all that may be new.
        named_after = lint_config(load(main), Options(ws_paths=(named[1],)))
        assert found.code not in {f.code for f in named_after}
        label = f"location {named[1]}"
        assert all(
            label in f.message or f.code in {b.code for b in lint_config(config)}
            for f in named_after
        )
        return
    before = counted(lint_config(config), root)
    made_ws = ws_path(kind, config, found)
    # What lint says of that location as a WebSocket one may appear too.
    allowed = before
    if made_ws:
        allowed = before | counted(lint_config(config, Options(ws_paths=(made_ws,))), root)
    apply(EDITORS[kind](config, found))
    after = counted(lint_config(load(main)), root)
    new = after - allowed
    assert not new, f"the fix `{found.fix}` brought {sorted(new)}"
    where = (str(Path(found.file).resolve().relative_to(root.resolve())), found.code)
    assert after[where] < before[where], f"the fix `{found.fix}` did not remove {found.code}"


def test_every_code_of_the_corpus_is_tried() -> None:
    tried = {
        found.code
        for kind in KINDS
        for path in main_files(kind)
        for found in lint_config(load(str(path)))
    }
    from wsgate.findings import lint

    others = {c.code for c in lint.CAUSES if c.code.startswith("wsgate_")}
    assert {c.code for c in lint.CAUSES} - others <= tried

"""The I/O edge of lint: read files, guess their kind, follow includes.

Everything else in `wsgate.lint` takes text and returns data. Includes are spliced into
the tree where they appear (nginx `include`, Apache `Include`/`IncludeOptional`), and each
spliced node keeps the file and line it came from.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from wsgate.lint import apache, caddy, haproxy, nginx
from wsgate.lint.model import KINDS, Config, LintError, Node

# nginx refuses deeper include chains long before this; it stops include loops.
MAX_INCLUDE_DEPTH = 16

_HAPROXY_SECTION = re.compile(
    r"^(global|defaults|frontend|backend|listen)(\s|$)", re.MULTILINE | re.IGNORECASE
)
_APACHE_HINT = re.compile(
    r"^\s*(<VirtualHost|<Location|<Directory|<IfModule|LoadModule|ProxyPass|ServerName|"
    r"DocumentRoot|RewriteEngine|Include(Optional)?\s)",
    re.MULTILINE,  # case-sensitive: nginx has a lowercase `include`
)
_NGINX_HINT = re.compile(
    r"^\s*(http|server|location|upstream|events)\b[^\n]*\{|^\s*(proxy_pass|listen|"
    r"server_name|worker_processes|include)\s[^\n]*;",
    re.MULTILINE,
)
# nginx lines end with ";" or "{"; HAProxy lines never do ("{ acl }" ends with "}").
_NGINX_LINE_END = re.compile(r"[;{]\s*(#.*)?$", re.MULTILINE)
_CADDY_HINT = re.compile(r"^\s*(reverse_proxy|handle|handle_path|route|respond|encode)\b", re.M)
_TOML_HINT = re.compile(r"^\s*\[\[?(server|pools|routes)[\].]", re.MULTILINE)


def detect_kind(filename: str, text: str) -> str | None:
    """Guess the config kind from the file name, then from its content; None if unsure."""
    name = Path(filename).name.lower()
    if name.endswith(".toml"):
        return "wsgate"
    if name.startswith("caddyfile") or name.endswith(".caddyfile"):
        return "caddy"
    if "haproxy" in name:
        return "haproxy"
    if name in ("httpd.conf", "apache2.conf", "apache.conf") or "apache" in name:
        return "apache"
    if "nginx" in name:
        return "nginx"
    if _TOML_HINT.search(text):
        return "wsgate"
    if _APACHE_HINT.search(text):
        return "apache"
    if _HAPROXY_SECTION.search(text) and not _NGINX_LINE_END.search(text):
        return "haproxy"
    if _NGINX_HINT.search(text):
        return "nginx"
    if _CADDY_HINT.search(text):
        return "caddy"
    return None


def read_text(path: str, at: tuple[str, int] | None = None) -> str:
    """A file's text; LintError (at the including line when given) when it is unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        file, line = at or (path, 0)
        raise LintError(file, line, f"cannot read {path}: {exc.strerror or exc}") from None


def load(path: str, kind: str | None = None) -> Config:
    """Read and parse `path` (and what it includes) into a Config."""
    text = read_text(path)
    if kind is None:
        kind = detect_kind(path, text)
        if kind is None:
            raise LintError(
                path, 0, "cannot tell what kind of config this is; pass --kind " + "|".join(KINDS)
            )
    if kind == "wsgate":
        return Config(kind, Node("", (), path, 0, ()), (path,), text)
    files: list[str] = [path]
    if kind == "nginx":
        root = nginx.parse_root(text, path)
        base_dirs = _base_dirs(path)
        root = _splice(root, lambda n: n.name == "include", nginx.parse_root, base_dirs, files, 0)
    elif kind == "apache":
        root = apache.parse_root(text, path)
        base_dirs = _apache_base_dirs(root, path)
        root = _splice(
            root,
            lambda n: n.name.lower() in ("include", "includeoptional"),
            apache.parse_root,
            base_dirs,
            files,
            0,
        )
    elif kind == "haproxy":
        root = haproxy.parse_root(text, path)
    elif kind == "caddy":
        root = caddy.parse_root(text, path)
    else:
        raise LintError(path, 0, f"unknown kind {kind!r}; use one of " + ", ".join(KINDS))
    return Config(kind, root, tuple(files))


def _base_dirs(path: str) -> list[Path]:
    # nginx resolves relative includes against its conf dir; a file from sites-available/
    # or conf.d/ usually names snippets relative to the parent directory.
    here = Path(path).resolve().parent
    return [here, here.parent]


def _apache_base_dirs(root: Node, path: str) -> list[Path]:
    server_root = root.first("ServerRoot")
    dirs = [Path(server_root.args[0])] if server_root and server_root.args else []
    return [*dirs, *_base_dirs(path)]


def _targets(pattern: str, base_dirs: list[Path]) -> tuple[list[str], bool]:
    """Files an include names and whether the pattern is a glob (which may match none)."""
    is_glob = glob.has_magic(pattern)
    candidates = (
        [Path(pattern)] if Path(pattern).is_absolute() else [d / pattern for d in base_dirs]
    )
    for candidate in candidates:
        if is_glob:
            matched = sorted(glob.glob(str(candidate)))  # noqa: PTH207 (absolute patterns)
            if matched:
                return [m for m in matched if Path(m).is_file()], True
        elif candidate.exists():
            if candidate.is_dir():  # Apache: Include of a directory reads every file in it
                return sorted(str(p) for p in candidate.iterdir() if p.is_file()), False
            return [str(candidate)], False
    return [], is_glob


def _splice(
    node: Node,
    is_include: Callable[[Node], bool],
    parse_root: Callable[[str, str], Node],
    base_dirs: list[Path],
    files: list[str],
    depth: int,
) -> Node:
    """Replace include nodes under `node` by the top-level nodes of the files they name."""
    if node.block is None:
        return node
    out: list[Node] = []
    comments = list(node.comments)
    for child in node.block:
        if not is_include(child):
            out.append(_splice(child, is_include, parse_root, base_dirs, files, depth))
            continue
        if depth >= MAX_INCLUDE_DEPTH:
            raise LintError(child.file, child.line, "includes nested too deep (a loop?)")
        if not child.args:
            raise LintError(child.file, child.line, f"{child.name} needs a file name")
        targets, optional = _targets(child.args[0].strip("\"'"), base_dirs)
        optional = optional or child.name.lower() == "includeoptional"
        if not targets and not optional:
            raise LintError(child.file, child.line, f"include target not found: {child.args[0]}")
        for target in targets:
            if target not in files:
                files.append(target)
            sub = parse_root(read_text(target, (child.file, child.line)), target)
            sub = _splice(sub, is_include, parse_root, base_dirs, files, depth + 1)
            out.extend(sub.block or ())
            comments.extend(sub.comments)
    return replace(node, block=tuple(out), comments=tuple(comments))

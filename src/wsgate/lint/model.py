"""The common model every config parser produces, and the findings rules return.

Pure data: no I/O. A config is a tree of `Node`s (an nginx directive, an HAProxy keyword
line or section, an Apache directive or <Section>, a Caddyfile directive or block), each
with the file and line it came from, so a finding points at the line to edit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from wsgate.errors import InputError
from wsgate.findings import cause
from wsgate.findings.model import Severity

KINDS: tuple[str, ...] = ("nginx", "haproxy", "apache", "caddy", "wsgate")

# Words in a path or a name that suggest a WebSocket endpoint (issue 5: ws, socket,
# websocket, cable, hub, realtime); matched as whole words between separators.
_WS_WORDS = re.compile(
    r"(?:^|[^a-z0-9])(?:wss?|websockets?|sockets?|socket\.io|sockjs|cable|hubs?|realtime|"
    r"live|signalr|graphql-ws|subscriptions)(?:$|[^a-z0-9])",
    re.IGNORECASE,
)


def looks_ws(text: str) -> bool:
    """True when a path, URL or name suggests a WebSocket endpoint."""
    return bool(_WS_WORDS.search(text))


def matches_ws_path(path: str, ws_paths: tuple[str, ...]) -> bool:
    """True when `path` (a location or matcher) starts with one of the --ws-path prefixes."""
    stripped = path.lstrip("=~^* ")
    # "/ws" matches --ws-path /ws/ too, but the catch-all "/" matches nothing by itself.
    return any(
        stripped.startswith(prefix) or (len(stripped) > 1 and prefix.startswith(stripped))
        for prefix in ws_paths
    )


class LintError(InputError):
    """Unreadable or unparsable input: the CLI prints `file:line: error: message`, exit 2."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Node:
    """One directive or section. `block` is None for a plain directive, a tuple for a block.

    `comments` holds the comment texts found directly inside the block (rules read them for
    notes such as "the app pings every 20 s").
    """

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Node, ...] | None = None
    comments: tuple[str, ...] = ()

    def children(self, name: str | None = None) -> Iterator[Node]:
        """Direct children, all of them or those named `name` (case-insensitive)."""
        for child in self.block or ():
            if name is None or child.name.lower() == name.lower():
                yield child

    def first(self, name: str) -> Node | None:
        return next(self.children(name), None)

    def last(self, name: str) -> Node | None:
        found = None
        for child in self.children(name):
            found = child
        return found

    def walk(self) -> Iterator[Node]:
        """This node's descendants, depth first, in file order."""
        for child in self.block or ():
            yield child
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Config:
    """A parsed config: its kind, the root node (name "", block = top level) and the files
    read, in order (the first one is the file named on the command line)."""

    kind: str
    root: Node
    files: tuple[str, ...]
    # The raw text of wsgate's TOML config, which has no node tree.
    text: str = ""


@dataclass(frozen=True, slots=True)
class Options:
    """What the user told lint about the deployment."""

    ws_paths: tuple[str, ...] = ()
    # Concurrent WebSockets the proxy must hold (nginx worker_connections check).
    capacity: int = 1000


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One problem at one line. `fix` is what to change, with config text in backticks."""

    file: str
    line: int
    code: str
    severity: Severity = field(compare=False)
    message: str = field(compare=False)
    fix: str = field(compare=False)

    @property
    def symptom(self) -> str:
        return cause(self.code).symptom


def finding(
    code: str,
    node: Node,
    message: str,
    *,
    ws: bool = True,
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding from the catalogue entry `code`: its severity for a WebSocket
    location, info for another proxied location (`ws=False`)."""
    item = cause(code)
    level = severity or (item.severity if ws else Severity.INFO)
    return Finding(node.file, node.line, code, level, message, fix or item.fix)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


# Duration grammar shared by nginx (ms s m h d w M y), HAProxy (us ms s m h d; bare = ms),
# Caddy and Go (ns us ms s m h d, combinable as 1h30m).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|M|y)?")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "M": 2592000.0,
    "y": 31536000.0,
}


def parse_duration(text: str, bare_unit: str = "s") -> float | None:
    """Seconds in a duration like `60s`, `1h30m`, `500ms` or `75` (in `bare_unit`);
    None when it is not a duration."""
    text = unquote(text.strip())
    if not text:
        return None
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.end() == pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2) or bare_unit]
        pos = match.end()
    return total


def format_seconds(seconds: float) -> str:
    """`60 s`, `1.5 s`, `50 ms` for a message."""
    if seconds < 1:
        return f"{seconds * 1000:g} ms"
    return f"{seconds:g} s"

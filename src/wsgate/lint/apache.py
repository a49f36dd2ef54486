"""Apache httpd config text -> `Node` tree.

One directive per line (a trailing backslash continues it), `#` starts a comment only at
the beginning of a line, and `<Section args>` ... `</Section>` nests. Directive names are
case-insensitive; `Node.children(name)` compares them that way.
"""

from __future__ import annotations

import shlex

from wsgate.lint.model import LintError, Node


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = lineno
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        out.append((start, " ".join(pending)))
        pending = []
    if pending:
        out.append((start, " ".join(pending)))
    return out


def _words(text: str, filename: str, lineno: int) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""  # regexes in RewriteRule keep their backslashes
    try:
        return list(lexer)
    except ValueError as exc:
        raise LintError(filename, lineno, f"cannot split line: {exc}") from None


def parse_root(text: str, filename: str) -> Node:
    """The whole file as a root node; raises LintError for unbalanced sections."""
    # Stack of open sections: (name, args, line, children, comments).
    stack: list[tuple[str, tuple[str, ...], int, list[Node], list[str]]] = [("", (), 0, [], [])]
    for lineno, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            stack[-1][4].append(stripped[1:].strip())
            continue
        if stripped.startswith("</"):
            name = stripped[2:].rstrip(">").strip()
            if len(stack) == 1 or stack[-1][0].lower() != name.lower():
                opened = f" (open section: <{stack[-1][0]}>)" if len(stack) > 1 else ""
                raise LintError(filename, lineno, f"</{name}> without matching <{name}>{opened}")
            sec_name, args, start, children, comments = stack.pop()
            stack[-1][3].append(
                Node(sec_name, args, filename, start, tuple(children), tuple(comments))
            )
            continue
        if stripped.startswith("<"):
            if not stripped.endswith(">"):
                raise LintError(filename, lineno, f"section line does not end with '>': {line}")
            words = _words(stripped[1:-1], filename, lineno)
            if not words:
                raise LintError(filename, lineno, "empty section name")
            stack.append((words[0], tuple(words[1:]), lineno, [], []))
            continue
        words = _words(stripped, filename, lineno)
        stack[-1][3].append(Node(words[0], tuple(words[1:]), filename, lineno))
    if len(stack) > 1:
        name, _args, start, _children, _comments = stack[-1]
        raise LintError(filename, start, f"<{name}> is never closed")
    _name, _args, _line, children, comments = stack[0]
    return Node("", (), filename, 0, tuple(children), tuple(comments))

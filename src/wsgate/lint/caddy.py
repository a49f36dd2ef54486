"""Caddyfile text -> `Node` tree.

A directive is the words of one line; a line that ends with a lone `{` opens a block that
a line holding only `}` closes. Quotes ("..." and `...`) group words; `#` at the start of a
word begins a comment. A `{` inside a word is a placeholder (`{http.request.host}`), not a
block. `import` is not followed: its snippet is not checked.
"""

from __future__ import annotations

from wsgate.lint.model import LintError, Node

Line = tuple[int, list[tuple[str, bool]], str]


def _lines(text: str, filename: str) -> list[Line]:
    """(line number, [(word, quoted)], comment) for each line with words or a comment."""
    out: list[Line] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words: list[tuple[str, bool]] = []
        comment = ""
        i = 0
        while i < len(raw):
            char = raw[i]
            if char.isspace():
                i += 1
                continue
            if char == "#":
                comment = raw[i + 1 :].strip()
                break
            if char in '"`':
                end = i + 1
                word: list[str] = []
                while end < len(raw) and raw[end] != char:
                    if char == '"' and raw[end] == "\\" and end + 1 < len(raw):
                        end += 1
                    word.append(raw[end])
                    end += 1
                if end >= len(raw):
                    raise LintError(filename, lineno, f"unterminated quote {char}")
                words.append(("".join(word), True))
                i = end + 1
                continue
            end = i
            while end < len(raw) and not raw[end].isspace():
                end += 1
            words.append((raw[i:end], False))
            i = end
        if words or comment:
            out.append((lineno, words, comment))
    return out


def parse_root(text: str, filename: str) -> Node:
    """The whole Caddyfile as a root node; the global options block is named `{}`."""
    stack: list[tuple[str, tuple[str, ...], int, list[Node], list[str]]] = [("", (), 0, [], [])]
    for lineno, words, comment in _lines(text, filename):
        if comment:
            stack[-1][4].append(comment)
        if not words:
            continue
        texts = [w for w, _q in words]
        if words[0] == ("}", False):
            if len(words) > 1:
                raise LintError(filename, lineno, "unexpected words after '}'")
            if len(stack) == 1:
                raise LintError(filename, lineno, "unexpected '}'")
            name, args, start, children, comments = stack.pop()
            stack[-1][3].append(Node(name, args, filename, start, tuple(children), tuple(comments)))
            continue
        if words[-1] == ("{", False):
            head = texts[:-1]
            stack.append((head[0] if head else "{}", tuple(head[1:]), lineno, [], []))
            continue
        stack[-1][3].append(Node(texts[0], tuple(texts[1:]), filename, lineno))
    if len(stack) > 1:
        raise LintError(filename, stack[-1][2], f"block '{stack[-1][0]}' is never closed")
    _name, _args, _line, children, comments = stack[0]
    return Node("", (), filename, 0, tuple(children), tuple(comments))

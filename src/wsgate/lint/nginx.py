"""nginx config text -> `Node` tree, with crossplane's lexer (quotes, escapes, comments).

crossplane's own `parse()` needs to know each file's context to check it; lint wants text
in, tree out, so it uses crossplane's public `lex()` and builds the tree here. `lex()`
reads a path, so the text goes through a temporary file. The loader (`loader.py`) reads
the files and splices `include` targets in.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import crossplane
from crossplane.errors import NgxParserSyntaxError

from wsgate.lint.model import LintError, Node

Token = tuple[str, int, bool]


def parse_root(text: str, filename: str) -> Node:
    """The file as one root node (name ""), comments kept for the top level; raises
    LintError with file:line for text nginx would refuse to parse."""
    tokens: Iterator[Token] = iter(_lex_text(text))
    nodes, comments, _end = _block(tokens, filename, depth=0, opened_at=0)
    return Node("", (), filename, 0, nodes, comments)


def _lex_text(text: str) -> list[Token]:
    """All of crossplane's tokens for `text`, read back from a temporary file."""
    with tempfile.NamedTemporaryFile(
        "w",
        encoding="utf-8",
        errors="surrogatepass",
        newline="",
        prefix="wsgate-lint-",
        suffix=".conf",
        delete=False,
    ) as handle:
        handle.write(text)
    try:
        return list(_balanced_or_cut(handle.name))
    finally:
        Path(handle.name).unlink()


def _balanced_or_cut(path: str) -> Iterator[Token]:
    """crossplane.lex's tokens, its brace check turned into tokens for `_block` to judge:
    a stray `}` is passed on (then the stream ends, as lex stops there), and an unclosed
    block just ends the stream, so `_block` names the line where the block opened."""
    try:
        for token, line, quoted in crossplane.lex(path):
            yield str(token), int(line), bool(quoted)
    except NgxParserSyntaxError as exc:
        if exc.strerror == 'unexpected "}"':
            yield "}", int(exc.lineno), False


def _is_comment(token: str, quoted: bool) -> bool:
    return not quoted and token.startswith("#")


def _block(
    tokens: Iterator[Token], filename: str, depth: int, opened_at: int
) -> tuple[tuple[Node, ...], tuple[str, ...], int]:
    """Directives up to the matching `}` (or end of file at depth 0)."""
    nodes: list[Node] = []
    comments: list[str] = []
    last_line = opened_at
    for token, line, quoted in tokens:
        last_line = line
        if _is_comment(token, quoted):
            comments.append(token[1:].strip())
            continue
        if not quoted and token == "}":
            if depth == 0:
                raise LintError(filename, line, 'unexpected "}"')
            return tuple(nodes), tuple(comments), line
        if not quoted and token in ("{", ";"):
            raise LintError(filename, line, f'unexpected "{token}"')
        node, inner_comments, last_line = _directive(tokens, filename, token, line, depth)
        nodes.append(node)
        comments.extend(inner_comments)
    if depth > 0:
        raise LintError(
            filename,
            last_line,
            f'unexpected end of file, expecting "}}" (block opened at line {opened_at})',
        )
    return tuple(nodes), tuple(comments), last_line


def _directive(
    tokens: Iterator[Token], filename: str, name: str, line: int, depth: int
) -> tuple[Node, list[str], int]:
    """The rest of one directive: its arguments, then `;` or a `{ ... }` block."""
    args: list[str] = []
    comments: list[str] = []
    for token, tline, quoted in tokens:
        if _is_comment(token, quoted):
            comments.append(token[1:].strip())
        elif not quoted and token == ";":
            return Node(name, tuple(args), filename, line), comments, tline
        elif not quoted and token == "{":
            body, inner, end = _block(tokens, filename, depth + 1, tline)
            return Node(name, tuple(args), filename, line, body, inner), comments, end
        elif not quoted and token == "}":
            raise LintError(filename, tline, f'directive "{name}" is not terminated by ";"')
        else:
            args.append(token)
    raise LintError(
        filename, line, f'unexpected end of file: directive "{name}" has no ";" or "{{"'
    )

"""haproxy.cfg text -> `Node` tree: one node per section, one child per keyword line.

HAProxy's grammar is line based: a section keyword starts a section, every other line
belongs to the section above it. Words split on blanks; quotes and backslashes escape them;
`#` starts a comment outside quotes.
"""

from __future__ import annotations

from wsgate.lint.model import LintError, Node

SECTIONS = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "userlist",
        "peers",
        "resolvers",
        "mailers",
        "program",
        "http-errors",
        "ring",
        "cache",
        "log-forward",
        "crt-store",
        "traces",
    }
)


def split_words(line: str, filename: str, lineno: int) -> tuple[list[str], str]:
    """Words of one line and its comment text (without `#`)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(line):
                i += 1
                word.append(line[i])
            else:
                word.append(char)
        elif char == "\\" and i + 1 < len(line):
            i += 1
            word.append(line[i])
            in_word = True
        elif char in "\"'":
            quote = char
            in_word = True
        elif char == "#":
            break
        elif char.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(char)
            in_word = True
        i += 1
    if quote:
        raise LintError(filename, lineno, f"unmatched quote {quote}")
    if in_word:
        words.append("".join(word))
    comment = line[i + 1 :].strip() if i < len(line) else ""
    return words, comment


def parse_root(text: str, filename: str) -> Node:
    """The whole file: a root node whose children are the sections."""
    sections: list[Node] = []
    current: tuple[str, tuple[str, ...], int] | None = None
    lines: list[Node] = []
    comments: list[str] = []
    top_comments: list[str] = []

    def close() -> None:
        if current is not None:
            name, args, line = current
            sections.append(Node(name, args, filename, line, tuple(lines), tuple(comments)))

    for lineno, raw in enumerate(text.splitlines(), start=1):
        words, comment = split_words(raw, filename, lineno)
        if comment:
            (comments if current is not None else top_comments).append(comment)
        if not words:
            continue
        keyword = words[0].lower()
        if keyword in SECTIONS:
            close()
            current = (keyword, tuple(words[1:]), lineno)
            lines, comments = [], []
            continue
        if current is None:
            raise LintError(
                filename,
                lineno,
                f"'{words[0]}' is outside any section (expected global, "
                "defaults, frontend, backend or listen first)",
            )
        lines.append(Node(words[0], tuple(words[1:]), filename, lineno))
    close()
    return Node("", (), filename, 0, tuple(sections), tuple(top_comments))

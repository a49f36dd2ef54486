"""Lint a config given as text, no files: parse with the kind's parser, run the rules."""

from __future__ import annotations

from wsgate.lint import apache, caddy, haproxy, nginx
from wsgate.lint.engine import lint_config
from wsgate.lint.model import Config, Finding, Node, Options

_PARSERS = {
    "nginx": nginx.parse_root,
    "haproxy": haproxy.parse_root,
    "apache": apache.parse_root,
    "caddy": caddy.parse_root,
}


def lint_text(kind: str, text: str, **options: object) -> list[Finding]:
    name = f"test.{kind}"
    if kind == "wsgate":
        config = Config(kind, Node("", (), name, 0, ()), (name,), text)
    else:
        config = Config(kind, _PARSERS[kind](text, name), (name,))
    return lint_config(config, Options(**options))  # type: ignore[arg-type]


def codes(findings: list[Finding]) -> list[tuple[int, str, str]]:
    """(line, code, severity) in order, easy to compare."""
    return [(f.line, f.code, f.severity.value) for f in findings]

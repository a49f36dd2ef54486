"""Run the rules that fit a config's kind. Pure: config in, sorted findings out."""

from __future__ import annotations

from wsgate.lint import rules_apache, rules_caddy, rules_haproxy, rules_nginx, wsgate_conf
from wsgate.lint.model import Config, Finding, Options

_CHECKS = {
    "nginx": rules_nginx.check,
    "haproxy": rules_haproxy.check,
    "apache": rules_apache.check,
    "caddy": rules_caddy.check,
    "wsgate": wsgate_conf.check,
}


def lint_config(config: Config, options: Options | None = None) -> list[Finding]:
    """Findings for one parsed config, in file and line order, without duplicates."""
    found = _CHECKS[config.kind](config, options or Options())
    unique = {(f.file, f.line, f.code, f.message): f for f in found}
    return sorted(unique.values())

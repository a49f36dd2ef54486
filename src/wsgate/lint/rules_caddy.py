"""Rules for the Caddyfile: model in, findings out.

`reverse_proxy` handles WebSockets by itself (it forwards Upgrade and Connection), so only
settings that undo that or end streams are flagged: a `header_up` that strips the upgrade
headers, a short `stream_timeout`, and no `stream_close_delay` (a reload then closes every
WebSocket at once).
"""

from __future__ import annotations

from wsgate.lint.model import (
    Config,
    Finding,
    Node,
    Options,
    finding,
    format_seconds,
    looks_ws,
    matches_ws_path,
    parse_duration,
)

# Shorter than this, stream_timeout ends WebSockets that are in normal use.
MIN_STREAM_TIMEOUT_S = 3600.0
_SCOPED = ("handle", "handle_path", "route", "reverse_proxy")


def _walk(node: Node, chain: tuple[Node, ...]) -> list[tuple[Node, tuple[Node, ...]]]:
    out: list[tuple[Node, tuple[Node, ...]]] = []
    for child in node.children():
        out.append((child, chain))
        if child.block is not None:
            out.extend(_walk(child, (*chain, child)))
    return out


def _matcher_text(name: str, chain: tuple[Node, ...]) -> str:
    """What the named matcher `@name` matches on, as text, from the nearest site block."""
    for level in reversed(chain):
        for node in level.children():
            if node.name == name:
                inner = " ".join(" ".join((c.name, *c.args)) for c in node.walk())
                return " ".join(node.args) + " " + inner
    return ""


class _Rules:
    def __init__(self, config: Config, options: Options) -> None:
        self.options = options
        self.findings: list[Finding] = []
        self.nodes = _walk(config.root, (config.root,))

    def is_ws(self, proxy: Node, chain: tuple[Node, ...]) -> bool:
        texts = list(proxy.args)
        for level in chain:
            if level.name in _SCOPED:
                texts.extend(level.args)
        for text in list(texts):
            if text.startswith("@"):
                texts.append(_matcher_text(text, chain))
        for text in texts:
            if looks_ws(text) or "upgrade" in text.lower():
                return True
            if text.startswith("/") and matches_ws_path(text.rstrip("*"), self.options.ws_paths):
                return True
        return False

    def run(self) -> list[Finding]:
        for node, chain in self.nodes:
            if node.name == "reverse_proxy":
                self.check_proxy(node, chain)
        return self.findings

    def check_proxy(self, proxy: Node, chain: tuple[Node, ...]) -> None:
        ws = self.is_ws(proxy, chain)
        label = "reverse_proxy " + " ".join(proxy.args)
        for header in proxy.children("header_up"):
            if not header.args:
                continue
            name = header.args[0].lstrip("-").lower()
            if name not in ("connection", "upgrade"):
                continue
            removes = header.args[0].startswith("-") or (
                len(header.args) > 1
                and "upgrade" not in header.args[1].lower()
                and "websocket" not in header.args[1].lower()
            )
            if removes:
                self.findings.append(
                    finding(
                        "caddy_upgrade_header_removed",
                        header,
                        f"`header_up {' '.join(header.args)}` in {label} strips the "
                        f"{header.args[0].lstrip('-')} header a WebSocket handshake needs",
                        ws=ws,
                        fix=f"Delete `header_up {' '.join(header.args)}` from {label}.",
                    )
                )
        timeout = proxy.last("stream_timeout")
        if timeout is not None and timeout.args:
            seconds = parse_duration(timeout.args[0], bare_unit="s")
            if seconds is not None and seconds < MIN_STREAM_TIMEOUT_S:
                self.findings.append(
                    finding(
                        "caddy_stream_timeout",
                        timeout,
                        f"`stream_timeout {timeout.args[0]}` in {label} closes every WebSocket "
                        f"after {format_seconds(seconds)}, busy or idle",
                        ws=ws,
                        fix=f"Remove `stream_timeout {timeout.args[0]}` or use "
                        "`stream_timeout 24h`.",
                    )
                )
        if proxy.first("stream_close_delay") is None:
            self.findings.append(
                finding(
                    "caddy_no_stream_close_delay",
                    proxy,
                    f"{label} has no `stream_close_delay`: a config reload closes all its "
                    "WebSockets at the same moment",
                    ws=ws,
                    fix=f"Add `stream_close_delay 5m` inside {label} {{ ... }} (Caddy 2.7+).",
                )
            )


def check(config: Config, options: Options) -> list[Finding]:
    """Every Caddyfile finding for `config`."""
    return _Rules(config, options).run()

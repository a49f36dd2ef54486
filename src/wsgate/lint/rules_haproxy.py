"""Rules for HAProxy: model in, findings out.

A frontend, backend or listen takes its settings from itself, then from the defaults
section it uses: the last one above it, or the one named with `from NAME`. The default
mode is tcp. Times without a unit are milliseconds (HAProxy configuration manual 2.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wsgate.findings import cause
from wsgate.findings.model import Severity
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

_HTTP_SAMPLE = re.compile(
    r"\b(hdr|req\.hdr|path|path_beg|path_end|path_reg|url|url_beg|host)", re.I
)
_UPGRADE_HINT = re.compile(r"upgrade|websocket", re.IGNORECASE)


@dataclass(slots=True)
class _Proxy:
    node: Node
    defaults: Node | None
    backends: list[tuple[str, Node]] = field(default_factory=list)  # (name, line routing)

    @property
    def kind(self) -> str:
        return self.node.name.lower()

    @property
    def name(self) -> str:
        return self.node.args[0] if self.node.args else "?"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def lines(self, keyword: str, sub: str | None = None) -> list[Node]:
        """This proxy's lines for `keyword` (and first argument `sub`)."""
        return [
            n
            for n in self.node.children(keyword)
            if sub is None or (n.args and n.args[0].lower() == sub)
        ]

    def setting(self, keyword: str, sub: str | None = None) -> Node | None:
        """The line that applies: the proxy's own last one, else its defaults section's."""
        for section in (self.node, self.defaults):
            found = [
                n
                for n in (section.children(keyword) if section is not None else ())
                if sub is None or (n.args and n.args[0].lower() == sub)
            ]
            if found:
                return found[-1]
        return None

    def timeout(self, name: str) -> tuple[float, Node] | None:
        node = self.setting("timeout", name)
        if node is None or len(node.args) < 2:
            return None
        seconds = parse_duration(node.args[1], bare_unit="ms")
        return (seconds, node) if seconds is not None else None

    @property
    def mode(self) -> str:
        node = self.setting("mode")
        return node.args[0].lower() if node is not None and node.args else "tcp"


def _proxies(root: Node) -> tuple[list[_Proxy], list[Node]]:
    proxies: list[_Proxy] = []
    defaults_seen: list[Node] = []
    named: dict[str, Node] = {}
    last_defaults: Node | None = None
    for section in root.children():
        kind = section.name.lower()
        if kind == "defaults":
            last_defaults = section
            defaults_seen.append(section)
            if section.args:
                named[section.args[0]] = section
        elif kind in ("frontend", "backend", "listen"):
            chosen = last_defaults
            if len(section.args) >= 3 and section.args[1] == "from":
                chosen = named.get(section.args[2], last_defaults)
            proxies.append(_Proxy(section, chosen))
    return proxies, defaults_seen


def _acls(proxy: _Proxy) -> dict[str, str]:
    """ACL name -> its criteria; lines with the same name are ORed, so they are joined."""
    acls: dict[str, str] = {}
    for line in proxy.lines("acl"):
        if line.args:
            acls[line.args[0]] = (
                acls.get(line.args[0], "") + " " + " ".join(line.args[1:])
            ).strip()
    return acls


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _labels(kind: str, names: list[str]) -> str:
    """ "backend a", "backend a and backend b", ... for a fix that names each section."""
    labels = [f"{kind} {name}" for name in names]
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]


def _cond_text(line: Node) -> str:
    words = list(line.args)
    for key in ("if", "unless"):
        if key in words:
            return " ".join(words[words.index(key) :])
    return ""


def _expand(line: Node, acls: dict[str, str]) -> str:
    """A rule's condition with the named ACLs it uses replaced by their definitions."""
    cond = _cond_text(line)
    return " ".join([cond, *(acls.get(w.lstrip("!"), "") for w in cond.split())])


class _Rules:
    def __init__(self, config: Config, options: Options) -> None:
        self.options = options
        self.findings: list[Finding] = []
        self.proxies, self.defaults = _proxies(config.root)
        self.by_name = {p.name: p for p in self.proxies if p.kind in ("backend", "listen")}
        # Backend name -> frontends (and listens) that send traffic to it.
        self.users: dict[str, list[_Proxy]] = {}
        self.ws_backends: set[str] = set()
        for proxy in self.proxies:
            if proxy.kind == "listen":
                self.users.setdefault(proxy.name, []).append(proxy)
            if proxy.kind not in ("frontend", "listen"):
                continue
            acls = _acls(proxy)
            for line in [*proxy.lines("use_backend"), *proxy.lines("default_backend")]:
                if not line.args:
                    continue
                target = line.args[0]
                proxy.backends.append((target, line))
                self.users.setdefault(target, []).append(proxy)
                if _cond_text(line) and self.is_ws_condition(line, acls):
                    self.ws_backends.add(target)
        for proxy in self.proxies:
            if proxy.kind in ("backend", "listen") and self.backend_looks_ws(proxy):
                self.ws_backends.add(proxy.name)

    def is_ws_condition(self, line: Node, acls: dict[str, str]) -> bool:
        for word in _expand(line, acls).split():
            if _UPGRADE_HINT.search(word) or looks_ws(word):
                return True
            if "/" in word and matches_ws_path(word, self.options.ws_paths):
                return True
        return False

    def backend_looks_ws(self, proxy: _Proxy) -> bool:
        if looks_ws(proxy.name):
            return True
        return any(_UPGRADE_HINT.search(" ".join(n.args)) for n in proxy.lines("http-check"))

    def is_ws(self, proxy: _Proxy) -> bool:
        return proxy.name in self.ws_backends

    def run(self) -> list[Finding]:
        for proxy in self.proxies:
            if proxy.kind == "frontend":
                self.check_frontend(proxy)
            else:
                self.check_backend(proxy)
            if proxy.kind in ("frontend", "listen"):
                self.check_header_rules(proxy)
        self.check_unused_defaults()
        self.check_recognised()
        return self.findings

    def check_recognised(self) -> None:
        """Say so when no backend is known to carry WebSockets: every finding is an info."""
        backends = [p for p in self.proxies if p.kind in ("backend", "listen")]
        if not backends or self.ws_backends:
            return
        names = ", ".join(p.name for p in backends[:5]) + (
            f" and {len(backends) - 5} more" if len(backends) > 5 else ""
        )
        self.findings.append(
            finding(
                "lint_no_ws_location",
                backends[0].node,
                f"no WebSocket backend recognised among the {len(backends)} backend(s) "
                f"({names}): none is routed to on an Upgrade header or a WebSocket-like path, "
                "named like one, or health-checked with a handshake, so each finding here is "
                "an info",
                fix="If one of them serves WebSockets, route to it with `use_backend NAME if "
                "{ hdr(Upgrade) -i websocket }`, or name its path with `--ws-path PREFIX` "
                "when a `path_beg` rule routes to it.",
            )
        )

    def check_frontend(self, proxy: _Proxy) -> None:
        for line in proxy.lines("timeout", "tunnel"):
            self.findings.append(
                finding(
                    "haproxy_tunnel_timeout_ignored",
                    line,
                    f"`timeout tunnel` in {proxy.label} is ignored: frontends have no backend "
                    "capability",
                    fix=f"Move `timeout {' '.join(line.args)}` into "
                    + (
                        _labels("backend", sorted({b for b, _l in proxy.backends}))
                        if proxy.backends
                        else "the backends it uses"
                    )
                    + ".",
                )
            )
        for target, line in proxy.backends:
            backend = self.by_name.get(target)
            if backend is None:
                continue
            if proxy.mode == "http" and backend.mode == "tcp":
                self.findings.append(
                    finding(
                        "haproxy_mode_mismatch",
                        line,
                        f"{proxy.label} is mode http but sends traffic to {backend.label}, "
                        "which is mode tcp: HAProxy refuses this config",
                        fix=f"Add `mode http` to {backend.label}.",
                    )
                )
        if proxy.mode == "tcp" and not proxy.lines("tcp-request"):
            acls = _acls(proxy)
            http_rules = [
                line
                for target, line in proxy.backends
                if target in self.ws_backends and _HTTP_SAMPLE.search(_expand(line, acls))
            ]
            for line in http_rules:
                self.findings.append(
                    finding(
                        "haproxy_mode_mismatch",
                        line,
                        f"{proxy.label} is mode tcp, so this rule's HTTP fetch sees no request "
                        "(no `tcp-request inspect-delay`) and WebSockets go to the default "
                        "backend",
                        fix=f"Add `mode http` to {proxy.label}"
                        + (
                            " and to " + _labels("backend", sorted({b for b, _l in proxy.backends}))
                            if proxy.backends
                            else ""
                        )
                        + ".",
                        severity=Severity.WARNING,
                    )
                )

    def client_timeouts(self, backend: _Proxy) -> list[tuple[float, Node]]:
        found = []
        for user in self.users.get(backend.name, []):
            value = user.timeout("client")
            if value is not None:
                found.append(value)
        return found

    def check_backend(self, proxy: _Proxy) -> None:
        ws = self.is_ws(proxy)
        if proxy.timeout("tunnel") is None:
            cuts = [*self.client_timeouts(proxy)]
            server = proxy.timeout("server")
            if server is not None:
                cuts.append(server)
            if cuts:
                seconds, node = min(cuts, key=lambda c: c[0])
                self.findings.append(
                    finding(
                        "haproxy_no_timeout_tunnel",
                        proxy.node,
                        f"{proxy.label} has no `timeout tunnel`: idle WebSockets are cut after "
                        f"{format_seconds(seconds)} (`timeout {' '.join(node.args)}` at "
                        f"{node.file}:{node.line})",
                        ws=ws,
                        fix=f"Add `timeout tunnel 1h` to {proxy.label}.",
                    )
                )
        if proxy.timeout("connect") is None:
            self.findings.append(
                finding(
                    "haproxy_no_timeout_connect",
                    proxy.node,
                    f"{proxy.label} has no `timeout connect` (nor does its defaults section)",
                    fix=f"Add `timeout connect 5s` to the defaults section or {proxy.label}.",
                )
            )
        self.check_queue(proxy, ws)
        if ws:
            self.check_httpchk(proxy)
            self.check_balance(proxy)

    def check_queue(self, proxy: _Proxy, ws: bool) -> None:
        limited = [
            n
            for n in [*proxy.lines("server"), *proxy.lines("default-server")]
            if "maxconn" in n.args
        ]
        if (
            proxy.defaults is not None
            and not limited
            and any("maxconn" in n.args for n in proxy.defaults.children("default-server"))
        ):
            limited = [proxy.node]
        if not limited or proxy.timeout("queue") is not None:
            return
        connect = proxy.timeout("connect")
        waits = format_seconds(connect[0]) if connect else "forever (no timeout connect)"
        self.findings.append(
            finding(
                "haproxy_queue_timeout",
                limited[0],
                f"{proxy.label} limits servers with maxconn but sets no `timeout queue`: when "
                f"every server is full, handshakes wait {waits} and then get 503",
                ws=ws,
                fix=f"Add `timeout queue 10s` to {proxy.label}.",
            )
        )

    def check_httpchk(self, proxy: _Proxy) -> None:
        chk = proxy.setting("option", "httpchk")
        if chk is None:
            return
        expects = [" ".join(n.args) for n in proxy.lines("http-check") if n.args[:1] == ("expect",)]
        if any("101" in e for e in expects):
            return
        servers = proxy.lines("server")
        if servers and all(
            "port" in (a.lower() for a in s.args) or "addr" in (a.lower() for a in s.args)
            for s in servers
        ):
            # Every check goes to another port or address (a health endpoint such as
            # wsgate's /readyz on its admin port), not to the WebSocket service itself.
            return
        self.findings.append(
            finding(
                "haproxy_httpchk_no_upgrade",
                chk,
                f"{proxy.label} checks its WebSocket servers with a plain GET "
                f"(`{' '.join((chk.name, *chk.args))}`): a WebSocket-only server answers 400 or "
                "426 and is marked down",
                fix=f"In {proxy.label}, {_lower_first(cause('haproxy_httpchk_no_upgrade').fix)}",
            )
        )

    def check_balance(self, proxy: _Proxy) -> None:
        balance = proxy.setting("balance")
        algo = balance.args[0].lower() if balance is not None and balance.args else "roundrobin"
        if algo not in ("roundrobin", "static-rr"):
            return
        said = f"`balance {algo}`" if balance is not None else "the default balance roundrobin"
        self.findings.append(
            finding(
                "haproxy_balance_roundrobin",
                balance or proxy.node,
                f"{proxy.label} uses {said} for long-lived WebSockets",
                fix=f"Use `balance leastconn` in {proxy.label}.",
            )
        )

    def check_header_rules(self, proxy: _Proxy) -> None:
        routes_ws = any(t in self.ws_backends for t, _l in proxy.backends) or self.is_ws(proxy)
        targets = [proxy, *(self.by_name[t] for t, _l in proxy.backends if t in self.by_name)]
        seen: set[tuple[str, int]] = set()
        for owner in targets:
            for line in owner.lines("http-request"):
                if (line.file, line.line) in seen or len(line.args) < 2 or "unless" in line.args:
                    continue
                seen.add((line.file, line.line))
                action, header = line.args[0].lower(), line.args[1].lower()
                if header not in ("connection", "upgrade"):
                    continue
                value = line.args[2] if len(line.args) > 2 else ""
                removes = action == "del-header" or (
                    action in ("set-header", "replace-header") and not _UPGRADE_HINT.search(value)
                )
                if removes:
                    self.findings.append(
                        finding(
                            "haproxy_upgrade_header_removed",
                            line,
                            f"`http-request {' '.join(line.args)}` in {owner.label} removes the "
                            f"{line.args[1]} header a WebSocket handshake needs",
                            ws=routes_ws or self.is_ws(owner),
                        )
                    )

    def check_unused_defaults(self) -> None:
        users = {id(p.defaults) for p in self.proxies if p.kind in ("backend", "listen")}
        # Backends that have no tunnel timeout from anywhere: where the lost one belongs.
        bare = [
            p.name
            for p in self.proxies
            if p.kind in ("backend", "listen") and p.timeout("tunnel") is None
        ]
        for section in self.defaults:
            for line in section.children("timeout"):
                if line.args[:1] == ("tunnel",) and id(section) not in users:
                    setting = f"`timeout {' '.join(line.args)}`"
                    self.findings.append(
                        finding(
                            "haproxy_tunnel_timeout_ignored",
                            line,
                            "this defaults section's `timeout tunnel` reaches no backend or "
                            "listen (none follows it or names it with `from`)",
                            fix=f"Move {setting} into {_labels('backend', bare)}."
                            if bare
                            else f"Delete {setting}: every backend has its own tunnel timeout.",
                        )
                    )


def check(config: Config, options: Options) -> list[Finding]:
    """Every HAProxy finding for `config`."""
    return _Rules(config, options).run()

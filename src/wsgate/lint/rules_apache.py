"""Rules for Apache httpd 2.4: model in, findings out.

A WebSocket reaches the backend through a `ws://` ProxyPass (mod_proxy_wstunnel), an
http:// ProxyPass with `upgrade=websocket` (mod_proxy_http, 2.4.47+), or a RewriteRule
with [P] on requests whose Upgrade header says websocket. Idle tunnels close after the
ProxyPass `timeout=`, else `ProxyTimeout`, else `Timeout` (60 s when nothing sets it).
"""

from __future__ import annotations

from dataclasses import dataclass

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

DEFAULT_TIMEOUT_S = 60.0
_SCOPES = ("virtualhost",)


@dataclass(frozen=True, slots=True)
class _Proxy:
    node: Node
    path: str
    url: str
    params: dict[str, str]
    scope: Node  # the VirtualHost (or the root) it belongs to
    chain: tuple[Node, ...]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else ""


def _walk(node: Node, chain: tuple[Node, ...]) -> list[tuple[Node, tuple[Node, ...]]]:
    out: list[tuple[Node, tuple[Node, ...]]] = []
    for child in node.children():
        out.append((child, chain))
        if child.block is not None:
            out.extend(_walk(child, (*chain, child)))
    return out


def _scope_label(scope: Node) -> str:
    if scope.name.lower() == "virtualhost":
        return f"<VirtualHost {' '.join(scope.args)}>"
    return "the server config"


def _params(words: tuple[str, ...]) -> dict[str, str]:
    return {k.lower(): v for k, _s, v in (w.partition("=") for w in words if "=" in w)}


class _Rules:
    def __init__(self, config: Config, options: Options) -> None:
        self.options = options
        self.root = config.root
        self.findings: list[Finding] = []
        self.nodes = _walk(config.root, (config.root,))
        self.modules = {
            n.args[0].lower() for n, _c in self.nodes if n.name.lower() == "loadmodule" and n.args
        }
        # With no LoadModule or ServerRoot in sight, only a vhost file was given.
        self.main_seen = bool(self.modules) or any(
            n.name.lower() == "serverroot" for n, _c in self.nodes
        )
        self.proxies = self._proxies()
        # Apache shares a backend "worker" between ProxyPass lines whose URL starts with
        # the URL of one defined earlier, and keeps the first line's parameters (AH01146).
        self.owner: dict[int, _Proxy] = {}
        for i, proxy in enumerate(self.proxies):
            for earlier in self.proxies[:i]:
                if (
                    earlier.node.name.lower() != "rewriterule"
                    and proxy.node.name.lower() != "rewriterule"
                    and earlier.scope is proxy.scope
                    and proxy.url.lower().startswith(earlier.url.lower())
                ):
                    self.owner[id(proxy)] = earlier
                    break

    def _scope(self, chain: tuple[Node, ...]) -> Node:
        for level in reversed(chain):
            if level.name.lower() in _SCOPES:
                return level
        return self.root

    def _proxies(self) -> list[_Proxy]:
        found: list[_Proxy] = []
        for node, chain in self.nodes:
            name = node.name.lower()
            if name in ("proxypass", "proxypassmatch"):
                parent = chain[-1]
                in_location = parent.name.lower() in ("location", "locationmatch")
                if in_location and parent.args:
                    path, rest = parent.args[0], node.args
                elif len(node.args) >= 2:
                    path, rest = node.args[0], node.args[1:]
                else:
                    continue
                if not rest or rest[0] == "!":
                    continue
                scope = self._scope(chain)
                found.append(_Proxy(node, path, rest[0], _params(rest[1:]), scope, chain))
            elif name == "rewriterule" and len(node.args) >= 3:
                flags = node.args[2].strip("[]").upper().split(",")
                if "P" in flags or "PROXY" in flags:
                    scope = self._scope(chain)
                    found.append(_Proxy(node, node.args[0], node.args[1], {}, scope, chain))
        return found

    def is_ws(self, proxy: _Proxy) -> bool:
        if proxy.scheme in ("ws", "wss") or proxy.params.get("upgrade"):
            return True
        if self.options.ws_paths and matches_ws_path(proxy.path, self.options.ws_paths):
            return True
        return looks_ws(proxy.path) or looks_ws(proxy.url)

    def upgrade_rewrite(self, scope: Node) -> bool:
        """A RewriteCond on %{HTTP:Upgrade} in this scope sends upgrades somewhere else."""
        return any(
            n.name.lower() == "rewritecond" and n.args and "http:upgrade" in n.args[0].lower()
            for n in scope.walk()
        )

    def ws_rule_before(self, proxy: _Proxy, ws: bool) -> bool:
        """A ws:// ProxyPass in the same scope, listed first, for this path (or, for a
        WebSocket path, one under it): Apache uses the first rule that matches."""
        for other in self.proxies:
            if other is proxy:
                return False
            if other.scope is not proxy.scope or other.scheme not in ("ws", "wss"):
                continue
            theirs, ours = other.path.strip("^$"), proxy.path.strip("^$")
            if theirs == ours or (ws and theirs.startswith(ours)):
                return True
        return False

    def params(self, proxy: _Proxy) -> dict[str, str]:
        """The parameters Apache really uses: those of the worker's first ProxyPass."""
        owner = self.owner.get(id(proxy))
        return owner.params if owner is not None else proxy.params

    def run(self) -> list[Finding]:
        for proxy in self.proxies:
            ws = self.is_ws(proxy)
            self.check_shared_worker(proxy, ws)
            if proxy.scheme in ("ws", "wss"):
                self.check_wstunnel(proxy)
            elif proxy.scheme in ("http", "https") and proxy.node.name.lower() != "rewriterule":
                self.check_upgrade(proxy, ws)
            if ws:
                self.check_timeout(proxy)
        self.check_recognised()
        return self.findings

    def check_recognised(self) -> None:
        """Say so when no ProxyPass is known to carry WebSockets: every finding is an info."""
        if not self.proxies or any(self.is_ws(p) for p in self.proxies):
            return
        paths = [p.path for p in self.proxies]
        listed = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        self.findings.append(
            finding(
                "lint_no_ws_location",
                self.proxies[0].node,
                f"no WebSocket location recognised among the {len(paths)} proxied path(s) "
                f"({listed}): none goes to ws://, has upgrade=websocket or a WebSocket-like "
                "name, so each finding here is an info",
                fix="If one of them serves WebSockets, name its path: "
                f"`wsgate lint --ws-path {paths[0]} FILE` checks it at full level.",
            )
        )

    def check_shared_worker(self, proxy: _Proxy, ws: bool) -> None:
        owner = self.owner.get(id(proxy))
        if owner is None:
            return
        ignored = {
            k: v
            for k, v in proxy.params.items()
            if k in ("upgrade", "timeout") and owner.params.get(k) != v
        }
        if not ignored:
            return
        said = " ".join(f"{k}={v}" for k, v in ignored.items())
        self.findings.append(
            finding(
                "apache_shared_worker",
                proxy.node,
                f"Apache ignores `{said}` here: this URL starts with {owner.url} from "
                f"{owner.node.file}:{owner.node.line}, whose worker (and parameters) it shares "
                "(AH01146 in the error log)",
                ws=ws or "upgrade" in ignored,
                severity=None if "upgrade" in ignored or not ws else Severity.WARNING,
                fix=f"Move `{' '.join((proxy.node.name, *proxy.node.args))}` above line "
                f"{owner.node.line}, or give both lines the same parameters.",
            )
        )

    def check_wstunnel(self, proxy: _Proxy) -> None:
        if "proxy_wstunnel_module" in self.modules:
            return
        if self.main_seen and "proxy_http_module" in self.modules:
            # Since 2.4.47 mod_proxy_http tunnels ws:// itself (checked on 2.4.71).
            message = (
                f"{proxy.node.name} to {proxy.url} works without mod_proxy_wstunnel only on "
                "Apache 2.4.47 and later, where mod_proxy_http handles ws://"
            )
            severity: Severity | None = Severity.INFO
        elif self.main_seen:
            message = (
                f"{proxy.node.name} to {proxy.url} has no module to handle it: neither "
                "mod_proxy_wstunnel nor mod_proxy_http is loaded"
            )
            severity = None
        else:
            message = (
                f"{proxy.node.name} to {proxy.url} needs mod_proxy_wstunnel; no LoadModule "
                "lines were given to check (lint the main config, e.g. apache2.conf)"
            )
            self.findings.append(
                finding(
                    "apache_wstunnel_missing",
                    proxy.node,
                    message,
                    severity=Severity.INFO,
                    fix="Lint the main config, which loads the modules (e.g. `wsgate lint "
                    "/etc/apache2/apache2.conf`); if mod_proxy_wstunnel is not loaded there, "
                    "`a2enmod proxy_wstunnel`.",
                )
            )
            return
        self.findings.append(
            finding("apache_wstunnel_missing", proxy.node, message, severity=severity)
        )

    def check_upgrade(self, proxy: _Proxy, ws: bool) -> None:
        if proxy.params.get("upgrade"):  # set here; check_shared_worker says if it is lost
            return
        if self.params(proxy).get("upgrade") or self.ws_rule_before(proxy, ws):
            return
        if self.upgrade_rewrite(proxy.scope):
            return
        line = " ".join((proxy.node.name, *proxy.node.args))
        self.findings.append(
            finding(
                "apache_no_upgrade",
                proxy.node,
                f"`{line}` (path {proxy.path}) does not allow the WebSocket upgrade: Apache "
                "drops the Upgrade header",
                ws=ws,
                fix=f"Append `upgrade=websocket` to `{line}` (Apache 2.4.47+), or put "
                f"`ProxyPass {proxy.path} ws://{proxy.url.split('://', 1)[-1]}` before it.",
            )
        )

    def timeout_of(self, proxy: _Proxy) -> tuple[float, str, Node] | None:
        """(seconds, what sets it, node) for the idle limit of this proxy's tunnels."""
        params = self.params(proxy)
        if "timeout" in params:
            seconds = parse_duration(params["timeout"], bare_unit="s")
            if seconds is not None:
                return seconds, f"timeout={params['timeout']}", proxy.node
        for name in ("ProxyTimeout", "Timeout"):
            for level in reversed(proxy.chain):
                found = level.last(name)
                if found is not None and found.args:
                    seconds = parse_duration(found.args[0], bare_unit="s")
                    if seconds is not None:
                        return seconds, f"{found.name} {found.args[0]}", found
        if self.main_seen:
            return DEFAULT_TIMEOUT_S, "the default Timeout (60 s)", proxy.node
        return None

    def check_timeout(self, proxy: _Proxy) -> None:
        limit = self.timeout_of(proxy)
        if limit is None or limit[0] > DEFAULT_TIMEOUT_S:
            return
        seconds, said, node = limit
        # The worker's first ProxyPass holds the parameters (AH01146), and a RewriteRule
        # [P] takes none: then only ProxyTimeout raises the limit.
        owner = self.owner.get(id(proxy), proxy)
        where = _scope_label(proxy.scope)
        if owner.node.name.lower() == "rewriterule":
            fix = f"Set `ProxyTimeout 3600` in {where} (a RewriteRule [P] takes no `timeout=`)."
        else:
            line = " ".join((owner.node.name, *owner.node.args))
            fix = (
                f"Append `timeout=3600` to `{line}`"
                + (
                    f" (line {owner.node.line}, whose worker this path shares)"
                    if owner is not proxy
                    else ""
                )
                + f", or set `ProxyTimeout 3600` in {where}."
            )
        self.findings.append(
            finding(
                "apache_timeout_short",
                node,
                f"WebSockets through {proxy.path} are closed after {format_seconds(seconds)} "
                f"idle ({said})",
                fix=fix,
            )
        )


def check(config: Config, options: Options) -> list[Finding]:
    """Every Apache finding for `config`."""
    return _Rules(config, options).run()

"""Rules for nginx: model in, findings out.

Inheritance follows nginx: most directives take the value of the innermost level that sets
them, but `proxy_set_header` is all-or-nothing: a level with any `proxy_set_header`
inherits none from the levels above it (ngx_http_proxy_module docs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

DEFAULT_READ_TIMEOUT_S = 60.0
DEFAULT_WORKER_CONNECTIONS = 512
# A note like "# the app pings every 20 s" says the idle timeout is never reached.
_PING_NOTE = re.compile(r"ping|heartbeat", re.IGNORECASE)
_BLOCK_CONTEXTS = ("http", "server", "location", "if", "limit_except")


@dataclass(frozen=True, slots=True)
class _Site:
    """A proxied location and the levels above it, outermost first."""

    chain: tuple[Node, ...]
    proxy_pass: Node

    @property
    def location(self) -> Node:
        return self.chain[-1]

    @property
    def label(self) -> str:
        return "location " + " ".join(self.location.args)

    def effective(self, name: str) -> Node | None:
        """The directive that applies here: the innermost level that sets it."""
        for level in reversed(self.chain):
            found = level.last(name)
            if found is not None:
                return found
        return None

    def header_level(self) -> Node | None:
        """The innermost level with any proxy_set_header: its set is the one that applies."""
        for level in reversed(self.chain):
            if level.first("proxy_set_header") is not None:
                return level
        return None


def _headers(level: Node | None) -> dict[str, Node]:
    if level is None:
        return {}
    return {h.args[0].lower(): h for h in level.children("proxy_set_header") if len(h.args) >= 2}


def _render(node: Node) -> str:
    args = [a if a and not re.search(r"\s", a) else f'"{a}"' for a in node.args]
    return f"{node.name} {' '.join(args)};"


def _upstream_host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return re.split(r"[/:]", rest, maxsplit=1)[0]


class _Rules:
    def __init__(self, config: Config, options: Options) -> None:
        self.root = config.root
        self.options = options
        self.findings: list[Finding] = []
        # map $http_upgrade $connection_upgrade { ... }: variable -> source
        self.maps: dict[str, str] = {
            n.args[1]: n.args[0] for n in self.root.walk() if n.name == "map" and len(n.args) == 2
        }
        self.keepalive_upstreams = {
            n.args[0]: n
            for n in self.root.walk()
            if n.name == "upstream" and n.args and n.first("keepalive") is not None
        }

    def sites(self) -> list[_Site]:
        found: list[_Site] = []

        def visit(node: Node, chain: tuple[Node, ...]) -> None:
            for child in node.children():
                if child.block is None or child.name not in _BLOCK_CONTEXTS:
                    continue
                here = (*chain, child)
                if child.name == "location":
                    proxy = child.first("proxy_pass") or next(
                        (p for i in child.children("if") for p in i.children("proxy_pass")), None
                    )
                    if proxy is not None:
                        found.append(_Site(here, proxy))
                visit(child, here)

        visit(self.root, (self.root,))
        return found

    def is_upgrade_value(self, value: str) -> bool:
        value = value.lower()
        if "upgrade" in value and not value.startswith("$"):
            return True
        # $http_connection passes the client's own "Connection: Upgrade" through.
        if value in ("$http_upgrade", "$http_connection"):
            return True
        return self.maps.get(value, "").lower() == "$http_upgrade"

    def is_ws(self, site: _Site) -> bool:
        path = " ".join(site.location.args)
        target = site.proxy_pass.args[0] if site.proxy_pass.args else ""
        if self.options.ws_paths and matches_ws_path(
            site.location.args[-1] if site.location.args else "", self.options.ws_paths
        ):
            return True
        if looks_ws(path) or looks_ws(_upstream_host(target)):
            return True
        # Only the headers that apply here count: a location that sets its own headers
        # (say `Connection ""` for keepalive) has opted out of the server's upgrade ones.
        headers = _headers(site.header_level())
        conn = headers.get("connection")
        return "upgrade" in headers or (conn is not None and self.is_upgrade_value(conn.args[1]))

    def run(self) -> list[Finding]:
        sites = self.sites()
        any_ws = False
        for site in sites:
            ws = self.is_ws(site)
            any_ws = any_ws or ws
            self.check_version(site, ws)
            self.check_headers(site, ws)
            if ws:
                self.check_read_timeout(site)
        if any_ws:
            self.check_worker_connections()
        return self.findings

    def check_version(self, site: _Site, ws: bool) -> None:
        version = site.effective("proxy_http_version")
        if version is not None and version.args and version.args[0] == "1.1":
            return
        where = version or site.location
        target = site.proxy_pass.args[0] if site.proxy_pass.args else "?"
        said = "`proxy_http_version 1.0`" if version else "no `proxy_http_version 1.1`"
        self.findings.append(
            finding(
                "nginx_http_version",
                where,
                f"{site.label} proxies to {target} with {said}: nginx speaks HTTP/1.0 to the "
                "backend, which cannot upgrade",
                ws=ws,
                fix=f"{'Set' if version else 'Add'} `proxy_http_version 1.1;` "
                f"{'in' if version else 'to'} {site.label}.",
            )
        )

    def check_headers(self, site: _Site, ws: bool) -> None:
        level = site.header_level()
        own = _headers(level)
        # Upgrade/Connection that this level would inherit from the nearest level above
        # with headers, had it set none of its own.
        lost: list[Node] = []
        if level is not None:
            above = next(
                (
                    outer
                    for outer in reversed(site.chain[: site.chain.index(level)])
                    if outer.first("proxy_set_header") is not None
                ),
                None,
            )
            lost = [
                node
                for name, node in _headers(above).items()
                if name in ("upgrade", "connection") and name not in own
            ]
        if lost:
            first = level.first("proxy_set_header") if level is not None else None
            lines = " ".join(f"`{_render(n)}`" for n in lost)
            names = " and ".join(n.args[0] for n in lost) + (
                " headers" if len(lost) > 1 else " header"
            )
            shadow = first or site.location
            self.findings.append(
                finding(
                    "nginx_header_inheritance",
                    shadow,
                    f"`{_render(shadow)}` in {site.label} drops the {names} set at "
                    f"{lost[0].file}:{lost[0].line}: nginx inherits proxy_set_header only when "
                    "a level sets none",
                    ws=ws,
                    fix=f"Repeat in {site.label}: {lines}.",
                )
            )
            return
        self.check_upgrade(site, ws, own)
        self.check_connection(site, ws, own)

    def check_upgrade(self, site: _Site, ws: bool, own: dict[str, Node]) -> None:
        upgrade = own.get("upgrade")
        if upgrade is not None:
            value = upgrade.args[1].lower()
            if "$http_upgrade" in value or value == "websocket":
                return
        self.findings.append(
            finding(
                "nginx_upgrade_not_forwarded",
                upgrade or site.location,
                f"{site.label} does not forward the client's Upgrade header"
                + (f" (it sets `{_render(upgrade)}`)" if upgrade is not None else ""),
                ws=ws,
                fix=f"{'Set' if upgrade else 'Add'} `proxy_set_header Upgrade $http_upgrade;` "
                f"{'in' if upgrade else 'to'} {site.label}.",
            )
        )

    def map_value_for_plain(self, variable: str) -> str | None:
        """What a map on $http_upgrade gives a request without Upgrade (its '' entry)."""
        for node in self.root.walk():
            if node.name == "map" and node.args[1:] == (variable,) and node.block:
                values = {c.name: c.args[0] for c in node.block if c.args}
                return values.get("", values.get("default"))
        return None

    def check_connection(self, site: _Site, ws: bool, own: dict[str, Node]) -> None:
        conn = own.get("connection")
        host = _upstream_host(site.proxy_pass.args[0]) if site.proxy_pass.args else ""
        keepalive = self.keepalive_upstreams.get(host)
        # With upstream keepalive, plain requests must go out with an empty Connection.
        plain = "''" if keepalive is not None else "close"
        map_fix = (
            f"Add `map $http_upgrade $connection_upgrade {{ default upgrade; '' {plain}; }}` to "
            f"the http block and {'set' if conn else 'add'} `proxy_set_header Connection "
            f"$connection_upgrade;` {'in' if conn else 'to'} {site.label}."
        )
        if conn is None or not self.is_upgrade_value(conn.args[1]):
            if conn is None:
                said = "does not set Connection, so nginx sends `Connection: close`"
            elif conn.args[1] == "":
                said = (
                    '`proxy_set_header Connection ""` (keepalive advice) removes the '
                    "`Connection: upgrade` the handshake needs"
                )
            else:
                said = f"sets `{_render(conn)}`, not upgrade"
            self.findings.append(
                finding(
                    "nginx_connection_not_upgrade",
                    conn or site.location,
                    f"{site.label}: {said}",
                    ws=ws,
                    fix=map_fix,
                )
            )
            return
        if conn.args[1].startswith("$"):
            if keepalive is not None and self.map_value_for_plain(conn.args[1]) == "close":
                self.findings.append(
                    finding(
                        "nginx_keepalive_connection",
                        conn,
                        f"`{_render(conn)}` (for {site.label}) sends `Connection: close` on "
                        f"plain requests, so upstream {host}'s `keepalive` (line "
                        f"{keepalive.line}) never reuses a connection",
                        fix=f"Map the empty Upgrade to an empty Connection: `map $http_upgrade "
                        f"{conn.args[1]} {{ default upgrade; '' ''; }}`.",
                    )
                )
            return
        self.findings.append(
            finding(
                "nginx_connection_hardcoded",
                conn,
                f"`{_render(conn)}` (for {site.label}) marks every request as an upgrade, plain "
                "HTTP ones too",
                ws=ws,
                fix=map_fix,
            )
        )

    def check_read_timeout(self, site: _Site) -> None:
        node = site.effective("proxy_read_timeout")
        seconds = DEFAULT_READ_TIMEOUT_S
        if node is not None and node.args:
            parsed = parse_duration(node.args[0], bare_unit="s")
            seconds = parsed if parsed is not None else DEFAULT_READ_TIMEOUT_S
        if seconds > DEFAULT_READ_TIMEOUT_S:
            return
        if any(_PING_NOTE.search(c) for level in site.chain for c in level.comments):
            return
        said = f"`{_render(node)}`" if node is not None else "the default proxy_read_timeout"
        self.findings.append(
            finding(
                "nginx_read_timeout",
                node or site.location,
                f"{site.label}: {said} closes a WebSocket that is idle for "
                f"{format_seconds(seconds)} (no comment here mentions application pings)",
                fix=f"{'Set' if node else 'Add'} `proxy_read_timeout 3600s;` "
                f"{'in' if node else 'to'} {site.label}, or note in a comment that the "
                f"application pings more often than every {format_seconds(seconds)}.",
            )
        )

    def listening_sockets(self) -> int:
        """Distinct listen addresses; a server without `listen` listens on *:80."""
        addresses: set[str] = set()
        for server in (n for n in self.root.walk() if n.name == "server" and n.block):
            listens = [n.args[0] for n in server.children("listen") if n.args]
            addresses.update(listens or ["*:80"])
        return max(len(addresses), 1)

    def check_worker_connections(self) -> None:
        events = self.root.first("events")
        if events is None:  # a snippet without the main context: nothing to say
            return
        wc_node = events.last("worker_connections")
        wc = DEFAULT_WORKER_CONNECTIONS
        if wc_node is not None and wc_node.args and wc_node.args[0].isdigit():
            wc = int(wc_node.args[0])
        wp_node = self.root.last("worker_processes")
        workers = 1
        if wp_node is not None and wp_node.args and wp_node.args[0].isdigit():
            workers = int(wp_node.args[0])
        # "auto" counts as one: connections do not spread evenly over workers anyway.
        # Each worker also holds one connection per listening socket.
        listens = self.listening_sockets()
        holds = max(wc - listens, 0) // 2 * workers
        if holds >= self.options.capacity:
            return
        said = f"`{_render(wc_node)}`" if wc_node else f"the default worker_connections ({wc})"
        need = -(-self.options.capacity * 2 // workers) + listens
        self.findings.append(
            finding(
                "nginx_worker_connections",
                wc_node or events,
                f"{said} with {workers} worker(s) and {listens} listening socket(s) holds at "
                f"most {holds} proxied WebSockets (two connections each), fewer than the "
                f"{self.options.capacity} expected (--capacity)",
                fix=f"Set `worker_connections {need};` in the events block (and "
                f"`worker_rlimit_nofile {need * 2};`).",
            )
        )


def check(config: Config, options: Options) -> list[Finding]:
    """Every nginx finding for `config`."""
    return _Rules(config, options).run()

"""Rules for nginx: model in, findings out.

Inheritance follows nginx: most directives take the value of the innermost level that sets
them, but `proxy_set_header` is all-or-nothing: a level with any `proxy_set_header`
inherits none from the levels above it (ngx_http_proxy_module docs). So a fix that adds a
`proxy_set_header` to a location repeats there the lines the location inherits now, and a
fix that sets `Connection` to a map variable says how to define the map when none fits.

A location is a WebSocket one (full severity) when its name, upstream or upgrade headers
say so or `--ws-path` names it; one that only looks prepared for WebSockets (HTTP/1.1 or a
long read timeout set in it, a path or upstream named like a socket service, upgrade
headers above it) gets its upgrade findings as warnings, never a silent info; when no
location is either, lint says so and how to name one (`lint_no_ws_location`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

DEFAULT_READ_TIMEOUT_S = 60.0
DEFAULT_WORKER_CONNECTIONS = 512
# A note like "# the app pings every 20 s" says the idle timeout is never reached.
_PING_NOTE = re.compile(r"ping|heartbeat", re.IGNORECASE)
_BLOCK_CONTEXTS = ("http", "server", "location", "if", "limit_except")
# Names that suggest a socket service but are not in the shared WebSocket word list (a
# location so named is "prepared", not a WebSocket one): /chat is the README's demo path.
_PREPARED_WORDS = re.compile(
    r"(?:^|[^a-z0-9])(?:chat|pubsub|push|notify|notifications|presence|collab)(?:$|[^a-z0-9])",
    re.IGNORECASE,
)


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


def _level_label(level: Node) -> str:
    if level.name == "location":
        return "location " + " ".join(level.args)
    return f"the {level.name} block" if level.name else "the main context"


def _ticks(lines: list[str]) -> str:
    return " ".join(f"`{line}`" for line in lines)


class _Rules:
    def __init__(self, config: Config, options: Options) -> None:
        self.root = config.root
        self.options = options
        self.findings: list[Finding] = []
        # map $http_upgrade $connection_upgrade { ... }: variable -> source
        self.maps: dict[str, str] = {
            n.args[1]: n.args[0] for n in self.root.walk() if n.name == "map" and len(n.args) == 2
        }
        self.reasons: list[str] = []  # why the site being checked looks prepared
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

    def prepared(self, site: _Site) -> list[str]:
        """Why a location not known to serve WebSockets looks prepared for them; empty
        when it does not, or when it is set up for plain keepalive (`Connection ""`)."""
        own = _headers(site.location)
        conn = own.get("connection")
        if conn is not None and conn.args[1] == "":
            return []
        reasons: list[str] = []
        version = site.location.last("proxy_http_version")
        if version is not None and version.args[:1] == ("1.1",):
            reasons.append("`proxy_http_version 1.1` in it")
        timeout = site.location.last("proxy_read_timeout")
        if timeout is not None and timeout.args:
            seconds = parse_duration(timeout.args[0], bare_unit="s")
            if seconds is not None and seconds > DEFAULT_READ_TIMEOUT_S:
                reasons.append(f"a long `{_render(timeout)}`")
        path = " ".join(site.location.args)
        target = site.proxy_pass.args[0] if site.proxy_pass.args else ""
        if _PREPARED_WORDS.search(path):
            reasons.append("a path named like a socket service")
        elif _PREPARED_WORDS.search(_upstream_host(target)):
            reasons.append("an upstream named like a socket service")
        # Upgrade headers above that its own proxy_set_header lines hide (had they reached
        # it, it would be a WebSocket location).
        if site.location.first("proxy_set_header") is not None:
            for outer in reversed(site.chain[:-1]):
                above = _headers(outer)
                if not above:
                    continue
                conn_above = above.get("connection")
                if "upgrade" in above or (
                    conn_above is not None and self.is_upgrade_value(conn_above.args[1])
                ):
                    reasons.append(f"upgrade headers in {_level_label(outer)}")
                break
        return reasons

    def run(self) -> list[Finding]:
        sites = self.sites()
        any_ws = False
        for site in sites:
            ws = self.is_ws(site)
            any_ws = any_ws or ws
            self.reasons = [] if ws else self.prepared(site)
            self.check_version(site, ws)
            self.check_headers(site, ws)
            if ws:
                self.check_read_timeout(site)
        if any_ws:
            self.check_worker_connections()
        self.check_recognised(sites)
        return self.findings

    def add(self, code: str, node: Node, site: _Site, ws: bool, message: str, fix: str) -> None:
        """A finding about `site`: full level for a WebSocket location, at most a warning
        for one that looks prepared for WebSockets (saying why), else info."""
        severity: Severity | None = None
        if not ws and self.reasons:
            severity = Severity.WARNING if cause(code).severity == Severity.ERROR else None
            path = site.location.args[-1] if site.location.args else "/"
            message += (
                f" ({site.label} looks prepared for WebSockets: {', '.join(self.reasons)}; "
                f"`--ws-path {path}` says it serves them)"
            )
        self.findings.append(
            finding(code, node, message, ws=ws or bool(self.reasons), fix=fix, severity=severity)
        )

    def check_recognised(self, sites: list[_Site]) -> None:
        """Say when lint could not tell which location serves WebSockets, and when a
        --ws-path names none of them."""
        if not sites:
            return
        paths = [" ".join(s.location.args) for s in sites]
        listed = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        for prefix in self.options.ws_paths:
            if not any(
                matches_ws_path(s.location.args[-1], (prefix,)) for s in sites if s.location.args
            ):
                self.findings.append(
                    finding(
                        "lint_no_ws_location",
                        sites[0].location,
                        f"--ws-path {prefix} matches none of the proxied locations ({listed})",
                        fix="Give --ws-path the start of a proxied location's path, e.g. "
                        f"`--ws-path {paths[0]}`.",
                    )
                )
        if any(self.is_ws(s) or self.prepared(s) for s in sites):
            return
        self.findings.append(
            finding(
                "lint_no_ws_location",
                sites[0].location,
                f"no WebSocket location recognised among the {len(sites)} proxied "
                f"location(s) ({listed}): none has upgrade headers, a WebSocket-like name, "
                "proxy_http_version 1.1 or a long proxy_read_timeout, so each finding here "
                "is an info",
                fix="If one of them serves WebSockets, name its path: "
                f"`wsgate lint --ws-path {paths[0]} FILE` checks it at full level.",
            )
        )

    def check_version(self, site: _Site, ws: bool) -> None:
        version = site.effective("proxy_http_version")
        if version is not None and version.args and version.args[0] == "1.1":
            return
        where = version or site.location
        target = site.proxy_pass.args[0] if site.proxy_pass.args else "?"
        said = "`proxy_http_version 1.0`" if version else "no `proxy_http_version 1.1`"
        in_location = version is not None and version in site.location.children()
        self.add(
            "nginx_http_version",
            where,
            site,
            ws,
            f"{site.label} proxies to {target} with {said}: nginx speaks HTTP/1.0 to the "
            "backend, which cannot upgrade",
            f"{'Set' if in_location else 'Add'} `proxy_http_version 1.1;` "
            f"{'in' if in_location else 'to'} {site.label}.",
        )

    def connection_line(self, site: _Site) -> tuple[str, str]:
        """The `proxy_set_header Connection` line `site` needs and what to do about the map
        it reads ("" when a fitting map exists): a new map when there is none, and an empty
        Connection for plain requests when the upstream keeps connections alive."""
        host = _upstream_host(site.proxy_pass.args[0]) if site.proxy_pass.args else ""
        keepalive = host in self.keepalive_upstreams
        variable = next((v for v, s in self.maps.items() if s.lower() == "$http_upgrade"), None)
        plain = "''" if keepalive else "close"
        if variable is None:
            variable = "$connection_upgrade"
            map_line = f"map $http_upgrade {variable} {{ default upgrade; '' {plain}; }}"
            todo = f"add `{map_line}` to the http block"
        elif keepalive and self.map_value_for_plain(variable) == "close":
            map_line = f"map $http_upgrade {variable} {{ default upgrade; '' ''; }}"
            todo = f"map the empty Upgrade to an empty Connection: `{map_line}`"
        else:
            todo = ""
        return f"proxy_set_header Connection {variable};", todo

    def header_fix(self, site: _Site, lines: list[str], verb: str, todo: str = "") -> str:
        """The fix that puts `proxy_set_header` `lines` into `site`'s location: when the
        location has none of its own yet, it must repeat the ones it inherits now, or they
        are lost (a hard-coded Connection upgrade is repeated as the map variable)."""
        level = site.header_level()
        names = {line.split()[1].lower() for line in lines}
        repeat: list[str] = []
        if level is not None and level is not site.location:
            for name, node in _headers(level).items():
                if name in names:
                    continue
                if name == "connection" and not node.args[1].startswith("$"):
                    line, more = self.connection_line(site)
                    todo = todo or more
                    repeat.append(line)
                else:
                    repeat.append(_render(node))
        into = "in" if verb == "Set" else "to"
        text = f"{verb} {_ticks(lines)} {into} {site.label}"
        if repeat:
            text += (
                (
                    f", and repeat there what it inherits from {_level_label(level)} (a level "
                    f"with its own proxy_set_header inherits none): {_ticks(repeat)}"
                )
                if level is not None
                else ""
            )
        if todo:
            text += f"; {todo}"
        return text + "."

    def check_headers(self, site: _Site, ws: bool) -> None:
        level = site.header_level()
        own = _headers(level)
        # The headers this level would inherit from the nearest level above with headers,
        # had it set none of its own.
        above: Node | None = None
        if level is not None:
            above = next(
                (
                    outer
                    for outer in reversed(site.chain[: site.chain.index(level)])
                    if outer.first("proxy_set_header") is not None
                ),
                None,
            )
        inherited = _headers(above)
        lost = [inherited[n] for n in ("upgrade", "connection") if n in inherited and n not in own]
        if lost and above is not None:
            first = level.first("proxy_set_header") if level is not None else None
            names = " and ".join(n.args[0] for n in lost) + (
                " headers" if len(lost) > 1 else " header"
            )
            # Repeat every line of the level above that this one drops, Upgrade and
            # Connection first; a hard-coded Connection as the map variable.
            repeat: list[str] = []
            todo = ""
            for name, node in sorted(
                inherited.items(), key=lambda kv: (kv[0] not in ("upgrade", "connection"), 0)
            ):
                if name in own:
                    continue
                if name == "connection" and not node.args[1].startswith("$"):
                    line, todo = self.connection_line(site)
                    repeat.append(line)
                else:
                    repeat.append(_render(node))
            shadow = first or site.location
            where = _level_label(level) if level is not None else site.label
            self.add(
                "nginx_header_inheritance",
                shadow,
                site,
                ws,
                f"`{_render(shadow)}` in {site.label} drops the {names} set at "
                f"{lost[0].file}:{lost[0].line}: nginx inherits proxy_set_header only when "
                "a level sets none",
                f"Repeat in {where} the proxy_set_header lines of {_level_label(above)} "
                f"it no longer inherits: {_ticks(repeat)}" + (f"; {todo}" if todo else "") + ".",
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
        in_location = upgrade is not None and upgrade in site.location.children()
        self.add(
            "nginx_upgrade_not_forwarded",
            upgrade or site.location,
            site,
            ws,
            f"{site.label} does not forward the client's Upgrade header"
            + (f" (it sets `{_render(upgrade)}`)" if upgrade is not None else ""),
            self.header_fix(
                site,
                ["proxy_set_header Upgrade $http_upgrade;"],
                "Set" if in_location else "Add",
            ),
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
        line, todo = self.connection_line(site)
        in_location = conn is not None and conn in site.location.children()
        fix = self.header_fix(site, [line], "Set" if in_location else "Add", todo)
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
            self.add(
                "nginx_connection_not_upgrade",
                conn or site.location,
                site,
                ws,
                f"{site.label}: {said}",
                fix,
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
        self.add(
            "nginx_connection_hardcoded",
            conn,
            site,
            ws,
            f"`{_render(conn)}` (for {site.label}) marks every request as an upgrade, plain "
            "HTTP ones too",
            fix,
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

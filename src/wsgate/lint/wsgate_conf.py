"""wsgate's own TOML config: risky settings, read with tomllib. Pure: text in, findings out.

The gateway's own loader (`wsgate.config`) owns the schema: what it would refuse at start
is one `wsgate_config_invalid` finding with its words; the rules below judge settings that
load but are risky. tomllib keeps no line numbers, so a small scan of the text finds the
line of each table and key.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from wsgate.config import ConfigError, parse_config
from wsgate.lint.model import Config, Finding, LintError, Node, Options, finding, looks_ws

MIN_TIMEOUT_S = 1.0
MIN_TUNNEL_IDLE_S = 60.0
# The shortest idle timeout common on the way (nginx proxy_read_timeout, AWS ELB, Apache):
# a keepalive no more often than this comes after the cut.
COMMON_IDLE_CUT_S = 60.0
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")
_TOML_LINE = re.compile(r"at line (\d+)")


def _lines(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> line; table is "pools.NAME" or "routes[i]", key "" for the header."""
    found: dict[tuple[str, str], int] = {}
    table = ""
    arrays: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = ".".join(part.strip().strip("\"'") for part in header.group(2).split("."))
            if header.group(1) == "[[":
                index = arrays.get(name, -1) + 1
                arrays[name] = index
                name = f"{name}[{index}]"
            table = name
            found.setdefault((table, ""), lineno)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault((table, key.group(1).strip("\"'")), lineno)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _serves_ws(pool: str, routes: list[dict[str, Any]]) -> bool:
    """The pool's name or one of its routes' path prefixes suggests WebSockets."""
    prefixes = [str(r.get("path_prefix", "")) for r in routes if r.get("pool") == pool]
    return looks_ws(pool) or any(looks_ws(p) for p in prefixes)


def check(config: Config, options: Options) -> list[Finding]:
    """Every finding for a wsgate TOML config; LintError with the line for invalid TOML."""
    del options  # nothing to ask the user: the config states its own pools
    path = config.files[0]
    try:
        data = tomllib.loads(config.text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise LintError(path, int(match.group(1)) if match else 0, str(exc)) from None
    lines = _lines(config.text)

    def at(table: str, key: str = "") -> Node:
        line = lines.get((table, key)) or lines.get((table, "")) or 1
        return Node(key or table, (), path, line)

    findings: list[Finding] = []
    pools = data.get("pools")
    pools = pools if isinstance(pools, dict) else {}
    routes = data.get("routes")
    routes = [r for r in routes if isinstance(r, dict)] if isinstance(routes, list) else []
    if "routes" not in data and len(pools) == 1:
        # The gateway routes everything to the only pool when no [[routes]] are given.
        routes = [{"pool": next(iter(pools)), "path_prefix": "/"}]
    routed = {r.get("pool") for r in routes}
    server = data.get("server")
    if isinstance(server, dict):
        value = _number(server.get("header_timeout_s"))
        if value is not None and 0 < value < MIN_TIMEOUT_S:
            findings.append(
                finding(
                    "wsgate_short_timeout",
                    at("server", "header_timeout_s"),
                    f"server: header_timeout_s = {value:g} is under {MIN_TIMEOUT_S:g} s: slow "
                    "clients on mobile networks get 408",
                )
            )
    for index, route in enumerate(routes):
        pool = route.get("pool")
        if isinstance(pool, str) and pool not in pools:
            findings.append(
                finding(
                    "wsgate_route_unknown_pool",
                    at(f"routes[{index}]", "pool"),
                    f"routes[{index}] sends traffic to pool {pool!r}, which is not defined",
                )
            )
    for name, pool in pools.items():
        if not isinstance(pool, dict):
            continue
        table = f"pools.{name}"
        # queue_size defaults to 4096 in the gateway: only an explicit 0 removes the queue.
        queue = _number(pool.get("queue_size"))
        if queue is not None and queue <= 0:
            findings.append(
                finding(
                    "wsgate_no_queue",
                    at(table, "queue_size"),
                    f"pool {name!r} sets queue_size = {queue:g}: every handshake over its "
                    "limit gets 503 at once",
                )
            )
        for key in ("connect_timeout_s", "response_timeout_s"):
            value = _number(pool.get(key))
            if value is not None and 0 < value < MIN_TIMEOUT_S:
                findings.append(
                    finding(
                        "wsgate_short_timeout",
                        at(table, key),
                        f"pool {name!r}: {key} = {value:g} is under {MIN_TIMEOUT_S:g} s",
                    )
                )
        idle = _number(pool.get("tunnel_idle_timeout_s"))
        if idle is not None and 0 < idle < MIN_TUNNEL_IDLE_S:
            findings.append(
                finding(
                    "wsgate_tunnel_idle_short",
                    at(table, "tunnel_idle_timeout_s"),
                    f"pool {name!r}: tunnel_idle_timeout_s = {idle:g} closes WebSockets idle "
                    f"for {idle:g} s",
                )
            )
        findings += _frame_checks(name, pool, at)
        health = pool.get("health")
        if isinstance(health, dict) and health.get("kind") == "http" and _serves_ws(name, routes):
            findings.append(
                finding(
                    "wsgate_health_http_on_ws",
                    at(f"{table}.health", "kind"),
                    f"pool {name!r} serves WebSockets but checks its backends with a plain "
                    f"GET {health.get('path', '/')} expecting {health.get('expect_status', 200)}",
                )
            )
        if name not in routed:
            findings.append(
                finding("wsgate_pool_unrouted", at(table), f"no route uses pool {name!r}")
            )
    invalid = _loader_error(data, path, at)
    if invalid is not None and not any(f.code == "wsgate_route_unknown_pool" for f in findings):
        findings.append(invalid)
    return findings


def _frame_checks(name: str, pool: dict[str, Any], at: Any) -> list[Finding]:
    """The keepalive and handshake-policy keys: set, but not doing what they promise."""
    table = f"pools.{name}"
    found: list[Finding] = []
    ping = _number(pool.get("ping_idle_s"))
    if ping is not None and ping >= COMMON_IDLE_CUT_S:
        found.append(
            finding(
                "wsgate_ping_idle_long",
                at(table, "ping_idle_s"),
                f"pool {name!r}: ping_idle_s = {ping:g}: a side quiet that long has met a "
                f"{COMMON_IDLE_CUT_S:g} s idle timeout on the way before the first ping",
            )
        )
    timeout = _number(pool.get("ping_timeout_s"))
    if timeout is not None and not ping:
        found.append(
            finding(
                "wsgate_ping_timeout_unused",
                at(table, "ping_timeout_s"),
                f"pool {name!r} sets ping_timeout_s = {timeout:g} without ping_idle_s: the "
                "gateway sends no pings, so nothing times out",
            )
        )
    origins = pool.get("allowed_origins")
    if isinstance(origins, list) and "*" in origins:
        found.append(
            finding(
                "wsgate_origin_any",
                at(table, "allowed_origins"),
                f'pool {name!r}: allowed_origins holds "*", which allows every origin: the '
                "list checks nothing",
            )
        )
    return found


def _loader_error(data: dict[str, Any], path: str, at: Any) -> Finding | None:
    """What `wsgate check` would say about this file, as a finding at the key's line."""
    try:
        parse_config(data, path)
    except ConfigError as exc:
        table, _, key = re.sub(r"\[\d+\]$", "", exc.key).rpartition(".")
        node = at(table, key) if table else at(key)
        return finding("wsgate_config_invalid", node, str(exc).removeprefix(f"{path}: "))
    return None

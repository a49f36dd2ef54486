"""Which hop answered: recognise proxies' own error pages, RFC 9209 Proxy-Status and
wsgate's X-Wsgate-Cause, and name the timeout setting that fits an elapsed time.

Pure: an `Answer` in, an `Attribution` out. A `Server:` header alone says which proxy is
on the path, not who made the status: nginx stamps `Server: nginx` on a backend's relayed
426 too, so only the body or Proxy-Status proves that the proxy produced the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsgate.doctor.observations import Answer

NGINX = "nginx"
HAPROXY = "HAProxy"
ENVOY = "Envoy"
CADDY = "Caddy"
TRAEFIK = "Traefik"
APACHE = "Apache"
CLOUDFLARE = "Cloudflare"
AWS_ELB = "AWS ELB"
WSGATE = "wsgate"

# (product, pattern on the body): pages these proxies write themselves.
_BODY_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (NGINX, re.compile(r"<hr>\s*<center>\s*(nginx|openresty)", re.I)),
    (
        HAPROXY,
        re.compile(
            r"<html><body><h1>\d{3} [^<]*</h1>\s*("
            r"No server is available to handle this request|"
            r"The server didn't respond in time|"
            r"The server returned an invalid or incomplete response|"
            r"Your browser sent an invalid request|"
            r"Your browser didn't send a complete request in time|"
            r"Request forbidden by administrative rules|"
            r"You sent too many requests|"
            r"An internal server error occurred)",
            re.I,
        ),
    ),
    (
        ENVOY,
        re.compile(
            r"^(upstream connect error or disconnect/reset before headers|no healthy upstream"
            r"|upstream request timeout|stream timeout)",
            re.I,
        ),
    ),
    (
        APACHE,
        re.compile(
            r"<title>50\d Proxy Error</title>|The proxy server (received an invalid|"
            r"could not handle)|<address>Apache/",
            re.I,
        ),
    ),
    (CLOUDFLARE, re.compile(r"cloudflare.*(Ray ID|cf-error)|error code: 52\d", re.I | re.S)),
    (TRAEFIK, re.compile(r"^(Bad Gateway|Gateway Timeout|Service Unavailable)\s*$")),
)

# Server header prefixes (lower case) that name a proxy on the path.
_SERVER_PRODUCTS: tuple[tuple[str, str], ...] = (
    ("nginx", NGINX),
    ("openresty", NGINX),
    ("envoy", ENVOY),
    ("istio-envoy", ENVOY),
    ("caddy", CADDY),
    ("apache", APACHE),
    ("cloudflare", CLOUDFLARE),
    ("awselb", AWS_ELB),
    ("wsgate", WSGATE),
)


@dataclass(frozen=True, slots=True)
class ProxyStatusEntry:
    """One member of an RFC 9209 Proxy-Status list: `name; error=...; details="..."`."""

    name: str
    error: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who answered: `product` is the intermediary recognised on the path (None when
    none is), `generated` is True when that intermediary made the status itself."""

    product: str | None
    generated: bool
    evidence: tuple[str, ...] = ()
    proxy_status: tuple[ProxyStatusEntry, ...] = ()
    wsgate_cause: str | None = None

    @property
    def who(self) -> str:
        """Words for the report: 'nginx itself', 'the backend (through nginx)'..."""
        if self.product is None:
            return "the server"
        if self.generated:
            return f"{self.product} itself"
        return f"the backend (relayed through {self.product})"


_PARAM = re.compile(r';\s*([a-z0-9_.*-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?', re.I)


def parse_proxy_status(values: list[str]) -> tuple[ProxyStatusEntry, ...]:
    """Parse Proxy-Status header values (RFC 9209 section 2, a structured-field list).

    Lenient: a member that does not parse is skipped rather than failing the report.
    """
    entries: list[ProxyStatusEntry] = []
    for member in _split_members(", ".join(values)):
        head, _, rest = member.partition(";")
        name = head.strip().strip('"')
        if not name:
            continue
        params: dict[str, str] = {}
        for match in _PARAM.finditer(";" + rest):
            raw = match.group(2) or ""
            if raw.startswith('"'):
                raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            params[match.group(1).lower()] = raw
        entries.append(ProxyStatusEntry(name, params.get("error"), params.get("details")))
    return tuple(entries)


def _split_members(text: str) -> list[str]:
    # Split on commas outside quoted strings.
    members: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            members.append("".join(current))
            current = []
            continue
        current.append(char)
    members.append("".join(current))
    return [m.strip() for m in members if m.strip()]


def server_product(answer: Answer) -> str | None:
    """The proxy named by the Server header or a proxy-specific header, if any."""
    server = (answer.header("Server") or "").strip().lower()
    for prefix, product in _SERVER_PRODUCTS:
        if server.startswith(prefix):
            return product
    if answer.header("CF-RAY") is not None:
        return CLOUDFLARE
    if any(key.lower().startswith("x-envoy-") for key, _ in answer.headers):
        return ENVOY
    return None


def recognise(answer: Answer) -> Attribution:
    """Say which hop produced `answer` and how we know."""
    entries = parse_proxy_status(answer.header_all("Proxy-Status"))
    cause = answer.header("X-Wsgate-Cause")
    if cause:
        return Attribution(
            WSGATE,
            True,
            (f"X-Wsgate-Cause: {cause.strip()}",),
            entries,
            cause.strip(),
        )
    erring = [entry for entry in entries if entry.error]
    if erring:
        entry = erring[-1]
        named = WSGATE if entry.name.lower() == WSGATE else entry.name
        detail = f"; details={entry.details!r}" if entry.details else ""
        return Attribution(
            named, True, (f"Proxy-Status: {entry.name} error={entry.error}{detail}",), entries
        )
    on_path = server_product(answer)
    for product, pattern in _BODY_SIGNATURES:
        if pattern.search(answer.body):
            if product == TRAEFIK and on_path is not None:
                continue  # a bare 'Bad Gateway' body from a known server is not Traefik's
            return Attribution(product, True, (f"the body is {product}'s own error page",), entries)
    status = answer.status or 0
    if on_path in (CADDY, AWS_ELB) and status >= 500 and len(answer.body.strip()) < 400:
        # Caddy answers 502 with an empty body; ELB's page is a bare <h1>.
        return Attribution(
            on_path, True, (f"a short {status} page with Server: {on_path}",), entries
        )
    if on_path == CLOUDFLARE and 520 <= status <= 527:
        return Attribution(on_path, True, (f"status {status} is Cloudflare's own",), entries)
    if on_path is not None:
        server = answer.header("Server") or on_path
        return Attribution(
            on_path,
            False,
            (
                f"Server: {server} names {on_path} on the path, but the body is not its own "
                "error page: the status comes from behind it",
            ),
            entries,
        )
    via = answer.header("Via")
    if via:
        return Attribution(f"a proxy (Via: {via})", False, (f"Via: {via}",), entries)
    return Attribution(None, False, (), entries)


@dataclass(frozen=True, slots=True)
class Setting:
    product: str
    name: str
    default_s: float | None


# (product, phase) -> the setting that ends that phase. Phases: "response" (waiting for
# the backend's answer to the handshake), "connect" (connecting to the backend), "idle"
# (an established WebSocket with no traffic).
_SETTINGS: dict[tuple[str, str], Setting] = {
    (NGINX, "response"): Setting(NGINX, "proxy_read_timeout", 60),
    (NGINX, "connect"): Setting(NGINX, "proxy_connect_timeout", 60),
    (NGINX, "idle"): Setting(NGINX, "proxy_read_timeout (or proxy_send_timeout)", 60),
    (HAPROXY, "response"): Setting(HAPROXY, "timeout server", None),
    (HAPROXY, "connect"): Setting(HAPROXY, "timeout connect", None),
    (HAPROXY, "idle"): Setting(HAPROXY, "timeout tunnel (else timeout client/server)", None),
    (APACHE, "response"): Setting(APACHE, "Timeout / ProxyTimeout", 60),
    (APACHE, "idle"): Setting(APACHE, "Timeout / ProxyTimeout", 60),
    (ENVOY, "response"): Setting(ENVOY, "route timeout", 15),
    (ENVOY, "idle"): Setting(ENVOY, "stream_idle_timeout", 300),
    (CLOUDFLARE, "response"): Setting(CLOUDFLARE, "proxy read timeout (fixed, 524)", 100),
    (CLOUDFLARE, "idle"): Setting(CLOUDFLARE, "WebSocket idle timeout", 100),
    (AWS_ELB, "response"): Setting(AWS_ELB, "idle_timeout.timeout_seconds", 60),
    (AWS_ELB, "idle"): Setting(AWS_ELB, "idle_timeout.timeout_seconds", 60),
    (CADDY, "response"): Setting(CADDY, "reverse_proxy transport read_timeout", None),
    (CADDY, "connect"): Setting(CADDY, "reverse_proxy transport dial_timeout", 3),
    (TRAEFIK, "response"): Setting(TRAEFIK, "serversTransport responseHeaderTimeout", None),
    (WSGATE, "response"): Setting(WSGATE, "pools.NAME.response_timeout_s", 60),
    (WSGATE, "connect"): Setting(WSGATE, "pools.NAME.connect_timeout_s", 5),
    (WSGATE, "idle"): Setting(WSGATE, "pools.NAME.tunnel_idle_timeout_s", None),
}


def _about(seconds: float) -> str:
    """'2 s', '1.5 s', '62 s': one decimal only where it matters."""
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"


def _fits(elapsed_s: float, default_s: float) -> bool:
    return abs(elapsed_s - default_s) <= max(1.5, 0.05 * default_s)


def timeout_setting(product: str | None, phase: str, elapsed_s: float) -> str:
    """Words naming the setting that fits `elapsed_s` for `product` in `phase`.

    Unknown product: every known default that fits, or a plain 'a timeout of N s'."""
    seconds = f"{elapsed_s:.1f} s"
    setting = _SETTINGS.get((product, phase)) if product else None
    if setting is not None:
        if setting.default_s is not None and _fits(elapsed_s, setting.default_s):
            return (
                f"{seconds} fits {setting.product} {setting.name} at its default of "
                f"{setting.default_s:g} s"
            )
        default = f" (default {setting.default_s:g} s)" if setting.default_s else ""
        return (
            f"{seconds} fits {setting.product} {setting.name} set to about "
            f"{_about(elapsed_s)}{default}"
        )
    candidates = [
        f"{s.product} {s.name}"
        for (_, p), s in _SETTINGS.items()
        if p == phase and s.default_s is not None and _fits(elapsed_s, s.default_s)
    ]
    if candidates:
        return f"{seconds} fits the default of " + ", ".join(dict.fromkeys(candidates))
    return f"{seconds} looks like a timeout of about {_about(elapsed_s)} on the path"

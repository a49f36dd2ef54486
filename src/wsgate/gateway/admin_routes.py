"""The admin listener's requests and answers without a socket (admin.py does the I/O): a
request head parsed, the token, Host and Origin rules, which page a request asks for, and
an answer's bytes.

Call `parse_head` on the head read, `body_length` before reading a body, then `decide`:
it answers a `Reply` itself (a refusal, a redirect, a 404, a 405), or names what
admin.py must fetch to answer: an `Asset`, a `Page`, or a `BackendPost`, whose
`resolve` against the known backends gives a `Reply` or the `Drain` to carry out.
"""

from __future__ import annotations

import enum
import hmac
import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from wsgate.config.load import is_loopback

MAX_BODY_BYTES = 4096
MAX_DRAIN_S = 86_400.0
COOKIE = "wsgate_admin"
ASSETS = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
REASONS = {
    200: "OK",
    202: "Accepted",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
# The head of /api/events (server-sent events): no length, the frames follow as they come.
EVENTS_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
    b"X-Accel-Buffering: no\r\n\r\nretry: 1000\n\n"
)


class Request:
    __slots__ = ("headers", "method", "path", "query")

    def __init__(self, method: str, target: str, headers: dict[str, str]) -> None:
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query = parse_qs(parts.query)
        self.headers = headers


def parse_head(head: bytes) -> Request | None:
    """The request line and headers (names in lower case); None when malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers)


def body_length(request: Request) -> int | None:
    """The length of the body to read (and ignore); None when Content-Length is not a
    number or over MAX_BODY_BYTES (a 413)."""
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return None
    return int(length)


# == answers =================================================================================
def to_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True, slots=True)
class Reply:
    """One whole answer; every answer ends its connection."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def json_reply(status: int, value: Any, *headers: tuple[str, str]) -> Reply:
    return Reply(status, to_json(value), headers=headers)


HEAD_TOO_LARGE = json_reply(431, {"error": "request head too large"})
MALFORMED = json_reply(400, {"error": "malformed request"})
BODY_TOO_LARGE = json_reply(413, {"error": f"a body of at most {MAX_BODY_BYTES} bytes"})
METRICS_OFF = json_reply(404, {"error": "metrics are off ([admin] metrics)"})


def asset_reply(asset: Asset, data: bytes) -> Reply:
    return Reply(200, data, asset.content_type, (("Content-Security-Policy", CSP),))


def alive_reply(pid: int, up_s: float) -> Reply:
    return json_reply(200, {"status": "alive", "pid": pid, "up_s": round(up_s, 1)})


def ready_reply(state: dict[str, Any]) -> Reply:
    """/readyz: 200 when the merged snapshot says ready, else 503; the reasons either way."""
    keys = ("ready", "phase", "workers", "reasons")
    return json_reply(200 if state["ready"] else 503, {key: state[key] for key in keys})


# == who may ask =============================================================================
def refusal(request: Request, token: str) -> Reply | None:
    """Why this request is refused before routing (401 or 403), or None. With a token,
    it is required; without one (a loopback listener), the Host must be a loopback name,
    against DNS rebinding. /healthz and /readyz are open, for probes."""
    if request.path in ("/healthz", "/readyz"):
        return None
    if token:
        if not authorized(request, token):
            why = "a bearer token is required (Authorization: Bearer TOKEN)"
            return json_reply(401, {"error": why}, ("WWW-Authenticate", 'Bearer realm="wsgate"'))
    else:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if not is_loopback(name.strip("[]")):
            return json_reply(403, {"error": f"Host {host!r} is not a loopback name"})
    origin = request.headers.get("origin")
    cross = origin is not None and urlsplit(origin).netloc != request.headers.get("host")
    if request.method == "POST" and cross:
        return json_reply(403, {"error": "cross-origin POST refused"})
    return None


def authorized(request: Request, token: str) -> bool:
    """The bearer token, else the cookie, else `/?token=` (which wins), compared in
    constant time."""
    given = b""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip().encode()
    else:
        for part in request.headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given = value.encode()
    if request.path == "/" and "token" in request.query:
        given = request.query["token"][0].encode()
    return hmac.compare_digest(given, token.encode())


# == which page ==============================================================================
class Page(enum.Enum):
    EVENTS = "/api/events"
    STATE = "/api/state"
    METRICS = "/metrics"
    HEALTH = "/healthz"
    READY = "/readyz"


PAGES = {page.value: page for page in Page}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # in the wsgate.observe package
    content_type: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Drain (or enable) a backend, its tunnels closed evenly over `over_s`."""

    backend: str
    drained: bool
    over_s: float

    def reply(self) -> Reply:
        body: dict[str, Any] = {"backend": self.backend, "drained": self.drained}
        if self.drained:
            body["over_s"] = self.over_s
        return json_reply(202, body)


@dataclass(frozen=True, slots=True)
class BackendPost:
    """POST /api/backends/NAME/drain[?over_s=S] or .../enable, its name decoded."""

    backend: str
    drained: bool
    over_s: str | None  # as the query gave it

    def resolve(self, known: Collection[str], default_over_s: float) -> Reply | Drain:
        """The 404 for a backend not in `known`, the 400 for a bad `over_s`, else the
        drain to carry out (its `reply` once done)."""
        if self.backend not in known:
            return json_reply(404, {"error": f"no backend called {self.backend!r}"})
        over_s = default_over_s
        if self.over_s is not None:
            try:
                over_s = float(self.over_s)
            except ValueError:
                over_s = -1.0
            if not (math.isfinite(over_s) and 0 <= over_s <= MAX_DRAIN_S):
                return json_reply(400, {"error": f"over_s: 0 to {MAX_DRAIN_S:g} seconds"})
        return Drain(self.backend, self.drained, over_s)


def decide(request: Request, token: str) -> Reply | Asset | Page | BackendPost:
    """What to answer a request whose body is read: the refusal, if any, then the route."""
    refused = refusal(request, token)
    if refused is not None:
        return refused
    path, method = request.path, request.method
    if path.startswith("/api/backends/"):
        if method != "POST":
            return json_reply(405, {"error": "POST only"}, ("Allow", "POST"))
        return backend_post(request)
    if method not in ("GET", "HEAD"):
        return json_reply(405, {"error": "GET only"}, ("Allow", "GET, HEAD"))
    if path == "/" and token and "token" in request.query:
        # The browser keeps the token in a cookie, and the address bar loses it.
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        return json_reply(303, {}, ("Location", "/"), ("Set-Cookie", cookie))
    if path in ASSETS:
        return Asset(*ASSETS[path])
    if path in PAGES:
        return PAGES[path]
    return json_reply(404, {"error": f"no such page: {path}"})


def backend_post(request: Request) -> Reply | BackendPost:
    name, _, action = request.path.removeprefix("/api/backends/").rpartition("/")
    name = unquote(name)
    if action not in ("drain", "enable") or not name:
        return json_reply(404, {"error": "POST /api/backends/NAME/drain or enable"})
    over_s = request.query["over_s"][0] if "over_s" in request.query else None
    return BackendPost(name, action == "drain", over_s)

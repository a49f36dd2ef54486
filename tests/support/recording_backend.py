"""A scripted HTTP/1.1 backend that records exactly what it receives and parses.

Each accepted connection gets a thread and its own httptools parser. Every request the
backend parses is appended, in parse order and across all connections, to one log with
its method, target, headers and body; bytes that do not parse as a request where a
request must start are logged as a parse error. The raw bytes of every connection are
kept for failure messages.

What it answers is chosen per request by the `X-Behave` header (a request without one,
such as a request smuggled inside a body, gets `ok`):

- `ok`: 200 with a Content-Length body, once the whole request (body included) is read;
- `chunked`: the same answer with a chunked body;
- `early404`: 404 as soon as the head is parsed, before reading the body, keeping the
  connection alive (as servers that refuse an upgrade do); the body is then read and
  dropped according to the framing the head declares;
- `ws101`: for a WebSocket upgrade, 101 with the right Sec-WebSocket-Accept, then an
  echo of every later byte; for anything else, `ok`;
- `refuse400`: 400 as soon as the head is parsed, keeping the connection alive, then
  the body read and dropped as for `early404`;
- `close`: close the connection right after the head, without an answer.

Every answer made from a request carries `X-Target: <target>`, so that a client can tell
which request an answer belongs to.

httptools (llhttp) ends a request that has `Connection: upgrade` and `Upgrade` right
after its head, whatever Content-Length or Transfer-Encoding say. This backend does what
RFC 9112 section 6 says instead: unless it switches protocols, the body that the head
declares is read (and belongs to that request) before the next request starts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httptools

from wsgate.protocol.handshake import accept_value as handshake_accept

BEHAVIOURS = ("ok", "chunked", "early404", "ws101", "refuse400", "close")
EARLY = frozenset({"early404", "refuse400", "close"})
RECV_TIMEOUT_S = 30.0


@dataclass
class Parsed:
    """One request as the backend parsed it."""

    conn: int
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    # The whole message was read as HTTP (not cut short, not turned into a tunnel).
    complete: bool = False
    tunnel: bool = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def behaviour(self) -> str:
        value = (self.header(b"x-behave") or b"ok").decode("latin-1")
        return value if value in BEHAVIOURS else "ok"

    @property
    def declares_body(self) -> bool:
        length = self.header(b"content-length")
        chunked = b"chunked" in (self.header(b"transfer-encoding") or b"").lower()
        return chunked or (length is not None and length.strip() not in (b"", b"0"))


@dataclass
class ParseError:
    conn: int
    error: str
    at: bytes  # the bytes that failed to parse, as fed


@dataclass
class Log:
    requests: list[Parsed] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    raw: dict[int, bytearray] = field(default_factory=dict)


def accept_value(key: bytes) -> bytes:
    return handshake_accept(key.strip())


def _answer(status: int, reason: bytes, target: bytes, body: bytes, *, chunked: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nX-Target: %s\r\n" % (status, reason, target)
    if chunked:
        half = len(body) // 2
        parts = [p for p in (body[:half], body[half:]) if p]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class _Connection:
    """One backend connection: parse, record, answer as scripted."""

    def __init__(self, backend: RecordingBackend, sock: socket.socket, conn_id: int) -> None:
        self.backend = backend
        self.sock = sock
        self.conn_id = conn_id
        self.parser = httptools.HttpRequestParser(self)
        self.current: Parsed | None = None
        self.continuing: Parsed | None = None  # reading the body of an upgrade request
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.tunnel = False
        self.closing = False

    # -- the connection's loop -----------------------------------------------------------
    def run(self) -> None:
        self.sock.settimeout(RECV_TIMEOUT_S)
        with contextlib.suppress(OSError):
            while not self.closing:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.backend.keep_raw(self.conn_id, data)
                if self.tunnel:
                    self.sock.sendall(data)
                else:
                    self.feed(data)
        with contextlib.suppress(OSError):
            self.sock.close()

    def feed(self, data: bytes) -> None:
        while data and not self.tunnel and not self.closing:
            try:
                self.parser.feed_data(data)
                data = b""
            except httptools.HttpParserUpgrade as upgrade:
                data = self.after_upgrade(data[upgrade.args[0] :])
            except httptools.HttpParserError as exc:
                self.parse_error(exc, data)

    def parse_error(self, exc: Exception, data: bytes) -> None:
        self.backend.record_error(ParseError(self.conn_id, repr(exc), data))
        self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.closing = True

    def after_upgrade(self, rest: bytes) -> bytes:
        """The request just parsed asked for an upgrade; `rest` came after its head.
        Returns what is left to parse as HTTP."""
        request = self.current
        assert request is not None
        if self.closing:
            return b""
        is_websocket = b"websocket" in (request.header(b"upgrade") or b"").lower()
        key = request.header(b"sec-websocket-key")
        if request.behaviour == "ws101" and is_websocket and key is not None:
            request.tunnel = True
            self.send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_value(key) + b"\r\n\r\n"
            )
            self.tunnel = True
            if rest:
                self.sock.sendall(rest)
            return b""
        # Not switching: the body the head declares comes first (RFC 9112 section 6).
        self.parser = httptools.HttpRequestParser(self)
        if not request.declares_body:
            self.finish(request)
            return rest
        framing = [
            b"%s: %s\r\n" % (name, value)
            for name, value in request.headers
            if name.lower() in (b"content-length", b"transfer-encoding")
        ]
        self.continuing = request
        head = b"POST /body-of-the-upgrade HTTP/1.1\r\n" + b"".join(framing) + b"\r\n"
        try:
            self.parser.feed_data(head)
        except httptools.HttpParserError as exc:
            self.parse_error(exc, head)
            return b""
        return rest

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.continuing is not None:
            return
        request = Parsed(self.conn_id, self.parser.get_method(), self.url, self.headers)
        self.current = request
        self.backend.record(request)
        behaviour = request.behaviour
        if behaviour == "close":
            self.closing = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        elif behaviour == "early404":
            self.send(_answer(404, b"Not Found", request.target, b"not found", chunked=False))
        elif behaviour == "refuse400":
            self.send(_answer(400, b"Bad Request", request.target, b"refused", chunked=False))

    def on_body(self, body: bytes) -> None:
        request = self.continuing or self.current
        if request is not None:
            request.body += body

    def on_message_complete(self) -> None:
        request = self.continuing
        if request is not None:
            self.continuing = None
            self.finish(request)
            return
        if self.parser.should_upgrade():
            return  # after_upgrade decides, once httptools stops at the upgrade
        if self.current is not None:
            self.finish(self.current)

    # -- answers ---------------------------------------------------------------------------
    def finish(self, request: Parsed) -> None:
        request.complete = True
        if self.closing or request.behaviour in EARLY:
            return
        text = b"ok " + request.target
        self.send(_answer(200, b"OK", request.target, text, chunked=request.behaviour == "chunked"))

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)


class RecordingBackend:
    """Listens on 127.0.0.1 (`port`). `collect()` ends every connection and hands over
    the log of what came since the last `collect()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log = Log()
        self._conns: list[tuple[socket.socket, threading.Thread]] = []
        self._next_id = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                conn_id = self._next_id
                self._next_id += 1
                self._log.raw[conn_id] = bytearray()
                thread = threading.Thread(
                    target=_Connection(self, sock, conn_id).run,
                    daemon=True,
                    name=f"recording-backend-{conn_id}",
                )
                self._conns.append((sock, thread))
            thread.start()

    def keep_raw(self, conn_id: int, data: bytes) -> None:
        with self._lock:
            raw = self._log.raw.get(conn_id)
            if raw is not None:
                raw += data

    def record(self, request: Parsed) -> None:
        with self._lock:
            if request.conn in self._log.raw:  # not a connection from before a collect()
                self._log.requests.append(request)

    def record_error(self, error: ParseError) -> None:
        with self._lock:
            if error.conn in self._log.raw:
                self._log.errors.append(error)

    def collect(self, join_timeout_s: float = 10.0) -> Log:
        """End every connection and return the log since the last call.

        Each connection gets a FIN: the gateway closes the idle ones it keeps in its pool
        (so that none carries over to what comes next), and each connection's thread
        reads what is still on its way before it sees the end, so the log is complete.
        """
        with self._lock:
            conns, self._conns = self._conns, []
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        for _, thread in conns:
            thread.join(join_timeout_s)
        for sock, thread in conns:
            with contextlib.suppress(OSError):
                if thread.is_alive():  # a peer that did not close: wake the thread up
                    sock.shutdown(socket.SHUT_RDWR)
                    thread.join(join_timeout_s)
                sock.close()
        with self._lock:
            log, self._log = self._log, Log()
        return log

    def start(self) -> None:
        self._acceptor.start()

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._listener.close()
        self.collect(join_timeout_s=2.0)


@contextlib.contextmanager
def recording_backend() -> Iterator[RecordingBackend]:
    backend = RecordingBackend()
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()

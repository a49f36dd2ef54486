"""The doctor's I/O, one layer at a time: DNS, TCP per address, TLS with ALPN, the upgrade
request and its answer, then ping, echo and close on the open WebSocket.

Every wait is bounded by the settings' timeout. Each function returns an observation
(and the live connection when there is one); `runner.run` strings them together and
`verdicts.diagnose` judges them. The handshake bytes come from the `websockets`
Sans-I/O `ClientProtocol`, so the request is exactly what a conforming client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from wsgate.doctor.observations import (
    BODY_EXCERPT_BYTES,
    Answer,
    AnswerKind,
    CloseObs,
    DnsObs,
    EchoObs,
    PingObs,
    Settings,
    Target,
    TcpAttempt,
    TcpOutcome,
    TlsFailure,
    TlsObs,
    UpgradeObs,
)
from wsgate.doctor.verdicts import accept_for

# A response head larger than this is not a sane handshake answer.
MAX_HEAD_BYTES = 65536
# After the head of a non-101 answer, wait at most this long for the body excerpt.
BODY_WAIT_S = 2.0
# At most this many resolved addresses get a TCP attempt.
MAX_ADDRESSES = 8
# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that mean an expired or not yet valid cert,
# and a name that does not match.
_X509_TIME_ERRORS = {9, 10, 13, 14}
_X509_NAME_ERRORS = {62, 64}
PING_PAYLOAD = b"wsgate-doctor"


def now_ms(start: float) -> float:
    return (time.monotonic() - start) * 1000.0


def parse_target(url: str) -> Target:
    """Split a ws:// or wss:// URL; ValueError with a clear message otherwise."""
    try:
        uri = parse_uri(url)
    except Exception as exc:  # websockets raises InvalidURI; say it plainly
        raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({exc})") from None
    return Target(url, uri.host, uri.port, uri.resource_name, uri.secure)


async def resolve(host: str, port: int, timeout_s: float) -> DnsObs:
    """Resolve `host` to every address. Names under .invalid fail here without a query,
    as RFC 6761 section 6.4 asks of resolver APIs."""
    start = time.monotonic()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return DnsObs(host, (host,), now_ms(start), literal=True)
    name = host.rstrip(".").lower()
    if name == "invalid" or name.endswith(".invalid"):
        return DnsObs(
            host, (), now_ms(start), error="names under .invalid never resolve (RFC 6761)"
        )
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s
        )
    except TimeoutError:
        return DnsObs(host, (), now_ms(start), error=f"no answer within {timeout_s:g} s")
    except OSError as exc:
        return DnsObs(host, (), now_ms(start), error=exc.strerror or str(exc))
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return DnsObs(host, addresses, now_ms(start))


async def connect_tcp(
    address: str, port: int, timeout_s: float
) -> tuple[TcpAttempt, socket.socket | None]:
    """One TCP connect; the socket is returned only when it connected."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout_s)
    except TimeoutError:
        sock.close()
        return TcpAttempt(address, port, TcpOutcome.TIMEOUT, now_ms(start)), None
    except ConnectionRefusedError:
        sock.close()
        return TcpAttempt(address, port, TcpOutcome.REFUSED, now_ms(start)), None
    except OSError as exc:
        sock.close()
        error = exc.strerror or str(exc)
        return TcpAttempt(address, port, TcpOutcome.ERROR, now_ms(start), error), None
    return TcpAttempt(address, port, TcpOutcome.CONNECTED, now_ms(start)), sock


async def connect_all(
    addresses: tuple[str, ...], port: int, timeout_s: float
) -> tuple[tuple[TcpAttempt, ...], socket.socket | None]:
    """Connect to every address at once; keep the first (in DNS order) that connected."""
    results = await asyncio.gather(
        *(connect_tcp(address, port, timeout_s) for address in addresses[:MAX_ADDRESSES])
    )
    chosen: socket.socket | None = None
    for _, sock in results:
        if sock is None:
            continue
        if chosen is None:
            chosen = sock
        else:
            sock.close()
    return tuple(attempt for attempt, _ in results), chosen


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A client context that offers ALPN http/1.1, the only protocol RFC 6455 runs on."""
    ctx = ssl.create_default_context(cafile=settings.cacert)
    if settings.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def classify_tls_error(exc: BaseException) -> tuple[TlsFailure, str]:
    """Map an ssl exception to a failure kind and the words of its evidence."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = f"certificate verify failed: {exc.verify_message} (X509 error {exc.verify_code})"
        if exc.verify_code in _X509_TIME_ERRORS:
            return TlsFailure.EXPIRED, message
        if exc.verify_code in _X509_NAME_ERRORS:
            return TlsFailure.HOSTNAME, message
        return TlsFailure.UNTRUSTED, message
    if isinstance(exc, (ConnectionResetError, EOFError, ssl.SSLEOFError)):
        return TlsFailure.HANDSHAKE, (
            "the server closed the connection during the TLS handshake; the port may not "
            "speak TLS: try ws://"
        )
    text = str(exc) or type(exc).__name__
    if "no application protocol" in text.lower():
        return TlsFailure.NO_ALPN, f"{text} (offered ALPN: http/1.1)"
    if "wrong version number" in text.lower() or "record layer failure" in text.lower():
        return TlsFailure.HANDSHAKE, f"{text}; the port may speak plain HTTP: try ws://"
    return TlsFailure.HANDSHAKE, text


@dataclass
class Link:
    """A connected stream (TCP, maybe TLS) to the server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


async def open_link(
    sock: socket.socket, target: Target, settings: Settings, ctx: ssl.SSLContext | None
) -> tuple[Link | None, TlsObs | None]:
    """Wrap a connected socket in streams, doing the TLS handshake when `ctx` is given."""
    if ctx is None:
        reader, writer = await asyncio.open_connection(sock=sock)
        return Link(reader, writer), None
    start = time.monotonic()
    server_hostname = target.host
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                sock=sock,
                ssl=ctx,
                server_hostname=server_hostname,
                ssl_handshake_timeout=settings.timeout_s,
            ),
            settings.timeout_s + 1.0,
        )
    except TimeoutError:
        sock.close()
        error = f"no TLS handshake within {settings.timeout_s:g} s"
        return None, TlsObs(now_ms(start), failure=TlsFailure.TIMEOUT, error=error)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        failure, error = classify_tls_error(exc)
        return None, TlsObs(now_ms(start), failure=failure, error=error)
    ms = now_ms(start)
    obj = writer.get_extra_info("ssl_object")
    version = alpn = None
    subject = not_after = ""
    days_left: float | None = None
    if isinstance(obj, (ssl.SSLObject, ssl.SSLSocket)):
        version = obj.version()
        alpn = obj.selected_alpn_protocol()
        cert = obj.getpeercert() or {}
        subject = _subject(cert.get("subject", ()))
        raw_after = cert.get("notAfter")
        if isinstance(raw_after, str):
            not_after = raw_after
            days_left = (ssl.cert_time_to_seconds(raw_after) - time.time()) / 86400.0
    tls = TlsObs(
        ms,
        version=version or "",
        alpn=alpn,
        verified=not settings.insecure,
        cert_subject=subject,
        cert_not_after=not_after,
        days_left=days_left,
    )
    return Link(reader, writer), tls


def _subject(rdns: Any) -> str:
    """'CN=example.org' from getpeercert()'s tuple of relative distinguished names."""
    return ", ".join(f"{pair[0]}={pair[1]}" for rdn in rdns for pair in rdn)


def build_request(target: Target, settings: Settings) -> tuple[bytes, str]:
    """The upgrade request bytes and the Sec-WebSocket-Key they carry."""
    proto = ClientProtocol(
        parse_uri(target.url),
        origin=Origin(settings.origin) if settings.origin else None,
        subprotocols=[Subprotocol(s) for s in settings.subprotocols] or None,
    )
    request = proto.connect()
    request.headers["User-Agent"] = "wsgate-doctor"
    for key, value in settings.headers:
        if key.lower() in request.headers:
            del request.headers[key]
        request.headers[key] = value
    return request.serialize(), proto.key


def parse_head(data: bytes) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    """Parse an HTTP/1.x response head (status line and fields, RFC 9112 section 4)."""
    lines = data.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return int(code), reason.strip(), tuple(headers)


def dechunk(data: bytes) -> bytes:
    """Best-effort decoding of a chunked body excerpt (may be cut short)."""
    out = bytearray()
    while data:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            break
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def _garbage(buf: bytes) -> str:
    if buf[:1] in (b"\x15", b"\x16"):
        return "TLS record bytes instead of an HTTP response"
    return f"not an HTTP response: {buf[:40]!r}"


async def read_answer(link: Link, request: bytes, timeout_s: float) -> tuple[Answer, bytes]:
    """Send the upgrade request and read the answer's head (and a body excerpt unless
    it is a 101). Returns the answer and the bytes after the head of a 101."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    buf = b""
    ttfb: float | None = None
    try:
        link.writer.write(request)
        await asyncio.wait_for(link.writer.drain(), timeout_s)
        while b"\r\n\r\n" not in buf:
            if len(buf) >= 5 and not buf.startswith(b"HTTP/"):
                return Answer(AnswerKind.GARBAGE, now_ms(start), error=_garbage(buf)), b""
            if len(buf) > MAX_HEAD_BYTES:
                error = f"response head larger than {MAX_HEAD_BYTES} bytes"
                return Answer(AnswerKind.GARBAGE, now_ms(start), error=error), b""
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(link.reader.read(65536), remaining)
            if not chunk:
                kind = AnswerKind.EOF
                if buf and not buf.startswith(b"HTTP/"[: len(buf)]):
                    kind = AnswerKind.GARBAGE
                return Answer(
                    kind,
                    now_ms(start),
                    ttfb_ms=ttfb,
                    received_bytes=len(buf),
                    error=_garbage(buf) if kind is AnswerKind.GARBAGE else "EOF",
                ), b""
            if ttfb is None:
                ttfb = now_ms(start)
            buf += chunk
    except TimeoutError:
        return Answer(AnswerKind.TIMEOUT, now_ms(start), ttfb_ms=ttfb, received_bytes=len(buf)), b""
    except (ConnectionResetError, BrokenPipeError) as exc:
        return Answer(
            AnswerKind.RESET,
            now_ms(start),
            ttfb_ms=ttfb,
            received_bytes=len(buf),
            error=str(exc) or "connection reset",
        ), b""
    except (ssl.SSLError, OSError) as exc:
        return Answer(
            AnswerKind.RESET,
            now_ms(start),
            ttfb_ms=ttfb,
            received_bytes=len(buf),
            error=str(exc) or type(exc).__name__,
        ), b""
    elapsed = now_ms(start)
    head, _, rest = buf.partition(b"\r\n\r\n")
    try:
        status, reason, headers = parse_head(head)
    except ValueError as exc:
        return Answer(AnswerKind.GARBAGE, elapsed, error=str(exc)), b""
    if status == 101:
        return Answer(
            AnswerKind.RESPONSE, elapsed, status, reason, headers, "", ttfb, len(buf)
        ), rest
    body = await _read_body(link, rest, headers, min(BODY_WAIT_S, timeout_s))
    answer = Answer(
        AnswerKind.RESPONSE,
        elapsed,
        status,
        reason,
        headers,
        body.decode("utf-8", "replace"),
        ttfb,
        len(buf),
    )
    return answer, b""


async def _read_body(
    link: Link, body: bytes, headers: tuple[tuple[str, str], ...], wait_s: float
) -> bytes:
    fields = {name.lower(): value for name, value in headers}
    chunked = "chunked" in fields.get("transfer-encoding", "").lower()
    try:
        wanted = min(int(fields.get("content-length", "")), BODY_EXCERPT_BYTES)
    except ValueError:
        wanted = BODY_EXCERPT_BYTES
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with contextlib.suppress(TimeoutError, OSError):
        while len(body) < wanted and not (chunked and body.endswith(b"0\r\n\r\n")):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            chunk = await asyncio.wait_for(link.reader.read(65536), remaining)
            if not chunk:
                break
            body += chunk
    if chunked:
        body = dechunk(body)
    return body[:wanted]


def upgrade_of(answer: Answer, key: str, settings: Settings) -> UpgradeObs:
    """The fields of a 101 answer that the client must check."""
    return UpgradeObs(
        accept_expected=accept_for(key),
        # Two Accept values fail in every client, so they are joined and never match.
        accept_received=", ".join(answer.header_all("Sec-WebSocket-Accept")) or None,
        upgrade=answer.header("Upgrade"),
        connection=", ".join(answer.header_all("Connection")) or None,
        subprotocols_offered=settings.subprotocols,
        subprotocol=answer.header("Sec-WebSocket-Protocol"),
        extensions=", ".join(answer.header_all("Sec-WebSocket-Extensions")) or None,
    )


@dataclass
class Conn:
    """An open WebSocket: the stream plus a websockets protocol for the frames."""

    link: Link
    proto: ClientProtocol
    frames: list[Frame] = field(default_factory=list)
    eof: bool = False
    reset: bool = False

    @classmethod
    def opened(cls, link: Link, target: Target, leftover: bytes) -> Conn:
        proto = ClientProtocol(parse_uri(target.url), state=State.OPEN, max_size=None)
        conn = cls(link, proto)
        if leftover:
            conn._feed(leftover)
        return conn

    def _feed(self, data: bytes) -> None:
        self.proto.receive_data(data)
        self.frames.extend(e for e in self.proto.events_received() if isinstance(e, Frame))
        self.flush()

    def flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk and not self.link.writer.is_closing():
                self.link.writer.write(chunk)

    def _ended(self) -> None:
        if not self.eof:
            self.eof = True
            self.proto.receive_eof()
            self.frames.extend(e for e in self.proto.events_received() if isinstance(e, Frame))

    async def pump(self, deadline: float) -> bool:
        """Read once, until `deadline` (loop time). False when nothing came in time."""
        if self.eof:
            return False
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        try:
            data = await asyncio.wait_for(self.link.reader.read(65536), remaining)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
            self._ended()
            return True
        except (ssl.SSLError, OSError):
            self._ended()
            return True
        if data:
            self._feed(data)
        else:
            self._ended()
        return True

    def close_frame(self) -> tuple[int, str] | None:
        received = self.proto.close_rcvd
        return None if received is None else (received.code, received.reason)

    def abort(self) -> None:
        self.link.writer.close()


async def ping(conn: Conn, timeout_s: float) -> PingObs:
    """Send a ping and wait for its pong (RFC 6455 section 5.5.3)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    if conn.eof or conn.proto.state is not State.OPEN:
        return PingObs(False, 0.0, "the connection was already closed")
    seen = len(conn.frames)
    conn.proto.send_ping(PING_PAYLOAD)
    conn.flush()
    while True:
        for frame in conn.frames[seen:]:
            if frame.opcode is Opcode.PONG and frame.data == PING_PAYLOAD:
                return PingObs(True, now_ms(start))
        seen = len(conn.frames)
        if conn.eof:
            why = "reset" if conn.reset else "closed"
            close = conn.close_frame()
            if close is not None:
                why = f"closed with close frame {close[0]} {close[1]!r}"
            return PingObs(False, now_ms(start), f"the connection was {why} instead of a pong")
        if not await conn.pump(deadline):
            return PingObs(False, now_ms(start), f"no pong within {timeout_s:g} s")


async def echo(conn: Conn, text: str, timeout_s: float) -> EchoObs:
    """Send one text message and wait for any data message back."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    seen = len(conn.frames)
    conn.proto.send_text(text.encode())
    conn.flush()
    while True:
        for frame in conn.frames[seen:]:
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                received = bytes(frame.data).decode("utf-8", "replace")
                return EchoObs(text, True, now_ms(start), received)
        seen = len(conn.frames)
        if conn.eof or not await conn.pump(deadline):
            return EchoObs(text, False, now_ms(start))


async def close(conn: Conn, timeout_s: float) -> CloseObs:
    """The closing handshake (RFC 6455 section 7.1.2): send 1000, expect a close frame
    back, then the server's end of TCP."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout_s
    try:
        if conn.proto.state is State.OPEN:
            conn.proto.send_close(1000)
            conn.flush()
        while not conn.eof and await conn.pump(deadline):
            pass
    finally:
        conn.abort()
    received = conn.close_frame()
    if received is not None:
        return CloseObs(now_ms(start), True, received[0])
    error = "the server closed TCP without a close frame"
    if not conn.eof:
        error = f"no close frame within {timeout_s:g} s"
    return CloseObs(now_ms(start), False, error=error)


@dataclass
class Handshake:
    """One whole opening handshake on its own connection (for --burst and --idle-bisect)."""

    outcome: str
    ms: float
    conn: Conn | None = None


async def handshake(
    address: str, target: Target, settings: Settings, ctx: ssl.SSLContext | None
) -> Handshake:
    """TCP, TLS, upgrade request and 101 check; `outcome` is '101' or what went wrong."""
    start = time.monotonic()
    attempt, sock = await connect_tcp(address, target.port, settings.timeout_s)
    if sock is None:
        return Handshake(f"tcp {attempt.outcome}", now_ms(start))
    link, tls = await open_link(sock, target, settings, ctx)
    if link is None:
        failure = tls.failure if tls is not None else "failed"
        return Handshake(f"tls {failure}", now_ms(start))
    request, key = build_request(target, settings)
    answer, rest = await read_answer(link, request, settings.timeout_s)
    if answer.kind is not AnswerKind.RESPONSE:
        link.close()
        return Handshake(str(answer.kind), now_ms(start))
    if answer.status != 101:
        link.close()
        return Handshake(f"http {answer.status}", now_ms(start))
    if answer.header("Sec-WebSocket-Accept") != accept_for(key):
        link.close()
        return Handshake("bad accept", now_ms(start))
    return Handshake("101", now_ms(start), Conn.opened(link, target, rest))


def goodbye(conn: Conn) -> None:
    """Send a close frame without waiting for the answer, then drop the connection."""
    with contextlib.suppress(Exception):
        if conn.proto.state is State.OPEN:
            conn.proto.send_close(1000)
            conn.flush()
    conn.abort()

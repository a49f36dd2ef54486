"""The doctor's I/O up to the answer: DNS, TCP per address, TLS with ALPN, the upgrade
request and its answer (`session.py` takes over after a 101).

Every wait is bounded by the settings' timeout. Each function returns an observation
(and the live connection when there is one); `runner.run` strings them together and
`verdicts.diagnose` judges them. The handshake's bytes are built, parsed and checked by
`protocol.client_handshake`, as in the storm and the gateway's health checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from websockets.uri import parse_uri

from wsgate.doctor.observations import (
    BODY_EXCERPT_BYTES,
    Answer,
    AnswerKind,
    DnsObs,
    QuietObs,
    Settings,
    Target,
    TcpAttempt,
    TcpOutcome,
    TlsFailure,
    TlsObs,
    UpgradeObs,
)
from wsgate.protocol import client_handshake
from wsgate.protocol.client_handshake import ResponseHead, check_101, parse_response_head
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake import accept_value

# A response head larger than this is not a sane handshake answer.
MAX_HEAD_BYTES = client_handshake.MAX_RESPONSE_HEAD_BYTES
# After the head of a non-101 answer, wait at most this long for the body excerpt.
BODY_WAIT_S = 2.0
# After a connection dropped without a status, a second one that sends nothing waits at
# least this long (or twice the first one's time) for the other side to close it.
QUIET_MIN_WAIT_S = 2.0
# At most this many resolved addresses get a TCP attempt.
MAX_ADDRESSES = 8
# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that mean an expired or not yet valid cert,
# and a name that does not match.
_X509_TIME_ERRORS = {9, 10, 13, 14}
_X509_NAME_ERRORS = {62, 64}


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


def quiet_wait_s(dropped_after_ms: float, timeout_s: float) -> float:
    """How long the quiet connection waits: long enough for whatever closed the first
    connection after `dropped_after_ms` to close this one too, within the timeout."""
    return min(timeout_s, max(QUIET_MIN_WAIT_S, 2 * dropped_after_ms / 1000.0 + 0.5))


async def quiet_connect(address: str, port: int, wait_s: float) -> QuietObs:
    """Connect and send nothing for up to `wait_s`. An HTTP or TLS server waits for the
    client to speak; a TCP-level proxy or port forwarder (HAProxy mode tcp, docker-proxy,
    kubectl port-forward) whose own backend refuses closes the connection anyway."""
    attempt, sock = await connect_tcp(address, port, wait_s)
    if sock is None:
        return QuietObs(wait_s, False, attempt.ms, error=f"TCP {attempt.outcome}")
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    try:
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), wait_s)
    except TimeoutError:
        return QuietObs(wait_s, False, now_ms(start))
    except ConnectionResetError:
        return QuietObs(wait_s, True, now_ms(start), reset=True)
    except OSError as exc:
        return QuietObs(wait_s, False, now_ms(start), error=exc.strerror or str(exc))
    finally:
        sock.close()
    if data:  # the server speaks first (SSH, SMTP): it did not close
        return QuietObs(wait_s, False, now_ms(start), error=f"{len(data)} bytes sent unasked")
    return QuietObs(wait_s, True, now_ms(start))


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
    """The upgrade request bytes and the Sec-WebSocket-Key they carry. A --header
    replaces the field of the same name that the doctor would send."""
    key = client_handshake.make_key(os.urandom(16))
    request = client_handshake.build_request(
        target.resource,
        client_handshake.host_header(target.host, target.port, target.secure),
        key,
        settings.headers,
        origin=settings.origin or None,
        subprotocols=settings.subprotocols,
        user_agent="wsgate-doctor",
    )
    return request, key.decode("ascii")


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
        while (head := parse_response_head(buf, MAX_HEAD_BYTES)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(link.reader.read(65536), remaining)
            if not chunk:
                return Answer(
                    AnswerKind.EOF,
                    now_ms(start),
                    ttfb_ms=ttfb,
                    received_bytes=len(buf),
                    error="EOF",
                ), b""
            if ttfb is None:
                ttfb = now_ms(start)
            buf += chunk
    except ProtocolError as exc:  # not HTTP, or a head over MAX_HEAD_BYTES
        return Answer(AnswerKind.GARBAGE, now_ms(start), error=exc.reason), b""
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
    rest = buf[head.size :]
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers
    )
    if head.status == 101:
        return Answer(
            AnswerKind.RESPONSE, elapsed, 101, head.reason, headers, "", ttfb, len(buf)
        ), rest
    body = await _read_body(link, rest, headers, min(BODY_WAIT_S, timeout_s))
    answer = Answer(
        AnswerKind.RESPONSE,
        elapsed,
        head.status,
        head.reason,
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
        accept_expected=accept_value(key.encode("ascii")).decode("ascii"),
        # Two Accept values fail in every client, so they are joined and never match.
        accept_received=", ".join(answer.header_all("Sec-WebSocket-Accept")) or None,
        upgrade=answer.header("Upgrade"),
        connection=", ".join(answer.header_all("Connection")) or None,
        subprotocols_offered=settings.subprotocols,
        subprotocol=answer.header("Sec-WebSocket-Protocol"),
        extensions=", ".join(answer.header_all("Sec-WebSocket-Extensions")) or None,
    )


def failed_101(answer: Answer, key: str, settings: Settings) -> str | None:
    """Why a 101 `answer` would not open a WebSocket at a conforming client (the checks
    of `client_handshake.check_101`), or None when it would."""
    head = ResponseHead(
        answer.status or 0,
        answer.reason,
        [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers],
        answer.received_bytes,
    )
    try:
        check_101(key.encode("ascii"), head, settings.subprotocols)
    except ProtocolError as exc:
        return exc.reason
    return None

"""The client side of the RFC 6455 opening handshake (section 4.1): the upgrade request,
the answer's head read from bytes, and the checks a client makes of a 101.

Pure: no socket, clock or randomness. Call `make_key(os.urandom(16))`, send
`build_request(...)`, feed every byte that arrives to `parse_response_head` until it
returns a head (None means: read more), then, when `head.status == 101`, call
`check_101(key, head)`; the bytes after `head.size` are the server's first frames. The
doctor, the storm's lean client and the gateway's health checks all go through here.

The head parser is a small one rather than httptools' `HttpResponseParser`: that parser
reports where a head ends only for an upgrade, fails a 101 without `Upgrade` with no
offset at all, and refuses whitespace before a colon, which RFC 9112 section 5.1 lets a
client tolerate (and which the doctor must see past to diagnose the rest).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from wsgate.findings import CauseCode
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake import KEY_BYTES, check_upgrade_response
from wsgate.protocol.headers import HeaderList, get_all, get_one
from wsgate.protocol.limits import HEAD_END

# A response head (interim 1xx heads included) larger than this is refused; callers with
# a tighter budget pass their own `max_bytes`.
MAX_RESPONSE_HEAD_BYTES = 65536
_STATUS_PREFIX = b"HTTP/1."
# Bytes of a bad line quoted in an error.
_QUOTE_BYTES = 80
_OWS = b" \t"


def make_key(random16: bytes) -> bytes:
    """A Sec-WebSocket-Key (section 4.1, item 7): 16 random bytes, base64-encoded. The
    caller draws them (`os.urandom(16)`), so this stays pure and testable."""
    if len(random16) != KEY_BYTES:
        raise ValueError(f"a Sec-WebSocket-Key needs {KEY_BYTES} random bytes")
    return base64.b64encode(random16)


def host_header(host: str, port: int, secure: bool) -> str:
    """The Host value for a ws:// or wss:// URL (section 4.1, item 4): IPv6 literals in
    brackets, the port only when it is not the scheme's default."""
    if ":" in host:
        host = f"[{host}]"
    if port != (443 if secure else 80):
        host = f"{host}:{port}"
    return host


def build_request(
    path: str,
    host: str,
    key: bytes,
    headers: Iterable[tuple[str, str | None]] = (),
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    user_agent: str | None = None,
) -> bytes:
    """The GET request of section 4.1 for `path` (with its query) on `host`.

    Fields in order: Host, Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version,
    then Origin, Sec-WebSocket-Protocol and User-Agent when given. Each of `headers` whose
    name (any case) is one of those replaces it in place (the last one given wins; None
    drops it); the others are appended in order. Raises ValueError for a CR, LF or NUL
    anywhere, or a header name that is empty, spaced or holds a colon.
    """
    fields: list[list[str | None]] = [
        ["Host", host],
        ["Upgrade", "websocket"],
        ["Connection", "Upgrade"],
        ["Sec-WebSocket-Key", key.decode("ascii")],
        ["Sec-WebSocket-Version", "13"],
    ]
    if origin is not None:
        fields.append(["Origin", origin])
    if subprotocols:
        fields.append(["Sec-WebSocket-Protocol", ", ".join(subprotocols)])
    if user_agent is not None:
        fields.append(["User-Agent", user_agent])
    own = {str(field[0]).lower(): field for field in fields}
    for name, value in headers:
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"not a header name: {name!r}")
        field = own.get(name.lower())
        if field is not None:
            field[0], field[1] = name, value
        elif value is not None:
            fields.append([name, value])
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields if value is not None]
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    # A CR or LF in a value would end the field early and smuggle in one of its own.
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        raise ValueError("CR, LF or NUL in the request line or a header")
    return (text + "\r\n\r\n").encode()


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed response head. `size` counts its bytes (any interim 1xx heads before it
    and the blank line included): what follows in the data is the body or, after a 101,
    the first frames. `interim` lists the statuses of the 1xx heads skipped over."""

    status: int
    reason: str
    headers: HeaderList
    size: int
    version: str = "1.1"
    interim: tuple[int, ...] = ()


def parse_response_head(
    data: bytes | bytearray, max_bytes: int = MAX_RESPONSE_HEAD_BYTES
) -> ResponseHead | None:
    """Parse the response head at the start of `data` (RFC 9112 sections 4 and 5); None
    while it is incomplete: call again with more bytes.

    Interim 1xx answers other than 101 are skipped (RFC 9110 section 15.2). Raises
    ProtocolError `upstream_bad_response` as soon as the bytes cannot be an HTTP/1.x
    response, and `upstream_header_too_large` when the head does not end within
    `max_bytes` (a head of exactly `max_bytes` passes).

    Tolerant where a client may be (RFC 9112 section 5): whitespace before a colon and
    around a value is dropped, obs-fold continuation lines are joined with a space.
    """
    start = 0
    interim: list[int] = []
    while True:
        probe = bytes(data[start : start + len(_STATUS_PREFIX)])
        if probe != _STATUS_PREFIX[: len(probe)]:
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_RESPONSE, _not_http(bytes(data[start : start + 40]))
            )
        end = data.find(HEAD_END, start, max_bytes)
        if end < 0:
            if len(data) >= max_bytes:
                raise ProtocolError(
                    CauseCode.UPSTREAM_HEADER_TOO_LARGE,
                    f"response head larger than {max_bytes} bytes",
                )
            return None
        head = _parse_one(bytes(data[start:end]), end + len(HEAD_END))
        if head.status == 101 or head.status >= 200:
            return replace(head, interim=tuple(interim)) if interim else head
        interim.append(head.status)
        start = head.size


def _not_http(data: bytes) -> str:
    if data[:1] in (b"\x15", b"\x16"):
        return "TLS record bytes instead of an HTTP response"
    return f"not an HTTP response: {data[:40]!r}"


def _parse_one(head: bytes, size: int) -> ResponseHead:
    lines = head.split(b"\r\n")
    line = lines[0]
    # status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4);
    # a missing SP after the code is tolerated, as most clients do.
    if (
        len(line) < 12
        or not line.startswith(_STATUS_PREFIX)
        or not line[7:8].isdigit()
        or line[8:9] != b" "
        or not line[9:12].isdigit()
        or line[9] == 0x30  # RFC 9110 section 15: codes run from 100 to 599 (or 999)
        or (len(line) > 12 and line[12:13] != b" ")
    ):
        quoted = line[:_QUOTE_BYTES].decode("latin-1")
        raise ProtocolError(
            CauseCode.UPSTREAM_BAD_RESPONSE, f"not an HTTP/1.x status line: {quoted!r}"
        )
    headers = HeaderList()
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise ProtocolError(
                    CauseCode.UPSTREAM_BAD_RESPONSE, "a continuation line before any header"
                )
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(_OWS)).strip(_OWS))
            continue
        name, sep, value = line.partition(b":")
        name = name.strip(_OWS)
        if not sep or not name:
            quoted = line[:_QUOTE_BYTES].decode("latin-1")
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_RESPONSE, f"malformed header line: {quoted!r}"
            )
        headers.append((name, value.strip(_OWS)))
    status_line = lines[0]
    return ResponseHead(
        int(status_line[9:12]),
        status_line[13:].strip(_OWS).decode("latin-1"),
        headers,
        size,
        status_line[5:8].decode("ascii"),
    )


def check_101(key: bytes, head: ResponseHead, subprotocols: Sequence[str] = ()) -> None:
    """Fail the connection unless `head` completes the handshake for `key` (section 4.1,
    the client's checks of the server's answer, items 1-6): status 101, `Upgrade:
    websocket`, `Connection: Upgrade`, the right Sec-WebSocket-Accept (checked by
    `handshake.check_upgrade_response`, as the gateway checks its backends), no extension
    (none is offered) and no subprotocol but one of `subprotocols`.

    Raises ProtocolError `upstream_bad_accept` (the cause the gateway gives a backend's
    failed upgrade); its `reason` says which check failed.
    """
    if head.status != 101:
        raise ProtocolError(CauseCode.UPSTREAM_BAD_ACCEPT, f"status {head.status}, not 101")
    check_upgrade_response(key, head.headers)
    extensions = get_one(head.headers, b"sec-websocket-extensions")
    if extensions is not None:
        words = extensions.decode("latin-1")
        raise ProtocolError(
            CauseCode.UPSTREAM_BAD_ACCEPT,
            f"101 with Sec-WebSocket-Extensions {words!r}, none offered",
        )
    selected = get_all(head.headers, b"sec-websocket-protocol")
    if selected:
        chosen = b", ".join(selected).strip().decode("latin-1")
        if len(selected) > 1 or chosen not in subprotocols:
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_ACCEPT,
                f"101 selects subprotocol {chosen!r}; offered: {list(subprotocols) or 'none'}",
            )

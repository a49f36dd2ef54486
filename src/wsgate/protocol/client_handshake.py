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
client tolerate (and which the doctor must see past to diagnose the rest). The storm
runs it thousands of times a second, so the common path is kept short.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from wsgate.findings import CauseCode
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake import KEY_BYTES, accept_value
from wsgate.protocol.headers import Headers
from wsgate.protocol.limits import HEAD_END

# A response head (interim 1xx heads included) larger than this is refused; callers with
# a tighter budget pass their own `max_bytes`.
MAX_RESPONSE_HEAD_BYTES = 65536
_STATUS_PREFIX = b"HTTP/1."
_SP = ord(" ")
_ZERO = ord("0")
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
    fields: list[tuple[str, str | None]] = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key.decode("ascii")),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        fields.append(("Origin", origin))
    if subprotocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if user_agent is not None:
        fields.append(("User-Agent", user_agent))
    own = len(fields)
    for name, value in headers:
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"not a header name: {name!r}")
        lower = name.lower()
        mine = next((i for i in range(own) if fields[i][0].lower() == lower), None)
        if mine is not None:
            fields[mine] = (name, value)
        elif value is not None:
            fields.append((name, value))
    lines = [f"{name}: {value}\r\n" for name, value in fields if value is not None]
    text = f"GET {path} HTTP/1.1\r\n" + "".join(lines)
    # A CR or LF in a value would end the field early and smuggle in one of its own.
    breaks = len(lines) + 1
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        raise ValueError("CR, LF or NUL in the request line or a header")
    return (text + "\r\n").encode()


class ResponseHead(NamedTuple):
    """A parsed response head. `headers` keep their order and case, values stripped of
    surrounding whitespace. `size` counts the head's bytes (any interim 1xx heads before
    it and the blank line included): what follows in the data is the body or, after a
    101, the first frames. `interim` lists the statuses of the 1xx heads skipped over.

    A NamedTuple rather than a frozen dataclass: it is made once per handshake, and the
    storm makes thousands a second."""

    status: int
    reason: str
    headers: Headers
    size: int
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
    end = data.find(HEAD_END, 0, max_bytes)
    if end >= 0 and data.startswith(_STATUS_PREFIX):  # the common case: a whole head
        whole = _parse_one(bytes(data[:end]), end + len(HEAD_END))
        if whole.status >= 200 or whole.status == 101:
            return whole
    head = _head_at(data, 0, max_bytes)
    interim: list[int] = []
    while head is not None and head.status < 200 and head.status != 101:
        interim.append(head.status)
        head = _head_at(data, head.size, max_bytes)
    if head is not None and interim:
        return head._replace(interim=tuple(interim))
    return head


def _head_at(data: bytes | bytearray, start: int, max_bytes: int) -> ResponseHead | None:
    end = data.find(HEAD_END, start, max_bytes)
    if not data.startswith(_STATUS_PREFIX, start):
        begun = bytes(data[start : start + len(_STATUS_PREFIX)])
        if len(begun) == len(_STATUS_PREFIX) or not _STATUS_PREFIX.startswith(begun):
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_RESPONSE,
                _not_http(bytes(data[start : start + _QUOTE_BYTES])),
            )
    if end < 0:
        if len(data) >= max_bytes:
            raise ProtocolError(
                CauseCode.UPSTREAM_HEADER_TOO_LARGE, f"response head larger than {max_bytes} bytes"
            )
        return None
    return _parse_one(bytes(data[start:end]), end + len(HEAD_END))


def _not_http(data: bytes) -> str:
    if data[:1] in (b"\x15", b"\x16"):
        return "TLS record bytes instead of an HTTP response"
    if data.startswith(b"HTTP/"):  # another version: HTTP/2 or HTTP/0.9
        quoted = data.split(b"\r\n", 1)[0][:_QUOTE_BYTES].decode("latin-1")
        return f"not an HTTP/1.x status line: {quoted!r}"
    return f"not an HTTP response: {data[:40]!r}"


def _parse_one(head: bytes, size: int) -> ResponseHead:
    lines = head.split(b"\r\n")
    first = lines[0]
    # status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 section 4),
    # with a code from 100 to 999 (RFC 9110 section 15). A missing SP after the code is
    # tolerated, as most clients do. By hand: a regular expression costs more here.
    if (
        len(first) < 12
        or not first.startswith(_STATUS_PREFIX)
        or not first[7:8].isdigit()
        or first[8] != _SP
        or not first[9:12].isdigit()
        or first[9] == _ZERO
        or (len(first) > 12 and first[12] != _SP)
    ):
        quoted = first[:_QUOTE_BYTES].decode("latin-1")
        raise ProtocolError(
            CauseCode.UPSTREAM_BAD_RESPONSE, f"not an HTTP/1.x status line: {quoted!r}"
        )
    headers: Headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name and name[0] not in _OWS and name[-1] not in _OWS:
            headers.append((name, value.strip(_OWS)))
        else:
            _odd_line(headers, line)
    reason = first[13:].strip(_OWS).decode("latin-1")
    return ResponseHead(int(first[9:12]), reason, headers, size)


def _odd_line(headers: Headers, line: bytes) -> None:
    """One field line, however odd: obs-fold is joined to the field before, whitespace
    before the colon dropped (RFC 9112 sections 5.1 and 5.2), anything else refused."""
    if line[:1] in (b" ", b"\t"):
        if not headers:
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_RESPONSE, "a continuation line before any header"
            )
        name, value = headers[-1]
        headers[-1] = (name, (value + b" " + line.strip(_OWS)).strip(_OWS))
        return
    name, sep, value = line.partition(b":")
    name = name.strip(_OWS)
    if not sep or not name:
        raise _malformed(line)
    headers.append((name, value.strip(_OWS)))


def _malformed(line: bytes) -> ProtocolError:
    quoted = line[:_QUOTE_BYTES].decode("latin-1")
    return ProtocolError(CauseCode.UPSTREAM_BAD_RESPONSE, f"malformed header line: {quoted!r}")


def check_101(key: bytes, head: ResponseHead, subprotocols: Sequence[str] = ()) -> None:
    """Fail the connection unless `head` completes the handshake for `key`: the client's
    checks of the server's answer in section 4.1, in their order: status 101, `Upgrade:
    websocket`, `Connection: Upgrade`, the Sec-WebSocket-Accept for `key`, no extension
    (none is offered) and no subprotocol but one of `subprotocols`.

    Raises ProtocolError `upstream_bad_accept`, the cause the gateway gives a backend's
    failed upgrade (its `handshake.check_upgrade_response` makes the middle three checks
    with the same words); the `reason` says which check failed.
    """
    if head.status != 101:
        raise ProtocolError(CauseCode.UPSTREAM_BAD_ACCEPT, f"status {head.status}, not 101")
    upgrade = connection = accept = extensions = selected = b""
    accepts = selections = 0
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"upgrade":
            upgrade += b"," + value
        elif lower == b"connection":
            connection += b"," + value
        elif lower == b"sec-websocket-accept":
            accept, accepts = value, accepts + 1
        elif lower == b"sec-websocket-extensions":
            extensions += b", " + value
        elif lower == b"sec-websocket-protocol":
            selected, selections = value, selections + 1
    # The common case first: one field holding the token alone.
    if upgrade[1:].lower() != b"websocket" and not _has_token(upgrade, b"websocket"):
        raise ProtocolError(CauseCode.UPSTREAM_BAD_ACCEPT, "101 without Upgrade: websocket")
    if connection[1:].lower() != b"upgrade" and not _has_token(connection, b"upgrade"):
        raise ProtocolError(CauseCode.UPSTREAM_BAD_ACCEPT, "101 without Connection: Upgrade")
    if not accepts:
        raise ProtocolError(CauseCode.UPSTREAM_BAD_ACCEPT, "101 without Sec-WebSocket-Accept")
    # Two values never match: a client joins them, as the gateway's check does.
    if accepts > 1 or accept != accept_value(key):
        raise ProtocolError(
            CauseCode.UPSTREAM_BAD_ACCEPT,
            "Sec-WebSocket-Accept does not match the Sec-WebSocket-Key that was sent",
        )
    if extensions:
        words = extensions[2:].decode("latin-1")
        raise ProtocolError(
            CauseCode.UPSTREAM_BAD_ACCEPT,
            f"101 with Sec-WebSocket-Extensions {words!r}, none offered",
        )
    if selections:
        chosen = selected.decode("latin-1")
        if selections > 1 or chosen not in subprotocols:
            raise ProtocolError(
                CauseCode.UPSTREAM_BAD_ACCEPT,
                f"101 selects subprotocol {chosen!r}; offered: {list(subprotocols) or 'none'}",
            )


def _has_token(values: bytes, token: bytes) -> bool:
    """Whether the comma-separated `values` name `token` (lower case), in any case."""
    return any(item.strip(_OWS).lower() == token for item in values.split(b","))

"""The client's bytes as requests: heads parsed by httptools, bodies, and what follows
an upgrade request, held to the head, trailer and body limits. Pure: bytes and `now` in,
calls on its `RequestSink` out; the reader never answers anybody itself.

A limit is enforced twice for heads, because neither count alone is enough: the raw
count of bytes read while a head is open (a head that never ends is refused before the
parser buffers it) and the count of parsed fields (a head that starts behind another in
the same read escapes the raw count). A chunked body that stops carrying data counts as
trailer (chunk extensions included), so a trailer cannot grow without bound either.
"""

from __future__ import annotations

from typing import Protocol

import httptools

from wsgate.gateway.states import READER_MOVES, BadTransitionError, Reader, Request
from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.forward import Framing, request_framing
from wsgate.protocol.handshake import check_upgrade_request, wants_websocket
from wsgate.protocol.headers import HeaderList, Headers
from wsgate.protocol.limits import head_overflows, head_tail
from wsgate.protocol.proxy_protocol import parse_proxy_header
from wsgate.protocol.request import check_request_head


class RequestSink(Protocol):
    """What the reader reports, in the order the client sent it."""

    def on_head_begin(self) -> None: ...
    def on_request(self, request: Request) -> None: ...
    def on_body(self, request: Request, data: bytes) -> None: ...
    def on_request_complete(self, request: Request) -> None: ...
    def on_refused(self, request: Request | None, cause: str, detail: str) -> None: ...
    def on_held(self, size: int) -> None: ...


class RequestReader:
    __slots__ = (
        "_field_bytes",
        "_head_bytes",
        "_head_tail",
        "_headers",
        "_max_head",
        "_parser",
        "_sink",
        "_stalled_bytes",
        "_url",
        "body_at",
        "held",
        "now",
        "parsing",
        "proxy_buffer",
        "state",
    )

    def __init__(self, sink: RequestSink, *, max_head: int, proxy_protocol: bool) -> None:
        self._sink = sink
        self._max_head = max_head
        self.state = Reader.HEAD
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: Headers = HeaderList()
        self._head_bytes = 0
        self._head_tail = b""
        self._field_bytes = 0
        self._stalled_bytes = 0
        self.parsing: Request | None = None  # the request whose body is being read
        self.body_at = 0.0  # when that body last made progress
        self.held = b""  # bytes behind an upgrade request (or a refused one)
        # The PROXY protocol header still being read; None when not expected.
        self.proxy_buffer: bytes | None = b"" if proxy_protocol else None
        self.now = 0.0

    def move(self, new: Reader) -> None:
        if new is not self.state:
            if new not in READER_MOVES[self.state]:
                raise BadTransitionError(f"reader {self.state.name} -> {new.name}")
            self.state = new

    # -- bytes in -------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> str | None:
        """Parse what the client sent. Returns the client address a PROXY header gave,
        if this read completed one."""
        self.now = now
        address = None
        if self.proxy_buffer is not None:
            data, address = self._read_proxy_header(data)
            if not data:
                return address
        parser = self._parser
        if parser is None or self.state in (Reader.UPGRADE, Reader.STOPPED):
            self._hold(data)
            return address
        if self.state is Reader.HEAD and not self._check_head_size(data):
            return address
        self._stalled_bytes += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # The parser stops at an upgrade request: what follows is the tunnel's.
            self._parser = None
            self.move(Reader.UPGRADE)
            self._hold(data[upgrade.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            # A callback refused a head or trailer over the limit (see _count_field).
            refused = exc.__context__
            if not isinstance(refused, ProtocolError):
                raise
            self.refuse(refused.cause, refused.reason)
        except httptools.HttpParserError as exc:
            self.refuse("bad_request", f"Parser: {exc}.")
        else:
            if self.parsing is not None and self._stalled_bytes > self._max_head:
                self.refuse("trailer_too_large", f"The limit is {self._max_head} bytes.")
        return address

    def refuse(self, cause: str, detail: str) -> None:
        """Stop reading: nothing after a request that broke the rules can be trusted."""
        self._parser = None
        if self.state is not Reader.STOPPED:
            self.move(Reader.STOPPED)
        request, self.parsing = self.parsing, None
        self._sink.on_refused(request, cause, detail)

    def stop(self) -> None:
        """No more requests (the client half-closed, or the connection is a tunnel)."""
        self._parser = None
        self.parsing = None
        if self.state is not Reader.STOPPED:
            self.move(Reader.STOPPED)

    def _hold(self, data: bytes) -> None:
        if data:
            self.held += data
            self._sink.on_held(len(self.held))

    def _check_head_size(self, data: bytes) -> bool:
        if head_overflows(self._head_bytes, self._head_tail, data, self._max_head):
            self.refuse("header_too_large", f"The limit is {self._max_head} bytes.")
            return False
        self._head_bytes += len(data)
        self._head_tail = head_tail(self._head_tail, data)
        return True

    def _read_proxy_header(self, data: bytes) -> tuple[bytes, str | None]:
        """Consume the PROXY header at the start of the connection; return what follows
        and the client address it names."""
        assert self.proxy_buffer is not None
        buffered = self.proxy_buffer + data
        try:
            parsed = parse_proxy_header(buffered)
        except ProtocolError as exc:
            self.proxy_buffer = None
            self.refuse(exc.cause, exc.reason)
            return b"", None
        if parsed is None:
            self.proxy_buffer = buffered
            return b"", None
        address, length = parsed
        self.proxy_buffer = None
        return buffered[length:], address

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = HeaderList()
        self._field_bytes = 0
        self._sink.on_head_begin()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._field_bytes += len(url)
        if self._field_bytes > self._max_head:
            self._over_limit()

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted here, once per field (a call per header is what a handshake costs most).
        self._field_bytes += len(name) + len(value) + 4
        if self._field_bytes > self._max_head:
            self._over_limit()
        if self.state is Reader.HEAD:
            self._headers.append((name, value))
        # Trailer fields (after a chunked body) are counted, not kept: they are not
        # forwarded, and the request's headers were already sent.

    def _over_limit(self) -> None:
        cause = "header_too_large" if self.state is Reader.HEAD else "trailer_too_large"
        raise ProtocolError(cause, f"The limit is {self._max_head} bytes.")

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None  # httptools calls back only from feed_data
        self.move(Reader.BODY)
        self._field_bytes = 0  # from here on it counts the trailer
        self._stalled_bytes = 0
        headers = self._headers
        request = Request(
            method=parser.get_method(),
            target=self._url,
            version=parser.get_http_version(),
            headers=headers,
            keep_alive=parser.should_keep_alive(),
            framing=request_framing(headers),
            received_at=self.now,
            upgrade=parser.should_upgrade(),
        )
        try:
            check_request_head(request.version, headers, upgrade=request.upgrade)
            if wants_websocket(headers):
                request.ws_key = check_upgrade_request(request.method, request.version, headers)
        except ProtocolError as exc:
            request.error = exc
        self.body_at = self.now
        self.parsing = request
        self._sink.on_request(request)

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None:
            return
        self._stalled_bytes = 0
        self.body_at = self.now
        self._sink.on_body(request, body)

    def on_message_complete(self) -> None:
        request, self.parsing = self.parsing, None
        if self.state is Reader.BODY:
            self.move(Reader.HEAD)
        self._head_bytes = 0
        self._head_tail = b""
        if request is not None:
            request.complete = True
            self._sink.on_request_complete(request)

    @property
    def reading_body(self) -> bool:
        """A body announced and not complete: the body timeout runs."""
        request = self.parsing
        return request is not None and request.framing is not Framing.NONE and not request.upgrade

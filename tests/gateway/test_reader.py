"""The request reader alone: literal bytes in, the calls on its sink out. Every limit is
tested at N and N+1, and every result must not depend on how the bytes were cut into
reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wsgate.gateway.reader import RequestReader
from wsgate.gateway.states import Reader, Request
from wsgate.protocol.forward import Framing


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.requests: list[Request] = []

    def on_head_begin(self) -> None:
        self.events.append(("begin",))

    def on_request(self, request: Request) -> None:
        self.requests.append(request)
        error = request.error.cause if request.error else None
        self.events.append(("request", request.method, request.target, error))

    def on_body(self, request: Request, data: bytes) -> None:
        self.events.append(("body", data))

    def on_request_complete(self, request: Request) -> None:
        self.events.append(("complete", request.target))

    def on_refused(self, request: Request | None, cause: str, detail: str) -> None:
        self.events.append(("refused", request.target if request else None, cause))

    def on_held(self, size: int) -> None:
        self.events.append(("held", size))


def reader(max_head: int = 1024, *, proxy_protocol: bool = False) -> tuple[RequestReader, Sink]:
    sink = Sink()
    return RequestReader(sink, max_head=max_head, proxy_protocol=proxy_protocol), sink


def feed_in_pieces(data: bytes, cuts: list[int], max_head: int = 1024) -> list[tuple[object, ...]]:
    found, sink = reader(max_head)
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        if cut > start:
            found.feed(data[start:cut], 0.0)
            start = cut
    # Body bytes may arrive in any number of pieces: join them to compare.
    merged: list[tuple[object, ...]] = []
    for event in sink.events:
        if event[0] == "body" and merged and merged[-1][0] == "body":
            before, more = merged[-1][1], event[1]
            assert isinstance(before, bytes) and isinstance(more, bytes)  # on_body's data
            merged[-1] = ("body", before + more)
        else:
            merged.append(event)
    return merged


def test_a_request_with_a_sized_body() -> None:
    found, sink = reader()
    found.feed(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 1.5)
    assert sink.events == [
        ("begin",),
        ("request", b"POST", b"/up", None),
        ("body", b"hello"),
        ("complete", b"/up"),
    ]
    request = sink.requests[0]
    assert request.framing is Framing.LENGTH and request.received_at == 1.5
    assert found.state is Reader.HEAD


def test_an_upgrade_request_holds_what_follows_it() -> None:
    found, sink = reader()
    found.feed(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"\x81\x80abcd",
        0.0,
    )
    assert found.state is Reader.UPGRADE
    assert found.held == b"\x81\x80abcd"
    assert sink.requests[0].ws_key == b"dGhlIHNhbXBsZSBub25jZQ=="
    found.feed(b"more", 0.1)  # a tunnel's bytes: held, never parsed
    assert found.held == b"\x81\x80abcdmore"


def test_the_head_limit_at_n_and_n_plus_one() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX: "
    exact = head + b"a" * (256 - len(head) - 4) + b"\r\n\r\n"
    assert len(exact) == 256
    found, sink = reader(256)
    found.feed(exact, 0.0)
    assert sink.events[-1] == ("complete", b"/")
    found, sink = reader(256)
    found.feed(exact[:-4] + b"a\r\n\r\n", 0.0)
    assert sink.events[-1] == ("refused", None, "header_too_large")
    assert found.state is Reader.STOPPED


def test_a_trailer_is_held_to_the_head_limit() -> None:
    found, sink = reader(256)
    found.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 0.0)
    found.feed(b"3\r\nabc\r\n0\r\nX-T: " + b"v" * 300 + b"\r\n\r\n", 0.0)
    assert sink.events[-1] == ("refused", b"/", "trailer_too_large")


def test_a_pipelined_head_over_the_limit_is_refused_after_the_one_before() -> None:
    found, sink = reader(256)
    found.feed(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX: "
        + b"a" * 400
        + b"\r\n\r\n",
        0.0,
    )
    assert ("complete", b"/a") in sink.events
    assert sink.events[-1] == ("refused", None, "header_too_large")


def test_a_proxy_protocol_header_names_the_client() -> None:
    found, sink = reader(proxy_protocol=True)
    assert found.feed(b"PROXY TCP4 198.51.100.7 10.0.0.1 4000 80\r\n", 0.0) == "198.51.100.7"
    found.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert sink.events[-1] == ("complete", b"/")


def test_garbage_is_a_bad_request() -> None:
    found, sink = reader()
    found.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0.0)
    assert sink.events[-1] == ("refused", None, "bad_request")


STREAM = (
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    b"GET /d HTTP/1.1\r\n\r\n"
)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_the_cut_into_reads_changes_nothing(cuts: list[int]) -> None:
    assert feed_in_pieces(STREAM, cuts) == feed_in_pieces(STREAM, [])


def test_the_stream_as_a_whole() -> None:
    events = feed_in_pieces(STREAM, [])
    assert [e for e in events if e[0] in ("request", "body")] == [
        ("request", b"GET", b"/a", None),
        ("request", b"POST", b"/b", None),
        ("body", b"hello world"),
        ("request", b"POST", b"/c", None),
        ("body", b"hello world"),
        ("request", b"GET", b"/d", "bad_host"),
    ]

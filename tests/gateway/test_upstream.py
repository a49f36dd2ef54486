"""gateway/upstream.py's response side, fed bytes as a backend would send them: the
events its sink hears (head, body, complete, upgrade with the bytes behind the 101), a
1xx before the final head, HEAD's body-less answer, a head over the limit, garbage, bytes
on an idle connection, and the end of the connection."""

from __future__ import annotations

from typing import Any

from wsgate.gateway.upstream import UpstreamConnection
from wsgate.protocol.headers import Headers

LIMIT = 1024


class Transport:
    def __init__(self) -> None:
        self.ended = ""
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.ended = self.ended or "close"

    def abort(self) -> None:
        self.ended = self.ended or "abort"

    def is_closing(self) -> bool:
        return bool(self.ended)

    def write(self, data: bytes) -> None:
        pass


class Owner:
    def __init__(self) -> None:
        self.forgotten = 0

    @property
    def pool(self) -> Owner:
        return self

    def release(self, conn: UpstreamConnection) -> None:
        pass

    def forget(self, conn: UpstreamConnection) -> None:
        self.forgotten += 1


class Sink:
    """A ResponseSink that notes every event."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_response_head(
        self, status: int, reason: bytes, version: str, headers: Headers, keep_alive: bool
    ) -> None:
        self.events.append(("head", status, reason, version, list(headers), keep_alive))

    def on_response_body(self, data: bytes) -> None:
        self.events.append(("body", bytes(data)))

    def on_response_complete(self) -> None:
        self.events.append(("complete",))

    def on_upstream_upgrade(self, tail: bytes) -> None:
        self.events.append(("upgrade", tail))

    def on_upstream_eof(self) -> None:
        self.events.append(("eof",))

    def on_upstream_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))

    def on_upstream_bad_response(
        self, reason: str, *, cause: str = "upstream_bad_response"
    ) -> None:
        self.events.append(("bad", cause, reason))

    def on_upstream_pause_writing(self) -> None:
        self.events.append(("pause",))

    def on_upstream_resume_writing(self) -> None:
        self.events.append(("resume",))


def connection(head_request: bool = False) -> tuple[UpstreamConnection, Sink, Transport, Owner]:
    owner, transport, sink = Owner(), Transport(), Sink()
    conn = UpstreamConnection(owner)
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.attach(sink, head_request=head_request, head_limit=LIMIT)
    return conn, sink, transport, owner


def test_a_response_in_pieces_gives_head_body_and_complete() -> None:
    conn, sink, _, _ = connection()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    for index in range(len(response)):
        conn.data_received(response[index : index + 1])
    head, *body, complete = sink.events
    assert head == ("head", 200, b"OK", "1.1", [(b"Content-Length", b"5"), (b"X-A", b"b")], True)
    assert b"".join(piece[1] for piece in body) == b"hello" and complete == ("complete",)
    assert conn.got_response_bytes


def test_a_1xx_comes_before_the_final_head_and_does_not_complete() -> None:
    conn, sink, _, _ = connection()
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert [e[:2] for e in sink.events] == [("head", 100), ("head", 204), ("complete",)]


def test_the_answer_to_head_has_no_body_and_the_next_response_parses() -> None:
    conn, sink, _, _ = connection(head_request=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert [e[0] for e in sink.events] == ["head", "complete"]
    conn.attach(sink, head_request=False, head_limit=LIMIT)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert sink.events[2][0] == "head" and sink.events[2][5] is False  # no keep-alive
    assert sink.events[-2:] == [("body", b"ok"), ("complete",)]


def test_a_101_hands_over_the_bytes_behind_it() -> None:
    conn, sink, _, _ = connection()
    conn.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"\r\n\x81\x02hi"
    )
    assert sink.events[0][:2] == ("head", 101)
    assert sink.events[-1] == ("upgrade", b"\x81\x02hi")


def test_a_head_over_the_limit_is_refused_and_the_connection_aborted() -> None:
    conn, sink, transport, owner = connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (LIMIT + 10) + b"\r\n\r\n")
    assert sink.events == [
        ("bad", "upstream_header_too_large", f"response head over {LIMIT} bytes")
    ]
    assert transport.ended == "abort" and conn.closed and owner.forgotten
    assert conn.sink is None


def test_garbage_is_a_bad_response_and_closes() -> None:
    conn, sink, transport, _ = connection()
    conn.data_received(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    ((kind, cause, _),) = sink.events
    assert (kind, cause) == ("bad", "upstream_bad_response")
    assert transport.ended == "close" and conn.closed
    conn.connection_lost(None)
    assert len(sink.events) == 1  # not reported twice


def test_bytes_on_an_idle_connection_close_it() -> None:
    conn, sink, transport, _ = connection()
    conn.detach()
    assert transport.reading  # to see the backend's FIN or stray bytes
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.ended == "close" and sink.events == []


def test_eof_and_loss_are_told_to_the_sink_and_the_backend_forgets() -> None:
    conn, sink, _, owner = connection()
    conn.eof_received()
    error = ConnectionResetError("reset")
    conn.connection_lost(error)
    assert sink.events == [("eof",), ("lost", error)]
    assert conn.closed and owner.forgotten == 1

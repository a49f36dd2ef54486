from __future__ import annotations

import httptools

from wsgate.gateway.responses import error_response


class Collect:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def parse(raw: bytes) -> tuple[int, Collect]:
    sink = Collect()
    parser = httptools.HttpResponseParser(sink)
    parser.feed_data(raw)
    assert sink.done
    return parser.get_status_code(), sink


def test_error_response_explains_itself() -> None:
    status, sink = parse(error_response("upstream_connect_refused", 'Backend "b" refused.'))
    assert status == 502
    assert sink.headers[b"x-wsgate-cause"] == b"upstream_connect_refused"
    assert sink.headers[b"proxy-status"] == (
        b'wsgate; error=connection_refused; details="upstream_connect_refused: '
        b'Backend \\"b\\" refused."'
    )
    assert sink.headers[b"connection"] == b"close"
    assert b"what to check:" in sink.body
    assert int(sink.headers[b"content-length"]) == len(sink.body)


def test_retry_after_and_extra_headers() -> None:
    raw = error_response(
        "unsupported_version", extra_headers=(("Sec-WebSocket-Version", "13"),), retry_after_s=3
    )
    status, sink = parse(raw)
    assert status == 426
    assert sink.headers[b"sec-websocket-version"] == b"13"
    assert sink.headers[b"retry-after"] == b"3"

"""read_answer on a stream fed by the test (no sockets): what the doctor observes of each
kind of answer, however its bytes are cut."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from tests.doctor.literals import ACCEPT
from wsgate.doctor.observations import Answer, AnswerKind
from wsgate.doctor.probe import MAX_HEAD_BYTES, Link, read_answer

GOOD_101 = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
).encode()
FRAME = b"\x81\x02hi"


class _Writer:
    """Takes the request; the answer comes from the reader the test feeds."""

    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass


def answer_to(
    pieces: list[bytes], eof: bool = True, timeout_s: float = 2.0
) -> tuple[Answer, bytes]:
    async def run() -> tuple[Answer, bytes]:
        reader = asyncio.StreamReader()
        writer = _Writer()
        link = Link(reader, cast(asyncio.StreamWriter, writer))

        async def feed() -> None:
            for piece in pieces:
                await asyncio.sleep(0.001)
                reader.feed_data(piece)
            if eof:
                reader.feed_eof()

        feeding = asyncio.create_task(feed())
        result = await read_answer(link, b"GET / HTTP/1.1\r\n\r\n", timeout_s)
        await feeding
        assert writer.sent == b"GET / HTTP/1.1\r\n\r\n"
        return result

    return asyncio.run(run())


def test_a_101_cut_into_bytes_and_the_frames_after_it() -> None:
    data = GOOD_101 + FRAME
    answer, rest = answer_to([data[i : i + 1] for i in range(len(data))], eof=False)
    assert (answer.kind, answer.status, answer.reason) == (
        AnswerKind.RESPONSE,
        101,
        "Switching Protocols",
    )
    assert answer.header("sec-websocket-accept") == ACCEPT
    assert answer.ttfb_ms is not None
    # The head ended with the last byte of the blank line; later bytes are read later.
    assert rest == b""
    answer, rest = answer_to([data])
    assert rest == FRAME
    assert answer.received_bytes == len(data)


def test_interim_answers_are_read_past() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    answer, rest = answer_to([interim, GOOD_101 + FRAME])
    assert (answer.status, rest) == (101, FRAME)


def test_a_refusal_keeps_its_body() -> None:
    refusal = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nServer: nginx\r\n\r\nnot found"
    answer, rest = answer_to([refusal[:40], refusal[40:]])
    assert (answer.status, answer.reason, answer.body, rest) == (404, "Not Found", "not found", b"")
    assert answer.headers == (("Content-Length", "9"), ("Server", "nginx"))


@pytest.mark.parametrize(
    ("pieces", "words"),
    [
        ([b"SSH-2.0-OpenSSH_9.6\r\n"], "not an HTTP response: b'SSH-2.0-OpenSSH_9.6\\r\\n'"),
        ([b"\x15\x03\x03\x00\x02\x02\x46"], "TLS record bytes instead of an HTTP response"),
        ([b"HTTP/2 200\r\n\r\n"], "not an HTTP/1.x status line: 'HTTP/2 200'"),
        ([b"HTTP/1.1 2000 x\r\n\r\n"], "not an HTTP/1.x status line: 'HTTP/1.1 2000 x'"),
        ([b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n"], "malformed header line: 'nocolon'"),
        (
            [b"HTTP/1.1 200 OK\r\n", b"X: " + b"a" * MAX_HEAD_BYTES],
            f"response head larger than {MAX_HEAD_BYTES} bytes",
        ),
    ],
)
def test_garbage(pieces: list[bytes], words: str) -> None:
    answer, rest = answer_to(pieces, eof=False)
    assert (answer.kind, answer.error, rest) == (AnswerKind.GARBAGE, words, b"")


def test_eof_before_the_head_ends() -> None:
    answer, _ = answer_to([b"HTTP/1.1 101 Switching"])
    assert (answer.kind, answer.received_bytes, answer.error) == (AnswerKind.EOF, 22, "EOF")
    answer, _ = answer_to([])
    assert (answer.kind, answer.received_bytes, answer.ttfb_ms) == (AnswerKind.EOF, 0, None)


def test_silence_is_a_timeout() -> None:
    answer, _ = answer_to([b"HTTP/1.1 1"], eof=False, timeout_s=0.1)
    assert (answer.kind, answer.received_bytes) == (AnswerKind.TIMEOUT, 10)

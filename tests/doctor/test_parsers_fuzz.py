"""Property tests for the doctor's parsers: they take bytes from any server, so they must
never crash, and round-trip what they parse (the response head's parser is fuzzed with
protocol.client_handshake, in tests/protocol)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.doctor.literals import answer, reached
from wsgate.doctor.probe import dechunk
from wsgate.doctor.signatures import parse_proxy_status, recognise
from wsgate.doctor.verdicts import diagnose

TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=1,
    max_size=20,
)
VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6))
def test_dechunk_round_trip(chunks: list[bytes]) -> None:
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    assert dechunk(encoded) == b"".join(chunks)


@given(st.binary(max_size=200))
def test_dechunk_never_crashes(data: bytes) -> None:
    assert len(dechunk(data)) <= len(data)


@given(st.lists(st.text(max_size=80), max_size=3))
def test_parse_proxy_status_never_crashes(values: list[str]) -> None:
    for entry in parse_proxy_status(values):
        assert entry.name


@given(
    st.integers(100, 599),
    st.text(max_size=200),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "Server",
                    "Via",
                    "Proxy-Status",
                    "X-Wsgate-Cause",
                    "CF-RAY",
                    "Retry-After",
                    "Sec-WebSocket-Version",
                ]
            ),
            VALUE,
        ),
        max_size=4,
    ),
)
def test_any_answer_gets_exactly_one_finding(
    status: int, body: str, headers: list[tuple[str, str]]
) -> None:
    recognise(answer(status, body, tuple(headers)))
    if status != 101:
        diagnosis = diagnose(reached(answer(status, body, tuple(headers))))
        assert len(diagnosis.findings) == 1
        assert not diagnosis.ok

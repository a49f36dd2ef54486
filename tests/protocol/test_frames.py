from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol import frames as frames_mod
from wsgate.protocol.frames import CLOSE_BAD_GATEWAY, CloseCode, FrameTracker, close_frame


def frame(opcode: int, payload: bytes, *, masked: bool = False) -> bytes:
    length = len(payload)
    second = 0x80 if masked else 0
    if length < 126:
        head = bytes((0x80 | opcode, second | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, second | 126)) + struct.pack("!H", length)
    else:
        head = bytes((0x80 | opcode, second | 127)) + struct.pack("!Q", length)
    return head + (b"\x00\x00\x00\x00" if masked else b"") + payload


def test_literal_text_frame_ends_at_boundary() -> None:
    tracker = FrameTracker()
    tracker.feed(b"\x81\x04Spam")
    assert tracker.at_boundary
    assert not tracker.close_seen


def test_partial_payload_is_not_a_boundary() -> None:
    tracker = FrameTracker()
    tracker.feed(b"\x81\x04Sp")
    assert not tracker.at_boundary
    tracker.feed(b"am")
    assert tracker.at_boundary


def test_header_split_across_chunks() -> None:
    data = frame(0x2, b"x" * 70000)
    tracker = FrameTracker()
    for piece in (data[:1], data[1:5], data[5:9], data[9:]):
        tracker.feed(piece)
    assert tracker.at_boundary


def test_close_frame_is_seen() -> None:
    tracker = FrameTracker()
    tracker.feed(frame(0x1, b"hi") + close_frame(1000, "bye"))
    assert tracker.close_seen


def test_close_frame_bytes() -> None:
    assert close_frame(CLOSE_BAD_GATEWAY, "x") == b"\x88\x03\x03\xf6x"
    assert len(close_frame(1001, "y" * 300)) == 2 + 125


def test_close_codes_have_their_rfc_values() -> None:
    # RFC 6455 section 7.4.1; 1012-1014 from the IANA registry.
    assert {code.name: int(code) for code in CloseCode} == {
        "NORMAL_CLOSURE": 1000,
        "GOING_AWAY": 1001,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
    }


def test_old_constant_names_are_the_enum_members() -> None:
    assert frames_mod.CLOSE_GOING_AWAY is CloseCode.GOING_AWAY
    assert frames_mod.CLOSE_TRY_AGAIN_LATER is CloseCode.TRY_AGAIN_LATER
    assert frames_mod.CLOSE_BAD_GATEWAY is CloseCode.BAD_GATEWAY
    plain: int = 1001  # typed int: mypy takes a member and a literal for disjoint
    assert plain == frames_mod.CLOSE_GOING_AWAY  # an IntEnum: a plain int wherever one goes


@given(st.sampled_from(list(CloseCode)))
def test_close_frame_carries_each_code_in_network_order(code: CloseCode) -> None:
    assert close_frame(code) == bytes((0x88, 2)) + int(code).to_bytes(2, "big")


@given(
    st.lists(
        st.tuples(st.sampled_from([0x0, 0x1, 0x2, 0x9, 0xA]), st.binary(max_size=300)), max_size=8
    ),
    st.lists(st.integers(min_value=1, max_value=50), max_size=30),
    st.booleans(),
)
def test_any_chunking_ends_at_boundary(
    frames: list[tuple[int, bytes]], cuts: list[int], masked: bool
) -> None:
    data = b"".join(frame(op, payload, masked=masked) for op, payload in frames)
    tracker = FrameTracker()
    pos = 0
    for cut in cuts:
        tracker.feed(data[pos : pos + cut])
        pos += cut
    tracker.feed(data[pos:])
    assert tracker.at_boundary
    assert not tracker.close_seen

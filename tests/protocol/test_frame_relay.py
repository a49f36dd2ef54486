"""The frame-aware relay, fed literal bytes and a number for time: keepalive pings and
the pongs it swallows, dead sides, limits, and the gateway's closing handshake. Any split
of a frame stream into chunks gives the same bytes out and the same decisions."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsgate.protocol.frame_relay import (
    KEEPALIVE_PREFIX,
    TOKEN_BYTES,
    Ending,
    FrameRelay,
    RelaySettings,
    Side,
)
from wsgate.protocol.frames import apply_mask, close_frame

KEY = b"\x01\x02\x03\x04"


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """A frame as an endpoint sends it: masked (`mask`) from a client, not from a server."""
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    second = 0x80 if mask is not None else 0
    if length < 126:
        head = bytes((first, second | length))
    elif length < 65536:
        head = bytes((first, second | 126)) + struct.pack("!H", length)
    else:
        head = bytes((first, second | 127)) + struct.pack("!Q", length)
    if mask is None:
        return head + payload
    return head + mask + apply_mask(payload, mask)


def counter_bytes() -> Callable[[int], bytes]:
    """A deterministic stand-in for os.urandom: 0x00, 0x01, ... ."""
    state = [0]

    def take(n: int) -> bytes:
        out = bytes((state[0] + i) % 256 for i in range(n))
        state[0] += n
        return out

    return take


def relay(now: float = 0.0, **kwargs: float) -> FrameRelay:
    return FrameRelay(RelaySettings(**kwargs), now, counter_bytes())  # type: ignore[arg-type]


def take(items: list[bytes]) -> bytes:
    out = b"".join(items)
    items.clear()
    return out


def frames_in(data: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, masked, unmasked payload) of each frame in `data`."""
    found = []
    pos = 0
    while pos < len(data):
        second = data[pos + 1]
        length = second & 0x7F
        head = 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos + 2)
            head = 4
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos + 2)
            head = 10
        payload_at = head + (4 if second & 0x80 else 0)
        payload = data[pos + payload_at : pos + payload_at + length]
        if second & 0x80:
            payload = apply_mask(payload, data[pos + head : pos + head + 4])
        found.append((data[pos] & 0x0F, bool(second & 0x80), payload))
        pos += payload_at + length
    return found


def close_code(payload: bytes) -> int:
    code: int = struct.unpack("!H", payload[:2])[0]
    return code


# == plain relaying =========================================================================
def test_literal_frames_pass_untouched_both_ways() -> None:
    r = relay(max_message_bytes=1000)
    r.from_client(b"\x81\x84" + KEY + apply_mask(b"Spam", KEY), 1.0)
    r.from_backend(b"\x81\x04Eggs", 1.0)
    assert take(r.to_backend) == b"\x81\x84\x01\x02\x03\x04" + apply_mask(b"Spam", KEY)
    assert take(r.to_client) == b"\x81\x04Eggs"
    assert not r.dirty and r.ending is None


def test_a_chunk_inside_a_payload_is_forwarded_as_the_same_object() -> None:
    r = relay(max_message_bytes=1 << 20)
    head = frame(0x2, b"x" * 70_000)[:10]
    r.from_backend(head, 0.0)
    chunk = b"x" * 50_000
    r.from_backend(chunk, 0.0)
    assert r.to_client[-1] is chunk  # no copy of payload bytes


def test_a_header_split_across_chunks_is_held_then_forwarded() -> None:
    r = relay(max_frame_bytes=100)
    data = frame(0x1, b"hello", mask=KEY)
    r.from_client(data[:1], 0.0)
    assert r.to_backend == []
    r.from_client(data[1:4], 0.0)
    assert r.to_backend == []
    r.from_client(data[4:], 0.0)
    assert take(r.to_backend) == data


def test_invalid_frames_pass_for_the_endpoint_to_judge() -> None:
    # A reserved opcode, RSV bits, an unmasked client frame, a control frame of 126 bytes.
    odd = frame(0x3, b"r") + bytes((0xF1, 0x01)) + b"x" + frame(0x9, b"p" * 126)
    r = relay(max_message_bytes=10_000, ping_idle_s=5.0)
    r.from_client(odd, 0.0)
    assert take(r.to_backend) == odd


# == keepalive ==============================================================================
def test_idle_sides_get_pings_masked_towards_the_backend() -> None:
    r = relay(ping_idle_s=10.0, ping_timeout_s=5.0)
    assert r.next_deadline() == 10.0
    r.timer(9.9)
    assert r.to_client == [] and r.to_backend == []
    r.timer(10.0)
    ((op, masked, token),) = frames_in(take(r.to_client))
    assert (op, masked) == (0x9, False)
    assert token.startswith(KEEPALIVE_PREFIX) and len(token) == TOKEN_BYTES
    ((op, masked, to_backend),) = frames_in(take(r.to_backend))
    assert (op, masked) == (0x9, True) and to_backend.startswith(KEEPALIVE_PREFIX)
    assert to_backend != token
    assert r.next_deadline() == 15.0  # the pings' timeout


def test_traffic_on_a_side_puts_off_its_ping() -> None:
    r = relay(ping_idle_s=10.0)
    r.from_client(frame(0x1, b"hi", mask=KEY), 8.0)
    r.from_backend(frame(0x1, b"hi"), 9.0)
    take(r.to_client), take(r.to_backend)
    r.timer(10.0)
    assert r.to_client == r.to_backend == []
    assert r.next_deadline() == 18.0
    r.timer(18.0)
    assert frames_in(take(r.to_client))[0][0] == 0x9  # the backend's turn is at 19
    assert r.to_backend == []


def test_the_answer_to_the_gateways_ping_is_swallowed_and_the_apps_pass() -> None:
    r = relay(ping_idle_s=10.0)
    r.timer(10.0)
    (_, _, to_client) = frames_in(take(r.to_client))[0]
    (_, _, to_backend) = frames_in(take(r.to_backend))[0]
    app = frame(0x9, b"app ping", mask=KEY) + frame(0xA, b"app pong", mask=KEY)
    answer = frame(0xA, to_client, mask=b"\xaa\xbb\xcc\xdd")
    message = frame(0x1, b"after", mask=KEY)
    r.from_client(app + answer + message, 10.5)
    assert take(r.to_backend) == app + message
    r.from_backend(frame(0xA, to_backend) + frame(0xA, b"x" * TOKEN_BYTES), 10.6)
    assert take(r.to_client) == frame(0xA, b"x" * TOKEN_BYTES)  # same length, not ours
    assert r.ending is None


def test_a_pong_split_across_chunks_is_held_whole_then_judged() -> None:
    r = relay(ping_idle_s=1.0)
    r.timer(1.0)
    (_, _, token) = frames_in(take(r.to_client))[0]
    take(r.to_backend)
    ours = frame(0xA, token, mask=KEY)
    r.from_client(ours[:7], 1.1)
    assert r.to_backend == []
    r.from_client(ours[7:] + frame(0x1, b"m", mask=KEY), 1.2)
    assert take(r.to_backend) == frame(0x1, b"m", mask=KEY)
    theirs = frame(0xA, KEEPALIVE_PREFIX + b"0" * 16, mask=KEY)
    r.from_client(theirs[:20], 1.3)
    r.from_client(theirs[20:], 1.3)
    assert take(r.to_backend) == theirs


def test_a_ping_waits_for_a_frame_boundary() -> None:
    r = relay(ping_idle_s=10.0)
    big = frame(0x2, b"z" * 1000, mask=KEY)
    r.from_client(big[:500], 1.0)  # mid-frame towards the backend
    r.timer(10.0)  # the client spoke at 1.0 but the backend is idle since 0
    r.timer(11.0)
    assert frames_in(take(r.to_client))[0][0] == 0x9  # the client's stream is at a boundary
    assert take(r.to_backend) == big[:500]
    r.from_client(big[500:] + frame(0x1, b"next", mask=KEY), 12.0)
    out = take(r.to_backend)
    rest = big[500:]
    assert out.startswith(rest)
    assert [op for op, _, _ in frames_in(out[len(rest) :])] == [0x9, 0x1]


def test_a_silent_backend_is_dead_and_the_client_gets_1011() -> None:
    r = relay(ping_idle_s=10.0, ping_timeout_s=5.0)
    r.from_client(frame(0x1, b"x", mask=KEY), 9.0)
    r.timer(10.0)
    take(r.to_backend), take(r.to_client)
    r.from_client(frame(0xA, b"unrelated", mask=KEY), 12.0)  # the client is alive
    assert take(r.to_backend) == frame(0xA, b"unrelated", mask=KEY)
    assert r.next_deadline() == 15.0
    r.timer(15.0)
    assert r.ending == Ending(
        "peer_ping_timeout",
        "the backend sent nothing for 15 s and did not answer a ping",
        Side.BACKEND,
    )
    assert r.backend.shut and r.backend.dead
    ((op, _, payload),) = frames_in(take(r.to_client))
    assert op == 0x8 and close_code(payload) == 1011
    assert b"peer_ping_timeout" in payload
    assert take(r.to_backend) == b""  # nothing more for the backend (it is aborted)
    assert not r.finished
    r.from_client(frame(0x1, b"dropped", mask=KEY) + close_frame(1011, mask=KEY), 15.1)
    assert r.client.shut and r.finished
    assert r.to_backend == []


def test_a_silent_client_gets_no_answer_and_the_backend_gets_1001() -> None:
    r = relay(ping_idle_s=2.0, ping_timeout_s=2.0)
    r.from_backend(frame(0x1, b"tick"), 1.0)
    take(r.to_client)
    r.timer(2.0)
    r.from_backend(frame(0x1, b"tick"), 2.5)
    r.timer(3.0)
    take(r.to_client), take(r.to_backend)
    r.timer(4.0)
    assert r.ending is not None and r.ending.fault is Side.CLIENT
    assert r.client.dead
    (op, masked, payload) = frames_in(take(r.to_backend))[-1]
    assert (op, masked, close_code(payload)) == (0x8, True, 1001)


def test_a_paused_side_is_not_judged_dead() -> None:
    r = relay(ping_idle_s=1.0, ping_timeout_s=1.0)
    r.timer(1.0)
    r.pause(Side.BACKEND, True, 1.5)
    r.from_client(frame(0x1, b"x", mask=KEY), 1.9)
    r.timer(2.0)
    assert r.ending is None
    r.pause(Side.BACKEND, False, 30.0)
    assert r.backend.ping_sent_at == 30.0  # the outstanding ping's timeout starts again
    r.from_backend(frame(0x1, b"late"), 30.5)
    r.timer(31.0)
    assert r.ending is None


def test_no_ping_follows_a_close_frame() -> None:
    r = relay(ping_idle_s=1.0)
    r.from_backend(close_frame(1000, "bye"), 0.5)
    assert take(r.to_client) == close_frame(1000, "bye")
    assert r.next_deadline() is None
    r.timer(5.0)
    assert r.to_client == r.to_backend == []
    r.from_backend(b"\x81\x03odd", 5.0)  # after its close frame: passed unparsed
    assert take(r.to_client) == b"\x81\x03odd"


def test_no_ping_follows_a_half_close_passed_on() -> None:
    r = relay(ping_idle_s=1.0)
    r.eof(Side.CLIENT)  # the client's EOF went on to the backend: its stream is shut
    r.timer(1.0)
    assert r.to_backend == []
    assert r.next_deadline() is None


# == limits =================================================================================
@pytest.mark.parametrize(("size", "closed"), [(100, False), (101, True)])
def test_max_message_bytes_at_n_and_n_plus_1_over_fragments(size: int, closed: bool) -> None:
    r = relay(max_message_bytes=100)
    before = (
        frame(0x1, b"a" * 40, fin=False, mask=KEY)
        + frame(0x9, b"p" * 125, mask=KEY)  # control frames are never counted
        + frame(0x0, b"b" * 40, fin=False, mask=KEY)
    )
    stream = before + frame(0x0, b"c" * (size - 80), fin=True, mask=KEY)
    r.from_client(stream, 1.0)
    if not closed:
        assert take(r.to_backend) == stream and r.ending is None
        r.from_client(frame(0x2, b"d" * 100, mask=KEY), 1.0)  # the count starts again
        assert r.ending is None
        return
    assert r.ending is not None and r.ending.cause == "message_too_big"
    assert r.ending.fault is Side.CLIENT
    out = take(r.to_backend)
    assert out.startswith(before)
    ((op, masked, payload),) = frames_in(out[len(before) :])
    assert (op, masked, close_code(payload)) == (0x8, True, 1001)
    ((op, masked, payload),) = frames_in(take(r.to_client))
    assert (op, masked, close_code(payload)) == (0x8, False, 1009)
    assert payload[2:].startswith(b"message_too_big: the client sent a message of at least 101")


@pytest.mark.parametrize(("size", "closed"), [(64, False), (65, True)])
def test_max_frame_bytes_at_n_and_n_plus_1(size: int, closed: bool) -> None:
    r = relay(max_frame_bytes=64)
    r.from_backend(frame(0x2, b"x" * size), 1.0)
    assert (r.ending is not None) is closed
    if closed:
        assert r.ending is not None and r.ending.cause == "frame_too_big"
        # The backend sent it: 1009 to the backend, 1011 to the client.
        assert close_code(frames_in(take(r.to_backend))[0][2]) == 1009
        assert close_code(frames_in(take(r.to_client))[0][2]) == 1011


def test_an_oversized_frame_is_dropped_while_its_payload_streams_in() -> None:
    r = relay(max_message_bytes=10)
    big = frame(0x2, b"q" * 5000, mask=KEY)
    r.from_client(big[:100], 1.0)
    r.from_client(big[100:3000], 1.0)
    assert [op for op, _, _ in frames_in(take(r.to_backend))] == [0x8]  # only the close
    assert close_code(frames_in(take(r.to_client))[0][2]) == 1009
    r.from_client(big[3000:] + close_frame(1009, "ok", mask=KEY), 1.1)
    assert r.to_backend == []
    assert r.client.shut and not r.backend.shut
    r.from_backend(frame(0x1, b"late") + close_frame(1001), 1.2)
    assert r.to_client == []
    assert r.finished


def test_message_rate_burst_then_1008() -> None:
    r = relay(max_messages_per_s=2.0, message_burst=3)
    one = frame(0x1, b"m", mask=KEY)
    r.from_client(one * 3, 0.0)
    assert r.ending is None
    r.from_client(frame(0x9, b"ping", mask=KEY), 0.0)  # control frames are not messages
    r.from_client(one, 0.5)
    assert r.ending is None  # the burst is spent; half a second refilled one token
    r.from_client(one, 0.55)
    assert r.ending is not None and r.ending.cause == "message_rate_exceeded"
    close = frames_in(take(r.to_client))[-1]
    assert close[0] == 0x8 and close_code(close[2]) == 1008


def test_the_backend_is_not_rate_limited() -> None:
    r = relay(max_messages_per_s=1.0, message_burst=1)
    r.from_backend(frame(0x1, b"m") * 50, 0.0)
    assert r.ending is None


# == the gateway's closing handshake ========================================================
def test_gateway_close_waits_for_both_close_frames_then_shuts() -> None:
    r = relay(ping_idle_s=30.0)
    r.close(1001, "server shutting down", "shutdown", 5.0)
    assert r.ending == Ending("shutdown", "server shutting down")
    ((op, masked, payload),) = frames_in(take(r.to_client))
    assert (op, masked, close_code(payload), payload[2:]) == (
        0x8,
        False,
        1001,
        b"server shutting down",
    )
    assert frames_in(take(r.to_backend))[0][:2] == (0x8, True)
    assert r.next_deadline() == 10.0
    r.from_client(frame(0x1, b"late", mask=KEY) + close_frame(1001, mask=KEY), 5.1)
    assert r.to_backend == [] and r.client.shut and not r.finished
    r.from_backend(close_frame(1001), 5.2)
    assert r.to_client == [] and r.finished
    assert r.next_deadline() is None


def test_gateway_close_finishes_the_frame_in_flight_first() -> None:
    r = relay(max_message_bytes=1 << 20)
    big = frame(0x2, b"y" * 300)
    r.from_backend(big[:100], 1.0)
    r.close(1001, "", "shutdown", 2.0)
    assert r.to_client == [big[:100]]  # the close waits for the frame's end
    take(r.to_client)
    r.from_backend(big[100:] + frame(0x1, b"dropped"), 2.1)
    out = take(r.to_client)
    rest = big[100:]
    assert out.startswith(rest)
    assert [op for op, _, _ in frames_in(out[len(rest) :])] == [0x8]


def test_the_close_times_out_and_shuts_both() -> None:
    r = relay(max_frame_bytes=10)
    r.close(1001, "", "tunnel_idle_timeout", 1.0)
    r.timer(5.9)
    assert not r.finished
    r.timer(6.0)
    assert r.finished and r.client.shut and r.backend.shut


def test_a_broken_backend_gives_1014_at_a_boundary() -> None:
    r = relay(max_frame_bytes=1000)
    r.broken("backend connection lost", 1.0)
    ((op, _, payload),) = frames_in(take(r.to_client))
    assert op == 0x8 and close_code(payload) == 1014
    assert payload[2:] == b"bad gateway: backend connection lost"
    assert r.backend.shut and not r.client.shut
    assert r.gone(Side.CLIENT, 1.5) and r.finished


def test_a_broken_backend_mid_frame_shuts_the_client_without_a_frame() -> None:
    r = relay(max_frame_bytes=1000)
    r.from_backend(frame(0x2, b"x" * 500)[:50], 1.0)
    take(r.to_client)
    r.broken("reset", 1.0)
    assert r.to_client == [] and r.finished


def test_gateway_close_leaves_an_endpoint_handshake_under_way_alone() -> None:
    r = relay(ping_idle_s=5.0)
    r.from_client(close_frame(1000, mask=KEY), 1.0)
    take(r.to_backend)
    r.close(1001, "", "shutdown", 1.1)
    assert r.to_client == [] and r.to_backend == []
    assert not r.gone(Side.BACKEND, 1.2)  # the ordinary end of a tunnel goes on
    r.from_backend(close_frame(1000), 1.2)
    assert take(r.to_client) == close_frame(1000)
    r.timer(6.1)
    assert r.finished


def test_not_active_without_a_frame_setting() -> None:
    assert not RelaySettings().active
    assert RelaySettings(ping_idle_s=1.0).active
    assert RelaySettings(max_messages_per_s=5.0).active


# == any split of a stream gives the same result ============================================
@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Client frames: fragmented messages with control frames between fragments, the
    gateway's keepalive pong among them, and sometimes a close frame at the end."""
    out: list[bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["message", "ping", "pong", "ours", "odd"]))
        mask = draw(st.binary(min_size=4, max_size=4))
        if kind == "message":
            parts = draw(st.lists(st.integers(0, 300), min_size=1, max_size=4))
            for index, size in enumerate(parts):
                opcode = draw(st.sampled_from([1, 2])) if index == 0 else 0
                fin = index == len(parts) - 1
                out.append(frame(opcode, b"d" * size, fin=fin, mask=mask))
                if not fin and draw(st.booleans()):
                    out.append(frame(0x9, b"between", mask=mask))
        elif kind == "ping":
            out.append(frame(0x9, draw(st.binary(max_size=125)), mask=mask))
        elif kind == "pong":
            out.append(frame(0xA, draw(st.binary(max_size=125)), mask=mask))
        elif kind == "ours":
            out.append(b"OURS" + mask)  # replaced by the keepalive pong below
        else:
            out.append(frame(0x5, b"?", mask=mask))
    if draw(st.booleans()):
        out.append(close_frame(1000, "end", mask=b"\x09\x08\x07\x06"))
    return out


def run_relay(
    parts: list[bytes], cuts: list[int], limit: int, rate: float
) -> tuple[bytes, bytes, Ending | None, bool]:
    r = relay(ping_idle_s=10.0, max_message_bytes=limit, max_messages_per_s=rate)
    r.timer(10.0)  # a ping to each side; the client's answer is in the stream
    (_, _, token) = frames_in(take(r.to_client))[0]
    take(r.to_backend)
    data = b"".join(
        frame(0xA, token, mask=part[4:]) if part.startswith(b"OURS") else part for part in parts
    )
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, stop in itertools.pairwise(edges):
        r.from_client(data[start:stop], 10.5)
    return take(r.to_backend), take(r.to_client), r.ending, r.finished


@settings(max_examples=300, deadline=None)
@given(
    streams(),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.sampled_from([0, 200, 600, 1 << 20]),
    st.sampled_from([0.0, 5.0]),
)
def test_any_split_of_a_client_stream_gives_the_same_bytes_and_decisions(
    parts: list[bytes], cuts: list[int], limit: int, rate: float
) -> None:
    whole = run_relay(parts, [], limit, rate)
    split = run_relay(parts, cuts, limit, rate)
    assert split == whole
    if whole[2] is None:
        # Nothing broke a limit: everything passed but the gateway's own pong (once: a
        # second copy answers no ping of the gateway's, and passes).
        ours = [i for i, part in enumerate(parts) if part.startswith(b"OURS")]
        token = KEEPALIVE_PREFIX + bytes(range(8)).hex().encode()  # counter_bytes' first
        first = ours[0] if ours else -1
        data = b"".join(
            b"" if i == first else frame(0xA, token, mask=part[4:]) if i in ours else part
            for i, part in enumerate(parts)
        )
        assert whole[0] == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=2000), max_size=6), st.lists(st.integers(0, 9000)))
def test_any_split_of_a_backend_stream_passes_it_byte_for_byte(
    payloads: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(frame(0x2, p) for p in payloads)
    r = relay(max_frame_bytes=4096, ping_idle_s=1.0)
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, stop in itertools.pairwise(edges):
        r.from_backend(data[start:stop], 0.5)
    assert take(r.to_client) == data

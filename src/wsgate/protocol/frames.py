"""WebSocket frame headers (RFC 6455 section 5.2), read without touching payloads.

The tunnel copies bytes; `FrameTracker` follows the server-to-client stream only far
enough to know where frames start, so that on a broken backend the gateway can send
the client a close frame (1014, bad gateway) at a frame boundary instead of cutting a
frame in half. It parses one header per frame and skips payloads by length: its cost
grows with the number of frames, not of bytes.
"""

from __future__ import annotations

import enum
import struct

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
MAX_CONTROL_PAYLOAD = 125
MASK_BYTES = 4


class CloseCode(enum.IntEnum):
    """The close codes wsgate sends or reads: RFC 6455 section 7.4.1, and 1012-1014 from
    the IANA "WebSocket Close Code Number Registry"."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # the gateway ends a tunnel: idle timeout, shutdown
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014  # the backend broke the tunnel


# The names the gateway has always imported; each is the enum member.
CLOSE_NORMAL = CloseCode.NORMAL_CLOSURE
CLOSE_GOING_AWAY = CloseCode.GOING_AWAY
CLOSE_POLICY_VIOLATION = CloseCode.POLICY_VIOLATION
CLOSE_MESSAGE_TOO_BIG = CloseCode.MESSAGE_TOO_BIG
CLOSE_INTERNAL_ERROR = CloseCode.INTERNAL_ERROR
CLOSE_SERVICE_RESTART = CloseCode.SERVICE_RESTART
CLOSE_TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER
CLOSE_BAD_GATEWAY = CloseCode.BAD_GATEWAY


class FrameTracker:
    """Follows frame boundaries in one direction of a WebSocket stream.

    Call `feed(data)` with every chunk in order; `at_boundary` then says whether the
    next byte would start a new frame, and `close_seen` whether a close frame passed.
    """

    __slots__ = ("_partial", "_remaining", "close_seen")

    def __init__(self) -> None:
        self._remaining = 0  # payload bytes of the current frame still to come
        self._partial = b""  # an incomplete frame header carried to the next chunk
        self.close_seen = False

    @property
    def at_boundary(self) -> bool:
        return self._remaining == 0 and not self._partial

    def feed(self, data: bytes) -> None:
        if self.close_seen:
            return
        size = len(data)
        if not self._partial and self._remaining >= size:
            self._remaining -= size  # inside a payload: the common case for big messages
            return
        if self._partial:
            buf = self._partial + data
            pos = 0
            self._partial = b""
        else:
            buf = data
            pos = self._remaining
        self._remaining = 0
        end = len(buf)
        while pos < end:
            avail = end - pos
            if avail < 2:
                self._partial = buf[pos:]
                return
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            header += 4 if second & 0x80 else 0
            if avail < header:
                self._partial = buf[pos:]
                return
            if length == 126:
                (length,) = struct.unpack_from("!H", buf, pos + 2)
            elif length == 127:
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
            if first & 0x0F == OP_CLOSE:
                self.close_seen = True
                return
            pos += header + length
        self._remaining = pos - end


def close_frame(code: int, reason: str = "", mask: bytes | None = None) -> bytes:
    """A close frame with `code` and a UTF-8 `reason` (cut to fit 125 bytes): unmasked
    (server to client), or masked with the 4-byte `mask` (client to server)."""
    return control_frame(OP_CLOSE, close_payload(code, reason), mask)


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's payload: the code in network order, then the reason, cut at a
    character boundary so that it stays valid UTF-8 (RFC 6455 section 5.5.1)."""
    raw = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return struct.pack("!H", code) + raw


def control_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """A final control frame (RFC 6455 section 5.5); `mask`: the 4-byte masking key a
    client must use (section 5.3), None for a frame from the server."""
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError(f"a control frame carries at most {MAX_CONTROL_PAYLOAD} bytes")
    if mask is None:
        return bytes((0x80 | opcode, len(payload))) + payload
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR `payload` with the repeated 4-byte `mask` (RFC 6455 section 5.3); the same
    call unmasks. For control payloads only: the relay never unmasks data."""
    if not payload:
        return b""
    key = int.from_bytes((mask * (len(payload) // MASK_BYTES + 1))[: len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(len(payload), "big")

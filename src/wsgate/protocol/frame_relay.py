"""The frame-aware tunnel's decisions: both directions' frame headers (RFC 6455 section
5.2) read, payloads skipped by length, for keepalive pings, message limits and the
gateway's own closing handshake. Pure: bytes and `now` in, bytes and decisions out.

    relay = FrameRelay(settings, now, os.urandom)
    relay.from_client(data, now)      # or from_backend(data, now)
    relay.to_backend, relay.to_client # bytes to write, in order (the caller clears them)
    if relay.dirty: ...               # a side to shut, the end, or a new next_deadline()
    relay.timer(now)                  # at next_deadline()

What it does, by the rules of RFC 6455:

- **Keepalive** (`ping_idle_s`): a side that sent nothing for that long gets a ping at the
  next frame boundary of the stream towards it (masked towards the backend, section 5.3,
  since the gateway is the backend's client). Its payload, `KEEPALIVE_PREFIX` and 16 hex
  digits, recognises the pong that answers it (section 5.5.3 makes the pong echo it); that
  pong is swallowed, every other ping and pong passes untouched. Any bytes from a side
  prove it alive; a side silent `ping_timeout_s` after a ping is dead, and the other side
  gets a close frame with the cause (`peer_ping_timeout`).
- **Limits**: `max_frame_bytes`, `max_message_bytes` (a fragmented message counted across
  its frames, control frames never) and, for the client, `max_messages_per_s`. The frame
  that breaks a limit is not forwarded; its sender gets 1009 (1008 for the rate), the other
  side 1001 when the client was at fault and 1011 when the backend was.
- **Closing** (section 7.1.1 order): a close frame goes to each side at a frame boundary
  of the stream towards it (the frame in flight is finished first), nothing else is
  forwarded after it, and each side is shut once its own close frame is back, or after
  `close_timeout_s`. So clients see a clean close with the code, not 1006.

Frames the gateway does not understand (reserved opcodes, bad lengths, unmasked client
frames) pass as they are: the endpoints judge them, as they would without the gateway.
After an endpoint's close frame, that direction passes unparsed, as in `FrameTracker`.
A payload is touched only for a candidate pong of the keepalive's length (at most 125
bytes, unmasked to compare): everything else is forwarded as the slices it came in.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from wsgate.protocol.frames import (
    MASK_BYTES,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    CloseCode,
    apply_mask,
    close_frame,
    control_frame,
)

# The payload of the gateway's own pings: this prefix, then 16 hex digits. `wsgate doctor
# --idle` recognises a gateway that keeps connections alive by it.
KEEPALIVE_PREFIX = b"wsgate-keepalive-"
TOKEN_BYTES = len(KEEPALIVE_PREFIX) + 16
# Pings whose pong may still come (a late pong after a newer ping is swallowed too).
MAX_TOKENS = 4
# How long the gateway waits for a side's close frame after sending its own.
CLOSE_TIMEOUT_S = 5.0
REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code

PEER_PING_TIMEOUT = "peer_ping_timeout"
MESSAGE_TOO_BIG = "message_too_big"
FRAME_TOO_BIG = "frame_too_big"
MESSAGE_RATE_EXCEEDED = "message_rate_exceeded"
UPSTREAM_TUNNEL_BROKEN = "upstream_tunnel_broken"

_UNPACK_16 = struct.Struct("!H").unpack_from
_UNPACK_64 = struct.Struct("!Q").unpack_from


class Side(enum.Enum):
    CLIENT = "client"
    BACKEND = "backend"


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """A pool's frame settings; 0 switches each off."""

    ping_idle_s: float = 0.0
    ping_timeout_s: float = 20.0
    max_message_bytes: int = 0
    max_frame_bytes: int = 0
    max_messages_per_s: float = 0.0
    message_burst: int = 0  # 0: one second's worth of max_messages_per_s
    close_timeout_s: float = CLOSE_TIMEOUT_S

    @property
    def active(self) -> bool:
        """Whether a tunnel needs the relay at all (else the plain byte tunnel does)."""
        return bool(
            self.ping_idle_s
            or self.max_message_bytes
            or self.max_frame_bytes
            or self.max_messages_per_s
        )


@dataclass(frozen=True, slots=True)
class Ending:
    """Why the gateway ends a tunnel: a cause code, words for the log, and the side at
    fault (None when it is the gateway's own decision: shutdown, idle timeout)."""

    cause: str
    detail: str
    fault: Side | None = None


class Peer:
    """One side of the tunnel: the frames read from it, and what is written to it."""

    __slots__ = (
        "carry",
        "close_frames",
        "close_received",
        "close_sent",
        "closing",
        "dead",
        "forwarding",
        "gated",
        "last_rx",
        "mask_out",
        "message_bytes",
        "out",
        "passthrough",
        "paused",
        "pending",
        "pending_close",
        "pending_ping",
        "ping_sent_at",
        "remaining",
        "shut",
        "side",
        "tokens",
    )

    def __init__(self, side: Side, now: float) -> None:
        self.side = side
        self.mask_out = side is Side.BACKEND  # the gateway is the backend's client
        # Reading frames from this side.
        self.remaining = 0  # payload bytes of the current frame still to come
        self.forwarding = True  # whether the current frame goes to the other side
        self.carry = b""  # an incomplete frame header (or keepalive pong) held back
        self.message_bytes = 0  # data bytes of the message being sent, over its frames
        self.passthrough = False  # this side sent its close frame: the rest passes unparsed
        self.close_received = False
        self.last_rx = now
        self.paused = False  # reading from it is paused (backpressure): no liveness check
        self.ping_sent_at: float | None = None  # the ping awaiting an answer
        self.tokens: list[bytes] = []  # payloads of keepalive pings whose pong may come
        # Writing to this side.
        self.out: list[bytes] = []
        self.pending = False  # a frame waits for the next boundary of the stream to it
        self.pending_ping: bytes | None = None
        self.pending_close: bytes | None = None
        # A close frame went to it (the gateway's or the peer's), or the stream to it was
        # half-closed: nothing of the gateway's may follow.
        self.close_sent = False
        self.close_frames: list[int] = []  # codes of the gateway's close frames to it
        self.gated = False  # nothing but the gateway's close goes to it any more
        self.closing = False  # the gateway waits for its close frame
        self.shut = False  # its TCP connection is to be closed
        self.dead = False  # ... at once (abort): it is not answering

    @property
    def boundary(self) -> bool:
        """Whether what was forwarded from this side ends at a frame boundary."""
        return self.remaining == 0 or not self.forwarding


class FrameRelay:
    """Both directions of one tunnel, frame by frame. Not thread-safe; one per tunnel."""

    __slots__ = (
        "_bucket_at",
        "_bucket_tokens",
        "_burst",
        "_close_deadline",
        "_handshake_left",
        "_limits",
        "_random",
        "backend",
        "client",
        "dirty",
        "ending",
        "finished",
        "settings",
    )

    def __init__(
        self, settings: RelaySettings, now: float, random_bytes: Callable[[int], bytes]
    ) -> None:
        self.settings = settings
        self._random = random_bytes  # masking keys and ping payloads (os.urandom)
        self.client = Peer(Side.CLIENT, now)
        self.backend = Peer(Side.BACKEND, now)
        self._limits = bool(
            settings.max_message_bytes or settings.max_frame_bytes or settings.max_messages_per_s
        )
        rate = settings.max_messages_per_s
        self._burst = float(settings.message_burst or max(1, math.ceil(rate)))
        self._bucket_tokens = self._burst
        self._bucket_at = now
        self._close_deadline: float | None = None
        self._handshake_left = False  # the endpoints' own closing handshake is under way
        self.ending: Ending | None = None
        self.dirty = False  # set when a side is to be shut, the tunnel ends or a deadline moves
        self.finished = False  # both sides are shut: the tunnel is over

    # == bytes in ===========================================================================
    @property
    def to_client(self) -> list[bytes]:
        return self.client.out

    @property
    def to_backend(self) -> list[bytes]:
        return self.backend.out

    def from_client(self, data: bytes, now: float) -> None:
        self._feed(self.client, self.backend, data, now)

    def from_backend(self, data: bytes, now: float) -> None:
        self._feed(self.backend, self.client, data, now)

    def _feed(self, src: Peer, dst: Peer, data: bytes, now: float) -> None:
        src.last_rx = now
        if src.ping_sent_at is not None:
            src.ping_sent_at = None  # any bytes answer a ping: the side is alive
            self.dirty = True  # its next ping is due sooner than the timeout was
        if src.passthrough:
            if not dst.gated:
                dst.out.append(data)
            return
        remaining = src.remaining
        if remaining >= len(data) and not src.carry:
            # Inside a payload: the common case for big messages.
            src.remaining = remaining - len(data)
            if src.forwarding:
                dst.out.append(data)
                if dst.pending and src.remaining == 0:
                    self._flush(dst, now)
            return
        self._parse(src, dst, data, now)

    def _parse(self, src: Peer, dst: Peer, data: bytes, now: float) -> None:
        buf = src.carry + data if src.carry else data
        src.carry = b""
        end = len(buf)
        out = dst.out
        run = 0  # the first byte not yet forwarded or dropped
        pos = src.remaining  # the current frame's payload ends here (less than `end`)
        src.remaining = 0
        if pos and not src.forwarding:
            run = pos
        elif pos and dst.pending:
            out.append(buf[:pos])
            run = pos
            self._flush(dst, now)
        while pos < end:
            avail = end - pos
            if avail < 2:
                break
            second = buf[pos + 1]
            length = second & 0x7F
            size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            if second & 0x80:
                size += MASK_BYTES
            if avail < size:
                break
            if length == 126:
                (length,) = _UNPACK_16(buf, pos + 2)
            elif length == 127:
                (length,) = _UNPACK_64(buf, pos + 2)
            first = buf[pos]
            opcode = first & 0x0F
            frame_end = pos + size + length
            forward = True
            if dst.gated or src.closing:
                # The gateway is closing: nothing is forwarded; a close frame from this side
                # is its answer.
                forward = False
                if opcode == OP_CLOSE:
                    src.close_received = True
                    self._check_shut(src)
            elif opcode >= 8:
                if opcode == OP_PONG and src.tokens and length == TOKEN_BYTES:
                    if frame_end > end:
                        break  # held back whole, so that a keepalive pong can be dropped
                    if self._own_pong(src, buf, pos, size):
                        if pos > run:
                            out.append(buf[run:pos])
                        run = pos = frame_end
                        continue
                elif opcode == OP_CLOSE:
                    # The endpoints' closing handshake: this direction passes unparsed from
                    # here, and nothing of the gateway's may follow the close frame.
                    src.close_received = True
                    src.passthrough = True
                    dst.close_sent = True
                    dst.pending = False
                    dst.pending_ping = None
                    self.dirty = True  # no more keepalive deadlines
                    out.append(buf if run == 0 else buf[run:])
                    return
            elif self._limits:
                broken = self._over_limit(src, opcode, first, length, now)
                if broken is not None:
                    # What came before the frame goes out first, then the close frames.
                    if pos > run:
                        out.append(buf[run:pos])
                    run = pos
                    self._violation(src, *broken, now)
                    forward = False
            if not forward:
                if pos > run:
                    out.append(buf[run:pos])
                run = frame_end if frame_end < end else end
            if frame_end > end:
                src.remaining = frame_end - end
                src.forwarding = forward
                pos = end
                break
            pos = frame_end
            if forward and dst.pending:
                out.append(buf[run:pos])
                run = pos
                self._flush(dst, now)
        if pos < end:
            src.carry = buf[pos:]
        else:
            pos = end
        if pos > run:
            out.append(buf if run == 0 and pos == end else buf[run:pos])

    def _own_pong(self, src: Peer, buf: bytes, pos: int, size: int) -> bool:
        """Whether the complete pong frame at `pos` answers one of the gateway's pings."""
        payload = buf[pos + size : pos + size + TOKEN_BYTES]
        if buf[pos + 1] & 0x80:
            payload = apply_mask(payload, buf[pos + size - MASK_BYTES : pos + size])
        if payload in src.tokens:
            src.tokens.remove(payload)
            return True
        return False

    def _over_limit(
        self, src: Peer, opcode: int, first: int, length: int, now: float
    ) -> tuple[str, int, str] | None:
        """Count a data frame (opcode 0-7) against the limits; (cause, close code, detail)
        when it breaks one: the gateway then closes, and the frame is not forwarded."""
        settings = self.settings
        if opcode:  # a new message (a continuation frame has opcode 0)
            src.message_bytes = 0
            if src is self.client and settings.max_messages_per_s and not self._take(now):
                rate = settings.max_messages_per_s
                detail = (
                    f"the client sent messages faster than {rate:g} per second "
                    f"(burst {self._burst:g})"
                )
                return MESSAGE_RATE_EXCEEDED, CloseCode.POLICY_VIOLATION, detail
        if settings.max_frame_bytes and length > settings.max_frame_bytes:
            detail = (
                f"the {src.side.value} sent a frame of {length} bytes, over max_frame_bytes "
                f"({settings.max_frame_bytes})"
            )
            return FRAME_TOO_BIG, CloseCode.MESSAGE_TOO_BIG, detail
        size = src.message_bytes + length
        if settings.max_message_bytes and size > settings.max_message_bytes:
            detail = (
                f"the {src.side.value} sent a message of at least {size} bytes, over "
                f"max_message_bytes ({settings.max_message_bytes})"
            )
            return MESSAGE_TOO_BIG, CloseCode.MESSAGE_TOO_BIG, detail
        src.message_bytes = 0 if first & 0x80 else size
        return None

    def _take(self, now: float) -> bool:
        """One message from the client's token bucket, if there is one."""
        if now > self._bucket_at:
            rate = self.settings.max_messages_per_s
            refill = (now - self._bucket_at) * rate
            self._bucket_tokens = min(self._burst, self._bucket_tokens + refill)
            self._bucket_at = now
        if self._bucket_tokens >= 1.0:
            self._bucket_tokens -= 1.0
            return True
        return False

    # == the gateway's frames ===============================================================
    def _frame(self, peer: Peer, opcode: int, payload: bytes) -> bytes:
        return control_frame(opcode, payload, self._random(MASK_BYTES) if peer.mask_out else None)

    def _other(self, peer: Peer) -> Peer:
        return self.backend if peer is self.client else self.client

    def _flush(self, peer: Peer, now: float) -> None:
        """The stream towards `peer` is at a frame boundary: send what waits for one."""
        peer.pending = False
        if peer.pending_close is not None:
            peer.out.append(peer.pending_close)
            peer.pending_close = None
            peer.pending_ping = None
            peer.close_sent = True
            self._check_shut(peer)
        elif peer.pending_ping is not None and not peer.close_sent:
            peer.out.append(peer.pending_ping)
            peer.pending_ping = None
            peer.ping_sent_at = now
            self.dirty = True  # the ping's timeout is the next deadline

    def _ping(self, peer: Peer, now: float) -> None:
        token = KEEPALIVE_PREFIX + self._random(8).hex().encode()
        peer.tokens.append(token)
        del peer.tokens[:-MAX_TOKENS]
        peer.pending_ping = self._frame(peer, OP_PING, token)
        peer.pending = True
        if self._other(peer).boundary:
            self._flush(peer, now)

    # == the gateway's closing handshake ====================================================
    def _begin_close(
        self,
        ending: Ending,
        codes: dict[Side, tuple[int, str]],
        now: float,
        *,
        dead: Peer | None = None,
    ) -> None:
        """Send each open side its close frame (at the next boundary of the stream to it),
        forward nothing more, and shut each side once its close frame is back."""
        if self.ending is not None:
            return
        self.ending = ending
        self.dirty = True
        self._close_deadline = now + self.settings.close_timeout_s
        if dead is not None:
            dead.shut = dead.gated = dead.dead = True
        for peer in (self.client, self.backend):
            if peer.shut:
                continue
            peer.gated = peer.closing = True
            peer.pending_ping = None
            source = self._other(peer)
            if peer.close_sent:
                self._check_shut(peer)  # an endpoint's close went to it already
            elif not source.boundary and source.shut:
                peer.shut = True  # mid-frame from a side that is gone: no close frame fits
            else:
                code, reason = codes.get(peer.side, (CloseCode.GOING_AWAY, ""))
                peer.close_frames.append(code)
                peer.pending_close = close_frame(
                    code,
                    reason,
                    self._random(MASK_BYTES) if peer.mask_out else None,
                )
                peer.pending = True
                if source.boundary:
                    self._flush(peer, now)
        self._check_finished()

    def _violation(self, src: Peer, cause: str, code: int, detail: str, now: float) -> None:
        """`src` broke a limit: `code` to it, 1001 or 1011 to the other side."""
        other = self._other(src)
        # From the other side's view its peer went away (the client) or failed (the backend).
        other_code = CloseCode.GOING_AWAY if src is self.client else CloseCode.INTERNAL_ERROR
        reason = f"{cause}: {detail}"
        self._begin_close(
            Ending(cause, detail, src.side),
            {src.side: (code, reason), other.side: (other_code, reason)},
            now,
        )

    def _check_shut(self, peer: Peer) -> None:
        if peer.closing and peer.close_received and peer.close_sent and not peer.shut:
            peer.shut = True
            peer.gated = True
            self.dirty = True
            self._check_finished()

    def _check_finished(self) -> None:
        if self.client.shut and self.backend.shut and not self.finished:
            self.finished = True
            self.dirty = True

    def close(self, code: int, reason: str, cause: str, now: float) -> None:
        """End the tunnel from the gateway's side (shutdown, idle timeout): `code` to both
        sides. A closing handshake of the endpoints already under way is left to finish,
        bounded by `close_timeout_s`."""
        if self.ending is not None:
            return
        if self.client.close_sent or self.backend.close_sent:
            self.ending = Ending(cause, reason)
            self._close_deadline = now + self.settings.close_timeout_s
            self._handshake_left = True
            self.dirty = True
            return
        self._begin_close(
            Ending(cause, reason), {Side.CLIENT: (code, reason), Side.BACKEND: (code, reason)}, now
        )

    def broken(self, why: str, now: float) -> None:
        """The backend's connection ended without its close frame: the client gets 1014
        (bad gateway) if the stream to it is at a frame boundary."""
        self._begin_close(
            Ending(UPSTREAM_TUNNEL_BROKEN, why, Side.BACKEND),
            {Side.CLIENT: (CloseCode.BAD_GATEWAY, "bad gateway: " + why[:90])},
            now,
            dead=self.backend,
        )

    def gone(self, side: Side, now: float) -> bool:
        """A side's connection ended (EOF or lost). True when the gateway is closing and has
        taken note (the caller does nothing else); False otherwise."""
        if self.ending is None or self._handshake_left:
            return False
        peer = self.client if side is Side.CLIENT else self.backend
        if not peer.shut:
            peer.shut = peer.gated = True
            self.dirty = True
            self._check_finished()
        return True

    def eof(self, side: Side) -> None:
        """`side` half-closed, and the caller passes the EOF on: the stream to the other
        side is shut for writing, so the gateway sends nothing more into it."""
        other = self.backend if side is Side.CLIENT else self.client
        other.close_sent = True
        other.pending = False
        other.pending_ping = None
        self.dirty = True

    def pause(self, side: Side, paused: bool, now: float) -> None:
        """Reading from `side` paused (backpressure) or resumed. A paused side's pong may
        sit unread, so its liveness is not judged; on resume its clock starts again."""
        peer = self.client if side is Side.CLIENT else self.backend
        peer.paused = paused
        if not paused:
            peer.last_rx = max(peer.last_rx, now)
            if peer.ping_sent_at is not None:
                peer.ping_sent_at = now
        self.dirty = True

    # == time ===============================================================================
    def next_deadline(self) -> float | None:
        """When `timer` has something to do, or None."""
        if self.finished:
            return None
        if self.ending is not None:
            return self._close_deadline
        settings = self.settings
        if not settings.ping_idle_s or self.client.close_sent or self.backend.close_sent:
            return None
        at: float | None = None
        for peer in (self.client, self.backend):
            if peer.paused or peer.pending:
                continue
            if peer.ping_sent_at is not None:
                due = peer.ping_sent_at + settings.ping_timeout_s
            else:
                due = peer.last_rx + settings.ping_idle_s
            if at is None or due < at:
                at = due
        return at

    def timer(self, now: float) -> None:
        """Do what is due at `now`: a keepalive ping, a dead side, the close's time limit."""
        if self.finished:
            return
        self.dirty = True
        if self.ending is not None:
            if self._close_deadline is not None and now >= self._close_deadline:
                for peer in (self.client, self.backend):
                    peer.shut = peer.gated = True
                self._check_finished()
            return
        settings = self.settings
        if not settings.ping_idle_s or self.client.close_sent or self.backend.close_sent:
            return
        for peer in (self.client, self.backend):
            if peer.paused or peer.pending:
                continue
            if peer.ping_sent_at is not None:
                if now >= peer.ping_sent_at + settings.ping_timeout_s:
                    self._dead(peer, now)
                    return
            elif now >= peer.last_rx + settings.ping_idle_s:
                self._ping(peer, now)

    def _dead(self, peer: Peer, now: float) -> None:
        waited = self.settings.ping_idle_s + self.settings.ping_timeout_s
        name = peer.side.value
        detail = f"the {name} sent nothing for {waited:g} s and did not answer a ping"
        # The survivor hears it from its own point of view: its peer went away (the client)
        # or failed (the backend).
        code = CloseCode.GOING_AWAY if peer is self.client else CloseCode.INTERNAL_ERROR
        other = self._other(peer)
        self._begin_close(
            Ending(PEER_PING_TIMEOUT, detail, peer.side),
            {other.side: (code, f"{PEER_PING_TIMEOUT}: {name} did not answer a ping")},
            now,
            dead=peer,
        )

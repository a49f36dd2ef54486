"""The machine-readable close reason of an overload answer, e.g.
`retry-after=12; cause=overloaded_queue_full`. Pure: strings in, strings out.

A browser cannot read the status or headers of a refused WebSocket handshake, only the
close code and reason of a completed one. So the gateway answers overload with a 101 and
at once a close frame (1013 try again later, 1012 service restart, 1008 rate limited)
whose reason says when to come back and why. The reason is at most 123 bytes of UTF-8:
a close frame's payload is at most 125 bytes (RFC 6455 section 5.5), two of them the
code (section 5.5.1).

Grammar (parsed leniently, unknown keys ignored so the format can grow)::

    reason      = field *( ";" *SP field )
    field       = key "=" value
    retry-after = 1*DIGIT           ; whole seconds, as HTTP's Retry-After
    cause       = 1*<any char but ";" "=" and controls>

Call `format_close_reason` to write one (the gateway), `parse_close_reason` to read one
(`wsgate.client`, `wsgate-client.js` reads the same format).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLOSE_REASON_BYTES = 123
# A bigger hint is clamped: a day is longer than any overload wsgate measures, and the
# cap keeps the number short enough to leave room for the cause.
MAX_RETRY_AFTER_S = 86_400
RETRY_AFTER_KEY = "retry-after"
CAUSE_KEY = "cause"
_FIELD_SEPARATOR = "; "
_FORBIDDEN_IN_VALUE = frozenset(";=")


@dataclass(frozen=True, slots=True)
class CloseHint:
    """What a close reason tells a client: when to retry (whole seconds from the close)
    and why. Either is None when the reason does not say it (a reason that is not in
    this format gives both None)."""

    retry_after_s: int | None
    cause: str | None


def format_close_reason(retry_after_s: int | None, cause: str) -> str:
    """The close reason for `retry_after_s` (None: no hint; negative counts as 0, more
    than `MAX_RETRY_AFTER_S` as that) and `cause` (a code such as
    `overloaded_queue_full`; `;`, `=` and control characters become `_`).

    Always at most `MAX_CLOSE_REASON_BYTES` bytes of UTF-8: the retry-after field is
    kept whole and the cause is cut, never inside a character, to fit."""
    fields = []
    if retry_after_s is not None:
        seconds = min(max(retry_after_s, 0), MAX_RETRY_AFTER_S)
        fields.append(f"{RETRY_AFTER_KEY}={seconds}")
    clean_cause = _clean_value(cause)
    if clean_cause:
        prefix = _FIELD_SEPARATOR.join([*fields, f"{CAUSE_KEY}="])
        room = MAX_CLOSE_REASON_BYTES - len(prefix.encode())
        fields.append(f"{CAUSE_KEY}={_truncate_utf8(clean_cause, room)}")
    return _FIELD_SEPARATOR.join(fields)


def parse_close_reason(text: str) -> CloseHint:
    """The hint in a close reason. Lenient, as a reader of a peer's text must be: keys
    are case-insensitive, spaces around fields are ignored, unknown keys and malformed
    fields are skipped, a retry-after that is not a plain non-negative integer is no
    hint, and the first of a repeated key wins."""
    retry_after_s: int | None = None
    cause: str | None = None
    seen: set[str] = set()
    for field in text.split(";"):
        key, equals, value = field.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not equals or key in seen:
            continue
        seen.add(key)
        if key == RETRY_AFTER_KEY:
            retry_after_s = _parse_seconds(value)
        elif key == CAUSE_KEY and value:
            cause = value
    return CloseHint(retry_after_s=retry_after_s, cause=cause)


def _parse_seconds(value: str) -> int | None:
    # isdecimal() alone admits other scripts' digits; HTTP's delta-seconds is ASCII.
    if not value.isascii() or not value.isdecimal():
        return None
    return min(int(value), MAX_RETRY_AFTER_S)


def _clean_value(value: str) -> str:
    cleaned = "".join(
        "_" if ch in _FORBIDDEN_IN_VALUE or not ch.isprintable() else ch for ch in value
    )
    return cleaned.strip()


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` whose UTF-8 is at most `max_bytes` bytes."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    # Dropping the bytes of a character cut in two leaves whole characters only.
    return encoded[: max(max_bytes, 0)].decode(errors="ignore")

"""What servers say in words: the body of a handshake refusal and the reason of a close
frame. Pure: text in, a cause out.

WebSocket servers name the header they refused in the body of their 400 or 426:
websockets writes "Failed to open a WebSocket connection: missing subprotocol.", Node's
`ws` "Invalid Sec-WebSocket-Protocol header", Tornado 'Can "Upgrade" only to "WebSocket".'.
Only a complaint about `Upgrade`, `Connection` or the HTTP version means that a hop lost
the upgrade; a complaint about the subprotocol, the version or the origin is the server's
own policy, whatever proxy relayed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Close codes (RFC 6455 section 7.4.1, and the IANA registry for 1012).
CLOSE_GOING_AWAY = 1001
CLOSE_SERVICE_RESTART = 1012

# websockets' prefix to every refusal: it names "WebSocket connection" without a complaint.
_PREFIX = re.compile(r"failed to open a websocket connection:?\s*", re.I)
_SUBPROTOCOL = re.compile(r"sub-?protocol|sec-websocket-protocol", re.I)
# Subprotocol names are tokens and may hold dots: "expected one of v1.chat, v2.chat."
_EXPECTED = re.compile(r"expected one of\s+((?:[^\s,;]+,\s*)*[^\s,;]+)", re.I)
_VERSION = re.compile(r"sec-websocket-version", re.I)
_ORIGIN = re.compile(r"\borigin\b", re.I)
# A complaint about missing or wrong upgrade headers or HTTP version, e.g. websockets'
# "invalid Connection header: close" or Tornado's 'Can "Upgrade" only to "WebSocket"'.
# A bare "Upgrade Required" reason is not one.
UPGRADE_COMPLAINT = re.compile(
    r"\b(missing|invalid|no|bad|expected|only)\b[^.\n]{0,30}\b(upgrade|connection|websocket)\b"
    r"|\b(upgrade|connection)\b[^.\n]{0,20}\b(missing|invalid|header)"
    r"|HTTP/1\.0|unsupported protocol",
    re.I,
)
# Close reasons that say the server is going down or restarting, not timing out. "going
# away" alone is not one: AWS API Gateway closes idle WebSockets with 1001 "Going away".
_SHUTDOWN = re.compile(
    r"shut\s*(ting\s*)?down|restart|stopp(ing|ed)|terminat|drain|reload|deploy|maintenance",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A server's refusal read from its body: the finding `code` and the words for its
    evidence; `expected` lists the subprotocols the server says it accepts."""

    code: str
    note: str
    expected: tuple[str, ...] = ()


def read_refusal(body: str, offered: tuple[str, ...]) -> Refusal | None:
    """The cause a refusal's body names, or None when it names none."""
    text = _PREFIX.sub("", " ".join(body.split()))
    if _SUBPROTOCOL.search(text):
        match = _EXPECTED.search(text)
        names = match.group(1).rstrip(".").split(",") if match else []
        expected = tuple(name.strip(" '\"") for name in names if name.strip(" '\""))
        sent = ", ".join(repr(name) for name in offered) if offered else "none"
        note = f"the server refused the handshake over the subprotocol (offered: {sent})"
        if expected:
            note += f"; it accepts {', '.join(repr(name) for name in expected)}"
        return Refusal("subprotocol_mismatch", note, expected)
    if _VERSION.search(text):
        return Refusal(
            "version_mismatch",
            "the server refused the Sec-WebSocket-Version the doctor sent (13, RFC 6455)",
        )
    if _ORIGIN.search(text):
        return Refusal("origin_rejected", "the server refused the handshake over the Origin")
    if UPGRADE_COMPLAINT.search(text):
        return Refusal(
            "upgrade_not_forwarded",
            "the doctor sent Upgrade: websocket and Connection: Upgrade, but the server "
            "complains about them: a hop on the way dropped them",
        )
    return None


def subprotocol_fix(expected: tuple[str, ...]) -> str | None:
    """The fix for a refusal that lists the subprotocols the server accepts."""
    if not expected:
        return None
    names = ", ".join(f"'{name}'" for name in expected)
    return (
        f"Offer a subprotocol the server accepts ({names}): --subprotocol {expected[0]} here, "
        f"and new WebSocket(url, [{names}]) (or your client's subprotocols option) in the "
        "client; or let the server accept clients that offer none."
    )


def going_away(code: int | None, reason: str) -> bool:
    """A close frame from a server that shuts down or restarts: 1012 (service restart)
    always, 1001 (going away) when its reason says so."""
    if code == CLOSE_SERVICE_RESTART:
        return True
    return code == CLOSE_GOING_AWAY and bool(_SHUTDOWN.search(reason))

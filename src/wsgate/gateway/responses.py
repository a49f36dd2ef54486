"""Responses the gateway writes itself: every one explained (RFC 9209 Proxy-Status,
X-Wsgate-Cause and a plain-text body saying what happened and what to check)."""

from __future__ import annotations

from http import HTTPStatus

from wsgate.findings import cause as lookup_cause

PROXY_NAME = "wsgate"


def _sf_string(text: str) -> str:
    """An RFC 8941 sf-string: printable ASCII, with \\ and " escaped."""
    safe = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in text)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def error_response(
    cause_code: str,
    detail: str = "",
    *,
    retry_after_s: int | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    keep_alive: bool = False,
) -> bytes:
    """The whole HTTP/1.1 response for `cause_code`, ready to write.

    `detail` is one line about this instance (which backend, how long); the body adds
    the catalogue's summary and fix.
    """
    item = lookup_cause(cause_code)
    status = item.status or 500
    summary = item.summary if not detail else f"{item.summary} {detail}"
    body = (
        f"{status} {reason_phrase(status)}\n"
        f"cause: {cause_code}\n"
        f"what happened: {summary}\n"
        f"what to check: {item.fix}\n"
    ).encode()
    details = f"{cause_code}: {detail}" if detail else cause_code
    lines = [
        f"HTTP/1.1 {status} {reason_phrase(status)}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        f"Proxy-Status: {PROXY_NAME}; error={item.proxy_status}; details={_sf_string(details)}",
        f"X-Wsgate-Cause: {cause_code}",
        "Cache-Control: no-store",
    ]
    if retry_after_s is not None:
        lines.append(f"Retry-After: {retry_after_s}")
    lines.extend(f"{name}: {value}" for name, value in extra_headers)
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body

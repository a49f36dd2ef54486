from __future__ import annotations

import pytest

from wsgate.protocol.errors import ProtocolError
from wsgate.protocol.handshake import (
    accept_value,
    check_upgrade_request,
    check_upgrade_response,
    wants_websocket,
)
from wsgate.protocol.headers import Headers

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3


def upgrade_headers(**changes: bytes | None) -> Headers:
    base = {
        b"Host": b"example.com",
        b"Upgrade": b"websocket",
        b"Connection": b"keep-alive, Upgrade",
        b"Sec-WebSocket-Key": KEY,
        b"Sec-WebSocket-Version": b"13",
    }
    for name, value in changes.items():
        key = name.replace("_", "-").encode()
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return list(base.items())


def test_accept_value_matches_rfc_example() -> None:
    assert accept_value(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_request_returns_key() -> None:
    assert check_upgrade_request(b"GET", "1.1", upgrade_headers()) == KEY


def test_wants_websocket_is_case_insensitive_and_ignores_h2c() -> None:
    assert wants_websocket([(b"upgrade", b"WebSocket")])
    assert not wants_websocket([(b"Upgrade", b"h2c")])
    assert not wants_websocket([])


@pytest.mark.parametrize(
    ("method", "version", "changes", "words"),
    [
        (b"POST", "1.1", {}, "method must be GET"),
        (b"GET", "1.0", {}, "cannot upgrade"),
        (b"GET", "1.1", {"Host": None}, "missing Host"),
        (b"GET", "1.1", {"Connection": b"keep-alive"}, "Upgrade token"),
        (b"GET", "1.1", {"Sec_WebSocket_Key": None}, "missing Sec-WebSocket-Key"),
        (b"GET", "1.1", {"Sec_WebSocket_Key": b"c2hvcnQ="}, "16 base64"),
        (b"GET", "1.1", {"Sec_WebSocket_Key": b"not base64!!!!!!!!!!!!=="}, "16 base64"),
        (b"GET", "1.1", {"Sec_WebSocket_Version": None}, "missing Sec-WebSocket-Version"),
    ],
)
def test_malformed_requests_are_bad_upgrade_requests(
    method: bytes, version: str, changes: dict[str, bytes | None], words: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        check_upgrade_request(method, version, upgrade_headers(**changes))
    assert info.value.cause == "bad_upgrade_request"
    assert words in info.value.reason


def test_two_keys_are_rejected() -> None:
    headers = [*upgrade_headers(), (b"Sec-WebSocket-Key", KEY)]
    with pytest.raises(ProtocolError, match="more than one"):
        check_upgrade_request(b"GET", "1.1", headers)


@pytest.mark.parametrize("version", [b"8", b"12", b"14", b"13, 8"])
def test_other_versions_are_unsupported(version: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        check_upgrade_request(b"GET", "1.1", upgrade_headers(Sec_WebSocket_Version=version))
    assert info.value.cause == "unsupported_version"


def response(accept: bytes | None = None, **extra: bytes) -> Headers:
    headers: Headers = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    if accept is not None:
        headers.append((b"Sec-WebSocket-Accept", accept))
    for name, value in extra.items():
        headers = [(k, v) for k, v in headers if k.decode().lower() != name.lower()]
        headers.append((name.encode(), value))
    return headers


def test_valid_response_passes() -> None:
    check_upgrade_response(KEY, response(accept_value(KEY)))


@pytest.mark.parametrize(
    "headers",
    [
        response(b"wrongwrongwrongwrongwrongw="),
        response(None),
        response(accept_value(KEY), Upgrade=b"h2c"),
        response(accept_value(KEY), Connection=b"close"),
    ],
)
def test_bad_responses_are_bad_accept(headers: Headers) -> None:
    with pytest.raises(ProtocolError) as info:
        check_upgrade_response(KEY, headers)
    assert info.value.cause == "upstream_bad_accept"

from __future__ import annotations

import re

import pytest

from wsgate.findings import CATALOGUE, cause

# RFC 9209 section 2.3 error types that wsgate uses.
PROXY_STATUS_TYPES = {
    "destination_not_found",
    "destination_unavailable",
    "connection_refused",
    "connection_terminated",
    "connection_timeout",
    "connection_limit_reached",
    "http_request_error",
    "http_request_denied",
    "http_response_timeout",
    "http_upgrade_failed",
    "http_protocol_error",
    "proxy_internal_response",
    "proxy_internal_error",
    "http_response_incomplete",
}


def test_codes_are_snake_case_and_keys_match() -> None:
    for code, item in CATALOGUE.items():
        assert code == item.code
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), code


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_cause_explains_itself(code: str) -> None:
    item = cause(code)
    assert item.summary.endswith("."), code
    assert item.fix, code
    if item.status is not None:
        assert 400 <= item.status <= 599
        assert item.proxy_status in PROXY_STATUS_TYPES


def test_required_gateway_causes_and_statuses() -> None:
    expected = {
        "upstream_connect_refused": 502,
        "upstream_connect_timeout": 504,
        "upstream_handshake_timeout": 504,
        "upstream_closed_early": 502,
        "upstream_bad_response": 502,
        "upstream_bad_accept": 502,
        "no_route": 404,
        "bad_upgrade_request": 400,
        "unsupported_version": 426,
        "header_too_large": 431,
        "header_timeout": 408,
    }
    assert {code: cause(code).status for code in expected} == expected


def test_unknown_code_raises_key_error() -> None:
    with pytest.raises(KeyError):
        cause("no_such_cause")

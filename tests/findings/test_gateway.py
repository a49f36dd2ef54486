from __future__ import annotations

import pytest

from wsgate.findings import CATALOGUE, CauseCode, cause
from wsgate.findings.gateway import CAUSES, check_codes
from wsgate.findings.model import Cause
from wsgate.protocol.frames import CloseCode


def _cause(code: str) -> Cause:
    return Cause(code=code, summary="S.", fix="F", status=400)


def test_cause_code_names_exactly_the_gateway_catalogue() -> None:
    assert [str(code) for code in CauseCode] == [item.code for item in CAUSES]
    for code in CauseCode:
        assert code.name == code.value.upper()


def test_a_member_is_its_plain_string() -> None:
    plain: str = "no_route"  # typed str: mypy takes a member and a literal for disjoint
    assert plain == CauseCode.NO_ROUTE
    assert f"{CauseCode.NO_ROUTE}" == "no_route"
    assert cause(CauseCode.NO_ROUTE) is CATALOGUE["no_route"]
    assert {"no_route": 1}[CauseCode.NO_ROUTE] == 1


def test_check_codes_accepts_agreement() -> None:
    check_codes(["a", "b"], [_cause("b"), _cause("a")])


@pytest.mark.parametrize(
    ("codes", "causes", "message"),
    [
        (["a"], ["a", "b"], "causes without a CauseCode member: b"),
        (["a", "b"], ["a"], "CauseCode members without a cause: b"),
        (["a"], ["a", "a"], "causes listed twice: a"),
    ],
)
def test_check_codes_refuses_disagreement(
    codes: list[str], causes: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_codes(codes, [_cause(code) for code in causes])


@pytest.mark.parametrize("code", list(CauseCode))
def test_every_gateway_cause_reaches_the_wire(code: CauseCode) -> None:
    item = cause(code)
    # An HTTP answer before the 101, or a close frame after it: never neither.
    assert item.status is not None or item.close_code is not None, code
    if item.close_code is not None:
        assert item.close_code in set(CloseCode), code


def test_causes_that_end_a_tunnel_and_their_close_codes() -> None:
    ending = {item.code: item.close_code for item in CAUSES if item.close_code is not None}
    assert ending == {
        "upstream_tunnel_broken": CloseCode.BAD_GATEWAY,
        "shutting_down": CloseCode.GOING_AWAY,
        "peer_ping_timeout": CloseCode.INTERNAL_ERROR,
        "message_too_big": CloseCode.MESSAGE_TOO_BIG,
        "frame_too_big": CloseCode.MESSAGE_TOO_BIG,
        "message_rate_exceeded": CloseCode.POLICY_VIOLATION,
    }


def test_only_gateway_causes_carry_a_close_code() -> None:
    gateway = set(CauseCode)
    assert all(item.close_code is None for item in CATALOGUE.values() if item.code not in gateway)

"""--idle through a gateway that keeps connections alive: its keepalive pings are told
apart from the application's, and said to hide the idle timeouts behind it."""

from __future__ import annotations

from tests.doctor.literals import upgraded
from wsgate.doctor.observations import IdleEnd, IdleObs, IdleSpan
from wsgate.doctor.verdicts import diagnose


def test_a_span_kept_alive_by_wsgate_is_an_info_finding() -> None:
    idle = IdleObs(60.0, (IdleSpan(60.0, IdleEnd.SURVIVED, server_pings=4, keepalive_pings=3),))
    result = diagnose(upgraded(idle=idle))
    (kept,) = [f for f in result.findings if f.code == "idle_kept_alive"]
    assert kept.severity == "info"
    assert "wsgate sent 3 keepalive ping(s) while the connection was quiet for 60 s" in (
        kept.evidence
    )
    assert result.ok
    row = next(layer for layer in result.layers if layer.name == "idle")
    assert row.ok and "kept alive by wsgate's keepalive (3 of 4 ping(s))" in row.detail


def test_the_applications_own_pings_are_not_the_gateways() -> None:
    idle = IdleObs(60.0, (IdleSpan(60.0, IdleEnd.SURVIVED, server_pings=3),))
    result = diagnose(upgraded(idle=idle))
    assert "idle_kept_alive" not in [f.code for f in result.findings]


def test_a_cut_despite_the_keepalive_says_its_pings_come_too_late() -> None:
    idle = IdleObs(
        90.0,
        (IdleSpan(90.0, IdleEnd.EOF, 60.2, server_pings=0, keepalive_pings=1),),
    )
    (cut,) = [f for f in diagnose(upgraded(idle=idle)).findings if f.code == "idle_cut"]
    assert "wsgate on the way sent 1 keepalive ping(s) before the cut" in cut.evidence

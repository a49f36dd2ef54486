"""What servers say in words: refusal bodies and close reasons, read into causes, and the
verdicts built on them. Literal bodies as real servers send them; no sockets."""

from __future__ import annotations

import pytest

from tests.doctor.literals import WEBSOCKETS_426, answer, reached, upgraded
from wsgate.doctor.observations import (
    Answer,
    AnswerKind,
    CloseObs,
    IdleEnd,
    IdleObs,
    IdleSpan,
    PingObs,
    QuietObs,
    Settings,
)
from wsgate.doctor.reasons import going_away, read_refusal
from wsgate.doctor.verdicts import Diagnosis, diagnose
from wsgate.findings.model import Severity

# websockets 17 (Python), answered to an upgrade without and with a wrong subprotocol.
MISSING_SUBPROTOCOL = "Failed to open a WebSocket connection: missing subprotocol.\n"
INVALID_SUBPROTOCOL = (
    "Failed to open a WebSocket connection: invalid subprotocol; expected one of chat, "
    "v2.chat.example.\n"
)
WEBSOCKETS_HEADERS = (
    ("Connection", "close"),
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Server", "Python/3.11 websockets/17.4"),
)


def codes(diagnosis: Diagnosis) -> list[str]:
    return [f.code for f in diagnosis.findings]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (MISSING_SUBPROTOCOL, "subprotocol_mismatch"),
        (INVALID_SUBPROTOCOL, "subprotocol_mismatch"),
        ("Invalid Sec-WebSocket-Protocol header", "subprotocol_mismatch"),  # Node ws
        ("Missing or invalid Sec-WebSocket-Version header", "version_mismatch"),  # Node ws
        ("Failed to open a WebSocket connection: invalid Origin header: x.", "origin_rejected"),
        (WEBSOCKETS_426, "upgrade_not_forwarded"),
        ("Failed to open a WebSocket connection: missing Upgrade header.", "upgrade_not_forwarded"),
        ('Can "Upgrade" only to "WebSocket".', "upgrade_not_forwarded"),  # Tornado
        ("Bad Request", None),
        ("Failed to open a WebSocket connection.", None),
    ],
)
def test_a_refusal_body_names_its_cause(body: str, code: str | None) -> None:
    refusal = read_refusal(body, ())
    assert (refusal.code if refusal else None) == code


def test_the_subprotocols_the_server_accepts_are_read_dots_and_all() -> None:
    refusal = read_refusal(INVALID_SUBPROTOCOL, ("mqtt",))
    assert refusal is not None
    assert refusal.expected == ("chat", "v2.chat.example")
    assert "offered: 'mqtt'" in refusal.note


@pytest.mark.parametrize("via_nginx", [False, True])
def test_a_backend_refusing_over_the_subprotocol_is_not_blamed_on_a_proxy(
    via_nginx: bool,
) -> None:
    headers = (("Server", "nginx/1.22.1"),) if via_nginx else WEBSOCKETS_HEADERS
    diagnosis = diagnose(reached(answer(400, INVALID_SUBPROTOCOL, headers, reason="Bad Request")))
    (found,) = diagnosis.findings
    assert found.code == "subprotocol_mismatch"
    assert found.severity is Severity.ERROR and not diagnosis.ok
    assert "offered: none" in found.evidence
    assert "--subprotocol chat" in found.fix
    assert "proxy_set_header" not in found.fix and "mod_proxy" not in found.fix


def test_missing_subprotocol_says_what_was_offered() -> None:
    obs = reached(answer(400, MISSING_SUBPROTOCOL, WEBSOCKETS_HEADERS))
    (found,) = diagnose(obs).findings
    assert found.code == "subprotocol_mismatch"
    assert "refused the handshake over the subprotocol (offered: none)" in found.evidence


def test_a_complaint_about_the_upgrade_headers_still_blames_the_path() -> None:
    obs = reached(answer(400, WEBSOCKETS_426, (("Server", "nginx"),)))
    (found,) = diagnose(obs).findings
    assert found.code == "upgrade_not_forwarded"
    assert "proxy_set_header Upgrade" in found.fix


@pytest.mark.parametrize(
    ("code", "reason", "away"),
    [
        (1001, "server shutting down", True),
        (1001, "Server restart", True),
        (1012, "", True),
        (1012, "backend drained", True),
        (1001, "idle timeout", False),
        (1001, "", False),
        (1001, "Going away", False),  # AWS API Gateway's idle cut says this
        (1000, "shutting down", False),
        (None, "", False),
    ],
)
def test_going_away(code: int | None, reason: str, away: bool) -> None:
    assert going_away(code, reason) is away


def test_wsgate_draining_is_the_server_going_away_not_an_idle_cut() -> None:
    span = IdleSpan(10.0, IdleEnd.CLOSE_FRAME, 2.1, 1001, "server shutting down")
    diagnosis = diagnose(upgraded(idle=IdleObs(10.0, (span,))))
    assert codes(diagnosis) == ["server_going_away"]
    found = diagnosis.findings[0]
    assert found.layer == "idle" and not diagnosis.ok
    assert "close frame 1001 (going away) 'server shutting down'" in found.evidence
    assert "server.drain_*" in found.evidence and "drain_timeout_s" in found.fix
    assert "ping" not in found.fix
    row = next(layer for layer in diagnosis.layers if layer.name == "idle")
    assert not row.ok and "the server went away after 2.1 s" in row.detail


def test_a_service_restart_close_is_going_away_whatever_its_reason() -> None:
    span = IdleSpan(10.0, IdleEnd.CLOSE_FRAME, 4.0, 1012, "")
    found = diagnose(upgraded(idle=IdleObs(10.0, (span,)))).findings[0]
    assert found.code == "server_going_away"
    assert "(service restart)" in found.evidence


def test_an_idle_timeout_close_stays_an_idle_cut() -> None:
    span = IdleSpan(10.0, IdleEnd.CLOSE_FRAME, 1.5, 1001, "idle timeout")
    assert codes(diagnose(upgraded(idle=IdleObs(10.0, (span,))))) == ["idle_cut"]


def dropped(quiet: QuietObs | None) -> Diagnosis:
    eof = Answer(AnswerKind.EOF, 3001.0, error="EOF")
    return diagnose(reached(eof, quiet=quiet))


def test_dropped_and_a_silent_connection_closed_too_is_a_tcp_proxy() -> None:
    diagnosis = dropped(QuietObs(6.5, True, 3000.4))
    (found,) = diagnosis.findings
    assert found.code == "connection_dropped"
    assert "a second connection that sent nothing was closed too, after 3000 ms" in (found.evidence)
    assert "TCP-level proxy" in found.fix and "HAProxy" in found.fix
    row = next(layer for layer in diagnosis.layers if layer.name == "quiet")
    assert not row.ok and "closed (EOF) after 3000.4 ms" in row.detail


def test_dropped_but_a_silent_connection_waits_is_the_server() -> None:
    (found,) = dropped(QuietObs(2.0, False, 2000.0)).findings
    assert "still open after 2 s" in found.evidence
    assert "TCP-level proxy" not in found.fix and "worker_connections" in found.fix


def test_dropped_without_the_quiet_check_keeps_the_general_fix() -> None:
    (found,) = dropped(None).findings
    assert "worker_connections" in found.fix


def test_a_close_that_fails_after_a_ping_timeout_is_its_own_finding() -> None:
    obs = upgraded(
        settings=Settings(timeout_s=4.0),
        ping=PingObs(False, 4000.0, "no pong within 4 s"),
        close=CloseObs(4000.0, False, error="no close frame within 4 s"),
    )
    diagnosis = diagnose(obs)
    assert codes(diagnosis) == ["ping_timeout", "unclean_close"]
    failed = {layer.name for layer in diagnosis.layers if not layer.ok}
    assert failed == {"ping", "close"}
    assert {f.layer for f in diagnosis.findings} == failed
    assert "no close frame within 4 s" in diagnosis.findings[1].evidence

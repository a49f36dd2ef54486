"""docs/doctor.md agrees with the catalogue and the verdicts: every finding code with its
severity, every other severity a code can have explained in its row, every layer named."""

from __future__ import annotations

import re
from pathlib import Path

from tests.doctor.literals import upgraded
from wsgate.doctor.observations import BurstObs, UpgradeObs
from wsgate.doctor.report import to_text
from wsgate.doctor.verdicts import diagnose
from wsgate.findings import doctor as doctor_causes
from wsgate.findings.model import Severity

DOCS = Path(__file__).resolve().parents[2] / "docs" / "doctor.md"
_ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \|$", re.M)
_LAYER_ROW = re.compile(r"^\| `([a-z0-9-]+)` \| [^|]+ \| ([^|]+) \|$", re.M)


def severities() -> dict[str, str]:
    text = DOCS.read_text()
    table = text[text.index("## Finding codes") :]
    return {code: cell.strip() for code, cell, _ in _ROW.findall(table)}


def test_every_doctor_code_is_documented_with_its_severity() -> None:
    documented = severities()
    for item in doctor_causes.CAUSES:
        assert item.code in documented, item.code
        assert documented[item.code].split(";")[0] == str(item.severity), item.code


def test_a_code_printed_with_another_severity_says_when_in_its_row() -> None:
    none_selected = upgraded(
        upgrade=UpgradeObs("x", "x", "websocket", "Upgrade", subprotocols_offered=("chat",))
    )
    slower = upgraded(burst=BurstObs(50, (("101", 50),), 900.0, 1500.0, 1600.0, 10.0, 2000.0))
    documented = severities()
    for obs in (none_selected, slower):
        diagnosis = diagnose(obs)
        for found in diagnosis.findings:
            if found.severity is not Severity.INFO:
                assert f"{found.severity} when" in documented[found.code] or (
                    documented[found.code] == str(found.severity)
                ), found.code
        # A warning leaves the exit status at 0, and the report prints it as a warning.
        assert diagnosis.ok
        text = to_text("ws://x/", diagnosis)
        assert any(line.startswith("WARNING ") for line in text.splitlines())
        assert text.endswith("healthy: 0 error(s), 1 warning(s)")


def test_the_101_line_says_no_subprotocol_was_selected() -> None:
    obs = upgraded(
        upgrade=UpgradeObs("x", "x", "websocket", "Upgrade", subprotocols_offered=("chat",))
    )
    row = next(layer for layer in diagnose(obs).layers if layer.name == "101")
    assert "no subprotocol selected (offered ['chat'])" in row.detail


def test_every_layer_the_probe_reports_is_in_the_layers_table() -> None:
    text = DOCS.read_text()
    table = text[text.index("## Layers") : text.index("## Options")]
    names = {name for name, _ in _LAYER_ROW.findall(table)}
    expected = {"dns", "tcp", "tls", "upgrade", "quiet", "101", "ping", "echo", "idle", "close"}
    assert expected | {"burst", "connect-to"} <= names

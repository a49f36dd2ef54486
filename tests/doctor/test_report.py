"""The report's two forms, from a literal diagnosis."""

from __future__ import annotations

import json

from tests.doctor.literals import NGINX_502, answer, reached, upgraded
from wsgate.doctor.report import to_dict, to_json, to_text
from wsgate.doctor.verdicts import diagnose


def test_json_shape() -> None:
    url = "ws://127.0.0.1:8080/chat"
    data = json.loads(to_json(url, diagnose(reached(answer(502, NGINX_502)))))
    assert set(data) == {"url", "ok", "layers", "findings"}
    assert data["url"] == url
    assert data["ok"] is False
    for layer in data["layers"]:
        assert set(layer) == {"name", "ok", "ms", "detail"}
    assert [f["code"] for f in data["findings"]] == ["gateway_upstream_unreachable"]
    finding = data["findings"][0]
    assert set(finding) == {"code", "severity", "layer", "summary", "evidence", "fix"}
    assert finding["severity"] == "error"


def test_text_report_lists_layers_then_findings() -> None:
    text = to_text("ws://x/", diagnose(reached(answer(502, NGINX_502))))
    lines = text.splitlines()
    assert lines[0] == "wsgate doctor ws://x/"
    assert any(line.split()[:2] == ["upgrade", "FAIL"] for line in lines)
    assert "ERROR gateway_upstream_unreachable (layer upgrade)" in text
    assert "evidence:" in text and "fix:" in text
    assert lines[-1] == "broken: 1 error(s), 0 warning(s)"
    assert max(len(line) for line in lines) <= 100


def test_healthy_text_has_no_fix_line() -> None:
    text = to_text("ws://x/", diagnose(upgraded()))
    assert "INFO healthy" in text
    assert "fix:" not in text
    assert text.endswith("healthy: 0 error(s), 0 warning(s)")
    assert to_dict("ws://x/", diagnose(upgraded()))["ok"] is True

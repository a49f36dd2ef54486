"""Output formats: compiler-style text, the JSON list, and SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import json
import re

from tests.lint.helpers import lint_text
from wsgate.findings import lint as lint_causes
from wsgate.lint.report import render

BROKEN = """\
server {
  location /ws/ {
    proxy_pass http://a;
  }
  location / { proxy_pass http://b; }
}
"""


def test_text_lines_are_compiler_style_with_symptom_and_fix() -> None:
    out = render(lint_text("nginx", BROKEN), "text")
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    pattern = re.compile(r"^test\.nginx:\d+: (error|warning|info) [a-z_]+: .+")
    assert all(pattern.match(h) for h in heads[:-1]), heads
    assert heads[-1] == "3 errors, 1 warning, 3 infos in 1 file"
    assert "    symptom: the backend answers the handshake with 505" in out
    assert "    fix: Add `proxy_http_version 1.1;` to location /ws/." in out


def test_text_for_no_findings_is_just_the_summary() -> None:
    assert render([], "text", files=2) == "0 errors, 0 warnings, 0 infos in 2 files\n"


def test_json_is_a_list_of_the_six_fields() -> None:
    data = json.loads(render(lint_text("nginx", BROKEN), "json"))
    assert isinstance(data, list) and len(data) == 7
    for item in data:
        assert set(item) == {"file", "line", "code", "severity", "message", "fix"}
    assert data[0] == {
        "file": "test.nginx",
        "line": 2,
        "code": "nginx_connection_not_upgrade",
        "severity": "error",
        "message": data[0]["message"],
        "fix": data[0]["fix"],
    }


def test_sarif_has_rules_with_help_and_results_with_locations() -> None:
    findings = lint_text("nginx", BROKEN)
    log = json.loads(render(findings, "sarif"))
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert ids == [c.code for c in lint_causes.CAUSES] and len(set(ids)) == len(ids)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
        assert rule["help"]["markdown"] and rule["helpUri"].endswith(f"#{rule['id']}")
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = run["results"]
    assert len(results) == len(findings)
    for result, found in zip(results, findings, strict=True):
        assert result["ruleId"] == found.code
        assert rules[result["ruleIndex"]]["id"] == found.code
        assert (
            result["level"]
            == {"error": "error", "warning": "warning", "info": "note"}[found.severity.value]
        )
        assert found.message in result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "test.nginx", "uriBaseId": "%SRCROOT%"}
        assert physical["region"]["startLine"] == found.line >= 1


def test_sarif_absolute_paths_become_file_uris() -> None:
    from dataclasses import replace

    (found,) = lint_text(
        "nginx",
        "server { location /ws/ { proxy_pass http://a; "
        "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
        'proxy_set_header Connection "upgrade"; proxy_read_timeout 1h; } }',
    )
    log = json.loads(render([replace(found, file="/etc/nginx/my site.conf")], "sarif"))
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "file:///etc/nginx/my%20site.conf"}

"""Findings -> text (compiler style), JSON, or SARIF 2.1.0 for GitHub code scanning. Pure."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import PurePosixPath
from typing import Any

from wsgate import __version__
from wsgate.findings import cause
from wsgate.findings import lint as lint_causes
from wsgate.findings.model import Severity
from wsgate.lint.model import Finding

FORMATS: tuple[str, ...] = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_URI = "https://github.com/wsgate/wsgate/blob/main/docs/lint.md"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render(findings: list[Finding], fmt: str, files: int = 1) -> str:
    if fmt == "json":
        return render_json(findings)
    if fmt == "sarif":
        return render_sarif(findings)
    return render_text(findings, files)


def render_text(findings: list[Finding], files: int = 1) -> str:
    """`file:line: severity code: message`, then the symptom and the fix, indented."""
    out: list[str] = []
    for f in findings:
        out.append(f"{f.file}:{f.line}: {f.severity} {f.code}: {f.message}")
        if f.symptom:
            out.append(f"    symptom: {f.symptom}")
        out.append(f"    fix: {f.fix}")
    counts = Counter(f.severity for f in findings)
    parts = [
        f"{counts[s]} {s.value}{'s' if counts[s] != 1 else ''}"
        for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
    ]
    out.append(f"{', '.join(parts)} in {files} file{'s' if files != 1 else ''}")
    return "\n".join(out) + "\n"


def as_dict(f: Finding) -> dict[str, Any]:
    return {
        "file": f.file,
        "line": f.line,
        "code": f.code,
        "severity": f.severity.value,
        "message": f.message,
        "fix": f.fix,
    }


def render_json(findings: list[Finding]) -> str:
    return json.dumps([as_dict(f) for f in findings], indent=2) + "\n"


def _uri(path: str) -> dict[str, str]:
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return {"uri": posix.as_uri()}
    return {"uri": str(posix), "uriBaseId": "%SRCROOT%"}


def sarif_rules() -> list[dict[str, Any]]:
    rules = []
    for item in lint_causes.CAUSES:
        text = f"{item.summary} Symptom: {item.symptom}. Fix: {item.fix}"
        rules.append(
            {
                "id": item.code,
                "name": "".join(word.capitalize() for word in item.code.split("_")),
                "shortDescription": {"text": item.summary},
                "fullDescription": {"text": f"{item.summary} Runtime symptom: {item.symptom}."},
                "help": {
                    "text": text,
                    "markdown": f"{item.summary}\n\n**Symptom:** {item.symptom}.\n\n"
                    f"**Fix:** {item.fix}",
                },
                "helpUri": f"{DOCS_URI}#{item.code}",
                "defaultConfiguration": {"level": _SARIF_LEVEL[item.severity]},
                "properties": {"tags": ["websocket", item.code.split("_", 1)[0]]},
            }
        )
    return rules


def render_sarif(findings: list[Finding]) -> str:
    rules = sarif_rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for f in findings:
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": index[f.code],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.message}. Symptom: {cause(f.code).symptom}. Fix: {f.fix}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": _uri(f.file),
                            "region": {"startLine": max(f.line, 1)},
                        }
                    }
                ],
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "wsgate lint",
                        "version": __version__,
                        "informationUri": DOCS_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"

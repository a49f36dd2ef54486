"""The doctor's report: a line per layer with its time and verdict, then the findings;
or the same as JSON (`{"url", "ok", "layers", "findings"}`, see docs/doctor.md)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from wsgate.doctor.verdicts import Diagnosis
from wsgate.findings.model import Severity

WIDTH = 100


def to_dict(url: str, diagnosis: Diagnosis) -> dict[str, Any]:
    return {
        "url": url,
        "ok": diagnosis.ok,
        "layers": [
            {"name": layer.name, "ok": layer.ok, "ms": round(layer.ms, 1), "detail": layer.detail}
            for layer in diagnosis.layers
        ],
        "findings": [
            {
                "code": f.code,
                "severity": str(f.severity),
                "layer": f.layer,
                "summary": f.summary,
                "evidence": f.evidence,
                "fix": f.fix,
            }
            for f in diagnosis.findings
        ],
    }


def to_json(url: str, diagnosis: Diagnosis) -> str:
    return json.dumps(to_dict(url, diagnosis), indent=2)


def _wrapped(label: str, text: str) -> list[str]:
    indent = " " * 12
    return textwrap.wrap(
        text, WIDTH, initial_indent=f"  {label:<10}", subsequent_indent=indent
    ) or [f"  {label}"]


def to_text(url: str, diagnosis: Diagnosis) -> str:
    lines = [f"wsgate doctor {url}", ""]
    for layer in diagnosis.layers:
        verdict = "ok" if layer.ok else "FAIL"
        head = f"  {layer.name:<10} {verdict:<4} {layer.ms:>9.1f} ms  "
        lines.extend(
            textwrap.wrap(
                layer.detail, WIDTH, initial_indent=head, subsequent_indent=" " * len(head)
            )
            or [head.rstrip()]
        )
    lines.append("")
    for f in diagnosis.findings:
        lines.append(f"{str(f.severity).upper()} {f.code} (layer {f.layer})")
        lines.extend(textwrap.wrap(f.summary, WIDTH, initial_indent="  ", subsequent_indent="  "))
        lines.extend(_wrapped("evidence:", f.evidence))
        if f.severity is not Severity.INFO:
            lines.extend(_wrapped("fix:", f.fix))
        lines.append("")
    errors = sum(f.severity is Severity.ERROR for f in diagnosis.findings)
    warnings = sum(f.severity is Severity.WARNING for f in diagnosis.findings)
    verdict = "healthy" if diagnosis.ok else "broken"
    lines.append(f"{verdict}: {errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)

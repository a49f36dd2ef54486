"""One catalogue of causes, shared by the gateway, the doctor and lint.

Each face keeps its causes in its own module here (`gateway.py`, `doctor.py`,
`lint.py`); this module merges them and refuses duplicate codes, so a code means one
thing everywhere. Look a cause up with `cause(code)`; `CauseCode` names the gateway's
codes (checked against its catalogue when this package loads).
"""

from __future__ import annotations

from collections.abc import Iterable

from wsgate.findings import doctor, gateway, lint
from wsgate.findings.gateway import CauseCode
from wsgate.findings.model import Cause, Severity

__all__ = ["CATALOGUE", "Cause", "CauseCode", "Severity", "cause"]


def _merge(*groups: Iterable[Cause]) -> dict[str, Cause]:
    merged: dict[str, Cause] = {}
    for group in groups:
        for item in group:
            if item.code in merged:
                raise ValueError(f"duplicate cause code {item.code!r}")
            merged[item.code] = item
    return merged


CATALOGUE: dict[str, Cause] = _merge(gateway.CAUSES, doctor.CAUSES, lint.CAUSES)


def cause(code: str) -> Cause:
    """Return the cause for `code`; a KeyError names the unknown code."""
    return CATALOGUE[code]

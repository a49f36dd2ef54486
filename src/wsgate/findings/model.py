"""The shape of a cause: one code, the words a user sees, and its wire meaning.

Pure data: no I/O. The gateway turns a cause into an HTTP error response, the doctor
into a finding about a probed URL, and lint into a finding about a config line; all three
show the same `summary` and `fix`, so a user reads the same words everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Cause:
    """One explained failure mode.

    `status` is the HTTP status the gateway answers with when it produces this cause
    itself (None for causes only the doctor or lint report). `proxy_status` is the error
    type from the RFC 9209 registry that goes into the `Proxy-Status` header.
    `close_code` is the WebSocket close code (RFC 6455 section 7.4) the client gets when
    this cause ends an established tunnel (None for causes that never do).
    `symptom` is what a client sees at runtime (lint uses it to say why a line matters).
    """

    code: str
    summary: str
    fix: str
    status: int | None = None
    proxy_status: str | None = None
    close_code: int | None = None
    symptom: str = ""
    severity: Severity = Severity.ERROR
    retry_after: bool = False

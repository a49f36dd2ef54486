"""One JSON object per line on stderr: access lines for requests and tunnels, and one
line for every error the gateway makes, with its cause code and timings."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO


class JsonLog:
    """Writes events as JSON lines. `stream` defaults to stderr; `enabled_access`
    switches off access lines (errors are always written)."""

    def __init__(self, stream: TextIO | None = None, *, access: bool = True) -> None:
        self._stream = stream
        self.access_enabled = access

    def _write(self, record: dict[str, Any]) -> None:
        stream = self._stream or sys.stderr
        stream.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        stream.flush()

    def event(self, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "pid": os.getpid(),  # tells the workers of `serve --workers N` apart
            "event": event,
        }
        record.update(fields)
        self._write(record)

    def access(self, **fields: Any) -> None:
        if self.access_enabled:
            self.event("access", **fields)

    def error(self, cause: str, **fields: Any) -> None:
        self.event("error", cause=cause, **fields)

"""Self-contained HTML report of storm results (placeholder)."""

from __future__ import annotations

from typing import Any


def render(results: list[dict[str, Any]]) -> str:
    return "<!doctype html><title>storm</title>"

"""The terminal summary of a storm result (and of two, side by side).

`LATENCY_KEYS` is the one list of percentiles both the terminal and the HTML report show.
Results written before version 2 lack the time to failures, Retry-After values and the
ideal: their rows are left out.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# (key in the result's latency summaries, label): the same in every report.
LATENCY_KEYS: tuple[tuple[str, str], ...] = (
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("max", "max"),
)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}" if value < 100 else f"{value:,.0f}{unit}"
    return f"{value:,}{unit}"


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) lines of one result, in the order a reader wants them."""
    s = result["summary"]
    out = [
        ("target", result["url"]),
        ("handshakes started", _fmt(s["started"])),
        ("succeeded (101)", _fmt(s["ok"])),
        ("failed", _fmt(s["failed"])),
    ]
    out += [(f"  {name}", _fmt(count)) for name, count in s["outcomes"].items() if name != "101"]
    out += [(f"  after 101: {name}", _fmt(count)) for name, count in s["session_errors"].items()]
    hs = s["handshake_ms"]
    out += [(f"handshake {label}", _fmt(hs[key], " ms")) for key, label in LATENCY_KEYS]
    failed = s.get("failed_ms") or {}
    if failed.get("count"):
        out += [
            (f"time to failure {label}", _fmt(failed[key], " ms")) for key, label in LATENCY_KEYS
        ]
    retry = s.get("retry_after_s") or {}
    if retry.get("count"):
        out.append(("Retry-After received", _fmt(retry["count"])))
        out += [(f"Retry-After {key}", _fmt(retry[key], " s")) for key in ("min", "p50", "max")]
    if s["rtt_ms"]["count"]:
        out += [
            (f"round trip {label}", _fmt(s["rtt_ms"][key], " ms")) for key, label in LATENCY_KEYS
        ]
        out.append(("messages/s", _fmt(s["messages_per_s"])))
    out.append(("time to last success", _fmt(s["time_to_last_success_s"], " s")))
    ideal = result.get("ideal")
    if ideal:
        at = f" at {ideal['capacity_per_s']:g}/s"
        out.append(("  ideal (--capacity)", _fmt(ideal["time_to_last_success_s"], " s") + at))
    out += retry_rows(result.get("retry"))
    out += [
        ("elapsed", _fmt(s["elapsed_s"], " s")),
        ("handshakes/s (ok)", _fmt(s["handshakes_per_s"])),
        ("client CPU", _fmt(result["client"]["cpu_s"], " s")),
    ]
    return out


def retry_rows(retry: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The retrying clients' lines (`--client`), none for a one-shot storm."""
    if not retry:
        return []
    per_client = retry["failed_attempts_per_client"]
    waits = retry["time_to_connected_s"]
    all_in = retry["time_until_all_connected_s"]
    missing = retry["never_connected"]
    until_all = _fmt(all_in, " s") if all_in is not None else f"never ({missing:,} missing)"
    out = [
        (f"clients ({retry['mode']})", _fmt(retry["clients"])),
        ("  connected", _fmt(retry["connected"])),
        ("  time until all connected", until_all),
        ("  last (re)connected at", _fmt(retry["last_connected_s"], " s")),
        ("  reconnects", _fmt(retry["reconnects"])),
        ("  gave up", _fmt(retry["gave_up"])),
        ("  time to connected p50", _fmt(waits["p50"], " s")),
        ("  time to connected max", _fmt(waits["max"], " s")),
        ("  attempts", _fmt(retry["attempts"])),
        ("  failed attempts", _fmt(retry["failed_attempts"])),
        ("  failed attempts per client mean", _fmt(per_client["mean"])),
    ]
    out += [
        (f"  failed attempts per client {key}", _fmt(_int(per_client[key])))
        for key in ("p50", "p99", "max")
    ]
    out += [(f"    {cause}", _fmt(count)) for cause, count in retry["failures_by_cause"].items()]
    return out


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def print_result(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"wsgate storm: {result['label']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for name, value in rows(result):
        table.add_row(name, value)
    console.print(table)
    for note in result["client"]["notes"]:
        console.print(f"[yellow]client:[/] {note}")


def print_compare(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="wsgate storm: compare")
    table.add_column("")
    columns = [dict(rows(result)) for result in results]
    names: list[str] = []
    for column in columns:
        after = -1  # keep each run's order: a new name goes after the one before it
        for name in column:
            if name in names:
                after = names.index(name)
            else:
                after += 1
                names.insert(after, name)
    for result in results:
        table.add_column(result["label"], justify="right")
    for name in names:
        table.add_row(name, *(column.get(name, "-") for column in columns))
    console.print(table)

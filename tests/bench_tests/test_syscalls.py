"""bench/syscalls.py: strace -c's table read back, divided by the handshakes, and shown
as a row per system call and a column per target."""

from __future__ import annotations

from bench.syscalls import Count, parse_summary, per_handshake, table

STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 31.05    0.120000          12     10000           write
 20.11    0.077700           7     10000      2000 read
  5.00    0.019300          19      1000           accept4
  0.01    0.000040          40         1           mmap
------ ----------- ----------- --------- --------- ----------------
100.00    0.217040          10     21001      2000 total
"""


def test_the_strace_table_is_read_with_calls_and_errors() -> None:
    assert parse_summary(STRACE_C) == {
        "write": (10000, 0),
        "read": (10000, 2000),
        "accept4": (1000, 0),
        "mmap": (1, 0),
    }


def test_counts_are_per_handshake_and_the_table_leaves_out_rare_calls() -> None:
    wsgate = per_handshake(parse_summary(STRACE_C), 1000)
    assert wsgate == Count(
        1000,
        {"write": 10.0, "read": 10.0, "accept4": 1.0, "mmap": 0.0},
        {"read": 2.0},
    )
    other = Count(1000, {"write": 2.0, "recvfrom": 5.0}, {})
    assert table({"wsgate": wsgate, "other": other}).splitlines() == [
        "| system call | wsgate | other |",
        "|---|---|---|",
        "| read | 10.00 | - |",
        "| write | 10.00 | 2.00 |",
        "| recvfrom | - | 5.00 |",
        "| accept4 | 1.00 | - |",
        "| **all** | **21.0** | **7.0** |",
    ]

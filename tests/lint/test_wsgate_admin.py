"""lint on a wsgate config with an [admin] table: the loader's rules, at the key's line."""

from __future__ import annotations

import pytest

from tests.lint.helpers import lint_text

POOL = '[pools.app]\nbackends = ["127.0.0.1:9001"]\n'


def test_a_valid_admin_table_has_no_finding() -> None:
    text = f'[admin]\nlisten = "127.0.0.1:9180"\nmetrics = false\nbackend_drain_s = 10\n{POOL}'
    assert lint_text("wsgate", text) == []


@pytest.mark.parametrize(
    ("admin", "line", "words"),
    [
        ('listen = "0.0.0.0:9180"', 1, "admin.token: expected a token"),
        ('token = "short"', 2, "admin.token: expected a token of at least 16"),
        ("metrics = 1", 2, "admin.metrics: expected true or false"),
        ("backend_drain_s = -3", 2, "admin.backend_drain_s: expected a number >= 0"),
        ("listn = 1", 2, "admin.listn: expected a known key"),
    ],
)
def test_admin_errors_at_their_line(admin: str, line: int, words: str) -> None:
    (found,) = lint_text("wsgate", f"[admin]\n{admin}\n{POOL}")
    assert (found.code, found.line) == ("wsgate_config_invalid", line)
    assert words in found.message

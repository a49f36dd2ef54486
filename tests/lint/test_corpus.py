"""Every config in tests/lint/corpus/ gives exactly the findings its comments announce.

A comment `# expect: SEVERITY CODE[, SEVERITY CODE...]` names findings on the next line that
is neither blank nor a comment. A file without expectations must give no finding at all.
The corpus was written for wsgate; its files are realistic, not copied from elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsgate.findings.model import Severity
from wsgate.lint.engine import lint_config
from wsgate.lint.loader import load

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(
    p for kind in CORPUS.iterdir() if kind.is_dir() for p in kind.iterdir() if p.is_file()
)
_EXPECT = re.compile(r"#\s*expect:\s*(.+)$")


def expectations(path: Path) -> set[tuple[str, int, str, str]]:
    """(file, line, code, severity) announced in one file."""
    found: set[tuple[str, int, str, str]] = set()
    pending: list[tuple[str, str]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        match = _EXPECT.search(stripped)
        if match:
            for item in match.group(1).split(","):
                severity, code = item.split()
                pending.append((severity, code))
            continue
        if not stripped or stripped.startswith("#"):
            continue
        for severity, code in pending:
            found.add((str(path), lineno, code, severity))
        pending = []
    assert not pending, f"{path}: expect comment at the end of the file"
    return found


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_corpus_file_gives_the_announced_findings(path: Path) -> None:
    config = load(str(path))
    assert config.kind == path.parent.name
    got = {
        (str(Path(f.file).resolve()), f.line, f.code, f.severity.value) for f in lint_config(config)
    }
    want: set[tuple[str, int, str, str]] = set()
    for name in config.files:
        for file, line, code, severity in expectations(Path(name)):
            want.add((str(Path(file).resolve()), line, code, severity))
    assert got == want


def test_corpus_covers_every_lint_code() -> None:
    from wsgate.findings import lint

    announced = {code for p in CASES for _f, _l, code, _s in expectations(p)}
    announced |= {
        code for p in CORPUS.rglob("*") if p.is_file() for _f, _l, code, _s in expectations(p)
    }
    assert {c.code for c in lint.CAUSES} <= announced


def test_clean_configs_have_no_error_or_warning() -> None:
    clean = [p for p in CASES if "clean" in p.name]
    assert len(clean) >= 5
    for path in clean:
        levels = {f.severity for f in lint_config(load(str(path)))}
        assert levels <= {Severity.INFO}, path

"""docs/lint.md stays true: every check code has its section, and the example runs shown
there are what `wsgate lint` prints today for the configs shown beside them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsgate.cli import main
from wsgate.findings import lint as lint_causes

DOC = Path(__file__).parents[2] / "docs" / "lint.md"


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def test_every_code_has_a_section_with_the_catalogue_words() -> None:
    text = DOC.read_text()
    for item in lint_causes.CAUSES:
        assert f"\n#### {item.code}\n" in text, item.code
        section = text.split(f"\n#### {item.code}\n", 1)[1].split("\n#", 1)[0]
        for words in (item.summary, item.symptom, item.fix):
            assert words in section, (item.code, words)


@pytest.mark.parametrize(
    ("name", "lang", "command"),
    [
        ("chat.conf", "nginx", "$ wsgate lint chat.conf\n"),
        ("haproxy.cfg", "haproxy", "$ wsgate lint haproxy.cfg --min-severity warning\n"),
    ],
)
def test_example_output_is_a_real_run(
    name: str,
    lang: str,
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = DOC.read_text()
    (config,) = blocks(text, lang)
    (shown,) = [b for b in blocks(text, "text") if b.startswith(command)]
    (tmp_path / name).write_text(config)
    monkeypatch.chdir(tmp_path)
    status = main(command.split()[2:])
    printed = capsys.readouterr().out
    assert command + printed + f"exit status: {status}\n" == shown

"""No module of wsgate reaches into a third-party package's private names: those change
without notice between versions (lint/nginx.py used crossplane's `_lex_file_object`)."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import pytest

import wsgate
from wsgate.lint import nginx
from wsgate.lint.model import LintError

SRC = Path(wsgate.__file__).parent


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def private_imports(source: str, filename: str) -> list[str]:
    """`file:line: import` for each import of a private third-party module or name."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module == "wsgate" or module.startswith("wsgate."):
                continue
            names = [alias.name for alias in node.names]
            if _private(module) or any(_private(name) for name in names):
                found.append(f"{filename}:{node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("wsgate") and _private(alias.name):
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
    return found


def test_the_check_sees_private_imports() -> None:
    text = "from crossplane.lexer import _lex_file_object\nimport a._b\nfrom c._d import e\n"
    assert len(private_imports(text, "x.py")) == 3
    fine = "from wsgate.x import _y\nfrom . import _z\nfrom __future__ import annotations\n"
    assert private_imports(fine + "from a import __version__\n", "y.py") == []


def test_no_module_imports_a_private_third_party_name() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    found = [hit for path in files for hit in private_imports(path.read_text(), str(path))]
    assert found == []


def test_nginx_through_public_lex_keeps_its_messages_and_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(LintError) as err:
        nginx.parse_root("http {\n  server {\n    listen 80;\n  }\n", "n.conf")
    assert (err.value.line, err.value.message) == (
        4,
        'unexpected end of file, expecting "}" (block opened at line 1)',
    )
    with pytest.raises(LintError) as err:
        nginx.parse_root("a 1;\n}\nb 2;\n", "n.conf")
    assert (err.value.line, err.value.message) == (2, 'unexpected "}"')
    root = nginx.parse_root('# top\nmap $a $b { default "x y"; }\n', "n.conf")
    assert [(n.name, n.args) for n in root.block or ()] == [("map", ("$a", "$b"))]
    assert root.comments == ("top",)
    assert list(tmp_path.iterdir()) == []

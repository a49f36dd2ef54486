#!/usr/bin/env bash
# Sets up for the tests (scripts/setup.sh --for-tests: the dev tools, the Debian packages the
# end-to-end tests start and, as root, a C compiler; it builds the compiled core) and runs
# every check: ruff, mypy --strict, pytest on the compiled build, then the gateway's unit
# tests again on the pure-Python build (WSGATE_PURE=1). Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -k tunnel` (then the pure-Python pass is skipped; for a whole run
# on pure Python: `WSGATE_PURE=1 bash scripts/test.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --for-tests
echo "== ruff"
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
echo "== mypy --strict (src, tests, bench, scripts: pyproject.toml's [tool.mypy] files)"
.venv/bin/mypy
if [ "${WSGATE_PURE:-}" = 1 ]; then
    echo "== pytest (pure Python)"
    .venv/bin/python -m pytest "$@"
    exit 0
fi
# As root (CI), setup.sh installed the compiler: tests/test_build.py must then find the
# compiled build running rather than skip.
if [ "$(id -u)" -eq 0 ]; then export WSGATE_REQUIRE_COMPILED=1; fi
echo "== pytest ($(.venv/bin/python -m wsgate --version))"
if [ "$#" -eq 0 ]; then
    # The whole suite names its 25 slowest tests: where the suite's time goes, in CI's log.
    .venv/bin/python -m pytest --durations=25
else
    .venv/bin/python -m pytest "$@"
fi
if [ "$#" -eq 0 ]; then
    echo "== pytest, the gateway's unit tests on pure Python (WSGATE_PURE=1)"
    WSGATE_PURE=1 .venv/bin/python -m pytest -q tests/gateway tests/policy tests/protocol \
        tests/test_build.py
fi

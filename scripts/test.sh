#!/usr/bin/env bash
# Sets up for the tests (scripts/setup.sh --for-tests: the dev tools, and the Debian packages
# the end-to-end tests start, as root) and runs every check: ruff, mypy --strict, then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k tunnel`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --for-tests
echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"

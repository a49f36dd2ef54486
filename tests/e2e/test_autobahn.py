"""The Autobahn|Testsuite fuzzingclient, sections 1-10, through a real `wsgate serve`: the
same verdicts case by case as straight against the `websockets` echo backend.

Runs scripts/autobahn.py as a subprocess: it makes (once, cached in .cache/) the Python 2.7
virtualenv the suite needs, starts the backend and the gateway on 127.0.0.1, runs the suite
both ways and compares. See docs/autobahn.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.autobahn import (
    CASES_1_TO_10,
    RUN_TIMEOUT_S,
    check_same_verdicts,
    run_script,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# test_gateway_frames_autobahn.py imports these from here.
__all__ = ["CASES_1_TO_10", "RUN_TIMEOUT_S", "run_script"]


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_sections_1_to_10_same_verdicts_through_the_gateway(tmp_path: Path) -> None:
    outdir = tmp_path / "autobahn"
    rc, output = run_script(["--outdir", str(outdir)])

    check_same_verdicts(outdir, rc, output)

"""The Autobahn|Testsuite fuzzingclient, sections 1-10, through a real `wsgate serve`: the
same verdicts case by case as straight against the `websockets` echo backend.

Runs scripts/autobahn.py as a subprocess: it makes (once, cached in .cache/) the Python 2.7
virtualenv the suite needs, starts the backend and the gateway on 127.0.0.1, runs the suite
both ways and compares. See docs/autobahn.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "autobahn.py"
# Sections 1 to 10 of autobahntestsuite 25.10.1 hold 301 cases (there is no section 8).
CASES_1_TO_10 = 301
RUN_TIMEOUT_S = 900


def run_script(argv: list[str]) -> tuple[int, str]:
    """Run the script; on timeout, SIGTERM it (it stops what it started), then SIGKILL."""
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=60)
        pytest.fail(f"scripts/autobahn.py ran over {RUN_TIMEOUT_S}s:\n{output}")
    return proc.returncode, output


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_sections_1_to_10_same_verdicts_through_the_gateway(tmp_path: Path) -> None:
    outdir = tmp_path / "autobahn"
    rc, output = run_script(["--outdir", str(outdir)])

    assert rc == 0, output
    summary = json.loads((outdir / "summary.json").read_text())
    # A run of zero cases (or of fewer than the suite has) is no pass.
    assert summary["case_count"] == {"direct": CASES_1_TO_10, "gateway": CASES_1_TO_10}, output
    direct, through = summary["verdicts"]["direct"], summary["verdicts"]["gateway"]
    assert set(direct) == set(through)
    assert {case_id.split(".")[0] for case_id in direct} == {str(n) for n in range(1, 11) if n != 8}
    assert summary["differing"] == [], output
    for case_id in summary["timing_alternatives"]:
        # Tolerated only between the two outcomes a case may list, with the same close verdict.
        assert {direct[case_id][0], through[case_id][0]} <= {"OK", "NON-STRICT"}, output
        assert direct[case_id][1] == through[case_id][1], output
    assert f"PASS: none of the {CASES_1_TO_10} cases differs" in output

"""The Autobahn|Testsuite fuzzingclient, sections 1-10, through `wsgate serve` with
frame-aware tunnels (keepalive and every limit on, set so high that no case reaches them):
the same verdicts case by case as straight against the backend, so reading both
directions' frame headers changes nothing the endpoints see. See tests/e2e/test_autobahn.py
for the plain tunnel and scripts/autobahn.py for how a run goes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_autobahn import CASES_1_TO_10, RUN_TIMEOUT_S, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_sections_1_to_10_same_verdicts_through_frame_aware_tunnels(tmp_path: Path) -> None:
    outdir = tmp_path / "autobahn"
    rc, output = run_script(["--frames", "--outdir", str(outdir)])

    assert rc == 0, output
    assert "frame-aware" in output
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["case_count"] == {"direct": CASES_1_TO_10, "gateway": CASES_1_TO_10}, output
    direct, through = summary["verdicts"]["direct"], summary["verdicts"]["gateway"]
    assert set(direct) == set(through)
    assert summary["differing"] == [], output
    for case_id in summary["timing_alternatives"]:
        assert {direct[case_id][0], through[case_id][0]} <= {"OK", "NON-STRICT"}, output
        assert direct[case_id][1] == through[case_id][1], output
    assert f"PASS: none of the {CASES_1_TO_10} cases differs" in output
    # The tunnels were frame-aware and no limit was reached: no tunnel ended on a cause.
    log = (outdir / "wsgate.log").read_text()
    assert '"cause":"message_too_big"' not in log and '"cause":"peer_ping_timeout"' not in log

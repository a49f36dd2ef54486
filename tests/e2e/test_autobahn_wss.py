"""The Autobahn|Testsuite fuzzingclient, sections 1-10, through `wsgate serve` with its
listener speaking TLS (a certificate made by the test): the client connects with wss://,
the gateway forwards to the plain `websockets` echo backend, and every case's verdicts
equal those of the run straight against the backend. See tests/support/autobahn.py for
how a run goes, tests/e2e/test_autobahn.py for the same over ws://."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.autobahn import RUN_TIMEOUT_S, check_same_verdicts, run_wss
from tests.support.certs import make_ca, make_leaf

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(RUN_TIMEOUT_S + 180)
def test_sections_1_to_10_same_verdicts_through_the_gateways_tls_listener(
    tmp_path: Path,
) -> None:
    ca = make_ca(tmp_path)
    cert, key = make_leaf(tmp_path, ca, "localhost", san="DNS:localhost,IP:127.0.0.1")
    outdir = tmp_path / "autobahn"
    rc, output = run_wss(["--cert", str(cert), "--key", str(key), "--outdir", str(outdir)])

    check_same_verdicts(outdir, rc, output)
    assert "(TLS)" in output
    # The fuzzingclient spoke TLS to the gateway: its spec names wss://, and the gateway
    # listened with TLS only (a plain client could not have got a single verdict).
    spec = json.loads((outdir / "gateway" / "spec.json").read_text())
    assert spec["servers"][0]["url"].startswith("wss://127.0.0.1:")
    config = (outdir / "wsgate.toml").read_text()
    assert "tls = true" in config and str(cert) in config

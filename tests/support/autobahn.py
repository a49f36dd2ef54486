"""The Autobahn|Testsuite comparisons of tests/e2e/test_autobahn*.py: run one in a process
of its own, bounded in time, and check its summary (the same verdicts case by case
straight to the backend and through the gateway).

scripts/autobahn.py runs the plain comparison (ws:// to the gateway). The wss:// one is
here, run as `python -m tests.support.autobahn --cert C --key K --outdir DIR`: the same
pieces of the script (its Python 2.7 virtualenv, echo backend, fuzzingclient runs, reruns
and summary), with `wsgate serve` listening with TLS on the given certificate and the
fuzzingclient connecting to it with wss://; the gateway forwards to the plain backend.
The direct run stays ws:// (the backend speaks no TLS): the verdicts must not change
because a TLS layer sits between the client and the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "autobahn.py"
# Sections 1 to 10 of autobahntestsuite 25.10.1 hold 301 cases (there is no section 8).
CASES_1_TO_10 = 301
RUN_TIMEOUT_S = 900


def run_command(argv: list[str]) -> tuple[int, str]:
    """Run argv from the repository root; on timeout, SIGTERM it (it stops what it
    started), then SIGKILL. Returns its exit status and output."""
    proc = subprocess.Popen(
        argv,
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
        raise AssertionError(f"{argv[1:3]} ran over {RUN_TIMEOUT_S}s:\n{output}") from None
    return proc.returncode, output


def run_script(argv: list[str]) -> tuple[int, str]:
    """scripts/autobahn.py: the comparison over ws://."""
    return run_command([sys.executable, str(SCRIPT), *argv])


def run_wss(argv: list[str]) -> tuple[int, str]:
    """This module's runner: the comparison with the gateway's listener speaking TLS."""
    return run_command([sys.executable, "-m", "tests.support.autobahn", *argv])


def check_same_verdicts(outdir: Path, rc: int, output: str) -> dict[str, Any]:
    """Assert that the run in `outdir` passed: every case of sections 1-10 ran both ways
    and none differs (but between the two outcomes a case itself lists, with the same close
    verdict). Returns its summary."""
    assert rc == 0, output
    summary: dict[str, Any] = json.loads((outdir / "summary.json").read_text())
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
    return summary


# -- The wss:// runner ------------------------------------------------------------------------

TLS_CONFIG = """
[server]
listen = [{{ address = "127.0.0.1:{port}", tls = true }}]
[tls]
[[tls.certificates]]
cert = "{cert}"
key = "{key}"
[pools.default]
backends = ["127.0.0.1:{backend}"]
"""


def load_script() -> ModuleType:
    """scripts/autobahn.py as a module (it is no package's; its dataclasses need it in
    sys.modules while it runs)."""
    spec = importlib.util.spec_from_file_location("wsgate_autobahn_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def tls_gateway(
    script: ModuleType, backend_port: int, cert: Path, key: Path, log_path: Path
) -> Iterator[int]:
    """`wsgate serve` with one TLS listener on a free 127.0.0.1 port in front of the plain
    backend; yields its port. Stopped by its PID."""
    port: int = script.free_port()
    config = log_path.with_suffix(".toml")
    text = TLS_CONFIG.format(port=port, cert=cert, key=key, backend=backend_port)
    config.write_text(text)
    argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(config)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
        )
    try:
        script.wait_for_port(port, proc, script.PORT_TIMEOUT_S)
        yield port
    finally:
        script.stop_process(proc)


def compare_over_wss(script: ModuleType, args: argparse.Namespace, outdir: Path) -> int:
    """Sections 1-10 straight to the backend (ws://) and through the gateway (wss://);
    cases that differ run again alone, as scripts/autobahn.py does. 0 when none differs,
    1 when one does, 2 when no case ran."""
    log = script.log
    cases = list(script.SECTIONS_1_TO_10)
    wstest = script.ensure_wstest(outdir / "install.log")
    limits = script.Limits(run_s=args.timeout, stall_s=args.stall)
    with (
        script.echo_backend(None, outdir / "backend.log") as backend_port,
        tls_gateway(script, backend_port, args.cert, args.key, outdir / "wsgate.log") as port,
    ):
        log(f"echo backend (websockets) on 127.0.0.1:{backend_port}")
        log(f"wsgate serve on 127.0.0.1:{port} (TLS) -> 127.0.0.1:{backend_port}")
        urls = {"direct": f"ws://127.0.0.1:{backend_port}", "gateway": f"wss://127.0.0.1:{port}"}
        outcome = script.compare(wstest, urls, cases, outdir, limits, args.reruns, strict=False)
    lines, summary = script.summarize(outcome)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines), flush=True)
    log(f"reports and logs in {outdir}")
    if not outcome.direct or not outcome.through:
        log("error: no cases ran")
        return 2
    return 1 if outcome.differing else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Autobahn|Testsuite fuzzingclient, sections 1-10, straight to a websockets "
        "echo backend and through wsgate's TLS listener (wss://); exits 1 when a case differs."
    )
    parser.add_argument("--cert", type=Path, required=True, help="PEM chain, leaf first")
    parser.add_argument("--key", type=Path, required=True, help="its PEM private key")
    parser.add_argument("--outdir", type=Path, help="reports and logs (default: a temp dir)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per wstest run")
    parser.add_argument("--stall", type=float, default=180.0, help="seconds without a new case")
    parser.add_argument("--reruns", type=int, default=3, help="reruns of a case that differs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    script = load_script()
    signal.signal(signal.SIGTERM, script.on_sigterm)  # stops what it started, by PID
    outdir = args.outdir.resolve() if args.outdir else Path(tempfile.mkdtemp(prefix="wss-ab-"))
    outdir.mkdir(parents=True, exist_ok=True)
    script.log(f"reports and logs in {outdir}")
    try:
        return compare_over_wss(script, args, outdir)
    except script.RunError as exc:
        script.log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Autobahn|Testsuite through the gateway: same verdicts as straight against the backend.

Runs the suite's `fuzzingclient` (it only connects out; the suite's servers, which listen on
every interface, are never started) twice against a `websockets` echo backend on 127.0.0.1:
once straight to the backend, once through `wsgate serve`. Then it compares the verdicts
("behavior" and "behaviorClose") case by case, prints a summary and exits 1 when any case
differs, 0 when none does, 2 when the run itself could not be done (install failure,
timeout, no cases).

    .venv/bin/python scripts/autobahn.py                 # sections 1-10, about a minute
    .venv/bin/python scripts/autobahn.py --full          # every case, 12.x/13.x too
    .venv/bin/python scripts/autobahn.py --cases 1.*,2.*
    .venv/bin/python scripts/autobahn.py --frames        # the gateway in frame-aware mode

A case that differs is run again, alone, both ways (--reruns, default 3); it matches when a
rerun gives the same verdicts. A few cases list two acceptable outcomes, "OK" and
"NON-STRICT" (e.g. 4.1.5: is the echo of the first message out before the peer fails the
connection on the bad frame that follows?), and which one a run gets depends on timing, even
straight against the backend. When every run of such a case got one of those listed outcomes,
with the same closing verdict, the case is reported as differing only by timing and does not
fail the run; --strict counts it as differing.

The suite runs only on Python 2.7: the first run makes a Python 2.7 virtualenv in
.cache/autobahn-py27 (with `virtualenv<20.22` from a tool venv in .cache/autobahn-tools, and
pyenv's 2.7.18) and installs autobahntestsuite with scripts/autobahn-constraints.txt; later
runs reuse it. Every wait is bounded, and every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import websockets.asyncio.messages
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
TOOLS_VENV = CACHE / "autobahn-tools"
PY27_VENV = CACHE / "autobahn-py27"
LOCK_PATH = CACHE / "autobahn.lock"
CONSTRAINTS = ROOT / "scripts" / "autobahn-constraints.txt"
SUITE = "autobahntestsuite==25.10.1"
VIRTUALENV = "virtualenv<20.22"
PYTHON27_VERSION = "2.7.18"

SECTIONS_1_TO_10 = [f"{n}.*" for n in range(1, 11)]
# The 9.x cases send messages of up to 16 MiB; the backend must take them whole.
BACKEND_MAX_SIZE = 64 * 1024 * 1024
# 9.3.1 and 9.4.1 send a 4 MiB message in 64-byte fragments: 65,536 of them, over the
# 4,096 fragments a `websockets` connection takes by default (WEBSOCKETS_MAX_FRAGMENTS).
BACKEND_MAX_FRAGMENTS = 1 << 17
VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "WRONG CODE", "FAILED"]

INSTALL_TIMEOUT_S = 900.0
LOCK_TIMEOUT_S = 1200.0
PORT_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class RunError(Exception):
    """The run could not be done (as opposed to: it ran and verdicts differ)."""


def log(message: str) -> None:
    print(f"autobahn: {message}", flush=True)


# -- The Python 2.7 virtualenv ------------------------------------------------------------------


def find_python27() -> Path:
    """pyenv's Python 2.7.18: `pyenv root` when pyenv is on PATH, else ~/.pyenv."""
    override = os.environ.get("AUTOBAHN_PYTHON27")
    if override:
        return Path(override)
    roots: list[Path] = []
    if env_root := os.environ.get("PYENV_ROOT"):
        roots.append(Path(env_root))
    if pyenv := shutil.which("pyenv"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            if out:
                roots.append(Path(out))
    roots.append(Path.home() / ".pyenv")
    for root in roots:
        candidate = root / "versions" / PYTHON27_VERSION / "bin" / "python"
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(r / "versions" / PYTHON27_VERSION / "bin" / "python") for r in roots)
    raise RunError(f"no Python {PYTHON27_VERSION} found (tried {tried}; or set AUTOBAHN_PYTHON27)")


def clean_env() -> dict[str, str]:
    """The environment for Python 2.7 tools: nothing of our venv's Python leaks in."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_step(argv: list[str], log_path: Path, timeout_s: float) -> None:
    """Run one install step with its output in log_path; raise RunError with its tail."""
    with log_path.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env()
        )
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise RunError(f"{argv[0]} took more than {timeout_s:.0f}s (log: {log_path})") from None
        except BaseException:
            stop_process(proc)
            raise
    if rc != 0:
        lines = [
            line
            for line in log_path.read_text(errors="replace").splitlines()
            if "is ignored: it is neither a file nor a directory" not in line
        ]
        tail = "\n".join(lines[-40:])
        raise RunError(f"{' '.join(argv)} exited {rc} (log: {log_path}):\n{tail}")


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One run at a time makes or checks the cached virtualenvs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with LOCK_PATH.open("w") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunError(f"{LOCK_PATH} stayed locked {LOCK_TIMEOUT_S:.0f}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_wstest(log_path: Path) -> Path:
    """Make (once) the Python 2.7 virtualenv with autobahntestsuite; returns its wstest."""
    python27 = find_python27()
    wstest = PY27_VENV / "bin" / "wstest"
    stamp = PY27_VENV / ".wsgate-ready"
    want = hashlib.sha256(
        f"{python27}\n{SUITE}\n{VIRTUALENV}\n{CONSTRAINTS.read_text()}".encode()
    ).hexdigest()
    with cache_lock():
        if stamp.is_file() and stamp.read_text().strip() == want and wstest.is_file():
            return wstest
        log(f"making the Python 2.7 virtualenv {PY27_VENV.relative_to(ROOT)} (log: {log_path})")
        virtualenv = TOOLS_VENV / "bin" / "virtualenv"
        if not virtualenv.is_file():
            shutil.rmtree(TOOLS_VENV, ignore_errors=True)
            run_step([sys.executable, "-m", "venv", str(TOOLS_VENV)], log_path, 120)
            pip = str(TOOLS_VENV / "bin" / "pip")
            run_step([pip, "install", "-q", VIRTUALENV], log_path, INSTALL_TIMEOUT_S)
        shutil.rmtree(PY27_VENV, ignore_errors=True)
        run_step(
            [str(virtualenv), "-q", "--no-periodic-update", "-p", str(python27), str(PY27_VENV)],
            log_path,
            300,
        )
        pip27 = str(PY27_VENV / "bin" / "pip")
        run_step(
            [pip27, "install", "--no-python-version-warning", "-c", str(CONSTRAINTS), SUITE],
            log_path,
            INSTALL_TIMEOUT_S,
        )
        run_step([str(wstest), "--autobahnversion"], log_path, 120)
        stamp.write_text(want + "\n")
        log("Python 2.7 virtualenv ready")
        return wstest


# -- Processes and the echo backend ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RunError(f"process {proc.pid} exited {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RunError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s") from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, then SIGKILL after a bounded wait."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


async def echo(conn: ServerConnection) -> None:
    async for message in conn:
        await conn.send(message)


@contextlib.contextmanager
def echo_backend(compression: Literal["deflate"] | None, log_path: Path) -> Iterator[int]:
    """A `websockets` echo server on 127.0.0.1 in a thread of its own; yields its port."""
    messages = websockets.asyncio.messages
    messages.MAX_FRAGMENTS = max(messages.MAX_FRAGMENTS, BACKEND_MAX_FRAGMENTS)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    ws_logger = logging.getLogger("websockets")
    ws_logger.addHandler(handler)
    ws_logger.setLevel(logging.INFO)
    ws_logger.propagate = False

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    bound: list[int] = []
    errors: list[BaseException] = []
    stop: asyncio.Future[None] = loop.create_future()

    async def main() -> None:
        try:
            server = await serve(
                echo,
                "127.0.0.1",
                0,
                max_size=BACKEND_MAX_SIZE,
                compression=compression,
                ping_interval=None,
            )
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)
            ready.set()
            return
        async with server:
            bound.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        if not ready.wait(PORT_TIMEOUT_S):
            raise RunError("the echo backend did not start")
        if errors:
            raise RunError(f"the echo backend did not start: {errors[0]!r}")
        yield bound[0]
    finally:
        if not stop.done():
            loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
        ws_logger.removeHandler(handler)
        handler.close()


# --frames: every frame-aware setting on, none of them reached by the suite's cases (no case
# is quiet for 30 s, none sends more than 16 MiB), so the relay reads every frame header of
# both directions while the verdicts must stay the backend's own.
FRAMES_CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]
[pools.default]
backends = ["127.0.0.1:{backend}"]
ping_idle_s = 30
ping_timeout_s = 30
max_message_bytes = {size}
max_frame_bytes = {size}
max_messages_per_s = 1000000
message_burst = 10000000
"""


@contextlib.contextmanager
def gateway(backend_port: int, log_path: Path, *, frames: bool = False) -> Iterator[int]:
    """`wsgate serve` on a free 127.0.0.1 port in front of the backend; yields its port.
    With `frames`, from a config that makes its tunnels frame-aware."""
    port = free_port()
    argv = [sys.executable, "-m", "wsgate", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--upstream", f"127.0.0.1:{backend_port}"]
    if frames:
        config = log_path.with_suffix(".toml")
        text = FRAMES_CONFIG.format(port=port, backend=backend_port, size=BACKEND_MAX_SIZE)
        config.write_text(text)
        argv = [sys.executable, "-m", "wsgate", "serve", "--config", str(config)]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT
        )
    try:
        wait_for_port(port, proc, PORT_TIMEOUT_S)
        yield port
    finally:
        stop_process(proc)


# -- The suite ------------------------------------------------------------------------------------


@dataclass
class CaseVerdict:
    behavior: str
    behavior_close: str
    report: Path

    @property
    def pair(self) -> tuple[str, str]:
        return (self.behavior, self.behavior_close)

    def text(self) -> str:
        return f"{self.behavior}/{self.behavior_close}"

    def details(self) -> dict[str, Any]:
        """The case's own JSON report (with its "result" text), or {} when unreadable."""
        try:
            data: dict[str, Any] = json.loads(self.report.read_text())
        except (OSError, ValueError):
            return {}
        return data


Verdicts = dict[str, CaseVerdict]


@dataclass
class Limits:
    run_s: float
    stall_s: float


def wait_wstest(proc: subprocess.Popen[bytes], log_path: Path, agent: str, limits: Limits) -> int:
    """Wait for wstest: at most limits.run_s in all, at most limits.stall_s without a new line
    in its log (it logs one line as each case starts)."""
    started = last_change = time.monotonic()
    last_size = -1
    while True:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        size = log_path.stat().st_size if log_path.exists() else 0
        if size != last_size:
            last_size, last_change = size, now
        lines = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
        running = [line for line in lines if line.startswith("Running test case")]
        where = running[-1] if running else "before its first case"
        if now - started > limits.run_s:
            stop_process(proc)
            raise RunError(f"{agent}: wstest took more than {limits.run_s:.0f}s ({where})")
        if now - last_change > limits.stall_s:
            stop_process(proc)
            raise RunError(
                f"{agent}: wstest made no progress for {limits.stall_s:.0f}s ({where}; "
                f"log: {log_path})"
            )


def run_fuzzingclient(
    wstest: Path, agent: str, url: str, cases: list[str], workdir: Path, limits: Limits
) -> Verdicts:
    """Run `wstest -m fuzzingclient` against url; returns the verdicts from its index.json."""
    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = workdir / "reports"
    spec = {
        "outdir": str(report_dir),
        "servers": [{"agent": agent, "url": url}],
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    log_path = workdir / "wstest.log"
    log(f"{agent}: wstest -m fuzzingclient, {len(cases)} pattern(s), against {url}")
    started = time.monotonic()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=clean_env(),
        )
        try:
            rc = wait_wstest(proc, log_path, agent, limits)
        finally:
            stop_process(proc)
    index_path = report_dir / "index.json"
    if rc != 0 or not index_path.is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RunError(f"{agent}: wstest exited {rc}, no {index_path}:\n{tail}")
    index: dict[str, dict[str, dict[str, Any]]] = json.loads(index_path.read_text())
    results = index.get(agent, {})
    log(f"{agent}: {len(results)} case(s) in {time.monotonic() - started:.0f}s")
    return {
        case_id: CaseVerdict(
            behavior=str(entry.get("behavior")),
            behavior_close=str(entry.get("behaviorClose")),
            report=report_dir / str(entry.get("reportfile")),
        )
        for case_id, entry in results.items()
    }


def run_agents(
    wstest: Path, urls: dict[str, str], cases: list[str], outdir: Path, limits: Limits
) -> dict[str, Verdicts]:
    """One fuzzingclient per agent, at the same time: the runs share nothing (own spec,
    reports and server), and most of a case's time is waiting, so the comparison takes
    the time of one run instead of two."""
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = {
            agent: pool.submit(run_fuzzingclient, wstest, agent, url, cases, outdir / agent, limits)
            for agent, url in urls.items()
        }
        return {agent: future.result() for agent, future in futures.items()}


def compare(
    wstest: Path,
    urls: dict[str, str],
    cases: list[str],
    outdir: Path,
    limits: Limits,
    reruns: int,
    *,
    strict: bool,
) -> Outcome:
    """The verdicts straight to the backend ("direct") and through the gateway
    ("gateway"), case by case."""
    runs = run_agents(wstest, urls, cases, outdir, limits)
    outcome = Outcome(cases, runs["direct"], runs["gateway"], strict=strict)
    # A verdict can hang on timing (e.g. 4.1.5: is the echo sent before the bad frame
    # fails the connection?). Run each case that differs again, alone, both ways.
    for attempt in range(1, reruns + 1):
        pending = outcome.unmatched
        if not pending:
            break
        log(f"rerun {attempt}: {len(pending)} case(s) differ: {' '.join(pending)}")
        again = run_agents(wstest, urls, pending, outdir / f"rerun-{attempt}", limits)
        for case_id in pending:
            pair = (again["direct"].get(case_id), again["gateway"].get(case_id))
            outcome.reruns.setdefault(case_id, []).append(pair)
    return outcome


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def differing_ids(direct: Verdicts, through: Verdicts) -> list[str]:
    ids = sorted(set(direct) | set(through), key=case_key)
    return [
        case_id
        for case_id in ids
        if case_id not in direct
        or case_id not in through
        or direct[case_id].pair != through[case_id].pair
    ]


Pair = tuple[CaseVerdict | None, CaseVerdict | None]


def alternatives(pair: Pair) -> bool:
    """Both runs got a verdict that the case itself lists as an acceptable outcome ("OK" or
    "NON-STRICT": did the echo go out before the peer failed the connection?), with the same
    closing verdict: which one a run gets depends on timing, not on what was sent."""
    a, b = pair
    if a is None or b is None or a.behavior_close != b.behavior_close:
        return False
    listed = set(a.details().get("expected", {})) & set(b.details().get("expected", {}))
    return len(listed) > 1 and {a.behavior, b.behavior} <= listed


@dataclass
class Outcome:
    """The first full pair of runs, and what the reruns of the cases that differed showed."""

    cases: list[str]
    direct: Verdicts
    through: Verdicts
    strict: bool
    # case id -> one (direct, gateway) pair per rerun, for cases that differed at first
    reruns: dict[str, list[Pair]] = field(default_factory=dict)

    def pairs(self, case_id: str) -> list[Pair]:
        first = (self.direct.get(case_id), self.through.get(case_id))
        return [first, *self.reruns.get(case_id, [])]

    @property
    def first_differing(self) -> list[str]:
        return differing_ids(self.direct, self.through)

    @property
    def unmatched(self) -> list[str]:
        """Cases that differed in the first run and in every rerun."""
        return [
            case_id
            for case_id in self.first_differing
            if not any(a and b and a.pair == b.pair for a, b in self.reruns.get(case_id, []))
        ]

    @property
    def matched_on_rerun(self) -> list[str]:
        unmatched = set(self.unmatched)
        return [case_id for case_id in self.first_differing if case_id not in unmatched]

    @property
    def timing_alternatives(self) -> list[str]:
        """Unmatched cases whose every run got outcomes the case lists as alternatives."""
        if self.strict:
            return []
        return [c for c in self.unmatched if all(alternatives(p) for p in self.pairs(c))]

    @property
    def differing(self) -> list[str]:
        tolerated = set(self.timing_alternatives)
        return [case_id for case_id in self.unmatched if case_id not in tolerated]


def summarize(outcome: Outcome) -> tuple[list[str], dict[str, Any]]:
    """The summary table's lines and a JSON-ready summary."""
    direct, through = outcome.direct, outcome.through
    lines = [f"Autobahn|Testsuite fuzzingclient, cases {','.join(outcome.cases)}", ""]
    for name, title in (("behavior", "behavior"), ("behavior_close", "behaviorClose")):
        counts = [Counter(getattr(v, name) for v in run.values()) for run in (direct, through)]
        seen = [v for v in VERDICTS if any(c[v] for c in counts)]
        seen += sorted({k for c in counts for k in c} - set(VERDICTS))
        lines.append(f"{title + ':':<24}{'direct':>10}{'gateway':>10}")
        for verdict in seen:
            lines.append(f"  {verdict:<22}{counts[0][verdict]:>10}{counts[1][verdict]:>10}")
        lines.append(f"  {'cases':<22}{len(direct):>10}{len(through):>10}")
        lines.append("")

    def text(v: CaseVerdict | None) -> str:
        return v.text() if v else "(not run)"

    def tries(case_id: str) -> str:
        return "; ".join(f"{text(a)} vs {text(b)}" for a, b in outcome.pairs(case_id))

    if outcome.matched_on_rerun:
        lines.append(
            f"{len(outcome.matched_on_rerun)} case(s) differed at first, then matched when run "
            "again alone (direct vs gateway, first run; reruns):"
        )
        lines += [f"  {c:<10}{tries(c)}" for c in outcome.matched_on_rerun]
        lines.append("")
    if outcome.timing_alternatives:
        lines.append(
            f"{len(outcome.timing_alternatives)} case(s) differ only between outcomes the case "
            "lists as alternatives, decided by timing (--strict counts them as differing):"
        )
        lines += [f"  {c:<10}{tries(c)}" for c in outcome.timing_alternatives]
        lines.append("")
    if outcome.differing:
        lines.append(f"{len(outcome.differing)} case(s) differ (direct vs gateway):")
        for case_id in outcome.differing:
            lines.append(f"  {case_id:<10}{tries(case_id)}")
            a, b = direct.get(case_id), through.get(case_id)
            for agent, case in (("direct", a), ("gateway", b)):
                if case is not None:
                    info = case.details()
                    lines.append(f"      {agent} result: {info.get('result', '?')}")
                    lines.append(f"      {agent} resultClose: {info.get('resultClose', '?')}")
                    received = json.dumps(info.get("received"))
                    lines.append(f"      {agent} received: {received[:200]}")
                    lines.append(f"      {agent} report: {case.report}")
        lines.append("FAIL")
    else:
        total = len(set(direct) | set(through))
        timing = len(outcome.timing_alternatives)
        note = f", {timing} of them only by timing (listed above)" if timing else ""
        lines.append(f"PASS: none of the {total} cases differs{note}")

    summary: dict[str, Any] = {
        "cases": outcome.cases,
        "case_count": {"direct": len(direct), "gateway": len(through)},
        "differing": outcome.differing,
        "matched_on_rerun": outcome.matched_on_rerun,
        "timing_alternatives": outcome.timing_alternatives,
        "verdicts": {
            agent: {
                case_id: list(v.pair)
                for case_id, v in sorted(run.items(), key=lambda item: case_key(item[0]))
            }
            for agent, run in (("direct", direct), ("gateway", through))
        },
    }
    return lines, summary


def run(args: argparse.Namespace) -> int:
    cases = list(args.cases) if args.cases else (["*"] if args.full else SECTIONS_1_TO_10)
    if args.outdir:
        outdir = Path(args.outdir).resolve()
        outdir.mkdir(parents=True, exist_ok=True)
    else:
        outdir = Path(tempfile.mkdtemp(prefix="wsgate-autobahn-"))
    log(f"reports and logs in {outdir}")
    wstest = ensure_wstest(outdir / "install.log")
    full = any(c.startswith(("*", "12", "13")) for c in cases)
    limits = Limits(run_s=float(args.timeout or (2400 if full else 600)), stall_s=args.stall)
    # permessage-deflate matters only to 12.x and 13.x: the backend offers it when they run.
    compression: Literal["deflate"] | None = "deflate" if full else None

    with (
        echo_backend(compression, outdir / "backend.log") as backend_port,
        gateway(backend_port, outdir / "wsgate.log", frames=args.frames) as gateway_port,
    ):
        log(f"echo backend (websockets) on 127.0.0.1:{backend_port}, compression={compression}")
        mode = ", frame-aware" if args.frames else ""
        log(f"wsgate serve on 127.0.0.1:{gateway_port} -> 127.0.0.1:{backend_port}{mode}")
        urls = {
            "direct": f"ws://127.0.0.1:{backend_port}",
            "gateway": f"ws://127.0.0.1:{gateway_port}",
        }
        outcome = compare(wstest, urls, cases, outdir, limits, args.reruns, strict=args.strict)

    lines, summary = summarize(outcome)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines), flush=True)
    log(f"reports and logs in {outdir}")
    if not outcome.direct or not outcome.through:
        log("error: no cases ran")
        return 2
    return 1 if outcome.differing else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Autobahn|Testsuite fuzzingclient straight to a websockets echo backend and "
        "through wsgate; exits 1 when any case's verdicts differ."
    )
    parser.add_argument("--full", action="store_true", help="every case, 12.x and 13.x too")
    parser.add_argument(
        "--frames",
        action="store_true",
        help="run the gateway with frame-aware tunnels (keepalive and limits on, set so high "
        "that no case reaches them)",
    )
    parser.add_argument(
        "--cases",
        action="append",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        help="comma-separated case patterns, e.g. 1.*,2.* (default: 1.* .. 10.*)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="count OK vs NON-STRICT (outcomes a case lists as alternatives) as differing",
    )
    parser.add_argument("--outdir", help="where reports and logs go (default: a new temp dir)")
    parser.add_argument(
        "--timeout", type=float, help="seconds for each wstest run (default 600, 2400 with 12.x)"
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=180.0,
        help="seconds a wstest run may go without starting a new case (default 180)",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=3,
        help="times a case that differs is run again, alone, both ways (default 3)",
    )
    args = parser.parse_args(argv)
    if args.cases:
        args.cases = [c for group in args.cases for c in group]
    return args


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except RunError as exc:
        log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())

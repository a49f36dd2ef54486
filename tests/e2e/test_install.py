"""The install a newcomer does: the package builds as a wheel that works in a fresh venv,
and the README's first command (scripts/setup.sh) needs neither root nor a Debian package.

Both install wsgate's dependencies from the package index that scripts/setup.sh uses (pip's
own configuration), so they need it reachable: marked `network`. Every step has a timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict, Unpack

import pytest
from websockets.asyncio.client import connect

from tests.support.procs import free_port, start_process, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.network, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# What a source checkout needs to build and set up: no tests, no venv, no caches.
SOURCE = ("pyproject.toml", "README.md", "LICENSE", "src", "scripts")
EXAMPLE_CONFIG = ROOT / "examples" / "wsgate.toml"
INSTALL_TIMEOUT_S = 300
NOBODY = 65534


def copy_source(into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=ignore)
        else:
            shutil.copy2(src, into / name)
    return into


class RunAs(TypedDict, total=False):
    """subprocess.run's arguments that drop to another user."""

    user: int
    group: int
    extra_groups: list[int]


class RunOptions(RunAs, total=False):
    """The rest of subprocess.run's arguments that run() passes on."""

    cwd: Path
    env: dict[str, str]


def run(argv: list[str], timeout_s: float = 60, **kwargs: Unpack[RunOptions]) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False, **kwargs
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    out: str = done.stdout
    return out


def example_config(tmp_path: Path) -> Path:
    """examples/wsgate.toml, or until that exists the README's configuration example."""
    if EXAMPLE_CONFIG.exists():
        return EXAMPLE_CONFIG
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Configuration reference", 1)[1].split("```toml\n", 1)[1]
    path = tmp_path / "wsgate.toml"
    path.write_text(block.split("```", 1)[0])
    return path


def base_python() -> str:
    """A Python that is not this venv: what a user has before setup."""
    return getattr(sys, "_base_executable", None) or sys.executable


async def echo_once(port: int) -> str:
    async with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=10) as ws:
        await ws.send("hello from the wheel")
        reply = await asyncio.wait_for(ws.recv(), 10)
    return str(reply)


def test_wheel_builds_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    source = copy_source(tmp_path / "source")
    dist = tmp_path / "dist"
    # sdist first, then the wheel from the sdist: what `python -m build` does by default.
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], INSTALL_TIMEOUT_S)
    (wheel,) = dist.glob("wsgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "wsgate/py.typed" in names
    assert "wsgate/gateway/demo_chat.html" in names

    venv = tmp_path / "venv"
    run([base_python(), "-m", "venv", str(venv)])
    bin_dir = venv / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], INSTALL_TIMEOUT_S)
    wsgate = str(bin_dir / "wsgate")

    # A wheel carries no compiled build (scripts/setup.sh makes one in a checkout).
    assert run([wsgate, "--version"]).strip() == "wsgate 0.1.0 (pure Python)"
    assert run([wsgate, "-V"]).strip() == "wsgate 0.1.0 (pure Python)"
    assert "ok" in run([wsgate, "check", str(example_config(tmp_path))], cwd=tmp_path)

    port = free_port()
    proc = start_process([wsgate, "demo", "--port", str(port)], tmp_path / "demo.log")
    try:
        wait_for_port(port, timeout_s=90.0)  # a fresh venv compiles its bytecode first
        assert asyncio.run(echo_once(port)) == "hello from the wheel"
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: the demo drains and exits
        assert proc.popen.wait(timeout=30) == 0, proc.log()
    finally:
        proc.stop()
    assert "the gateway listens on" in proc.log()


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """pytest's tmp_path lies below a directory only its owner may enter."""
    path = Path(tempfile.mkdtemp(prefix="wsgate-setup-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def system_python() -> str:
    """Debian's python3 when it is 3.11 or later (what the README promises), else this
    interpreter's base, which a dropped user may not be able to run."""
    debian = Path("/usr/bin/python3")
    if debian.exists():
        check = subprocess.run(
            [str(debian), "-c", "import sys, ensurepip; sys.exit(sys.version_info < (3, 11))"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if check.returncode == 0:
            return str(debian)
    return base_python()


def test_setup_without_tests_needs_no_root(world_readable_dir: Path) -> None:
    """The README's first command as a user who is not root: a venv, wsgate in it, no
    Debian package and no dev tool. As root the test drops to `nobody` to show it."""
    checkout = copy_source(world_readable_dir / "checkout")
    home = world_readable_dir / "home"
    home.mkdir()
    python = system_python()
    as_user: RunAs = {}
    if os.geteuid() == 0:
        if python != "/usr/bin/python3":
            pytest.skip("no system python3 >= 3.11 that the user nobody may run")
        for path in (checkout, home, *checkout.rglob("*"), *home.rglob("*")):
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        as_user = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHON": python,
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    out = run(
        ["bash", "scripts/setup.sh"],
        INSTALL_TIMEOUT_S,
        cwd=checkout,
        env=env,
        **as_user,
    )
    assert "installing Debian packages" not in out
    assert "setup: ready" in out
    venv = checkout / ".venv" / "bin"
    version = run([str(venv / "wsgate"), "--version"], **as_user).strip()
    assert version.startswith("wsgate 0.1.0 ("), version  # compiled or pure: both may be
    # The test path's tools are not part of the first command. mypy is there only as the
    # home of mypyc, when setup compiled the core with it (the `compile` extra).
    assert not (venv / "pytest").exists()
    assert not (venv / "ruff").exists()
    if "compiled: mypyc" in version:
        assert (venv / "mypy").exists()
    # Run again: nothing left to install.
    again = run(["bash", "scripts/setup.sh"], 60, cwd=checkout, env=env, **as_user)
    assert "installing" not in again

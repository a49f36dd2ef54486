#!/usr/bin/env bash
# Sets up wsgate in a local venv, .venv, with wsgate installed in editable mode.
#
#   bash scripts/setup.sh              Python packages only: what `wsgate demo`, `serve`,
#                                      `doctor`, `lint` and `storm` need. Any user; needs
#                                      Python 3.11+ with its venv module.
#   bash scripts/setup.sh --for-tests  also the dev tools (pytest, ruff, mypy, build) and the
#                                      Debian packages the tests and benchmarks start (root).
#
# Where a C compiler (cc) and Python's headers are present (--for-tests as root installs
# them), it also compiles the pure core with mypyc (scripts/build_compiled.py, again only
# when the sources changed); elsewhere, or with WSGATE_PURE=1, wsgate runs as pure Python.
# Safe to run again: it only installs what is missing. scripts/test.sh calls --for-tests.
set -euo pipefail
cd "$(dirname "$0")/.."

for_tests=0
for arg in "$@"; do
    case "$arg" in
        --for-tests) for_tests=1 ;;
        -h | --help)
            sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup: unknown argument: $arg (try --for-tests or --help)" >&2
            exit 2
            ;;
    esac
done

# The processes the end-to-end tests and benchmarks start (nginx, HAProxy, Apache, headless
# Chromium for the HTML reports), plus iproute2 (ss, tc), iptables and procps (ps, pgrep).
TEST_DEB_PACKAGES=(nginx-light haproxy apache2 iproute2 iptables chromium procps)

missing_debs() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || echo "$pkg"
    done
}

apt_install() {
    echo "setup: installing Debian packages: $*"
    # Keep package scripts from starting nginx/haproxy/apache services on 0.0.0.0:80.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

if [ "$for_tests" = 1 ] && command -v dpkg-query >/dev/null; then
    mapfile -t missing < <(missing_debs "${TEST_DEB_PACKAGES[@]}")
    if [ "${#missing[@]}" -gt 0 ]; then
        if ! is_root; then
            echo "setup: the tests need these Debian packages, and installing them needs root:" \
                "${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
            exit 1
        fi
        apt_install "${missing[@]}"
    fi
fi

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: $PYTHON not found: install Python 3.11 or later (or set PYTHON=...)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: wsgate needs Python 3.11 or later; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    # Debian ships the venv module (ensurepip) in a package of its own.
    if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        pkg="python3-venv"
        if is_root && command -v apt-get >/dev/null; then
            apt_install "$pkg"
        else
            echo "setup: $PYTHON has no venv module (ensurepip): install it first, on" \
                "Debian with: sudo apt-get install $pkg" >&2
            exit 1
        fi
    fi
    echo "setup: creating .venv"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi

# The compiled build needs a C compiler and Python.h; --for-tests as root installs them
# (Debian's own Python keeps its headers in python3.X-dev) so that CI tests both builds.
has_python_h() {
    .venv/bin/python -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
want_compiled=0
if [ "${WSGATE_PURE:-}" != 1 ]; then
    if [ "$for_tests" = 1 ] && is_root && command -v apt-get >/dev/null; then
        compile_debs=(gcc libc6-dev)
        if ! has_python_h && [[ "$(readlink -f .venv/bin/python)" == /usr/bin/* ]]; then
            compile_debs+=("python$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev")
        fi
        mapfile -t missing < <(missing_debs "${compile_debs[@]}")
        if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    fi
    if command -v cc >/dev/null && has_python_h; then want_compiled=1; fi
fi

# One stamp per extent, so --for-tests after a plain setup adds the dev tools (which hold
# what the compiled build needs: mypy and setuptools).
if [ "$for_tests" = 1 ]; then
    target='.[dev]'
    stamp=.venv/.wsgate-installed-dev
elif [ "$want_compiled" = 1 ]; then
    target='.[compile]'
    stamp=.venv/.wsgate-installed-compile
else
    target='.'
    stamp=.venv/.wsgate-installed
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$target"
    touch "$stamp"
    # The dev install holds everything the plain one does.
    if [ "$for_tests" = 1 ]; then touch .venv/.wsgate-installed .venv/.wsgate-installed-compile; fi
fi

if [ "$want_compiled" = 1 ]; then
    if ! .venv/bin/python scripts/build_compiled.py; then
        # The tests must run on the build they claim; a user still gets a working wsgate.
        if [ "$for_tests" = 1 ]; then exit 1; fi
        echo "setup: the compiled build failed (above): wsgate runs as pure Python"
    fi
elif [ "${WSGATE_PURE:-}" = 1 ]; then
    echo "setup: WSGATE_PURE=1: wsgate runs as pure Python"
else
    echo "setup: no C compiler (cc) or Python.h here: wsgate runs as pure Python (slower handshakes)"
fi
echo "setup: ready"

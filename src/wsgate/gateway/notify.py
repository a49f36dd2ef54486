"""The sd_notify protocol: tell systemd (a `Type=notify` unit) that the gateway is ready,
reloading or stopping, by one datagram to the AF_UNIX socket named in $NOTIFY_SOCKET.

    READY=1                     listening: systemd's start job ends, `ExecStartPost` runs
    RELOADING=1 + MONOTONIC_USEC  a reload begins (systemd 253's Type=notify-reload
                                wants the clock; older ones ignore it), READY=1 ends it
    STOPPING=1                  the drain has begun
    STATUS=...                  one line shown by `systemctl status`
    MAINPID=N                   the process systemd should watch

A path that starts with "@" is in the abstract namespace (a NUL byte in its place). Without
$NOTIFY_SOCKET (not under systemd) every call does nothing. No systemd library is needed;
see sd_notify(3).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

ENV = "NOTIFY_SOCKET"


def socket_address(value: str) -> str | bytes | None:
    """The address to send to, from $NOTIFY_SOCKET; None when unusable."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other kinds: not supported here


def message(**fields: object) -> bytes:
    """`KEY=value` lines, in the order given (READY=1 first when present)."""
    return "".join(f"{key}={value}\n" for key, value in fields.items()).encode()


def notify(data: bytes, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; True when it was sent. Never raises: a gateway is not
    stopped because its supervisor cannot be told."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    address = socket_address(value) if value else None
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(data)
    except OSError:
        return False
    return True


def ready(status: str) -> bool:
    return notify(message(READY=1, STATUS=status, MAINPID=os.getpid()))


def reloading(status: str) -> bool:
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(message(RELOADING=1, MONOTONIC_USEC=usec, STATUS=status))


def stopping(status: str) -> bool:
    return notify(message(STOPPING=1, STATUS=status))


def status(text: str) -> bool:
    return notify(message(STATUS=text))

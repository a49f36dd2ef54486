"""Opening a connection to a backend: TCP, or TLS for a wss:// backend, within the pool's
connect timeout. Every way it can fail becomes a `ConnectError` with its cause and the
words for the log and the answer; running out of file descriptors is the gateway's own
condition, not the backend's, and is told apart (`OUT_OF_DESCRIPTORS`)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from collections.abc import Callable

from wsgate.config.model import Address
from wsgate.errors import ConnectError
from wsgate.gateway.upstream import UpstreamConnection

# EMFILE (this process) and ENFILE (the whole system): out of file descriptors.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
FD_ERROR_TEXTS = frozenset(os.strerror(code) for code in OUT_OF_DESCRIPTORS)
FD_LOG_INTERVAL_S = 5.0  # at most one out_of_file_descriptors line per pool this often


def open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE: how many descriptors this process may hold."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def tls_failure(address: Address, exc: ssl.SSLError) -> str:
    """The words for a failed TLS handshake with a wss:// backend."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"Backend {address}: TLS certificate not verified ({exc.verify_message}): trust "
            "its CA with tls_ca_file, or name the certificate's host with tls_server_name."
        )
    return f"Backend {address}: TLS handshake failed ({exc.reason or exc})."


async def dial(
    factory: Callable[[], UpstreamConnection],
    address: Address,
    *,
    loop: asyncio.AbstractEventLoop,
    timeout_s: float,
    tls: ssl.SSLContext | None,
    server_hostname: str,
    on_out_of_descriptors: Callable[[str], None],
) -> UpstreamConnection:
    """A new connection to `address` made by `factory` (over TLS with `tls`, checked
    against `server_hostname`), or ConnectError with the cause. `on_out_of_descriptors`
    hears of an EMFILE or ENFILE (its name) before its ConnectError is raised."""
    # One timer that cancels this task, not asyncio.timeout(): its context manager, its
    # rescheduling and its two loop lookups came to about 1 % of a handshake's CPU.
    task = asyncio.current_task(loop)
    assert task is not None  # called from the connect task
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = loop.call_later(timeout_s, expire)
    try:
        if tls is None:
            _, conn = await loop.create_connection(factory, address.host, address.port)
        else:
            _, conn = await loop.create_connection(
                factory,
                address.host,
                address.port,
                ssl=tls,
                server_hostname=server_hostname,
            )
    except asyncio.CancelledError:
        if not expired:
            raise  # the client went, or the gateway stops
        task.uncancel()
        raise ConnectError(
            "upstream_connect_timeout",
            f"Backend {address} did not accept within {timeout_s:g} s.",
        ) from None
    except ConnectionRefusedError:
        raise ConnectError(
            "upstream_connect_refused", f"Backend {address} refused the connection."
        ) from None
    except socket.gaierror as exc:
        raise ConnectError(
            "upstream_connect_failed",
            f"Backend {address}: the name does not resolve ({exc.strerror or exc}).",
        ) from None
    except ssl.SSLError as exc:
        raise ConnectError("upstream_connect_failed", tls_failure(address, exc)) from None
    except UnicodeError as exc:  # a name the IDNA codec refuses: an empty label, say
        raise ConnectError(
            "upstream_connect_failed",
            f"Backend {address}: the name is not a valid host name ({exc.__cause__ or exc}).",
        ) from None
    except OSError as exc:
        if exc.errno in OUT_OF_DESCRIPTORS:
            # The gateway's own condition, not the backend's: no ejection, no retry.
            on_out_of_descriptors(errno.errorcode[exc.errno])
            raise ConnectError(
                "out_of_file_descriptors",
                f"No file descriptor left for a connection to backend {address} "
                f"({exc.strerror or exc}).",
            ) from None
        raise ConnectError(
            "upstream_connect_failed", f"Backend {address}: {exc.strerror or exc}."
        ) from None
    finally:
        timer.cancel()
    return conn

"""One error tree: every exception wsgate raises derives from `WsgateError`.

```
WsgateError
 +-- InputError            bad input from the user: the command says why and exits 2
 |    +-- ConfigError      config.load: a config file or value, named by its key path
 |    +-- LintError        lint.model: a proxy config that lint cannot read (file:line)
 |    +-- ArgError         doctor.cli: a doctor argument; also a ValueError
 |    +-- UsageError       storm.cli: a storm flag or URL; also a ValueError
 |    +-- PlanError        storm.plan: a schedule that cannot be built; also a ValueError
 +-- GatewayError          a failure answered on the wire: its `cause` code (wsgate.findings)
 |    |                    gives the HTTP status, the Proxy-Status error type and, where it
 |    |                    ends a tunnel, the close code
 |    +-- ProtocolError    protocol.errors: bytes that break HTTP/1.1 or RFC 6455
 |    +-- ConnectError     here (gateway.pool re-exports it): a backend connect that failed
 +-- ListenError           gateway.listeners: a listen address that cannot be bound (exit 1)
 +-- BadTransitionError    gateway.states: a state move the tables forbid (a bug, not input)
 +-- StormError            storm.runner: a storm that could not run (exit 1); a RuntimeError
 +-- ClientError           client.errors: what wsgate.client raises to its caller
 |    +-- GaveUpError      the back-off policy gave up: retrying cannot help
 |    +-- NotConnectedError  a send while disconnected that cannot be queued
 |    +-- ClientClosedError  the caller closed the connection
 +-- _ClosedError          storm.client: the peer closed before the response head (internal)
```

Module paths are under `wsgate.`. Each class lives where it is raised and is imported
from there; this module holds the root, the groups and the errors that have no other
home, so that a caller can catch a whole branch (`except InputError`). It imports
nothing from wsgate but the catalogue in `wsgate.findings`, which is pure data.
"""

from __future__ import annotations

from wsgate.findings import Cause, cause

__all__ = ["ConnectError", "GatewayError", "InputError", "WsgateError"]


class WsgateError(Exception):
    """The root of every exception wsgate defines."""


class InputError(WsgateError):
    """Input the user gave (a file, a flag, an argument) that cannot be used; str() is the
    whole message for them, and the command exits with status 2."""


class GatewayError(WsgateError):
    """A failure the gateway answers on the wire.

    `cause` is a gateway code from `wsgate.findings` (`wsgate.findings.CauseCode` names
    them); the catalogue entry decides the HTTP status, the `Proxy-Status` error type and,
    for a cause that ends a tunnel, the close code (RFC 6455 section 7.4).
    """

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause

    @property
    def info(self) -> Cause:
        """The catalogue entry for `cause`; a KeyError names an unknown code."""
        return cause(self.cause)

    @property
    def status(self) -> int | None:
        """The HTTP status to answer with; None for a cause met only inside a tunnel."""
        return self.info.status

    @property
    def proxy_status(self) -> str | None:
        """The RFC 9209 error type for the `Proxy-Status` header."""
        return self.info.proxy_status

    @property
    def close_code(self) -> int | None:
        """The close code sent to the client when this cause ends a tunnel, else None."""
        return self.info.close_code


class ConnectError(GatewayError):
    """A connect to a backend that failed; `detail` is one line for the response and the
    log. Raised by `wsgate.gateway.pool`, which re-exports it."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(cause, detail)
        self.detail = detail

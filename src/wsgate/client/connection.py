"""A WebSocket connection that reconnects by itself: the I/O adapter of the back-off
policy (`wsgate.policy.backoff`) on the `websockets` library's asyncio client.

This module decides nothing about when to retry: it turns what happened to an attempt
into a `Failure`, asks the policy, and sleeps as told. One supervisor task per
connection runs the loop: connect, run the on-connect hook, send what was queued, wait
for the end, run the on-disconnect hook, ask the policy. The caller's `recv`, `send` and
`async for` read the connection of the moment and wait through the gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.uri import parse_uri

from wsgate.client.errors import ClientClosedError, GaveUpError, NotConnectedError
from wsgate.policy.backoff import (
    Backoff,
    BackoffConfig,
    Closed,
    Failure,
    GiveUp,
    Refused,
    Unreachable,
    failure_cause,
    parse_retry_after,
)

Message = str | bytes
OnConnect = Callable[["ReconnectingConnection"], Awaitable[None]]
OnDisconnect = Callable[["ReconnectingConnection", Failure], Awaitable[None]]

logger = logging.getLogger("wsgate.client")


@dataclass(slots=True)
class ClientStats:
    """What happened so far: `attempts` (handshakes tried), `connects` (that opened),
    `failures` by cause code (`http_503`, `close_1013`, `unreachable_refused`, ...)."""

    attempts: int = 0
    connects: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def failed_attempts(self) -> int:
        return sum(self.failures.values())


class ReconnectingConnection:
    """A WebSocket client connection that comes back after the server goes away.

    Make one with `wsgate.client.connect(url, ...)`; `await` it (or `async with` it) to
    start it and wait for the first connection. Then `recv()` / `async for message in
    conn`, `send(message)` and `close()` as with `websockets`; across a reconnect they
    wait for the next connection instead of raising. They raise `GaveUpError` once the
    policy gives up, and `ClientClosedError` after `close()` (iteration just ends).

    `queue_while_disconnected` messages sent during a gap wait for the next connection
    (sent after `on_connect` returns, in order); one more raises `NotConnectedError`; 0
    refuses at once. A message whose send fails as the connection drops is queued too.
    Messages that arrive while nobody reads wait in the `websockets` queue (its
    `max_queue`), so read them, or a server's close is seen late.

    `on_connect(conn)` runs on every connection, before queued messages go out: send
    subscriptions there. `on_disconnect(conn, failure)` runs when a connection ends (not
    for attempts that never opened). An exception from a hook stops the client, and
    `recv` raises it.
    """

    def __init__(
        self,
        url: str,
        *,
        backoff: BackoffConfig | None = None,
        on_connect: OnConnect | None = None,
        on_disconnect: OnDisconnect | None = None,
        queue_while_disconnected: int = 0,
        rng: random.Random | None = None,
        **ws_options: Any,
    ) -> None:
        parse_uri(url)  # a URL that cannot work is the caller's error, raised now
        if queue_while_disconnected < 0:
            raise ValueError("queue_while_disconnected cannot be negative")
        self.url = url
        self.stats = ClientStats()
        self._policy = Backoff(backoff or BackoffConfig(), rng or random.Random())
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._queue_limit = queue_while_disconnected
        self._ws_options = ws_options
        self._pending: deque[Message] = deque()
        self._ws: ClientConnection | None = None
        self._ready = False  # the hook has run and the queue is sent
        self._reading: ClientConnection | None = None  # recv's connection, kept to drain it
        self._flushing = False
        self._connecting = False
        self._closing = False
        self._close_requested = asyncio.Event()
        self._end: BaseException | None = None  # set when the supervisor has stopped
        self._changed = asyncio.Condition()
        self._supervisor: asyncio.Task[None] | None = None

    # -- starting and stopping ---------------------------------------------------------

    def __await__(self) -> Generator[Any, None, ReconnectingConnection]:
        return self._start_and_wait().__await__()

    async def __aenter__(self) -> ReconnectingConnection:
        return await self._start_and_wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _start_and_wait(self) -> ReconnectingConnection:
        self.start()
        await self.wait_connected()
        return self

    def start(self) -> None:
        """Start connecting without waiting (`await conn` starts and waits); call it
        from a running event loop. Calling it again does nothing."""
        if self._supervisor is None and not self._closing:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"wsgate {self.url}")

    async def wait_connected(self) -> None:
        """Return once connected (`on_connect` has run and the queue is sent); raise
        `GaveUpError` (or a hook's exception) if the client stopped instead,
        `ClientClosedError` after `close()`."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._ready or self._end is not None)
        if not self._ready:
            raise self._final_error()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection for good and stop reconnecting; queued messages are
        dropped (`dropped` says how many). Safe to call more than once."""
        self._closing = True
        self._close_requested.set()
        async with self._changed:
            self._changed.notify_all()
        if self._supervisor is not None and self._connecting:
            self._supervisor.cancel()  # an attempt in flight would hold close() up
        ws = self._ws
        if ws is not None:
            await ws.close(code, reason)
        if self._supervisor is not None:
            await self._supervisor
        elif self._end is None:
            await self._stop(None)

    @property
    def connected(self) -> bool:
        """Whether a connection is open and ready (its `on_connect` has run)."""
        return self._ready

    @property
    def pending(self) -> int:
        """Messages queued for the next connection."""
        return len(self._pending)

    @property
    def connection(self) -> ClientConnection | None:
        """The `websockets` connection of the moment, None during a gap."""
        return self._ws

    # -- the caller's side ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send now if connected, else queue (see the class) or raise."""
        if self._end is not None or self._closing:
            raise self._final_error()
        ws = self._ws
        if ws is not None and not self._flushing:
            try:
                await ws.send(message)
                return
            except ConnectionClosed:
                pass  # not sent: it waits for the next connection like any other
        self._enqueue(message)

    async def recv(self) -> Message:
        """The next message, waiting through reconnects. Messages that came before a
        connection ended are read before those of the next one."""
        while True:
            ws = self._reading
            if ws is None:
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: self._ws is not None or self._end is not None or self._closing
                    )
                    ws = self._reading = self._ws
                if ws is None:
                    if self._closing and self._end is None:
                        raise ClientClosedError("The connection was closed by its caller.")
                    raise self._final_error()
            try:
                return await ws.recv()
            except ConnectionClosed:
                self._reading = None  # drained: what it held has been read
                await self._wait_until_gone(ws)

    async def _wait_until_gone(self, ws: ClientConnection) -> None:
        """Wait until the supervisor has seen `ws` end."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._ws is not ws)

    def __aiter__(self) -> ReconnectingConnection:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.recv()
        except ClientClosedError:
            raise StopAsyncIteration from None

    def _enqueue(self, message: Message) -> None:
        if len(self._pending) >= self._queue_limit:
            raise NotConnectedError(
                f"Not connected to {self.url}, and {len(self._pending)} messages are queued "
                f"already (queue_while_disconnected={self._queue_limit})."
            )
        self._pending.append(message)

    def _final_error(self) -> BaseException:
        return self._end or ClientClosedError("The connection was closed by its caller.")

    # -- the supervisor ------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        end: BaseException | None = None
        try:
            while not self._closing:
                failure = await self._one_connection()
                if self._closing:
                    break
                self.stats.failures[failure_cause(failure)] += 1
                decision = self._policy.failed(failure, loop.time())
                if isinstance(decision, GiveUp):
                    logger.warning("wsgate.client %s: giving up: %s", self.url, decision.reason)
                    end = GaveUpError(decision.reason, failure)
                    break
                logger.debug(
                    "wsgate.client %s: %s, retry in %.2f s (attempt %d, hint %s)",
                    self.url,
                    failure_cause(failure),
                    decision.delay_s,
                    decision.attempt,
                    decision.hint_s,
                )
                await self._sleep_unless_closed(decision.delay_s)
        except asyncio.CancelledError:
            # close() cancels an attempt in flight; a loop shutting down ends us the same.
            pass
        except Exception as exc:  # a hook's exception stops the client; the caller sees it
            end = exc
        await self._stop(end)

    async def _stop(self, end: BaseException | None) -> None:
        self._end = end or ClientClosedError("The connection was closed by its caller.")
        self._ws = None
        self._ready = False
        if self._closing:
            self._pending.clear()
        async with self._changed:
            self._changed.notify_all()

    async def _sleep_unless_closed(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._close_requested.wait(), delay_s)

    async def _one_connection(self) -> Failure:
        self.stats.attempts += 1
        self._connecting = True
        try:
            ws = await ws_connect(self.url, **self._ws_options)
        except (OSError, InvalidHandshake) as exc:
            logger.debug("wsgate.client %s: handshake failed: %r", self.url, exc)
            return connect_failure(exc)
        finally:
            self._connecting = False
        if self._closing:
            await ws.close()
            return _closed(ws)
        if ws.state is not State.OPEN:
            # An overload answer: the 101 and a close frame arrived together.
            await ws.wait_closed()
            return _closed(ws)
        return await self._while_open(ws)

    async def _while_open(self, ws: ClientConnection) -> Failure:
        self.stats.connects += 1
        self._policy.connected(asyncio.get_running_loop().time())
        async with self._changed:
            self._ws = ws
            self._changed.notify_all()
        try:
            if self._on_connect is not None:
                await self._on_connect(self)
            await self._flush(ws)
            async with self._changed:
                self._ready = True
                self._changed.notify_all()
            await ws.wait_closed()
        except ConnectionClosed:
            await ws.wait_closed()
        except Exception:
            await ws.close(1011, "client hook failed")
            raise
        finally:
            async with self._changed:
                self._ws = None
                self._ready = False
                self._changed.notify_all()
        failure = _closed(ws)
        if self._on_disconnect is not None and not self._closing:
            await self._on_disconnect(self, failure)
        return failure

    async def _flush(self, ws: ClientConnection) -> None:
        self._flushing = True
        try:
            while self._pending:
                await ws.send(self._pending[0])
                self._pending.popleft()
        finally:
            self._flushing = False


def _closed(ws: ClientConnection) -> Closed:
    return Closed(ws.close_code or 1006, ws.close_reason or "")


def connect_failure(exc: OSError | InvalidHandshake) -> Failure:
    """The back-off policy's view of a `websockets` connect that failed: the HTTP answer
    (with its Retry-After, and whether wsgate spread it: X-Wsgate-Cause), or no answer."""
    if isinstance(exc, InvalidStatus):
        headers = exc.response.headers
        header = headers.get("Retry-After")
        hint = None if header is None else parse_retry_after(header, time.time())
        return Refused(exc.response.status_code, hint, "X-Wsgate-Cause" in headers)
    if isinstance(exc, TimeoutError):
        return Unreachable("timeout")
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable("refused")
    if isinstance(exc, ConnectionResetError):
        return Unreachable("reset")
    return Unreachable("error")


def connect(
    url: str,
    *,
    backoff: BackoffConfig | None = None,
    on_connect: OnConnect | None = None,
    on_disconnect: OnDisconnect | None = None,
    queue_while_disconnected: int = 0,
    rng: random.Random | None = None,
    **ws_options: Any,
) -> ReconnectingConnection:
    """A `ReconnectingConnection` to `url`: `conn = await connect(url)` or
    `async with connect(url) as conn:`. `ws_options` go to every
    `websockets.asyncio.client.connect` call (`open_timeout`, `additional_headers`,
    `subprotocols`, `proxy`, ...)."""
    return ReconnectingConnection(
        url,
        backoff=backoff,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        queue_while_disconnected=queue_while_disconnected,
        rng=rng,
        **ws_options,
    )

"""gateway/dial.py on a real loop (asyncio's and uvloop's) against listeners on 127.0.0.1:
a connect that works, and each way one fails named by its cause: refused, timed out (a
listener whose accept queue is full), a name the IDNA codec refuses, and TLS failures
with certificates made by the test."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tests.support.certs import Ca, make_ca, make_leaf
from tests.support.descriptors import no_descriptor_left
from tests.support.raw import full_backlog_listener
from wsgate.config.model import Address
from wsgate.errors import ConnectError
from wsgate.gateway.dial import dial, open_files_limit
from wsgate.gateway.upstream import UpstreamConnection

Runner = Callable[[Coroutine[Any, Any, None]], None]
DEADLINE_S = 30.0  # for anything that should take well under a second


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory)
    return ca, make_leaf(directory, ca, "backend.test")


class Owner:
    """The backend an upstream connection belongs to (upstream.ConnectionOwner)."""

    def __init__(self) -> None:
        self.released: list[UpstreamConnection] = []
        self.forgotten: list[UpstreamConnection] = []

    @property
    def pool(self) -> Owner:
        return self

    def release(self, conn: UpstreamConnection) -> None:
        self.released.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        self.forgotten.append(conn)


def free_port() -> int:
    """A port nothing listens on: bound once to learn it, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def connect(
    address: Address,
    *,
    timeout_s: float = DEADLINE_S,
    tls: ssl.SSLContext | None = None,
    server_hostname: str = "",
    out_of_descriptors: list[str] | None = None,
) -> UpstreamConnection:
    heard = out_of_descriptors if out_of_descriptors is not None else []
    owner = Owner()
    async with asyncio.timeout(DEADLINE_S * 2):
        return await dial(
            lambda: UpstreamConnection(owner),
            address,
            loop=asyncio.get_running_loop(),
            timeout_s=timeout_s,
            tls=tls,
            server_hostname=server_hostname or address.host,
            on_out_of_descriptors=heard.append,
        )


async def failure(address: Address, **keys: Any) -> ConnectError:
    with pytest.raises(ConnectError) as caught:
        await connect(address, **keys)
    return caught.value


class Listener:
    """An asyncio server on 127.0.0.1 that notes what each connection sends first."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.received.put(await reader.read(100))
            except (OSError, ssl.SSLError):
                await self.received.put(b"")
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await asyncio.wait_for(self.server.wait_closed(), DEADLINE_S)


def test_a_connect_to_a_listener_gives_a_connection_that_writes(run: Runner) -> None:
    async def main() -> None:
        listener = Listener()
        port = await listener.start()
        try:
            conn = await connect(Address("127.0.0.1", port))
            assert conn.transport is not None and not conn.closed
            conn.transport.write(b"hello")
            assert await asyncio.wait_for(listener.received.get(), DEADLINE_S) == b"hello"
            conn.transport.close()
        finally:
            await listener.stop()

    run(main())


def test_a_refused_connect_is_upstream_connect_refused(run: Runner) -> None:
    async def main() -> None:
        address = Address("127.0.0.1", free_port())
        error = await failure(address)
        assert error.cause == "upstream_connect_refused"
        assert error.detail == f"Backend {address} refused the connection."
        assert error.status == 502

    run(main())


def test_a_listener_that_never_accepts_is_upstream_connect_timeout(run: Runner) -> None:
    async def main() -> None:
        with full_backlog_listener() as port:
            address = Address("127.0.0.1", port)
            error = await failure(address, timeout_s=0.5)
        assert error.cause == "upstream_connect_timeout"
        assert error.detail == f"Backend {address} did not accept within 0.5 s."

    run(main())


def test_a_connect_cancelled_from_outside_is_cancelled_not_a_timeout(run: Runner) -> None:
    # The client went away while its backend did not accept: the task's cancellation
    # goes through as such, and the connect timeout's timer goes with it.
    async def main() -> None:
        with full_backlog_listener() as port:
            task = asyncio.create_task(connect(Address("127.0.0.1", port), timeout_s=0.3))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.5)  # past the timeout: nothing fires into a dead task
        assert task.cancelled()

    run(main())


def test_a_name_the_idna_codec_refuses_fails_without_a_lookup(run: Runner) -> None:
    async def main() -> None:
        # An empty label: refused by the codec before any resolver is asked.
        error = await failure(Address("a..test", 9))
        assert error.cause == "upstream_connect_failed"
        assert error.detail.startswith("Backend a..test:9: the name is not a valid host name")

    run(main())


def test_tls_to_a_backend_whose_certificate_the_ca_signed(
    run: Runner, certs: tuple[Ca, tuple[Path, Path]]
) -> None:
    ca, (chain, key) = certs

    async def main() -> None:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(chain, key)
        listener = Listener()
        port = await listener.start(server)
        try:
            client = ssl.create_default_context(cafile=str(ca.cert))
            conn = await connect(
                Address("127.0.0.1", port), tls=client, server_hostname="backend.test"
            )
            assert conn.transport is not None
            assert conn.transport.get_extra_info("ssl_object") is not None
            conn.transport.write(b"over tls")
            assert await asyncio.wait_for(listener.received.get(), DEADLINE_S) == b"over tls"
            conn.transport.close()
        finally:
            await listener.stop()

    run(main())


@pytest.mark.parametrize(
    ("trust_the_ca", "server_hostname"),
    [(False, "backend.test"), (True, "other.test")],
    ids=["unknown-ca", "wrong-name"],
)
def test_a_certificate_not_verified_is_named_with_the_way_out(
    run: Runner,
    certs: tuple[Ca, tuple[Path, Path]],
    trust_the_ca: bool,
    server_hostname: str,
) -> None:
    ca, (chain, key) = certs

    async def main() -> None:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(chain, key)
        listener = Listener()
        port = await listener.start(server)
        try:
            client = ssl.create_default_context(cafile=str(ca.cert) if trust_the_ca else None)
            if not trust_the_ca:
                client.load_default_certs()  # the system's CAs, which never signed it
            address = Address("127.0.0.1", port)
            error = await failure(address, tls=client, server_hostname=server_hostname)
        finally:
            await listener.stop()
        assert error.cause == "upstream_connect_failed"
        assert error.detail.startswith(f"Backend {address}: TLS certificate not verified (")
        assert "tls_ca_file" in error.detail and "tls_server_name" in error.detail
        words = "self-signed certificate in certificate chain" if not trust_the_ca else "mismatch"
        assert words in error.detail.lower()

    run(main())


def test_tls_to_a_backend_that_speaks_plain_http_is_a_failed_handshake(run: Runner) -> None:
    async def main() -> None:
        async def answer_plainly(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer_plainly, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            address = Address("127.0.0.1", port)
            client = ssl.create_default_context()
            error = await failure(address, tls=client, server_hostname="backend.test")
        finally:
            server.close()
        assert error.cause == "upstream_connect_failed"
        assert error.detail.startswith(f"Backend {address}: TLS handshake failed (")

    run(main())


def test_the_open_files_limit_is_the_soft_rlimit() -> None:
    assert open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_out_of_descriptors_is_the_gateways_own_cause(run: Runner) -> None:
    async def main() -> None:
        listener = Listener()
        port = await listener.start()
        heard: list[str] = []
        try:
            with no_descriptor_left():
                error = await failure(Address("127.0.0.1", port), out_of_descriptors=heard)
        finally:
            await listener.stop()
        assert error.cause == "out_of_file_descriptors"
        assert error.detail.startswith("No file descriptor left for a connection to backend")
        assert heard == ["EMFILE"]

    run(main())

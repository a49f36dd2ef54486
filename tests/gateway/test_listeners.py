"""gateway/listeners.py on a real loop (asyncio's and uvloop's), every listener on
127.0.0.1 or 127.0.0.2: opened at start, the addresses bound, a port in use as a
ListenError naming the address (and nothing left listening), inherited sockets used and
the unused ones closed, a reload's opens and closes, the descriptors for a successor,
and TLS listeners moved to new certificates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop

from tests.support.certs import Ca, make_ca, make_leaf
from wsgate.config.model import Address, CertificateConfig, TlsConfig
from wsgate.gateway.listeners import ListenError, Listeners, os_error_reason
from wsgate.gateway.tls import ServerTls

Runner = Callable[[Coroutine[Any, Any, None]], None]
DEADLINE_S = 30.0
GREETING = b"accepted\n"


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    return uvloop.run if request.param == "uvloop" else asyncio.run


class Greeter(asyncio.Protocol):
    """Each accepted connection: greeted, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(GREETING)
        transport.close()


def listeners() -> Listeners:
    return Listeners(asyncio.get_running_loop(), Greeter)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def listening_socket(host: str = "127.0.0.1") -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


async def greeting(address: str, tls: ssl.SSLContext | None = None) -> bytes:
    """What the listener at "host:port" says; OSError when nothing listens there."""
    host, port = address.rsplit(":", 1)
    async with asyncio.timeout(DEADLINE_S):
        reader, writer = await asyncio.open_connection(
            host.strip("[]"), int(port), ssl=tls, server_hostname="gw.test" if tls else None
        )
        try:
            return await reader.read()
        finally:
            writer.close()


async def refused(address: str) -> bool:
    try:
        await greeting(address)
    except ConnectionRefusedError:
        return True
    return False


def test_open_all_listens_on_each_address(run: Runner) -> None:
    async def main() -> None:
        found = listeners()
        assert found.first_socket() is None and found.bound_addresses() == []
        await found.open_all(
            [Address("127.0.0.1", 0), Address("127.0.0.2", 0), Address("::1", 0)],
            None,
            5.0,
            reuse_port=False,
            inherited=None,
        )
        try:
            one, two, six = found.bound_addresses()
            assert one.startswith("127.0.0.1:") and two.startswith("127.0.0.2:")
            assert six.startswith("[::1]:")
            for address in (one, two, six):
                assert await greeting(address) == GREETING
            first = found.first_socket()
            assert first is not None and first.getsockname()[1] == int(one.rsplit(":", 1)[1])
        finally:
            found.close_all()
            await found.wait_closed()
        assert await refused(one) and await refused(two)

    run(main())


def test_a_port_in_use_is_a_listen_error_and_nothing_stays_open(run: Runner) -> None:
    async def main() -> None:
        with listening_socket() as taken:
            port = taken.getsockname()[1]
            first = Address("127.0.0.1", free_port())
            found = listeners()
            with pytest.raises(ListenError) as caught:
                await found.open_all(
                    [first, Address("127.0.0.1", port)],
                    None,
                    5.0,
                    reuse_port=False,
                    inherited=None,
                )
            await found.wait_closed()
        error = caught.value
        assert str(error) == f"cannot listen on 127.0.0.1:{port}: Address already in use"
        assert error.address == Address("127.0.0.1", port)
        assert await refused(str(first))  # the one opened before it was closed again

    run(main())


def test_os_error_reason_is_the_systems_words() -> None:
    import errno

    assert os_error_reason(OSError(errno.EADDRINUSE, "long words")) == "Address already in use"
    assert os_error_reason(OSError("no errno")) == "no errno"
    assert os_error_reason(socket.gaierror(-2, "Name or service not known")) == (
        "Name or service not known"
    )


def test_inherited_sockets_are_used_and_the_unused_closed(run: Runner) -> None:
    async def main() -> None:
        with listening_socket() as kept, listening_socket("127.0.0.2") as unused:
            port = kept.getsockname()[1]
            other = unused.getsockname()[1]
            found = listeners()
            await found.open_all(
                [Address("127.0.0.1", port)],
                None,
                5.0,
                reuse_port=False,
                inherited={
                    ("127.0.0.1", port, False): kept,
                    ("127.0.0.2", other, False): unused,
                },
            )
            try:
                assert found.bound_addresses() == [f"127.0.0.1:{port}"]
                assert await greeting(f"127.0.0.1:{port}") == GREETING
                assert unused.fileno() == -1  # the new config has no such listener
                assert await refused(f"127.0.0.2:{other}")
            finally:
                found.close_all()
                await found.wait_closed()

    run(main())


def test_a_reload_opens_one_and_closes_another(run: Runner) -> None:
    async def main() -> None:
        found = listeners()
        old = Address("127.0.0.1", 0)
        await found.open_all([old], None, 5.0, reuse_port=False, inherited=None)
        try:
            (before,) = found.bound_addresses()
            new = Address("127.0.0.2", 0)
            server = await found.open(new, None, 5.0)
            assert found.bound_addresses() == [before]  # not counted until added
            found.add(new, server)
            found.close(old)
            found.close(Address("127.0.0.3", 1))  # never opened: nothing happens
            (after,) = found.bound_addresses()
            assert after.startswith("127.0.0.2:")
            assert await greeting(after) == GREETING
            assert await refused(before)
        finally:
            found.close_all()
            await found.wait_closed()

    run(main())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, list[tuple[Path, Path]]]:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory)
    return ca, [make_leaf(directory, ca, "gw.test", tag=tag) for tag in ("1", "2")]


def leaf_der(chain: Path) -> bytes:
    first = chain.read_text().split("-----END CERTIFICATE-----")[0]
    return ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")


def server_tls(chain: Path, key: Path) -> ServerTls:
    return ServerTls(TlsConfig(certificates=(CertificateConfig(str(chain), str(key)),)))


def test_fds_for_a_successor_and_tls_listeners_moved_to_new_certificates(
    run: Runner, certs: tuple[Ca, list[tuple[Path, Path]]]
) -> None:
    ca, [(chain1, key1), (chain2, key2)] = certs

    async def peer_certificate(address: str) -> bytes:
        client = ssl.create_default_context(cafile=str(ca.cert))
        host, port = address.rsplit(":", 1)
        async with asyncio.timeout(DEADLINE_S):
            reader, writer = await asyncio.open_connection(
                host, int(port), ssl=client, server_hostname="gw.test"
            )
            der: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert await reader.read() == GREETING
            writer.close()
        return der

    async def main() -> None:
        found = listeners()
        addresses = [Address("127.0.0.1", 0), Address("127.0.0.2", 0, tls=True)]
        await found.open_all(
            addresses, server_tls(chain1, key1), 5.0, reuse_port=False, inherited=None
        )
        try:
            plain, secure = found.bound_addresses()
            fds = found.fds()
            assert set(fds) == {"127.0.0.1 0 0", "127.0.0.2 0 1"}
            for key, address in (("127.0.0.1 0 0", plain), ("127.0.0.2 0 1", secure)):
                with socket.socket(fileno=socket.dup(fds[key])) as sock:
                    name = sock.getsockname()
                    assert f"{name[0]}:{name[1]}" == address
            assert await peer_certificate(secure) == leaf_der(chain1)
            found.use_certificates(server_tls(chain2, key2))
            assert await peer_certificate(secure) == leaf_der(chain2)
            assert await greeting(plain) == GREETING  # the plain one is untouched
        finally:
            found.close_all()
            await found.wait_closed()

    run(main())

"""gateway/tls.py without sockets: TLS handshakes between memory BIOs, the server side
from `ServerTls` (certificates by SNI, TLS 1.2+, ALPN http/1.1 then h2, the name asked kept),
the backend side from `client_context`. Certificates made with the openssl command."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.support.certs import Ca, make_ca, make_leaf
from wsgate.config.load import ConfigError
from wsgate.config.model import (
    Address,
    BackendConfig,
    CertificateConfig,
    PoolConfig,
    TlsConfig,
)
from wsgate.gateway.tls import (
    ServerTls,
    certificate_names,
    client_context,
    requested_server_name,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ca, dict[str, tuple[Path, Path]]]:
    directory = tmp_path_factory.mktemp("certs")
    ca = make_ca(directory)
    leaves = {
        "a": make_leaf(directory, ca, "a.test"),
        "b": make_leaf(directory, ca, "b.test", san="DNS:b.test,DNS:*.b.test"),
    }
    return ca, leaves


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_name: str | None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A full handshake between two memory BIOs; (client, server) SSLObjects."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=server_name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return c, s
    raise AssertionError("the handshake did not finish")


def verifying(ca: Ca, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_config(leaves: dict[str, tuple[Path, Path]], **kwargs: object) -> TlsConfig:
    return TlsConfig(
        certificates=tuple(CertificateConfig(str(cert), str(key)) for cert, key in leaves.values()),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_certificate_is_chosen_by_sni(certs: tuple[Ca, dict[str, tuple[Path, Path]]]) -> None:
    ca, leaves = certs
    tls = ServerTls(tls_config(leaves))
    assert tls.names == [("a.test",), ("b.test", "*.b.test")]
    for name in ("a.test", "b.test", "x.b.test"):
        client, server = handshake(tls.default, verifying(ca, ["http/1.1"]), name)
        assert client.selected_alpn_protocol() == "http/1.1"
        assert client.version() in ("TLSv1.2", "TLSv1.3")
        assert requested_server_name(server) == name
    # No name, or one no certificate is for: the first certificate (a.test).
    assert tls.context_for(None) is tls.default
    assert tls.context_for("other.test") is tls.default
    assert tls.context_for("B.TEST.") is tls.contexts[1]
    assert tls.context_for("deep.x.b.test") is tls.default  # a wildcard is one label
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls.default, verifying(ca), "other.test")


def test_names_in_the_config_win_over_the_certificates(
    certs: tuple[Ca, dict[str, tuple[Path, Path]]],
) -> None:
    _ca, leaves = certs
    (a_cert, a_key), (b_cert, b_key) = leaves["a"], leaves["b"]
    config = TlsConfig(
        certificates=(
            CertificateConfig(str(a_cert), str(a_key)),
            CertificateConfig(str(b_cert), str(b_key), names=("alias.test",)),
        )
    )
    tls = ServerTls(config)
    assert tls.context_for("alias.test") is tls.contexts[1]
    assert tls.context_for("b.test") is tls.default
    assert certificate_names(str(b_cert)) == ("b.test", "*.b.test")


def test_h2_only_client_is_chosen_h2(certs: tuple[Ca, dict[str, tuple[Path, Path]]]) -> None:
    ca, leaves = certs
    tls = ServerTls(tls_config(leaves))
    client, server = handshake(tls.default, verifying(ca, ["h2"]), "a.test")
    # Chosen h2 so that it can be told HTTP_1_1_REQUIRED in HTTP/2 (gateway/client.py).
    assert client.selected_alpn_protocol() == server.selected_alpn_protocol() == "h2"
    both, _ = handshake(tls.default, verifying(ca, ["h2", "http/1.1"]), "a.test")
    assert both.selected_alpn_protocol() == "http/1.1"
    no_sni = verifying(ca)
    no_sni.check_hostname = False
    _, nameless = handshake(tls.default, no_sni, None)
    assert requested_server_name(nameless) is None


def test_tls_1_2_is_the_floor_and_1_3_can_be_required(
    certs: tuple[Ca, dict[str, tuple[Path, Path]]],
) -> None:
    ca, leaves = certs
    # TLS 1.0 and 1.1 cannot even be offered here without a DeprecationWarning: the
    # context's floor says it.
    assert ServerTls(tls_config(leaves)).default.minimum_version is ssl.TLSVersion.TLSv1_2
    only_12 = verifying(ca)
    only_12.maximum_version = ssl.TLSVersion.TLSv1_2
    client, _ = handshake(ServerTls(tls_config(leaves)).default, only_12, "a.test")
    assert client.version() == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        handshake(ServerTls(tls_config(leaves, min_version="1.3")).default, only_12, "a.test")


def test_a_key_that_does_not_match_is_a_config_error(
    certs: tuple[Ca, dict[str, tuple[Path, Path]]],
) -> None:
    _, leaves = certs
    config = TlsConfig(certificates=(CertificateConfig(str(leaves["a"][0]), str(leaves["b"][1])),))
    with pytest.raises(ConfigError, match=r"tls.certificates\[0\]: expected a PEM certificate"):
        ServerTls(config, "gw.toml")


def pool(**kwargs: object) -> PoolConfig:
    return PoolConfig("app", (BackendConfig(Address("127.0.0.1", 1)),), **kwargs)  # type: ignore[arg-type]


def test_backend_contexts_verify_by_default(
    certs: tuple[Ca, dict[str, tuple[Path, Path]]],
) -> None:
    ca, leaves = certs
    server = ServerTls(tls_config(leaves)).default
    assert client_context(pool()) is None
    system = client_context(pool(tls=True))
    assert system is not None and system.verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLCertVerificationError):  # our CA is not the system's
        handshake(server, system, "a.test")
    trusted = client_context(pool(tls=True, tls_ca_file=str(ca.cert)))
    assert trusted is not None
    client, _ = handshake(server, trusted, "a.test")
    assert client.selected_alpn_protocol() == "http/1.1"
    insecure = client_context(pool(tls=True, tls_insecure=True))
    assert insecure is not None and insecure.verify_mode is ssl.CERT_NONE
    handshake(server, insecure, "whatever.test")


def test_wsgate_check_loads_the_certificates(
    certs: tuple[Ca, dict[str, tuple[Path, Path]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from wsgate.cli import main

    _, leaves = certs
    (a_cert, a_key), (_, b_key) = leaves["a"], leaves["b"]
    path = tmp_path / "gw.toml"
    text = """
[server]
listen = [{{ address = "127.0.0.1:8443", tls = true }}]
[tls]
[[tls.certificates]]
cert = "{cert}"
key = "{key}"
[pools.app]
backends = ["127.0.0.1:9001"]
"""
    path.write_text(text.format(cert=a_cert, key=a_key))
    assert main(["check", str(path)]) == 0
    path.write_text(text.format(cert=a_cert, key=b_key))  # another certificate's key
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tls.certificates[0]: expected a PEM certificate chain and the private key" in err

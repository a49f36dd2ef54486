"""A certificate's DNS names (protocol/x509_names.py): certificates made with the openssl
command (subjectAltName with DNS and IP entries, a wildcard, none at all, a v1 one with no
extensions), cross-checked against what the ssl module itself decodes after a real
handshake, and anything else read as no names, never an exception."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.gateway.test_tls import handshake
from tests.support.certs import Ca, make_ca, make_leaf, openssl
from wsgate.protocol.x509_names import (
    certificate_dns_names,
    first_certificate_der,
    pem_dns_names,
)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return make_ca(tmp_path_factory.mktemp("x509"))


def leaf_pem(ca: Ca, name: str, san: str | None) -> str:
    directory = ca.cert.parent
    chain, _ = make_leaf(directory, ca, name, san=san, tag=f"-{abs(hash(san))}")
    return chain.read_text()


def v1_certificate(ca: Ca, cn: str) -> str:
    """A certificate without extensions (signed with no extension file: X.509 v1)."""
    directory = ca.cert.parent
    key, csr, cert = (directory / f"v1{suffix}" for suffix in (".key", ".csr", ".crt"))
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-out", str(cert),
    )  # fmt: skip
    return cert.read_text()


def text_of(pem: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_subject_alt_name_dns_entries_in_order_lower_case(ca: Ca) -> None:
    pem = leaf_pem(ca, "a.test", "DNS:A.Test,IP:127.0.0.1,DNS:*.b.test,email:x@y.test")
    assert pem_dns_names(pem) == ("a.test", "*.b.test")


def test_without_dns_entries_the_common_name(ca: Ca) -> None:
    assert pem_dns_names(leaf_pem(ca, "Only-CN.test", "IP:127.0.0.1")) == ("only-cn.test",)
    v1 = v1_certificate(ca, "old.test")
    assert "Version: 1" in text_of(v1)  # no version field, no extensions
    assert pem_dns_names(v1) == ("old.test",)


def test_the_same_names_as_the_ssl_module_reads_after_a_handshake(ca: Ca) -> None:
    directory = ca.cert.parent
    chain, key = make_leaf(directory, ca, "x.test", san="DNS:x.test,DNS:*.x.test,IP:127.0.0.1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain, key)
    client, _ = handshake(server, ssl.create_default_context(cafile=str(ca.cert)), "x.test")
    seen = client.getpeercert()
    assert seen is not None
    alt_names = seen["subjectAltName"]
    assert isinstance(alt_names, tuple)  # typeshed: any entry may be a str
    dns = tuple(value for kind, value in alt_names if kind == "DNS")
    assert pem_dns_names(chain.read_text()) == dns == ("x.test", "*.x.test")


def test_the_first_certificate_of_a_chain_is_read(ca: Ca) -> None:
    chain = leaf_pem(ca, "leaf.test", None)  # the leaf, then the CA
    assert chain.count("BEGIN CERTIFICATE") == 2
    assert pem_dns_names(chain) == ("leaf.test",)
    assert pem_dns_names(ca.cert.read_text()) == ("wsgate-test-ca",)


def test_anything_else_has_no_names(ca: Ca) -> None:
    assert pem_dns_names("") == ()
    assert pem_dns_names(ca.key.read_text()) == ()  # a key, not a certificate
    assert pem_dns_names("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n") == ()
    der = first_certificate_der(leaf_pem(ca, "cut.test", None))
    assert der is not None and certificate_dns_names(der) == ("cut.test",)
    for cut in range(0, len(der), 7):
        assert certificate_dns_names(der[:cut]) == ()


@given(st.binary(max_size=400))
def test_never_raises(data: bytes) -> None:
    certificate_dns_names(data)
    certificate_dns_names(b"\x30\x82" + data)

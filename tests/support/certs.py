"""Certificates made by the test with the openssl command: a CA, and leaf certificates it
signs (EC P-256), so that one CA file verifies every name."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Ca:
    cert: Path
    key: Path


def make_ca(directory: Path, name: str = "wsgate-test-ca") -> Ca:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "365",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", str(cert),
    )  # fmt: skip
    return Ca(cert, key)


def make_leaf(
    directory: Path, ca: Ca, name: str, *, san: str | None = None, tag: str = ""
) -> tuple[Path, Path]:
    """A certificate for `name` (SAN `san`, default DNS:name) signed by `ca`: (chain PEM
    with the leaf first, key PEM). `tag` tells two certificates for one name apart."""
    stem = f"{name}{tag}"
    key, csr, cert = directory / f"{stem}.key", directory / f"{stem}.csr", directory / f"{stem}.crt"
    ext = directory / f"{stem}.ext"
    ext.write_text(
        f"subjectAltName={san or 'DNS:' + name}\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "365", "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    chain = directory / f"{stem}.pem"
    chain.write_bytes(cert.read_bytes() + ca.cert.read_bytes())
    return chain, key

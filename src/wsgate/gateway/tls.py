"""TLS for the gateway: the listeners' contexts (certificates by SNI, TLS 1.2+, ALPN
http/1.1) and the contexts for wss:// backends (verification on unless told otherwise).

One `ServerTls` serves every TLS listener. Its first certificate is the default; the SNI
callback moves a handshake to the context of the certificate for the name the client
asked for (exact, or "*.example.com" for one label), and remembers the name for the log.
Each context offers `http/1.1`, then `h2` (protocol/alpn.py): a client offering both gets
http/1.1, and one offering h2 without http/1.1 gets h2, which the adapter reads after the
handshake (`SSLObject.selected_alpn_protocol()`) and answers with HTTP/2's GOAWAY
HTTP_1_1_REQUIRED and a log line, instead of a confusing failure later.

Building a `ServerTls` loads every certificate: a chain that does not load, or a key that
does not match, is a ConfigError naming the key, so `wsgate check`, `serve` and a reload
refuse it the same way (a reload keeps the certificates it had).
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsgate.config.load import ConfigError
from wsgate.config.model import Config, PoolConfig, TlsConfig
from wsgate.observe.log import JsonLog
from wsgate.protocol.alpn import (
    H2_HTTP_1_1_REQUIRED,
    HTTP11,
    SERVER_PROTOCOLS,
    needs_http11_required,
)
from wsgate.protocol.x509_names import pem_dns_names

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def certificate_names(path: str) -> tuple[str, ...]:
    """The DNS names of the PEM certificate at `path` (its subjectAltName, else its
    common name), lower case; () when they cannot be read."""
    try:
        pem = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return ()
    return pem_dns_names(pem)


# The name each TLS client asked for by SNI, kept while its connection lives: the server
# side of an SSLObject has no public attribute for it after the handshake.
_requested_names: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()


def requested_server_name(ssl_object: ssl.SSLObject) -> str | None:
    """The server name the client asked for by SNI (None when it sent none)."""
    return _requested_names.get(ssl_object)


def server_context(
    config: TlsConfig, cert: str, key: str, source: str, where: str
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = _VERSIONS[config.min_version]
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            source, where, "a PEM certificate chain and the private key that matches it", str(exc)
        ) from None
    ctx.set_alpn_protocols(list(SERVER_PROTOCOLS))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


class ServerTls:
    """The contexts of the TLS listeners, one per certificate, chosen by SNI."""

    def __init__(self, config: TlsConfig, source: str = "config") -> None:
        if not config.certificates:
            raise ConfigError(source, "tls.certificates", "at least one [[tls.certificates]]")
        self.contexts: list[ssl.SSLContext] = []
        self.by_name: dict[str, ssl.SSLContext] = {}
        self.names: list[tuple[str, ...]] = []
        for index, certificate in enumerate(config.certificates):
            where = f"tls.certificates[{index}]"
            ctx = server_context(config, certificate.cert, certificate.key, source, where)
            names = certificate.names or certificate_names(certificate.cert)
            self.contexts.append(ctx)
            self.names.append(names)
            for name in names:
                self.by_name.setdefault(name, ctx)
        self.default = self.contexts[0]
        for ctx in self.contexts:
            ctx.sni_callback = self.on_sni

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context whose certificate is for `server_name`: an exact name first, then
        a wildcard one label up; else the default."""
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        found = self.by_name.get(name)
        if found is None and "." in name:
            found = self.by_name.get("*." + name.split(".", 1)[1])
        return found or self.default

    def on_sni(self, ssl_object: ssl.SSLObject, server_name: str | None, _ctx: Any) -> None:
        """The SNI callback of every context, and of a listener's older context after a
        reload: the handshake moves to the certificate for the name."""
        if server_name:
            _requested_names[ssl_object] = server_name
        chosen = self.context_for(server_name)
        if chosen is not ssl_object.context:
            ssl_object.context = chosen


def client_context(pool: PoolConfig) -> ssl.SSLContext | None:
    """The context for the pool's wss:// backends, or None when they speak plain TCP.
    Verification is on (the system's CAs, or `tls_ca_file`) unless `tls_insecure`."""
    if not pool.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=pool.tls_ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "config", f"pools.{pool.name}.tls_ca_file", "PEM CA certificates", str(exc)
        ) from None
    if pool.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([HTTP11])
    return ctx


def client_contexts(pools: Mapping[str, PoolConfig]) -> dict[str, ssl.SSLContext]:
    """Every pool's backend context, by pool name (only the pools with `tls`)."""
    found = {}
    for name, pool in pools.items():
        ctx = client_context(pool)
        if ctx is not None:
            found[name] = ctx
    return found


def refuse_alpn(transport: Any, ssl_object: ssl.SSLObject, client_ip: str, log: JsonLog) -> bool:
    """A TLS client that offered h2 but not http/1.1 (so was chosen h2): HTTP/2's GOAWAY
    HTTP_1_1_REQUIRED, a log line, and the connection closed. True when it was refused."""
    selected = ssl_object.selected_alpn_protocol()
    if not needs_http11_required(selected):
        return False
    log.event(
        "tls_alpn_refused",
        client=client_ip,
        server_name=requested_server_name(ssl_object),
        alpn=selected,
        detail="The client offered h2 and not http/1.1 by ALPN; wsgate serves HTTP/1.1 "
        "(WebSockets over HTTP/2, RFC 8441, are not supported): it was told "
        "HTTP_1_1_REQUIRED.",
    )
    transport.write(H2_HTTP_1_1_REQUIRED)
    transport.close()
    return True


def check_tls(config: Config) -> None:
    """Load what `serve` will load (the listeners' certificates, the backends' CA files):
    ConfigError when something does not."""
    if config.tls.certificates:
        ServerTls(config.tls, config.source)
    client_contexts(config.pools)

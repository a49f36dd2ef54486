"""TLS for the gateway: the listeners' contexts (certificates by SNI, TLS 1.2+, ALPN
http/1.1) and the contexts for wss:// backends (verification on unless told otherwise).

One `ServerTls` serves every TLS listener. Its first certificate is the default; the SNI
callback moves a handshake to the context of the certificate for the name the client
asked for (exact, or "*.example.com" for one label). Each context offers only
`http/1.1` by ALPN. The `ssl` module carries on without ALPN when a client offers only
protocols the server lacks, so the ClientHello is read as it arrives (the context's
message callback, protocol/tls_hello.py) and kept on the connection's SSLObject: the
adapter then answers an h2-only client with HTTP/2's GOAWAY HTTP_1_1_REQUIRED and a log
line, instead of a confusing failure later.

Building a `ServerTls` loads every certificate: a chain that does not load, or a key that
does not match, is a ConfigError naming the key, so `wsgate check`, `serve` and a reload
refuse it the same way (a reload keeps the certificates it had).
"""

from __future__ import annotations

import contextlib
import importlib
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from wsgate.config.load import ConfigError
from wsgate.config.model import Config, PoolConfig, TlsConfig
from wsgate.observe.log import JsonLog
from wsgate.protocol.tls_hello import (
    H2_HTTP_1_1_REQUIRED,
    HTTP11,
    ClientHello,
    parse_client_hello,
)

_HELLO_ATTR = "_wsgate_client_hello"
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def certificate_names(path: str) -> tuple[str, ...]:
    """The DNS names of the PEM certificate at `path` (its subjectAltName, else its
    common name), lower case; () when they cannot be read."""
    decode: Callable[[str], dict[str, Any]] | None = getattr(
        importlib.import_module("_ssl"), "_test_decode_cert", None
    )
    if decode is None:
        return ()
    try:
        info = decode(path)
    except (OSError, ssl.SSLError, ValueError):
        return ()
    names = [v.lower() for kind, v in info.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        for rdn in info.get("subject", ()):
            names += [v.lower() for k, v in rdn if k == "commonName"]
    return tuple(names)


def _on_message(
    conn: Any, direction: str, _version: Any, content_type: Any, msg_type: Any, data: bytes
) -> None:
    """The context's message callback: keep the ClientHello's offer on the SSLObject."""
    if (
        direction == "read"
        and content_type == ssl._TLSContentType.HANDSHAKE  # type: ignore[attr-defined]
        and msg_type == ssl._TLSMessageType.CLIENT_HELLO  # type: ignore[attr-defined]
    ):
        hello = parse_client_hello(bytes(data))
        if hello is not None:
            with contextlib.suppress(AttributeError):
                setattr(conn, _HELLO_ATTR, hello)


def client_hello(ssl_object: object) -> ClientHello | None:
    """What the client offered in its ClientHello (None when it was not seen)."""
    hello = getattr(ssl_object, _HELLO_ATTR, None)
    return hello if isinstance(hello, ClientHello) else None


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
    ctx.set_alpn_protocols([HTTP11])
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # Private in CPython (since 3.8) but the only way to see the client's ALPN offer.
    with contextlib.suppress(AttributeError):
        ctx._msg_callback = _on_message  # type: ignore[attr-defined]
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


def refuse_alpn(transport: Any, ssl_object: object, client_ip: str, log: JsonLog) -> bool:
    """A TLS client that offered application protocols but not http/1.1 (an h2-only
    client): HTTP/2's GOAWAY HTTP_1_1_REQUIRED, a log line, and the connection closed.
    True when it was refused."""
    hello = client_hello(ssl_object)
    if hello is None or not hello.refuses_http11:
        return False
    log.event(
        "tls_alpn_refused",
        client=client_ip,
        server_name=hello.server_name,
        offered=list(hello.alpn or ()),
        detail="The client offered only protocols other than http/1.1 by ALPN; wsgate "
        "serves HTTP/1.1 (WebSockets over HTTP/2, RFC 8441, are not supported): it was "
        "told HTTP_1_1_REQUIRED.",
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

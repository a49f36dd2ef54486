"""The Protocols between the core and its world (gateway/ports.py), held against what
provides them: the running gateway (server.Gateway) is a GatewayView, the client core
(core.ClientCore) the ExchangeHost of its exchanges, and the playbooks' FakeGateway a
GatewayView too, so that a fake cannot drift from the real thing.

The Protocols are not runtime_checkable: the annotated assignments below are the full
check, made by `mypy src tests` (scripts/test.sh's plain `mypy` reads src/ only). So each
test also looks at run time, member by member: every name the Protocol declares is there,
a property as a value and a method as something to call, with values of the declared
kinds."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import random

from tests.gateway.fakes import FakeGateway, make
from wsgate.config.model import (
    Address,
    BackendConfig,
    Config,
    PoolConfig,
    RouteConfig,
    ServerConfig,
)
from wsgate.gateway.commands import Log
from wsgate.gateway.pool import Pool
from wsgate.gateway.ports import ExchangeHost, GatewayView
from wsgate.gateway.router import Router
from wsgate.gateway.server import Gateway
from wsgate.observe.log import JsonLog
from wsgate.policy.clients import ClientLimits


def declared(protocol: type) -> tuple[set[str], set[str]]:
    """The public members a Protocol declares: (properties, methods)."""
    members = {name: value for name, value in vars(protocol).items() if not name.startswith("_")}
    properties = {name for name, value in members.items() if isinstance(value, property)}
    return properties, set(members) - properties


def check_members(protocol: type, provider: object) -> None:
    properties, methods = declared(protocol)
    assert properties, f"{protocol.__name__}: nothing declared, nothing checked"
    for name in properties:
        assert hasattr(provider, name), f"{type(provider).__name__} has no {name}"
        # A method where a value is declared would be truthy where a bool is read.
        assert not callable(getattr(provider, name)), f"{name} is a method, not a value"
    for name in methods:
        assert callable(getattr(provider, name, None)), f"{type(provider).__name__}.{name}"


def check_gateway_view(view: GatewayView) -> None:
    check_members(GatewayView, view)
    assert isinstance(view.config, Config)
    assert isinstance(view.router, Router)
    assert isinstance(view.client_limits, ClientLimits)
    assert isinstance(view.rng, random.Random)
    assert view.draining is False
    assert isinstance(view.client_script, bytes) and view.client_script


def test_the_running_gateway_is_a_gateway_view() -> None:
    pool = PoolConfig("app", (BackendConfig(Address("127.0.0.1", 9001)),))
    config = Config(
        server=ServerConfig(trusted_proxies=("10.0.0.0/8",)),
        pools={"app": pool},
        routes=(RouteConfig("app"),),
    )

    async def main() -> None:
        gateway = Gateway(config, JsonLog(io.StringIO()))  # built, not started: no socket
        view: GatewayView = gateway
        check_gateway_view(view)
        assert view.config is config
        assert set(view.pools) == {"app"} and isinstance(view.pools["app"], Pool)
        assert list(view.trusted_proxies) == [ipaddress.ip_network("10.0.0.0/8")]
        assert b"export" in view.client_script  # wsgate-client.js, a module

    asyncio.run(main())


def test_the_playbooks_fake_gateway_is_a_gateway_view() -> None:
    _, pool, gw = make()
    view: GatewayView = gw
    check_gateway_view(view)
    assert isinstance(gw, FakeGateway) and gw.pools["app"] is pool


def test_the_client_core_is_its_exchanges_host() -> None:
    core, _, gw = make()
    host: ExchangeHost = core
    check_members(ExchangeHost, host)
    assert host.gw is gw
    assert (host.client_ip, host.scheme, host.now) == ("192.0.2.7", "http", 0.0)
    assert host.keep_alive_allowed() is True


def test_what_an_exchange_appends_to_the_hosts_commands_goes_out_with_the_call() -> None:
    """`commands` is the list the current call hands out, not a copy: what the exchange
    appends is carried out, in order, before what the core adds after it."""
    core, _, _ = make()
    host: ExchangeHost = core
    appended = Log("event", "from_the_exchange", {})
    host.commands.append(appended)
    out = core.start(5.0, over_capacity=False)
    assert out[0] is appended
    assert host.commands == []  # handed out: the next call starts afresh

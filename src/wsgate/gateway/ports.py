"""What the pure core asks of the world around it, as Protocols: the gateway's shared
state (config, routes, pools, limits) and the waiter a pool calls back. The running
gateway (server.Gateway) and the adapter (client.ClientConnection) provide them; tests
provide fakes."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from wsgate.config.model import Config
from wsgate.gateway.router import Router
from wsgate.policy.clients import ClientLimits

if TYPE_CHECKING:
    from wsgate.gateway.pool import Pool


class GatewayView(Protocol):
    """What every client core of one gateway shares."""

    @property
    def config(self) -> Config: ...
    @property
    def router(self) -> Router: ...
    @property
    def pools(self) -> Mapping[str, Pool]: ...
    @property
    def client_limits(self) -> ClientLimits: ...
    @property
    def trusted_proxies(self) -> Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def draining(self) -> bool: ...
    @property
    def client_script(self) -> bytes:
        """wsgate-client.js, served at server.client_script_path."""
        ...

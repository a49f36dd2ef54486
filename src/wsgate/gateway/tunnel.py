"""The tunnel a WebSocket gets after its 101, chosen per pool (`make_tunnel`):

- `Tunnel` (plain_tunnel.py), the plain one: bytes copied as they come, never parsed
  except for the backend's frame headers, so that the gateway's own close lands at a
  frame boundary.
- `FrameTunnel` (frame_tunnel.py), when the pool sets a keepalive or a frame limit: both
  directions go through the pure `FrameRelay`, which decides pings, limits and closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wsgate.config.model import PoolConfig
from wsgate.gateway.frame_tunnel import FrameTunnel
from wsgate.gateway.plain_tunnel import Tunnel
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.observe.log import JsonLog
from wsgate.protocol.frame_relay import RelaySettings

# `Tunnel` is this module's too: what the client connection holds, whichever kind.
__all__ = ["Tunnel", "make_tunnel", "relay_settings"]


def relay_settings(pool: PoolConfig) -> RelaySettings | None:
    """The pool's frame settings, or None when its tunnels need no frames read."""
    if not pool.frame_aware:
        return None
    return RelaySettings(
        ping_idle_s=pool.ping_idle_s,
        ping_timeout_s=pool.ping_timeout_s,
        max_message_bytes=pool.max_message_bytes,
        max_frame_bytes=pool.max_frame_bytes,
        max_messages_per_s=pool.max_messages_per_s,
        message_burst=pool.message_burst,
    )


def make_tunnel(
    client: asyncio.Transport,
    upstream: UpstreamConnection,
    pool: PoolConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    log: JsonLog,
    fields: dict[str, Any],
    idle_timeout_s: float,
    on_closed: Callable[[], None],
) -> Tunnel:
    """The tunnel a pool's connection gets: plain, or frame-aware when the pool asks."""
    settings = relay_settings(pool)
    if settings is None:
        return Tunnel(
            client,
            upstream,
            loop=loop,
            log=log,
            fields=fields,
            idle_timeout_s=idle_timeout_s,
            on_closed=on_closed,
        )
    return FrameTunnel(
        client,
        upstream,
        settings,
        loop=loop,
        log=log,
        fields=fields,
        idle_timeout_s=idle_timeout_s,
        on_closed=on_closed,
    )

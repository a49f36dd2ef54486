"""Runs the layers in order and stops at the first that fails: the probe's sequence.

`run(target, settings)` returns the `Observations`; it never raises for a network
failure (that is an observation), only for a bug.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from wsgate.doctor import burst as burst_mod
from wsgate.doctor import idle as idle_mod
from wsgate.doctor import probe, session
from wsgate.doctor.observations import (
    AnswerKind,
    CompareObs,
    IdleObs,
    Observations,
    Settings,
    Target,
    TcpOutcome,
)
from wsgate.doctor.progress import IDLE, Progress, ticking


async def run(target: Target, settings: Settings, progress: Progress | None = None) -> Observations:
    """`progress`, when given, hears how far --idle and --burst have got (a terminal)."""
    obs = Observations(target, settings)
    dns = await probe.resolve(target.host, target.port, settings.timeout_s)
    obs = replace(obs, dns=dns)
    if dns.error or not dns.addresses:
        return obs
    attempts, sock = await probe.connect_all(dns.addresses, target.port, settings.timeout_s)
    obs = replace(obs, tcp=attempts)
    if sock is None:
        return await _compare(obs)
    # connect_all keeps the first address (in DNS order) that connected.
    chosen = next(a for a in attempts if a.outcome is TcpOutcome.CONNECTED)
    address, tcp_ms = chosen.address, chosen.ms
    ctx = probe.tls_context(settings) if target.secure else None
    link, tls = await probe.open_link(sock, target, settings, ctx)
    obs = replace(obs, tls=tls)
    if link is None:
        return await _compare(obs)
    request, key = probe.build_request(target, settings)
    answer, rest = await probe.read_answer(link, request, settings.timeout_s)
    # The single-handshake latency that --burst compares with: TCP, TLS and the answer.
    handshake_ms = tcp_ms + (tls.ms if tls is not None else 0.0) + answer.elapsed_ms
    obs = replace(obs, answer=answer, handshake_ms=handshake_ms)
    if answer.kind is not AnswerKind.RESPONSE or answer.status != 101:
        link.close()
        if answer.kind in (AnswerKind.EOF, AnswerKind.RESET) and not answer.received_bytes:
            # Dropped without a word: does it wait for a request at all?
            wait_s = probe.quiet_wait_s(answer.elapsed_ms, settings.timeout_s)
            obs = replace(obs, quiet=await probe.quiet_connect(address, target.port, wait_s))
        obs = await _burst(obs, address, ctx, progress)
        return await _compare(obs)
    upgrade = probe.upgrade_of(answer, key, settings)
    obs = replace(obs, upgrade=upgrade)
    if upgrade.accept_received != upgrade.accept_expected:
        link.close()
        return await _compare(obs)
    conn = session.Conn.opened(link, target, rest)
    try:
        pong = await session.ping(conn, settings.timeout_s)
        obs = replace(obs, ping=pong)
        if pong.ok and settings.echo is not None:
            obs = replace(obs, echo=await session.echo(conn, settings.echo, settings.timeout_s))
        if pong.ok and settings.idle_s is not None and not settings.idle_bisect:
            idle = await ticking(
                idle_mod.single(conn, settings.idle_s, settings.timeout_s),
                IDLE,
                settings.idle_s,
                progress,
            )
            obs = replace(obs, idle=idle)
        cut = obs.idle is not None and obs.idle.first_cut is not None
        if not conn.eof and not cut:  # after a cut there is nothing left to close
            obs = replace(obs, close=await session.close(conn, settings.timeout_s))
    finally:
        conn.abort()
    if pong.ok and settings.idle_s is not None and settings.idle_bisect:
        bisected = _bisect(target, settings, address, ctx)
        obs = replace(obs, idle=await ticking(bisected, IDLE, settings.idle_s, progress))
    obs = await _burst(obs, address, ctx, progress)
    return await _compare(obs)


async def _bisect(
    target: Target, settings: Settings, address: str, ctx: ssl.SSLContext | None
) -> IdleObs:
    async def open_conn() -> session.Conn | None:
        return (await session.handshake(address, target, settings, ctx)).conn

    assert settings.idle_s is not None
    return await idle_mod.bisect(
        open_conn, settings.idle_s, settings.idle_conns, settings.timeout_s
    )


async def _burst(
    obs: Observations, address: str, ctx: ssl.SSLContext | None, progress: Progress | None
) -> Observations:
    n = obs.settings.burst
    if not n:
        return obs

    async def open_one() -> session.Handshake:
        return await session.handshake(address, obs.target, obs.settings, ctx)

    single_ms = obs.handshake_ms or 0.0
    found = await burst_mod.burst(n, open_one, single_ms, obs.settings.timeout_s, progress)
    return replace(obs, burst=found)


async def _compare(obs: Observations) -> Observations:
    """--connect-to: the same request (same Host, path and headers) to another address."""
    other = obs.settings.connect_to
    if other is None:
        return obs
    host, port, secure = other
    label = f"{host}:{port}"
    settings = obs.settings
    dns = await probe.resolve(host, port, settings.timeout_s)
    if not dns.addresses:
        return replace(obs, compare=CompareObs(label, None, f"cannot resolve: {dns.error}"))
    attempt, sock = await probe.connect_tcp(dns.addresses[0], port, settings.timeout_s)
    if sock is None:
        return replace(obs, compare=CompareObs(label, None, f"TCP {attempt.outcome}"))
    ctx = probe.tls_context(settings) if secure else None
    link, tls = await probe.open_link(sock, obs.target, settings, ctx)
    if link is None:
        error = f"TLS {tls.failure}: {tls.error}" if tls is not None else "TLS failed"
        return replace(obs, compare=CompareObs(label, None, error))
    request, _ = probe.build_request(obs.target, settings)
    try:
        answer, _ = await probe.read_answer(link, request, settings.timeout_s)
    finally:
        link.close()
    return replace(obs, compare=CompareObs(label, answer))


def run_sync(target: Target, settings: Settings, progress: Progress | None = None) -> Observations:
    """Run the probe on a fresh event loop (uvloop when it is installed)."""
    return _run_loop(run(target, settings, progress))


def _run_loop(coro: Coroutine[Any, Any, Observations]) -> Observations:
    try:
        import uvloop  # imported here: only a probe that runs pays for it
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)

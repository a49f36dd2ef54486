"""The pool as the admission controller's adapter, on a real event loop without sockets:
its queue's timer fires, its decisions reach the waiters, re-entrant waiters are safe, a
drain turns the line away, and idle connections are kept up to the limit. The end of an
ejection: test_pool_health.py; a reload: test_pool_reload.py."""

from __future__ import annotations

import asyncio

from tests.gateway.fakes import RecordingWaiter as Waiter
from tests.gateway.fakes import pool_config, run_pool
from wsgate.gateway.pool import Backend, Pool
from wsgate.gateway.upstream import UpstreamConnection
from wsgate.policy.admission import QUEUED, Rejected


def test_a_queued_handshake_times_out_on_the_pools_timer() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> list[float]:
        now = pool.loop.time
        late: list[float] = []  # how long after its deadline each waiter heard
        joined: dict[str, float] = {}

        def waiter(name: str) -> Waiter:
            found = Waiter(name, heard)
            found.on_rejected = lambda: late.append(now() - joined[name] - 0.05)
            joined[name] = now()
            return found

        assert isinstance(pool.admit(Waiter("w0", heard), now()), Backend)
        assert pool.admit(waiter("w1"), now()) is QUEUED
        await asyncio.sleep(0.03)
        assert pool.admit(waiter("w2"), now()) is QUEUED  # the timer is set for w1
        await asyncio.sleep(0.2)
        assert heard == [("w1", "overloaded_queue_timeout"), ("w2", "overloaded_queue_timeout")]
        return late

    late, _ = run_pool(body, pool_config(queue_timeout_s=0.05))
    # Each at its own deadline (within the loop's clock resolution), not before.
    assert len(late) == 2 and all(-0.001 <= delay < 0.1 for delay in late)


def test_a_released_slot_reaches_the_head_and_a_refused_one_passes_on() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> int:
        now = pool.loop.time()
        backend = pool.admit(Waiter("w0", heard), now)
        assert isinstance(backend, Backend)
        gone, next_one = Waiter("gone", heard), Waiter("next", heard)
        assert pool.admit(gone, now) is QUEUED
        assert pool.admit(next_one, now) is QUEUED
        # The first client left while it waited: it gives the slot straight back, from
        # inside the delivery, as the adapter does.
        gone.on_admitted = lambda b: pool.handshake_done(b, 0.0, 0, "aborted")
        pool.handshake_done(backend, 0.01, 1, "ok")
        assert heard == [("gone", backend.name), ("next", backend.name)]
        assert len(pool.queue) == 0
        return backend.inflight

    inflight, _ = run_pool(body, pool_config())
    assert inflight == 1  # the one that stayed holds it


def test_a_drain_turns_the_line_away_and_queues_nobody() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> list[tuple[str, str]]:
        now = pool.loop.time()
        assert isinstance(pool.admit(Waiter("w0", heard), now), Backend)
        assert pool.admit(Waiter("w1", heard), now) is QUEUED
        assert pool.admit(Waiter("w2", heard), now) is QUEUED
        assert pool.turn_away_waiters() == 2
        late = pool.admit(Waiter("w3", heard), now)
        assert isinstance(late, Rejected) and late.cause == "shutting_down"
        await asyncio.sleep(0.1)  # past the queue timeout: nothing more is heard
        return heard

    heard, _ = run_pool(body, pool_config(queue_timeout_s=0.05))
    assert heard == [("w1", "shutting_down"), ("w2", "shutting_down")]


def test_idle_connections_are_kept_up_to_the_limit() -> None:
    async def body(pool: Pool, heard: list[tuple[str, str]]) -> None:
        backend = pool.backends[0]
        kept, extra, broken = (UpstreamConnection(backend) for _ in range(3))
        backend.open.update((kept, extra, broken))
        broken.closed = True
        pool.release(broken)
        pool.release(kept)
        pool.release(extra)
        assert backend.idle == [kept]
        assert extra.closed and extra not in backend.open
        assert pool.take_idle(backend) is kept
        assert pool.take_idle(backend) is None

    run_pool(body, pool_config(max_idle_per_backend=1))

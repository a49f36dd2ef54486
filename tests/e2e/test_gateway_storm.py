"""Handshake-storm protection end to end: admission, retries, health, slow start."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.backends import named_backend
from tests.support.gateway import gateway
from tests.support.procs import free_port


def handshake(url: str, timeout_s: float = 30.0) -> tuple[str, str | None, dict[str, str]]:
    """(outcome, backend name or None, response headers): outcome is "101", the status,
    or "broken" when an established connection was cut."""
    try:
        with connect(url, open_timeout=timeout_s, close_timeout=5) as ws:
            name = ws.recv(timeout=timeout_s)
            ws.send("ping")
            ws.recv(timeout=timeout_s)
            return "101", str(name), {}
    except InvalidStatus as exc:
        headers = {k.lower(): v for k, v in exc.response.headers.raw_items()}
        return str(exc.response.status_code), None, headers
    except ConnectionClosed:
        return "broken", None, {}


def test_killed_backend_never_surfaces_as_502_and_returns_with_slow_start(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    slow_start_s = 6.0
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port_a}", "127.0.0.1:{port_b}"]
balance = "round_robin"
slow_start_s = {slow_start_s}
[pools.app.health]
interval_s = 0.3
rise = 1
fall = 1
"""
    results: list[tuple[float, str, str | None]] = []
    stop = threading.Event()
    with named_backend(tmp_path, port_a, "A"), gateway(tmp_path, config=config) as gw:

        def client_loop() -> None:
            while not stop.is_set():
                outcome, name, _ = handshake(f"{gw.url}/")
                results.append((time.monotonic(), outcome, name))

        with ThreadPoolExecutor(4) as pool:
            for _ in range(4):
                pool.submit(client_loop)
            backend_b = named_backend(tmp_path, port_b, "B")
            backend_b.__enter__()
            time.sleep(2.0)
            killed_at = time.monotonic()
            backend_b.__exit__(None, None, None)  # stopped by PID (SIGTERM, then SIGKILL)
            time.sleep(2.0)
            with named_backend(tmp_path, port_b, "B"):
                restarted_at = time.monotonic()
                time.sleep(slow_start_s + 3.0)
                stop.set()
    statuses = {outcome for _, outcome, _ in results}
    assert "502" not in statuses and "504" not in statuses, statuses
    assert sum(1 for _, o, _ in results if o == "101") > 100
    after = [(t, name) for t, o, name in results if o == "101" and t > restarted_at]
    first_b = min(t for t, name in after if name == "B")

    def b_share(start: float, end: float) -> float:
        window = [name for t, name in after if first_b + start <= t < first_b + end]
        assert len(window) > 10, (start, end, len(window))
        return sum(1 for name in window if name == "B") / len(window)

    early, late = b_share(0.0, 1.5), b_share(slow_start_s, slow_start_s + 2.0)
    print(f"B share early={early:.2f} late={late:.2f} handshakes={len(results)}")
    assert early < late, (early, late)
    assert late > 0.35
    assert killed_at < restarted_at


def test_storm_beyond_capacity_gets_101_or_503_with_retry_after(tmp_path: Path) -> None:
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port}"]
max_handshakes_per_backend = 2
queue_size = 6
queue_timeout_s = 1.5
"""
    slow = ("--slow-handshake", "0.4", "--slots", "2")
    with (
        named_backend(tmp_path, port, "S", *slow),
        gateway(tmp_path, config=config) as gw,
        ThreadPoolExecutor(30) as pool,
    ):
        outcomes = list(pool.map(lambda _: handshake(f"{gw.url}/"), range(30)))
    statuses = [o for o, _, _ in outcomes]
    assert set(statuses) <= {"101", "503"}, statuses
    assert statuses.count("101") >= 2
    rejected = [h for o, _, h in outcomes if o == "503"]
    assert rejected, "30 handshakes at once against 2 slots and 6 places must overflow"
    causes = {h["x-wsgate-cause"] for h in rejected}
    assert causes <= {"overloaded_queue_full", "overloaded_queue_timeout"}
    assert "overloaded_queue_full" in causes
    # Whole seconds; 0 when the queue's measured rate puts the turn within the second.
    assert all(h["retry-after"].isdigit() for h in rejected)


def test_queue_full_retry_after_says_when_the_line_is_gone(tmp_path: Path) -> None:
    # One backend that completes about 4 handshakes/s (2 slots, 0.5 s each); the queue
    # holds 28. A first wave fills it; once the gateway has seen completions, a second wave
    # overflows it, and those clients are told to come back when the 28 ahead of them
    # should be through (about 7 s, jittered), not after the configured base of 1 s.
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port}"]
max_handshakes_per_backend = 2
queue_size = 28
queue_timeout_s = 120
retry_after_s = 1
"""
    slow = ("--slow-handshake", "0.5", "--slots", "2")
    with (
        named_backend(tmp_path, port, "S", *slow),
        gateway(tmp_path, config=config) as gw,
        ThreadPoolExecutor(60) as pool,
    ):
        url = f"{gw.url}/"
        first = [pool.submit(handshake, url, 120.0) for _ in range(30)]
        time.sleep(5.0)  # about 18 done: the gateway knows the rate; 12 still queued
        second = [pool.submit(handshake, url, 120.0) for _ in range(30)]
        outcomes = [f.result(timeout=300) for f in first + second]
    statuses = [o for o, _, _ in outcomes]
    assert set(statuses) <= {"101", "503"}, statuses
    rejected = [h for o, _, h in outcomes if o == "503"]
    assert rejected, "a second wave into a full queue must be turned away"
    assert {h["x-wsgate-cause"] for h in rejected} == {"overloaded_queue_full"}
    waits = sorted(int(h["retry-after"]) for h in rejected)
    # Uniform jitter of +-50 % around roughly 4 to 7 s: a base of 1 s would give 1 or 2.
    assert waits[len(waits) // 2] >= 3, waits


def test_handshakes_that_would_time_out_are_told_at_once(tmp_path: Path) -> None:
    # One backend that completes about 4 handshakes/s (4 slots, 1 s each) and a queue
    # timeout of 20 s: of 120 clients at once, about 80 can be served in time. Once the
    # gateway has measured the rate (5 s of saturation), it turns the others away then,
    # instead of letting them wait 20 s for the same 503.
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
access_log = false
[pools.app]
backends = ["127.0.0.1:{port}"]
max_handshakes_per_backend = 4
queue_timeout_s = 20
"""

    def timed(url: str) -> tuple[str, float, str]:
        began = time.monotonic()
        try:
            with connect(url, open_timeout=120, close_timeout=5) as ws:
                ws.recv(timeout=60)
                return "101", time.monotonic() - began, ""
        except InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
            cause = exc.response.headers.get("X-Wsgate-Cause", "")
            return f"{exc.response.status_code} {cause}", time.monotonic() - began, body

    slow = ("--slow-handshake", "1.0", "--slots", "4")
    with (
        named_backend(tmp_path, port, "S", *slow),
        gateway(tmp_path, config=config) as gw,
        ThreadPoolExecutor(120) as pool,
    ):
        outcomes = list(pool.map(lambda _: timed(f"{gw.url}/"), range(120)))
    statuses = [o for o, _, _ in outcomes]
    assert set(statuses) <= {"101", "503 overloaded_queue_timeout"}, statuses
    assert statuses.count("101") >= 40, statuses
    told = [(s, body) for o, s, body in outcomes if o != "101" and "completes" in body]
    assert len(told) >= 20, outcomes
    # Told about 6 s in (first completion after 1 s, then 5 s of measurement); the
    # timeout is 20 s.
    waits = sorted(s for s, _ in told)
    assert waits[len(waits) // 2] < 13.0, waits


def test_per_client_rate_limit_gives_429(tmp_path: Path) -> None:
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
client_handshake_rate = 0.05
client_handshake_burst = 2
[pools.app]
backends = ["127.0.0.1:{port}"]
"""
    with named_backend(tmp_path, port, "A"), gateway(tmp_path, config=config) as gw:
        outcomes = [handshake(f"{gw.url}/") for _ in range(3)]
    assert [o for o, _, _ in outcomes] == ["101", "101", "429"]
    headers = outcomes[2][2]
    assert headers["x-wsgate-cause"] == "client_rate_limited"
    assert int(headers["retry-after"]) >= 1


def test_backend_connection_cap_gives_at_capacity(tmp_path: Path) -> None:
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = ["127.0.0.1:{port}"]
max_connections_per_backend = 1
"""
    with named_backend(tmp_path, port, "A"), gateway(tmp_path, config=config) as gw:
        with connect(f"{gw.url}/") as first:
            assert first.recv(timeout=20) == "A"
            outcome, _, headers = handshake(f"{gw.url}/")
            assert outcome == "503"
            assert headers["x-wsgate-cause"] == "at_capacity"
        # The slot comes back once the gateway has seen the first connection end.
        deadline = time.monotonic() + 20
        while (outcome := handshake(f"{gw.url}/")[0]) != "101":
            assert outcome == "503" and time.monotonic() < deadline
            time.sleep(0.1)


def test_all_backends_dead_gives_503_no_healthy_upstream(tmp_path: Path) -> None:
    dead_a, dead_b = free_port(), free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = ["127.0.0.1:{dead_a}", "127.0.0.1:{dead_b}"]
[pools.app.health]
interval_s = 0.2
fall = 1
"""
    with gateway(tmp_path, config=config) as gw:
        deadline = time.monotonic() + 20
        outcome = ""
        headers: dict[str, str] = {}
        while time.monotonic() < deadline:
            outcome, _, headers = handshake(f"{gw.url}/")
            if outcome == "503":
                break
            assert outcome == "502"  # before the checks have marked both down
            time.sleep(0.2)
        assert outcome == "503"
        assert headers["x-wsgate-cause"] == "no_healthy_upstream"
        assert int(headers["retry-after"]) >= 1


def test_consistent_hash_keeps_a_room_on_one_backend(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    backends = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
[pools.app]
backends = [{backends}]
balance = "consistent_hash"
hash_key = "query:room"
"""
    with contextlib.ExitStack() as stack:
        for port, name in zip(ports, "XYZ", strict=True):
            stack.enter_context(named_backend(tmp_path, port, name))
        gw = stack.enter_context(gateway(tmp_path, config=config))
        homes = {}
        for room in range(12):
            seen = {handshake(f"{gw.url}/?room={room}")[1] for _ in range(3)}
            assert len(seen) == 1, seen
            homes[room] = seen.pop()
        assert len(set(homes.values())) >= 2  # rooms spread over the backends


def test_trusted_forwarded_for_names_the_client_for_its_limit(tmp_path: Path) -> None:
    port = free_port()
    config = f"""
[server]
listen = ["127.0.0.1:{{port}}"]
client_max_connections = 1
trusted_proxies = ["127.0.0.0/8"]
[pools.app]
backends = ["127.0.0.1:{port}"]
"""

    def from_client(url: str, ip: str) -> str:
        try:
            with connect(url, additional_headers={"X-Forwarded-For": ip}) as ws:
                return str(ws.recv(timeout=20))
        except InvalidStatus as exc:
            return str(exc.response.status_code)

    with named_backend(tmp_path, port, "A"), gateway(tmp_path, config=config) as gw:
        headers = {"X-Forwarded-For": "198.51.100.1"}
        with connect(f"{gw.url}/", additional_headers=headers) as held:
            assert held.recv(timeout=20) == "A"
            assert from_client(f"{gw.url}/", "198.51.100.1") == "429"  # same client, over 1
            assert from_client(f"{gw.url}/", "198.51.100.2") == "A"  # another client
        # Its one comes back once the gateway has seen the first connection end.
        deadline = time.monotonic() + 20
        while (answer := from_client(f"{gw.url}/", "198.51.100.1")) != "A":
            assert answer == "429" and time.monotonic() < deadline
            time.sleep(0.1)

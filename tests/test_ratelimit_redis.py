"""`RedisRateLimit`: one limit in a real Redis (the `redis_url` fixture) shared by
limiters and by processes. asyncio only: redis-py's client is asyncio's (on trio the
limiter says so)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from agentkit import RateLimiterError, RequestOverRateLimitError, UserError
from agentkit._client.buckets import Ticket
from agentkit.ratelimit import RedisBucket, RedisRateLimit
from tests.ratelimit_server import limited_server
from tests.test_ratelimit_load import WINDOW, refused_after_first_window, steady_rate

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisRateLimit, RedisRateLimit]]:
    """Two limiters, as two processes would have, on one limit."""
    name = f"test-{uuid.uuid4().hex}"
    first = RedisRateLimit(redis_url, name=name, rpm=5, tpm=1_000, window=10.0)
    second = RedisRateLimit(redis_url, name=name, rpm=5, tpm=1_000, window=10.0)
    yield first, second
    await first.reset()
    await first.aclose()
    await second.aclose()


async def test_two_limiters_share_one_bucket(
    pair: tuple[RedisRateLimit, RedisRateLimit],
) -> None:
    first, second = pair
    granted: list[str] = []

    async def take(limit: RedisRateLimit, label: str) -> None:
        await limit.acquire(10)
        granted.append(label)

    with anyio.move_on_after(0.5):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(take, first, f"a{i}")
                tg.start_soon(take, second, f"b{i}")
    # Five requests per ten seconds, between both: the other three are still waiting.
    assert len(granted) == 5


async def test_tokens_are_shared_and_given_back(
    pair: tuple[RedisRateLimit, RedisRateLimit],
) -> None:
    first, second = pair
    ticket = await first.acquire(900)
    with anyio.move_on_after(0.3) as scope:
        await second.acquire(500)
    assert scope.cancelled_caught  # 100 tokens left; 500 need four more seconds
    # The answer used 100 of the 900: 800 come back, for every process.
    await first.settle(ticket, 100, {})
    with anyio.fail_after(1):
        await second.acquire(500)


async def test_a_429_in_one_process_pauses_the_others(
    pair: tuple[RedisRateLimit, RedisRateLimit],
) -> None:
    first, second = pair
    ticket = await first.acquire(10)
    await first.rejected(ticket, {"retry-after-ms": "400"})
    started = time.monotonic()
    waited = (await second.acquire(10)).waited
    assert time.monotonic() - started >= 0.35 and waited >= 0.35


async def test_a_request_over_the_learned_token_limit_fails_at_once(redis_url: str) -> None:
    limit = RedisRateLimit(redis_url, name=f"test-{uuid.uuid4().hex}", window=10.0)
    ticket = await limit.acquire(10)  # the first request learns the limits
    await limit.settle(ticket, 10, {"x-ratelimit-limit-tokens": "500"})
    with pytest.raises(UserError, match=r"1,000 tokens.*500 tokens per window"):
        await limit.acquire(1_000)
    await limit.reset()
    await limit.aclose()


def test_on_trio_the_limiter_says_it_needs_asyncio(redis_url: str) -> None:
    async def main() -> None:
        limit = RedisRateLimit(redis_url, name="trio", rpm=5)
        await limit.acquire(1)

    with pytest.raises(UserError, match="asyncio only"):
        anyio.run(main, backend="trio")


async def test_redis_down_is_a_clear_error_without_the_password() -> None:
    from tests.servers import _free_port

    url = f"redis://:hunter2-secret-pw@127.0.0.1:{_free_port()}/0"
    limit = RedisRateLimit(url, name="down", rpm=5)
    with pytest.raises(RateLimiterError, match=r"'down'.*127\.0\.0\.1.*not sent") as caught:
        await limit.acquire(1)
    await limit.aclose()
    assert "hunter2" not in str(caught.value) and caught.value.limit_name == "down"
    assert caught.value.__cause__ is None


def test_a_bad_url_is_a_user_error_without_its_password() -> None:
    with pytest.raises(UserError, match="not a Redis URL") as caught:
        RedisRateLimit("http://:hunter2-secret-pw@127.0.0.1:1/0", name="x", rpm=5)
    assert "hunter2" not in str(caught.value)


async def test_cancelled_waiter_gives_nothing_away(
    pair: tuple[RedisRateLimit, RedisRateLimit],
) -> None:
    first, _ = pair
    for _ in range(5):
        await first.acquire(1)
    with anyio.move_on_after(0.2):
        await first.acquire(1)  # cancelled while waiting
    assert first.waiting == 0
    # Two seconds refill one request: the next one gets it, nothing was lost or kept.
    with anyio.fail_after(3):
        assert isinstance(await first.acquire(1), Ticket)


@pytest.mark.slow
async def test_four_processes_share_one_limit_through_redis(redis_url: str) -> None:
    name = f"load-{uuid.uuid4().hex}"
    async with limited_server(rpm=60, tpm=20_000, window=WINDOW) as server:
        command = [sys.executable, "-m", "tests.ratelimit_load"]
        args = [server.base_url, redis_url, name, "50", str(WINDOW)]
        results: list[dict[str, float]] = []

        async def worker() -> None:
            done = await anyio.run_process(
                [*command, *args], cwd=ROOT, check=False, stderr=subprocess.PIPE
            )
            assert done.returncode == 0, done.stderr.decode()
            results.append(json.loads(done.stdout))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(worker)
    assert sum(r["completed"] for r in results) == 200
    assert sum(r["failed_429"] for r in results) == 0
    # The waits are in each process's run events.
    assert sum(r["waited"] for r in results) > 200 and max(r["max_wait"] for r in results) > 1
    assert len(server.accepted) == 400
    assert refused_after_first_window(server) == 0
    assert 0.9 * 60 <= steady_rate(server) <= 60 * 1.02


async def test_a_redis_that_does_not_answer_fails_the_request_in_time() -> None:
    # A server that takes the connection and never answers: without a deadline, the
    # shielded look at the buckets would wait forever, past any cancellation.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)

    async def swallow(stream: SocketStream) -> None:
        async with stream:
            async for _ in stream:
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, swallow)
        limit = RedisRateLimit(f"redis://127.0.0.1:{port}/0", name="mute", rpm=5, timeout=0.3)
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(RateLimiterError) as caught:
            await limit.acquire(1)
        assert "no answer within 0.3 s" in str(caught.value)
        assert "the request was not sent" in str(caught.value)
        assert time.monotonic() - started < 2
        await limit.aclose()
        tg.cancel_scope.cancel()


def test_a_bad_timeout_is_refused() -> None:
    with pytest.raises(UserError, match="timeout"):
        RedisRateLimit("redis://127.0.0.1:1/0", name="x", rpm=5, timeout=0)


async def test_a_large_request_is_not_starved_by_small_ones_of_another_process(
    redis_url: str,
) -> None:
    name = f"test-{uuid.uuid4().hex}"
    big = RedisRateLimit(redis_url, name=name, tpm=1_000, window=2.0)  # 500 tokens a second
    small = RedisRateLimit(redis_url, name=name, tpm=1_000, window=2.0)
    await small.acquire(1_000)
    got_big: list[float] = []
    small_times: list[float] = []
    started = time.monotonic()

    async def stream_of_small() -> None:
        # Another process's steady stream of small requests, taking whatever refills.
        while time.monotonic() - started < 4.0:
            await small.acquire(100)
            small_times.append(time.monotonic() - started)

    async def large() -> None:
        await big.acquire(800)
        got_big.append(time.monotonic() - started)

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stream_of_small)
                await anyio.sleep(0.05)
                tg.start_soon(large)
    finally:
        await big.reset()
        await big.aclose()
        await small.aclose()
    # 800 tokens refill in 1.6 s, after the 100 of the small request ahead of it: 1.8 s.
    assert got_big and 1.6 <= got_big[0] < 2.3, got_big
    # And the small requests went on after it, behind it.
    assert any(t > got_big[0] for t in small_times), small_times


async def test_a_cancelled_waiter_leaves_its_place_in_line(redis_url: str) -> None:
    name = f"test-{uuid.uuid4().hex}"
    first = RedisRateLimit(redis_url, name=name, tpm=1_000, window=2.0)  # 500 tokens a second
    second = RedisRateLimit(redis_url, name=name, tpm=1_000, window=2.0)
    try:
        await second.acquire(1_000)
        with anyio.move_on_after(0.2):
            await first.acquire(800)  # takes a place in line, then gives up
        # 300 tokens are there 0.6 s after the start, not after the 800 as well (2.2 s).
        with anyio.fail_after(5):
            waited = (await second.acquire(300)).waited
        assert waited < 0.8, waited
    finally:
        await first.reset()
        await first.aclose()
        await second.aclose()


async def test_the_place_of_a_process_that_does_not_come_back_lapses(redis_url: str) -> None:
    name = f"test-{uuid.uuid4().hex}"
    limit = RedisRateLimit(redis_url, name=name, tpm=1_000, window=2.0)  # 500 tokens a second
    bucket = limit._bucket
    assert isinstance(bucket, RedisBucket)
    try:
        await limit.acquire(1_000)
        # A process takes a place for 100 tokens (0.2 s away), then dies.
        assert (await bucket.take(100, limit._caps, "ghost:0"))[0] > 0
        # Its place lapses a second after its time: then 600 of the 650 tokens refilled
        # are free for the others, without the ghost's 100 before them.
        await anyio.sleep(1.3)
        assert (await bucket.take(600, limit._caps, "other:0"))[0] == 0
    finally:
        await limit.reset()
        await limit.aclose()


async def test_a_request_over_a_limit_another_process_learned_fails_at_once(
    redis_url: str,
) -> None:
    name = f"test-{uuid.uuid4().hex}"
    learned = RedisRateLimit(redis_url, name=name, window=10.0)
    newcomer = RedisRateLimit(redis_url, name=name, window=10.0)  # knows no limit yet
    try:
        ticket = await learned.acquire(10)
        await learned.settle(ticket, 10, {"x-ratelimit-limit-tokens": "500"})
        with anyio.fail_after(2), pytest.raises(RequestOverRateLimitError, match="500 tokens"):
            await newcomer.acquire(1_000)
        # Its failed first request handed learning on: the next one goes.
        with anyio.fail_after(2):
            await newcomer.acquire(10)
    finally:
        await learned.reset()
        await learned.aclose()
        await newcomer.aclose()


async def test_a_given_limit_above_the_providers_is_lowered_in_redis_too(
    redis_url: str,
) -> None:
    limit = RedisRateLimit(
        redis_url, name=f"test-{uuid.uuid4().hex}", rpm=1_000, tpm=1_000_000, window=60.0
    )
    try:
        ticket = await limit.acquire(100)
        headers = {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "9",
            "x-ratelimit-limit-tokens": "10000",
            "x-ratelimit-remaining-tokens": "9900",
        }
        await limit.settle(ticket, 100, headers)
        with anyio.fail_after(2):
            for _ in range(9):
                await limit.acquire(100)
        bucket = limit._bucket
        assert isinstance(bucket, RedisBucket)
        wait = (await bucket.take(100, limit._caps, "probe:0"))[0]
        assert 0 < wait <= 6.5, wait
    finally:
        await limit.reset()
        await limit.aclose()

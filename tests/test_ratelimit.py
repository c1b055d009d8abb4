"""`RateLimit` in one process, on both anyio backends: first come first served,
cancellable without losing capacity, no polling, a 429 pauses everyone, corrections by
usage and headers, estimates, the error for a request that can never fit, and the wait
in the run's events."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from agentkit import (
    Agent,
    ChatClient,
    ModelRequestEnd,
    ModelSettings,
    RateLimit,
    RateLimiterError,
    RateLimitError,
    RequestOverRateLimitError,
    UserError,
)
from agentkit._client.buckets import LocalBucket
from agentkit._client.ratelimit import parse_duration
from tests.ratelimit_load import get_current_time
from tests.ratelimit_server import limited_server

pytestmark = pytest.mark.anyio


class CountingBucket(LocalBucket):
    """Counts the looks at the buckets, to show that waiting does not poll."""

    __slots__ = ("looks",)

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    async def take(self, tokens: int, caps: Any, owner: str = "") -> Any:
        self.looks += 1
        return await super().take(tokens, caps, owner)


class Counted(RateLimit):
    def _make_bucket(self) -> CountingBucket:
        return CountingBucket()


async def test_waiters_are_served_first_come_first_served() -> None:
    # 20 requests per second: one every 50 ms once the first 20 are gone.
    limit = RateLimit(rpm=20, window=1.0)
    for _ in range(20):
        await limit.acquire(1)
    order: list[int] = []

    async def take(i: int) -> None:
        await limit.acquire(1)
        order.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(take, i)
                await anyio.sleep(0.001)  # arrive in this order
    assert order == list(range(8))


async def test_a_big_request_is_not_overtaken_by_small_ones() -> None:
    limit = RateLimit(tpm=1_000, window=1.0)
    await limit.acquire(1_000)
    order: list[str] = []

    async def take(label: str, tokens: int) -> None:
        await limit.acquire(tokens)
        order.append(label)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take, "big", 800)
            await anyio.sleep(0.01)
            for i in range(3):
                tg.start_soon(take, f"small{i}", 10)
                await anyio.sleep(0.001)  # arrive in this order (trio starts tasks in any)
    assert order == ["big", "small0", "small1", "small2"]


async def test_cancelling_waiters_loses_no_capacity_and_blocks_no_one() -> None:
    limit = RateLimit(rpm=10, window=1.0)  # one every 100 ms after the first 10
    for _ in range(10):
        await limit.acquire(1)
    granted: list[int] = []

    async def take(i: int, scope: anyio.CancelScope) -> None:
        with scope:
            await limit.acquire(1)
            granted.append(i)

    scopes = [anyio.CancelScope() for _ in range(5)]
    started = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i, scope in enumerate(scopes):
                tg.start_soon(take, i, scope)
                await anyio.sleep(0.001)
            scopes[0].cancel()  # the head of the queue
            scopes[2].cancel()  # one in the middle
    elapsed = time.monotonic() - started
    assert granted == [1, 3, 4]
    assert limit.waiting == 0
    # Three requests at 100 ms each: the cancelled ones took nothing.
    assert elapsed < 0.45


async def test_waiting_does_not_poll() -> None:
    limit = Counted(rpm=4, window=1.0)  # one every 250 ms after the first 4
    for _ in range(4):
        await limit.acquire(1)
    bucket = limit._bucket
    assert isinstance(bucket, CountingBucket)
    bucket.looks = 0
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(limit.acquire, 1)
    # One look to find it must wait, one when its time has come, per request (and a
    # spare for timer rounding); waiters behind the head sleep without looking.
    assert bucket.looks <= 4 * 3


async def test_a_429_pauses_every_waiting_request_until_the_reset() -> None:
    limit = RateLimit(rpm=1_000, window=1.0)
    ticket = await limit.acquire(1)
    waited: list[float] = []

    async def take() -> None:
        waited.append((await limit.acquire(1)).waited)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await limit.rejected(ticket, {"x-ratelimit-reset-requests": "300ms"})
            for _ in range(5):
                tg.start_soon(take)
    assert len(waited) == 5 and min(waited) >= 0.28


async def test_a_429_pauses_the_requests_already_waiting() -> None:
    limit = RateLimit(rpm=10, window=1.0)  # one every 100 ms after the first 10
    tickets = [await limit.acquire(1) for _ in range(10)]
    done: list[float] = []
    started = time.monotonic()

    async def take() -> None:
        await limit.acquire(1)
        done.append(time.monotonic() - started)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(take)
            await anyio.sleep(0.03)  # all three wait; the first is due at 100 ms
            await limit.rejected(tickets[0], {"retry-after-ms": "500"})
    # None went at its own time: all waited out the provider's 500 ms.
    assert len(done) == 3 and min(done) >= 0.5, done


async def test_usage_given_back_wakes_the_head_at_once() -> None:
    limit = RateLimit(tpm=1_000, window=60.0)
    ticket = await limit.acquire(900)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(limit.acquire, 500)  # would take 24 s of refill
        await anyio.sleep(0.05)
        await limit.settle(ticket, 50, {})  # the answer used 50 of the 900
    assert time.monotonic() - started < 1.0


async def test_headers_lower_the_levels_for_use_seen_elsewhere() -> None:
    limit = RateLimit(rpm=10, window=60.0)
    ticket = await limit.acquire(1)  # 9 left here
    # The provider says 2 remain (rounded down: up to 3): someone else used 6 or 7.
    await limit.settle(ticket, None, {"x-ratelimit-remaining-requests": "2"})
    for _ in range(3):
        await limit.acquire(1)
    with anyio.move_on_after(0.2) as scope:
        await limit.acquire(1)
    assert scope.cancelled_caught


async def test_a_given_limit_above_the_providers_is_lowered_without_a_debt() -> None:
    limit = RateLimit(rpm=1_000, tpm=1_000_000, window=60.0)
    ticket = await limit.acquire(100)  # levels 999 and 999,900 here
    # The provider's limits are lower, and its levels are what it says remains.
    await limit.settle(
        ticket,
        100,
        {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "9",
            "x-ratelimit-limit-tokens": "10000",
            "x-ratelimit-remaining-tokens": "9900",
        },
    )
    assert repr(limit) == "RateLimit(rpm=10, tpm=10000, window=60)"
    # Nine more go at once (the shortfall counts from the new limit, not the old one),
    # and the tenth waits about a refill of one request (6 s), not hours.
    with anyio.fail_after(1):
        for _ in range(9):
            await limit.acquire(100)
    bucket = limit._bucket
    assert isinstance(bucket, LocalBucket)
    wait = (await bucket.take(100, limit._caps))[0]
    assert 0 < wait <= 6.5, wait


async def test_limits_are_learned_from_the_first_answer() -> None:
    limit = RateLimit(window=60.0)
    first = await limit.acquire(10)
    # The others wait for the first answer, which tells the limits.
    with anyio.move_on_after(0.1) as scope:
        await limit.acquire(10)
    assert scope.cancelled_caught
    await limit.settle(
        first,
        10,
        {
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-limit-tokens": "100",
            "x-ratelimit-remaining-requests": "2",
        },
    )
    assert repr(limit) == "RateLimit(rpm=3, tpm=100, window=60)"
    await limit.acquire(10)
    await limit.acquire(10)
    with anyio.move_on_after(0.1) as scope:
        await limit.acquire(10)
    assert scope.cancelled_caught
    with pytest.raises(RequestOverRateLimitError, match="101 tokens"):
        await limit.acquire(101)


async def test_a_request_over_the_token_limit_fails_at_once() -> None:
    async with limited_server() as server:
        client = ChatClient(
            base_url=server.base_url, api_key="sk-test", rate_limit=RateLimit(tpm=500)
        )
        with anyio.fail_after(1), pytest.raises(RequestOverRateLimitError) as caught:
            await client.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                max_completion_tokens=1_000,
            )
        await client.aclose()
    assert caught.value.resource == "tokens" and caught.value.limit == 500
    assert "max_completion_tokens" in str(caught.value)
    assert not server.accepted and not server.rejected


def test_estimates_read_the_request_body() -> None:
    limit = RateLimit(completion_tokens=100)
    body = b'{"model":"m","messages":[{"role":"user","content":"\\"max_tokens\\":9"}]}'
    assert limit.estimate(body) == -(-len(body) // 4) + 100
    with_max = b'{"model":"m","messages":[],"max_completion_tokens":50,"n":3}'
    assert limit.estimate(with_max) == -(-len(with_max) // 4) + 150
    # A tool parameter named "n" after the field is not the field.
    tool = b'{"n":2,"tools":[{"function":{"parameters":{"properties":{"n":{"type":"integer"}}}}}]}'
    assert limit.estimate(tool) == -(-len(tool) // 4) + 200


def test_reset_durations_as_providers_write_them() -> None:
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("20ms") == 0.02
    assert parse_duration("1h2m3s") == 3723.0
    assert parse_duration("2") == 2.0
    assert parse_duration("soon") is None
    assert parse_duration(None) is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(UserError, match="rpm"):
        RateLimit(rpm=0)
    with pytest.raises(UserError, match="window"):
        RateLimit(rpm=1, window=-1)
    with pytest.raises(UserError, match="learn"):
        RateLimit(learn=False)
    with pytest.raises(UserError, match="rate_limit must be a RateLimit"):
        ChatClient(base_url="http://127.0.0.1:1/v1", rate_limit=60)  # type: ignore[arg-type]


async def test_the_wait_is_in_the_run_events() -> None:
    events: list[ModelRequestEnd] = []
    async with limited_server() as server:
        limit = RateLimit(rpm=2, window=1.0)  # a request every 500 ms after two
        async with ChatClient(
            base_url=server.base_url, api_key="sk-test", rate_limit=limit
        ) as client:
            agent = Agent(
                "m",
                client=client,
                tools=[get_current_time],
                settings=ModelSettings(max_completion_tokens=64),
                event_handler=lambda e: (
                    events.append(e) if isinstance(e, ModelRequestEnd) else None
                ),
            )
            await limit.acquire(1)
            await limit.acquire(1)
            with anyio.fail_after(5):
                await agent.run("What time is it in Tokyo?")
    waits = [e.rate_limit_wait for e in events]
    # The first waited for a request to refill (500 ms); the second for the next one,
    # less the time the first turn took.
    assert len(waits) == 2 and 0.3 <= waits[0] <= 0.8 and 0.05 <= waits[1] <= 0.8
    assert all(e.latency >= e.rate_limit_wait for e in events)


async def test_a_client_without_a_limit_has_none() -> None:
    client = ChatClient(base_url="http://127.0.0.1:1/v1")
    assert client._limiter is None
    await client.aclose()


@pytest.mark.parametrize("http", ["httpx", "httpx2"])
async def test_a_streamed_answer_gives_back_what_its_usage_did_not_use(http: str) -> None:
    from tests.fault_server import fault_server

    limit = RateLimit(tpm=2_000, window=60.0)  # 33 tokens a second come back by refill
    async with fault_server() as server:
        async with ChatClient(
            base_url=server.base_url,
            api_key="sk-test",
            rate_limit=limit,
            http=http,  # type: ignore[arg-type]
        ) as client:
            async with client.stream(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                max_completion_tokens=1_500,
                stream_options={"include_usage": True},
            ) as chunks:
                async for _ in chunks:
                    pass
            # The stream used 15 tokens, not ~1,520: a second request of 1,500 fits now.
            with anyio.fail_after(1):
                await limit.acquire(1_500)


async def test_a_first_request_that_gets_no_answer_hands_learning_to_the_next() -> None:
    limit = RateLimit(window=60.0)
    first = await limit.acquire(10)
    assert first.probe
    second: list[Any] = []

    async def take() -> None:
        second.append(await limit.acquire(10))

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.sleep(0.05)
            assert not second  # waiting for the first answer
            limit._end_probe(learned=False)  # the first request failed without one
    assert second[0].probe  # the next request learns the limits instead


async def test_a_waiter_over_a_limit_learned_meanwhile_fails_at_once() -> None:
    limit = RateLimit(tpm=1_000, window=60.0)
    ticket = await limit.acquire(900)
    async with anyio.create_task_group() as tg:

        async def take() -> None:
            with pytest.raises(RequestOverRateLimitError, match="800 tokens"):
                await limit.acquire(800)

        tg.start_soon(take)
        await anyio.sleep(0.05)
        # The provider's limit is lower than the one given; the answer used 100.
        await limit.settle(ticket, 100, {"x-ratelimit-limit-tokens": "500"})
    assert limit.waiting == 0


class FailingStore(LocalBucket):
    """Buckets whose store fails on every change after the take (Redis gone mid-request)."""

    async def adjust(self, change: Any, caps: Any) -> None:
        raise RateLimiterError("the store is gone", limit_name="flaky")

    async def pause(self, seconds: float, caps: Any) -> None:
        raise RateLimiterError("the store is gone", limit_name="flaky")


class FailingAfterTake(RateLimit):
    def _make_bucket(self) -> FailingStore:
        return FailingStore()


async def test_a_store_failing_after_the_answer_does_not_fail_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = FailingAfterTake(rpm=60, tpm=20_000, window=60.0)
    async with limited_server(rpm=1) as server:
        async with ChatClient(
            base_url=server.base_url, api_key="sk-test", rate_limit=limit, max_retries=0
        ) as client:
            with anyio.fail_after(5):
                # The answer came: the correction that cannot be stored is only logged.
                answer = await client.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
                assert answer.usage is not None
                # A 429: the pause that cannot be stored is logged; the 429 is raised.
                with pytest.raises(RateLimitError):
                    await client.create(model="m", messages=[{"role": "user", "content": "hi"}])
    warnings = [r for r in caplog.records if "correction was not stored" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelname == "WARNING" for r in warnings)
    assert "the store is gone" in warnings[0].getMessage()


async def test_the_wait_of_a_streamed_run_is_in_its_events() -> None:
    from tests.fault_server import fault_server

    limit = RateLimit(rpm=2, window=1.0)  # a request every 500 ms after two
    async with fault_server() as server:
        async with ChatClient(
            base_url=server.base_url, api_key="sk-test", rate_limit=limit
        ) as client:
            agent = Agent("m", client=client, tools=[get_current_time])
            await limit.acquire(1)
            await limit.acquire(1)
            ends: list[ModelRequestEnd] = []
            with anyio.fail_after(5):
                async with agent.run_stream("What time is it in Tokyo?") as stream:
                    async for event in stream:
                        if isinstance(event, ModelRequestEnd):
                            ends.append(event)
    assert len(ends) == 2 and 0.3 <= ends[0].rate_limit_wait <= 0.8
    assert all(e.latency >= e.rate_limit_wait for e in ends)


def test_a_run_without_a_limit_does_not_load_the_limiter() -> None:
    import subprocess
    import sys

    program = """
import sys
import httpx
from agentkit import Agent, ChatClient

def provider(request):
    return httpx.Response(200, json={
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "Noon.", "refusal": None}}],
    })

client = ChatClient(base_url="https://api.example/v1",
                    http_client=httpx.AsyncClient(transport=httpx.MockTransport(provider)))
events = []
agent = Agent("m", client=client, event_handler=events.append)
assert agent.run_sync("Time?").output == "Noon." and events
loaded = sorted(m for m in sys.modules if m.startswith(("agentkit._client.ratelimit",
    "agentkit._client.limited", "agentkit._client.buckets", "agentkit.ratelimit", "redis")))
print(loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


async def test_an_observer_around_the_run_sees_the_waits_too() -> None:
    # A tracer wrapping each model step sets its own list: the client adds to it, and
    # the run's events still report each request's own wait.
    from agentkit._client.waits import rate_limit_waits

    events: list[ModelRequestEnd] = []
    outer: list[float] = [9.0]  # an earlier step's wait, not this run's
    async with limited_server() as server:
        limit = RateLimit(rpm=2, window=1.0)
        async with ChatClient(
            base_url=server.base_url, api_key="sk-test", rate_limit=limit
        ) as client:
            agent = Agent(
                "m",
                client=client,
                tools=[get_current_time],
                settings=ModelSettings(max_completion_tokens=64),
                event_handler=lambda e: (
                    events.append(e) if isinstance(e, ModelRequestEnd) else None
                ),
            )
            await limit.acquire(1)
            await limit.acquire(1)
            token = rate_limit_waits.set(outer)
            try:
                with anyio.fail_after(5):
                    await agent.run("What time is it in Tokyo?")
            finally:
                rate_limit_waits.reset(token)
    assert len(events) == 2 and len(outer) == 3
    assert [e.rate_limit_wait for e in events] == outer[1:]
    assert events[0].rate_limit_wait >= 0.3

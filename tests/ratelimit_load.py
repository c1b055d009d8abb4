"""Many clock runs at once through one client, for the rate-limit load tests; also the
worker process of the multi-process test (`python -m tests.ratelimit_load ...`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from agentkit import Agent, ChatClient, ModelRequestEnd, ModelSettings, RateLimit, RateLimitError


def get_current_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name, such as "Asia/Tokyo".
    """
    return f"12:00 in {timezone}"


async def clock_load(
    base_url: str,
    runs: int,
    rate_limit: RateLimit | None,
    *,
    max_retries: int = 2,
    instructions: str = "You are a world clock.",
) -> dict[str, Any]:
    """`runs` clock runs at once; counts of completed and failed runs, and waits."""
    waits: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, ModelRequestEnd):
            waits.append(event.rate_limit_wait)

    completed = failed_429 = 0
    started = time.monotonic()
    async with ChatClient(
        base_url=base_url, api_key="sk-test", rate_limit=rate_limit, max_retries=max_retries
    ) as client:
        agent = Agent(
            "gpt-4o-mini",
            client=client,
            instructions=instructions,
            tools=[get_current_time],
            settings=ModelSettings(max_completion_tokens=64),
            event_handler=on_event,
        )

        async def one(i: int) -> None:
            nonlocal completed, failed_429
            try:
                await agent.run(f"What time is it in zone {i}?")
            except RateLimitError:
                failed_429 += 1
            else:
                completed += 1

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for i in range(runs):
                    tg.start_soon(one, i)
    return {
        "completed": completed,
        "failed_429": failed_429,
        "seconds": time.monotonic() - started,
        "max_wait": max(waits, default=0.0),
        "waited": sum(1 for w in waits if w > 0),
    }


async def _worker(base_url: str, redis_url: str, name: str, runs: int, window: float) -> None:
    from agentkit.ratelimit import RedisRateLimit

    limit = RedisRateLimit(redis_url, name=name, rpm=60, tpm=20_000, window=window)
    try:
        stats = await clock_load(base_url, runs, limit)
    finally:
        await limit.aclose()
    sys.stdout.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    url, redis, key, count, span = sys.argv[1:6]
    anyio.run(_worker, url, redis, key, int(count), float(span))

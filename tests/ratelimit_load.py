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


async def _one_worker(command: list[str], results: list[dict[str, Any]]) -> None:
    import subprocess

    done = await anyio.run_process(command, stderr=subprocess.PIPE)
    results.append(json.loads(done.stdout))


async def _compare(rounds: int, window: float = 2.0) -> None:
    """The table in docs/rate-limits.md: each mode `rounds` times, one JSON line each,
    with the limits per `window` seconds (the load tests' scaled-down minute)."""
    import uuid

    from tests.ratelimit_server import LimitedServer, limited_server
    from tests.servers import redis_server

    def report(mode: str, server: LimitedServer, stats: dict[str, Any]) -> None:
        first = server.accepted[0] + window
        after = [t for t in server.accepted if t >= first]
        line = {
            "mode": mode,
            "completed": stats["completed"],
            "failed_429": stats["failed_429"],
            "seconds": round(stats["seconds"], 2),
            "429_total": len(server.rejected),
            "429_after_first_window": sum(1 for t in server.rejected if t >= first),
            "requests_per_window_after_first": round(len(after) / (after[-1] - first) * window, 1),
        }
        sys.stdout.write(json.dumps(line) + "\n")

    for mode in ("configured", "learned", "none"):
        for _ in range(rounds):
            limit = {
                "configured": RateLimit(rpm=60, tpm=20_000, window=window),
                "learned": RateLimit(window=window),
                "none": None,
            }[mode]
            async with limited_server(window=window) as server:
                stats = await clock_load(server.base_url, 200, limit)
            report(mode, server, stats)
    with redis_server() as redis_url:
        for _ in range(rounds):
            results: list[dict[str, Any]] = []
            async with limited_server(window=window) as server:
                command = [sys.executable, "-m", "tests.ratelimit_load", server.base_url]
                args = [redis_url, uuid.uuid4().hex, "50", str(window)]

                async with anyio.create_task_group() as tg:
                    for _ in range(4):
                        tg.start_soon(_one_worker, [*command, *args], results)
            totals = {
                "completed": sum(r["completed"] for r in results),
                "failed_429": sum(r["failed_429"] for r in results),
                "seconds": max(r["seconds"] for r in results),
            }
            report("redis, 4 processes", server, totals)


if __name__ == "__main__":
    if sys.argv[1] == "compare":  # python -m tests.ratelimit_load compare [rounds]
        anyio.run(_compare, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    else:
        url, redis, key, count, span = sys.argv[1:6]
        anyio.run(_worker, url, redis, key, int(count), float(span))

"""`python -m benchmarks.bench_threads`: the CPU cost of handing a sync call to a thread.

Each way runs the same tiny sync function (what the clock tool does) from asyncio,
two calls at a time as in the scenario's turn, `--turns` times per batch. A sample is
a batch's CPU time (`time.process_time`, worker threads included) per call; the ways
take turns, batch by batch, for `--rounds` rounds, and the figure is the median.

- inline: the function called on the event loop (no thread: the lower bound).
- asyncio.to_thread: the default executor, as the fair floor does.
- dedicated executor: `loop.run_in_executor` on a `ThreadPoolExecutor` of its own.
- anyio.to_thread.run_sync: anyio's worker threads, as agentkit used to hand off.
- agentkit run_in_thread: agentkit's hand-off now (limiter token, stuck-call
  accounting, its own worker threads).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import functools
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import anyio.to_thread

from agentkit._tools.threads import StuckCount, run_in_thread


def clock(timezone: str) -> str:
    return dt.datetime.now(ZoneInfo(timezone)).isoformat(timespec="minutes")


Way = Callable[[Callable[[], str]], Awaitable[str]]


def _ways() -> dict[str, Way]:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=40)
    own = StuckCount()

    async def inline(fn: Callable[[], str]) -> str:
        return fn()

    async def to_thread(fn: Callable[[], str]) -> str:
        return await asyncio.to_thread(fn)

    async def dedicated(fn: Callable[[], str]) -> str:
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def anyio_run_sync(fn: Callable[[], str]) -> str:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    async def agentkit(fn: Callable[[], str]) -> str:
        return await run_in_thread("clock", fn, own)

    return {
        "inline": inline,
        "asyncio.to_thread": to_thread,
        "dedicated executor": dedicated,
        "anyio.to_thread.run_sync": anyio_run_sync,
        "agentkit run_in_thread": agentkit,
    }


async def _batch(way: Way, turns: int) -> float:
    tokyo = functools.partial(clock, "Asia/Tokyo")
    paris = functools.partial(clock, "Europe/Paris")
    gc.collect()
    cpu = time.process_time()
    for _ in range(turns):
        await asyncio.gather(way(tokyo), way(paris))
    return (time.process_time() - cpu) / (2 * turns) * 1e6


async def _main(turns: int, rounds: int) -> None:
    ways = _ways()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():
        await _batch(way, 50)  # warm up: threads started, caches filled
    names = list(ways)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(await _batch(ways[name], turns))
    floor = statistics.median(samples["asyncio.to_thread"])
    print(f"CPU µs per sync call, two at a time; median of {rounds} rounds of {turns} turns")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:26} {median:7.1f} µs  {median / floor:.2f}x asyncio.to_thread")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(_main(args.turns, args.rounds))


if __name__ == "__main__":
    main()

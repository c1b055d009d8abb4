"""The cost per run of each session store, beside a plain run.

    python -m benchmarks.bench_sessions [--sessions 20] [--turns 10] [--rounds 5]
        [--postgres URL] [--redis URL]

Each round makes `sessions` conversations of `turns` runs each on every store (so a
run loads a history of up to 2 x turns messages, and stores 2), and as many plain
runs without a session; the model answers at once, in process. Stores run in turn
within each round and the median of the rounds is shown, as wall-clock microseconds
per run (a session run waits on I/O: the file, the server's round trips).
Without --postgres/--redis the benchmark starts throwaway servers the way the tests
do (tests/servers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from typing import Any

from agentkit import Agent
from agentkit.sessions import Session, SQLiteSession
from agentkit.testing import FunctionModel, ModelRequest, Reply


def _answer(request: ModelRequest) -> Reply:
    return "ok"


async def _plain(agent: Agent[Any, Any], runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        await agent.run("hello")
    return (time.perf_counter() - started) / runs


async def _in_sessions(
    agent: Agent[Any, Any], make: Callable[[str], Session], sessions: int, turns: int
) -> float:
    ids = [uuid.uuid4().hex for _ in range(sessions)]
    opened = [make(i) for i in ids]
    started = time.perf_counter()
    for _ in range(turns):
        for session in opened:
            await agent.run("hello", session=session)
    elapsed = time.perf_counter() - started
    for session in opened:
        await session.clear()
    return elapsed / (sessions * turns)


@asynccontextmanager
async def _stores(
    args: argparse.Namespace, folder: str
) -> AsyncIterator[dict[str, Callable[[str], Session]]]:
    from psycopg_pool import AsyncConnectionPool
    from redis.asyncio import Redis

    from agentkit.sessions import PostgresSession, RedisSession

    path = os.path.join(folder, "bench.db")
    async with AsyncExitStack() as stack:
        pool = AsyncConnectionPool(args.postgres, min_size=2, max_size=4, open=False)
        await pool.open()
        stack.push_async_callback(pool.close)
        client = Redis.from_url(args.redis)
        stack.push_async_callback(client.aclose)
        yield {
            "sqlite": lambda i: SQLiteSession(i, path),
            "postgres": lambda i: PostgresSession(i, pool),
            "redis": lambda i: RedisSession(i, client),
        }


async def _main(args: argparse.Namespace) -> None:
    agent: Agent[Any, Any] = Agent("bench", client=FunctionModel(_answer))
    runs = args.sessions * args.turns
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        async with _stores(args, folder) as stores:
            await _plain(agent, 50)  # warm up
            for make in stores.values():
                await _in_sessions(agent, make, 2, 2)
            for _ in range(args.rounds):
                results.setdefault("plain run", []).append(await _plain(agent, runs))
                for name, make in stores.items():
                    cost = await _in_sessions(agent, make, args.sessions, args.turns)
                    results.setdefault(name, []).append(cost)
    plain = statistics.median(results["plain run"])
    print(f"{runs} runs per store per round, median of {args.rounds} rounds (wall clock)")
    print("| store | µs/run | µs over a plain run | x plain |")
    print("| --- | ---: | ---: | ---: |")
    for name, costs in results.items():
        cost = statistics.median(costs)
        print(f"| {name} | {cost * 1e6:.0f} | {(cost - plain) * 1e6:+.0f} | {cost / plain:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL URL; default: start one")
    parser.add_argument("--redis", help="a Redis URL; default: start one")
    args = parser.parse_args()
    with ExitStack() as servers:
        if args.postgres is None or args.redis is None:
            sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            from tests.servers import postgres_server, redis_server

            if args.postgres is None:
                args.postgres = servers.enter_context(postgres_server())
            if args.redis is None:
                args.redis = servers.enter_context(redis_server())
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()

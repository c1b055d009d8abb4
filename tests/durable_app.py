"""A durable agent run in a child process by tests/test_durable.py, which kills it
(SIGKILL) at a marker and starts it again.

The model and the tools append fsynced markers to a log (`model-request 2`,
`tool-start 1 <idempotency key>`, `tool-end 1`) so the test can count what ran.
The process prints one JSON line: the run's output and messages, or its error.

    python tests/durable_app.py URL LOG RUN_ID SCENARIO [run|result|worker|enqueue] [options]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import anyio
from pydantic import BaseModel

from agentkit import Agent, AgentKitError, ModelRetry, RunContext, tool
from agentkit.durable import DBOSEngine, DurableAgent
from agentkit.testing import FunctionModel, ModelRequest, Reply, call, tool_calls

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("log")
parser.add_argument("run_id")
parser.add_argument("scenario", choices=["seq", "parallel", "failures", "raise", "structured"])
parser.add_argument("mode", nargs="?", default="run")
parser.add_argument("--changed", action="store_true", help="other instructions")
parser.add_argument("--no-verify", action="store_true", help="verify_replay=False")
parser.add_argument("--plain", action="store_true", help='plain_tools=["work"]')
parser.add_argument("--executor", default=None)
parser.add_argument("--queue", default="agent_runs")
parser.add_argument("--concurrency", type=int, default=2)
parser.add_argument("--runs", default="", help="comma-separated run ids to enqueue")
parser.add_argument("--timeout", type=float, default=None)
parser.add_argument("--max-recoveries", type=int, default=100)
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
        os.write(fd, f"{line} pid={os.getpid()}\n".encode())
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
    if os.environ.get("CRASH_IN_TOOL"):  # a tool that takes its process down each time
        os.kill(os.getpid(), 9)
    scale = n if args.scenario == "parallel" else 1
    await anyio.sleep(TOOL_SECONDS * scale)
    mark(f"tool-end {n} {ctx.run_id}")
    if os.environ.get("VARY"):  # an answer that differs in each process
        return f"piece {n} done ({ctx.run_id}) in {os.getpid()}"
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
    """Each event of a step, as a marker: a replayed step must emit none."""
    name = type(event).__name__
    if name in ("ModelRequestStart", "ToolCallStart"):
        mark(f"event {name} {getattr(event, 'turn', '?')}")


engine = DBOSEngine(
    args.url,
    executor_id=args.executor,
    poll_interval=0.1,
    max_recovery_attempts=args.max_recoveries,
)
durable = DurableAgent(
    agent,
    name="demo",
    engine=engine,
    event_handler=on_event,
    verify_replay=not args.no_verify,
    plain_tools=["work"] if args.plain else (),
)


def report(result: Any) -> None:
    output = result.output
    if isinstance(output, BaseModel):
        output = {"type": type(output).__name__, **output.model_dump()}
    messages = [m.model_dump(mode="json", exclude_none=True) for m in result.messages]
    emit({"output": output, "messages": messages, "turns": result.turns, "run_id": args.run_id})


def report_error(exc: AgentKitError) -> None:
    found = getattr(exc, "messages", None) or []
    messages = [m.model_dump(mode="json", exclude_none=True) for m in found]
    cause = None if exc.__cause__ is None else type(exc.__cause__).__name__
    emit({"error": type(exc).__name__, "text": str(exc), "messages": messages, "cause": cause})


async def main() -> None:
    if args.mode == "enqueue":  # a process without a running engine: only puts runs on a queue
        for run_id in args.runs.split(","):
            inputs = durable.inputs(f"task {run_id}", timeout=args.timeout)
            await engine.enqueue("demo", run_id, inputs, queue=args.queue)
        emit({"enqueued": args.runs.split(",")})
        engine.shutdown()
        return
    if args.mode == "wait":  # a process without a running engine: waits for runs' results
        for run_id in args.runs.split(","):
            try:
                report(await durable.result(run_id))
            except AgentKitError as exc:
                report_error(exc)
        engine.shutdown()
        return
    if args.mode == "recover":  # an admin process: a dead executor's runs back on the queue
        moved = await engine.recover_executor(args.executor, queue=args.queue)
        emit({"recovered": moved})
        engine.shutdown()
        return
    if args.mode == "worker":
        async with engine.worker(args.queue, concurrency=args.concurrency):
            mark(f"worker-up {args.executor}")
            await anyio.sleep(float(os.environ.get("WORKER_SECONDS", "60")))
        return
    async with engine:
        started = time.monotonic()
        try:
            if args.mode == "result":
                result = await durable.result(args.run_id)
            else:
                result = await durable.run("Do the work.", run_id=args.run_id, timeout=args.timeout)
        except AgentKitError as exc:
            report_error(exc)
        else:
            report(result)
        mark(f"done {time.monotonic() - started:.3f}")


asyncio.run(main())

"""Durable agents on Temporal for tests/test_durable_temporal.py: one served by the
`python -m agentkit.durable.temporal worker` command line, and one run inside a
workflow of the user's own (`run_in_workflow`). The server's address and the task
queues come from the environment."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agentkit import Agent, RunContext, tool
    from agentkit.durable import DurableAgent, TemporalEngine
    from agentkit.durable.temporal import run_in_workflow
    from agentkit.testing import FunctionModel, ModelRequest, Reply, call

ADDRESS = os.environ.get("AGENTKIT_TEMPORAL_ADDRESS", "127.0.0.1:7233")
QUEUE = os.environ.get("AGENTKIT_TEMPORAL_QUEUE", "agentkit-tests")


@tool
def lookup(ctx: RunContext[Any], order: str) -> str:
    """Look an order up.

    Args:
        order: The order number.
    """
    return f"order {order} ships today (key {ctx.idempotency_key})"


async def answer(request: ModelRequest) -> Reply:
    if not any(m.role == "tool" for m in request.messages):
        return call("lookup", order="A-17")
    return "Your order " + str(request.messages[-1].content).split(" (key")[0]


def make(name: str, queue: str) -> DurableAgent[str]:
    engine = TemporalEngine(
        ADDRESS,
        task_queue=queue,
        heartbeat_timeout=timedelta(seconds=2),
        sticky_timeout=timedelta(seconds=1),
    )
    agent: Agent[Any, str] = Agent(
        "test-model", client=FunctionModel(answer), instructions="Help.", tools=[lookup]
    )
    return DurableAgent(agent, name=name, engine=engine)


support = make("support", QUEUE)
agents = [support]
"""What `python -m agentkit.durable.temporal worker tests.durable_temporal_agents:agents` serves."""

hatch = make("hatch", QUEUE + "-own")


@workflow.defn(name="tests.ticket")
class TicketWorkflow:
    """A workflow of the user's own that runs a durable agent as one part of it."""

    @workflow.run
    async def run(self, prompt: str) -> dict[str, Any]:
        result = await run_in_workflow(hatch, prompt)
        return {"output": result.output, "turns": result.turns, "id": workflow.info().workflow_id}

"""Agents for the `agentkit` command's tests, loaded by it as `tests/cli_agents.py:NAME`.

`slow` answers "wait" with a call to a tool that takes 30 s (for the spinner and
for Ctrl-C), "markdown" with Markdown, and anything else by echoing it. Every
model here is scripted: nothing leaves the machine.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from agentkit import Agent, Paused, Tool, ToolMessage, UserError, tool
from agentkit.testing import FunctionModel, ModelRequest, Reply, tool_calls

MARKDOWN = "# Heading one\n\nSome **bold words** and `code`.\n\n- first item\n- second item\n"


@tool
async def wait(seconds: float) -> str:
    """Wait a while.

    Args:
        seconds: How long.
    """
    await anyio.sleep(seconds)
    return f"waited {seconds:g} s"


def _answer(request: ModelRequest) -> Reply:
    last = request.messages[-1]
    if isinstance(last, ToolMessage):
        return f"The tool said: {last.content}"
    text = str(last.content)
    if text.startswith("wait"):
        return tool_calls(("wait", {"seconds": float(text.split()[1]) if " " in text else 30}))
    if text == "markdown":
        return MARKDOWN
    if text == "long":
        return "\n".join(f"{n}. line number {n}" for n in range(1, 81)) + "\n\nThe end."
    return f"echo ({request.body['model']}): {text}"


slow = Agent("scripted", client=FunctionModel(_answer), tools=[wait])


class City(BaseModel):
    name: str
    population: int


def _city(request: ModelRequest) -> Reply:
    return '{"name": "Tokyo", "population": 14000000}'


structured = Agent("scripted", client=FunctionModel(_city), output_type=City)


def broken() -> Agent[str]:
    """A factory that fails the way user code fails: with an agentkit error."""
    raise UserError("this factory refuses, on purpose")


not_an_agent = 42


@tool(requires_approval=True)
def refund(order: str, amount: int) -> str:
    """Refund an order.

    Args:
        order: The order id.
        amount: The amount in euros.
    """
    return f"refunded {amount} EUR on {order}"


class Where(BaseModel):
    """The user's location, asked of their device."""

    precision: str = "city"


def _desk(request: ModelRequest) -> Reply:
    last = request.messages[-1]
    if isinstance(last, ToolMessage):
        answers = [m for m in request.messages if isinstance(m, ToolMessage)]
        return "Done: " + "; ".join(str(m.content) for m in answers[-2:])
    return tool_calls(
        ("refund", {"order": "A-1", "amount": 40}),
        ("get_location", {"precision": "city"}),
    )


desk = Agent(
    "scripted",
    client=FunctionModel(_desk),
    tools=[refund, Tool.external("get_location", Where)],
    pauses=Paused,
)

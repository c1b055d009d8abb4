"""Agents for the `agentkit` command's tests, loaded by it as `tests/cli_agents.py:NAME`.

`slow` answers "wait" with a call to a tool that takes 30 s (for the spinner and
for Ctrl-C), "markdown" with Markdown, and anything else by echoing it. Every
model here is scripted: nothing leaves the machine.
"""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from agentkit import Agent, ToolMessage, UserError, tool
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

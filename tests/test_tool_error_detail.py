"""What the model is told when a tool raises: the exception's message, or only its type
with the message logged (`Agent(tool_error_detail=...)`)."""

from __future__ import annotations

import json

import pytest

from agentkit import Agent, ModelRetry, ToolCallError, UserError, tool
from agentkit._run.tool_errors import default_tool_error_detail
from agentkit.testing import FunctionModel, ModelRequest, Reply, call

SECRET = "postgres://app:hunter2@db.internal/prod"


@tool
def query() -> str:
    """Query the database."""
    raise ConnectionError(f"could not connect to {SECRET}")


@tool
def picky(day: str) -> str:
    """A tool that asks the model to try again.

    Args:
        day: A date.
    """
    if day == "retry":
        raise ModelRetry("use a date in ISO format")
    raise ToolCallError("picky", "no data for that date")


def repeats_tool_answer(name: str, **arguments: str) -> FunctionModel:
    """Calls `name`, then answers with the tool message it got, word for word."""

    def answer(request: ModelRequest) -> Reply:
        last = request.messages[-1]
        return f"The tool said: {last.content}" if last.role == "tool" else call(name, **arguments)

    return FunctionModel(answer)


def test_by_default_the_model_gets_the_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="agentkit")
    result = Agent("m", client=repeats_tool_answer("query"), tools=[query]).run_sync("x")
    assert result.output == f"The tool said: Error: ConnectionError: could not connect to {SECRET}"
    assert caplog.text == ""


def test_type_sends_only_the_tool_and_type_and_logs_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="agentkit")
    model = repeats_tool_answer("query")
    agent = Agent("m", client=model, tools=[query], tool_error_detail="type")
    result = agent.run_sync("x")
    assert result.output == "The tool said: Error: the tool query failed (ConnectionError)"
    assert "hunter2" not in json.dumps(model.requests)
    assert "hunter2" not in json.dumps([m.model_dump() for m in result.messages])
    # On the server side: the log has it, with the traceback.
    assert "hunter2" in caplog.text and "Traceback" in caplog.text


@pytest.mark.parametrize(
    ("day", "told"), [("retry", "use a date in ISO format"), ("x", "no data for that date")]
)
def test_messages_written_for_the_model_are_always_sent(day: str, told: str) -> None:
    agent = Agent(
        "m", client=repeats_tool_answer("picky", day=day), tools=[picky], tool_error_detail="type"
    )
    assert agent.run_sync("x").output == f"The tool said: Error: {told}"


@pytest.mark.anyio
async def test_the_default_for_agents_that_leave_it_unset_can_be_set_for_a_block() -> None:
    unset = Agent("m", client=repeats_tool_answer("query"), tools=[query])
    own = Agent(
        "m", client=repeats_tool_answer("query"), tools=[query], tool_error_detail="message"
    )
    with default_tool_error_detail("type"):
        assert (await unset.run("x")).output.endswith("the tool query failed (ConnectionError)")
        assert "hunter2" in (await own.run("x")).output
    assert "hunter2" in (await unset.run("x")).output


def test_the_option_is_checked() -> None:
    with pytest.raises(UserError, match="tool_error_detail"):
        Agent("m", tool_error_detail="none")  # type: ignore[arg-type]

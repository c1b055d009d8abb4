"""Several agents in one run: an agent as another's tool, and handoffs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    HandedOff,
    MaxTurnsExceeded,
    Message,
    ModelRequestStart,
    RunComplete,
    RunContext,
    RunTimeoutError,
    ToolMessage,
    UserError,
    handoff,
    tool,
)
from agentkit.testing import FunctionModel, ModelRequest, ScriptedModel, call, tool_calls
from tests.chat_server import assert_history_valid

pytestmark = pytest.mark.anyio


def systems(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "system"]


def tool_names(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", ())]


# --- an agent as a tool ----------------------------------------------------------------


async def test_an_agent_as_a_tool_answers_with_its_output_and_usage() -> None:
    inner_model = ScriptedModel(["Bonjour"])
    translator = Agent("inner", client=inner_model, name="translator", instructions="To French.")
    outer_model = ScriptedModel([call("translator", input="Hello"), "It is 'Bonjour'."])
    outer = Agent(
        "outer", client=outer_model, tools=[translator.as_tool(description="Translates.")]
    )
    events: list[Any] = []
    result = await outer.run("Say hello in French", event_handler=events.append)
    assert result.output == "It is 'Bonjour'."
    assert inner_model.requests[0]["messages"] == [
        {"role": "system", "content": "To French."},
        {"role": "user", "content": "Hello"},
    ]
    answer = result.messages[2]
    assert isinstance(answer, ToolMessage) and answer.content == "Bonjour"
    # The sub-run's tokens count in the run's usage, and its events reach the handler.
    inner_tokens = 10 + 2
    assert result.usage.total_tokens == (10 + 1) + (10 + 4) + inner_tokens
    assert sum(isinstance(e, ModelRequestStart) for e in events) == 3
    assert_history_valid(result.messages)


async def test_an_agent_as_a_tool_gets_the_runs_deps() -> None:
    @tool
    def whoami(ctx: RunContext[dict[str, str]]) -> str:
        """The user's name."""
        return ctx.deps["name"]

    inner = Agent("i", client=ScriptedModel([call("whoami"), "Ada"]), name="inner", tools=[whoami])
    outer = Agent("o", client=ScriptedModel([call("inner", input="who?"), "Ada it is."]))
    outer.tools = [inner.as_tool()]  # type: ignore[assignment]
    result = await outer.run("?", deps={"name": "Ada"})
    assert result.messages[2].content == "Ada"  # type: ignore[union-attr]


async def test_cancelling_the_run_cancels_the_agent_it_called() -> None:
    started = anyio.Event()

    async def forever(request: ModelRequest) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    inner = Agent("i", client=FunctionModel(forever), name="slow")
    outer = Agent("o", client=ScriptedModel([call("slow", input="?")]), tools=[inner.as_tool()])
    with anyio.fail_after(5), pytest.raises(RunTimeoutError) as info:
        await outer.run("?", timeout=0.2)
    assert started.is_set()
    assert info.value.messages[-1].content == "Error: not run: the run was cancelled"  # type: ignore[union-attr]
    assert_history_valid(info.value.messages)


async def test_a_tool_timeout_bounds_the_sub_run() -> None:
    async def forever(request: ModelRequest) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    inner = Agent("i", client=FunctionModel(forever), name="slow")
    outer = Agent(
        "o",
        client=ScriptedModel([call("slow", input="?"), "It timed out."]),
        tools=[inner.as_tool(timeout=0.05)],
    )
    with anyio.fail_after(5):
        result = await outer.run("?")
    assert "timed out after 0.05 seconds" in result.messages[2].content  # type: ignore[operator]


def test_as_tool_needs_a_name() -> None:
    with pytest.raises(UserError, match="as_tool\\(\\) needs a name"):
        Agent("m").as_tool()
    with pytest.raises(UserError, match="name must match"):
        Agent("m", name="no spaces please")


# --- handoffs --------------------------------------------------------------------------


class Invoice(BaseModel):
    number: str
    amount: float


@tool
def lookup_invoice(number: str) -> str:
    """Find an invoice.

    Args:
        number: The invoice number.
    """
    return f"Invoice {number}: 12.50 EUR"


def _agents() -> tuple[Agent[str], Agent[Invoice], FunctionModel]:
    """A triage agent that hands billing questions to a billing agent, on one model."""

    def answer(request: ModelRequest) -> Any:
        sent = request.body
        if systems(sent)[0] == "Triage.":
            return call("transfer_to_billing")
        if sent["messages"][-1]["role"] == "tool" and sent["messages"][-1]["content"].startswith(
            "Invoice"
        ):
            return '{"number": "A-1", "amount": 12.5}'
        return call("lookup_invoice", number="A-1")

    model = FunctionModel(answer)
    billing = Agent(
        "billing-model",
        client=model,
        name="billing",
        instructions="Billing.",
        tools=[lookup_invoice],
        output_type=Invoice,
    )
    triage = Agent("triage-model", client=model, instructions="Triage.", handoffs=[billing])
    return triage, billing, model


async def test_a_handoff_moves_the_rest_of_the_run_to_the_target() -> None:
    triage, billing, model = _agents()
    events: list[Any] = []
    result = await triage.run("What is invoice A-1?", event_handler=events.append)
    assert result.output == Invoice(number="A-1", amount=12.5)
    assert result.last_agent is billing
    first, second, third = model.requests
    assert (first["model"], systems(first), tool_names(first)) == (
        "triage-model",
        ["Triage."],
        ["transfer_to_billing"],
    )
    assert (second["model"], systems(second), tool_names(second)) == (
        "billing-model",
        ["Billing."],
        ["lookup_invoice"],
    )
    assert "response_format" in second and "response_format" not in first
    assert [type(e) for e in events].count(HandedOff) == 1
    assert next(e for e in events if isinstance(e, HandedOff)).agent == "billing"
    assert result.messages[2].content.startswith("Transferred to billing")  # type: ignore[union-attr]
    assert third["messages"][-1]["role"] == "tool"
    assert_history_valid(result.messages)


async def test_a_run_without_handoffs_reports_its_own_agent() -> None:
    agent = Agent("m", client=ScriptedModel(["Hi"]))
    assert (await agent.run("?")).last_agent is agent


async def test_an_input_filter_chooses_the_history_the_target_receives() -> None:
    def last_user_message(messages: list[Message]) -> list[Message]:
        return [m for m in messages if m.role == "user"][-1:]

    target_model = ScriptedModel(["Billing here."])
    billing = Agent("b", client=target_model, name="billing")
    model = ScriptedModel([call("transfer_to_billing")])
    triage = Agent("t", client=model, handoffs=[handoff(billing, input_filter=last_user_message)])
    result = await triage.run("Refund please")
    # The target's own client takes the rest of the run.
    assert len(model.requests) == 1
    assert target_model.requests[0]["messages"] == [{"role": "user", "content": "Refund please"}]
    assert [m.role for m in result.messages] == ["user", "assistant"]


async def test_an_input_filter_that_breaks_the_history_is_a_user_error() -> None:
    billing = Agent("b", name="billing")
    model = ScriptedModel([call("transfer_to_billing"), "unused"])

    def drop_answers(messages: list[Message]) -> list[Message]:
        return [m for m in messages if m.role != "tool"]

    triage = Agent("t", client=model, handoffs=[handoff(billing, input_filter=drop_answers)])
    with pytest.raises(UserError, match="tool call"):
        await triage.run("?")


async def test_a_handoff_cycle_is_bounded_by_the_turn_budget() -> None:
    model = ScriptedModel([call("transfer_to_b"), call("transfer_to_a")] * 10)
    a = Agent("m", client=model, name="a", max_turns=4)
    b = Agent("m", client=model, name="b", max_turns=4, handoffs=[a])
    a.handoffs = [b]
    with pytest.raises(MaxTurnsExceeded) as info:
        await a.run("Ping-pong")
    assert len(model.requests) == 4
    assert_history_valid(info.value.messages)


async def test_only_the_first_handoff_of_a_turn_is_made() -> None:
    model = ScriptedModel(
        [tool_calls(("transfer_to_billing", {}), ("transfer_to_support", {})), "Billing."]
    )
    billing = Agent("m", client=model, name="billing")
    support = Agent("m", client=model, name="support")
    triage = Agent("m", client=model, handoffs=[billing, support])
    result = await triage.run("?")
    assert result.last_agent is billing
    answers = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert answers[0].startswith("Transferred to billing")  # type: ignore[union-attr]
    assert answers[1] == "Error: not run: the run was already handed to billing"
    assert_history_valid(result.messages)


async def test_a_streamed_run_hands_off_too() -> None:
    triage, billing, _ = _agents()
    async with triage.run_stream("Invoice A-1?") as stream:
        events = [event async for event in stream]
    done = events[-1]
    assert isinstance(done, RunComplete)
    assert done.result.last_agent is billing
    assert done.result.output == Invoice(number="A-1", amount=12.5)
    assert any(isinstance(e, HandedOff) for e in events)


def test_a_handoff_target_needs_a_name() -> None:
    with pytest.raises(UserError, match="needs a name"):
        Agent("m", handoffs=[Agent("m")])
    with pytest.raises(UserError, match="handoff needs an Agent"):
        handoff("billing")  # type: ignore[arg-type]


def test_the_support_desk_example_runs_offline() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    script = Path(__file__).parent.parent / "examples" / "support_desk.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "-> handed to billing",
        "A-1: 12.50, due 31 January 2031",
    ]

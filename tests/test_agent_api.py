"""The agent API around the loop: instructions, per-run overrides, usage limits, output
validators and per-tool retries."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    ModelRetry,
    ModelSettings,
    OutputValidationError,
    RunComplete,
    RunContext,
    SystemMessage,
    ToolRetryError,
    UsageLimitExceeded,
    UsageLimits,
    UserError,
    UserMessage,
    tool,
)
from agentkit.testing import ModelRequest, ScriptedModel, call
from tests.chat_server import assert_history_valid, calls, completion, serve, tool_call

pytestmark = pytest.mark.anyio


@tool
def get_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    return f"12:00 in {timezone}"


@tool
def fail(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise ValueError(reason)


def systems(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "system"]


# --- instructions ----------------------------------------------------------------------


async def test_instructions_lead_every_request_and_stay_out_of_the_history() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), "Noon."])
    result = await Agent("m", client=model, instructions="Be brief.", tools=[get_time]).run("?")
    assert [systems(r) for r in model.requests] == [["Be brief."], ["Be brief."]]
    assert [r["messages"][0]["role"] for r in model.requests] == ["system", "system"]
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]


async def test_a_history_from_another_agent_continues_under_the_current_instructions() -> None:
    old = await Agent("m", client=ScriptedModel(["Hi."]), instructions="OLD").run("Hello")
    model = ScriptedModel(["Hello again."])
    await Agent("m", client=model, instructions="NEW").run("Again", message_history=old.messages)
    assert systems(model.requests[0]) == ["NEW"]


async def test_a_system_message_of_the_callers_own_stays_where_it_is() -> None:
    history = [SystemMessage(content="The user is Ada."), UserMessage(content="Hi")]
    model = ScriptedModel(["Hello, Ada."])
    result = await Agent("m", client=model, instructions="Be kind.").run(
        "Who am I?", message_history=history
    )
    assert systems(model.requests[0]) == ["Be kind.", "The user is Ada."]
    assert result.messages[0] == SystemMessage(content="The user is Ada.")


async def test_dynamic_instructions_are_computed_for_each_request_from_the_context() -> None:
    seen: list[int] = []

    def user_name(ctx: RunContext[dict[str, str]]) -> str:
        seen.append(len(ctx.messages))
        return f"The user is {ctx.deps['name']}."

    async def today(ctx: RunContext[Any]) -> str:
        await anyio.lowlevel.checkpoint()
        return "Today is 2026-12-04."

    model = ScriptedModel([call("get_time", timezone="UTC"), "Noon, Ada."])
    agent = Agent("m", client=model, instructions=["Be brief.", user_name, today], tools=[get_time])
    await agent.run("Time?", deps={"name": "Ada"})
    expected = "Be brief.\n\nThe user is Ada.\n\nToday is 2026-12-04."
    assert [systems(r) for r in model.requests] == [[expected], [expected]]
    assert seen == [1, 3]  # the history as each request goes out


async def test_instructions_over_http_validate_against_the_spec() -> None:
    async with serve(calls(tool_call("c1", "get_time", {"timezone": "UTC"})), completion("ok")) as (
        server,
        client,
    ):
        agent = Agent("m", client=client, instructions=lambda ctx: "Dynamic.", tools=[get_time])
        result = await agent.run("?")
    assert [m["role"] for m in server.messages[1]] == ["system", "user", "assistant", "tool"]
    assert_history_valid(result.messages)


def test_bad_instructions_are_refused() -> None:
    with pytest.raises(UserError, match="instructions must be text, a function"):
        Agent("m", instructions=[3])  # type: ignore[list-item]


async def test_an_instructions_function_that_returns_no_text_is_a_user_error() -> None:
    agent = Agent("m", client=ScriptedModel(["x"]), instructions=lambda ctx: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(UserError, match="instructions function returned int"):
        await agent.run("?")


# --- per-run overrides -----------------------------------------------------------------


async def test_per_run_overrides_apply_to_that_run_only() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), "Noon.", "Plain."])
    agent = Agent(
        "base-model",
        client=model,
        instructions="Agent's.",
        settings=ModelSettings(temperature=0.1, seed=1),
    )
    before = agent.config
    await agent.run(
        "?",
        model="other-model",
        settings=ModelSettings(temperature=0.9),
        instructions="Run's.",
        tools=[get_time],
    )
    await agent.run("?")
    first, second, third = model.requests
    assert (first["model"], first["temperature"], first["seed"]) == ("other-model", 0.9, 1)
    assert systems(first) == ["Run's."]
    assert [t["function"]["name"] for t in first["tools"]] == ["get_time"]
    assert second["model"] == "other-model"
    assert (third["model"], third["temperature"], systems(third)) == (
        "base-model",
        0.1,
        ["Agent's."],
    )
    assert "tools" not in third
    assert agent.config is before


async def test_concurrent_runs_with_different_overrides_do_not_see_each_other() -> None:
    def answer(request: ModelRequest) -> str:
        return request.body["model"]

    from agentkit.testing import FunctionModel

    agent = Agent("base", client=FunctionModel(answer))
    outputs: dict[int, str] = {}

    async def one(i: int) -> None:
        await anyio.sleep(0.001 * (i % 3))
        outputs[i] = (await agent.run("?", model=f"model-{i}")).output

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert outputs == {i: f"model-{i}" for i in range(20)}
    assert agent.model == "base"


def test_overrides_are_validated() -> None:
    agent = Agent("m", client=ScriptedModel(["x"]), tools=[get_time])
    with pytest.raises(UserError, match="another tool is already named 'get_time'"):
        agent.run_sync("?", tools=[get_time])
    with pytest.raises(UserError, match="non-empty model name"):
        agent.run_sync("?", model="")


async def test_run_stream_takes_the_overrides() -> None:
    model = ScriptedModel(["Streamed."])
    agent = Agent("m", client=model)
    async with agent.run_stream("?", model="streamer", instructions="Stream it.") as stream:
        events = [event async for event in stream]
    assert isinstance(events[-1], RunComplete)
    assert model.requests[0]["model"] == "streamer"
    assert systems(model.requests[0]) == ["Stream it."]


# --- usage limits ----------------------------------------------------------------------


async def test_the_request_limit_stops_before_the_request() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), call("get_time", timezone="UTC")])
    agent = Agent("m", client=model, tools=[get_time], repeated_tool_calls="tell")
    with pytest.raises(UsageLimitExceeded, match="would exceed requests=1") as info:
        await agent.run("?", usage_limits=UsageLimits(requests=1))
    assert len(model.requests) == 1
    assert info.value.usage.prompt_tokens == 10
    assert_history_valid(info.value.messages)


async def test_a_token_limit_ends_the_run_with_every_call_answered() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), "never sent"])
    agent = Agent("m", client=model, tools=[get_time])
    with pytest.raises(UsageLimitExceeded, match="over output_tokens=0") as info:
        await agent.run("?", usage_limits=UsageLimits(output_tokens=0))
    assert len(model.requests) == 1
    assert [m.role for m in info.value.messages] == ["user", "assistant", "tool"]
    assert "usage limit" in info.value.messages[-1].content  # type: ignore[operator]
    assert_history_valid(info.value.messages)


async def test_input_tokens_are_predicted_before_the_next_request() -> None:
    # Each scripted prompt counts 10 tokens: after one, a second would pass 15.
    model = ScriptedModel([call("get_time", timezone="UTC"), "done"])
    agent = Agent("m", client=model, tools=[get_time])
    with pytest.raises(UsageLimitExceeded, match="would exceed input_tokens=15") as info:
        await agent.run("?", usage_limits=UsageLimits(input_tokens=15))
    assert len(model.requests) == 1
    assert_history_valid(info.value.messages)


async def test_the_tool_call_limit_answers_the_calls_it_does_not_run() -> None:
    ran: list[str] = []

    @tool
    def record(x: str) -> str:
        """Records.

        Args:
            x: A value.
        """
        ran.append(x)
        return x

    replies: list[Any] = [
        call("record", x="a"),
        call("record", x="b"),
    ]
    model = ScriptedModel(replies)
    agent = Agent("m", client=model, tools=[record], usage_limits=UsageLimits(tool_calls=1))
    with pytest.raises(UsageLimitExceeded, match="would exceed tool_calls=1") as info:
        await agent.run("?")
    assert ran == ["a"]
    assert_history_valid(info.value.messages)


async def test_limits_within_budget_change_nothing() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), "Noon."])
    limits = UsageLimits(requests=2, input_tokens=20, total_tokens=100, tool_calls=1)
    result = await Agent("m", client=model, tools=[get_time], usage_limits=limits).run("?")
    assert result.output == "Noon."


def test_bad_limits_are_refused() -> None:
    with pytest.raises(UserError, match=r"UsageLimits.requests must be an integer >= 0"):
        UsageLimits(requests=-1)
    with pytest.raises(UserError, match="usage_limits must be a UsageLimits"):
        Agent("m", usage_limits={"requests": 1})  # type: ignore[arg-type]


# --- output validators -----------------------------------------------------------------


class Meeting(BaseModel):
    day: dt.date


async def test_an_output_validator_sends_the_answer_back_once() -> None:
    model = ScriptedModel(['{"day": "2020-01-01"}', '{"day": "2030-01-01"}'])
    agent = Agent("m", client=model, output_type=Meeting)

    @agent.output_validator
    def in_the_future(ctx: RunContext[None], meeting: Meeting) -> Meeting:
        if meeting.day <= dt.date(2026, 12, 4):
            raise ModelRetry("the day must be in the future")
        return meeting

    result = await agent.run("When?")
    assert result.output == Meeting(day=dt.date(2030, 1, 1))
    assert model.requests[1]["messages"][-1] == {
        "role": "user",
        "content": "the day must be in the future\nPlease answer again.",
    }


async def test_output_validators_may_be_async_take_only_the_output_and_change_it() -> None:
    async def shout(text: str) -> str:
        await anyio.lowlevel.checkpoint()
        return text.upper()

    model = ScriptedModel(["hello"])
    result = await Agent("m", client=model, output_validators=[shout, str.strip]).run("?")
    assert result.output == "HELLO"


async def test_output_validation_is_bounded_by_output_retries() -> None:
    def never(output: str) -> str:
        raise ModelRetry("no")

    model = ScriptedModel(["a", "b"])
    agent = Agent("m", client=model, output_retries=1, output_validators=[never])
    with pytest.raises(OutputValidationError, match="was refused 2 times: no") as info:
        await agent.run("?")
    assert_history_valid(info.value.messages)


async def test_streamed_runs_validate_the_final_output() -> None:
    model = ScriptedModel(["bad", "good"])

    def only_good(text: str) -> str:
        if text != "good":
            raise ModelRetry("say good")
        return text

    agent = Agent("m", client=model, output_validators=[only_good])
    async with agent.run_stream("?") as stream:
        events = [event async for event in stream]
    assert isinstance(events[-1], RunComplete)
    assert events[-1].result.output == "good"


# --- per-tool retries ------------------------------------------------------------------


async def test_a_tools_own_retries_override_the_agents() -> None:
    fragile = tool(retries=0)(fail.function)
    model = ScriptedModel([call("fail", reason="x"), "unused"])
    agent = Agent("m", client=model, tools=[fragile], max_tool_retries=5)
    with pytest.raises(ToolRetryError, match="fail") as info:
        await agent.run("?")
    assert len(model.requests) == 1
    assert_history_valid(info.value.messages)


async def test_a_tool_may_have_more_retries_than_the_agent() -> None:
    patient = tool(retries=3)(fail.function)
    replies: list[Any] = [call("fail", reason=str(i)) for i in range(3)] + ["gave up"]
    agent = Agent("m", client=ScriptedModel(replies), tools=[patient], max_tool_retries=0)
    assert (await agent.run("?")).output == "gave up"


def test_bad_tool_retries_are_refused() -> None:
    with pytest.raises(UserError, match="retries must be an integer >= 0"):
        tool(retries=-1)(fail.function)

"""An agent's settings as one validated configuration, and the loop's rules on their own."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from agentkit import (
    Agent,
    AssistantMessage,
    ModelSettings,
    RunState,
    UserError,
    UserMessage,
    tool,
)
from agentkit._run import rules
from agentkit._run.config import RunConfig
from agentkit._run.loop import Run
from agentkit._wire.messages import FunctionCall, ToolCall
from agentkit._wire.responses import FinishReason
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
def find_zone(city: str) -> str:
    """The time zone of a city.

    Args:
        city: A city name.
    """
    return "Europe/Paris"


PARIS = tool_call("call_1", "get_time", {"timezone": "Europe/Paris"})


# --- settings changed after construction ----------------------------------------------


async def test_settings_set_after_construction_are_sent() -> None:
    async with serve(completion("a"), completion("b")) as (server, client):
        agent = Agent("gpt-4o-mini", client=client, tools=[get_time])
        await agent.run("Hi")
        agent.settings = ModelSettings(temperature=0.3)
        agent.model = "gpt-4.1-mini"
        await agent.run("Hi")
    first, second = server.requests
    assert "temperature" not in first
    assert (second["temperature"], second["model"]) == (0.3, "gpt-4.1-mini")


async def test_tools_set_after_construction_are_sent_and_run() -> None:
    async with serve(calls(PARIS), completion("12:00")) as (server, client):
        agent = Agent("m", client=client, tools=[find_zone])
        agent.tools = [find_zone, get_time]  # type: ignore[assignment]
        result = await agent.run("Paris?")
    names = [t["function"]["name"] for t in server.requests[0]["tools"]]
    assert names == ["find_zone", "get_time"]
    assert "12:00 in Europe/Paris" in result.messages[-2].content  # type: ignore[operator]
    assert_history_valid(result.messages)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("max_turns", 0, "max_turns must be an integer >= 1"),
        ("max_tool_retries", -1, "max_tool_retries must be"),
        ("repeat_limit", 1, "repeat_limit must be an integer >= 2"),
        ("tool_errors", "ignore", "tool_errors must be one of"),
        ("tool_choice", "nope", "tool_choice 'nope' is not a tool"),
        ("model", "", "non-empty model name"),
        ("settings", {"temperature": 1}, "settings must be a ModelSettings"),
        ("reset_tool_choice", "yes", "reset_tool_choice must be True or False"),
        ("timeout", -1, "timeout must be a positive number"),
    ],
)
def test_a_bad_setting_is_refused_where_it_is_set(name: str, value: Any, match: str) -> None:
    agent = Agent("m", tools=[get_time], max_turns=5)
    before = agent.config
    with pytest.raises(UserError, match=match):
        setattr(agent, name, value)
    assert agent.config is before  # nothing half-changed
    assert agent.max_turns == 5


def test_removing_the_forced_tool_is_refused() -> None:
    agent = Agent("m", tools=[get_time, find_zone], tool_choice="get_time")
    with pytest.raises(UserError, match="tool_choice 'get_time' is not a tool"):
        agent.tools = [find_zone]  # type: ignore[assignment]
    assert list(agent.tools) == ["get_time", "find_zone"]


def test_the_configuration_is_frozen() -> None:
    config = Agent("m").config
    with pytest.raises(AttributeError):
        config.max_turns = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.tools["x"] = get_time  # type: ignore[index]
    with pytest.raises(UserError, match="not an agent setting: colour"):
        config.replace(colour="red")


def test_output_type_set_after_construction_changes_the_response_format() -> None:
    agent = Agent("m")
    assert "response_format" not in agent.config.request_params
    agent.output_type = list[int]
    assert agent.config.request_params["response_format"].type == "json_schema"
    assert agent.output_spec.output_type == list[int]


async def test_a_run_keeps_the_configuration_it_started_with() -> None:
    agent = Agent("m")

    @tool
    def switch_model() -> str:
        """Switches the agent to another model."""
        agent.model = "other"
        return "switched"

    agent.tools = [switch_model]  # type: ignore[assignment]
    switch = tool_call("call_1", "switch_model", {})
    async with serve(calls(switch), completion("done"), completion("again")) as (server, client):
        agent.client = client
        await agent.run("Switch")  # the switch happens during this run
        await agent.run("And now?")
    assert [body["model"] for body in server.requests] == ["m", "m", "other"]


# --- the rules -----------------------------------------------------------------------------


def test_every_finish_reason_has_a_step() -> None:
    assert set(rules.FINISH_STEPS) == set(typing.get_args(FinishReason))


def _message(*tool_calls: ToolCall) -> AssistantMessage:
    return AssistantMessage(
        content=None if tool_calls else "hi", tool_calls=list(tool_calls) or None
    )


def _call(arguments: str, name: str = "get_time", id: str = "c1") -> ToolCall:
    return ToolCall(id=id, function=FunctionCall(name=name, arguments=arguments))


@pytest.mark.parametrize(
    ("reason", "with_calls", "step"),
    [
        ("stop", False, "answer"),
        ("stop", True, "run_tools"),  # servers disagree on the reason that goes with calls
        ("tool_calls", True, "run_tools"),
        ("tool_calls", False, "answer"),
        ("length", True, "cut_off"),  # cut-off arguments are never run
        ("length", False, "cut_off"),
        ("content_filter", False, "filtered"),
        (None, False, "answer"),
        ("eos", False, "answer"),
        ("eos", True, "run_tools"),
    ],
)
def test_next_step(reason: str | None, with_calls: bool, step: str) -> None:
    message = _message(_call("{}")) if with_calls else _message()
    assert rules.next_step(message, reason) == step


@pytest.mark.parametrize(
    ("max_turns", "on_max_turns", "turns", "budget"),
    [
        (2, "raise", 0, "go"),
        (2, "raise", 1, "go"),
        (2, "raise", 2, "over"),
        (2, "answer", 2, "last"),
        (2, "answer", 3, "over"),
    ],
)
def test_turn_budget(max_turns: int, on_max_turns: Any, turns: int, budget: str) -> None:
    config = RunConfig.build(model="m", max_turns=max_turns, on_max_turns=on_max_turns)
    assert rules.turn_budget(config, RunState(messages=[], turns=turns)) == budget


def test_the_same_call_whatever_its_spacing_or_key_order() -> None:
    spaced = _call('{ "timezone" :"Asia/Tokyo", "x": 1 }')
    ordered = _call('{"x": 1, "timezone": "Asia/Tokyo"}')
    assert rules.call_key(spaced) == 'get_time\x00{ "timezone" :"Asia/Tokyo", "x": 1 }'
    assert rules.same_call(rules.call_key(spaced)) == rules.same_call(rules.call_key(ordered))
    assert rules.same_call("get_time\x00not json") == "get_time\x00not json"
    config = RunConfig.build(model="m", repeat_limit=3)
    first, hit = rules.repeat_streaks(config, {}, [spaced])
    second, hit = rules.repeat_streaks(config, first, [ordered])
    assert second == {rules.call_key(ordered): 2} and hit is None
    third, hit = rules.repeat_streaks(config, second, [spaced, _call("{}", id="c2")])
    assert third == {rules.call_key(spaced): 3, "get_time\x00{}": 1} and hit is spaced
    assert rules.forget_failed(third, [ordered]) == {"get_time\x00{}": 1}


async def test_the_persisted_streak_keys_do_not_depend_on_the_turn() -> None:
    spaced = tool_call("call_1", "get_time", '{ "timezone" : "Europe/Paris" }')
    async with serve(calls(spaced), completion("ok")) as (_, client):
        agent = Agent("m", client=client, tools=[get_time])
        state = RunState(messages=[UserMessage(content="Paris?")])
        await Run[str](agent.config, client, state, deps=None, events=None).run()
    # Kept after the first (and only) turn of calls, in the same form as after any other.
    assert state.call_streaks == {'get_time\x00{ "timezone" : "Europe/Paris" }': 1}
    assert RunState.model_validate_json(state.model_dump_json()) == state

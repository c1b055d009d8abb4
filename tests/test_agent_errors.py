"""Runs that end badly or recover: finish reasons, model mistakes, tool errors, limits.

Every `AgentRunError` raised here is checked with `assert_history_valid`: its
`.messages` answer every assistant tool call exactly once, in order.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from agentkit import (
    Agent,
    AgentRunError,
    AssistantMessage,
    ContentFilterError,
    IncompleteOutputError,
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelRetry,
    RefusalError,
    RepeatedToolCallError,
    RunTimeoutError,
    ToolExecutionError,
    ToolMessage,
    ToolResultError,
    ToolRetryError,
    tool,
)
from tests.chat_server import assert_history_valid, calls, completion, serve, tool_call

pytestmark = pytest.mark.anyio


@tool
def get_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    if timezone == "Mars/Olympus":
        raise ModelRetry("Mars has no time zones; use an Earth zone such as 'UTC'")
    if timezone == "Broken/Zone":
        raise ValueError("tz database is corrupt")
    return f"12:00 in {timezone}"


@tool
async def wait_forever() -> str:
    """Never returns."""
    await anyio.sleep_forever()
    return "unreachable"


@tool
def unserialisable() -> object:
    """Returns something that is not JSON."""
    return object()


def agent(client: Any, **kwargs: Any) -> Agent[Any]:
    kwargs.setdefault("tools", [get_time, wait_forever, unserialisable])
    return Agent("gpt-4o-mini", client=client, **kwargs)


def time_call(id: str, timezone: Any = "UTC") -> dict[str, Any]:
    return tool_call(id, "get_time", {"timezone": timezone})


def tool_answers(messages: list[Any]) -> list[tuple[str, Any]]:
    return [(m.tool_call_id, m.content) for m in messages if isinstance(m, ToolMessage)]


UNKNOWN_TEXT = (
    "Error: there is no function tool named 'nope'; "
    "available tools: get_time, wait_forever, unserialisable"
)
BAD_JSON_TEXT = (
    "Error: the arguments of tool 'get_time' are not valid JSON "
    "(EOF while parsing a value at line 1 column 13); send an object"
)
INVALID_TEXT = (
    "Error: invalid arguments for tool 'get_time' (1 error):\n"
    "- timezone: Input should be a valid string (got 5)"
)


# --- finish reasons ----------------------------------------------------------------------


async def test_length_raises_incomplete_output_with_the_partial_message() -> None:
    async with serve(completion("The time in Tok", finish_reason="length")) as (_, client):
        with pytest.raises(IncompleteOutputError, match="token limit") as info:
            await agent(client).run("?")
    assert info.value.partial == AssistantMessage(content="The time in Tok")
    assert info.value.messages[-1] == info.value.partial
    assert_history_valid(info.value.messages)


async def test_length_with_cut_off_tool_calls_answers_them_without_running() -> None:
    cut = tool_call("call_cut", "get_time", '{"timezone": "Asia/To')
    async with serve(
        completion(tool_calls=[time_call("call_ok"), cut], finish_reason="length")
    ) as (
        server,
        client,
    ):
        with pytest.raises(IncompleteOutputError) as info:
            await agent(client).run("?")
    assert len(server.requests) == 1
    assert tool_answers(info.value.messages) == [
        ("call_ok", "Error: not run: the response was cut off"),
        ("call_cut", "Error: not run: the response was cut off"),
    ]
    assert_history_valid(info.value.messages)


async def test_content_filter_raises() -> None:
    async with serve(completion(None, finish_reason="content_filter")) as (_, client):
        with pytest.raises(ContentFilterError, match="content filter") as info:
            await agent(client).run("?")
    assert_history_valid(info.value.messages)


async def test_refusal_raises_with_the_refusal_text() -> None:
    async with serve(calls(time_call("c1")), completion(None, refusal="I can't help.")) as (
        _,
        client,
    ):
        with pytest.raises(RefusalError, match=r"the model refused: I can't help\.") as info:
            await agent(client).run("?")
    assert info.value.refusal == "I can't help."
    assert info.value.messages[-1] == AssistantMessage(refusal="I can't help.")
    assert_history_valid(info.value.messages)


async def test_no_choices_is_a_model_behavior_error() -> None:
    empty = completion("x")
    empty["choices"] = []
    async with serve(empty) as (_, client):
        with pytest.raises(ModelBehaviorError, match="no choices") as info:
            await agent(client).run("?")
    assert_history_valid(info.value.messages)


# --- the model's mistakes go back to it --------------------------------------------------


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (tool_call("c1", "nope", "{}"), UNKNOWN_TEXT),
        (tool_call("c1", "get_time", '{"timezone": '), BAD_JSON_TEXT),
        (time_call("c1", 5), INVALID_TEXT),
    ],
    ids=["unknown-tool", "bad-json", "invalid-arguments"],
)
async def test_model_mistakes_are_fed_back(call: dict[str, Any], text: str) -> None:
    async with serve(calls(call), completion("Sorry.")) as (server, client):
        result = await agent(client).run("?")
    assert server.messages[1][-1] == {"role": "tool", "tool_call_id": "c1", "content": text}
    assert result.output == "Sorry."
    assert_history_valid(result.messages)


@pytest.mark.parametrize(
    ("bad", "name", "text"),
    [
        (lambda i: tool_call(f"c{i}", "nope", "{}"), "nope", UNKNOWN_TEXT),
        (lambda i: tool_call(f"c{i}", "get_time", '{"timezone": '), "get_time", BAD_JSON_TEXT),
        (lambda i: time_call(f"c{i}", 5), "get_time", INVALID_TEXT),
    ],
    ids=["unknown-tool", "bad-json", "invalid-arguments"],
)
async def test_tool_retry_error_after_max_tool_retries(bad: Any, name: str, text: str) -> None:
    async with serve(*[calls(bad(i)) for i in range(3)], completion("never")) as (server, client):
        with pytest.raises(ToolRetryError) as info:
            await agent(client, max_tool_retries=2).run("?")
    assert len(server.requests) == 3
    err = info.value
    assert err.tool_name == name
    assert err.last_error == text
    assert str(err) == f"tool {name!r} failed 3 times in a row; last error: {text}"
    assert tool_answers(err.messages) == [("c0", text), ("c1", text), ("c2", text)]
    assert_history_valid(err.messages)


async def test_max_tool_retries_zero_raises_on_the_first_failure() -> None:
    async with serve(calls(tool_call("c1", "nope", "{}"))) as (_, client):
        with pytest.raises(ToolRetryError) as info:
            await agent(client, max_tool_retries=0).run("?")
    assert_history_valid(info.value.messages)


async def test_a_success_resets_the_failure_count() -> None:
    replies = [
        calls(time_call("c1", 5)),
        calls(time_call("c2", 5)),
        calls(time_call("c3")),
        calls(time_call("c4", 5)),
        calls(time_call("c5", 6)),
        completion("done"),
    ]
    async with serve(*replies) as (_, client):
        result = await agent(client, max_tool_retries=2).run("?")
    assert result.output == "done"
    assert_history_valid(result.messages)


# --- tools that raise --------------------------------------------------------------------


async def test_tool_exception_goes_back_to_the_model_by_default() -> None:
    async with serve(calls(time_call("c1", "Broken/Zone")), completion("Sorry.")) as (
        server,
        client,
    ):
        result = await agent(client).run("?")
    assert server.messages[1][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "Error: ValueError: tz database is corrupt",
    }
    assert result.output == "Sorry."


async def test_tool_errors_raise_gives_tool_execution_error_with_cause() -> None:
    replies = [calls(time_call("c1", "Broken/Zone"), time_call("c2")), completion("never")]
    async with serve(*replies) as (server, client):
        with pytest.raises(ToolExecutionError) as info:
            await agent(client, tool_errors="raise").run("?")
    err = info.value
    assert len(server.requests) == 1
    assert err.tool_name == "get_time"
    assert str(err) == "tool 'get_time' raised ValueError: tz database is corrupt"
    assert isinstance(err.__cause__, ValueError)
    assert str(err.__cause__) == "tz database is corrupt"
    assert tool_answers(err.messages) == [
        ("c1", "Error: ValueError: tz database is corrupt"),
        ("c2", "12:00 in UTC"),
    ]
    assert_history_valid(err.messages)


async def test_model_retry_message_goes_back_to_the_model() -> None:
    replies = [calls(time_call("c1", "Mars/Olympus")), calls(time_call("c2")), completion("ok")]
    async with serve(*replies) as (server, client):
        result = await agent(client, tool_errors="raise").run("?")
    assert server.messages[1][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "Error: Mars has no time zones; use an Earth zone such as 'UTC'",
    }
    assert result.output == "ok"
    assert_history_valid(result.messages)


async def test_model_retry_counts_towards_tool_retry_error() -> None:
    replies = [calls(time_call(f"c{i}", "Mars/Olympus")) for i in range(2)]
    async with serve(*replies) as (_, client):
        with pytest.raises(ToolRetryError, match="Mars has no time zones") as info:
            await agent(client, max_tool_retries=1).run("?")
    assert_history_valid(info.value.messages)


async def test_unserialisable_result_fails_fast_naming_the_tool() -> None:
    async with serve(calls(tool_call("c1", "unserialisable"))) as (_, client):
        with pytest.raises(ToolResultError, match="tool 'unserialisable' returned a value"):
            await agent(client).run("?")


# --- limits ------------------------------------------------------------------------------


async def test_max_turns_exceeded() -> None:
    replies = [calls(time_call(f"c{i}", f"Zone/{i}")) for i in range(3)]
    async with serve(*replies) as (server, client):
        with pytest.raises(MaxTurnsExceeded, match="max_turns=2") as info:
            await agent(client, max_turns=2).run("?")
    assert len(server.requests) == 2
    assert tool_answers(info.value.messages) == [
        ("c0", "12:00 in Zone/0"),
        ("c1", "12:00 in Zone/1"),
    ]
    assert_history_valid(info.value.messages)


async def test_on_max_turns_answer_makes_one_last_request_without_tools() -> None:
    replies = [calls(time_call(f"c{i}", f"Zone/{i}")) for i in range(2)]
    async with serve(*replies, completion("It is 12:00.")) as (server, client):
        result = await agent(client, max_turns=2, on_max_turns="answer").run("?")
    assert [body["tool_choice"] for body in server.requests] == ["auto", "auto", "none"]
    assert result.output == "It is 12:00."
    assert result.turns == 3
    assert_history_valid(result.messages)


async def test_on_max_turns_answer_still_raises_if_the_model_keeps_calling() -> None:
    replies = [calls(time_call(f"c{i}", f"Zone/{i}")) for i in range(3)]
    async with serve(*replies) as (server, client):
        with pytest.raises(MaxTurnsExceeded) as info:
            await agent(client, max_turns=2, on_max_turns="answer").run("?")
    assert len(server.requests) == 3
    assert_history_valid(info.value.messages)


async def test_repeated_tool_call_error() -> None:
    replies = [calls(time_call(f"c{i}")) for i in range(3)]
    async with serve(*replies, completion("never")) as (server, client):
        with pytest.raises(RepeatedToolCallError) as info:
            await agent(client).run("?")
    err = info.value
    assert len(server.requests) == 3
    assert (err.tool_name, err.arguments) == ("get_time", '{"timezone": "UTC"}')
    assert "3 turns in a row" in str(err)
    assert tool_answers(err.messages) == [
        ("c0", "12:00 in UTC"),
        ("c1", "12:00 in UTC"),
        ("c2", "Error: not run: the run stopped: the same call was repeated"),
    ]
    assert_history_valid(err.messages)


async def test_repeats_differing_only_in_spacing_and_key_order_are_caught() -> None:
    texts = ['{"timezone": "UTC"}', '{"timezone":"UTC"}', ' { "timezone" :  "UTC" } ']
    replies = [calls(tool_call(f"c{i}", "get_time", text)) for i, text in enumerate(texts)]
    async with serve(*replies, completion("never")) as (_, client):
        with pytest.raises(RepeatedToolCallError) as info:
            await agent(client).run("?")
    assert info.value.arguments == texts[2]
    assert_history_valid(info.value.messages)


async def test_repeats_that_are_interrupted_are_fine() -> None:
    replies = [
        calls(time_call("c0")),
        calls(time_call("c1")),
        calls(time_call("c2", "Asia/Tokyo")),
        calls(time_call("c3")),
        calls(time_call("c4")),
        completion("done"),
    ]
    async with serve(*replies) as (_, client):
        result = await agent(client).run("?")
    assert result.output == "done"


async def test_repeated_tool_calls_tell_answers_the_model() -> None:
    replies = [calls(time_call(f"c{i}")) for i in range(3)]
    async with serve(*replies, completion("12:00 in UTC")) as (server, client):
        result = await agent(client, repeated_tool_calls="tell").run("?")
    assert server.messages[3][-1] == {
        "role": "tool",
        "tool_call_id": "c2",
        "content": "Error: not run: the same call with the same arguments was made 3 turns "
        "in a row; use the results you already have",
    }
    assert result.output == "12:00 in UTC"
    assert_history_valid(result.messages)


async def test_run_timeout_while_a_tool_runs() -> None:
    replies = [
        calls(time_call("c1"), tool_call("c2", "wait_forever"), time_call("c3", "Asia/Tokyo"))
    ]
    async with serve(*replies) as (server, client):
        with anyio.fail_after(5):
            with pytest.raises(RunTimeoutError, match=r"timeout of 0\.1 s") as info:
                await agent(client).run("?", timeout=0.1)
    assert len(server.requests) == 1
    assert tool_answers(info.value.messages) == [
        ("c1", "12:00 in UTC"),
        ("c2", "Error: not run: the run was cancelled"),
        ("c3", "12:00 in Asia/Tokyo"),
    ]
    assert_history_valid(info.value.messages)


async def test_agent_timeout_applies_to_the_whole_run() -> None:
    async with serve(calls(tool_call("c1", "wait_forever"))) as (_, client):
        with anyio.fail_after(5), pytest.raises(RunTimeoutError) as info:
            await agent(client, timeout=0.05).run("?")
    assert_history_valid(info.value.messages)


async def test_every_run_error_subclass_is_covered() -> None:
    """The errors tested above with assert_history_valid are every AgentRunError."""
    tested = {
        IncompleteOutputError,
        ContentFilterError,
        RefusalError,
        ModelBehaviorError,
        ToolRetryError,
        ToolExecutionError,
        MaxTurnsExceeded,
        RepeatedToolCallError,
        RunTimeoutError,
    }
    from agentkit import (
        OutputValidationError,  # tested in test_agent_output.py
        UsageLimitExceeded,  # tested in test_agent_api.py
    )

    # The core's own: an integration's run errors (agentkit.durable's
    # ReplayMismatchError, once that is loaded) are tested with the integration.
    core = {c for c in AgentRunError.__subclasses__() if c.__module__ == "agentkit._exceptions"}
    assert core == tested | {OutputValidationError, UsageLimitExceeded}


async def test_failures_are_counted_per_turn_not_per_call() -> None:
    """Three bad calls of one tool in one turn are one failure: the model still gets its retries."""
    bad_turn = calls(*[time_call(f"c{i}", i) for i in range(3)])
    replies = [bad_turn, calls(time_call("c3", 5)), calls(time_call("c4")), completion("done")]
    async with serve(*replies) as (server, client):
        result = await agent(client, max_tool_retries=2).run("?")
    assert result.output == "done"
    assert [m["content"] for m in server.messages[1][-3:]] == [
        INVALID_TEXT.replace("got 5", f"got {i}") for i in range(3)
    ]
    assert_history_valid(result.messages)


async def test_a_failure_and_a_success_of_one_tool_in_a_turn_is_a_failure() -> None:
    mixed = calls(time_call("c0", 5), time_call("c1"))
    async with serve(mixed, mixed, completion("never")) as (_, client):
        with pytest.raises(ToolRetryError) as info:
            await agent(client, max_tool_retries=1).run("?")
    assert info.value.last_error == INVALID_TEXT
    assert_history_valid(info.value.messages)


async def test_tool_timeout_is_fed_back() -> None:
    @tool(timeout=0.01)
    async def sleepy() -> str:
        """Too slow."""
        await anyio.sleep_forever()
        return ""

    async with serve(calls(tool_call("c1", "sleepy")), completion("ok")) as (server, client):
        await Agent("m", client=client, tools=[sleepy], tool_errors="raise").run("?")
    assert server.messages[1][-1]["content"] == "Error: tool 'sleepy' timed out after 0.01 seconds"


async def test_run_timeout_while_waiting_for_the_model() -> None:
    from agentkit.testing import FunctionModel, ModelRequest

    async def never(request: ModelRequest) -> str:
        await anyio.sleep_forever()
        return ""

    with anyio.fail_after(5), pytest.raises(RunTimeoutError) as info:
        await Agent("m", client=FunctionModel(never), tools=[get_time]).run("?", timeout=0.02)
    assert [m.role for m in info.value.messages] == ["user"]
    assert_history_valid(info.value.messages)

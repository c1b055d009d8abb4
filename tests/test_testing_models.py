"""`agentkit.testing`: agents tested with no HTTP at all."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import pytest

import agentkit.testing
from agentkit import (
    Agent,
    AssistantMessage,
    ChatCompletion,
    Choice,
    IncompleteOutputError,
    ModelSettings,
    ToolCall,
    ToolMessage,
    Usage,
    UserError,
    tool,
)
from agentkit.testing import FunctionModel, ModelRequest, Reply, ScriptedModel, call, tool_calls
from tests.chat_server import assert_history_valid
from tests.openai_spec.validate import validate_request

pytestmark = pytest.mark.anyio


@tool
def get_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    return f"12:00 in {timezone}"


def answer(request: ModelRequest) -> Reply:
    last = request.messages[-1]
    if isinstance(last, ToolMessage):
        return f"The time is {last.content}."
    return call("get_time", timezone="Asia/Tokyo")


async def test_function_model_with_a_sync_function() -> None:
    seen: list[ModelRequest] = []

    def fn(request: ModelRequest) -> Reply:
        seen.append(request)
        return answer(request)

    model = FunctionModel(fn)
    result = await Agent("test", client=model, tools=[get_time], tool_choice="required").run("?")

    assert result.output == "The time is 12:00 in Asia/Tokyo."
    assert [r.tool_choice for r in seen] == ["required", "auto"]
    assert seen[0].tools == [get_time.definition]
    assert [m.role for m in seen[1].messages] == ["user", "assistant", "tool"]
    assert len(model.requests) == 2
    assert model.requests[0] == seen[0].body
    assert model.requests[0]["model"] == "test"
    for body in model.requests:
        validate_request(body, forbid_unknown_keys=True)
    assert_history_valid(result.messages)


async def test_function_model_with_an_async_function() -> None:
    async def fn(request: ModelRequest) -> Reply:
        return answer(request)

    result = await Agent("test", client=FunctionModel(fn), tools=[get_time]).run("?")
    assert result.output == "The time is 12:00 in Asia/Tokyo."
    assert result.usage.total_tokens > 0
    assert result.turns == 2


async def test_function_model_without_tools_sees_none() -> None:
    seen: list[ModelRequest] = []

    def fn(request: ModelRequest) -> Reply:
        seen.append(request)
        return "hello"

    await Agent("test", client=FunctionModel(fn)).run("hi")
    assert seen[0].tools == []
    assert seen[0].tool_choice is None
    assert set(seen[0].body) == {"model", "messages"}


@pytest.mark.allow_unknown_request_keys
async def test_function_model_body_has_settings_in_wire_form() -> None:
    settings = ModelSettings(temperature=0.5, stop=("END",), extra_body={"top_k": 3})
    model = FunctionModel(lambda request: "ok")
    await Agent("test", client=model, settings=settings, parallel_tool_calls=False).run("hi")
    body = model.requests[0]
    assert body == {
        "model": "test",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
        "stop": ["END"],
        "top_k": 3,
    }


async def test_function_model_can_return_a_whole_completion() -> None:
    completion = ChatCompletion(
        id="x",
        created=0,
        model="m",
        choices=[Choice(message=AssistantMessage(content="Tok"), finish_reason="length")],
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
    )
    with pytest.raises(IncompleteOutputError) as info:
        await Agent("test", client=FunctionModel(lambda r: completion)).run("?")
    assert info.value.partial.content == "Tok"


async def test_a_bad_reply_type_is_a_user_error() -> None:
    with pytest.raises(UserError, match="reply must be str, AssistantMessage or ChatCompletion"):
        await Agent("test", client=FunctionModel(lambda r: 42)).run("?")  # type: ignore[arg-type,return-value]


async def test_scripted_model_replays_replies_in_order() -> None:
    model = ScriptedModel(
        [
            tool_calls(("get_time", {"timezone": "UTC"}), ("get_time", {"timezone": "Asia/Tokyo"})),
            call("get_time", {"timezone": "Europe/Paris"}),
            "All three are 12:00.",
        ]
    )
    result = await Agent("test", client=model, tools=[get_time]).run("?")
    assert result.output == "All three are 12:00."
    answers = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert answers == ["12:00 in UTC", "12:00 in Asia/Tokyo", "12:00 in Europe/Paris"]
    assert len(model.requests) == 3
    assert_history_valid(result.messages)


async def test_scripted_model_running_out_is_a_clear_user_error() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC")])
    with pytest.raises(
        UserError, match="ScriptedModel has 1 replies but received request number 2"
    ):
        await Agent("test", client=model, tools=[get_time]).run("?")


async def test_call_with_raw_json_arguments_tests_bad_arguments() -> None:
    model = ScriptedModel([call("get_time", '{"timezone": '), "Sorry."])
    result = await Agent("test", client=model, tools=[get_time]).run("?")
    tool_message = result.messages[2]
    assert isinstance(tool_message, ToolMessage)
    assert isinstance(tool_message.content, str)
    assert tool_message.content.startswith("Error: the arguments of tool 'get_time' are not valid")


def test_call_and_tool_calls_build_assistant_messages() -> None:
    message = call("get_time", timezone="UTC")
    assert message.content is None
    assert message.tool_calls is not None
    (only,) = message.tool_calls
    assert isinstance(only, ToolCall)
    assert only.function.name == "get_time"
    assert json.loads(only.function.arguments) == {"timezone": "UTC"}
    assert re.fullmatch(r"call_[0-9a-f]{24}", only.id)

    two = tool_calls(("a", {"x": 1}), ("b", "{}"))
    assert two.tool_calls is not None
    ids = [c.id for c in two.tool_calls]
    assert len(set(ids)) == 2
    assert [c.function.arguments for c in two.tool_calls if isinstance(c, ToolCall)] == [
        '{"x": 1}',
        "{}",
    ]


def test_test_models_work_with_run_sync() -> None:
    model = ScriptedModel([call("get_time", timezone="UTC"), "noon"])
    result = Agent("test", client=model, tools=[get_time]).run_sync("?")
    assert result.output == "noon"


def _docstring_example() -> str:
    doc = agentkit.testing.__doc__ or ""
    match = re.search(r"```python\n(.*?)```", doc, re.DOTALL)
    assert match is not None, "agentkit.testing's docstring has no ```python example"
    return textwrap.dedent(match.group(1)).replace('\\"\\"\\"', '"""')


def test_module_docstring_example_works() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_docstring_example(), "agentkit.testing example", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_docstring_example_copied_here() -> None:
    from agentkit import Agent, tool
    from agentkit.testing import ScriptedModel, call

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = ScriptedModel([call("add", a=2, b=3), "The sum is 5."])
    result = Agent("test", client=model, tools=[add]).run_sync("2 + 3?")
    assert result.output == "The sum is 5."
    assert result.messages[2].content == "5"  # the tool's answer
    assert model.requests[1]["messages"][-1]["role"] == "tool"

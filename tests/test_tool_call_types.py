"""Tool calls of types other than `function`: kept, answered, never run."""

from __future__ import annotations

import pytest

from agentkit import (
    Agent,
    AssistantMessage,
    ChatCompletion,
    Choice,
    CustomToolCall,
    OtherToolCall,
    ToolCall,
    ToolMessage,
    tool,
)
from agentkit.testing import ScriptedModel

RAW = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_f",
            "type": "function",
            "function": {"name": "echo", "arguments": '{"text": "hi"}'},
        },
        {"id": "call_c", "type": "custom", "custom": {"name": "math_exp", "input": "4 + 4"}},
        {"id": "call_w", "type": "web_search", "web_search": {"name": "search", "query": "x"}},
        {"id": "call_n", "function": {"name": "echo", "arguments": '{"text": "no type"}'}},
    ],
}


def test_each_type_parses_and_round_trips() -> None:
    message = AssistantMessage.model_validate(RAW)
    calls = message.tool_calls or []
    assert [type(c) for c in calls] == [ToolCall, CustomToolCall, OtherToolCall, ToolCall]
    assert [c.tool_name for c in calls] == ["echo", "math_exp", "search", "echo"]
    assert [c.tool_input for c in calls] == [
        '{"text": "hi"}',
        "4 + 4",
        '{"name":"search","query":"x"}',
        '{"text": "no type"}',
    ]
    dumped = message.model_dump(mode="json", exclude_unset=True)
    assert dumped["tool_calls"][:3] == RAW["tool_calls"][:3]


ran: list[str] = []


@tool
def echo(text: str) -> str:
    """Say it back."""
    ran.append(text)
    return text


@pytest.mark.anyio
async def test_only_function_calls_run_and_every_call_is_answered() -> None:
    ran.clear()
    reply = ChatCompletion(
        id="c",
        created=0,
        model="m",
        choices=[Choice(message=AssistantMessage.model_validate(RAW), finish_reason="tool_calls")],
    )
    result = await Agent("m", client=ScriptedModel([reply, "done"]), tools=[echo]).run("go")
    assert sorted(ran) == ["hi", "no type"]  # the two calls run at once, in threads
    answers = [m for m in result.messages if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in answers] == ["call_f", "call_c", "call_w", "call_n"]
    assert answers[1].content == (
        "Error: there is no custom tool named 'math_exp'; available tools: echo"
    )
    assert answers[2].content == (
        "Error: there is no web_search tool named 'search'; available tools: echo"
    )
    assert result.output == "done"

"""Fuzzing the model's side: hypothesis makes the server answer with garbage tool calls
(unknown names, arguments that are not JSON, deeply nested or huge, of the wrong
types, missing or duplicate ids) and garbage `finish_reason`s, sent as real JSON
responses through `ChatClient` (an `httpx.MockTransport`).

Whatever arrives, the run ends with a result or one of agentkit's typed errors,
every history it leaves answers each tool call exactly once, every request it
sends validates against the spec (conftest.py), and no function runs unless it
is a registered tool called with arguments that validated.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agentkit import Agent, AgentKitError, AgentRunError, ChatClient, tool
from tests.reliability_helpers import answered_once

pytestmark = pytest.mark.anyio

CALLED: list[tuple[str, dict[str, Any]]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    assert isinstance(a, int) and isinstance(b, int)
    CALLED.append(("add", {"a": a, "b": b}))
    return a + b


@tool
async def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    assert isinstance(text, str) and isinstance(times, int)
    CALLED.append(("echo", {"text": text, "times": times}))
    return text * max(0, min(times, 3))


def forbidden() -> str:
    """Not a tool of the agent: the model naming it must never run it."""
    CALLED.append(("forbidden", {}))
    return "ran"


TOOLS = {"add", "echo"}

# --- strategies -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@st.composite
def arguments(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(
            [
                "valid-add",
                "valid-echo",
                "wrong-types",
                "json",
                "not-json",
                "nested",
                "huge",
                "empty",
            ]
        )
    )
    if kind == "valid-add":
        return json.dumps({"a": draw(st.integers()), "b": draw(st.integers())})
    if kind == "valid-echo":
        return json.dumps({"text": draw(st.text(max_size=30))})
    if kind == "wrong-types":
        return json.dumps(
            {"a": draw(json_values), "b": draw(json_values), "text": draw(json_values)}
        )
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "not-json":
        return draw(st.text(max_size=60))
    if kind == "nested":
        depth = draw(st.integers(1, 5000))
        if draw(st.booleans()):
            return "[" * depth + "]" * depth
        return '{"a":' * depth + "1" + "}" * depth
    if kind == "huge":
        size = draw(st.integers(100_000, 3_000_000))
        return json.dumps({"text": "x" * size, "a": 1, "b": 2})
    return ""


@st.composite
def tool_call(draw: st.DrawFn, ids: list[str]) -> dict[str, Any]:
    name = draw(
        st.sampled_from(["add", "echo", "forbidden", "__init__", "add ", "", "ECHO"])
        | st.text(max_size=20)
    )
    id_kind = draw(st.sampled_from(["fresh", "fresh", "duplicate", "missing", "empty", "weird"]))
    call: dict[str, Any] = {}
    if id_kind == "fresh" or (id_kind == "duplicate" and not ids):
        call["id"] = f"call_{len(ids)}_{draw(st.integers(0, 10**6))}"
    elif id_kind == "duplicate":
        call["id"] = draw(st.sampled_from(ids))
    elif id_kind == "empty":
        call["id"] = ""
    elif id_kind == "weird":
        call["id"] = draw(st.text(max_size=30))
    if "id" in call:
        ids.append(call["id"])
    if draw(st.integers(0, 9)) == 0:
        call["type"] = "custom"
        call["custom"] = {"name": name, "input": draw(st.text(max_size=30))}
    else:
        call["type"] = "function"
        call["function"] = {"name": name, "arguments": draw(arguments())}
    return call


finish_reasons = st.one_of(
    st.none(),
    st.sampled_from(["stop", "tool_calls", "length", "content_filter", "function_call"]),
    st.text(max_size=15),
)


@st.composite
def answers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The assistant turns the server gives, in order, as whole response bodies."""
    ids: list[str] = []
    turns = []
    for _ in range(draw(st.integers(1, 4))):
        calls = draw(st.lists(tool_call(ids), max_size=4))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": draw(st.none() | st.text(max_size=30)),
            "refusal": draw(st.none() | st.just("I can't.")) if not calls else None,
        }
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": draw(finish_reasons)}
        turns.append(
            {
                "id": "chatcmpl-fuzz",
                "object": "chat.completion",
                "created": 1,
                "model": "fuzz",
                "choices": [choice] if draw(st.integers(0, 19)) else [],
            }
        )
    return turns


FINAL = {
    "id": "chatcmpl-fuzz",
    "object": "chat.completion",
    "created": 1,
    "model": "fuzz",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=answers(), tool_errors=st.sampled_from(["return", "raise"]))
async def test_garbage_from_the_model_never_escapes_as_anything_but_a_typed_error(
    script: list[dict[str, Any]], tool_errors: str
) -> None:
    replies = list(script)

    def respond(request: httpx.Request) -> httpx.Response:
        body = replies.pop(0) if replies else FINAL
        return httpx.Response(200, json=body)

    CALLED.clear()
    http = httpx.AsyncClient(transport=httpx.MockTransport(respond))
    client = ChatClient("http://fuzz.test/v1", api_key="k", http_client=http, max_retries=0)
    agent = Agent(
        "fuzz",
        client=client,
        tools=[add, echo],
        max_turns=4,
        tool_errors=tool_errors,  # type: ignore[arg-type]
    )
    try:
        result = await agent.run("go")
    except AgentRunError as exc:
        answered_once(exc.messages)
    except AgentKitError:
        pass  # a response the client rejected (no id, say): nothing reached the loop
    else:
        answered_once(result.messages)
    finally:
        await http.aclose()
    assert {name for name, _ in CALLED} <= TOOLS, CALLED


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_arguments_nested_too_deep_for_python_are_answered_not_crashed_on(
    opener: str,
) -> None:
    depth = 50_000  # far past the interpreter's recursion limit on any backend
    closer = "]" if opener == "[" else "}"
    arguments = opener * depth + ("" if opener == "[" else "1") + closer * depth
    call = {
        "id": "call_deep",
        "type": "function",
        "function": {"name": "add", "arguments": arguments},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    first = {**FINAL, "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    replies = [first]

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=replies.pop(0) if replies else FINAL)

    CALLED.clear()
    async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http:
        client = ChatClient("http://fuzz.test/v1", api_key="k", http_client=http)
        result = await Agent("fuzz", client=client, tools=[add, echo]).run("go")
    assert result.output == "ok" and CALLED == []
    answered_once(result.messages)
    assert "Error:" in str(result.messages[-2].content)

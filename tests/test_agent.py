"""Whole runs of `Agent` through a real `ChatClient` against a respx-mocked endpoint."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pytest
import respx

from agentkit import (
    Agent,
    AssistantMessage,
    ImagePart,
    ImageURL,
    ModelRequestEnd,
    ModelRequestStart,
    ModelSettings,
    RunContext,
    RunEvent,
    SystemMessage,
    TextPart,
    ToolCallEnd,
    ToolCallStart,
    ToolMessage,
    Usage,
    UserError,
    UserMessage,
    tool,
)
from agentkit._tools.tool import Tool
from tests.chat_server import (
    BASE,
    ChatServer,
    assert_history_valid,
    calls,
    completion,
    serve,
    tool_call,
)

pytestmark = pytest.mark.anyio


@tool
async def get_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    # The first zone answers last, so call order and finishing order differ.
    await anyio.sleep(0.02 if timezone == "Asia/Tokyo" else 0)
    return f"12:00 in {timezone}"


@tool
def find_zone(city: str) -> list[str]:
    """Time zones of a city.

    Args:
        city: The city's English name.
    """
    return [f"Zone/{city}"]


TOKYO = tool_call("call_a", "get_time", {"timezone": "Asia/Tokyo"})
PARIS = tool_call("call_b", "get_time", {"timezone": "Europe/Paris"})


def agent(client: Any, **kwargs: Any) -> Agent[Any]:
    kwargs.setdefault("tools", [get_time, find_zone])
    return Agent("gpt-4o-mini", client=client, **kwargs)


# --- the loop ----------------------------------------------------------------------------


async def test_two_parallel_tool_calls_answered_in_call_order() -> None:
    async with serve(calls(TOKYO, PARIS), completion("Both 12:00.")) as (server, client):
        result = await agent(client, instructions="Be brief.").run("Tokyo and Paris?")

    assert result.output == "Both 12:00."
    assert result.turns == 2
    assert len(server.requests) == 2
    first = server.requests[0]
    assert set(first) == {"model", "messages", "tools", "tool_choice"}
    assert first["model"] == "gpt-4o-mini"
    assert first["tools"] == [get_time.definition, find_zone.definition]
    assert first["tool_choice"] == "auto"
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tokyo and Paris?"},
    ]
    assert server.messages[1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tokyo and Paris?"},
        {"role": "assistant", "tool_calls": [TOKYO, PARIS]},
        {"role": "tool", "tool_call_id": "call_a", "content": "12:00 in Asia/Tokyo"},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00 in Europe/Paris"},
    ]
    assert result.messages[-1] == AssistantMessage(content="Both 12:00.")
    # The instructions are the agent's, sent first in every request, not part of the history.
    assert [m.model_dump(mode="json", exclude_none=True) for m in result.messages] == [
        *server.messages[1][1:],
        {"role": "assistant", "content": "Both 12:00."},
    ]
    assert_history_valid(result.messages)


async def test_non_string_tool_result_is_sent_as_json() -> None:
    call = tool_call("call_1", "find_zone", {"city": "Lyon"})
    async with serve(calls(call), completion("Zone/Lyon")) as (server, client):
        result = await agent(client).run("Zone of Lyon?")
    assert server.messages[1][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '["Zone/Lyon"]',
    }
    assert_history_valid(result.messages)


async def test_stop_without_tools_is_the_answer() -> None:
    async with serve(completion("Hello!")) as (_, client):
        result = await agent(client).run("Hi")
    assert result.output == "Hello!"
    assert result.turns == 1
    assert [type(m) for m in result.messages] == [UserMessage, AssistantMessage]
    assert_history_valid(result.messages)


async def test_sequential_turns() -> None:
    zone = tool_call("call_1", "find_zone", {"city": "Tokyo"})
    time = tool_call("call_2", "get_time", {"timezone": "Zone/Tokyo"})
    async with serve(calls(zone), calls(time), completion("12:00")) as (server, client):
        result = await agent(client).run("Time in Tokyo?")
    assert result.turns == 3
    assert [m["role"] for m in server.messages[2]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert server.messages[2][-1]["content"] == "12:00 in Zone/Tokyo"
    assert_history_valid(result.messages)


# --- request fields ----------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["auto", "none"])
async def test_tool_choice_auto_and_none_are_sent_every_request(choice: str) -> None:
    async with serve(calls(PARIS), completion("12:00")) as (server, client):
        result = await agent(client, tool_choice=choice).run("Paris?")
    assert [body["tool_choice"] for body in server.requests] == [choice, choice]
    assert_history_valid(result.messages)


async def test_tool_choice_required_then_auto() -> None:
    async with serve(calls(PARIS), completion("12:00")) as (server, client):
        result = await agent(client, tool_choice="required").run("Paris?")
    assert [body["tool_choice"] for body in server.requests] == ["required", "auto"]
    assert_history_valid(result.messages)


async def test_tool_choice_named_is_sent_as_function_then_auto() -> None:
    async with serve(calls(PARIS), completion("12:00")) as (server, client):
        result = await agent(client, tool_choice="get_time").run("Paris?")
    named = {"type": "function", "function": {"name": "get_time"}}
    assert [body["tool_choice"] for body in server.requests] == [named, "auto"]
    assert result.output == "12:00"


@pytest.mark.parametrize("choice", ["required", "get_time"])
async def test_tool_choice_stays_forced_without_reset(choice: str) -> None:
    async with serve(calls(PARIS), calls(TOKYO), completion("12:00")) as (server, client):
        result = await agent(client, tool_choice=choice, reset_tool_choice=False).run("?")
    sent = (
        "required"
        if choice == "required"
        else {
            "type": "function",
            "function": {"name": "get_time"},
        }
    )
    assert [body["tool_choice"] for body in server.requests] == [sent, sent, sent]
    assert_history_valid(result.messages)


def test_unknown_tool_choice_name_is_rejected_at_construction() -> None:
    with pytest.raises(UserError, match=r"tool_choice 'nope' is not a tool.*get_time, find_zone"):
        Agent("m", tools=[get_time, find_zone], tool_choice="nope")
    with pytest.raises(UserError, match="needs at least one tool"):
        Agent("m", tool_choice="required")
    with pytest.raises(UserError, match="tool_choice must be"):
        Agent("m", tools=[get_time], tool_choice=None)  # type: ignore[arg-type]


async def test_no_tools_sends_no_tools_or_tool_choice() -> None:
    async with serve(completion("Hi")) as (server, client):
        await Agent("gpt-4o-mini", client=client, parallel_tool_calls=False).run("Hi")
    assert set(server.requests[0]) == {"model", "messages"}


@pytest.mark.parametrize("parallel", [None, True, False])
async def test_parallel_tool_calls_sent_only_when_set(parallel: bool | None) -> None:
    async with serve(completion("Hi")) as (server, client):
        await agent(client, parallel_tool_calls=parallel).run("Hi")
    body = server.requests[0]
    if parallel is None:
        assert "parallel_tool_calls" not in body
    else:
        assert body["parallel_tool_calls"] is parallel


async def test_model_settings_are_sent() -> None:
    settings = ModelSettings(
        temperature=0.2,
        top_p=0.9,
        max_tokens=300,
        max_completion_tokens=200,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        seed=7,
        stop=("END", "STOP"),
        logit_bias={"50256": -100},
        user="user-1",
        reasoning_effort="low",
        service_tier="auto",
    )
    async with serve(calls(PARIS), completion("ok")) as (server, client):
        await agent(client, settings=settings).run("Hi")
    expected = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 300,
        "max_completion_tokens": 200,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "seed": 7,
        "stop": ["END", "STOP"],
        "logit_bias": {"50256": -100},
        "user": "user-1",
        "reasoning_effort": "low",
        "service_tier": "auto",
    }
    for body in server.requests:
        assert {k: body[k] for k in expected} == expected
        assert set(body) == {"model", "messages", "tools", "tool_choice", *expected}


async def test_single_stop_string_is_sent_as_is() -> None:
    async with serve(completion("ok")) as (server, client):
        await agent(client, settings=ModelSettings(stop="END")).run("Hi")
    assert server.requests[0]["stop"] == "END"


@pytest.mark.allow_unknown_request_keys
async def test_model_settings_extra_body_is_merged() -> None:
    settings = ModelSettings(temperature=0, extra_body={"top_k": 5})
    async with serve(completion("ok")) as (server, client):
        await agent(client, settings=settings).run("Hi")
    assert server.requests[0]["top_k"] == 5
    assert server.requests[0]["temperature"] == 0
    assert "extra_body" not in server.requests[0]


async def test_user_content_parts_as_the_prompt() -> None:
    prompt = [
        TextPart(text="What is in this picture?"),
        ImagePart(image_url=ImageURL(url="https://example.com/cat.png", detail="low")),
    ]
    async with serve(completion("A cat.")) as (server, client):
        result = await agent(client).run(prompt)
    assert server.messages[0] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
            ],
        }
    ]
    assert result.output == "A cat."
    assert_history_valid(result.messages)


async def test_content_parts_as_dicts() -> None:
    prompt: Any = [{"type": "text", "text": "Hi"}]
    async with serve(completion("Hello")) as (server, client):
        await agent(client).run(prompt)
    assert server.messages[0][0]["content"] == [{"type": "text", "text": "Hi"}]


async def test_bad_prompt_is_a_user_error() -> None:
    async with serve() as (server, client):
        with pytest.raises(UserError, match="prompt must be text or content parts"):
            await agent(client).run([42])  # type: ignore[list-item]
        # The API rejects a user message with no content parts.
        with pytest.raises(UserError, match="at least one content part"):
            await agent(client).run([])
    assert server.requests == []


# --- usage, context, history -------------------------------------------------------------


async def test_usage_is_summed_over_requests() -> None:
    async with serve(
        completion(tool_calls=[PARIS], usage=(10, 5)),
        completion(tool_calls=[TOKYO], usage=(20, 7)),
        completion("done", usage=(30, 1)),
    ) as (_, client):
        result = await agent(client).run("?")
    assert result.usage == Usage(prompt_tokens=60, completion_tokens=13, total_tokens=73)
    assert result.turns == 3


async def test_usage_details_are_summed() -> None:
    def with_details(body: dict[str, Any]) -> dict[str, Any]:
        reply = completion("ok" if len(body["messages"]) > 1 else None, tool_calls=None)
        reply["usage"]["prompt_tokens_details"] = {"cached_tokens": 4}
        return reply

    first = completion(tool_calls=[PARIS])
    first["usage"]["prompt_tokens_details"] = {"cached_tokens": 3}
    async with serve(first, with_details) as (_, client):
        result = await agent(client).run("?")
    assert result.usage.prompt_tokens_details is not None
    assert result.usage.prompt_tokens_details.cached_tokens == 7
    assert result.usage.total_tokens == 30


async def test_run_context_is_injected() -> None:
    seen: list[RunContext[dict[str, str]]] = []

    @tool
    def whoami(ctx: RunContext[dict[str, str]], greeting: str) -> str:
        """Who is asking."""
        seen.append(ctx)
        return f"{greeting}, {ctx.deps['user']}"

    call = tool_call("call_ctx", "whoami", {"greeting": "Hello"})
    async with serve(completion(tool_calls=[call], usage=(11, 3)), completion("ok")) as (
        server,
        client,
    ):
        result = await Agent("m", client=client, tools=[whoami]).run("?", deps={"user": "ada"})

    assert result.messages[2] == ToolMessage(tool_call_id="call_ctx", content="Hello, ada")
    (ctx,) = seen
    assert ctx.deps == {"user": "ada"}
    assert ctx.tool_call_id == "call_ctx"
    assert ctx.usage == Usage(prompt_tokens=11, completion_tokens=3, total_tokens=14)
    assert list(ctx.messages) == result.messages[:2]
    assert isinstance(ctx.messages[-1], AssistantMessage)
    assert "whoami" in json.dumps(server.requests[0]["tools"])


async def test_message_history_continues_a_conversation() -> None:
    async with serve(calls(PARIS), completion("12:00 in Paris."), completion("Still 12:00.")) as (
        server,
        client,
    ):
        a = agent(client, instructions="Be brief.")
        first = await a.run("Paris?")
        second = await a.run("And now?", message_history=first.messages)

    assert server.messages[2] == [
        {"role": "system", "content": "Be brief."},
        *[m.model_dump(mode="json", exclude_none=True) for m in first.messages],
        {"role": "user", "content": "And now?"},
    ]
    # The instructions are sent once per request and kept out of the history.
    assert not any(isinstance(m, SystemMessage) for m in second.messages)
    assert second.messages[: len(first.messages)] == first.messages
    assert second.turns == 1
    assert second.output == "Still 12:00."
    assert_history_valid(second.messages)


async def test_message_history_as_wire_dicts() -> None:
    history = [
        {"role": "user", "content": "Paris?"},
        {"role": "assistant", "tool_calls": [PARIS]},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "assistant", "content": "12:00."},
    ]
    async with serve(completion("Yes.")) as (server, client):
        result = await agent(client).run("Sure?", message_history=history)
    assert server.messages[0] == [*history, {"role": "user", "content": "Sure?"}]
    assert_history_valid(result.messages)


@pytest.mark.parametrize(
    ("history", "match"),
    [
        (
            [{"role": "user", "content": "?"}, {"role": "assistant", "tool_calls": [PARIS]}],
            r"message_history\[1\]: tool call 'call_b' has no tool message",
        ),
        (
            [
                {"role": "assistant", "tool_calls": [TOKYO, PARIS]},
                {"role": "tool", "tool_call_id": "call_b", "content": "x"},
                {"role": "tool", "tool_call_id": "call_a", "content": "x"},
            ],
            r"expected the answer to tool call 'call_a'",
        ),
        (
            [
                {"role": "user", "content": "?"},
                {"role": "tool", "tool_call_id": "x", "content": ""},
            ],
            r"message_history\[1\]: tool message for 'x' answers no tool call",
        ),
        (
            [{"role": "robot", "content": "?"}],
            r"message_history\[0\] is not a valid message",
        ),
    ],
)
async def test_bad_message_history_is_a_user_error(history: Any, match: str) -> None:
    async with serve(completion("never")) as (server, client):
        with pytest.raises(UserError, match=match):
            await agent(client).run("?", message_history=history)
    assert server.requests == []


# --- events ------------------------------------------------------------------------------


def _check_events(events: list[RunEvent]) -> None:
    assert [type(e) for e in events] == [
        ModelRequestStart,
        ModelRequestEnd,
        ToolCallStart,
        ToolCallStart,
        ToolCallEnd,
        ToolCallEnd,
        ModelRequestStart,
        ModelRequestEnd,
    ]
    start1, end1, call_a, call_b, *ends, start2, end2 = events
    assert start1 == ModelRequestStart(turn=1, message_count=1)
    assert isinstance(end1, ModelRequestEnd)
    assert end1.turn == 1
    assert end1.finish_reason == "tool_calls"
    assert end1.usage == Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    assert end1.latency >= 0
    assert end1.message.tool_calls is not None and len(end1.message.tool_calls) == 2
    assert call_a == ToolCallStart(1, "call_a", "get_time", '{"timezone": "Asia/Tokyo"}')
    assert call_b == ToolCallStart(1, "call_x", "nope", "{}")
    by_id = {e.tool_call_id: e for e in ends if isinstance(e, ToolCallEnd)}
    ok, bad = by_id["call_a"], by_id["call_x"]
    assert (ok.tool_name, ok.result, ok.error) == ("get_time", "12:00 in Asia/Tokyo", None)
    assert ok.duration >= 0.015
    assert bad.tool_name == "nope"
    assert (
        bad.error
        == bad.result
        == ("Error: there is no function tool named 'nope'; available tools: get_time, find_zone")
    )
    assert bad.arguments == "{}"
    # The slow call ends last.
    assert ends[-1] is ok
    assert start2 == ModelRequestStart(turn=2, message_count=4)
    assert isinstance(end2, ModelRequestEnd)
    assert (end2.turn, end2.finish_reason, end2.message.content) == (2, "stop", "done")


UNKNOWN = tool_call("call_x", "nope", "{}")


async def test_sync_event_handler_sees_everything_in_order() -> None:
    events: list[RunEvent] = []
    async with serve(calls(TOKYO, UNKNOWN), completion("done")) as (_, client):
        await agent(client, event_handler=events.append).run("?")
    _check_events(events)


async def test_async_event_handler_passed_to_run() -> None:
    events: list[RunEvent] = []
    agent_events: list[RunEvent] = []

    async def handler(event: RunEvent) -> None:
        await anyio.lowlevel.checkpoint()
        events.append(event)

    async with serve(calls(TOKYO, UNKNOWN), completion("done")) as (_, client):
        await agent(client, event_handler=agent_events.append).run("?", event_handler=handler)
    _check_events(events)
    assert agent_events == []


async def test_event_handler_error_ends_the_run() -> None:
    def handler(event: RunEvent) -> None:
        if isinstance(event, ToolCallEnd):
            raise RuntimeError("handler broke")

    async with serve(calls(PARIS), completion("done")) as (_, client):
        with pytest.raises(RuntimeError, match="handler broke"):
            await agent(client, event_handler=handler).run("?")


# --- run_sync ----------------------------------------------------------------------------


async def test_run_sync_inside_an_event_loop_says_to_await_run() -> None:
    a = Agent("m", client=ChatServerClient(), tools=[get_time])
    with pytest.raises(UserError, match=r"await agent\.run"):
        a.run_sync("Hi")


class ChatServerClient:
    """A client that must never be called."""

    async def create(self, **kwargs: Any) -> Any:
        raise AssertionError("no request expected")


def test_run_sync_from_sync_code_with_the_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", BASE)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = ChatServer([calls(PARIS), completion("12:00")])
    with respx.mock(base_url=BASE) as router:
        route = router.post("/chat/completions").mock(side_effect=server)
        result = Agent("gpt-4o-mini", tools=[get_time]).run_sync("Paris?")
    assert result.output == "12:00"
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-test"
    assert len(server.requests) == 2
    assert_history_valid(result.messages)


def test_agent_repr_and_defaults() -> None:
    a = Agent("gpt-4o-mini", tools=[get_time])
    assert repr(a) == "Agent(model='gpt-4o-mini', tools=['get_time'])"
    assert isinstance(a.tools["get_time"], Tool)
    assert a.max_turns == 10
    assert a.max_tool_retries == 2
    assert a.tool_choice == "auto"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_turns": 0}, "max_turns must be an integer >= 1"),
        ({"max_tool_retries": -1}, "max_tool_retries must be"),
        ({"output_retries": True}, "output_retries must be"),
        ({"repeat_limit": 1}, "repeat_limit must be an integer >= 2"),
        ({"tool_concurrency": 0}, "tool_concurrency must be"),
        ({"tool_errors": "ignore"}, "tool_errors must be one of"),
        ({"repeated_tool_calls": "skip"}, "repeated_tool_calls must be one of"),
        ({"on_max_turns": "stop"}, "on_max_turns must be one of"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_bad_agent_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        Agent("m", tools=[get_time], **kwargs)


def test_model_must_be_a_name() -> None:
    with pytest.raises(UserError, match="non-empty model name"):
        Agent("")


async def test_one_agent_serves_concurrent_runs() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]
        if last["role"] == "user":
            zone = last["content"]
            return calls(tool_call(f"call_{zone}", "get_time", {"timezone": zone}))
        return completion(f"answer: {last['content']}")

    zones = ["Asia/Tokyo", "Europe/Paris", "UTC", "America/Lima"]
    results: dict[str, Any] = {}
    async with serve(*[answer] * (2 * len(zones))) as (_, client):
        a = agent(client)

        async def one(zone: str) -> None:
            results[zone] = await a.run(zone)

        async with anyio.create_task_group() as tg:
            for zone in zones:
                tg.start_soon(one, zone)
    for zone in zones:
        assert results[zone].output == f"answer: 12:00 in {zone}"
        assert results[zone].messages[0] == UserMessage(content=zone)
        assert_history_valid(results[zone].messages)


async def test_response_only_fields_are_not_sent_back() -> None:
    with_extras = tool_call("call_1", "get_time", {"timezone": "UTC"})
    with_extras["index"] = 0  # some servers number the calls of a non-streamed answer
    with_extras["function"]["parsed_arguments"] = {"timezone": "UTC"}
    first = calls(with_extras)
    first["choices"][0]["message"]["annotations"] = []
    empty = completion("12:00")
    empty["choices"][0]["message"]["tool_calls"] = []
    async with serve(first, empty, completion("Still 12:00.")) as (server, client):
        a = agent(client)
        result = await a.run("UTC?")
        await a.run("And now?", message_history=result.messages)
    assert server.messages[1][1] == {"role": "assistant", "tool_calls": [UTC_CALL]}
    assert server.messages[2][3] == {"role": "assistant", "content": "12:00"}
    assert_history_valid(result.messages)


UTC_CALL = tool_call("call_1", "get_time", {"timezone": "UTC"})


async def test_debug_logging_tells_the_story_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "sk-live-0123456789abcdefSECRET"
    caplog.set_level(logging.DEBUG, logger="agentkit")
    async with serve(calls(TOKYO, PARIS), completion("done"), api_key=key) as (_, client):
        await agent(client).run("?")
    text = caplog.text
    assert "turn 1: finish_reason=tool_calls, 2 tool call(s)" in text
    assert "tool get_time (call_a) ok" in text
    assert "turn 2: finish_reason=stop, 0 tool call(s)" in text
    assert key not in text
    assert "SECRET" not in text
    assert all(record.name.startswith("agentkit") for record in caplog.records)


async def test_tool_calls_run_whatever_the_finish_reason_says() -> None:
    # Some servers answer tool calls with finish_reason "stop" (or none at all).
    replies = [
        completion(tool_calls=[TOKYO], finish_reason="stop"),
        completion(tool_calls=[PARIS], finish_reason=None),
        completion("done"),
    ]
    replies[1]["choices"][0]["finish_reason"] = None
    async with serve(*replies) as (server, client):
        result = await agent(client).run("?")
    assert result.output == "done"
    assert len(server.requests) == 3
    assert_history_valid(result.messages)

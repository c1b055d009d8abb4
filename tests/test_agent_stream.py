"""Streamed runs: events as they arrive, the same history as `run()`, and clean early exits."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx
from pydantic import BaseModel

from agentkit import (
    Agent,
    APIConnectionError,
    AssistantMessage,
    ChatClient,
    FunctionCall,
    IncompleteOutputError,
    ModelRequestEnd,
    ModelRequestStart,
    OutputDelta,
    RefusalDelta,
    RefusalError,
    RunComplete,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallComplete,
    ToolCallEnd,
    ToolCallOpened,
    ToolCallStart,
    UserError,
    tool,
)
from agentkit._run.loop import Run
from agentkit._run.state import RunState
from agentkit._wire.messages import UserMessage
from agentkit.testing import ScriptedModel, call, tool_calls
from tests.sse_server import sse_server

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = json.loads((ROOT / "tests" / "recordings" / "extracted.json").read_text("utf-8"))
BASE = "http://llm.test/v1"


def sse(exchange: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        content=exchange["response_text"].encode(),
        headers={"content-type": "text/event-stream"},
    )


@tool
def get_capital(country: str) -> str:
    """The capital of a country.

    Args:
        country: The country's name or code.
    """
    return {"UK": "London"}.get(country, "unknown")


async def collect(agent: Agent[Any], prompt: str) -> tuple[list[Any], Any]:
    events = []
    async with agent.run_stream(prompt) as stream:
        async for event in stream:
            events.append(event)
    return events, stream.result


async def test_recorded_streamed_tool_loop_replays() -> None:
    exchanges = [ex for ex in RECORDINGS if "run_stream_sync" in ex["file"]]
    recorded_second = exchanges[1]["request_json"]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/chat/completions").mock(side_effect=[sse(ex) for ex in exchanges])
        async with ChatClient(BASE, api_key="sk-test") as client:
            agent = Agent("gpt-4o-mini", client=client, tools=[get_capital])
            events, result = await collect(
                agent, "What is the capital of the UK? Use the tool, then answer."
            )
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == result.output
    assert result.output == "The capital of the UK is London."
    kinds = [type(e) for e in events]
    assert kinds[:3] == [ModelRequestStart, ToolCallOpened, ToolCallArgumentsDelta]
    opened = next(e for e in events if isinstance(e, ToolCallOpened))
    assert (opened.tool_call_id, opened.tool_name) == (
        "call_ZR5UUuTt3pf61kjwAJIYdVMj",
        "get_capital",
    )
    args = "".join(e.delta for e in events if isinstance(e, ToolCallArgumentsDelta))
    complete = next(e for e in events if isinstance(e, ToolCallComplete))
    assert args == complete.arguments == '{"country":"UK"}'
    end = next(e for e in events if isinstance(e, ToolCallEnd))
    assert (end.result, end.error) == ("London", None)
    assert kinds.index(ToolCallComplete) < kinds.index(ToolCallStart) < kinds.index(ToolCallEnd)
    assert isinstance(events[-1], RunComplete) and events[-1].result is result
    # Usage comes from each stream's final chunk and is summed over the run.
    usages = [e.usage for e in events if isinstance(e, ModelRequestEnd)]
    assert [u.total_tokens for u in usages] == [
        json.loads(ex["chunk_texts"][-1])["usage"]["total_tokens"] for ex in exchanges
    ]
    assert result.usage.total_tokens == sum(u.total_tokens for u in usages)
    # The second request carries what the recorded client sent.
    sent = json.loads(route.calls[1].request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert [{k: v for k, v in m.items() if v is not None} for m in recorded_second["messages"]] == (
        sent["messages"]
    )


@pytest.mark.parametrize("name", ["max_tokens__openai_gpt_4o_completions__stream", "gpt_5_mini"])
async def test_recorded_length_streams_raise_incomplete(name: str) -> None:
    (exchange,) = [ex for ex in RECORDINGS if name in ex["file"] and ex["chunk_texts"]]
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse(exchange))
        async with ChatClient(BASE, api_key="sk-test") as client:
            agent = Agent("gpt-4o", client=client)
            with pytest.raises(IncompleteOutputError) as info:
                await collect(agent, "List the states.")
    text = "".join(
        json.loads(t)["choices"][0]["delta"].get("content") or ""
        for t in exchange["chunk_texts"]
        if json.loads(t)["choices"]
    )
    assert (info.value.partial.content or "") == text
    assert info.value.messages[-1] == info.value.partial


async def test_recorded_refusal_stream_raises_refusal() -> None:
    (exchange,) = [ex for ex in RECORDINGS if "test_refusal" in ex["file"]]
    events: list[Any] = []
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=sse(exchange))
        async with ChatClient(BASE, api_key="sk-test") as client:
            agent = Agent("gpt-4o", client=client, event_handler=events.append)
            with pytest.raises(RefusalError) as info:
                await collect(agent, "Help me do something bad.")
    assert info.value.refusal == "".join(e.text for e in events if isinstance(e, RefusalDelta))


def script() -> list[Any]:
    return [
        tool_calls(("get_capital", {"country": "UK"}), ("get_capital", {"country": "FR"})),
        call("get_capital", country="UK"),
        "London, and I do not know the other one.",
    ]


async def test_streamed_history_equals_run_history() -> None:
    replies = script()
    plain = await Agent("m", client=ScriptedModel(replies), tools=[get_capital]).run("Capitals?")
    agent = Agent("m", client=ScriptedModel(replies), tools=[get_capital])
    events, streamed = await collect(agent, "Capitals?")
    assert streamed.messages == plain.messages
    assert streamed.output == plain.output
    assert streamed.usage == plain.usage
    assert streamed.turns == plain.turns == 3
    opened = [e for e in events if isinstance(e, ToolCallOpened)]
    assert [(e.turn, e.index) for e in opened] == [(1, 0), (1, 1), (2, 0)]


async def test_streamed_history_equals_run_history_over_http() -> None:
    """The same answers served plainly and as SSE give identical histories."""
    from agentkit.testing import _chunks, _completion

    completions = [_completion(r, "m", i) for i, r in enumerate(script(), 1)]

    def as_sse(i: int) -> httpx.Response:
        chunks = _chunks(completions[i], include_usage=True)
        body = "".join(f"data: {c.model_dump_json(exclude_unset=True)}\n\n" for c in chunks)
        return httpx.Response(200, text=body + "data: [DONE]\n\n")

    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(
            side_effect=[httpx.Response(200, json=c.model_dump(mode="json")) for c in completions]
            + [as_sse(i) for i in range(len(completions))]
        )
        async with ChatClient(BASE, api_key="sk-test") as client:
            agent = Agent("m", client=client, tools=[get_capital])
            plain = await agent.run("Capitals?")
            _, streamed = await collect(agent, "Capitals?")
    assert streamed.messages == plain.messages
    assert streamed.usage == plain.usage


class Capital(BaseModel):
    country: str
    city: str
    population: int = 0


async def test_structured_output_streams_partial_objects() -> None:
    answer = '{"country": "UK", "city": "London", "population": null}'
    agent = Agent("m", client=ScriptedModel([answer]), output_type=Capital)
    events, result = await collect(agent, "Capital of the UK?")
    partials = [e.partial for e in events if isinstance(e, OutputDelta)]
    assert len(partials) >= 3
    assert "population" not in partials[0]
    assert partials[-1] == {"country": "UK", "city": "London", "population": None}
    # Each partial object only grows: every key it has stays in the next one.
    for before, after in itertools.pairwise(partials):
        assert set(before) <= set(after)
    assert result.output == Capital(country="UK", city="London", population=0)


async def test_stream_cut_before_done_adds_no_half_message() -> None:
    body = (
        'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"Hal"}}]}\n\n'
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(return_value=httpx.Response(200, text=body))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent("m", client=client)
            state = RunState(messages=[UserMessage(content="hi")])
            run = Run(agent.config, client, state, deps=None, events=None, streamed=True)
            with pytest.raises(APIConnectionError, match=r"ended before data: \[DONE\]"):
                await run.run()
    assert state.messages == [UserMessage(content="hi")]
    assert state.turns == 0


async def test_breaking_out_leaks_no_connections() -> None:
    async with sse_server() as (base_url, stats):
        limits = httpx.Limits(max_connections=5, max_keepalive_connections=5)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            client = ChatClient(base_url, http_client=http, max_retries=0)
            stalling = Agent("stall", client=client)
            for _ in range(100):
                async with stalling.run_stream("hi") as stream:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            break
            with anyio.fail_after(10):
                _, result = await collect(Agent("full", client=client), "hi")
        assert result.output == "Hi there"
        assert stats.requests == 101


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_leaving_during_tool_calls_still_answers_every_call(how: str) -> None:
    release = anyio.Event()

    @tool
    async def wait_forever(n: int) -> str:
        """Waits until released."""
        await release.wait()
        return "released"

    @tool
    def quick(n: int) -> str:
        """Answers at once."""
        return f"quick {n}"

    agent = Agent(
        "m",
        client=ScriptedModel([tool_calls(("quick", {"n": 1}), ("wait_forever", {"n": 2}))]),
        tools=[quick, wait_forever],
    )
    with anyio.CancelScope() as scope:
        async with agent.run_stream("go") as stream:
            async for event in stream:
                if isinstance(event, ToolCallEnd):  # the quick call is done
                    if how == "break":
                        break
                    scope.cancel()
    messages = stream.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    calls = messages[1].tool_calls or []
    assert [m.tool_call_id for m in messages[2:]] == [c.id for c in calls]
    assert messages[2].content == "quick 1"
    assert messages[3].content == "Error: not run: the run was cancelled"
    assert stream.result is None


async def test_iterating_outside_async_with_is_an_error() -> None:
    agent = Agent("m", client=ScriptedModel(["hi"]))
    with pytest.raises(UserError, match="async with"):
        await agent.run_stream("hi").__anext__()


async def test_a_failed_run_raises_from_the_iterator() -> None:
    agent = Agent("m", client=ScriptedModel([]))
    with pytest.raises(UserError, match="ScriptedModel has 0 replies"):
        await collect(agent, "hi")


async def test_a_slow_reader_gets_every_event_in_order_while_the_run_waits_for_it() -> None:
    from agentkit._run.streamed_run import _BUFFER

    words = [f"w{i} " for i in range(_BUFFER * 3)]
    seen_by_handler: list[str] = []

    def handler(event: Any) -> None:
        if isinstance(event, TextDelta):
            seen_by_handler.append(event.text)

    agent = Agent("m", client=ScriptedModel(["".join(words)]))
    texts: list[str] = []
    async with agent.run_stream("hi", event_handler=handler) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                texts.append(event.text)
                if len(texts) == 1:
                    # The run goes on while the reader sleeps, but at most a buffer ahead.
                    await anyio.sleep(0.05)
                    assert _BUFFER <= len(seen_by_handler) <= _BUFFER + 2
    assert texts == words
    assert stream.result.output == "".join(words)


async def test_the_end_of_a_cancelled_run_s_events_reaches_the_reader_as_cancellation() -> None:
    # The run's task ends without a last event only when a scope covering the reader
    # too was cancelled; the reader must see that cancellation, not a quiet end.
    from agentkit._run.streamed_run import _Channel

    channel = _Channel(4)
    channel.close()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await channel.receive()
        pytest.fail("receive() returned")
    assert scope.cancelled_caught


async def test_the_run_stops_when_the_reader_is_cancelled_and_the_history_answers_every_call(
    anyio_backend: str,
) -> None:
    started = anyio.Event()
    cleaned_up: list[bool] = []

    async def slow(city: str) -> str:
        """Waits forever."""
        started.set()
        try:
            await anyio.sleep(60)
        finally:
            cleaned_up.append(True)
        return city

    agent = Agent("m", client=ScriptedModel([call("slow", city="Oslo")]), tools=[slow])
    with anyio.move_on_after(10) as outer:
        with anyio.CancelScope() as reader:
            async with agent.run_stream("hi") as stream:
                async for _ in stream:
                    if started.is_set():
                        reader.cancel()
                        await anyio.sleep(60)
    assert not outer.cancel_called, "the run did not stop"
    assert reader.cancelled_caught
    assert cleaned_up == [True]
    messages = stream.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[2].content == "Error: not run: the run was cancelled"


async def test_leaving_early_does_not_break_a_shielded_section_of_the_run() -> None:
    # The run is stopped through its cancel scope: a shielded section (such as the
    # close of a response, which returns its connection to the pool) runs to its end.
    # A native task.cancel() on asyncio would break through the shield.
    started = anyio.Event()
    finished: list[bool] = []

    async def careful(city: str) -> str:
        """Does its work in a shielded section."""
        with anyio.CancelScope(shield=True):
            started.set()
            await anyio.sleep(0.05)
            finished.append(True)
        return city

    agent = Agent("m", client=ScriptedModel([call("careful", city="Oslo"), "ok"]), tools=[careful])
    async with agent.run_stream("hi") as stream:
        async for event in stream:
            if isinstance(event, ToolCallStart):
                await started.wait()
                break  # leaving while the tool is inside its shielded section
    assert finished == [True]


def test_on_asyncio_a_cancellation_that_arrives_while_the_run_stops_is_raised() -> None:
    # Leaving the block cancels the run's task and waits for it. A task.cancel() that
    # reaches the reader meanwhile (asyncio delivers it once) must not be swallowed.
    import asyncio

    async def main() -> None:
        started = asyncio.Event()
        finished_cleanup: list[bool] = []

        async def slow(city: str) -> str:
            """Cleans up slowly when cancelled."""
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                # The run is stopped through its cancel scope, so cleanup that must
                # finish is shielded, as in any anyio task.
                with anyio.CancelScope(shield=True):
                    await asyncio.sleep(0.1)
                finished_cleanup.append(True)
                raise
            return city

        agent = Agent("m", client=ScriptedModel([call("slow", city="Oslo")]), tools=[slow])

        async def read() -> None:
            async with agent.run_stream("hi") as stream:
                async for event in stream:
                    if isinstance(event, ToolCallStart):
                        await started.wait()
                        break  # leaving normally: the run is cancelled and waited for
            pytest.fail("the cancellation was swallowed")

        reader = asyncio.create_task(read())
        await started.wait()
        await asyncio.sleep(0.02)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert finished_cleanup == [True]

    asyncio.run(main())


def test_run_stream_sync_yields_events_and_result() -> None:
    agent = Agent("m", client=ScriptedModel(script()), tools=[get_capital])
    events = list(agent.run_stream_sync("Capitals?"))
    assert isinstance(events[-1], RunComplete)
    assert events[-1].result.output == "London, and I do not know the other one."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == events[-1].result.output


def test_run_stream_sync_can_stop_early() -> None:
    agent = Agent("m", client=ScriptedModel(script()), tools=[get_capital])
    for event in agent.run_stream_sync("Capitals?"):
        if isinstance(event, ToolCallOpened):
            break  # closing the generator cancels the run


async def test_run_stream_sync_inside_an_event_loop_is_an_error() -> None:
    agent = Agent("m", client=ScriptedModel(["hi"]))
    with pytest.raises(UserError, match=r"async with agent\.run_stream"):
        agent.run_stream_sync("hi")


def test_assistant_message_equality_ignores_nothing_that_matters() -> None:
    a = AssistantMessage(
        tool_calls=[ToolCall(id="x", function=FunctionCall(name="f", arguments="{}"))]
    )
    b = AssistantMessage.model_validate(a.model_dump(mode="json", exclude_none=True))
    assert a == b


@pytest.mark.parametrize("stream", [False, True])
def test_clock_example_runs_offline(stream: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    args = [sys.executable, str(ROOT / "examples" / "clock.py")]
    if stream:
        args.append("--stream")
    done = subprocess.run(
        [*args, "What time is it in Tokyo and in Paris?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "running offline" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "tool calls:"
    # Printed as each call finishes; the two run at once, so either may come first.
    calls = sorted(lines[1:3])
    assert calls[0].startswith('  get_current_time({"timezone": "Asia/Tokyo"}) -> ')
    assert calls[1].startswith('  get_current_time({"timezone": "Europe/Paris"}) -> ')
    assert (
        lines[3].startswith("answer: It is ") and "in Tokyo" in lines[3] and "in Paris" in lines[3]
    )

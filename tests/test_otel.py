"""OpenTelemetry instrumentation: spans, attributes and metrics by the GenAI conventions,
read from the SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import jsonschema
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

import agentkit.otel
from agentkit import Agent, ChatClient, ModelSettings, Paused, RunResult, tool
from agentkit.otel import CAPTURE_CONTENT_ENV, Instrumentation, TraceContextMiddleware
from agentkit.testing import ScriptedModel, call, tool_calls

pytestmark = pytest.mark.anyio

KEY = "sk-otel-test-secret-0123456789"


class Traces:
    """An SDK tracer and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrumentation(self, **options: Any) -> Instrumentation:
        return Instrumentation(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def traces() -> Iterator[Traces]:
    made = Traces()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


arrived: list[str] = []


@tool
async def get_current_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    arrived.append(timezone)
    # Both calls must be running at once for either to go on: proves they are parallel.
    with anyio.fail_after(5):
        # A polled barrier: the tool is module-level and serves both backends' runs.
        while len(arrived) < 2:  # noqa: ASYNC110
            await anyio.sleep(0.005)
    return f"12:00 in {timezone}"


def clock_script() -> list[Any]:
    return [
        tool_calls(
            ("get_current_time", {"timezone": "Asia/Tokyo"}),
            ("get_current_time", {"timezone": "Europe/Paris"}),
        ),
        "It is 12:00 in Tokyo and in Paris.",
    ]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def all_attribute_text(spans: list[ReadableSpan]) -> str:
    return json.dumps([{k: str(v) for k, v in (s.attributes or {}).items()} for s in spans])


async def test_the_clock_run_is_one_run_span_two_chat_spans_and_two_parallel_tool_spans(
    traces: Traces,
) -> None:
    arrived.clear()
    agent = Agent(
        "gpt-4o-mini",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        name="clock",
        instrument=traces.instrumentation(),
    )
    result = await agent.run("What time is it in Tokyo and Paris?")
    assert result.output == "It is 12:00 in Tokyo and in Paris."
    (run,) = traces.named("invoke_agent")
    chats = traces.named("chat ")
    tools = traces.named("execute_tool ")
    assert run.name == "invoke_agent clock" and run.kind is SpanKind.INTERNAL
    assert len(chats) == 2 and len(tools) == 2 and len(traces.spans) == 5
    assert run.parent is None
    for span in (*chats, *tools):
        assert parent_id(span) == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
    # The two calls ran at once: each started before the other ended.
    first, second = sorted(tools, key=lambda s: s.start_time or 0)
    assert (second.start_time or 0) < (first.end_time or 0)
    attrs = run.attributes or {}
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "clock"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert len(str(attrs["gen_ai.conversation.id"])) == 32  # the run's id
    assert attrs["gen_ai.usage.input_tokens"] == 20
    for number, chat in enumerate(sorted(chats, key=lambda s: s.start_time or 0), start=1):
        a = chat.attributes or {}
        assert chat.name == "chat gpt-4o-mini" and chat.kind is SpanKind.CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "gpt-4o-mini"
        assert a["gen_ai.response.model"] == "scripted-model"
        assert a["gen_ai.response.id"] == f"chatcmpl-test-{number}"
        assert a["gen_ai.usage.input_tokens"] == 10
        assert a["gen_ai.usage.output_tokens"] >= 1
        expected = "tool_calls" if number == 1 else "stop"
        assert tuple(a["gen_ai.response.finish_reasons"]) == (expected,)
    for span in tools:
        a = span.attributes or {}
        assert a["gen_ai.operation.name"] == "execute_tool"
        assert a["gen_ai.tool.name"] == "get_current_time"
        assert a["gen_ai.tool.type"] == "function"
        assert a["gen_ai.tool.description"] == "Current local time in a time zone."
        assert str(a["gen_ai.tool.call.id"]).startswith("call_")
        assert span.status.status_code is StatusCode.UNSET
    calls = result.messages[1].tool_calls  # type: ignore[union-attr]
    assert {(s.attributes or {})["gen_ai.tool.call.id"] for s in tools} == {c.id for c in calls}


CONTENT_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


async def test_no_content_is_recorded_unless_enabled(
    traces: Traces, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    arrived.clear()
    agent = Agent(
        "m",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        instrument=traces.instrumentation(),
    )
    await agent.run("Tokyo and Paris, please")
    keys = {k for s in traces.spans for k in (s.attributes or {})}
    assert not keys & CONTENT_KEYS
    text = all_attribute_text(traces.spans)
    assert "Tokyo" not in text and "12:00" not in text and "Paris" not in text


@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_content_is_recorded_when_enabled(
    traces: Traces, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
        instrumentation = traces.instrumentation()
    else:
        monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
        instrumentation = traces.instrumentation(capture_content=True)
    assert instrumentation.capture_content
    arrived.clear()
    agent = Agent(
        "m",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        instructions="You are a world clock.",
        instrument=instrumentation,
    )
    await agent.run("Tokyo and Paris, please")
    first, second = sorted(traces.named("chat "), key=lambda s: s.start_time or 0)
    sent = json.loads(str((first.attributes or {})["gen_ai.input.messages"]))
    assert sent[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "You are a world clock."}],
    }
    assert sent[1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "Tokyo and Paris, please"}],
    }
    answered = json.loads(str((first.attributes or {})["gen_ai.output.messages"]))
    assert answered[0]["finish_reason"] == "tool_calls"
    assert [p["arguments"] for p in answered[0]["parts"]] == [
        {"timezone": "Asia/Tokyo"},
        {"timezone": "Europe/Paris"},
    ]
    later = json.loads(str((second.attributes or {})["gen_ai.input.messages"]))
    assert later[-1]["role"] == "tool"
    assert later[-1]["parts"][0]["type"] == "tool_call_response"
    final = json.loads(str((second.attributes or {})["gen_ai.output.messages"]))
    assert final[0]["parts"] == [{"type": "text", "content": "It is 12:00 in Tokyo and in Paris."}]
    results = {
        (s.attributes or {})["gen_ai.tool.call.arguments"]: (s.attributes or {})[
            "gen_ai.tool.call.result"
        ]
        for s in traces.named("execute_tool")
    }
    assert results == {
        '{"timezone": "Asia/Tokyo"}': "12:00 in Asia/Tokyo",
        '{"timezone": "Europe/Paris"}': "12:00 in Europe/Paris",
    }


def sse(body: dict[str, Any]) -> bytes:
    """A streamed answer, "Hello.", in server-sent events, its usage in the last chunk."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0}
    base["model"] = body["model"] + "-2024"
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello."}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        },
    ]
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode()


def chat_server(seen: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "down", "type": "server"}})
        body = json.loads(request.content)
        if body.get("stream"):
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=sse(body)
            )
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(seen)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"] + "-2024",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": 3,
                    "total_tokens": 10,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning_tokens": 2},
                },
            },
        )

    return httpx.MockTransport(handle)


async def test_the_model_request_carries_the_chat_spans_traceparent_and_no_secret_is_recorded(
    traces: Traces, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")  # even with content on
    seen: list[httpx.Request] = []
    http = httpx.AsyncClient(transport=chat_server(seen))
    async with ChatClient(
        base_url="https://api.openai.com/v1",
        api_key=KEY,
        http_client=http,
        default_headers={"x-team-token": "team-secret-42"},
    ) as client:
        agent = Agent("gpt-4o", client=client, instrument=traces.instrumentation())
        await agent.run("Hi")
    (request,) = seen
    (chat,) = traces.named("chat ")
    ctx = chat.context
    assert (
        request.headers["traceparent"]
        == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"  # still sent, never recorded
    a = chat.attributes or {}
    assert a["gen_ai.response.model"] == "gpt-4o-2024"
    assert a["gen_ai.response.id"] == "chatcmpl-1"
    assert a["gen_ai.usage.reasoning.output_tokens"] == 2
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["server.address"] == "api.openai.com" and a["server.port"] == 443
    (tokens, _) = traces.metrics()["gen_ai.client.token.usage"]
    assert tokens.attributes["server.address"] == "api.openai.com"
    assert tokens.attributes["server.port"] == 443
    assert tokens.attributes["gen_ai.response.model"] == "gpt-4o-2024"
    text = all_attribute_text(traces.spans)
    assert KEY not in text and "team-secret-42" not in text and "authorization" not in text


async def test_a_failed_request_marks_the_chat_and_run_spans_with_the_error_type(
    traces: Traces,
) -> None:
    from agentkit import APIStatusError

    seen: list[httpx.Request] = []
    http = httpx.AsyncClient(transport=chat_server(seen, status=400))
    async with ChatClient(
        base_url="http://127.0.0.1:9/v1", api_key=KEY, http_client=http, max_retries=0
    ) as client:
        agent = Agent("gpt-4o", client=client, instrument=traces.instrumentation())
        with pytest.raises(APIStatusError):
            await agent.run("Hi")
    (chat,) = traces.named("chat ")
    (run,) = traces.named("invoke_agent")
    for span in (chat, run):
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "BadRequestError"
    assert (chat.attributes or {})["http.response.status_code"] == 400
    (event,) = chat.events  # the exception, with its traceback, as the conventions record it
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"].endswith("BadRequestError")
    assert "Traceback" in str((event.attributes or {})["exception.stacktrace"])
    assert (chat.attributes or {})["gen_ai.provider.name"] == "127.0.0.1"
    assert KEY not in all_attribute_text(traces.spans)
    assert KEY not in str([s.status.description for s in traces.spans])
    assert KEY not in str([dict(e.attributes or {}) for s in traces.spans for e in s.events])
    durations = traces.metrics()["gen_ai.client.operation.duration"]
    assert [p.attributes.get("error.type") for p in durations] == [
        (chat.attributes or {})["error.type"]
    ]


@tool
def broken(city: str) -> str:
    """Always fails.

    Args:
        city: A city.
    """
    raise ValueError(f"no clock in {city}")


async def test_a_failing_tool_marks_its_span_failed_without_its_message_by_default(
    traces: Traces,
) -> None:
    agent = Agent(
        "m",
        client=ScriptedModel([call("broken", city="Atlantis"), "Sorry."]),
        tools=[broken],
        instrument=traces.instrumentation(capture_content=False),
    )
    assert (await agent.run("time?")).output == "Sorry."
    (span,) = traces.named("execute_tool")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ValueError"
    assert "Atlantis" not in str(span.status.description)
    (run,) = traces.named("invoke_agent")
    assert run.status.status_code is StatusCode.UNSET  # the run itself answered


async def test_a_tools_own_spans_nest_under_its_execute_tool_span(traces: Traces) -> None:
    inner = traces.tracer_provider.get_tracer("tests")

    @tool
    async def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: A city.
        """
        with inner.start_as_current_span("GET /cities"):
            await anyio.lowlevel.checkpoint()
        return "found"

    agent = Agent(
        "m",
        client=ScriptedModel([call("lookup", city="Oslo"), "Done."]),
        tools=[lookup],
        instrument=traces.instrumentation(),
    )
    await agent.run("Oslo?")
    (get,) = traces.named("GET /cities")
    (span,) = traces.named("execute_tool")
    assert parent_id(get) == span.context.span_id


async def test_a_sub_agent_and_a_handoff_nest_in_the_trace(traces: Traces) -> None:
    instrumentation = traces.instrumentation()
    researcher = Agent(
        "small",
        client=ScriptedModel(["Oslo is in Norway."]),
        name="researcher",
        instrument=instrumentation,
    )
    billing = Agent(
        "m", client=ScriptedModel(["Your bill is 0."]), name="billing", instrument=instrumentation
    )
    triage = Agent(
        "m",
        client=ScriptedModel(
            [call("researcher", input="Where is Oslo?"), call("transfer_to_billing"), "unused"]
        ),
        name="triage",
        tools=[researcher.as_tool(name="researcher")],
        handoffs=[billing],
        instrument=instrumentation,
    )
    result = await triage.run("Where is Oslo, and my bill?")
    assert result.output == "Your bill is 0."
    runs = {s.name: s for s in traces.named("invoke_agent")}
    assert set(runs) == {"invoke_agent triage", "invoke_agent researcher"}
    (as_tool,) = [s for s in traces.named("execute_tool") if s.name == "execute_tool researcher"]
    (transfer,) = traces.named("execute_tool transfer_to_billing")
    assert "billing" in str((transfer.attributes or {})["gen_ai.tool.description"])
    assert parent_id(runs["invoke_agent researcher"]) == as_tool.context.span_id
    assert parent_id(as_tool) == runs["invoke_agent triage"].context.span_id
    (sub_chat,) = [s for s in traces.named("chat small")]
    assert parent_id(sub_chat) == runs["invoke_agent researcher"].context.span_id
    # After the handoff, the chat spans name the agent that answers.
    chats = sorted(traces.named("chat m"), key=lambda s: s.start_time or 0)
    assert (chats[-1].attributes or {})["gen_ai.agent.name"] == "billing"
    assert (runs["invoke_agent triage"].attributes or {})["agentkit.last_agent"] == "billing"
    assert {s.context.trace_id for s in traces.spans} == {
        runs["invoke_agent triage"].context.trace_id
    }


async def test_token_and_duration_metrics_follow_the_conventions(traces: Traces) -> None:
    arrived.clear()
    agent = Agent(
        "gpt-4o-mini",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        instrument=traces.instrumentation(),
    )
    await agent.run("Tokyo and Paris?")
    found = traces.metrics()
    tokens = found["gen_ai.client.token.usage"]
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert set(by_type) == {"input", "output"}
    assert by_type["input"].sum == 20 and by_type["input"].count == 2
    for point in tokens:
        assert point.attributes["gen_ai.operation.name"] == "chat"
        assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert point.attributes["gen_ai.provider.name"] == "openai"
    (duration,) = found["gen_ai.client.operation.duration"]
    assert duration.count == 2 and duration.sum > 0
    assert duration.explicit_bounds[0] == 0.01
    assert "gen_ai.client.operation.time_to_first_chunk" not in found  # not streamed


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund a payment.

    Args:
        amount: In euros.
    """
    return f"refunded {amount}"


async def test_a_resumed_run_links_to_the_trace_of_the_run_it_goes_on_from(
    traces: Traces,
) -> None:
    script = [call("refund", amount=30), "Refunded."]
    agent = Agent(
        "m",
        client=ScriptedModel(script),
        tools=[refund],
        pauses=Paused,
        instrument=traces.instrumentation(),
    )
    paused = await agent.run("Refund 30")
    assert isinstance(paused, Paused)
    (first,) = traces.named("invoke_agent")
    # The state is plain JSON: the link survives a trip through another process.
    state = type(paused.state).model_validate_json(paused.state.model_dump_json())
    assert state.trace_context is not None
    result = await agent.resume(state, {script[0].tool_calls[0].id: True})
    assert isinstance(result, RunResult) and result.output == "Refunded."
    second = [s for s in traces.named("invoke_agent") if s is not first][-1]
    assert second.context.trace_id != first.context.trace_id
    (link,) = second.links
    # The approved call runs in the resumed run, and is traced there.
    (refunded,) = traces.named("execute_tool refund")
    assert refunded.context.trace_id == second.context.trace_id
    assert parent_id(refunded) == second.context.span_id
    assert link.context.trace_id == first.context.trace_id
    assert link.context.span_id == first.context.span_id
    assert (first.attributes or {})["agentkit.paused_calls"] == 1


async def test_a_streamed_run_is_traced_the_same_way(traces: Traces) -> None:
    arrived.clear()
    agent = Agent(
        "m",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        instrument=traces.instrumentation(),
    )
    async with agent.run_stream("Tokyo and Paris?") as stream:
        async for _ in stream:
            pass
    assert len(traces.named("invoke_agent")) == 1
    chats = traces.named("chat ")
    assert len(chats) == 2 and len(traces.named("execute_tool")) == 2
    assert {(c.attributes or {})["gen_ai.response.model"] for c in chats} == {"scripted-model"}
    found = traces.metrics()
    (first_chunk,) = found["gen_ai.client.operation.time_to_first_chunk"]
    (duration,) = found["gen_ai.client.operation.duration"]
    assert first_chunk.count == duration.count == 2
    assert 0 < first_chunk.sum <= duration.sum
    assert first_chunk.attributes["gen_ai.response.model"] == "scripted-model"


async def test_instrument_traces_every_agent_and_uninstrument_stops_it(traces: Traces) -> None:
    agentkit.otel.instrument(
        tracer_provider=traces.tracer_provider, meter_provider=traces.meter_provider
    )
    try:
        agent = Agent("m", client=ScriptedModel(["one"]))
        await agent.run("Hi")
    finally:
        agentkit.otel.uninstrument()
    await Agent("m", client=ScriptedModel(["two"])).run("Hi")
    assert [s.name for s in traces.spans] == ["chat m", "invoke_agent agent"]


async def test_a_served_agent_continues_the_callers_trace(traces: Traces) -> None:
    from agentkit.serve import create_app

    agent = Agent("m", client=ScriptedModel(["Hello."]), instrument=traces.instrumentation())
    app = TraceContextMiddleware(create_app({"clock": agent}))
    caller = traces.tracer_provider.get_tracer("caller")
    with caller.start_as_current_span("caller") as span:
        ctx = span.get_span_context()
        traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "clock", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"traceparent": traceparent},
        )
    assert response.status_code == 200, response.text
    (run,) = traces.named("invoke_agent")
    assert run.context.trace_id == ctx.trace_id
    assert parent_id(run) == ctx.span_id


def test_agentkit_imports_no_opentelemetry_unless_asked() -> None:
    code = (
        "import sys, agentkit\n"
        "from agentkit import Agent\n"
        "from agentkit.testing import ScriptedModel\n"
        "Agent('m', client=ScriptedModel(['hi'])).run_sync('hi')\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert out.stdout.strip() == "[]"


def test_without_the_extra_agentkit_otel_says_what_to_install() -> None:
    # Every `opentelemetry` import fails, as when the extra is not installed.
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "import agentkit\n"
        "try:\n"
        "    import agentkit.otel\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == (
        'agentkit.otel needs the OpenTelemetry API: pip install "agentkit[otel]"'
    )


async def test_without_an_sdk_the_steps_stay_plain_and_a_callers_trace_still_propagates() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    # No SDK configured: OpenTelemetry's global providers are its proxies.
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    seen: list[httpx.Request] = []
    http = httpx.AsyncClient(transport=chat_server(seen))
    async with ChatClient(
        base_url="http://127.0.0.1:9/v1", api_key=KEY, http_client=http
    ) as client:
        agent = Agent("gpt-4o", client=client, instrument=Instrumentation())
        await agent.run("Hi")
        assert "traceparent" not in seen[-1].headers  # nothing to propagate
        caller = SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        with trace.use_span(NonRecordingSpan(caller)):
            await agent.run("Hi")
    assert seen[-1].headers["traceparent"] == (
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    )


async def test_metrics_are_recorded_with_a_meter_provider_and_no_tracing_sdk(
    traces: Traces,
) -> None:
    agent = Agent(
        "m",
        client=ScriptedModel(["one"]),
        instrument=Instrumentation(meter_provider=traces.meter_provider),
    )
    await agent.run("Hi")
    found = traces.metrics()
    assert [p.count for p in found["gen_ai.client.operation.duration"]] == [1]
    assert traces.spans == []


class City(BaseModel):
    name: str


async def test_request_settings_and_the_output_type_are_on_the_chat_span(traces: Traces) -> None:
    agent = Agent(
        "m",
        client=ScriptedModel(['{"name": "Oslo"}']),
        output_type=City,
        settings=ModelSettings(
            temperature=0.2,
            top_p=0.9,
            max_tokens=50,
            max_completion_tokens=100,
            presence_penalty=0.1,
            frequency_penalty=0.3,
            seed=7,
            stop=("END", "STOP"),
        ),
        instrument=traces.instrumentation(),
    )
    assert (await agent.run("Which city?")).output == City(name="Oslo")
    (chat,) = traces.named("chat ")
    a = chat.attributes or {}
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 100  # max_completion_tokens wins
    assert a["gen_ai.request.presence_penalty"] == 0.1
    assert a["gen_ai.request.frequency_penalty"] == 0.3
    assert a["gen_ai.request.seed"] == 7
    assert tuple(a["gen_ai.request.stop_sequences"]) == ("END", "STOP")
    assert a["gen_ai.output.type"] == "json"
    await Agent("m", client=ScriptedModel(["hi"]), instrument=traces.instrumentation()).run("x")
    plain = traces.named("chat ")[-1].attributes or {}
    assert not [k for k in plain if k.startswith("gen_ai.request.") and k != "gen_ai.request.model"]
    assert "gen_ai.output.type" not in plain


# Every attribute name agentkit records, as the GenAI conventions (and the general
# `server.*`, `error.*` and `http.*` ones) spell it; anything else is `agentkit.*`.
CONVENTION_ATTRIBUTES = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.agent.name",
    "gen_ai.conversation.id",
    "gen_ai.request.model",
    "gen_ai.request.temperature",
    "gen_ai.request.top_p",
    "gen_ai.request.max_tokens",
    "gen_ai.request.presence_penalty",
    "gen_ai.request.frequency_penalty",
    "gen_ai.request.seed",
    "gen_ai.request.stop_sequences",
    "gen_ai.output.type",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "gen_ai.tool.type",
    "gen_ai.tool.description",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.token.type",
    "server.address",
    "server.port",
    "error.type",
    "http.response.status_code",
}

# The conventions' input and output messages JSON schemas, reduced to the parts
# agentkit sends: a role, typed parts with their required fields, and, on an
# output message, a finish reason.
_PART = {
    "oneOf": [
        {
            "type": "object",
            "properties": {"type": {"const": "text"}, "content": {"type": "string"}},
            "required": ["type", "content"],
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "tool_call"},
                "id": {"type": ["string", "null"]},
                "name": {"type": "string"},
            },
            "required": ["type", "name"],
        },
        {
            "type": "object",
            "properties": {
                "type": {"const": "tool_call_response"},
                "id": {"type": ["string", "null"]},
            },
            "required": ["type", "response"],
        },
    ]
}
ROLES = ["system", "user", "assistant", "tool"]
INPUT_MESSAGES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"role": {"enum": ROLES}, "parts": {"type": "array", "items": _PART}},
        "required": ["role", "parts"],
    },
}
OUTPUT_MESSAGES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "role": {"enum": ROLES},
            "parts": {"type": "array", "items": _PART},
            "finish_reason": {"type": "string"},
        },
        "required": ["role", "parts", "finish_reason"],
    },
}


async def test_every_attribute_is_named_by_the_conventions_and_content_fits_their_schemas(
    traces: Traces,
) -> None:
    arrived.clear()
    instrumentation = traces.instrumentation(capture_content=True)
    clock = Agent(
        "gpt-4o-mini",
        client=ScriptedModel(clock_script()),
        tools=[get_current_time],
        instructions="You are a world clock.",
        name="clock",
        instrument=instrumentation,
    )
    await clock.run("Tokyo and Paris?")
    failing = Agent(
        "m",
        client=ScriptedModel([call("broken", city="Atlantis"), "Sorry."]),
        tools=[broken],
        instrument=instrumentation,
    )
    await failing.run("time?")
    seen = {k for s in traces.spans for k in (s.attributes or {})}
    seen |= {k for points in traces.metrics().values() for p in points for k in p.attributes}
    assert {k for k in seen if not k.startswith("agentkit.")} <= CONVENTION_ATTRIBUTES
    assert "error.type" in seen and "gen_ai.tool.call.result" in seen
    (failed,) = traces.named("execute_tool broken")
    # A failed call has no result; what the model was told is the status message.
    assert "gen_ai.tool.call.result" not in (failed.attributes or {})
    assert "no clock in Atlantis" in str(failed.status.description)
    chats = traces.named("chat ")
    assert len(chats) == 4
    for chat in chats:
        a = chat.attributes or {}
        jsonschema.validate(json.loads(str(a["gen_ai.input.messages"])), INPUT_MESSAGES)
        jsonschema.validate(json.loads(str(a["gen_ai.output.messages"])), OUTPUT_MESSAGES)
    for span in traces.spans:
        kind = (span.attributes or {})["gen_ai.operation.name"]
        assert span.name.split(" ")[0] == kind
        assert span.kind is (SpanKind.CLIENT if kind == "chat" else SpanKind.INTERNAL)


async def test_a_handoff_to_an_agent_with_its_own_endpoint_names_that_endpoint(
    traces: Traces,
) -> None:
    seen: list[httpx.Request] = []
    http = httpx.AsyncClient(transport=chat_server(seen))
    instrumentation = traces.instrumentation()
    async with ChatClient(
        base_url="https://api.deepseek.com/v1", api_key=KEY, http_client=http
    ) as deepseek:
        billing = Agent("deepseek-chat", client=deepseek, name="billing")
        triage = Agent(
            "m",
            client=ScriptedModel([call("transfer_to_billing")]),
            name="triage",
            handoffs=[billing],
            instrument=instrumentation,
        )
        assert (await triage.run("My bill?")).output == "Hello."
    first, second = sorted(traces.named("chat "), key=lambda s: s.start_time or 0)
    a, b = first.attributes or {}, second.attributes or {}
    assert a["gen_ai.provider.name"] == "openai" and "server.address" not in a
    assert b["gen_ai.provider.name"] == "deepseek"
    assert (b["server.address"], b["server.port"]) == ("api.deepseek.com", 443)
    assert b["gen_ai.request.model"] == "deepseek-chat" and second.name == "chat deepseek-chat"
    assert seen[-1].headers["traceparent"].split("-")[2] == f"{second.context.span_id:016x}"


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_fallback_model_is_traced_through_the_endpoint_that_answers(
    traces: Traces, streamed: bool
) -> None:
    from agentkit import FallbackModel, ModelFallback

    down: list[httpx.Request] = []
    up: list[httpx.Request] = []
    events: list[Any] = []
    primary = ChatClient(
        base_url="https://api.openai.com/v1",
        api_key=KEY,
        http_client=httpx.AsyncClient(transport=chat_server(down, status=503)),
        max_retries=0,
    )
    backup = ChatClient(
        base_url="https://api.deepseek.com/v1",
        api_key=KEY,
        http_client=httpx.AsyncClient(transport=chat_server(up)),
    )
    async with primary, backup:
        model = FallbackModel([primary, (backup, "deepseek-chat")])
        agent = Agent(
            "gpt-4o",
            client=model,
            event_handler=events.append,
            instrument=traces.instrumentation(),
        )
        if streamed:
            async with agent.run_stream("Hi") as stream:
                async for _ in stream:
                    pass
        else:
            assert (await agent.run("Hi")).output == "Hello."
    (chat,) = traces.named("chat ")
    ctx = chat.context
    traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert [r.headers["traceparent"] for r in (*down, *up)] == [traceparent, traceparent]
    a = chat.attributes or {}
    assert a["gen_ai.response.model"] == "deepseek-chat-2024"
    assert (a["server.address"], a["server.port"]) == ("api.deepseek.com", 443)
    assert [type(e) for e in events if isinstance(e, ModelFallback)] == [ModelFallback]
    found = traces.metrics()
    (duration,) = found["gen_ai.client.operation.duration"]
    assert duration.attributes["server.address"] == "api.deepseek.com"
    assert ("gen_ai.client.operation.time_to_first_chunk" in found) is streamed

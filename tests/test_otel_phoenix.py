"""End to end: a traced clock run exported over OTLP/HTTP to a real Arize Phoenix
started on 127.0.0.1 (the `phoenix_url` fixture), and read back through its REST API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentkit import Agent, tool
from agentkit.otel import CAPTURE_CONTENT_ENV, Instrumentation
from agentkit.testing import ScriptedModel, tool_calls

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CONTENT = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments")


def clock_agent(provider: TracerProvider, capture_content: bool) -> Agent[str]:
    started: list[str] = []

    @tool
    async def get_current_time(timezone: str) -> str:
        """Current local time in a time zone.

        Args:
            timezone: IANA time zone name.
        """
        started.append(timezone)
        with anyio.fail_after(5):  # both calls in flight at once, or the test fails
            while len(started) < 2:  # noqa: ASYNC110  (a two-task barrier, polled)
                await anyio.sleep(0.005)
        return f"12:00 in {timezone}"

    script = [
        tool_calls(
            ("get_current_time", {"timezone": "Asia/Tokyo"}),
            ("get_current_time", {"timezone": "Europe/Paris"}),
        ),
        "It is 12:00 in Tokyo and in Paris.",
    ]
    return Agent(
        "gpt-4o-mini",
        client=ScriptedModel(script),
        tools=[get_current_time],
        name="clock",
        instrument=Instrumentation(tracer_provider=provider, capture_content=capture_content),
    )


def read_spans(phoenix_url: str, project: str, count: int) -> list[dict[str, Any]]:
    """The spans of `project`, once Phoenix has stored `count` (or after 30 s)."""
    deadline = time.monotonic() + 30
    spans: list[dict[str, Any]] = []
    with httpx.Client(base_url=phoenix_url, timeout=10) as http:
        while time.monotonic() < deadline:  # Phoenix writes what it receives in batches
            response = http.get(f"/v1/projects/{project}/spans", params={"limit": 100})
            if response.status_code == 200:
                spans = response.json()["data"]
                if len(spans) >= count:
                    break
            time.sleep(0.2)
    return spans


def traced_run(phoenix_url: str, project: str, capture_content: bool) -> list[dict[str, Any]]:
    """Run the clock agent, export its spans to Phoenix, and read them back."""
    resource = Resource.create(
        {"service.name": "agentkit-tests", "openinference.project.name": project}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix_url}/v1/traces", timeout=10))
    )
    result = clock_agent(provider, capture_content).run_sync("What time is it in Tokyo and Paris?")
    assert result.output == "It is 12:00 in Tokyo and in Paris."
    assert provider.force_flush(10_000)
    provider.shutdown()
    return read_spans(phoenix_url, project, 5)


def test_the_clock_runs_span_tree_is_read_back_from_phoenix(phoenix_url: str) -> None:
    spans = traced_run(phoenix_url, f"clock-{uuid.uuid4().hex[:8]}", capture_content=False)
    assert len(spans) == 5, [s["name"] for s in spans]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    (run,) = by_name["invoke_agent clock"]
    chats = by_name["chat gpt-4o-mini"]
    tools = by_name["execute_tool get_current_time"]
    assert len(chats) == 2 and len(tools) == 2
    assert run["parent_id"] is None
    assert {s["context"]["trace_id"] for s in spans} == {run["context"]["trace_id"]}
    for span in (*chats, *tools):
        assert span["parent_id"] == run["context"]["span_id"]
    # Phoenix reads the GenAI conventions: it classifies each span by its operation.
    assert (run["span_kind"], chats[0]["span_kind"], tools[0]["span_kind"]) == (
        "AGENT",
        "LLM",
        "TOOL",
    )
    for chat in chats:
        a = chat["attributes"]
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.usage.input_tokens"] == 10 and a["gen_ai.usage.output_tokens"] >= 1
        assert a["gen_ai.response.id"].startswith("chatcmpl-test-")
    assert sorted(c["attributes"]["gen_ai.response.finish_reasons"][0] for c in chats) == [
        "stop",
        "tool_calls",
    ]
    first, second = sorted(tools, key=lambda s: s["start_time"])
    assert second["start_time"] < first["end_time"]  # the two calls ran in parallel
    ids = {t["attributes"]["gen_ai.tool.call.id"] for t in tools}
    assert len(ids) == 2 and all(i.startswith("call_") for i in ids)
    assert run["attributes"]["gen_ai.usage.input_tokens"] == 20
    for span in spans:
        assert not set(span["attributes"]) & set(CONTENT)
        assert "Tokyo" not in str(span["attributes"])


def test_content_reaches_phoenix_only_when_enabled(phoenix_url: str) -> None:
    spans = traced_run(phoenix_url, f"content-{uuid.uuid4().hex[:8]}", capture_content=True)
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert len(chats) == 2
    assert all("Tokyo" in c["attributes"]["gen_ai.input.messages"] for c in chats)
    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert sorted(t["attributes"]["gen_ai.tool.call.result"] for t in tools) == [
        "12:00 in Asia/Tokyo",
        "12:00 in Europe/Paris",
    ]


def test_the_tracing_example_shows_its_run_in_phoenix(phoenix_url: str) -> None:
    project = f"example-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env.pop(CAPTURE_CONTENT_ENV, None)
    done = subprocess.run(
        [sys.executable, "tracing.py", "--endpoint", phoenix_url, "--project", project],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "trace sent to" in done.stdout
    spans = read_spans(phoenix_url, project, 5)
    names = sorted(s["name"] for s in spans)
    assert names == [
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
        "execute_tool get_current_time",
        "execute_tool get_current_time",
        "invoke_agent clock",
    ]
    (run,) = [s for s in spans if s["parent_id"] is None]
    assert all(s["parent_id"] == run["context"]["span_id"] for s in spans if s is not run)
    for span in spans:
        assert not set(span["attributes"]) & set(CONTENT)

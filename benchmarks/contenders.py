"""Everything that runs the scenario: the floor, agentkit, and the peers.

Each contender is built around an HTTP client it is given (in-process:
`MockTransport`; loopback: one pooled client shared by all concurrent runs)
and returns an async function that does one full run and returns the final
text. The peers (the `openai` SDK, pydantic-ai, the OpenAI Agents SDK) are
optional: `pip install -e ".[bench]"`. The current `openai` SDK is built on
`httpx2`, not `httpx`, so the peers get an `httpx2` client configured the same
way; the `floor-httpx2` and `agentkit-httpx2` rows show what the stack alone
changes (agentkit runs on either).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from benchmarks.scenario import (
    API_KEY,
    MODEL,
    PROMPT,
    TOOL_DEFINITION,
    get_current_time,
    get_current_time_sync,
)

__all__ = ["CONTENDERS", "Contender", "RunFn"]

RunFn = Callable[[], Awaitable[str]]
Factory = Callable[[Any, str, bool], RunFn]
"""(http client, base URL, stream) → one full run."""

_TOOLS_BY_NAME = {"get_current_time": get_current_time}
_SYNC_TOOLS_BY_NAME = {"get_current_time": get_current_time_sync}


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    http: str
    """The HTTP package it runs on: "httpx" or "httpx2"."""
    make: Factory
    requires: tuple[str, ...] = ()
    peer: bool = False
    sync_tool: bool = False
    """Its tool is sync and runs in worker threads: it is also compared with the fair
    floor on its stack (`floor-threads`, `floor-httpx2-threads`), the hand-written loop
    that runs each call in `asyncio.to_thread`."""

    def missing(self) -> str | None:
        """Why it cannot run here, or None."""
        for module in (self.http, *self.requires):
            try:
                importlib.import_module(module)
            except ImportError as exc:
                return f"not installed ({exc.name}); pip install -e '.[bench]'"
        return None

    def http_module(self) -> ModuleType:
        return importlib.import_module(self.http)


# --- the floor: httpx (or httpx2) + json, by hand ------------------------------------


def _floor(http: Any, base_url: str, stream: bool, *, sync_threads: bool = False) -> RunFn:
    url = base_url + "/chat/completions"
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}

    async def run_tools(calls: list[dict[str, Any]]) -> list[str]:
        # Parallel calls run concurrently, as every framework here does.
        return await asyncio.gather(
            *(
                _TOOLS_BY_NAME[c["function"]["name"]](**json.loads(c["function"]["arguments"]))
                for c in calls
            )
        )

    async def run_tools_in_threads(calls: list[dict[str, Any]]) -> list[str]:
        # The fair floor for a sync tool: a turn's calls run concurrently, each in a
        # worker thread of the default executor, so that none blocks the event loop.
        return await asyncio.gather(
            *(
                asyncio.to_thread(
                    _SYNC_TOOLS_BY_NAME[c["function"]["name"]],
                    **json.loads(c["function"]["arguments"]),
                )
                for c in calls
            )
        )

    if sync_threads:
        run_tools = run_tools_in_threads

    async def request(messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"model": MODEL, "messages": messages, "tools": [TOOL_DEFINITION]}
        response = await http.post(url, content=json.dumps(body), headers=headers)
        response.raise_for_status()
        message: dict[str, Any] = json.loads(response.content)["choices"][0]["message"]
        return message

    async def request_stream(messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = {
            "model": MODEL,
            "messages": messages,
            "tools": [TOOL_DEFINITION],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        async with http.stream("POST", url, content=json.dumps(body), headers=headers) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                for choice in json.loads(data)["choices"]:
                    delta = choice["delta"]
                    if delta.get("content"):
                        content.append(delta["content"])
                    for d in delta.get("tool_calls") or ():
                        call = calls.setdefault(
                            d["index"],
                            {
                                "id": "",
                                "type": "function",
                                "function": {"name": "", "arguments": ""},
                            },
                        )
                        call["id"] = d.get("id") or call["id"]
                        function = d.get("function") or {}
                        call["function"]["name"] += function.get("name") or ""
                        call["function"]["arguments"] += function.get("arguments") or ""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return message

    send = request_stream if stream else request

    async def run() -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        while True:
            message = await send(messages)
            calls = message.get("tool_calls")
            if not calls:
                return str(message["content"])
            messages.append(
                {"role": "assistant", "content": message.get("content"), "tool_calls": calls}
            )
            results = await run_tools(calls)
            for call, result in zip(calls, results, strict=True):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})

    return run


def _floor_threads(http: Any, base_url: str, stream: bool) -> RunFn:
    return _floor(http, base_url, stream, sync_threads=True)


# --- agentkit -------------------------------------------------------------------------


def _agentkit(
    http: Any,
    base_url: str,
    stream: bool,
    *,
    sync_tool: bool = False,
    inline: bool = False,
    otel: bool = False,
    sdk: bool = False,
) -> RunFn:
    from agentkit import Agent, ChatClient, RunComplete

    client = ChatClient(base_url, api_key=API_KEY, http_client=http)
    from agentkit import Tool

    tool_fn: Any = get_current_time_sync if sync_tool else get_current_time
    if inline:
        # A sync tool known not to block, run on the event loop: no thread hand-off.
        tool_fn = Tool(get_current_time_sync, blocking=False)
    instrument = None
    if otel:
        from agentkit.otel import Instrumentation

        # OpenTelemetry's global providers, with no SDK configured: what an installed
        # but unused `agentkit[otel]` costs.
        instrument = Instrumentation()
    if sdk:
        from opentelemetry.sdk.trace import TracerProvider

        from agentkit.otel import Instrumentation

        # An SDK that records every span and exports none: the cost of the spans alone.
        instrument = Instrumentation(tracer_provider=TracerProvider())
    agent = Agent(MODEL, client=client, tools=[tool_fn], instrument=instrument)

    async def run() -> str:
        return (await agent.run(PROMPT)).output

    async def run_stream() -> str:
        async with agent.run_stream(PROMPT) as events:
            async for event in events:
                if isinstance(event, RunComplete):
                    return str(event.result.output)
        raise RuntimeError("the stream ended without RunComplete")

    return run_stream if stream else run


def _agentkit_sync_tool(http: Any, base_url: str, stream: bool) -> RunFn:
    return _agentkit(http, base_url, stream, sync_tool=True)


def _agentkit_inline_tool(http: Any, base_url: str, stream: bool) -> RunFn:
    return _agentkit(http, base_url, stream, sync_tool=True, inline=True)


def _agentkit_otel(http: Any, base_url: str, stream: bool) -> RunFn:
    return _agentkit(http, base_url, stream, otel=True)


def _agentkit_otel_sdk(http: Any, base_url: str, stream: bool) -> RunFn:
    return _agentkit(http, base_url, stream, sdk=True)


# --- peers ----------------------------------------------------------------------------


def _openai_client(http: Any, base_url: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key=API_KEY, http_client=http)


def _openai_sdk(http: Any, base_url: str, stream: bool) -> RunFn:
    client = _openai_client(http, base_url)
    tools: Any = [TOOL_DEFINITION]

    async def run() -> str:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        while True:
            response = await client.chat.completions.create(
                model=MODEL, messages=messages, tools=tools
            )
            message = response.choices[0].message
            if not message.tool_calls:
                return str(message.content)
            messages.append(message)
            calls = message.tool_calls
            results = await asyncio.gather(
                *(
                    _TOOLS_BY_NAME[c.function.name](**json.loads(c.function.arguments))
                    for c in calls
                )
            )
            for call, result in zip(calls, results, strict=True):
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})

    async def run_stream() -> str:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        while True:
            content: list[str] = []
            calls: dict[int, dict[str, Any]] = {}
            chunks = await client.chat.completions.create(
                model=MODEL,
                messages=messages,
                tools=tools,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in chunks:
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        content.append(delta.content)
                    for d in delta.tool_calls or ():
                        call = calls.setdefault(
                            d.index,
                            {
                                "id": "",
                                "type": "function",
                                "function": {"name": "", "arguments": ""},
                            },
                        )
                        call["id"] = d.id or call["id"]
                        if d.function is not None:
                            call["function"]["name"] += d.function.name or ""
                            call["function"]["arguments"] += d.function.arguments or ""
            if not calls:
                return "".join(content)
            ordered = [calls[i] for i in sorted(calls)]
            messages.append({"role": "assistant", "content": None, "tool_calls": ordered})
            results = await asyncio.gather(
                *(
                    _TOOLS_BY_NAME[c["function"]["name"]](**json.loads(c["function"]["arguments"]))
                    for c in ordered
                )
            )
            for call, result in zip(ordered, results, strict=True):
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})

    return run_stream if stream else run


def _pydantic_ai(http: Any, base_url: str, stream: bool) -> RunFn:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(openai_client=_openai_client(http, base_url))
    agent = Agent(OpenAIChatModel(MODEL, provider=provider), tools=[get_current_time])

    async def run() -> str:
        return (await agent.run(PROMPT)).output

    async def run_stream() -> str:
        async with agent.run_stream(PROMPT) as result:
            async for _ in result.stream_text(delta=True):
                pass
            return await result.get_output()

    return run_stream if stream else run


def _openai_agents(http: Any, base_url: str, stream: bool) -> RunFn:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    # Tracing would export every run to the OpenAI platform; nothing leaves this machine.
    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(MODEL, openai_client=_openai_client(http, base_url))
    agent = Agent(name="clock", model=model, tools=[function_tool(get_current_time)])

    async def run() -> str:
        return str((await Runner.run(agent, PROMPT)).final_output)

    async def run_stream() -> str:
        result = Runner.run_streamed(agent, PROMPT)
        async for _ in result.stream_events():
            pass
        return str(result.final_output)

    return run_stream if stream else run


CONTENDERS = {
    c.name: c
    for c in [
        Contender("floor", "floor (httpx + json)", "httpx", _floor),
        Contender("agentkit", "agentkit", "httpx", _agentkit, ("agentkit",)),
        Contender(
            "agentkit-sync-tool",
            "agentkit, sync tool (worker thread)",
            "httpx",
            _agentkit_sync_tool,
            ("agentkit",),
            sync_tool=True,
        ),
        Contender(
            "agentkit-inline-tool",
            "agentkit, sync tool inline (blocking=False)",
            "httpx",
            _agentkit_inline_tool,
            ("agentkit",),
        ),
        Contender(
            "floor-threads",
            "fair floor for a sync tool (httpx + json, calls in asyncio.to_thread)",
            "httpx",
            _floor_threads,
            sync_tool=True,
        ),
        Contender(
            "agentkit-otel",
            "agentkit, traced (agentkit.otel, no SDK configured)",
            "httpx",
            _agentkit_otel,
            ("agentkit", "opentelemetry"),
        ),
        Contender(
            "agentkit-otel-sdk",
            "agentkit, traced into an SDK that records spans and exports none",
            "httpx",
            _agentkit_otel_sdk,
            ("agentkit", "opentelemetry.sdk"),
        ),
        Contender("floor-httpx2", "floor on httpx2 (the peers' HTTP stack)", "httpx2", _floor),
        Contender("agentkit-httpx2", "agentkit on httpx2", "httpx2", _agentkit, ("agentkit",)),
        Contender(
            "floor-httpx2-threads",
            "fair floor for a sync tool on httpx2 (calls in asyncio.to_thread)",
            "httpx2",
            _floor_threads,
            sync_tool=True,
        ),
        Contender(
            "agentkit-httpx2-sync-tool",
            "agentkit on httpx2, sync tool (worker thread)",
            "httpx2",
            _agentkit_sync_tool,
            ("agentkit",),
            sync_tool=True,
        ),
        Contender(
            "agentkit-httpx2-inline-tool",
            "agentkit on httpx2, sync tool inline (blocking=False)",
            "httpx2",
            _agentkit_inline_tool,
            ("agentkit",),
        ),
        Contender("openai", "openai SDK + hand loop", "httpx2", _openai_sdk, ("openai",), True),
        Contender(
            "pydantic-ai",
            "pydantic-ai",
            "httpx2",
            _pydantic_ai,
            ("pydantic_ai.models.openai",),
            True,
        ),
        Contender(
            "openai-agents",
            "OpenAI Agents SDK",
            "httpx2",
            _openai_agents,
            ("agents",),
            True,
        ),
    ]
}

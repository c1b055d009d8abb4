"""The API key never shows: not in logs at any level, reprs, `str()` or `repr()` of any
error (with its causes and traceback), event payloads or `RunResult` dumps.

Each scenario drives the client or an agent through the fault server (or a mock
transport for a server that echoes the key back), collects every piece of text
agentkit produced, and greps it for the key and for its secret part alone.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentkit import Agent, AgentKitError, ChatClient, tool
from tests.fault_server import FaultServer, fault_server
from tests.reliability_helpers import record_sleeps

pytestmark = pytest.mark.anyio

SECRET = "7c1e0f9a4b3d2e8f6a5b"
KEY = f"sk-proj-{SECRET}"


class Collected:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *items: Any) -> None:
        for item in items:
            self.texts.append(item if isinstance(item, str) else repr(item))

    def error(self, exc: BaseException) -> None:
        self.add(str(exc), repr(exc), "".join(traceback.format_exception(exc)))
        for name, value in vars(exc).items():
            if name == "request":
                self.add(value, value.headers, value.url)
            elif name == "response":
                self.add(value, value.headers)
            elif name == "messages":
                self.add(json.dumps([m.model_dump(mode="json") for m in value]))
            else:
                self.add(value)

    def assert_clean(self, caplog: pytest.LogCaptureFixture) -> None:
        for record in caplog.records:
            self.add(record.getMessage(), str(record.args), caplog.text)
        assert self.texts, "nothing was collected"
        for text in self.texts:
            assert SECRET not in text, text[:500]


@pytest.fixture
def collected(caplog: pytest.LogCaptureFixture) -> Collected:
    caplog.set_level(logging.DEBUG)  # every logger, every level: agentkit, httpx, httpcore
    return Collected()


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with fault_server(slow_delay=0.5) as running:
        yield running


@tool
def lookup(key: str) -> str:
    """Look something up."""
    return f"value of {key}"


async def test_the_key_is_never_shown_across_retries_errors_and_a_run(
    server: FaultServer,
    collected: Collected,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_sleeps(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    timeout = httpx.Timeout(0.3, connect=2.0)
    async with ChatClient(server.base_url, timeout=timeout) as client:
        assert server.base_url in repr(client)
        collected.add(client)
        # Every fault, retried and then final, on create and on stream.
        for fault in ["429", "500", "502", "reset", "slow", "html-200", "not-json"]:
            for streamed in (False, True):
                server.script.extend([fault] * 3)
                try:
                    if streamed:
                        async with client.stream(
                            model="m", messages=[{"role": "user", "content": "hi"}]
                        ) as chunks:
                            collected.add(*[chunk async for chunk in chunks])
                    else:
                        collected.add(
                            await client.create(
                                model="m", messages=[{"role": "user", "content": "hi"}]
                            )
                        )
                except AgentKitError as exc:
                    collected.error(exc)
                server.script.clear()
        # A whole run, with its events and result; then a run that fails.
        events: list[Any] = []
        agent = Agent("m", client=client, tools=[lookup], event_handler=events.append)
        collected.add(agent)
        result = await agent.run("look it up")
        collected.add(result, json.dumps([m.model_dump(mode="json") for m in result.messages]))
        server.script.extend(["503"] * 3)
        try:
            await agent.run("again")
        except AgentKitError as exc:
            collected.error(exc)
        async with agent.run_stream("streamed") as stream:
            async for event in stream:
                events.append(event)
        collected.add(*events)
    # The key did go out, in the Authorization header only.
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    collected.assert_clean(caplog)


def _echoed(request: httpx.Request) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


def _error(message: str) -> dict[str, Any]:
    kind = "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": "invalid_api_key"}}


def _sse(*events: Any) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)


CHUNK = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
}

# Some proxies and compatible servers quote the key they were given, in an error
# status, a 200 page that is not JSON, or an error event inside a stream.
ECHOES = {
    "401": lambda r: httpx.Response(401, json=_error(f"Incorrect API key provided: {_echoed(r)}.")),
    "200-not-json": lambda r: httpx.Response(200, text=f"denied for key {_echoed(r)}"),
    "200-wrong-shape": lambda r: httpx.Response(200, json={"key": _echoed(r)}),
    "stream-error-event": lambda r: httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=_sse(_error(f"Incorrect API key provided: {_echoed(r)}.")),
    ),
    "stream-error-event-later": lambda r: httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=_sse(CHUNK, _error(f"Incorrect API key provided: {_echoed(r)}.")),
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
async def test_a_server_echoing_the_key_back_does_not_put_it_in_the_error(
    collected: Collected, caplog: pytest.LogCaptureFixture, echo: str
) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(ECHOES[echo]))
    async with http:
        client = ChatClient("http://echo.test/v1", api_key=KEY, http_client=http, max_retries=0)
        with pytest.raises(AgentKitError) as caught:
            if echo.startswith("stream"):
                messages = [{"role": "user", "content": "hi"}]
                async with client.stream(model="m", messages=messages) as chunks:
                    async for _ in chunks:
                        pass
            else:
                await client.create(model="m", messages=[{"role": "user", "content": "hi"}])
    collected.add(str(caught.value), repr(caught.value))
    collected.add("".join(traceback.format_exception(caught.value)))
    collected.assert_clean(caplog)

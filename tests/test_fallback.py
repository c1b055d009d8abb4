"""`FallbackModel`: a run moves to the next endpoint when one is down, over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import respx

from agentkit import (
    Agent,
    APIConnectionError,
    BadRequestError,
    ChatClient,
    FallbackModel,
    InternalServerError,
    ModelFallback,
    ModelRequestEnd,
    RateLimitError,
    RunComplete,
    TextDelta,
    UserError,
    tool,
)
from tests.chat_server import assert_history_valid, calls, completion, tool_call

pytestmark = pytest.mark.anyio

PRIMARY = "https://primary.test/v1"
BACKUP = "https://user:secret@backup.test/v1?api-key=hidden"
SHOWN_BACKUP = "https://backup.test/v1"


@tool
def get_time(timezone: str) -> str:
    """Current local time in a time zone.

    Args:
        timezone: IANA time zone name.
    """
    return f"12:00 in {timezone}"


def error(status: int) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": f"status {status}", "type": "x"}})


def sse(text: str) -> httpx.Response:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


@asynccontextmanager
async def endpoints(
    primary: list[Any], backup: list[Any]
) -> AsyncIterator[tuple[FallbackModel, list[dict[str, Any]], list[dict[str, Any]]]]:
    """Two mocked endpoints answering in turn with the given replies (bodies, responses
    or exceptions), and a FallbackModel over them; the bodies each one received."""
    seen: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])

    def replying(replies: list[Any], log: list[dict[str, Any]]) -> Any:
        def reply(request: httpx.Request) -> httpx.Response:
            log.append(json.loads(request.content))
            item = replies.pop(0)
            if isinstance(item, Exception):
                raise item
            return item if isinstance(item, httpx.Response) else httpx.Response(200, json=item)

        return reply

    with respx.mock(assert_all_called=False) as router:
        router.post(f"{PRIMARY}/chat/completions").mock(side_effect=replying(primary, seen[0]))
        router.post("https://backup.test/v1/chat/completions").mock(
            side_effect=replying(backup, seen[1])
        )
        async with httpx.AsyncClient() as http:
            first = ChatClient(base_url=PRIMARY, api_key="sk-a", http_client=http, max_retries=0)
            second = ChatClient(base_url=BACKUP, api_key="sk-b", http_client=http, max_retries=0)
            yield FallbackModel([first, (second, "backup-model")]), seen[0], seen[1]


@pytest.mark.parametrize(
    "outage",
    [error(503), error(500), error(429), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "500", "429", "connect", "timeout"],
)
async def test_an_outage_moves_the_request_to_the_next_endpoint(outage: Any) -> None:
    primary = [outage, completion("from primary")]
    backup = [calls(tool_call("c1", "get_time", {"timezone": "UTC"}))]
    async with endpoints(primary, backup) as (model, to_primary, to_backup):
        events: list[Any] = []
        agent = Agent("main-model", client=model, tools=[get_time])
        result = await agent.run("?", event_handler=events.append)
    assert result.output == "from primary"  # the next request starts from the first again
    assert [b["model"] for b in to_primary] == ["main-model", "main-model"]
    assert [b["model"] for b in to_backup] == ["backup-model"]
    falls = [e for e in events if isinstance(e, ModelFallback)]
    assert len(falls) == 1 and falls[0].endpoint == f"{PRIMARY} (main-model)"
    ends = [e.endpoint for e in events if isinstance(e, ModelRequestEnd)]
    assert ends == [f"{SHOWN_BACKUP} (backup-model)", f"{PRIMARY} (main-model)"]
    assert "secret" not in repr(model) and "hidden" not in repr(model)
    assert_history_valid(result.messages)


async def test_a_request_the_endpoint_refused_is_not_sent_elsewhere() -> None:
    async with endpoints([error(400)], [completion("never")]) as (model, _, to_backup):
        with pytest.raises(BadRequestError):
            await Agent("m", client=model).run("?")
    assert to_backup == []


async def test_when_every_endpoint_is_down_the_last_error_is_raised() -> None:
    async with endpoints([error(503)], [error(429)]) as (model, _, _):
        events: list[Any] = []
        with pytest.raises(RateLimitError) as info:
            await Agent("m", client=model).run("?", event_handler=events.append)
    assert "backup.test" in str(info.value.request.url)
    assert [e.endpoint for e in events if isinstance(e, ModelFallback)] == [f"{PRIMARY} (m)"]


async def test_a_stream_moves_on_while_opening() -> None:
    async with endpoints([error(502)], [sse("Hello")]) as (model, _, to_backup):
        async with Agent("m", client=model).run_stream("?") as stream:
            events = [e async for e in stream]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"
    assert isinstance(events[-1], RunComplete)
    assert to_backup[0]["stream"] is True
    assert any(isinstance(e, ModelFallback) for e in events)


async def test_the_client_api_directly() -> None:
    async with endpoints([httpx.ConnectError("down")], [completion("ok")]) as (model, _, _):
        completion_ = await model.create(model="m", messages=[{"role": "user", "content": "?"}])
    assert completion_.choices[0].message.content == "ok"


def test_bad_fallback_models_are_refused() -> None:
    with pytest.raises(UserError, match="at least one model"):
        FallbackModel([])
    with pytest.raises(UserError, match="takes ChatModels"):
        FallbackModel(["gpt-4o"])  # type: ignore[list-item]


def test_outages_are_classified() -> None:
    from agentkit._client.fallback import is_outage

    request = httpx.Request("POST", PRIMARY)
    assert is_outage(APIConnectionError("x", request=request))
    assert is_outage(
        InternalServerError("x", response=httpx.Response(500, request=request), body=None)
    )
    assert not is_outage(
        BadRequestError("x", response=httpx.Response(400, request=request), body=None)
    )

"""Chat requests sent straight to the HTTP client's transport (`agentkit/_client/direct.py`).

After a client's first request, non-streamed requests skip `AsyncClient.send`'s auth
flow, redirect loop and stream wrapper when the client has none of what they serve.
These tests hold what comes back to what `send` gives (the response's request,
elapsed time, cookies, the library's log line, a redirect's next request, errors
with their request), on both stacks, and check that every setting `send` would act
on takes the general way.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import httpx
import httpx2
import pytest

import agentkit._client.client as client_module
from agentkit import APIConnectionError, APIStatusError, ChatClient, UserMessage

BASE = "https://llm.test/v1"
MESSAGES = [UserMessage(content="hi")]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


@pytest.fixture(params=["httpx", "httpx2"])
def module(request: pytest.FixtureRequest) -> Any:
    return httpx if request.param == "httpx" else httpx2


class Server:
    """A transport's handler: records each request, answers from a list (then 200s)."""

    def __init__(self, module: Any, *answers: Any) -> None:
        self.module = module
        self.answers = list(answers)
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, BaseException):
            raise answer
        return answer or self.module.Response(200, json=COMPLETION)


@pytest.fixture
def direct_sends(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The requests that went the direct way."""
    sent: list[Any] = []
    real = client_module.send_direct

    async def counted(http: Any, request: Any, stack: Any) -> Any:
        sent.append(request)
        return await real(http, request, stack)

    monkeypatch.setattr(client_module, "send_direct", counted)
    return sent


def chat_client(module: Any, server: Server, **http_options: Any) -> ChatClient:
    http = module.AsyncClient(transport=module.MockTransport(server), **http_options)
    return ChatClient(BASE, api_key="sk-test", http_client=http, max_retries=0)


@pytest.mark.anyio
async def test_requests_after_the_first_go_straight_to_the_transport(
    module: Any, direct_sends: list[Any]
) -> None:
    server = Server(module)
    async with chat_client(module, server) as client:
        for _ in range(3):
            completion = await client.create(model="m", messages=MESSAGES)
            assert completion.choices[0].message.content == "ok"
    assert direct_sends == server.requests[1:]
    first, *later = server.requests
    for request in later:
        assert request.headers.multi_items() == first.headers.multi_items()
        assert request.content == first.content


@pytest.mark.anyio
async def test_a_response_sent_direct_is_the_one_send_gives(
    module: Any, direct_sends: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def refused() -> Any:
        return module.Response(400, json={"error": {"message": "no"}}, headers={"x-a": "1"})

    server = Server(module, refused(), refused())
    caplog.set_level(logging.INFO, logger=module.__name__)
    responses = []
    async with chat_client(module, server, default_encoding="latin-1") as client:
        for _ in range(2):
            with pytest.raises(APIStatusError) as caught:
                await client.create(model="m", messages=MESSAGES)
            responses.append(caught.value.response)
    assert direct_sends == server.requests[1:]
    general, direct = responses
    for response, request in zip(responses, server.requests, strict=True):
        assert response.request is request
        assert response.is_closed
    # (httpx's mock transport hands back responses whose time `send` never records.)
    assert isinstance(direct.elapsed, datetime.timedelta)
    assert direct.elapsed.total_seconds() >= 0
    for name in ("status_code", "http_version", "reason_phrase", "encoding", "history", "content"):
        assert getattr(direct, name) == getattr(general, name), name
    assert direct.headers.multi_items() == general.headers.multi_items()
    lines = [r.getMessage() for r in caplog.records if r.name == module.__name__]
    assert lines == [f'HTTP Request: POST {BASE}/chat/completions "HTTP/1.1 400 Bad Request"'] * 2


@pytest.mark.anyio
async def test_cookies_set_by_a_response_sent_direct_are_kept(
    module: Any, direct_sends: list[Any]
) -> None:
    server = Server(
        module,
        None,
        module.Response(200, json=COMPLETION, headers={"set-cookie": "session=abc; Path=/"}),
    )
    async with chat_client(module, server) as client:
        for _ in range(3):
            await client.create(model="m", messages=MESSAGES)
        assert client._http.cookies.get("session") == "abc"
    assert server.requests[1] in direct_sends
    assert "cookie" not in server.requests[1].headers
    assert server.requests[2].headers["cookie"] == "session=abc"


@pytest.mark.anyio
async def test_a_redirect_sent_direct_is_not_followed_and_names_its_next_request(
    module: Any, direct_sends: list[Any]
) -> None:
    def moved() -> Any:
        return module.Response(307, headers={"location": f"{BASE}/elsewhere"})

    server = Server(module, moved(), moved())
    nexts = []
    async with chat_client(module, server) as client:
        for _ in range(2):
            with pytest.raises(APIStatusError) as caught:
                await client.create(model="m", messages=MESSAGES)
            nexts.append(caught.value.response.next_request)
    assert direct_sends == server.requests[1:]
    assert len(server.requests) == 2  # neither redirect followed
    assert [str(n.url) for n in nexts] == [f"{BASE}/elsewhere"] * 2


@pytest.mark.anyio
async def test_a_transport_error_sent_direct_carries_its_request(
    module: Any, direct_sends: list[Any]
) -> None:
    server = Server(module, None, module.ConnectError("refused"))
    async with chat_client(module, server) as client:
        await client.create(model="m", messages=MESSAGES)
        with pytest.raises(APIConnectionError) as caught:
            await client.create(model="m", messages=MESSAGES)
    assert direct_sends == server.requests[1:]
    cause = caught.value.__cause__
    assert isinstance(cause, module.ConnectError)
    assert cause.request is server.requests[1]


def _hooked(module: Any, calls: list[str]) -> dict[str, Any]:
    async def on_request(request: Any) -> None:
        calls.append("request")

    async def on_response(response: Any) -> None:
        calls.append("response")

    return {"event_hooks": {"request": [on_request], "response": [on_response]}}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "setting", ["auth", "event_hooks", "follow_redirects", "subclass", "user_info", "patched"]
)
async def test_settings_send_acts_on_take_the_general_way(
    module: Any, setting: str, direct_sends: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(module)
    hook_calls: list[str] = []
    patched_calls: list[Any] = []
    options: dict[str, Any] = {}
    base = BASE
    cls = module.AsyncClient
    if setting == "auth":
        options["auth"] = module.BasicAuth("user", "pass")
    elif setting == "event_hooks":
        options.update(_hooked(module, hook_calls))
    elif setting == "follow_redirects":
        options["follow_redirects"] = True
    elif setting == "subclass":
        cls = type("Traced", (module.AsyncClient,), {})
    elif setting == "user_info":
        base = "https://user:secret@llm.test/v1"
    else:
        # As a tracing or error-reporting SDK patches it in place.
        real_send = module.AsyncClient.send

        async def traced(self: Any, request: Any, **kwargs: Any) -> Any:
            patched_calls.append(request)
            return await real_send(self, request, **kwargs)

        monkeypatch.setattr(module.AsyncClient, "send", traced)
    http = cls(transport=module.MockTransport(server), **options)
    async with ChatClient(base, api_key="sk-test", http_client=http, max_retries=0) as client:
        for _ in range(3):
            await client.create(model="m", messages=MESSAGES)
    assert direct_sends == []
    assert len(server.requests) == 3
    if setting == "auth":
        assert all(r.headers["authorization"].startswith("Basic ") for r in server.requests)
    elif setting == "event_hooks":
        assert hook_calls == ["request", "response"] * 3
    elif setting == "user_info":
        assert all(r.headers["authorization"].startswith("Basic ") for r in server.requests)
    elif setting == "patched":
        assert patched_calls == server.requests


@pytest.mark.anyio
async def test_streamed_requests_take_the_general_way(module: Any, direct_sends: list[Any]) -> None:
    events = (
        'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
        'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
        "\n\ndata: [DONE]\n\n"
    )

    def streamed() -> Any:
        return module.Response(
            200, content=events.encode(), headers={"content-type": "text/event-stream"}
        )

    server = Server(module, None, streamed(), streamed())
    async with chat_client(module, server) as client:
        await client.create(model="m", messages=MESSAGES)
        for _ in range(2):
            async with client.stream(model="m", messages=MESSAGES) as stream:
                text = "".join([c.choices[0].delta.content or "" async for c in stream])
            assert text == "ok"
    assert direct_sends == []

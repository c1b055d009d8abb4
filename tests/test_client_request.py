"""The chat request `ChatClient` builds is the one `AsyncClient.build_request` would build.

The client merges its headers into the HTTP client's once and reuses them
(`build_request` merges them anew for every request, at more cost than the
rest of a request). These tests hold the result to `build_request`'s own, on
both stacks, for the client settings that matter: its headers (also when
they change later), base URL, timeout, cookies, query parameters, and a
subclass with a `build_request` of its own.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import pytest

from agentkit import ChatClient, UserError, UserMessage

MESSAGES = [UserMessage(content="hi")]
URL = "https://llm.test/v1/chat/completions"


def expected(http: Any, request: Any, *, stream: bool, extra: dict[str, str] | None = None) -> Any:
    """What `build_request` makes of the same body, headers and timeout."""
    headers = {
        "user-agent": request.headers["user-agent"],
        "accept": "text/event-stream" if stream else "application/json",
        "authorization": "Bearer sk-test",
        "content-type": "application/json",
        **(extra or {}),
    }
    return http.build_request(
        "POST",
        URL,
        content=request.content,
        headers=headers,
        extensions={"timeout": request.extensions["timeout"]},
    )


def same(a: Any, b: Any) -> None:
    assert a.method == b.method
    assert str(a.url) == str(b.url)
    assert a.headers.multi_items() == b.headers.multi_items()
    assert a.content == b.content
    assert type(a.stream) is type(b.stream)
    assert b"".join(a.stream) == a.content
    assert a.extensions == b.extensions


def build(client: ChatClient, *, stream: bool = False, **params: Any) -> Any:
    return client._chat_request("m", MESSAGES, params, stream=stream)


@pytest.fixture(params=["httpx", "httpx2"])
def module(request: pytest.FixtureRequest) -> Any:
    return httpx if request.param == "httpx" else httpx2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"headers": {"X-Team": "search", "User-Agent": "theirs/1.0", "Accept": "*/*"}},
        {"base_url": "https://elsewhere.test/api/"},
        {"timeout": 7.5},
        {"cookies": {"session": "abc"}},
        {"params": {"api-version": "2024-10-21"}},
    ],
    ids=["plain", "headers", "base_url", "timeout", "cookies", "params"],
)
def test_the_request_is_the_one_build_request_builds(
    module: Any, settings: dict[str, Any], stream: bool
) -> None:
    http = module.AsyncClient(**settings)
    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=http)
    for size in (1, 2, 30):  # later requests reuse what the first one merged
        tools = [{"type": "function", "function": {"name": "f" * size}}]
        request = build(client, stream=stream, tools=tools)
        same(request, expected(http, request, stream=stream))
        assert type(request) is module.Request


def test_the_client_s_own_timeout_and_a_per_call_timeout(module: Any) -> None:
    http = module.AsyncClient(timeout=3.0)
    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=http, timeout=9.0)
    request = build(client)
    assert request.extensions["timeout"] == module.Timeout(9.0).as_dict()
    same(request, expected(http, request, stream=False))
    per_call = build(client, timeout=1.5)
    assert per_call.extensions["timeout"] == module.Timeout(1.5).as_dict()
    same(per_call, expected(http, per_call, stream=False))


def test_headers_changed_on_the_http_client_later_are_sent(module: Any) -> None:
    http = module.AsyncClient(headers={"x-team": "search"})
    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=http)
    build(client)
    http.headers["x-team"] = "ads"
    http.headers["x-more"] = "1"
    for _ in range(2):  # built anew once, then copied from the new one
        request = build(client)
        assert request.headers["x-team"] == "ads"
        assert request.headers["x-more"] == "1"
        same(request, expected(http, request, stream=False))


def test_extra_headers_are_merged_over_everything(module: Any) -> None:
    http = module.AsyncClient(headers={"x-team": "search"})
    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=http)
    request = build(client, extra_headers={"X-Team": "ads", "Idempotency-Key": "k1"})
    assert request.headers["x-team"] == "ads"
    same(
        request,
        expected(http, request, stream=False, extra={"x-team": "ads", "idempotency-key": "k1"}),
    )
    # A request without them is not affected by the one with them.
    plain = build(client)
    assert plain.headers["x-team"] == "search"
    assert "idempotency-key" not in plain.headers


def test_a_subclass_with_its_own_build_request_is_used(module: Any) -> None:
    class Signing(module.AsyncClient):  # type: ignore[misc,name-defined]
        def build_request(self, *args: Any, **kwargs: Any) -> Any:
            request = super().build_request(*args, **kwargs)
            request.headers["x-signature"] = "signed"
            return request

    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=Signing())
    for stream in (False, True):
        assert build(client, stream=stream).headers["x-signature"] == "signed"


def test_a_sync_client_is_refused_by_name(module: Any) -> None:
    with pytest.raises(UserError, match=r"http_client must be an httpx\.AsyncClient .* got Client"):
        ChatClient("https://llm.test/v1", http_client=module.Client())


def test_messages_are_sent_in_wire_form_whatever_their_model() -> None:
    import json

    from agentkit import AssistantMessage

    class Tagged(UserMessage):
        tag: str

    client = ChatClient("https://llm.test/v1", api_key="sk-test", http_client=httpx.AsyncClient())
    plain = [UserMessage(content="hi"), AssistantMessage(content="yes", refusal=None)]
    body = json.loads(client._chat_request("m", plain, {}, stream=False).content)
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yes"},
    ]
    # A subclass keeps its own fields; a dict is validated and sent the same way.
    mixed = [Tagged(content="hi", tag="t1"), {"role": "user", "content": "more", "name": None}]
    body = json.loads(client._chat_request("m", mixed, {}, stream=False).content)
    assert body["messages"] == [
        {"role": "user", "content": "hi", "tag": "t1"},
        {"role": "user", "content": "more"},
    ]

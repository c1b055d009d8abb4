"""`ChatClient`: construction, the key, request bodies, errors, list_models, closing."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import respx
from anyio.abc import SocketStream
from jsonschema import ValidationError

import agentkit._client.client
from agentkit import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AssistantMessage,
    AuthenticationError,
    BadRequestError,
    ChatClient,
    ChatCompletion,
    ConflictError,
    DeveloperMessage,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    InternalServerError,
    JSONSchemaFormat,
    NamedToolChoice,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseFormatText,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolDefinition,
    ToolMessage,
    UnprocessableEntityError,
    UserError,
    UserMessage,
)
from tests.http_stacks import BASE, STACK, TLS, async_client, http_stack, real_async_client
from tests.openai_spec.validate import validate_request

pytestmark = pytest.mark.usefixtures("http_stack")
__all__ = ["TLS", "http_stack"]  # re-exported for the other client test modules

RECORDINGS_PATH = Path(__file__).parent / "recordings" / "extracted.json"
KEY = "sk-test-5ecret-Key-0123456789abcdef"
USER = [{"role": "user", "content": "Hi"}]


IDLE_HTTP = httpx.AsyncClient(verify=TLS)
"""For clients that are built but never send: nothing to close."""


def build(*args: Any, **kwargs: Any) -> ChatClient:
    """A ChatClient that is only inspected, on an idle httpx client."""
    return ChatClient(*args, http_client=IDLE_HTTP, **kwargs)


@asynccontextmanager
async def make(base_url: str = BASE, **kwargs: Any) -> AsyncIterator[ChatClient]:
    """A ChatClient on a fresh client of the current HTTP stack, closed afterwards."""
    async with (
        async_client() as http,
        ChatClient(base_url, http_client=http, **kwargs) as client,
    ):
        yield client


def completion(content: str | None = "Hello!", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        **extra,
    }


def error_body(
    message: str = "Something went wrong",
    type: str | None = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def sent_body(route: respx.Route) -> dict[str, Any]:
    body = json.loads(route.calls.last.request.content)
    assert isinstance(body, dict)
    return body


# --- construction, base URL and key --------------------------------------------------


def test_defaults_without_env() -> None:
    # Without a key, api.openai.com would only answer 401: refused before any request.
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        build()
    client = build(api_key=KEY)
    assert client.base_url == "https://api.openai.com/v1"
    assert client.max_retries == 2
    keyless = build("http://localhost:11434/v1")
    assert "authorization" not in keyless._headers


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = build()
    assert client.base_url == "http://localhost:11434/v1"
    assert client._headers["authorization"] == f"Bearer {KEY}"


def test_arguments_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    client = build(BASE, api_key=KEY)
    assert client.base_url == BASE
    assert client._headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("url", [f"{BASE}/", f"{BASE}//", BASE])
def test_trailing_slash_is_dropped(url: str) -> None:
    assert build(url).base_url == BASE


@pytest.mark.anyio
async def test_trailing_slash_gives_a_clean_url(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make(f"{BASE}/", api_key=KEY) as client:
        await client.create(model="m", messages=USER)
    assert str(route.calls.last.request.url) == f"{BASE}/chat/completions"


@pytest.mark.anyio
async def test_a_query_in_base_url_is_kept() -> None:
    azure = "https://res.openai.azure.com/openai/deployments/gpt?api-version=2024-10-21"
    with respx.mock(assert_all_called=True) as mock:
        chat = mock.post(
            "https://res.openai.azure.com/openai/deployments/gpt/chat/completions",
            params={"api-version": "2024-10-21"},
        ).respond(json=completion())
        models = mock.get(
            "https://res.openai.azure.com/openai/deployments/gpt/models",
            params={"api-version": "2024-10-21"},
        ).respond(json={"object": "list", "data": []})
        async with make(azure, api_key=KEY) as client:
            await client.create(model="m", messages=USER)
            assert await client.list_models() == []
    assert chat.call_count == models.call_count == 1


@pytest.mark.anyio
async def test_http_picks_the_stack_it_builds() -> None:
    async with ChatClient(BASE, http="httpx2") as client:
        assert isinstance(client._http, httpx2.AsyncClient)
        assert client._http.timeout == httpx2.Timeout(600.0, connect=5.0)
        limits = client._http._transport._pool  # the pool the defaults configured
        assert limits._max_connections == agentkit._client.client.DEFAULT_LIMITS.max_connections
    async with ChatClient(BASE) as client:
        assert isinstance(client._http, httpx.AsyncClient)
    assert client._http.is_closed


def test_a_given_client_decides_the_stack() -> None:
    assert build(BASE)._stack.name == "httpx"
    assert ChatClient(BASE, http_client=httpx2.AsyncClient())._stack.name == "httpx2"
    assert ChatClient(BASE, http_client=httpx2.AsyncClient(), timeout=3)._timeout == (
        httpx2.Timeout(3)
    )


@pytest.mark.parametrize("bad", [object(), "httpx"])
def test_http_client_must_be_an_async_client(bad: Any) -> None:
    with pytest.raises(UserError, match=r"http_client must be an httpx\.AsyncClient"):
        ChatClient(BASE, http_client=bad)


def test_unknown_stack_name() -> None:
    with pytest.raises(UserError, match='http must be "httpx" or "httpx2"'):
        ChatClient(BASE, http="requests")  # type: ignore[arg-type]


def test_httpx2_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx2", None)  # makes `import httpx2` fail
    with pytest.raises(UserError, match=r"pip install 'agentkit\[httpx2\]'"):
        ChatClient(BASE, http="httpx2")


@pytest.mark.parametrize("url", ["not a url", "ftp://host/v1", "http://", "localhost:8000"])
def test_invalid_base_url(url: str) -> None:
    with pytest.raises(UserError, match="base_url"):
        build(url)


@pytest.mark.parametrize("value", [-1, 1.5, "2", True, None])
def test_invalid_max_retries(value: Any) -> None:
    with pytest.raises(UserError, match="max_retries"):
        build(BASE, max_retries=value)


def test_repr_hides_the_key() -> None:
    assert repr(build(BASE, api_key=KEY)) == f"ChatClient(base_url='{BASE}', api_key=<set>)"
    assert repr(build(BASE)) == f"ChatClient(base_url='{BASE}', api_key=<none>)"
    assert KEY not in str(build(BASE, api_key=KEY))


@pytest.mark.anyio
async def test_key_is_sent_as_bearer(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    models = api.get("/models").respond(json={"object": "list", "data": []})
    async with make(api_key=KEY) as client:
        await client.create(model="m", messages=USER)
        await client.list_models()
    for r in (route, models):
        assert r.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
async def test_no_key_no_authorization_header(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        await client.create(model="m", messages=USER)
    assert "authorization" not in route.calls.last.request.headers


@pytest.mark.anyio
async def test_headers(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make(default_headers={"X-Org": "acme", "X-Both": "default"}) as c:
        await c.create(model="m", messages=USER, extra_headers={"X-Both": "call", "X-Once": "1"})
        await c.create(model="m", messages=USER)
    first, second = (call.request.headers for call in route.calls)
    assert first["x-org"] == "acme"
    assert first["x-both"] == "call"
    assert first["x-once"] == "1"
    assert first["content-type"] == "application/json"
    assert first["accept"] == "application/json"
    assert first["user-agent"].startswith("agentkit/")
    assert second["x-both"] == "default"
    assert "x-once" not in second


@pytest.mark.anyio
async def test_per_call_timeout(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make(timeout=30) as client:
        await client.create(model="m", messages=USER)
        await client.create(model="m", messages=USER, timeout=3)
    first, second = (call.request.extensions["timeout"] for call in route.calls)
    assert first == httpx.Timeout(30).as_dict()
    assert second == httpx.Timeout(3).as_dict()


# --- request bodies --------------------------------------------------------------------

WEATHER = ToolDefinition(
    function=FunctionDefinition(
        name="get_weather",
        description="Weather in a city.",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"default": None}},
            "required": ["city"],
            "additionalProperties": False,
        },
        strict=True,
    )
)
WEATHER_WIRE = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            # A null inside a JSON schema is part of the schema: it must be sent.
            "properties": {"city": {"type": "string"}, "unit": {"default": None}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": ["string", "null"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


class HasDefinition:
    """Anything with a `.definition`, as an agentkit Tool has."""

    definition = WEATHER


# (keyword arguments, what the body must contain for them)
FIELDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("temperature", {"temperature": 0.2}, {"temperature": 0.2}),
    ("temperature-zero", {"temperature": 0}, {"temperature": 0}),
    ("top_p", {"top_p": 0.9}, {"top_p": 0.9}),
    ("n", {"n": 2}, {"n": 2}),
    ("stop-str", {"stop": "END"}, {"stop": "END"}),
    ("stop-list", {"stop": ["a", "b"]}, {"stop": ["a", "b"]}),
    ("stop-tuple", {"stop": ("a", "b")}, {"stop": ["a", "b"]}),
    ("max_tokens", {"max_tokens": 50}, {"max_tokens": 50}),
    ("max_completion_tokens", {"max_completion_tokens": 60}, {"max_completion_tokens": 60}),
    ("presence_penalty", {"presence_penalty": -0.5}, {"presence_penalty": -0.5}),
    ("frequency_penalty", {"frequency_penalty": 1.5}, {"frequency_penalty": 1.5}),
    ("logit_bias", {"logit_bias": {"50256": -100}}, {"logit_bias": {"50256": -100}}),
    ("user", {"user": "user-1"}, {"user": "user-1"}),
    ("seed", {"seed": 42}, {"seed": 42}),
    ("reasoning_effort", {"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
    ("parallel_tool_calls", {"parallel_tool_calls": False}, {"parallel_tool_calls": False}),
    ("tools-model", {"tools": [WEATHER]}, {"tools": [WEATHER_WIRE]}),
    ("tools-dict", {"tools": [WEATHER_WIRE]}, {"tools": [WEATHER_WIRE]}),
    ("tools-definition", {"tools": [HasDefinition()]}, {"tools": [WEATHER_WIRE]}),
    ("tool_choice-auto", {"tool_choice": "auto"}, {"tool_choice": "auto"}),
    ("tool_choice-none", {"tool_choice": "none"}, {"tool_choice": "none"}),
    ("tool_choice-required", {"tool_choice": "required"}, {"tool_choice": "required"}),
    (
        "tool_choice-named",
        {"tool_choice": NamedToolChoice.of("get_weather")},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    (
        "tool_choice-named-dict",
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    ),
    (
        "response_format-text",
        {"response_format": ResponseFormatText()},
        {"response_format": {"type": "text"}},
    ),
    (
        "response_format-json_object",
        {"response_format": ResponseFormatJSONObject()},
        {"response_format": {"type": "json_object"}},
    ),
    (
        "response_format-json_schema",
        {
            "response_format": ResponseFormatJSONSchema(
                json_schema=JSONSchemaFormat(name="answer", schema=SCHEMA, strict=True)
            )
        },
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
            }
        },
    ),
    (
        "response_format-json_schema-dict",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}},
    ),
    (
        "stream_options",
        {"stream_options": {"include_usage": True}},
        {"stream_options": {"include_usage": True}},
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "expected"), [f[1:] for f in FIELDS], ids=[f[0] for f in FIELDS]
)
async def test_each_field_is_sent_exactly(
    api: respx.MockRouter, kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        await client.create(model="gpt-4o-mini", messages=USER, **kwargs)
    assert sent_body(route) == {"model": "gpt-4o-mini", "messages": USER, **expected}


@pytest.mark.anyio
async def test_every_field_at_once(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    kwargs: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for name, kw, exp in FIELDS:
        if name in ("tools-model", "tool_choice-named", "response_format-json_schema", "stop-list"):
            kwargs.update(kw)
            expected.update(exp)
        elif not any(
            name.startswith(p) for p in ("tools", "tool_choice", "response_format", "stop")
        ):
            kwargs.update(kw)
            expected.update(exp)
    async with make() as client:
        await client.create(model="gpt-4o-mini", messages=USER, **kwargs)
    body = sent_body(route)
    assert body == {"model": "gpt-4o-mini", "messages": USER, **expected}
    validate_request(body, forbid_unknown_keys=True)


@pytest.mark.anyio
async def test_none_and_unset_fields_are_not_sent(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    nones = {name: None for name in agentkit._client.client.PARAM_NAMES}
    async with make() as client:
        await client.create(model="m", messages=USER, **nones)
        await client.create(model="m", messages=USER)
    for call in route.calls:
        assert json.loads(call.request.content) == {"model": "m", "messages": USER}


@pytest.mark.anyio
async def test_model_fields_left_unset_are_not_sent(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        await client.create(
            model="m",
            messages=USER,
            tools=[ToolDefinition(function=FunctionDefinition(name="f"))],
            response_format=ResponseFormatJSONSchema(json_schema=JSONSchemaFormat(name="x")),
        )
    body = sent_body(route)
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "x"}}


@pytest.mark.anyio
async def test_models_inside_dicts_are_sent_in_wire_form(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        await client.create(
            model="m",
            messages=USER,
            tools=[{"type": "function", "function": FunctionDefinition(name="f")}],
            response_format={
                "type": "json_schema",
                "json_schema": JSONSchemaFormat(name="x", schema=SCHEMA),
            },
            extra_body={"tool_choice": {"type": "function", "function": {"name": "f"}}},
        )
    body = sent_body(route)
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": SCHEMA},
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys
async def test_extra_body_is_merged_last(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        await client.create(
            model="m",
            messages=USER,
            temperature=0.5,
            extra_body={"top_k": 40, "chat_template_kwargs": {"thinking": False}, "seed": 7},
        )
    assert sent_body(route) == {
        "model": "m",
        "messages": USER,
        "temperature": 0.5,
        "top_k": 40,
        "chat_template_kwargs": {"thinking": False},
        "seed": 7,
    }


@pytest.mark.anyio
async def test_unknown_kwargs_are_named(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        with pytest.raises(UserError, match=r"temprature, top_k") as info:
            await client.create(model="m", messages=USER, temprature=1, top_k=3)  # type: ignore[call-arg]
        assert "extra_body" in str(info.value)
        with pytest.raises(UserError, match="temprature"):
            client.stream(model="m", messages=USER, temprature=1)  # type: ignore[call-arg]
    assert not route.called


@pytest.mark.anyio
async def test_create_refuses_stream_true(api: respx.MockRouter) -> None:
    async with make() as client:
        with pytest.raises(UserError, match=r"client\.stream"):
            await client.create(model="m", messages=USER, stream=True)


ALL_ROLES_MODELS = [
    SystemMessage(content="You are terse.", name="sys"),
    DeveloperMessage(content=[TextPart(text="Answer in French.")]),
    UserMessage(
        content=[
            TextPart(text="What is in this image?"),
            ImagePart(image_url=ImageURL(url="https://example.com/a.png", detail="high")),
            ImagePart(image_url=ImageURL(url="data:image/png;base64,iVBORw0KGgo=")),
        ],
        name="alice",
    ),
    AssistantMessage(
        content=None,
        tool_calls=[
            ToolCall(
                id="call_1", function=FunctionCall(name="get_weather", arguments='{"city":"Paris"}')
            )
        ],
    ),
    ToolMessage(tool_call_id="call_1", content="18C"),
    AssistantMessage(content="It is 18C.", name="bot"),
    AssistantMessage(refusal="I can't help with that."),
    ToolMessage(tool_call_id="call_2", content=[TextPart(text="22C")]),
]
ALL_ROLES_WIRE = [
    {"role": "system", "content": "You are terse.", "name": "sys"},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/a.png", "detail": "high"},
            },
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
        "name": "alice",
    },
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "assistant", "content": "It is 18C.", "name": "bot"},
    {"role": "assistant", "refusal": "I can't help with that."},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
]


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["models", "dicts", "mixed"])
async def test_messages_of_every_role(api: respx.MockRouter, form: str) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    if form == "models":
        messages: list[Any] = ALL_ROLES_MODELS
    elif form == "dicts":
        messages = ALL_ROLES_WIRE
    else:
        messages = [
            m if i % 2 else w
            for i, (m, w) in enumerate(zip(ALL_ROLES_MODELS, ALL_ROLES_WIRE, strict=True))
        ]
    async with make() as client:
        await client.create(model="m", messages=messages)
    assert sent_body(route)["messages"] == ALL_ROLES_WIRE


@pytest.mark.anyio
async def test_explicit_nulls_in_message_dicts_are_dropped(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": None}
    async with make() as client:
        await client.create(model="m", messages=[*USER, message, *USER])
    assert sent_body(route)["messages"][1] == {"role": "assistant"}


@pytest.mark.anyio
async def test_a_response_message_goes_back_as_history(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion("Hello!"))
    async with make() as client:
        reply = await client.create(model="m", messages=USER)
        await client.create(model="m", messages=[*USER, reply.choices[0].message, *USER])
    assert sent_body(route)["messages"][1] == {"role": "assistant", "content": "Hello!"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("bad", "index", "words"),
    [
        ({"role": "robot", "content": "x"}, 1, "role"),
        ({"role": "tool", "content": "18C"}, 1, "tool_call_id"),
        ({"role": "user"}, 1, "content"),
        ({"content": "no role"}, 1, "role"),
        ("just a string", 1, "message"),
        ({"role": "user", "content": [{"type": "image_url"}]}, 1, "image_url"),
    ],
)
async def test_malformed_message_is_named(
    api: respx.MockRouter, bad: Any, index: int, words: str
) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        with pytest.raises(UserError, match=rf"messages\[{index}\]") as info:
            await client.create(model="m", messages=[*USER, bad])
    assert words in str(info.value)
    assert not route.called


@pytest.mark.anyio
@pytest.mark.parametrize("messages", [[], (), "hello", None, {"role": "user"}])
async def test_empty_or_non_list_messages(api: respx.MockRouter, messages: Any) -> None:
    async with make() as client:
        with pytest.raises(UserError, match="messages"):
            await client.create(model="m", messages=messages)


def test_validator_accepts_a_good_body() -> None:
    validate_request(
        {"model": "m", "messages": ALL_ROLES_WIRE, "tools": [WEATHER_WIRE]},
        forbid_unknown_keys=True,
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "m", "messages": [{"role": "tool", "content": "18C"}]}, "tool_call_id"),
        ({"model": "m", "messages": USER, "tool_choice": "sometimes"}, "sometimes"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": USER, "temperature": 3}, "temperature"),
        ({"model": "m", "messages": USER, "toolz": []}, "toolz"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x", "nme": "a"}]},
            "nme",
        ),
    ],
)
def test_validator_rejects_a_bad_body(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_request(body, forbid_unknown_keys=True)
    assert words in str(info.value.message) or words in str(info.value.json_path)


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys
async def test_conftest_checks_every_sent_body(api: respx.MockRouter) -> None:
    # With unknown keys allowed, the spec itself still rejects this tool message.
    api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        with pytest.raises(ValidationError, match="tool_choice"):
            await client.create(model="m", messages=USER, extra_body={"tool_choice": "sometimes"})


# --- responses -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_returns_the_completion(api: respx.MockRouter) -> None:
    body = completion("Bonjour", system_fingerprint="fp_1", service_tier="default", brand_new=[1])
    api.post("/chat/completions").respond(json=body)
    async with make() as client:
        reply = await client.create(model="m", messages=USER)
    assert isinstance(reply, ChatCompletion)
    assert reply.choices[0].message.content == "Bonjour"
    assert reply.usage is not None and reply.usage.total_tokens == 7
    assert reply.model_dump(mode="json", exclude_unset=True) == body


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"<html>oops</html>", "is not JSON"),
        (b"", "is not JSON"),
        (b'{"id": "x", "created": 1, "model": "m"}', "choices"),
        (b'{"id": "x", "created": "yesterday", "model": "m", "choices": []}', "created"),
        (b"[1, 2]", "ChatCompletion"),
        (b'"hello"', r"not a valid ChatCompletion: \(body\): Input should be an object"),
    ],
)
async def test_a_200_that_is_not_a_completion(
    api: respx.MockRouter, sleeps: list[float], content: bytes, words: str
) -> None:
    route = api.post("/chat/completions").respond(200, content=content)
    async with make(api_key=KEY) as client:
        with pytest.raises(APIResponseValidationError, match=words) as info:
            await client.create(model="m", messages=USER)
    assert route.call_count == 1
    assert sleeps == []
    assert "/chat/completions" in str(info.value)
    assert KEY not in str(info.value)


# --- errors ----------------------------------------------------------------------------

STATUSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (418, APIStatusError),
    (422, UnprocessableEntityError),
    (429, RateLimitError),
    (500, InternalServerError),
    (502, InternalServerError),
    (503, InternalServerError),
    (504, InternalServerError),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "cls"), STATUSES)
async def test_every_status_maps_to_its_error(
    api: respx.MockRouter, status: int, cls: type[APIStatusError]
) -> None:
    body = error_body(f"The thing failed with {status}.", "some_type", "some_code", "messages")
    api.post("/chat/completions").respond(status, json=body, headers={"x-request-id": "req_abc"})
    async with make(api_key=KEY, max_retries=0) as client:
        with pytest.raises(APIStatusError) as info:
            await client.create(model="m", messages=USER)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.type == "some_type"
    assert error.code == "some_code"
    assert error.param == "messages"
    assert error.request_id == "req_abc"
    assert error.body == body
    assert error.response.status_code == status
    assert error.request.url == f"{BASE}/chat/completions"
    text = str(error)
    assert f"HTTP {status}" in text
    assert f"The thing failed with {status}." in text
    assert "type=some_type" in text and "code=some_code" in text and "param=messages" in text
    assert KEY not in text and KEY not in repr(error)


@pytest.mark.anyio
async def test_error_without_optional_fields(api: respx.MockRouter) -> None:
    body = {"error": {"message": "nope", "type": None, "param": None, "code": None}}
    api.post("/chat/completions").respond(400, json=body)
    async with make() as client:
        with pytest.raises(BadRequestError) as info:
            await client.create(model="m", messages=USER)
    error = info.value
    assert (error.type, error.code, error.param, error.request_id) == (None, None, None, None)
    assert str(error) == f"HTTP 400 from POST {BASE}/chat/completions: nope"


@pytest.mark.anyio
async def test_integer_error_code_becomes_text(api: respx.MockRouter) -> None:
    api.post("/chat/completions").respond(400, json={"error": {"message": "x", "code": 400}})
    async with make() as client:
        with pytest.raises(BadRequestError) as info:
            await client.create(model="m", messages=USER)
    assert info.value.code == "400"


PROXY_PAGE = b"""<html>
<head><title>502 Bad Gateway</title><style>body { color: red }</style></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx/1.25.3</center></body>
</html>"""


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "content", "readable"),
    [
        (502, PROXY_PAGE, "502 Bad Gateway"),
        (
            503,
            b"<html><body><p>Service &amp; stuff down</p><script>x()</script></body></html>",
            "Service & stuff down",
        ),
        (
            500,
            b"upstream connect error or disconnect/reset before headers",
            "upstream connect error",
        ),
        (500, b"", "(empty body)"),
        (400, b'{"error": "model is required"}', "model is required"),
        (404, b'{"detail": "Not Found"}', "Not Found"),
    ],
)
async def test_non_json_or_odd_error_bodies_are_readable(
    api: respx.MockRouter, status: int, content: bytes, readable: str
) -> None:
    api.post("/chat/completions").respond(
        status, content=content, headers={"content-type": "text/html"}
    )
    async with make(max_retries=0) as client:
        with pytest.raises(APIStatusError) as info:
            await client.create(model="m", messages=USER)
    error = info.value
    assert error.status_code == status
    assert str(error).startswith(f"HTTP {status} from POST {BASE}/chat/completions: ")
    assert readable in str(error)
    assert "<" not in str(error)
    assert (error.type, error.code, error.param) == (None, None, None)


@pytest.mark.anyio
async def test_html_error_body_is_kept_as_text(api: respx.MockRouter) -> None:
    api.post("/chat/completions").respond(502, content=PROXY_PAGE)
    async with make(max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await client.create(model="m", messages=USER)
    assert info.value.body == PROXY_PAGE.decode()


@pytest.mark.anyio
async def test_long_error_text_is_shortened(api: respx.MockRouter) -> None:
    api.post("/chat/completions").respond(500, content=b"x" * 5000)
    async with make(max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await client.create(model="m", messages=USER)
    assert len(str(info.value)) < 400
    assert str(info.value).endswith("…")


@pytest.mark.anyio
async def test_connection_error_and_timeout(api: respx.MockRouter) -> None:
    api.post("/chat/completions").mock(side_effect=httpx.ConnectError("connection refused"))
    api.get("/models").mock(side_effect=httpx.ReadTimeout("timed out"))
    async with make(api_key=KEY, max_retries=0) as client:
        with pytest.raises(APIConnectionError, match="connection refused") as conn:
            await client.create(model="m", messages=USER)
        with pytest.raises(APITimeoutError, match="timed out") as timeout:
            await client.list_models()
    assert type(conn.value) is APIConnectionError
    stack: Any = httpx2 if STACK.get() == "httpx2" else httpx
    assert isinstance(conn.value.__cause__, stack.ConnectError)
    assert isinstance(timeout.value.__cause__, stack.ReadTimeout)
    assert f"POST {BASE}/chat/completions" in str(conn.value)
    assert f"GET {BASE}/models" in str(timeout.value)


# --- the key never leaks -------------------------------------------------------------


@asynccontextmanager
async def http_server(
    handle: Callable[[SocketStream, bytes], Awaitable[None]],
) -> AsyncIterator[str]:
    """A loopback HTTP/1.1 server; `handle` gets each connection and its first request."""

    async def serve(conn: SocketStream) -> None:
        async with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                try:
                    buf += await conn.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return  # the client gave up before sending a request
            head, _, body = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += await conn.receive()
            await handle(conn, head + b"\r\n\r\n" + body)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            tg.cancel_scope.cancel()


def http_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nx-request-id: req_1\r\nconnection: close\r\n\r\n"
    ).encode() + body


@pytest.mark.anyio
async def test_key_absent_from_logs_errors_and_reprs_through_a_retrying_failure(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    requests: list[bytes] = []

    async def handle(conn: SocketStream, request: bytes) -> None:
        requests.append(request)
        body = json.dumps(error_body("The server had an error.", "server_error")).encode()
        await conn.send(http_response(500, body))

    caplog.set_level(logging.DEBUG)
    async with http_server(handle) as base, real_async_client() as http:
        client = ChatClient(base, api_key=KEY, http_client=http)
        with pytest.raises(InternalServerError) as info:
            await client.create(model="m", messages=USER)
        async with ChatClient("http://127.0.0.1:1/v1", api_key=KEY, http_client=http) as dead:
            with pytest.raises(APIConnectionError) as conn_info:
                await dead.create(model="m", messages=USER)
    assert len(requests) == 3
    assert all(f"\r\nauthorization: Bearer {KEY}\r\n".encode() in r for r in requests)
    assert len(sleeps) == 4
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert "retrying POST" in logged
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    assert KEY not in logged
    assert KEY not in caplog.text
    for error in (info.value, conn_info.value):
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in repr(error.request)
        assert KEY not in repr(error.args)
    assert KEY not in repr(client)


@pytest.mark.parametrize("padded", [f"{KEY}\n", f"  {KEY}\r\n", f"\t{KEY} "])
def test_whitespace_around_the_key_is_dropped(padded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build(BASE, api_key=padded)._headers["authorization"] == f"Bearer {KEY}"
    monkeypatch.setenv("OPENAI_API_KEY", padded)
    assert build(BASE)._headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("blank", ["", "  ", "\n"])
def test_a_blank_key_is_no_key(blank: str) -> None:
    assert "authorization" not in build(BASE, api_key=blank)._headers


@pytest.mark.parametrize(
    "bad", [f"{KEY[:8]} {KEY[8:]}", f"{KEY[:8]}\n{KEY[8:]}", f"{KEY}\u2019", f"{KEY}\x00x"]
)
def test_a_key_that_cannot_be_sent_is_refused_without_quoting_it(bad: str) -> None:
    with pytest.raises(UserError, match="api_key") as info:
        build(BASE, api_key=bad)
    assert KEY[8:] not in str(info.value)
    assert KEY[8:] not in repr(info.value)


@pytest.mark.parametrize("value", [f"{KEY}\n", f" {KEY}", f"{KEY}\u2019", f"a\r\n{KEY}", 42])
def test_a_default_header_that_cannot_be_sent_is_refused_without_quoting_it(value: Any) -> None:
    with pytest.raises(UserError, match=r"default_headers\['api-key'\]") as info:
        build(BASE, default_headers={"api-key": value})
    assert KEY not in str(info.value) and KEY not in repr(info.value)


@pytest.mark.anyio
async def test_an_extra_header_that_cannot_be_sent_is_refused_without_quoting_it(
    api: respx.MockRouter,
) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        with pytest.raises(UserError, match=r"extra_headers\['api-key'\]") as info:
            await client.create(model="m", messages=USER, extra_headers={"api-key": f"{KEY}\n"})
        with pytest.raises(UserError, match="extra_headers"):
            client.stream(model="m", messages=USER, extra_headers={"x": "\x00"})
        # Spaces and tabs inside a value are fine.
        await client.create(model="m", messages=USER, extra_headers={"x-note": "a b\tc"})
    assert KEY not in str(info.value)
    assert route.call_count == 1
    assert route.calls.last.request.headers["x-note"] == "a b\tc"


@pytest.mark.anyio
async def test_a_request_httpx_refuses_to_send_is_a_user_error(sleeps: list[float]) -> None:
    requests: list[bytes] = []

    async def handle(conn: SocketStream, request: bytes) -> None:
        requests.append(request)

    async with http_server(handle) as base, real_async_client() as http:
        client = ChatClient(base, api_key=KEY, http_client=http)
        with pytest.raises(UserError, match="cannot be sent: a header holds") as info:
            await client.create(model="m", messages=USER, extra_headers={"bad name": "x"})
    error = info.value
    assert error.__cause__ is None and error.__suppress_context__
    assert sleeps == []  # not retried
    assert requests == []


@pytest.mark.anyio
async def test_a_key_quoted_back_by_the_server_is_masked(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    body = error_body(f"Invalid API key {KEY} for this server", code="invalid_api_key")
    api.post("/chat/completions").respond(401, json=body)
    caplog.set_level(logging.DEBUG)
    async with make(api_key=KEY) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.create(model="m", messages=USER)
    assert "Invalid API key <redacted> for this server" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert KEY not in caplog.text


# --- list_models, closing, sharing ----------------------------------------------------


@pytest.mark.anyio
async def test_list_models(api: respx.MockRouter) -> None:
    route = api.get("/models").respond(
        json={
            "object": "list",
            "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"},
                {"id": "llama3", "object": "model", "owned_by": "library", "extra": True},
            ],
        }
    )
    async with make() as client:
        models = await client.list_models()
    assert [m.id for m in models] == ["gpt-4o-mini", "llama3"]
    assert models[1].created is None
    assert models[1].model_extra == {"extra": True}
    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url == f"{BASE}/models"


@pytest.mark.anyio
async def test_list_models_errors_and_retries(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/models")
    route.side_effect = [httpx.Response(503), httpx.Response(200, json={"data": [{"id": "a"}]})]
    async with make() as client:
        assert [m.id for m in await client.list_models()] == ["a"]
    assert route.call_count == 2
    assert len(sleeps) == 1
    api.get("/models").respond(200, json={"object": "list"})
    async with make() as client:
        with pytest.raises(APIResponseValidationError, match="data"):
            await client.list_models()


@pytest.mark.anyio
async def test_async_with_closes_its_own_http_client() -> None:
    async with ChatClient(BASE) as client:
        http = client._http
        assert not http.is_closed
    assert http.is_closed


@pytest.mark.anyio
async def test_a_closed_client_is_a_user_error(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with make() as client:
        pass
    with pytest.raises(UserError, match="closed"):
        await client.create(model="m", messages=USER)
    with pytest.raises(UserError, match="closed"):
        await client.list_models()
    with pytest.raises(UserError, match="closed"):
        async with client.stream(model="m", messages=USER):
            pass
    assert not route.called


@pytest.mark.anyio
async def test_never_closes_a_passed_in_http_client(api: respx.MockRouter) -> None:
    api.post("/chat/completions").respond(json=completion())
    async with async_client() as http:
        async with ChatClient(BASE, http_client=http) as client:
            await client.create(model="m", messages=USER)
        assert not http.is_closed
        await ChatClient(BASE, http_client=http).aclose()
        assert not http.is_closed
        # Still usable by another client.
        async with ChatClient(BASE, http_client=http) as again:
            await again.create(model="m", messages=USER)
    assert http.is_closed


@pytest.mark.anyio
async def test_passed_in_http_client_keeps_its_timeout(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(json=completion())
    async with async_client(timeout=7) as http:
        await ChatClient(BASE, http_client=http).create(model="m", messages=USER)
    assert route.calls.last.request.extensions["timeout"] == httpx.Timeout(7).as_dict()


@pytest.mark.anyio
async def test_one_client_many_concurrent_calls(api: respx.MockRouter) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][0]["content"]
        return httpx.Response(200, json=completion(f"echo {text}"))

    route = api.post("/chat/completions").mock(side_effect=answer)
    replies: dict[int, str | None] = {}
    async with make() as client:

        async def one(i: int) -> None:
            reply = await client.create(model="m", messages=[{"role": "user", "content": str(i)}])
            replies[i] = reply.choices[0].message.content  # type: ignore[assignment]

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
    assert replies == {i: f"echo {i}" for i in range(50)}
    assert route.call_count == 50

"""Errors that say what to do: each names the argument, URL or setting involved and
the fix, raised where the mistake is made (construction, not a run), without a key in
its message, its repr or its pickle."""

from __future__ import annotations

import gc
import pickle
import socket
from typing import Any

import httpx
import pytest
import respx

from agentkit import (
    Agent,
    AgentKitError,
    APIConnectionError,
    ChatClient,
    MaxTurnsExceeded,
    ModelSettings,
    NotFoundError,
    RunContext,
    ToolDefinitionError,
    UserError,
    tool,
)
from agentkit.testing import FunctionModel, ModelRequest, Reply, tool_calls

KEY = "sk-helpful-5ecret-0123456789abcdef"
USER = [{"role": "user", "content": "Hi"}]


def _no_secret(error: BaseException, *secrets: str) -> None:
    """Neither the error's text, nor its repr, nor its pickle holds a secret."""
    shown = [str(error), repr(error), repr(pickle.loads(pickle.dumps(error)).args)]
    for secret in secrets:
        for text in shown:
            assert secret not in text


def _closed_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- no key for api.openai.com -------------------------------------------------------


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.mark.usefixtures("no_env")
def test_no_key_for_openai_is_refused_before_any_request() -> None:
    with respx.mock(assert_all_mocked=True) as api:
        with pytest.raises(UserError) as caught:
            ChatClient()
        # An agent without a client makes one per run: the same error, at the run's start.
        with pytest.raises(UserError, match="OPENAI_API_KEY"):
            Agent("gpt-4o-mini").run_sync("Hi")
        assert not api.calls
    message = str(caught.value)
    for fix in ("OPENAI_API_KEY", "api_key=", "base_url=", "OPENAI_BASE_URL", "/v1"):
        assert fix in message
    assert isinstance(pickle.loads(pickle.dumps(caught.value)), UserError)


@pytest.mark.usefixtures("no_env")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": KEY},
        {"default_headers": {"Authorization": f"Bearer {KEY}"}},
        {"default_headers": {"api-key": KEY}},
        {"http_client": httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"})},
        {"http_client": httpx.AsyncClient(auth=httpx.BasicAuth("user", "pass"))},
        {"base_url": "http://127.0.0.1:11434/v1"},
    ],
    ids=[
        "api_key",
        "authorization-header",
        "api-key-header",
        "http_client-headers",
        "http_client-auth",
        "local",
    ],
)
def test_a_key_or_another_server_is_enough(kwargs: dict[str, Any]) -> None:
    client = ChatClient(**kwargs)
    assert KEY not in repr(client)


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert ChatClient().base_url == "https://api.openai.com/v1"


# --- a server that is not there -------------------------------------------------------


@pytest.mark.anyio
async def test_connection_refused_names_the_url_and_the_fix(sleeps: list[float]) -> None:
    port = _closed_port()
    base = f"http://user:pa55-w0rd-secret@127.0.0.1:{port}/v1?token=t0ken-secret-value"
    async with ChatClient(base, api_key=KEY, max_retries=2) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.create(model="m", messages=USER)
    message = str(caught.value)
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in message
    assert "running" in message and "OPENAI_BASE_URL" in message and "base_url=" in message
    assert "gave up after 2 retries" in message
    assert len(sleeps) == 2
    _no_secret(caught.value, KEY, "pa55-w0rd-secret", "t0ken-secret-value")


def test_connection_refused_through_an_agent(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(APIConnectionError, match="OPENAI_BASE_URL") as caught:
        Agent("m").run_sync("Hi")
    assert f"127.0.0.1:{port}" in str(caught.value)
    _no_secret(caught.value, KEY)


# --- 404 from a base URL without /v1 ----------------------------------------------------


@pytest.mark.parametrize(
    ("base", "hint"),
    [
        ("http://127.0.0.1:8000", "base_url='http://127.0.0.1:8000/v1'"),
        ("http://127.0.0.1:8000/", "base_url='http://127.0.0.1:8000/v1'"),
        ("http://127.0.0.1:8000/api", "base_url='http://127.0.0.1:8000/api/v1'"),
        ("http://127.0.0.1:8000/v1", None),
        ("http://127.0.0.1:8000/api/v1", None),
        ("http://127.0.0.1:8000/v1beta/openai", None),
    ],
)
@pytest.mark.anyio
async def test_404_without_a_version_segment_suggests_one(base: str, hint: str | None) -> None:
    with respx.mock(base_url=base.rstrip("/")) as api:
        api.post("/chat/completions").respond(404, text="404 page not found")
        async with ChatClient(base, api_key=KEY, max_retries=0) as client:
            with pytest.raises(NotFoundError) as caught:
                await client.create(model="m", messages=USER)
    message = str(caught.value)
    assert "HTTP 404" in message
    if hint is None:
        assert "version segment" not in message
    else:
        assert "no version segment" in message and hint in message
    _no_secret(caught.value, KEY)


@pytest.mark.anyio
async def test_404_hint_on_list_models_and_without_user_info() -> None:
    with respx.mock(base_url="http://127.0.0.1:8000") as api:
        api.get("/models").respond(404)
        base = "http://me:hunter2-secret-pass@127.0.0.1:8000"
        async with ChatClient(base, api_key=KEY, max_retries=0) as client:
            with pytest.raises(NotFoundError, match="no version segment") as caught:
                await client.list_models()
    _no_secret(caught.value, KEY, "hunter2-secret-pass")


# --- Agent(...) checks its arguments when it is made -------------------------------------


def _echo(text: str) -> str:
    """Echo the text.

    Args:
        text: What to echo.
    """
    return text


def _model() -> FunctionModel:
    return FunctionModel(lambda request: "ok")


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"client": "http://localhost:8000/v1"}, ["client", "ChatClient(base_url=...)"]),
        ({"client": object()}, ["client must be a ChatModel", "object"]),
        ({"event_handler": 5}, ["event_handler", "function", "int"]),
        ({"timeout": "30"}, ["timeout", "seconds", "'30'"]),  # checked before this issue
        ({"timeout": 0}, ["timeout", "positive"]),
        ({"settings": {"temperature": 0.2}}, ["settings=ModelSettings(temperature=0.2)"]),
        ({"tools": ["get_time"]}, ["tools[0]", "'get_time' (a str)", "not a tool"]),
        ({"tools": [_echo, 3]}, ["tools[1]", "3 (a int)", "not a tool"]),
        ({"tools": "get_time"}, ["tools must be a list", "tools=[...]"]),
        ({"instructions": 5}, ["instructions must be text", "int 5"]),
        ({"instructions": ["a", 5]}, ["instructions must be text", "5"]),
    ],
)
def test_agent_arguments_checked_at_construction(kwargs: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(UserError) as caught:
        Agent("m", **kwargs)
    for name in names:
        assert name in str(caught.value)


def test_agent_attributes_checked_when_set() -> None:
    agent = Agent("m", client=_model())
    for name, value in (("client", "http://x/v1"), ("event_handler", 5), ("timeout", -1)):
        with pytest.raises(UserError, match=name):
            setattr(agent, name, value)
    assert isinstance(agent.client, FunctionModel)
    assert agent.event_handler is None and agent.timeout is None
    agent.timeout = 2.5
    agent.event_handler = print
    assert agent.timeout == 2.5 and agent.event_handler is print


def test_agent_with_good_arguments_runs() -> None:
    seen: list[object] = []
    agent = Agent(
        "m",
        client=_model(),
        instructions=["Be brief.", "Answer in English."],
        event_handler=seen.append,
        timeout=30,
        settings=ModelSettings(temperature=0.2, stop=["END"]),
    )
    assert agent.run_sync("Hi").output == "ok"
    assert seen


# --- ModelSettings(...) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"temperature": "hot"}, "temperature=...) must be a number from 0 to 2, got 'hot' (str)"),
        ({"temperature": 2.5}, "temperature=...) must be a number from 0 to 2"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.5}, "top_p=...) must be a number from 0 to 1"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"frequency_penalty": "0"}, "frequency_penalty"),
        ({"max_tokens": 0}, "max_tokens=...) must be a positive integer"),
        ({"max_completion_tokens": 10.5}, "max_completion_tokens"),
        ({"seed": "7"}, "seed=...) must be an integer"),
        ({"stop": 5}, "stop=...) must be a string or a list of strings"),
        ({"stop": ["END", 5]}, "stop"),
        ({"logit_bias": {"50256": 200}}, "logit_bias"),
        ({"logit_bias": [1, 2]}, "logit_bias"),
        ({"user": 42}, "user=...) must be a string"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort=...) must be 'none' or"),
        ({"extra_body": "thinking"}, "extra_body"),
    ],
)
def test_model_settings_checked(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(UserError) as caught:
        ModelSettings(**kwargs)
    assert expected in str(caught.value)
    assert isinstance(caught.value, AgentKitError)


def test_model_settings_good_values() -> None:
    settings = ModelSettings(
        temperature=0,
        top_p=1,
        presence_penalty=-2,
        frequency_penalty=2.0,
        max_tokens=1,
        seed=-7,
        stop=["END", "STOP"],
        logit_bias={"50256": -100, "42": 100},
        reasoning_effort="low",
        extra_body={"thinking": {"type": "enabled"}},
    )
    assert settings.stop == ("END", "STOP")
    assert settings.to_params()["stop"] == ["END", "STOP"]


# --- tools and turns -------------------------------------------------------------------


def test_docstring_for_a_missing_parameter_is_an_error() -> None:
    def lookup(city: str) -> str:
        """Look a city up.

        Args:
            city: The city.
            country: The country (renamed away).
        """
        return city

    with pytest.raises(ToolDefinitionError) as caught:
        tool(lookup)
    assert "'country'" in str(caught.value) and "lookup" in str(caught.value)
    assert "city" in str(caught.value)


def test_docstring_entries_that_are_fine() -> None:
    @tool
    def where(ctx: RunContext[None], city: str, *, units: str = "metric") -> str:
        """Where a city is.

        Args:
            ctx: The run.
            city: The city.
            units: The units.
        """
        return city

    assert set(where.definition["function"]["parameters"]["properties"]) == {"city", "units"}


def test_max_turns_error_says_how_to_get_an_answer() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    def always_ping(request: ModelRequest) -> Reply:
        return tool_calls(("ping", {}))

    agent = Agent("m", client=FunctionModel(always_ping), tools=[ping], max_turns=2)
    with pytest.raises(MaxTurnsExceeded) as caught:
        agent.run_sync("Hi")
    assert 'on_max_turns="answer"' in str(caught.value)
    assert "max_turns=2" in str(caught.value)


# --- one client, many event loops ------------------------------------------------------


# The sockets of an ended event loop can only be closed by the garbage collector, with a
# ResourceWarning ("unclosed transport"); collected here, so that no later test sees them.
_ENDED_LOOP_SOCKETS = (
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


@_ENDED_LOOP_SOCKETS[0]
@_ENDED_LOOP_SOCKETS[1]
def test_one_client_serves_run_sync_after_run_sync() -> None:
    # Each run_sync is an event loop of its own, and a connection pool belongs to the
    # loop that made it: the client starts a new pool instead of failing with asyncio's
    # "Event loop is closed".
    import asyncio

    import anyio

    from agentkit.serve import create_app
    from tests.cli_agents import slow
    from tests.serve_server import serving

    with serving(create_app({"scripted": slow}, api_keys=None)) as served:
        client = ChatClient(base_url=served.url, max_retries=0)
        agent = Agent("scripted", client=client)
        answers = [agent.run_sync(word).output for word in ("one", "two", "three")]
        streamed = [
            "".join(e.text for e in agent.run_stream_sync(word) if hasattr(e, "text"))
            for word in ("four", "five")
        ]

        async def ask(word: str) -> object:
            return (await agent.run(word)).output

        other = [
            anyio.run(ask, "six", backend="trio"),
            anyio.run(ask, "seven", backend="trio"),
            asyncio.run(ask("eight")),  # type: ignore[arg-type]
        ]
        asyncio.run(client.aclose())
    gc.collect()
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    assert [*answers, *streamed, *other] == [f"echo (scripted): {w}" for w in words]


@_ENDED_LOOP_SOCKETS[0]
@_ENDED_LOOP_SOCKETS[1]
def test_a_given_http_client_from_an_ended_loop_says_what_to_do() -> None:
    from agentkit.serve import create_app
    from tests.cli_agents import slow
    from tests.serve_server import serving

    with serving(create_app({"scripted": slow}, api_keys=None)) as served:
        given = httpx.AsyncClient()
        client = ChatClient(base_url=served.url, api_key=KEY, http_client=given, max_retries=0)
        agent = Agent("scripted", client=client)
        assert agent.run_sync("one").output == "echo (scripted): one"
        with pytest.raises(UserError) as caught:
            agent.run_sync("two")
    message = str(caught.value)
    _no_secret(caught.value, KEY)
    # The traceback holds the pool of the ended loop: dropped, so it is collected here.
    del given, client, agent, caught
    gc.collect()
    assert "another event loop" in message and "run_sync" in message
    assert "make the http_client inside the event loop" in message.lower()

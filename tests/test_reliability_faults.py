"""Each fault of `fault_server.py`, on both anyio backends: the typed error it maps to,
and whether (and after how long) it is retried. Retry waits are recorded, not waited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agentkit import (
    Agent,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    ChatClient,
    InternalServerError,
    RateLimitError,
    tool,
)
from tests.fault_server import FaultServer, fault_server
from tests.reliability_helpers import (
    Sleeps,
    answered_once,
    connections_in_use,
    eventually,
    record_sleeps,
)

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Hi"}]
READ_TIMEOUT = 0.4


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with fault_server(slow_delay=READ_TIMEOUT * 2) as running:
        yield running


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    return record_sleeps(monkeypatch)


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[ChatClient]:
    timeout = httpx.Timeout(READ_TIMEOUT, connect=2.0)
    async with ChatClient(server.base_url, api_key="sk-test", timeout=timeout) as chat:
        yield chat
        assert connections_in_use(chat) == []
    # Every connection the client opened is closed once the client is.
    await eventually(lambda: server.open_connections == 0, what="connections left open")


def _backoff(delay: float) -> bool:
    return 0.375 <= delay <= 0.5  # the first retry's backoff, with jitter


# --- create: faults that are retried and then succeed -----------------------------------

RECOVERED = [
    ("429", lambda d: d == [1.0]),
    ("429-ms", lambda d: d == [0.02]),
    ("500", lambda d: len(d) == 1 and _backoff(d[0])),
    ("502", lambda d: len(d) == 1 and _backoff(d[0])),
    ("503", lambda d: len(d) == 1 and _backoff(d[0])),
    ("reset", lambda d: len(d) == 1 and _backoff(d[0])),
    ("truncated", lambda d: len(d) == 1 and _backoff(d[0])),
    ("stall", lambda d: len(d) == 1 and _backoff(d[0])),
    ("slow", lambda d: len(d) == 1 and _backoff(d[0])),
]


@pytest.mark.parametrize(("fault", "waits_ok"), RECOVERED, ids=[f for f, _ in RECOVERED])
async def test_a_transient_fault_is_retried(
    server: FaultServer, client: ChatClient, sleeps: Sleeps, fault: str, waits_ok: object
) -> None:
    server.script.extend([fault])
    completion = await client.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "Done after 0 tool answers."
    assert len(server.requests) == 2
    assert callable(waits_ok) and waits_ok(sleeps.delays), sleeps.delays


# --- create: faults that stay after every retry ---------------------------------------------

EXHAUSTED: list[tuple[str, type[APIError], str]] = [
    ("429", RateLimitError, "Rate limit reached"),
    ("500", InternalServerError, "HTTP 500"),
    ("502", InternalServerError, "502 Bad Gateway"),
    ("503", InternalServerError, "HTTP 503"),
    ("reset", APIConnectionError, "connection error"),
    ("truncated", APIConnectionError, "connection error"),
    ("slow", APITimeoutError, "timed out"),
    ("stall", APITimeoutError, "timed out"),
]


@pytest.mark.parametrize(("fault", "error", "text"), EXHAUSTED, ids=[f for f, _, _ in EXHAUSTED])
async def test_a_lasting_fault_raises_its_typed_error_after_the_retries(
    server: FaultServer,
    client: ChatClient,
    sleeps: Sleeps,
    fault: str,
    error: type[APIError],
    text: str,
) -> None:
    server.script.extend([fault] * 3)
    with pytest.raises(error, match=text) as caught:
        await client.create(model="m", messages=MESSAGES)
    assert type(caught.value) is error
    assert len(server.requests) == 3 and len(sleeps.delays) == 2
    assert "<html" not in str(caught.value).lower()  # an HTML page is summarised, not dumped


# --- create: final at once ---------------------------------------------------------------------

FINAL = [
    ("truncated-json", "is not JSON"),
    ("html-200", "is not JSON: '<!DOCTYPE html>"),
    ("not-json", "is not JSON: 'upstream returned an empty reply'"),
]


@pytest.mark.parametrize(("fault", "text"), FINAL, ids=[f for f, _ in FINAL])
async def test_a_200_that_is_not_a_completion_is_not_retried(
    server: FaultServer, client: ChatClient, sleeps: Sleeps, fault: str, text: str
) -> None:
    server.script.extend([fault])
    with pytest.raises(APIResponseValidationError, match=text):
        await client.create(model="m", messages=MESSAGES)
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_a_retry_after_beyond_the_limit_is_not_waited(
    server: FaultServer, client: ChatClient, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "agentkit._client.client.MAX_RETRY_AFTER", 0.5
    )  # Retry-After: 1 is too long
    server.script.extend(["429"])
    with pytest.raises(RateLimitError):
        await client.create(model="m", messages=MESSAGES)
    assert len(server.requests) == 1 and sleeps.delays == []


# --- streams ---------------------------------------------------------------------------------


async def _read(client: ChatClient) -> str:
    text = ""
    async with client.stream(model="m", messages=MESSAGES) as chunks:
        async for chunk in chunks:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    return text


@pytest.mark.parametrize("fault", ["429", "502", "slow", "sse-empty", "reset"])
async def test_a_stream_that_fails_before_its_first_chunk_is_retried(
    server: FaultServer, client: ChatClient, sleeps: Sleeps, fault: str
) -> None:
    server.script.extend([fault])
    assert await _read(client) == "Done after 0 tool answers."
    assert len(server.requests) == 2 and len(sleeps.delays) == 1


MID_STREAM: list[tuple[str, type[APIError], str]] = [
    ("sse-cut", APIConnectionError, r"ended before data: \[DONE\]"),
    ("sse-reset", APIConnectionError, "connection error"),
    ("stall", APITimeoutError, "timed out"),
    ("truncated-json", APIResponseValidationError, "is not JSON"),
]


# A chunk that is not JSON leaves httpx's byte iterator unfinished; trio warns when it is
# collected (encode/httpx#3686), as in tests/test_client_stream.py.
@pytest.mark.filterwarnings(
    r"ignore:Async generator 'httpx\.:ResourceWarning",
    r"ignore:Async generator 'httpcore\.:ResourceWarning",
)
@pytest.mark.parametrize(("fault", "error", "text"), MID_STREAM, ids=[f for f, _, _ in MID_STREAM])
async def test_a_stream_that_breaks_after_its_first_chunk_raises_and_is_not_retried(
    server: FaultServer,
    client: ChatClient,
    sleeps: Sleeps,
    fault: str,
    error: type[APIError],
    text: str,
) -> None:
    server.script.extend([fault])
    received = []
    with pytest.raises(error, match=text) as caught:
        async with client.stream(model="m", messages=MESSAGES) as chunks:
            async for chunk in chunks:
                received.append(chunk)
    assert type(caught.value) is error
    assert received, "the first chunk reached the caller before the fault"
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_list_models_is_retried_too(
    server: FaultServer, client: ChatClient, sleeps: Sleeps
) -> None:
    models = await client.list_models()
    assert [m.id for m in models] == ["fault-model"]


# --- an agent run across faults -------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_stream"])
async def test_an_agent_run_rides_out_transient_faults(
    server: FaultServer, client: ChatClient, sleeps: Sleeps, streamed: bool
) -> None:
    server.script.extend(["503", "ok", "429-ms", "reset"])
    agent = Agent("m", client=client, tools=[add])
    if streamed:
        async with agent.run_stream("Add") as stream:
            async for _ in stream:
                pass
        result = stream.result
    else:
        result = await agent.run("Add")
    assert result.output == "Done after 1 tool answers."
    answered_once(result.messages)
    assert len(server.chat_bodies) == 5 and len(sleeps.delays) == 3

"""Limits on what a server can make the client hold or wait for: the decoded size of a
body and of one stream event, and the time one attempt may take however slowly the
bytes come. Against a hostile server on 127.0.0.1, on both HTTP stacks."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from agentkit import (
    APIResponseTooLargeError,
    APIResponseValidationError,
    APITimeoutError,
    ChatClient,
    InternalServerError,
    UserError,
)
from agentkit._client import client as client_module
from agentkit._client.sse import DEFAULT_MAX_EVENT_BYTES
from tests.hostile_server import HUGE_EVENT, STEADY_EVENTS, HostileServer, hostile_server
from tests.http_stacks import http_stack, real_async_client  # noqa: F401
from tests.reliability_helpers import Sleeps, record_sleeps

# Most of these leave a response early, which leaves httpx's and httpcore's async
# generators to the collector, and trio warns about them (encode/httpx#3686).
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures("http_stack"),
    pytest.mark.filterwarnings(
        r"ignore:Async generator 'httpx2?\.:ResourceWarning",
        r"ignore:Async generator 'httpcore2?\.:ResourceWarning",
    ),
]

MESSAGES = [{"role": "user", "content": "Hi"}]
MiB = 1024 * 1024
DEADLINE = 0.5
"""The attempt_timeout of the timing tests; the per-read timeout is 10x as long."""


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with hostile_server() as running:
        yield running


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    return record_sleeps(monkeypatch)


async def client_for(server: HostileServer, **options: Any) -> Any:
    http = real_async_client(timeout=DEADLINE * 10)
    return http, ChatClient(server.base_url, api_key="k", http_client=http, **options)


# --- sizes ----------------------------------------------------------------------------


def test_the_defaults() -> None:
    client = ChatClient("http://127.0.0.1:9/v1")
    assert client.attempt_timeout == client_module.DEFAULT_ATTEMPT_TIMEOUT == 600.0
    assert client.max_response_bytes == client_module.DEFAULT_MAX_RESPONSE_BYTES == 32 * MiB
    assert client.max_event_bytes == client_module.DEFAULT_MAX_EVENT_BYTES
    assert client_module.DEFAULT_MAX_EVENT_BYTES == DEFAULT_MAX_EVENT_BYTES == 8 * MiB


@pytest.mark.parametrize(
    "options",
    [
        {"attempt_timeout": 0},
        {"attempt_timeout": -1.0},
        {"attempt_timeout": "10"},
        {"max_response_bytes": 0},
        {"max_response_bytes": 1.5},
        {"max_event_bytes": True},
    ],
)
def test_bad_limits_are_refused(options: dict[str, Any]) -> None:
    (name,) = options
    with pytest.raises(UserError, match=name):
        ChatClient("http://127.0.0.1:9/v1", **options)


@pytest.mark.parametrize("limit", [1 * MiB, None], ids=["1MiB", "default"])
async def test_a_gzip_bomb_stops_at_the_limit_without_being_decompressed(
    server: HostileServer, limit: int | None
) -> None:
    # 128 KiB on the wire, 128 MiB decoded: read whole, it took 2x that in memory.
    options = {} if limit is None else {"max_response_bytes": limit}
    http, client = await client_for(server, max_retries=0, **options)
    async with http, client:
        tracemalloc.start()
        try:
            with pytest.raises(APIResponseTooLargeError) as caught:
                await client.create(model="bomb", messages=MESSAGES)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    expected = limit or 32 * MiB
    assert caught.value.limit == expected and caught.value.setting == "max_response_bytes"
    message = str(caught.value)
    assert f"max_response_bytes={expected:,}" in message
    assert "ChatClient(max_response_bytes=...)" in message
    assert peak < expected + 8 * MiB, f"peak {peak / MiB:.0f} MiB"


async def test_an_error_status_with_a_bomb_keeps_the_status_and_the_start_of_the_body(
    server: HostileServer,
) -> None:
    http, client = await client_for(server, max_retries=0, max_response_bytes=MiB)
    async with http, client:
        tracemalloc.start()
        try:
            with pytest.raises(InternalServerError) as caught:
                await client.create(model="bomb-500", messages=MESSAGES)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert caught.value.status_code == 500
    assert len(caught.value.response.content) == MiB
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB"


@pytest.mark.parametrize("model", ["big", "big-chunked"])
async def test_a_plain_body_over_the_limit(server: HostileServer, model: str) -> None:
    http, client = await client_for(server, max_retries=0, max_response_bytes=MiB)
    async with http, client:
        with pytest.raises(APIResponseTooLargeError, match="max_response_bytes=1,048,576"):
            await client.create(model=model, messages=MESSAGES)
        # With no limit, the same body is read whole (and is not a completion).
        client.max_response_bytes = None
        with pytest.raises(APIResponseValidationError, match="not a valid ChatCompletion"):
            await client.create(model=model, messages=MESSAGES)


@pytest.mark.parametrize("model", ["ok", "gzip", "deflate", "raw-deflate"])
async def test_bodies_within_the_limit_are_decoded(server: HostileServer, model: str) -> None:
    http, client = await client_for(server, max_response_bytes=4096)
    async with http, client:
        reply = await client.create(model=model, messages=MESSAGES)
        assert reply.choices[0].message.content == "Hello there, friend."


async def test_a_body_that_is_not_in_its_encoding(server: HostileServer) -> None:
    http, client = await client_for(server, max_retries=0)
    async with http, client:
        with pytest.raises(APIResponseValidationError, match="is not valid gzip"):
            await client.create(model="bad-gzip", messages=MESSAGES)


async def test_listing_models_keeps_to_the_limit_too(server: HostileServer) -> None:
    http, client = await client_for(server, max_response_bytes=4096)
    async with http, client:
        with pytest.raises(APIResponseTooLargeError, match=r"GET .*/models"):
            await client.list_models()
        client.max_response_bytes = 16384
        assert [m.id for m in await client.list_models()] == ["m"]


async def test_an_event_over_the_limit(server: HostileServer) -> None:
    http, client = await client_for(server, max_retries=0)
    async with http, client:
        with pytest.raises(APIResponseTooLargeError) as caught:
            async with client.stream(model="huge-event", messages=MESSAGES) as chunks:
                async for _ in chunks:
                    pass
        assert caught.value.limit == DEFAULT_MAX_EVENT_BYTES
        assert caught.value.setting == "max_event_bytes"
        assert "ChatClient(max_event_bytes=...)" in str(caught.value)
        client.max_event_bytes = None
        text = []
        async with client.stream(model="huge-event", messages=MESSAGES) as chunks:
            async for chunk in chunks:
                text += [c.delta.content or "" for c in chunk.choices]
        assert "".join(text) == "x" * HUGE_EVENT + " there, friend."


# --- time -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["trickle-head", "trickle-body"])
async def test_a_trickled_response_times_out_and_is_retried(
    server: HostileServer, sleeps: Sleeps, model: str
) -> None:
    # A byte every 50 ms never trips a 5 s read timeout; the attempt's deadline does.
    http, client = await client_for(server, max_retries=1, attempt_timeout=DEADLINE)
    async with http, client:
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(APITimeoutError) as caught:
            await client.create(model=model, messages=MESSAGES)
        elapsed = time.monotonic() - started
    assert "attempt_timeout=0.5 s" in str(caught.value)
    assert "ChatClient(attempt_timeout=...)" in str(caught.value)
    assert server.requests == [model, model]  # retried once, like any timeout
    assert len(sleeps.delays) == 1
    assert elapsed < 2 * DEADLINE + 1.5


async def test_a_stream_that_never_sends_an_event_times_out_and_is_retried(
    server: HostileServer, sleeps: Sleeps
) -> None:
    http, client = await client_for(server, max_retries=1, attempt_timeout=DEADLINE)
    async with http, client:
        with anyio.fail_after(10), pytest.raises(APITimeoutError, match="no event within"):
            async with client.stream(model="trickle-open", messages=MESSAGES):
                pass
    assert server.requests == ["trickle-open"] * 2


@pytest.mark.parametrize("model", ["trickle-event", "silent"])
async def test_a_stream_that_stops_sending_events_times_out(
    server: HostileServer, model: str
) -> None:
    http, client = await client_for(server, max_retries=1, attempt_timeout=DEADLINE)
    async with http, client:
        received = 0
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(APITimeoutError, match="no event for more"):
            async with client.stream(model=model, messages=MESSAGES) as chunks:
                async for _ in chunks:
                    received += 1
        elapsed = time.monotonic() - started
    assert received == 1
    assert server.requests == [model]  # a chunk reached the caller: not retried
    assert elapsed < DEADLINE + 1.5


async def test_a_long_stream_of_steady_events_is_not_cut_off(server: HostileServer) -> None:
    # 12 events 0.15 s apart: 1.8 s in all, more than three times the attempt_timeout.
    http, client = await client_for(server, attempt_timeout=DEADLINE)
    async with http, client:
        started = time.monotonic()
        text = ""
        async with client.stream(model="steady", messages=MESSAGES) as chunks:
            async for chunk in chunks:
                text += "".join(c.delta.content or "" for c in chunk.choices)
        assert time.monotonic() - started > 3 * DEADLINE
    assert text.startswith(",".join(str(i) for i in range(STEADY_EVENTS)))

"""`ChatClient.stream`: SSE bodies through the client, errors, early exit and retries."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
import respx
from anyio.abc import SocketStream

import agentkit._client.chunk_stream
import agentkit._client.client
from agentkit import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ChatClient,
    ChatCompletionChunk,
    ChatStream,
    InternalServerError,
    PermissionDeniedError,
    RateLimitError,
    UserError,
)
from tests.http_stacks import http_stack, real_async_client  # noqa: F401
from tests.test_client import (
    KEY,
    RECORDINGS_PATH,
    USER,
    http_server,
    make,
)

pytestmark = pytest.mark.usefixtures("http_stack")

RECORDINGS = json.loads(RECORDINGS_PATH.read_text(encoding="utf-8"))
STREAMS = [e for e in RECORDINGS if e["done"]]
STREAM_IDS = [f"{e['file'][:50]}#{e['index']}" for e in STREAMS]


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def sse(*events: Any, done: bool = True, eol: str = "\n") -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}{eol}{eol}" for e in events]
    if done:
        lines.append(f"data: [DONE]{eol}{eol}")
    return "".join(lines).encode()


# Leaving a stream before its end abandons httpx's and httpcore's own byte iterators,
# which are async generators that the response's `aclose()` cannot reach; trio warns
# when they are collected (encode/httpx#3686). Only tests that leave early allow that:
# a stream read to its end must leave nothing behind.
leaves_early = pytest.mark.filterwarnings(
    r"ignore:Async generator 'httpx2?\.:ResourceWarning",
    r"ignore:Async generator 'httpcore2?\.:ResourceWarning",
)

HELLO = sse(chunk("Hel"), chunk("lo"), chunk(None, "stop"))


class Body(httpx.AsyncByteStream):
    """A response body given piece by piece, that can break or hang, and records `aclose`.

    An iterator object rather than an async generator, so that a body left unfinished
    is not an abandoned generator (which trio warns about)."""

    def __init__(
        self, pieces: Sequence[bytes], *, error: Exception | None = None, hang: bool = False
    ) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.hang = hang
        self.sent = 0
        self.closed = False

    def __aiter__(self) -> Body:
        return self

    async def __anext__(self) -> bytes:
        if self.sent < len(self.pieces):
            self.sent += 1
            return self.pieces[self.sent - 1]
        if self.error is not None:
            raise self.error
        if self.hang:
            await anyio.sleep_forever()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


def streaming(body: Body, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, stream=body)


def single_bytes(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


async def collect(pieces: Sequence[bytes], api: respx.MockRouter) -> list[str | None]:
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body(pieces)))
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        return [c.choices[0].delta.content if c.choices else None async for c in stream]


# --- bodies -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_request_and_chunks(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").respond(
        200, content=HELLO, headers={"content-type": "text/event-stream"}
    )
    async with make(api_key=KEY) as client:
        async with client.stream(
            model="m", messages=USER, stream_options={"include_usage": True}, temperature=0
        ) as stream:
            assert isinstance(stream, ChatStream)
            chunks = [c async for c in stream]
    assert [type(c) for c in chunks] == [ChatCompletionChunk] * 3
    assert [c.choices[0].delta.content for c in chunks] == ["Hel", "lo", None]
    assert chunks[2].choices[0].finish_reason == "stop"
    request = route.calls.last.request
    assert json.loads(request.content) == {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
    }
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
@pytest.mark.parametrize("entry", STREAMS, ids=STREAM_IDS)
async def test_recorded_streams_through_the_client(
    api: respx.MockRouter, entry: dict[str, Any]
) -> None:
    body = entry["response_text"].encode()
    expected = [json.loads(text) for text in entry["chunk_texts"]]
    for pieces in ([body], single_bytes(body), [body[: len(body) // 3], body[len(body) // 3 :]]):
        api.post("/chat/completions").mock(side_effect=lambda _, p=pieces: streaming(Body(p)))
        async with make() as client, client.stream(model="m", messages=USER) as stream:
            got = [c.model_dump(mode="json", exclude_unset=True) async for c in stream]
        assert got == expected


@pytest.mark.anyio
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
async def test_line_endings_through_the_client(api: respx.MockRouter, eol: str) -> None:
    body = sse(chunk("a"), chunk("b"), eol=eol)
    assert await collect([body], api) == ["a", "b"]
    assert await collect(single_bytes(body), api) == ["a", "b"]


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["gzip", "identity", None])
async def test_a_compressed_or_plain_body_is_decoded(
    api: respx.MockRouter, encoding: str | None
) -> None:
    # The raw bytes are read directly only when they are the body itself.
    body = sse(chunk("a"), chunk("b"))
    if encoding == "gzip":
        body = gzip.compress(body)
    pieces = [body[:7], body[7:30], body[30:]]
    headers = {"content-type": "text/event-stream"}
    if encoding is not None:
        headers["content-encoding"] = encoding
    api.post("/chat/completions").mock(
        side_effect=lambda _: httpx.Response(200, headers=headers, stream=Body(pieces))
    )
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        assert [c.choices[0].delta.content async for c in stream] == ["a", "b"]


@pytest.mark.anyio
async def test_comments_keep_alives_and_fields(api: respx.MockRouter) -> None:
    body = (
        b": OPENROUTER PROCESSING\n\n"
        b": keep-alive\n\n"
        b"event: message\nid: 1\nretry: 3000\n"
        + f"data: {json.dumps(chunk('x'))}\n\n".encode()
        + b":\n\n"
        + b"data: "
        + json.dumps(chunk("y"))[:20].encode()
        + b"\ndata: "
        + json.dumps(chunk("y"))[20:].encode()
        + b"\n\n"
        + b"data: [DONE]\n\n"
    )
    # The second chunk's JSON spans two data lines; joined with a newline, it is still JSON.
    assert await collect([body], api) == ["x", "y"]


@pytest.mark.anyio
async def test_data_after_done_is_ignored(api: respx.MockRouter) -> None:
    body = sse(chunk("a")) + b"data: not json at all\n\n" + sse(chunk("b"))
    assert await collect([body], api) == ["a"]


@pytest.mark.anyio
async def test_done_reads_the_body_to_its_end_then_closes(api: respx.MockRouter) -> None:
    body = Body([sse(chunk("a"), done=False), b"data: [DONE]\n\n", b"data: ignored\n\n"])
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        response = stream.response
        assert response is not None
        assert [c.choices[0].delta.content async for c in stream] == ["a"]
        # Closed as soon as [DONE] arrived, still inside the block.
        assert response.is_closed
        assert body.sent == 3


@pytest.mark.anyio
@leaves_early
@pytest.mark.parametrize("flood", [False, True])
async def test_a_server_stalling_or_flooding_after_done_is_cut_off(
    api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, flood: bool
) -> None:
    monkeypatch.setattr(agentkit._client.chunk_stream, "_DRAIN_TIMEOUT", 0.05)
    after = [b": " + b"x" * 1000 + b"\n"] * (10_000 if flood else 0)
    body = Body([sse(chunk("a")), *after], hang=True)
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        response = stream.response
        assert response is not None
        with anyio.fail_after(5):
            assert [c.choices[0].delta.content async for c in stream] == ["a"]
        assert response.is_closed
        assert body.closed
    if flood:
        assert 60 <= body.sent < 100  # stopped after about 64 KiB


@pytest.mark.anyio
async def test_usage_chunk_with_no_choices(api: respx.MockRouter) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = sse(chunk("a"), {**chunk(), "choices": [], "usage": usage})
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([body])))
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        chunks = [c async for c in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


@pytest.mark.anyio
async def test_empty_stream_with_only_done(api: respx.MockRouter) -> None:
    assert await collect([b"data: [DONE]\n\n"], api) == []


# --- errors ------------------------------------------------------------------------------


@leaves_early
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        ({"message": "boom", "type": "server_error", "code": None}, InternalServerError, 500),
        ({"message": "slow", "type": "tokens", "code": "rate_limit_exceeded"}, RateLimitError, 429),
        ({"message": "bad", "type": "invalid_request_error", "code": None}, BadRequestError, 400),
        ({"message": "no", "type": "permission_error"}, PermissionDeniedError, 403),
        ({"message": "overloaded", "code": 503}, InternalServerError, 503),
        ({"message": "odd"}, InternalServerError, 500),
        ({"message": "weird", "type": "something_new"}, InternalServerError, 500),
    ],
)
async def test_error_object_mid_stream(
    api: respx.MockRouter,
    sleeps: list[float],
    error: dict[str, Any],
    cls: type[APIStatusError],
    status: int,
) -> None:
    body = sse(chunk("a"), {"error": error}, chunk("never"))
    route = api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([body])))
    got: list[str | None] = []
    async with make() as client:
        with pytest.raises(APIStatusError) as info:
            async with client.stream(model="m", messages=USER) as stream:
                response = stream.response
                assert response is not None
                async for c in stream:
                    got.append(c.choices[0].delta.content)
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.body == {"error": error}
    assert error["message"] in str(info.value)
    assert got == ["a"]
    assert route.call_count == 1  # never retried after the first chunk
    assert sleeps == []
    assert response.is_closed


@leaves_early
@pytest.mark.anyio
async def test_error_event_with_event_field(api: respx.MockRouter) -> None:
    error = {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    body = f"event: error\ndata: {json.dumps({'error': error})}\n\n".encode()
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([body])))
    async with make() as client:
        with pytest.raises(RateLimitError, match="quota") as info:
            async with client.stream(model="m", messages=USER):
                pass
    assert info.value.code == "insufficient_quota"


@leaves_early
@pytest.mark.anyio
async def test_error_before_the_first_chunk_is_retried(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = [
        streaming(Body([sse({"error": {"message": "overloaded", "type": "server_error"}})])),
        streaming(Body([HELLO])),
    ]
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        assert [c.choices[0].delta.content async for c in stream] == ["Hel", "lo", None]
    assert route.call_count == 2
    assert len(sleeps) == 1


@leaves_early
@pytest.mark.anyio
async def test_invalid_json_event(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=lambda _: streaming(Body([sse(chunk("a"), "{not json")]))
    )
    async with make() as client:
        with pytest.raises(APIResponseValidationError, match="not JSON") as info:
            async with client.stream(model="m", messages=USER) as stream:
                async for _ in stream:
                    pass
    assert info.value.body == "{not json"
    assert route.call_count == 1


@leaves_early
@pytest.mark.anyio
async def test_json_that_is_not_a_chunk_names_the_field(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    bad = {"id": "x", "object": "chat.completion.chunk", "created": "soon", "model": "m"}
    route = api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([sse(bad)])))
    async with make() as client:
        with pytest.raises(APIResponseValidationError, match="created") as info:
            async with client.stream(model="m", messages=USER):
                pass
    assert info.value.body == bad
    assert route.call_count == 1  # validation errors are final, even before the first chunk
    assert sleeps == []


@pytest.mark.anyio
async def test_stream_cut_before_done(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post("/chat/completions").mock(
        side_effect=lambda _: streaming(Body([sse(chunk("a"), chunk("b"), done=False)]))
    )
    got: list[str | None] = []
    async with make() as client:
        with pytest.raises(APIConnectionError, match=r"ended before data: \[DONE\]"):
            async with client.stream(model="m", messages=USER) as stream:
                async for c in stream:
                    got.append(c.choices[0].delta.content)
    assert got == ["a", "b"]
    assert route.call_count == 1


@pytest.mark.anyio
async def test_stream_cut_mid_event_keeps_the_complete_part(api: respx.MockRouter) -> None:
    # The last event lacks its blank line: it is still delivered, then the cut is reported.
    body = sse(chunk("a"), done=False) + f"data: {json.dumps(chunk('b'))}".encode()
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([body])))
    got: list[str | None] = []
    async with make(max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            async with client.stream(model="m", messages=USER) as stream:
                async for c in stream:
                    got.append(c.choices[0].delta.content)
    assert got == ["a", "b"]


@pytest.mark.anyio
async def test_connection_breaking_after_the_first_chunk_is_not_retried(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    body = Body([sse(chunk("a"), done=False)], error=httpx.ReadError("connection reset"))
    route = api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    got: list[str | None] = []
    async with make(max_retries=5) as client:
        with pytest.raises(APIConnectionError, match="connection reset"):
            async with client.stream(model="m", messages=USER) as stream:
                async for c in stream:
                    got.append(c.choices[0].delta.content)
    assert got == ["a"]
    assert route.call_count == 1
    assert sleeps == []
    assert body.closed


@pytest.mark.anyio
async def test_connection_breaking_before_the_first_chunk_is_retried(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    broken = Body([b": keep-alive\n\n", b'data: {"id"'], error=httpx.ReadError("reset"))
    route = api.post("/chat/completions")
    route.side_effect = [streaming(broken), httpx.ConnectError("refused"), streaming(Body([HELLO]))]
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        assert [c.choices[0].delta.content async for c in stream] == ["Hel", "lo", None]
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert broken.closed


@pytest.mark.anyio
async def test_status_errors_when_opening_are_retried(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = [httpx.Response(503), httpx.Response(429), streaming(Body([HELLO]))]
    async with make() as client, client.stream(model="m", messages=USER) as stream:
        assert len([c async for c in stream]) == 3
    assert route.call_count == 3


@pytest.mark.anyio
async def test_stream_answered_with_a_recorded_json_401(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    (entry,) = [e for e in RECORDINGS if e["status"] == 401]
    assert entry["request_json"]["stream"] is True
    route = api.post("/chat/completions").respond(
        401,
        content=entry["response_text"].encode(),
        headers={"content-type": "application/json", "x-request-id": "req_401"},
    )
    request = entry["request_json"]
    params = {k: v for k, v in request.items() if k not in ("model", "messages", "stream")}
    async with make(api_key=KEY) as client:
        with pytest.raises(AuthenticationError) as info:
            async with client.stream(
                model=request["model"], messages=request["messages"], **params
            ):
                pytest.fail("the block must not run")
    error = info.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert error.request_id == "req_401"
    assert error.body == entry["response_json"]
    assert "Incorrect API key provided" in str(error)
    assert KEY not in str(error)
    assert route.call_count == 1
    assert sleeps == []
    assert json.loads(route.calls.last.request.content) == request


# --- early exit and misuse ----------------------------------------------------------------


@leaves_early
@pytest.mark.anyio
async def test_break_closes_the_response(api: respx.MockRouter) -> None:
    body = Body([sse(chunk("a"), done=False), sse(chunk("b"), done=False)], hang=True)
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    async with make() as client:
        async with client.stream(model="m", messages=USER) as stream:
            response = stream.response
            assert response is not None
            async for _ in stream:
                break
            assert not response.is_closed
        assert response.is_closed
        assert body.closed
        assert stream.response is None


@leaves_early
@pytest.mark.anyio
async def test_exception_in_the_block_closes_the_response(api: respx.MockRouter) -> None:
    body = Body([sse(chunk("a"), done=False)], hang=True)
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    async with make() as client:
        with pytest.raises(KeyError):
            async with client.stream(model="m", messages=USER) as stream:
                response = stream.response
                async for _ in stream:
                    raise KeyError("mine")
    assert response is not None and response.is_closed
    assert body.closed


@pytest.mark.anyio
async def test_cancellation_in_the_block_closes_the_response(api: respx.MockRouter) -> None:
    body = Body([sse(chunk("a"), done=False)], hang=True)
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    got: list[str | None] = []
    async with make() as client:
        with anyio.CancelScope() as scope:
            async with client.stream(model="m", messages=USER) as stream:
                response = stream.response
                async for c in stream:  # hangs after the first chunk
                    got.append(c.choices[0].delta.content)
                    # Cancelled a moment later, while waiting inside the stream.
                    scope.deadline = anyio.current_time() + 0.05
    assert scope.cancelled_caught
    assert got == ["a"]
    assert response is not None and response.is_closed
    assert body.closed


@leaves_early
@pytest.mark.anyio
async def test_cancel_scope_cancelled_from_inside(api: respx.MockRouter) -> None:
    body = Body([HELLO])
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(body))
    async with make() as client:
        with anyio.CancelScope() as scope:
            async with client.stream(model="m", messages=USER) as stream:
                response = stream.response
                async for _ in stream:
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()
                    pytest.fail("not cancelled")
    assert response is not None and response.is_closed
    assert body.closed


@pytest.mark.anyio
async def test_iterating_without_async_with(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([HELLO])))
    async with make() as client:
        stream = client.stream(model="m", messages=USER)
        with pytest.raises(UserError, match="async with"):
            async for _ in stream:
                pass
    assert not route.called


@leaves_early
@pytest.mark.anyio
async def test_entering_twice_and_iterating_after_close(api: respx.MockRouter) -> None:
    api.post("/chat/completions").mock(side_effect=lambda _: streaming(Body([HELLO], hang=True)))
    async with make() as client:
        stream = client.stream(model="m", messages=USER)
        async with stream:
            await stream.__anext__()
        with pytest.raises(UserError, match="closed"):
            await stream.__anext__()
        with pytest.raises(UserError, match="once"):
            async with stream:
                pass
        await stream.aclose()  # idempotent


@leaves_early
@pytest.mark.anyio
async def test_early_exit_over_a_real_connection(anyio_backend: str) -> None:
    """A real socket: leaving the block early closes the connection the server sees."""
    server_saw_close = anyio.Event()
    sent = 0

    async def handle(conn: SocketStream, request: bytes) -> None:
        nonlocal sent
        await conn.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                event = f"data: {json.dumps(chunk(str(sent)))}\n\n".encode()
                await conn.send(b"%x\r\n%s\r\n" % (len(event), event))
                sent += 1
                await anyio.sleep(0.01)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            server_saw_close.set()

    async with http_server(handle) as base, real_async_client() as http:
        async with ChatClient(base, http_client=http) as client:
            got: list[str | None] = []
            async with client.stream(model="m", messages=USER) as stream:
                response = stream.response
                async for c in stream:
                    got.append(c.choices[0].delta.content)
                    if len(got) == 3:
                        break
            assert response is not None and response.is_closed
            with anyio.fail_after(5):
                await server_saw_close.wait()
    assert got == ["0", "1", "2"]


@pytest.mark.anyio
async def test_a_finished_stream_returns_its_connection_to_the_pool() -> None:
    connections = 0

    async def handle(conn: SocketStream, request: bytes) -> None:
        nonlocal connections
        connections += 1
        while True:
            body = sse(chunk("a"), chunk(None, "stop"))
            await conn.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            # The [DONE] event first, the end of the chunked body a moment later.
            await conn.send(b"%x\r\n%s\r\n" % (len(body), body))
            await anyio.sleep(0.01)
            await conn.send(b"0\r\n\r\n")
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    request += await conn.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return

    async with http_server(handle) as base, real_async_client() as http:
        async with ChatClient(base, http_client=http) as client:
            for _ in range(3):
                async with client.stream(model="m", messages=USER) as stream:
                    assert len([c async for c in stream]) == 2
    assert connections == 1

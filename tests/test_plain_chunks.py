"""Plain chunks: a streamed run reads each chunk of the common shape as its parsed JSON
(`plain_chunk`) instead of as models; whatever the form, the run must see the same
chunks, and a malformed chunk must fail with the same error."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_core import from_json

from agentkit import APIError, ChatClient, ChatCompletionChunk
from agentkit._run.assemble import Assembler
from agentkit._wire.chunks import PlainChunk, plain_chunk
from benchmarks import scenario

TESTS = Path(__file__).parent
RECORDED = [
    texts
    for texts in (
        [e["chunk_texts"] for e in json.loads((TESTS / "recordings/extracted.json").read_text())]
        + [
            [
                line[6:]
                for line in e["response_text"].replace("\r\n", "\n").split("\n")
                if line.startswith("data: ") and line != "data: [DONE]"
            ]
            for e in json.loads((TESTS / "providers/exchanges.json").read_text())
            if e["request"].get("stream") is True
        ]
    )
    if texts and not any("error" in from_json(text) for text in texts)
]
"""The `data:` payloads of every recorded stream that carries no error: OpenAI's, and
16 other providers'. (Those with errors are read through the client below.)"""

BASE_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1731368641,
    "model": "gpt-4o-mini",
    "service_tier": "default",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "delta": {
                "role": "assistant",
                "content": "Hi",
                "refusal": None,
                "reasoning_content": "hm",
                "reasoning": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_current_time", "arguments": '{"a'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": None,
        }
    ],
    "usage": None,
}
"""A chunk with every field the models declare, each of the type they take as it is."""

ABSENT = object()
VALUES: list[Any] = [ABSENT, None, 0, 1, -1, True, 1.5, "", "x", "7", [], {}, [{}], {"a": 1}]
"""What each field of `BASE_CHUNK` is replaced by, one field at a time."""


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in `value`, containers included."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        found.append((*prefix, key))
        if isinstance(item, dict | list) and item:
            found.extend(paths(item, (*prefix, key)))
    return found


def replaced(path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    chunk = copy.deepcopy(BASE_CHUNK)
    parent: Any = chunk
    for key in path[:-1]:
        parent = parent[key]
    if new is ABSENT:
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = copy.deepcopy(new)
    return chunk


VARIANTS = [
    replaced(path, value)
    for path in paths(BASE_CHUNK)
    for value in VALUES
    if not (value is ABSENT and isinstance(path[-1], int))
] + [
    {**BASE_CHUNK, "error": {"message": "overloaded", "code": 503}},
    {**BASE_CHUNK, "error": None, "x_extra": [1]},
    {**BASE_CHUNK, "choices": [BASE_CHUNK["choices"][0], {"index": 1, "delta": {}}]},
    {**BASE_CHUNK, "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    {**BASE_CHUNK, "choices": [{**BASE_CHUNK["choices"][0], "delta": None}]},
]


def test_plain_chunk_takes_only_what_the_model_takes_unchanged() -> None:
    taken = 0
    for variant in VARIANTS:
        if plain_chunk(variant) is None:
            continue
        taken += 1
        # The rule: the model would take it without converting or defaulting anything.
        model = ChatCompletionChunk.model_validate(variant)
        assert model.model_dump(mode="json", exclude_unset=True) == variant
    assert taken > 40  # the common shape, with nulls and unknown fields, is taken


def test_plain_chunk_declines_what_the_model_converts_or_rejects() -> None:
    assert plain_chunk([]) is None
    assert plain_chunk(replaced(("created",), "7")) is None  # the model makes it 7
    assert plain_chunk(replaced(("created",), None)) is None  # the model makes it 0
    assert plain_chunk(replaced(("id",), None)) is None  # the model makes it ""
    assert plain_chunk(replaced(("choices", 0, "delta"), None)) is None  # {}
    assert plain_chunk(replaced(("choices", 0, "index"), True)) is None
    assert plain_chunk(replaced(("choices", 0, "delta", "content"), [{}])) is None  # parts
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert plain_chunk({**BASE_CHUNK, "usage": usage}) is None  # usage becomes a model
    assert plain_chunk(BASE_CHUNK) is BASE_CHUNK


def test_the_chunks_of_an_answer_are_plain_except_usage() -> None:
    events = scenario._tool_call_events() + scenario._FINAL_EVENTS
    for event in events:
        assert plain_chunk(from_json(event[6:])) is not None
    usage = scenario._usage_chunk(scenario._USAGE_1)
    assert plain_chunk(from_json(usage[6:])) is None


def assembled(chunks: list[PlainChunk | ChatCompletionChunk]) -> tuple[Any, ...]:
    assembler = Assembler(1)
    pieces = [piece for chunk in chunks for piece in assembler.feed(chunk)]
    usage = assembler.usage
    try:
        message: Any = assembler.message().model_dump()
    except ValueError as error:  # a content part the message does not take: either way
        message = str(error)
    return (
        pieces,
        message,
        assembler.finish_reason,
        None if usage is None else usage.model_dump(),
    )


@pytest.mark.parametrize("texts", RECORDED, ids=range(len(RECORDED)))
def test_recorded_streams_assemble_the_same_from_plain_chunks(texts: list[str]) -> None:
    models: list[PlainChunk | ChatCompletionChunk] = [
        ChatCompletionChunk.model_validate_json(text) for text in texts
    ]
    plain: list[PlainChunk | ChatCompletionChunk] = []
    for text in texts:
        value = from_json(text)
        plain.append(plain_chunk(value) or ChatCompletionChunk.model_validate(value))
    assert assembled(plain) == assembled(models)


def test_most_recorded_chunks_are_plain() -> None:
    values = [from_json(text) for texts in RECORDED for text in texts]
    taken = sum(plain_chunk(value) is not None for value in values)
    assert taken / len(values) > 0.8, (taken, len(values))


# --- through the client: the same chunks, or the same error -------------------------------


def sse_body(*chunks: Any) -> bytes:
    events = [c if isinstance(c, str) else json.dumps(c) for c in chunks]
    return "".join(f"data: {e}\n\n" for e in [*events, "[DONE]"]).encode()


@asynccontextmanager
async def reader() -> AsyncIterator[Callable[[bytes, bool], Awaitable[Any]]]:
    """`read(body, plain)`: what reading a stream with that body gives (one client for
    all): its assembled chunks, or the error it raises."""
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=bodies[-1]
        )

    async def read(body: bytes, plain: bool) -> Any:
        bodies.append(body)
        try:
            async with client.stream(model="m", messages=[{"role": "user", "content": "x"}]) as s:
                chunks = s.plain_chunks() if plain else s
                return assembled([chunk async for chunk in chunks])
        except APIError as error:
            return (type(error), str(error), getattr(error, "body", None))

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http,
        ChatClient(
            "https://model.test/v1", api_key="sk-test", http_client=http, max_retries=0
        ) as client,
    ):
        yield read


@pytest.mark.anyio
async def test_every_variant_reads_the_same_both_ways() -> None:
    good = BASE_CHUNK
    kinds: set[str] = set()
    async with reader() as read:
        for variant in VARIANTS:
            # First (read while the stream opens) and later in the stream.
            for body in (sse_body(variant, good), sse_body(good, variant, good)):
                public = await read(body, False)
                assert await read(body, True) == public, variant
                kinds.add("error" if isinstance(public[0], type) else "chunks")
        for bad in ("{not json", '"a string"', "[]"):
            body = sse_body(good, bad)
            public = await read(body, False)
            assert public[0].__name__ == "APIResponseValidationError"
            assert await read(body, True) == public
    assert kinds == {"error", "chunks"}


@pytest.mark.anyio
async def test_errors_raise_the_same_both_ways() -> None:
    error = {"error": {"message": "rate limited", "type": "rate_limit", "code": 429}}
    body = sse_body(BASE_CHUNK, error)
    async with reader() as read:
        public = await read(body, False)
        assert public[0].__name__ == "RateLimitError"
        assert await read(body, True) == public


class _Span:
    """The part of an OpenTelemetry span the traced client sets."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


@pytest.mark.anyio
async def test_a_traced_stream_passes_plain_chunks_on_and_notes_the_first() -> None:
    pytest.importorskip("opentelemetry")
    from agentkit.otel._client import TracedClient

    finish = {**BASE_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = sse_body(BASE_CHUNK, finish)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    span = _Span()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http,
        ChatClient("https://model.test/v1", api_key="sk-test", http_client=http) as client,
    ):
        traced = TracedClient(client, span, None)  # type: ignore[arg-type]
        async with traced.stream(model="m", messages=[{"role": "user", "content": "x"}]) as s:
            chunks = [chunk async for chunk in s.plain_chunks()]
    assert [type(c) for c in chunks] == [dict, dict]
    assert assembled(chunks)[2] == "stop"
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert span.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert traced.first_chunk_at is not None

"""Putting streamed deltas together into the message a non-streaming response would give."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import BaseModel

from agentkit import (
    AssistantMessage,
    ChatCompletionChunk,
    FunctionCall,
    OutputDelta,
    RefusalDelta,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallOpened,
)
from agentkit._client.sse import SSEDecoder
from agentkit._run.assemble import Assembler, streamed_response
from agentkit._tools.output import OutputSpec
from tests.growth import growth

RECORDINGS = json.loads(
    (Path(__file__).parent / "recordings" / "extracted.json").read_text(encoding="utf-8")
)
STREAMS = [ex for ex in RECORDINGS if ex["chunk_texts"]]
TURN = 3


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
        }
    )


def calls_delta(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"tool_calls": list(calls)}


def assemble(chunks: list[ChatCompletionChunk]) -> tuple[Assembler, list[Any]]:
    assembler = Assembler(TURN)
    pieces = [piece for c in chunks for piece in assembler.feed(c)]
    return assembler, pieces


def expected_from_chunks(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """An independent, plain reading of well-formed OpenAI chunks."""
    text: list[str] | None = None
    refusal: list[str] | None = None
    calls: dict[int, dict[str, Any]] = {}
    usage = None
    finish = None
    for c in chunks:
        if c.get("usage"):
            usage = c["usage"]
        for choice in c["choices"]:
            delta = choice["delta"]
            if delta.get("content") is not None:
                text = (text or []) + [delta["content"]]
            if delta.get("refusal") is not None:
                refusal = (refusal or []) + [delta["refusal"]]
            for d in delta.get("tool_calls") or ():
                call = calls.setdefault(d["index"], {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or d.get("id")
                call["name"] = call["name"] or d.get("function", {}).get("name")
                call["arguments"] += d.get("function", {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "content": None if text is None else "".join(text),
        "refusal": None if refusal is None else "".join(refusal),
        "calls": [calls[i] for i in sorted(calls)],
        "usage": usage,
        "finish": finish,
    }


@pytest.mark.parametrize("exchange", STREAMS, ids=lambda ex: f"{ex['file'][:60]}#{ex['index']}")
def test_recorded_streams_assemble_to_what_the_chunks_say(exchange: dict[str, Any]) -> None:
    raw = [json.loads(t) for t in exchange["chunk_texts"]]
    assembler, _ = assemble([ChatCompletionChunk.model_validate(c) for c in raw])
    expected = expected_from_chunks(raw)
    message = assembler.message()
    assert message.content == expected["content"]
    assert message.refusal == expected["refusal"]
    got_calls = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls or ()
        if isinstance(c, ToolCall)
    ]
    assert got_calls == expected["calls"]
    assert assembler.finish_reason == expected["finish"]
    dumped = None if assembler.usage is None else assembler.usage.model_dump(exclude_unset=True)
    assert dumped == expected["usage"]


def test_recorded_parallel_calls_stream() -> None:
    (exchange,) = [ex for ex in STREAMS if "multiple_tools_streaming" in ex["file"]]
    raw = [ChatCompletionChunk.model_validate_json(t) for t in exchange["chunk_texts"]]
    assembler, pieces = assemble(raw)
    calls = assembler.message().tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("get_current_weather", {"location": "Seattle, WA"}),
        ("get_current_weather", {"location": "San Francisco, CA"}),
    ]
    opened = [p for p in pieces if isinstance(p, ToolCallOpened)]
    assert [p.index for p in opened] == [0, 1]
    assert [p.tool_call_id for p in opened] == [c.id for c in calls]
    assert assembler.finish_reason == "tool_calls"
    assert assembler.usage is not None and assembler.usage.total_tokens > 0


def test_recorded_refusal_stream() -> None:
    (exchange,) = [ex for ex in STREAMS if "test_refusal" in ex["file"]]
    raw = [ChatCompletionChunk.model_validate_json(t) for t in exchange["chunk_texts"]]
    assembler, pieces = assemble(raw)
    message = assembler.message()
    assert message.content is None
    assert message.refusal == "I'm very sorry, but I can't assist with that request."
    assert "".join(p.text for p in pieces if isinstance(p, RefusalDelta)) == message.refusal


def test_interleaved_parallel_calls() -> None:
    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk(calls_delta({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}})),
        chunk(calls_delta({"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y'}})),
        chunk(calls_delta({"index": 0, "function": {"arguments": '{"x": '}})),
        chunk(calls_delta({"index": 1, "function": {"arguments": '": 2}'}})),
        chunk(calls_delta({"index": 0, "function": {"arguments": "1}"}})),
        chunk({}, finish="tool_calls"),
    ]
    assembler, pieces = assemble(chunks)
    assert assembler.message() == AssistantMessage(
        tool_calls=[
            ToolCall(id="a", function=FunctionCall(name="f", arguments='{"x": 1}')),
            ToolCall(id="b", function=FunctionCall(name="g", arguments='{"y": 2}')),
        ]
    )
    assert pieces[:2] == [ToolCallOpened(TURN, 0, "a", "f"), ToolCallOpened(TURN, 1, "b", "g")]
    assert ToolCallArgumentsDelta(TURN, 1, '{"y') in pieces


def test_same_index_twice_in_one_chunk_is_merged() -> None:
    chunks = [
        chunk(
            calls_delta(
                {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x"'}},
                {"index": 0, "function": {"arguments": ": 1}"}},
            )
        ),
        chunk({}, finish="tool_calls"),
    ]
    assembler, _ = assemble(chunks)
    (call,) = assembler.message().tool_calls or []
    assert isinstance(call, ToolCall) and call.function.arguments == '{"x": 1}'


def test_missing_index_continues_the_only_call() -> None:
    chunks = [
        chunk(calls_delta({"id": "a", "function": {"name": "f", "arguments": '{"x"'}})),
        chunk(calls_delta({"function": {"arguments": ": 1}"}})),
    ]
    assembler, _ = assemble(chunks)
    assert assembler.message().tool_calls == [
        ToolCall(id="a", function=FunctionCall(name="f", arguments='{"x": 1}'))
    ]


def test_missing_index_with_new_id_starts_a_new_call() -> None:
    chunks = [
        chunk(calls_delta({"id": "a", "function": {"name": "f", "arguments": "{}"}})),
        chunk(calls_delta({"id": "b", "function": {"name": "g", "arguments": "{}"}})),
    ]
    assembler, _ = assemble(chunks)
    assert [c.id for c in assembler.message().tool_calls or []] == ["a", "b"]


def test_id_and_name_after_the_first_arguments() -> None:
    chunks = [
        chunk(calls_delta({"index": 0, "function": {"arguments": '{"x"'}})),
        chunk(calls_delta({"index": 0, "function": {"name": "f", "arguments": ": 1"}})),
        chunk(calls_delta({"index": 0, "id": "late", "function": {"arguments": "}"}})),
    ]
    assembler, pieces = assemble(chunks)
    assert assembler.message().tool_calls == [
        ToolCall(id="late", function=FunctionCall(name="f", arguments='{"x": 1}'))
    ]
    # Opened once, when both id and name were known.
    assert [p for p in pieces if isinstance(p, ToolCallOpened)] == [
        ToolCallOpened(TURN, 0, "late", "f")
    ]


def test_index_reused_with_a_new_id_is_a_new_call() -> None:
    chunks = [
        chunk(calls_delta({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}})),
        chunk(calls_delta({"index": 0, "id": "b", "function": {"name": "f", "arguments": "{}"}})),
    ]
    assembler, _ = assemble(chunks)
    assert [c.id for c in assembler.message().tool_calls or []] == ["a", "b"]


def test_repeated_name_is_kept_once() -> None:
    chunks = [
        chunk(calls_delta({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}})),
        chunk(calls_delta({"index": 0, "function": {"name": "f", "arguments": "}"}})),
    ]
    assembler, _ = assemble(chunks)
    assert assembler.message().tool_calls == [
        ToolCall(id="a", function=FunctionCall(name="f", arguments="{}"))
    ]


def test_text_pieces_and_usage_chunk() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, finish="stop"),
        ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "created": 1,
                "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        ),
    ]
    assembler, pieces = assemble(chunks)
    assert pieces == [TextDelta(TURN, "Hel"), TextDelta(TURN, "lo")]
    assert assembler.message() == AssistantMessage(content="Hello")
    assert assembler.finish_reason == "stop"
    assert assembler.usage is not None and assembler.usage.total_tokens == 5


def _events_of(body: bytes, cuts: list[int]) -> list[str]:
    decoder = SSEDecoder()
    events = []
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        events += [e.data for e in decoder.feed(body[start:cut])]
        start = cut
    return events + [e.data for e in decoder.flush()]


@settings(max_examples=60, deadline=None)
@given(
    exchange=st.sampled_from(STREAMS),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=40),
)
def test_any_split_gives_the_same_events_and_message(
    exchange: dict[str, Any], cuts: list[float]
) -> None:
    body = exchange["response_text"].encode("utf-8")
    whole = _events_of(body, [])
    split = _events_of(body, [int(c * len(body)) for c in cuts])
    assert split == whole
    assert whole[-1] == "[DONE]"
    reference, _ = assemble([ChatCompletionChunk.model_validate_json(d) for d in whole[:-1]])
    again, _ = assemble([ChatCompletionChunk.model_validate_json(d) for d in split[:-1]])
    assert again.message() == reference.message()
    assert again.usage == reference.usage


# --- cost growing with the number of calls -----------------------------------------


def test_calls_named_by_id_alone_take_linear_time() -> None:
    # Deltas without `index`, each starting a call with a new id: finding whether an id
    # is known must not scan every call so far (8x the calls took ~64x the time).
    chunks = [
        chunk(calls_delta({"id": f"call_{i}", "function": {"name": "f", "arguments": "{}"}}))
        for i in range(16_000)
    ]

    def run(n: int) -> None:
        assembler = Assembler(TURN)
        for c in chunks[:n]:
            assembler.feed(c)
        assert len(assembler.message().tool_calls or []) == n

    ratio = growth(run, 2_000, 8, limit=20)
    assert ratio < 20, f"8x the calls took {ratio:.1f}x the time"


# --- structured output parsed while it streams ---------------------------------------


class Answer(BaseModel):
    items: list[str]


class ChunkModel:
    """A model that streams the given chunks, whatever it is asked."""

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self.chunks = chunks

    def stream(self, **request: Any) -> Any:
        @asynccontextmanager
        async def opened() -> AsyncIterator[AsyncIterator[ChatCompletionChunk]]:
            async def each() -> AsyncIterator[ChatCompletionChunk]:
                for c in self.chunks:
                    yield c

            yield each()

        return opened()


def text_chunks(text: str, size: int) -> list[ChatCompletionChunk]:
    return [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)] + [
        chunk({}, finish="stop")
    ]


async def stream_answer(chunks: list[ChatCompletionChunk]) -> tuple[list[Any], AssistantMessage]:
    partials: list[Any] = []

    def handler(event: object) -> None:
        if isinstance(event, OutputDelta):
            partials.append(event.partial)

    response = await streamed_response(
        ChunkModel(chunks),  # type: ignore[arg-type]
        model="m",
        messages=[],
        params={},
        turn=TURN,
        events=handler,
        output=OutputSpec(Answer),
    )
    return partials, response.message


def test_structured_output_in_small_deltas_is_parsed_in_linear_time() -> None:
    # Every delta used to parse the whole answer: 8x the answer took ~64x the time.
    answers = {n: json.dumps({"items": ["abc"] * n}) for n in (1_200, 9_600)}
    streams = {n: text_chunks(answer, 4) for n, answer in answers.items()}

    def run(n: int) -> None:
        partials, message = anyio.run(stream_answer, streams[n])
        assert message.content == answers[n]
        assert partials[-1] == {"items": ["abc"] * n}

    ratio = growth(run, 1_200, 8, limit=24)
    assert ratio < 24, f"an answer 8x as long took {ratio:.1f}x the time"


@pytest.mark.parametrize("size", [1, 4, 333, 100_000])
@pytest.mark.anyio
async def test_output_deltas_grow_and_end_with_the_whole_answer(size: int) -> None:
    items = [f"item {i}" for i in range(3_000)]
    answer = json.dumps({"items": items})
    partials, message = await stream_answer(text_chunks(answer, size))
    assert message.content == answer
    assert partials[-1] == {"items": items}
    # Each partial is a step on the way: its list only grows.
    for before, after in itertools.pairwise(partials):
        assert after.get("items", [])[: len(before.get("items", []))] == before.get("items", [])
    if size < 100:
        assert len(partials) >= 20  # still a stream of partial values, not one at the end

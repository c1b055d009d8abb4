"""The SSE decoder on its own: line endings, fields, comments, and bodies cut anywhere."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from agentkit._client.sse import EventTooLargeError, ServerSentEvent, SSEDecoder, aiter_events
from tests.growth import growth

RECORDINGS = json.loads(
    (Path(__file__).parent / "recordings" / "extracted.json").read_text(encoding="utf-8")
)
STREAMS = [e for e in RECORDINGS if e["done"]]


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.flush()


def data_of(events: list[ServerSentEvent]) -> list[str]:
    return [e.data for e in events]


def test_recorded_streams_exist() -> None:
    assert len(STREAMS) >= 5


# --- fields and lines --------------------------------------------------------------


def test_data_lines_make_one_event_each() -> None:
    events = decode(b'data: {"a":1}\n\ndata: {"b":2}\n\n')
    assert events == [ServerSentEvent(data='{"a":1}'), ServerSentEvent(data='{"b":2}')]


def test_multi_line_data_joins_with_newline() -> None:
    assert data_of(decode(b"data: one\ndata: two\ndata:three\n\n")) == ["one\ntwo\nthree"]


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert data_of(decode(b"data:  two spaces\n\n")) == [" two spaces"]
    assert data_of(decode(b"data:none\n\n")) == ["none"]


def test_field_without_colon_is_an_empty_value() -> None:
    assert data_of(decode(b"data\ndata\n\n")) == ["\n"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    body = eol.join([b"data: a", b"", b"data: b", b"data: c", b"", b""])
    assert data_of(decode(body)) == ["a", "b\nc"]


def test_mixed_line_endings() -> None:
    assert data_of(decode(b"data: a\r\n\ndata: b\r\rdata: c\n\r\n")) == ["a", "b", "c"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # A CR at the end of one chunk and LF at the start of the next must not make a blank line.
    events = decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n")
    assert data_of(events) == ["a\nb"]


def test_comments_and_keep_alives_are_ignored() -> None:
    body = b": keep-alive\n\n:\ndata: x\n: comment inside\ndata: y\n\n: ping\n\n"
    assert data_of(decode(body)) == ["x\ny"]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode(b"\n\n\r\n\n") == []


def test_event_id_and_retry_fields() -> None:
    body = b"event: error\nid: 7\nretry: 1500\ndata: {}\n\ndata: next\n\n"
    first, second = decode(body)
    assert first == ServerSentEvent(data="{}", event="error", id="7", retry=1500)
    # The event type is reset after each event; the last id and retry persist (WHATWG).
    assert second == ServerSentEvent(data="next", event=None, id="7", retry=1500)


def test_one_event_per_chunk_keeps_the_fields_of_earlier_chunks() -> None:
    # A chunk holding exactly one `data:` event takes a shorter path; the event type,
    # id and retry set by earlier chunks must still reach it.
    chunks = [
        b"data: a\n\n",
        b"event: error\n",
        b"data: b\n\n",
        b"id: 3\nretry: 20\n\n",
        b"data: c\n\n",
        b"data:  d\n\n",
        b"data: e\n",
        b"\n",
        b"data: f\n\ndata: g\n\n",
    ]
    events = decode(*chunks)
    assert events == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data="b", event="error"),
        ServerSentEvent(data="c", id="3", retry=20),
        ServerSentEvent(data=" d", id="3", retry=20),
        ServerSentEvent(data="e", id="3", retry=20),
        ServerSentEvent(data="f", id="3", retry=20),
        ServerSentEvent(data="g", id="3", retry=20),
    ]
    body = b"".join(chunks)
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == events


def test_event_type_is_reset_by_an_empty_event() -> None:
    assert decode(b"event: x\n\ndata: y\n\n") == [ServerSentEvent(data="y")]


def test_bad_retry_and_id_values_are_ignored() -> None:
    body = "retry: soon\nretry: ²\nid: a\0b\ndata: x\n\n".encode()
    assert decode(body) == [ServerSentEvent(data="x", id=None, retry=None)]


def test_unknown_fields_are_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\n\n") == [ServerSentEvent(data="x")]


def test_last_event_without_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [ServerSentEvent(data="a")]
    assert decoder.flush() == [ServerSentEvent(data="b")]


def test_incomplete_line_waits_for_the_rest() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"da") == []
    assert decoder.feed(b"ta: hel") == []
    assert decoder.feed(b"lo\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(data="hello")]


def test_multibyte_utf8_split_across_chunks() -> None:
    body = 'data: {"t":"héllo 世界 🎉"}\n\n'.encode()
    expected = ['{"t":"héllo 世界 🎉"}']
    for cut in range(len(body) + 1):
        assert data_of(decode(body[:cut], body[cut:])) == expected


def test_a_byte_order_mark_opening_the_stream_is_ignored() -> None:
    body = "\ufeffdata: a\n\ndata: b\n\n".encode()
    for cut in range(len(body) + 1):
        assert data_of(decode(body[:cut], body[cut:])) == ["a", "b"]
    # Only at the very start: later it is part of a field name (an unknown field).
    assert data_of(decode("data: a\n\n\ufeffdata: b\n\n".encode())) == ["a"]


def test_done_is_an_ordinary_event_for_the_decoder() -> None:
    assert data_of(decode(b"data: x\n\ndata: [DONE]\n\n")) == ["x", "[DONE]"]


@pytest.mark.anyio
async def test_aiter_events() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"data: a\n", b"\ndata: b\r\n", b"\r\ndata: c"):
            yield part

    assert [e.data async for e in aiter_events(chunks())] == ["a", "b", "c"]


# --- recorded bodies, cut at every byte ---------------------------------------------


def expected_events(entry: dict[str, Any]) -> list[str]:
    return [*entry["chunk_texts"], "[DONE]"]


@pytest.mark.parametrize("entry", STREAMS, ids=lambda e: f"{e['file'][:50]}#{e['index']}")
def test_recorded_body_whole(entry: dict[str, Any]) -> None:
    assert data_of(decode(entry["response_text"].encode())) == expected_events(entry)


EVERY_CUT_LIMIT = 6000
"""Splitting at every boundary costs the square of the body's length: the longest
recording (17 KB) keeps its first events up to this many bytes, then [DONE]."""


def leading_events(entry: dict[str, Any], limit: int) -> tuple[bytes, list[str]]:
    """The recorded body cut after its last whole event within `limit` bytes, plus [DONE]."""
    events = entry["response_text"].split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    kept: list[str] = []
    size = len("data: [DONE]\n\n")
    for event in events[:-2]:
        size += len(event.encode()) + 2
        if size > limit and kept:
            break
        kept.append(event)
    body = "".join(f"{event}\n\n" for event in [*kept, "data: [DONE]"]).encode()
    return body, [*entry["chunk_texts"][: len(kept)], "[DONE]"]


@pytest.mark.parametrize("entry", STREAMS, ids=lambda e: f"{e['file'][:50]}#{e['index']}")
def test_recorded_body_split_at_every_byte_boundary(entry: dict[str, Any]) -> None:
    body, expected = leading_events(entry, EVERY_CUT_LIMIT)
    assert len(expected) >= 4
    for cut in range(len(body) + 1):
        assert data_of(decode(body[:cut], body[cut:])) == expected, cut


@pytest.mark.parametrize("entry", STREAMS, ids=lambda e: f"{e['file'][:50]}#{e['index']}")
@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["CRLF", "CR"])
def test_recorded_body_in_single_bytes_with_other_line_endings(
    entry: dict[str, Any], eol: bytes
) -> None:
    body = entry["response_text"].encode().replace(b"\n", eol)
    assert data_of(decode(*(body[i : i + 1] for i in range(len(body))))) == expected_events(entry)


@settings(max_examples=150, deadline=None)
@given(
    entry=st.sampled_from(STREAMS),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=40),
)
def test_any_split_gives_the_same_events(
    entry: dict[str, Any], eol: bytes, cuts: list[float]
) -> None:
    body = entry["response_text"].encode().replace(b"\n", eol)
    points = sorted({int(c * len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    assert b"".join(pieces) == body
    assert data_of(decode(*pieces)) == expected_events(entry)


# --- cost and size limits ----------------------------------------------------------


def test_one_long_line_in_many_chunks_takes_linear_time() -> None:
    # The decoder used to copy its whole buffer on every chunk: 8x the line, 64x the time.
    pieces = {n: cut(b"data: " + b"x" * n + b"\n\n", 1024) for n in (128 * 1024, 1024 * 1024)}

    def run(n: int) -> None:
        decoder = SSEDecoder(max_event_bytes=None)
        events = [event for piece in pieces[n] for event in decoder.feed(piece)]
        assert [len(e.data) for e in events] == [n]

    ratio = growth(run, 128 * 1024, 8, limit=24)
    assert ratio < 24, f"a line 8x as long took {ratio:.1f}x the time"


@pytest.mark.parametrize("size", [1, 7, 4096], ids=lambda size: f"cut-{size}")
def test_many_small_events_take_linear_time(size: int) -> None:
    event = b'data: {"choices":[{"index":0,"delta":{"content":"abc"}}]}\n\n'
    pieces = {n: cut(event * n, size) for n in (1_000, 8_000)}

    def run(n: int) -> None:
        decoder = SSEDecoder()
        assert sum(len(decoder.feed(piece)) for piece in pieces[n]) == n

    ratio = growth(run, 1_000, 8, limit=24)
    assert ratio < 24, f"8x the events took {ratio:.1f}x the time"


def cut(body: bytes, size: int) -> list[bytes]:
    return [body[start : start + size] for start in range(0, len(body), size)]


def test_a_line_over_the_limit_stops_the_decoder_early() -> None:
    decoder = SSEDecoder(max_event_bytes=10_000)
    fed = 0
    with pytest.raises(EventTooLargeError) as caught:
        for _ in range(1_000):
            decoder.feed(b"data: " if fed == 0 else b"y" * 1000)
            fed += 1
    assert caught.value.limit == 10_000
    assert "10,000 bytes" in str(caught.value)
    assert fed <= 12  # raised at the limit, not after buffering everything sent


def test_an_event_of_many_data_lines_over_the_limit_is_refused() -> None:
    decoder = SSEDecoder(max_event_bytes=10_000)
    with pytest.raises(EventTooLargeError):
        for _ in range(1_000):
            decoder.feed(b"data: " + b"z" * 100 + b"\n")


def test_a_whole_event_in_one_chunk_over_the_limit_is_refused() -> None:
    with pytest.raises(EventTooLargeError):
        SSEDecoder(max_event_bytes=100).feed(b"data: " + b"a" * 200 + b"\n\n")


def test_events_up_to_the_limit_pass_and_the_count_starts_again_per_event() -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    body = (b"data: " + b"a" * 50 + b"\ndata: " + b"b" * 49 + b"\n\n") * 50
    events = [
        e for start in range(0, len(body), 33) for e in decoder.feed(body[start : start + 33])
    ]
    assert len(events) == 50 and all(len(e.data) == 100 for e in events)


def test_no_limit_with_none() -> None:
    decoder = SSEDecoder(max_event_bytes=None)
    (event,) = decoder.feed(b"data: " + b"a" * 20_000_000 + b"\n\n")
    assert len(event.data) == 20_000_000

"""`ChatStream`: the chunks of one streamed completion, read from an SSE body."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import ValidationError
from pydantic_core import from_json

from agentkit._client.deadline import AttemptDeadlines
from agentkit._client.errors import (
    quote,
    redact_key,
    request_secrets,
    stream_error,
    transport_error,
)
from agentkit._client.http import Stack
from agentkit._client.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    EventTooLargeError,
    ServerSentEvent,
    SSEDecoder,
)
from agentkit._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseTooLargeError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    UserError,
)
from agentkit._redact import display_url, scrub, scrub_value
from agentkit._wire.chunks import ChatCompletionChunk, PlainChunk, plain_chunk

__all__ = ["ChatStream"]

T = TypeVar("T")
_Retrier = Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]

_DRAIN_TIMEOUT = 1.0
_DRAIN_LIMIT = 64 * 1024
"""After `data: [DONE]`, how long and how much to read while waiting for the body to end."""


class ChatStream:
    """The chunks of a streamed completion; made by `ChatClient.stream`.

    Use it as an async context manager and iterate it inside. Leaving the
    block, by finishing, breaking out, an error or cancellation, closes the
    HTTP response and returns the connection to the pool.

    Attributes:
        response: The HTTP response, once the stream is open.
    """

    def __init__(
        self,
        open_response: Callable[[], Awaitable[httpx.Response]],
        retrier: _Retrier[Any],
        *,
        request: httpx.Request,
        stack: Stack,
        attempt_timeout: float | None = None,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        deadlines: AttemptDeadlines | None = None,
    ) -> None:
        self._open_response = open_response
        # The client's, shared by its attempts: cheaper than a cancel scope per stream.
        self._deadlines = AttemptDeadlines() if deadlines is None else deadlines
        self._retrier = retrier
        self._request = request
        self._stack = stack
        self.response: httpx.Response | None = None
        self._bytes: AsyncIterator[bytes] | None = None
        self._attempt_timeout = attempt_timeout
        self._max_event_bytes = max_event_bytes
        self._decoder = SSEDecoder(max_event_bytes)
        self._events: deque[ServerSentEvent] = deque()
        self._first: PlainChunk | ChatCompletionChunk | None = None
        """The first chunk, read (and checked) while opening the stream."""
        self._done = False
        self._finished = False
        """A chunk with a `finish_reason` has arrived."""
        self._entered = False

    async def __aenter__(self) -> ChatStream:
        if self._entered:
            raise UserError("a ChatStream can be entered only once")
        self._entered = True
        await self._retrier(self._open_within_deadline)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if not self._entered:
            raise UserError("iterate a stream inside `async with client.stream(...) as stream:`")
        if self._first is not None:
            first, self._first = self._first, None
            if isinstance(first, ChatCompletionChunk):
                return first
            return ChatCompletionChunk.model_validate(first)
        return await self._next_chunk(self._chunk)

    def plain_chunks(self) -> AsyncIterator[PlainChunk | ChatCompletionChunk]:
        """The chunks, each as a `PlainChunk` when it has the common shape (see
        `plain_chunk`), else as the validated model: what a streamed run's assembler
        reads, without building the models of every delta. Iterate one or the other."""
        if not self._entered:
            raise UserError("iterate a stream inside `async with client.stream(...) as stream:`")
        return _PlainChunks(self)

    async def aclose(self) -> None:
        """Close the response; safe to call more than once, and under cancellation."""
        response, self.response = self.response, None
        chunks, self._bytes = self._bytes, None
        # Chunks decoded but not yet taken go too: a closed stream yields nothing more.
        self._first = None
        self._events.clear()
        if response is None and chunks is None:
            return  # closed already (after data: [DONE], say): nothing to shield
        if (
            response is not None
            and response.is_closed
            and getattr(chunks, "ag_frame", True) is None
        ):
            # Read to its end (as after [DONE]): httpx has closed the response and its
            # byte iterator (an async generator) has returned. Nothing left to await,
            # so no shielded scope to pay for.
            return
        with anyio.CancelScope(shield=True):
            # Finish httpx's byte iterator as well as the response, so it is not left
            # to the garbage collector (trio warns about such async generators).
            close_chunks = getattr(chunks, "aclose", None)
            if close_chunks is not None:
                await close_chunks()
            if response is not None:
                await response.aclose()

    async def _open_within_deadline(self) -> None:
        """`_open`, within `attempt_timeout`: a server trickling bytes that never make an
        event, or its headers, is cut off like one that does not answer."""
        if self._attempt_timeout is None:
            return await self._open()
        with self._deadlines.move_on_after(self._attempt_timeout):
            return await self._open()
        # Cancelled in `_open`, which closed the response on its way out.
        raise APITimeoutError(
            f"the stream from {self._request.url} sent no event within attempt_timeout="
            f"{self._attempt_timeout:g} s; pass ChatClient(attempt_timeout=...) to wait "
            "longer (None: no limit)",
            request=self._request,
        )

    async def _open(self) -> None:
        """One attempt: open the response and read up to its first chunk.

        Reading the first chunk inside the attempt means a connection that
        breaks, or an error event that arrives, before anything reached the
        caller is retried like a failed request.
        """
        self.response = await self._open_response()
        # The raw bytes are the body itself unless the server compressed it; reading
        # them spares httpx's decoding layer a call for every chunk. A body read
        # already (by a transport or an event hook) is only there decoded.
        response = self.response
        raw = not response.is_stream_consumed and (
            response.headers.get("content-encoding", "identity") in ("identity", "")
        )
        self._bytes = response.aiter_raw() if raw else response.aiter_bytes()
        self._decoder = SSEDecoder(self._max_event_bytes)
        self._events.clear()
        self._done = False
        self._finished = False
        try:
            self._first = await self._next_chunk(self._plain)
        except StopAsyncIteration:
            self._first = None  # an empty stream: [DONE] and nothing before it
        except BaseException:
            await self.aclose()
            raise

    async def _next_chunk(self, parse: Callable[[str], T]) -> T:
        """The next chunk, as `parse` makes it from its event's data; `StopAsyncIteration` after
        `data: [DONE]`. `plain_chunks` hands this coroutine out as its `__anext__`: no
        coroutine of its own around it for every chunk."""
        try:
            if self._done:
                raise StopAsyncIteration
            # The events of the bytes read so far, reading more until there is one; inline
            # rather than a method of its own, as this runs for every chunk of every answer.
            events = self._events
            gap = self._attempt_timeout
            if gap is not None and not events:
                # Against a server that keeps the connection busy with bytes that never
                # complete an event; plain silence ends in the read timeout, set to `gap`.
                deadline = time.monotonic() + gap
            while not events:
                if self._bytes is None or self.response is None:
                    raise UserError("the stream is closed")
                try:
                    data = await self._bytes.__anext__()
                except StopAsyncIteration:
                    events.extend(self._flush())
                    if not events and self._finished:
                        # Some servers (llama.cpp forks, older TGI, some Azure deployments)
                        # never send [DONE]: after a finish_reason, the body's end is the end.
                        self._done = True
                        await self.aclose()
                        raise StopAsyncIteration from None
                    if not events:
                        raise APIConnectionError(
                            f"the stream from {display_url(self._request.url)} ended before "
                            "data: [DONE] and before any finish_reason: the response is cut off",
                            request=self._request,
                        ) from None
                    continue  # to the events the end of the body completed
                except self._stack.transport_error as exc:
                    if (
                        gap is not None
                        and isinstance(exc, self._stack.timeout_error)
                        and time.monotonic() >= deadline
                    ):
                        raise self._gap_error(gap) from exc  # the read timeout set to `gap`
                    raise transport_error(exc, self._request, self._stack) from exc
                try:
                    # A network chunk that is one whole event, as servers mostly send
                    # them, gives its data alone: no event to build, queue and take back.
                    text = self._decoder.whole_data(data)
                    if text is not None:
                        break
                    events.extend(self._decoder.feed(data))
                except EventTooLargeError as exc:
                    raise self._too_large(exc) from None
                if gap is not None and not events and time.monotonic() > deadline:
                    raise self._gap_error(gap)
            else:
                text = events.popleft().data
            if text == "[DONE]":
                # Anything after [DONE] is ignored; the connection goes back to the pool now.
                self._done = True
                await self._drain()
                await self.aclose()
                raise StopAsyncIteration
            try:
                return parse(text)
            except APIStatusError:
                # An error event: the server ends the body after it (with [DONE], mostly).
                # Read to its end, as after [DONE], so that the connection is reused.
                self._done = True
                await self._drain()
                await self.aclose()
                raise
        except APIError as error:
            redact_key(error)  # a server may quote the key back in an error event
            raise

    def _flush(self) -> list[ServerSentEvent]:
        try:
            return self._decoder.flush()
        except EventTooLargeError as exc:
            raise self._too_large(exc) from None

    def _gap_error(self, gap: float) -> APITimeoutError:
        return APITimeoutError(
            f"the stream from {self._request.url} sent no event for more than "
            f"attempt_timeout={gap:g} s; pass ChatClient(attempt_timeout=...) to wait "
            "longer (None: no limit)",
            request=self._request,
        )

    def _too_large(self, exc: EventTooLargeError) -> APIResponseTooLargeError:
        return APIResponseTooLargeError(
            f"the stream from {self._request.url} sent an event over max_event_bytes="
            f"{exc.limit:,} bytes; pass ChatClient(max_event_bytes=...) to allow larger "
            "events (None: no limit)",
            request=self._request,
            limit=exc.limit,
            setting="max_event_bytes",
        )

    async def _drain(self) -> None:
        """Read the body to its end, discarding it: normally only the end of the chunked
        encoding follows [DONE]. A response read to the end lets httpx return the
        connection to the pool (one closed early is dropped) and finishes httpx's byte
        iterators (trio warns about unfinished ones). A server that keeps sending or
        stalls after [DONE] is cut off after a second or 64 KiB."""
        if self._bytes is None:
            return
        received = 0
        with self._deadlines.move_on_after(_DRAIN_TIMEOUT):
            try:
                async for data in self._bytes:
                    received += len(data)
                    if received > _DRAIN_LIMIT:
                        break
            except self._stack.http_error:
                pass  # nothing after [DONE] matters

    def _chunk(self, data: str) -> ChatCompletionChunk:
        """The chunk of an event's data, validated (the public iteration)."""
        assert self.response is not None
        try:
            chunk = ChatCompletionChunk.model_validate_json(data)
        except ValidationError as exc:
            body = self._body(data)
            if isinstance(body, dict) and body.get("error") is not None:
                raise stream_error(self.response, body) from None
            raise self._invalid(exc, body) from None
        extra = chunk.__pydantic_extra__
        if extra and extra.get("error") is not None:
            # OpenRouter ends a 200 stream with a chunk that has both ordinary
            # choices and an error: the error wins, as in the official SDK.
            raise stream_error(self.response, from_json(data))
        for choice in chunk.choices:
            if choice.finish_reason:  # not "": Snowflake's stub of one
                self._finished = True
        return chunk

    def _plain(self, data: str) -> PlainChunk | ChatCompletionChunk:
        """The chunk of an event's data as `plain_chunks` yields it: the same checks and errors
        as `_chunk`, with the model built only for a chunk `plain_chunk` turns down."""
        assert self.response is not None
        body = self._body(data)
        if type(body) is dict and body.get("error") is not None:
            raise stream_error(self.response, body)  # as in `_chunk`
        plain = plain_chunk(body)
        if plain is None:
            try:
                # From the text again, not `body`: JSON mode's errors are `_chunk`'s.
                chunk = ChatCompletionChunk.model_validate_json(data)
            except ValidationError as exc:
                raise self._invalid(exc, body) from None
            for choice in chunk.choices:
                if choice.finish_reason:
                    self._finished = True
            return chunk
        for choice in plain.get("choices", ()):
            if choice.get("finish_reason"):
                self._finished = True
        return plain

    def _body(self, data: str) -> Any:
        """An event's data as JSON."""
        try:
            return from_json(data)
        except ValueError:
            secrets = request_secrets(self._request)
            raise APIResponseValidationError(
                f"stream event from {display_url(self._request.url)} is not JSON: "
                f"{quote(data, secrets, 200)!r}",
                request=self._request,
                body=scrub(data, secrets),
            ) from None

    def _invalid(self, error: ValidationError, body: Any) -> APIResponseValidationError:
        url = display_url(self._request.url)
        secrets = request_secrets(self._request)
        first = error.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(chunk)"
        return APIResponseValidationError(
            f"stream event from {url} is not a valid chunk: {loc}: {first['msg']}",
            request=self._request,
            body=scrub_value(body, secrets),
        )


class _PlainChunks:
    """`ChatStream.plain_chunks`: a class rather than an async generator, which would
    cost a finalizer hook per stream and need closing when left early."""

    __slots__ = ("_stream",)

    def __init__(self, stream: ChatStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _PlainChunks:
        return self

    def __anext__(self) -> Awaitable[PlainChunk | ChatCompletionChunk]:
        stream = self._stream
        if stream._first is not None:
            first, stream._first = stream._first, None
            return _ready(first)
        return stream._next_chunk(stream._plain)


async def _ready(value: T) -> T:
    return value

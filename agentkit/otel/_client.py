"""The client a traced model step sends through: the run's own, with the trace's
`traceparent` added to each request and the response's id and model noted on
the `chat` span."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from agentkit._client.model import ChatModel

__all__ = ["TracedClient"]


class TracedClient:
    """`client`, for one model request under `span`.

    Args:
        client: The run's client.
        span: The `chat` span of the request.
        on_request: Called with the request's messages (for content capture), or None.
    """

    __slots__ = ("_client", "_on_request", "_span", "answered", "first_chunk_at", "response_model")

    def __init__(
        self, client: ChatModel, span: Span, on_request: Callable[[Any], None] | None
    ) -> None:
        self._client = client
        self._span = span
        self._on_request = on_request
        self.response_model: str | None = None
        """The model that answered, as the response named it."""
        self.answered = False
        """Whether a response (or a stream's first chunk) came from this client."""
        self.first_chunk_at: float | None = None
        """When a streamed response's first chunk came (`time.perf_counter()`)."""

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        headers = dict(params.get("extra_headers") or {})
        propagate.inject(headers)  # the current context is the `chat` span's
        params["extra_headers"] = headers
        if self._on_request is not None:
            self._on_request(params)
        return params

    async def create(self, **params: Any) -> Any:
        """`ChatModel.create`, traced."""
        completion = await self._client.create(**self._params(params))
        self._note(getattr(completion, "id", None), getattr(completion, "model", None))
        return completion

    def stream(self, **params: Any) -> AbstractAsyncContextManager[AsyncIterator[Any]]:
        """`ChatModel.stream`, traced: the first chunk names the response."""
        return self._stream(self._client.stream(**self._params(params)))

    @asynccontextmanager
    async def _stream(
        self, opened: AbstractAsyncContextManager[AsyncIterator[Any]]
    ) -> AsyncIterator[AsyncIterator[Any]]:
        async with opened as chunks:
            yield _Chunks(chunks, self)

    def _note(self, response_id: Any, model: Any) -> None:
        self.answered = True
        if isinstance(response_id, str) and response_id:
            self._span.set_attribute("gen_ai.response.id", response_id)
        if isinstance(model, str) and model:
            self.response_model = model
            self._span.set_attribute("gen_ai.response.model", model)

    def __getattr__(self, name: str) -> Any:
        # Anything else a run may ask of its client (its base URL, say) is the client's.
        return getattr(self._client, name)


class _Chunks:
    """A stream's chunks, passed on; the first one names the response. A class, not an
    async generator, so that a stream left early needs no closing."""

    __slots__ = ("_chunks", "_client", "_noted")

    def __init__(self, chunks: AsyncIterator[Any], client: TracedClient) -> None:
        self._chunks = chunks
        self._client = client
        self._noted = False

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> Any:
        chunk = await self._chunks.__anext__()
        if not self._noted:
            self._noted = True
            self._client.first_chunk_at = time.perf_counter()
            if isinstance(chunk, dict):  # a plain chunk (see `plain_chunks`)
                self._client._note(chunk.get("id"), chunk.get("model"))
            else:
                self._client._note(getattr(chunk, "id", None), getattr(chunk, "model", None))
        return chunk

    def plain_chunks(self) -> AsyncIterator[Any]:
        """The chunks as plain dicts when the stream gives them (`ChatStream` does), else
        as they come: a traced streamed run reads them as an untraced one does."""
        plain = getattr(self._chunks, "plain_chunks", None)
        return self if plain is None else _Chunks(plain(), self._client)

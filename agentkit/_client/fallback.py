"""`FallbackModel`: one `ChatModel` over several, moving on when one is down."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentkit._client.model import ChatModel
from agentkit._exceptions import (
    APIConnectionError,
    APIError,
    InternalServerError,
    RateLimitError,
    UserError,
)
from agentkit._wire.messages import Message

if TYPE_CHECKING:
    from agentkit._wire.chunks import ChatCompletionChunk
    from agentkit._wire.responses import ChatCompletion

__all__ = ["FallbackAttempt", "FallbackModel", "is_outage"]

logger = logging.getLogger("agentkit")


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the endpoint is down rather than that the request was
    wrong: no connection, a timeout, a 5xx, or a 429 (after the client's retries)."""
    return isinstance(error, (APIConnectionError, InternalServerError, RateLimitError))


class FallbackAttempt:
    """One endpoint tried for one request.

    Attributes:
        endpoint: Where the request went (a base URL without secrets, and the model).
        error: Why it failed (`"RateLimitError: ..."`); None for the one that answered.
    """

    __slots__ = ("endpoint", "error")

    def __init__(self, endpoint: str, error: str | None) -> None:
        self.endpoint = endpoint
        self.error = error

    def __repr__(self) -> str:
        return f"FallbackAttempt(endpoint={self.endpoint!r}, error={self.error!r})"


class FallbackModel:
    """A `ChatModel` that sends each request to the first of its models that is up.

    A request goes to the first model; when it fails with an outage (a
    connection error, a timeout, a 5xx, or a 429, each after that client's own
    retries) it goes to the next, and so on. An error the request itself caused
    (any other 4xx, a malformed message) is raised at once: another endpoint
    would refuse it too. When every model is down, the last error is raised,
    and each failure is logged with its endpoint. A streamed request moves on
    only while opening; once chunks have arrived it stays where it is.

    In an agent run, each endpoint that failed is reported as a `ModelFallback`
    event, and `ModelRequestEnd.endpoint` names the one that answered.

    Args:
        models: The models in order of preference: a `ChatClient` (or any
            `ChatModel`), or a `(client, model_name)` pair to send another
            model name to that endpoint.

    Example:
        >>> model = FallbackModel([ChatClient(), (ChatClient(base_url=BACKUP), "llama-3.3-70b")])
        >>> agent = Agent("gpt-4o-mini", client=model)
    """

    def __init__(self, models: Sequence[ChatModel | tuple[ChatModel, str]]) -> None:
        entries: list[tuple[ChatModel, str | None]] = []
        for item in models:
            client, name = item if isinstance(item, tuple) else (item, None)
            if not (hasattr(client, "create") and hasattr(client, "stream")):
                raise UserError(
                    f"FallbackModel takes ChatModels (such as ChatClient), got {client!r}"
                )
            if name is not None and (not isinstance(name, str) or not name):
                raise UserError(f"a model name must be a non-empty string, got {name!r}")
            entries.append((client, name))
        if not entries:
            raise UserError("FallbackModel needs at least one model")
        self.models = tuple(entries)

    def __repr__(self) -> str:
        return f"FallbackModel([{', '.join(_endpoint(c, n) for c, n in self.models)}])"

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        attempts: list[FallbackAttempt] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """One complete response from the first model that is up.

        Args:
            model: The model name, for the models given without one of their own.
            messages: The conversation.
            attempts: If given, a list that gets one `FallbackAttempt` per model
                tried, the last one the model that answered.
            **params: Request fields, as `ChatClient.create` takes them.
        """
        last = len(self.models) - 1
        for index, (client, name) in enumerate(self.models):
            endpoint = _endpoint(client, name or model)
            try:
                completion = await client.create(model=name or model, messages=messages, **params)
            except APIError as exc:
                if index == last or not is_outage(exc):
                    raise
                _moved_on(endpoint, exc, attempts)
                continue
            if attempts is not None:
                attempts.append(FallbackAttempt(endpoint, None))
            return completion
        raise AssertionError("unreachable: the last model's error is raised above")

    @asynccontextmanager
    async def stream(
        self,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        attempts: list[FallbackAttempt] | None = None,
        **params: Any,
    ) -> AsyncIterator[AsyncIterator[ChatCompletionChunk]]:
        """A streamed response from the first model that opens one; see `create`."""
        last = len(self.models) - 1
        for index, (client, name) in enumerate(self.models):
            endpoint = _endpoint(client, name or model)
            opened = client.stream(model=name or model, messages=messages, **params)
            try:
                chunks = await opened.__aenter__()
            except APIError as exc:
                if index == last or not is_outage(exc):
                    raise
                _moved_on(endpoint, exc, attempts)
                continue
            if attempts is not None:
                attempts.append(FallbackAttempt(endpoint, None))
            failed: BaseException | None = None
            try:
                yield chunks
            except BaseException as exc:
                failed = exc
                raise
            finally:
                if failed is None:
                    await opened.__aexit__(None, None, None)
                else:
                    await opened.__aexit__(type(failed), failed, failed.__traceback__)
            return


def _moved_on(endpoint: str, error: APIError, attempts: list[FallbackAttempt] | None) -> None:
    text = f"{type(error).__name__}: {error}"
    logger.warning("model endpoint %s is down (%s); trying the next one", endpoint, text)
    if attempts is not None:
        attempts.append(FallbackAttempt(endpoint, text))


def _endpoint(client: Any, model: str | None) -> str:
    """Where a request goes, for messages: the base URL without user info or query
    (either may hold a secret), or the client's type; and the model name."""
    url = getattr(client, "base_url", None)
    if isinstance(url, str):
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    else:
        where = type(client).__name__
    return where if model is None else f"{where} ({model})"

"""`ChatModel`: what a run needs of a client, so a test double can stand in for `ChatClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Annotations only: the chunk models load with the first streamed request.
    from agentkit._wire.chunks import ChatCompletionChunk
    from agentkit._wire.responses import ChatCompletion

__all__ = ["ChatModel"]


class ChatModel(Protocol):
    """What an agent needs of its client: `ChatClient`, or a test double such as
    `agentkit.testing.FunctionModel`: an async `create(*, model, messages, **params)`
    returning a `ChatCompletion`, and `stream(...)` with the same arguments returning
    an async context manager that iterates `ChatCompletionChunk`s."""

    @property
    def create(self) -> Callable[..., Awaitable[ChatCompletion]]:
        """One complete response; see `ChatClient.create`."""
        ...

    @property
    def stream(
        self,
    ) -> Callable[..., AbstractAsyncContextManager[AsyncIterator[ChatCompletionChunk]]]:
        """A streamed response; see `ChatClient.stream`."""
        ...

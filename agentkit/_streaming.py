"""`StreamedRun`: a run whose events arrive as an async iterator while it goes on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from agentkit._exceptions import UserError
from agentkit._loop import RunState
from agentkit._messages import Message

if TYPE_CHECKING:
    # Only annotations use these; at run time anyio loads them with the first stream.
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from agentkit._stream_events import StreamEvent

__all__ = ["StreamedRun", "iterate_sync"]

OutputT = TypeVar("OutputT")

_BUFFER = 64
"""Events the run may get ahead of its reader before it waits for them to be read."""


@dataclass(frozen=True)
class _Failed:
    error: Exception


class StreamedRun(Generic[OutputT]):
    """A run in progress, made by `Agent.run_stream`; iterate it for its events.

    The run goes on in a task of its own; its events are buffered for the
    reader. The last event is `RunComplete` with the `RunResult`; if the run
    fails, iterating raises its error instead. Leaving the `async with` block
    early (by `break`, an exception or cancellation) cancels the run, closes
    its HTTP response, and still answers every tool call in the history.

    Attributes:
        result: The `RunResult`, once the run is complete.
        state: The run's state as it goes on; `state.messages` is the history so
            far, which answers every tool call once the block is left.
    """

    def __init__(
        self,
        execute: Callable[[Callable[[Any], Awaitable[None]]], Awaitable[Any]],
        state: RunState,
    ) -> None:
        self._execute = execute
        self.state = state
        self.result: Any = None
        self._task_group: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[StreamEvent | _Failed] | None = None

    async def __aenter__(self) -> StreamedRun[OutputT]:
        if self._task_group is not None:
            raise UserError("a streamed run can be entered only once")
        send: MemoryObjectSendStream[StreamEvent | _Failed]
        send, self._receive = anyio.create_memory_object_stream(_BUFFER)
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._produce, send)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None and self._receive is not None
        # Whatever ended the block (the end of the events, a break, an error or a
        # cancellation), the run stops here; its own errors reached the reader as events.
        self._task_group.cancel_scope.cancel()
        try:
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._receive.close()
        return None

    @property
    def messages(self) -> list[Message]:
        """The conversation so far (`state.messages`)."""
        return self.state.messages

    def __aiter__(self) -> StreamedRun[OutputT]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._receive is None:
            raise UserError("iterate a streamed run inside `async with agent.run_stream(...)`")
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        if isinstance(item, _Failed):
            raise item.error
        return item

    async def _produce(self, send: MemoryObjectSendStream[StreamEvent | _Failed]) -> None:
        # The stream's events load with the first streamed run, not with `Agent`.
        from agentkit._stream_events import RunComplete

        async with send:
            try:
                result = await self._execute(send.send)
            except Exception as exc:
                # Raised to the reader in its own task, not as a task-group exception group.
                await send.send(_Failed(exc))
                return
            self.result = result
            await send.send(RunComplete(result))


_END = object()


def iterate_sync(stream: AbstractAsyncContextManager[Any]) -> Iterator[Any]:
    """Iterate an async streamed run from synchronous code, on an event loop in a thread.

    Closing the iterator early (leaving a `for` loop) cancels the run.
    """
    # Imported here: a blocking portal (threads, futures) is for synchronous callers only.
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal, portal.wrap_async_context_manager(stream) as events:

        async def next_event() -> Any:
            try:
                return await events.__anext__()
            except StopAsyncIteration:
                return _END

        while (event := portal.call(next_event)) is not _END:
            yield event

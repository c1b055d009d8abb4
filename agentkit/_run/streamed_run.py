"""`StreamedRun`: a run whose events arrive as an async iterator while it goes on."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from agentkit._exceptions import UserError
from agentkit._run import concurrency
from agentkit._run.state import RunState
from agentkit._wire.messages import Message

if TYPE_CHECKING:
    from agentkit._run.events import EventHandler, StreamEvent
    from agentkit._run.result import Paused, RunResult

__all__ = ["StreamedRun", "iterate_sync"]

OutputT = TypeVar("OutputT")

_BUFFER = 64
"""Events the run may get ahead of its reader before it waits for them to be read."""


@dataclass(frozen=True)
class _Failed:
    error: Exception


class _Channel:
    """The events, from the run's task to its reader, at most `size` of them waiting.

    anyio's memory object streams would do, but they yield to the event loop on
    every send and every receive: two trips through the loop per event, and a
    streamed run has dozens of events per answer. Here only a reader with
    nothing to read, or a run `size` events ahead, waits, on an event made by
    `new_event` (the concurrency backend's: a bare future on asyncio).
    """

    def __init__(self, size: int, new_event: Callable[[], concurrency.Event] = anyio.Event) -> None:
        self._items: deque[StreamEvent | _Failed] = deque()
        self._size = size
        self._new_event = new_event
        self._closed = False
        self._readable: concurrency.Event | None = None
        self._writable: concurrency.Event | None = None

    def send(self, item: StreamEvent | _Failed) -> Awaitable[None] | None:
        """Queue `item`; only when `size` events wait already, return an awaitable to await.

        An event handler as `emit` calls it: nothing to await on the common path.
        """
        if len(self._items) >= self._size:
            return self._send_when_read(item)
        self._items.append(item)
        if self._readable is not None:
            self._readable.set()
            self._readable = None
        return None

    async def _send_when_read(self, item: StreamEvent | _Failed) -> None:
        while len(self._items) >= self._size:
            self._writable = self._new_event()
            await self._writable.wait()
        self.send(item)  # there is room now: queued at once

    def close(self) -> None:
        """No more events: the reader gets `anyio.EndOfStream` once it has read them."""
        self._closed = True
        if self._readable is not None:
            self._readable.set()
            self._readable = None

    def receive_nowait(self) -> StreamEvent | _Failed | None:
        """The next event if one is waiting, else None."""
        if not self._items:
            return None
        item = self._items.popleft()
        if self._writable is not None:
            self._writable.set()
            self._writable = None
        return item

    async def receive(self) -> StreamEvent | _Failed:
        while not self._items:
            if self._closed:
                # The run's task ended without a last event only when it was cancelled,
                # by a scope that covers the reader too: let that cancellation reach it.
                await anyio.lowlevel.checkpoint()
                raise anyio.EndOfStream
            self._readable = self._new_event()
            await self._readable.wait()
        item = self.receive_nowait()
        assert item is not None
        return item


class StreamedRun(Generic[OutputT]):
    """A run in progress, made by `Agent.run_stream`; iterate it for its events.

    The run goes on in a task of its own; its events are buffered for the
    reader. The last event is `RunComplete` with the `RunResult`, or `RunPaused`
    with the `Paused` result when the run pauses (after a `ToolCallPending` per
    pending call); if the run fails, iterating raises its error instead. Leaving the `async with` block
    early (by `break`, an exception or cancellation) cancels the run, closes
    its HTTP response, and still answers every tool call in the history.

    Attributes:
        result: The `RunResult`, once the run is complete.
        paused: The `Paused` result, once the run has paused.
        state: The run's state as it goes on; `state.messages` is the history so
            far, which answers every tool call once the block is left.
    """

    def __init__(
        self,
        execute: Callable[[EventHandler], Awaitable[RunResult[OutputT] | Paused]],
        state: RunState,
    ) -> None:
        self._execute = execute
        self.state = state
        self.result: RunResult[OutputT] | None = None
        self.paused: Paused | None = None
        self._channel: _Channel | None = None
        self._task: concurrency.Task | None = None

    async def __aenter__(self) -> StreamedRun[OutputT]:
        if self._channel is not None:
            raise UserError("a streamed run can be entered only once")
        backend = concurrency.current()
        channel = self._channel = _Channel(_BUFFER, backend.new_event)
        self._task = await backend.start(lambda: self._produce(channel))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._channel is not None
        # Whatever ended the block (the end of the events, a break, an error or a
        # cancellation), the run stops here; its own errors reached the reader as events.
        try:
            assert self._task is not None
            await self._task.stop()
        finally:
            self._channel.close()
        return None

    @property
    def messages(self) -> list[Message]:
        """The conversation so far (`state.messages`)."""
        return self.state.messages

    def __aiter__(self) -> StreamedRun[OutputT]:
        return self

    async def __anext__(self) -> StreamEvent:
        channel = self._channel
        if channel is None:
            raise UserError("iterate a streamed run inside `async with agent.run_stream(...)`")
        try:
            item = channel.receive_nowait()
            if item is None:
                item = await channel.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        if isinstance(item, _Failed):
            raise item.error
        return item

    async def _produce(self, channel: _Channel) -> None:
        # The stream's events load with the first streamed run, not with `Agent`.
        from agentkit._run.events import RunComplete, RunPaused
        from agentkit._run.result import Paused

        try:
            try:
                result = await self._execute(channel.send)
            except Exception as exc:
                # Raised to the reader in its own task, not as a task-group exception group.
                last: StreamEvent | _Failed = _Failed(exc)
            else:
                if isinstance(result, Paused):
                    self.paused = result
                    last = RunPaused(result)
                else:
                    self.result = result
                    last = RunComplete(result)
            waiting = channel.send(last)  # the last item is not an event: emit() does not take it
            if waiting is not None:
                await waiting
        finally:
            # Also when cancelled: a reader still iterating sees the end, not a hang.
            channel.close()


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

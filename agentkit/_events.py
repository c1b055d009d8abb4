"""Events of a run, for observing it without streaming.

Pass `event_handler=` to `Agent` or to `Agent.run`: a function, sync or async,
called with each event in the order things happen. An exception raised by the
handler ends the run. The events only a streamed run has are in `_stream_events`,
which loads with the first streamed run.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from agentkit._messages import AssistantMessage
from agentkit._responses import Usage

if TYPE_CHECKING:
    from agentkit._stream_events import StreamEvent

__all__ = [
    "EventHandler",
    "ModelRequestEnd",
    "ModelRequestStart",
    "RunEvent",
    "ToolCallEnd",
    "ToolCallStart",
    "emit",
]


@dataclass(frozen=True)
class ModelRequestStart:
    """A request to the model is about to be sent."""

    turn: int
    """1 for the first request of the run."""
    message_count: int
    """Messages in the request."""


@dataclass(frozen=True)
class ModelRequestEnd:
    """The model answered."""

    turn: int
    message: AssistantMessage
    finish_reason: str | None
    usage: Usage
    """Usage of this request alone."""
    latency: float
    """Seconds from sending the request to the whole answer."""


@dataclass(frozen=True)
class ToolCallStart:
    """A tool call is about to run."""

    turn: int
    tool_call_id: str
    tool_name: str
    arguments: str
    """The arguments as the JSON text the model sent."""


@dataclass(frozen=True)
class ToolCallEnd:
    """A tool call finished, with a result or an error that goes back to the model."""

    turn: int
    tool_call_id: str
    tool_name: str
    arguments: str
    result: str
    """The content of the tool message sent to the model."""
    error: str | None
    """The error text when the call failed, else None."""
    duration: float
    """Seconds the call took."""


RunEvent = Union[ModelRequestStart, ModelRequestEnd, ToolCallStart, ToolCallEnd]  # noqa: UP007
"""Any event of a run."""


EventHandler = Callable[[Any], Union[Awaitable[None], None]]  # noqa: UP007
"""A function called with each event (a `RunEvent`, or a `StreamEvent` in a
streamed run); it may be async."""


async def emit(handler: EventHandler | None, event: StreamEvent) -> None:
    """Call `handler` with `event`, awaiting it if it is async."""
    if handler is None:
        return
    result = handler(event)
    if result is not None and inspect.isawaitable(result):
        await result

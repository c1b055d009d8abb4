"""Events of a run, for observing it without streaming.

Pass `event_handler=` to `Agent` or to `Agent.run`: a function, sync or async,
called with each event in the order things happen. An exception raised by the
handler ends the run. A streamed run has these and more: the pieces of each
answer as they arrive, and `RunComplete` with the result at the end.

The module loads with the first run that has a handler or streams.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from agentkit._wire.messages import AssistantMessage
from agentkit._wire.responses import Usage

if TYPE_CHECKING:
    from agentkit._run.result import Paused, RunResult

__all__ = [
    "EventHandler",
    "HandedOff",
    "ModelFallback",
    "ModelRequestEnd",
    "ModelRequestStart",
    "OutputDelta",
    "ReasoningDelta",
    "RefusalDelta",
    "RunComplete",
    "RunEvent",
    "RunPaused",
    "StreamEvent",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallComplete",
    "ToolCallEnd",
    "ToolCallOpened",
    "ToolCallPending",
    "ToolCallStart",
    "emit",
]

OutputT = TypeVar("OutputT")


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
    endpoint: str | None = None
    """The endpoint that answered, when the client is a `FallbackModel`."""
    rate_limit_wait: float = 0.0
    """Seconds the request waited for the client's `RateLimit` (all attempts), part of
    `latency`."""


@dataclass(frozen=True)
class ModelFallback:
    """An endpoint of a `FallbackModel` was down; the request went on to the next."""

    turn: int
    endpoint: str
    """The endpoint that failed (a base URL without secrets, and the model)."""
    error: str
    """Why: the error's type and message."""


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


@dataclass(frozen=True)
class HandedOff:
    """The run moved to another agent, which answers from the next request on."""

    turn: int
    tool_call_id: str
    """The call that handed the run over."""
    agent: str
    """The name of the agent the run moved to."""


@dataclass(frozen=True)
class ToolCallPending:
    """A call the run pauses on, waiting for approval or an outside result: one
    event per pending call, at the pause (see `Paused.pending`)."""

    turn: int
    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any]
    """The arguments, validated, as JSON values."""
    kind: str
    """`"approval"` or `"external"`."""


RunEvent = Union[  # noqa: UP007
    ModelRequestStart,
    ModelRequestEnd,
    ModelFallback,
    ToolCallStart,
    ToolCallEnd,
    HandedOff,
    ToolCallPending,
]
"""Any event of a run."""


# --- only in a streamed run ---------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text."""

    turn: int
    text: str


@dataclass(frozen=True)
class RefusalDelta:
    """A piece of a refusal."""

    turn: int
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning (`reasoning_content` or `reasoning`), which
    some providers stream before the answer; it is never part of the output."""

    turn: int
    text: str


@dataclass(frozen=True)
class ToolCallOpened:
    """The model started a tool call; its id and name are known, its arguments are coming."""

    turn: int
    index: int
    """Position of the call in the assistant message."""
    tool_call_id: str
    tool_name: str


@dataclass(frozen=True)
class ToolCallArgumentsDelta:
    """A piece of a tool call's arguments (JSON text, cut anywhere)."""

    turn: int
    index: int
    delta: str


@dataclass(frozen=True)
class ToolCallComplete:
    """The model finished a tool call; it is about to run."""

    turn: int
    index: int
    tool_call_id: str
    tool_name: str
    arguments: str


@dataclass(frozen=True)
class OutputDelta:
    """The structured output parsed so far from a partial answer (`output_type` runs)."""

    turn: int
    partial: Any
    """The JSON value parsed from the text so far; incomplete strings and
    objects are cut short rather than rejected. Validated only at the end."""


@dataclass(frozen=True)
class RunComplete(Generic[OutputT]):
    """The run is over; the last event of a stream."""

    result: RunResult[OutputT]


@dataclass(frozen=True)
class RunPaused:
    """The run paused; the last event of a stream that ends paused. Continue it with
    `Agent.resume_stream(paused.state, ...)` (or `resume`)."""

    paused: Paused


StreamEvent = Union[  # noqa: UP007
    ModelRequestStart,
    ModelRequestEnd,
    ModelFallback,
    ToolCallStart,
    ToolCallEnd,
    HandedOff,
    ToolCallPending,
    TextDelta,
    RefusalDelta,
    ReasoningDelta,
    ToolCallOpened,
    ToolCallArgumentsDelta,
    ToolCallComplete,
    OutputDelta,
    RunComplete[Any],
    RunPaused,
]
"""Any event of a streamed run: the run events plus the pieces of each answer."""


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

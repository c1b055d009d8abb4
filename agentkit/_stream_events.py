"""Events only a streamed run has: the pieces of each answer, and its end.

Apart from `_events` so that a program that never streams does not build them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Union

from agentkit._events import ModelRequestEnd, ModelRequestStart, ToolCallEnd, ToolCallStart

if TYPE_CHECKING:
    from agentkit._agent import RunResult

OutputT = TypeVar("OutputT")

__all__ = [
    "OutputDelta",
    "RefusalDelta",
    "RunComplete",
    "StreamEvent",
    "TextDelta",
    "ToolCallArgumentsDelta",
    "ToolCallComplete",
    "ToolCallOpened",
]


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


StreamEvent = Union[  # noqa: UP007
    ModelRequestStart,
    ModelRequestEnd,
    ToolCallStart,
    ToolCallEnd,
    TextDelta,
    RefusalDelta,
    ToolCallOpened,
    ToolCallArgumentsDelta,
    ToolCallComplete,
    OutputDelta,
    RunComplete[Any],
]
"""Any event of a streamed run: the run events plus the pieces of each answer."""

"""Stream chunks → one assistant message, with events for each piece as it arrives.

`streamed_response` is the model step of a streamed run; `Assembler` puts the
chunks of one response together. The module loads with the first streamed
request, so a program that never streams does not build it.

Tool-call deltas are put together by `index`. OpenAI sends each call's id and
name in its first delta and the arguments in many pieces after it; other
OpenAI-compatible servers bend that, and the assembler accepts:

- a delta without `index` when only one call can be meant (it continues the
  call it names by id, else the call seen last, else starts the first one);
- two deltas for the same index in one chunk (merged in order, none dropped);
- an `id` or `name` that arrives after the first piece of the arguments;
- the same index reused with a new id for the next call (a new call);
- a name repeated in every delta (kept once).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from agentkit._client.model import ChatModel
from agentkit._run.events import (
    EventHandler,
    OutputDelta,
    RefusalDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallComplete,
    ToolCallOpened,
    emit,
)
from agentkit._run.state import ModelResponse
from agentkit._tools.output import OutputSpec
from agentkit._wire.chunks import ChatCompletionChunk, ToolCallDelta
from agentkit._wire.messages import AssistantMessage, FunctionCall, Message, ToolCall
from agentkit._wire.responses import Usage

__all__ = ["Assembler", "Piece", "streamed_response"]

_NO_VALUE = object()
_EAGER_PARSE = 2048
"""Up to this many characters, structured output is parsed again on every text delta."""

Piece = TextDelta | RefusalDelta | ToolCallOpened | ToolCallArgumentsDelta
"""The events a chunk adds: pieces of text, of a refusal, or of a tool call."""


@dataclass
class _Call:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    opened: bool = False


class Assembler:
    """Accumulates the chunks of one streamed response (choice 0) of turn `turn`."""

    def __init__(self, turn: int) -> None:
        self._turn = turn
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._calls: list[_Call] = []
        self._by_index: dict[int, int] = {}  # the server's index → position in _calls
        # A call's id → its position, for deltas that name their call by id alone: a
        # scan of every call per new id made many such calls quadratic.
        self._by_id: dict[str, int] = {}
        self._last: int | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: ChatCompletionChunk) -> list[Piece]:
        """Take one chunk; return the events for what it added, in order."""
        if chunk.usage is not None:
            self.usage = chunk.usage
        pieces: list[Piece] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            # An empty string still counts: the message then has "" where a
            # non-streaming response has "", rather than null.
            if delta.content is not None:
                self._text.append(delta.content)
                if delta.content:
                    pieces.append(TextDelta(self._turn, delta.content))
            if delta.refusal is not None:
                self._refusal.append(delta.refusal)
                if delta.refusal:
                    pieces.append(RefusalDelta(self._turn, delta.refusal))
            for call_delta in delta.tool_calls or ():
                pieces.extend(self._tool_delta(call_delta))
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return pieces

    def _tool_delta(self, delta: ToolCallDelta) -> list[Piece]:
        position = self._position(delta)
        call = self._calls[position]
        self._last = position
        if delta.id and not call.id:
            call.id = delta.id
            self._by_id.setdefault(delta.id, position)  # the first call with an id keeps it
        function = delta.function
        if function is not None and function.name and not call.name:
            call.name = function.name
        pieces: list[Piece] = []
        if not call.opened and call.id and call.name:
            call.opened = True
            pieces.append(ToolCallOpened(self._turn, position, call.id, call.name))
        if function is not None and function.arguments:
            call.arguments.append(function.arguments)
            pieces.append(ToolCallArgumentsDelta(self._turn, position, function.arguments))
        return pieces

    def _position(self, delta: ToolCallDelta) -> int:
        """Which call a delta continues, or a new one."""
        name = delta.function.name if delta.function is not None else None
        if delta.index is not None and delta.index in self._by_index:
            position = self._by_index[delta.index]
            call = self._calls[position]
            if not _starts_new(call, delta.id, name):
                return position
        elif delta.index is None:
            if delta.id:
                known = self._by_id.get(delta.id)
                if known is not None:
                    return known
            if self._last is not None and not _starts_new(self._calls[self._last], delta.id, name):
                return self._last
        self._calls.append(_Call())
        position = len(self._calls) - 1
        if delta.index is not None:
            self._by_index[delta.index] = position
        return position

    def message(self) -> AssistantMessage:
        """The assistant message, as a non-streaming response would have given it."""
        calls = [
            ToolCall(
                id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                function=FunctionCall(name=call.name or "", arguments="".join(call.arguments)),
            )
            for call in self._calls
        ]
        return AssistantMessage(
            content="".join(self._text) if self._text else None,
            refusal="".join(self._refusal) if self._refusal else None,
            tool_calls=calls or None,
        )

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._text)


def _starts_new(call: _Call, new_id: str | None, new_name: str | None) -> bool:
    """A delta whose id or name contradicts the call's is the start of the next call."""
    if new_id and call.id and new_id != call.id:
        return True
    return bool(new_name and call.name and new_name != call.name and call.arguments)


async def streamed_response(
    client: ChatModel,
    *,
    model: str,
    messages: Sequence[Message],
    params: dict[str, Any],
    turn: int,
    events: EventHandler | None,
    output: OutputSpec[Any],
) -> ModelResponse:
    """Stream one answer, emitting each piece; return the message, finish reason and usage.

    The message is the one a non-streaming request would have returned. If the
    stream breaks, the error propagates and nothing is returned: no half
    message reaches the history.
    """
    assembler = Assembler(turn)
    partial: Any = _NO_VALUE
    # Characters of text so far, and when it was last parsed for OutputDelta events.
    size = parsed = 0
    params = {**params, "stream_options": {"include_usage": True}}
    async with client.stream(model=model, messages=messages, **params) as chunks:
        async for chunk in chunks:
            pieces = assembler.feed(chunk)
            if events is not None:
                for piece in pieces:
                    # `emit`, inlined: this runs for every piece of every answer, and a
                    # handler that returns None (the run's own channel, mostly) is done.
                    result = events(piece)
                    if result is not None and inspect.isawaitable(result):
                        await result
            if not output.is_text:
                for piece in pieces:
                    if isinstance(piece, TextDelta):
                        size += len(piece.text)
                # Parsing reads the whole text: done on every delta, a long answer costs
                # time quadratic in its length. Past the first few KiB, the text is parsed
                # again only once it has grown by an eighth, which keeps the total linear.
                if size > parsed and size - parsed >= (parsed - _EAGER_PARSE) >> 3:
                    parsed = size
                    value = _partial(assembler.text, output)
                    if value is not _NO_VALUE and value != partial:
                        partial = value
                        await emit(events, OutputDelta(turn, value))
    if size > parsed:
        # The text that came since the last parse: the last OutputDelta has all of it.
        value = _partial(assembler.text, output)
        if value is not _NO_VALUE and value != partial:
            await emit(events, OutputDelta(turn, value))
    message = assembler.message()
    for index, call in enumerate(message.tool_calls or ()):
        assert isinstance(call, ToolCall)
        await emit(
            events,
            ToolCallComplete(turn, index, call.id, call.function.name, call.function.arguments),
        )
    return ModelResponse(message, assembler.finish_reason, assembler.usage or Usage())


def _partial(text: str, output: OutputSpec[Any]) -> Any:
    """The JSON value in `text` so far, or _NO_VALUE while there is none."""
    try:
        value = from_json(text, allow_partial=True)
    except ValueError:
        return _NO_VALUE
    return output.unwrap(value)

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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from agentkit._client.model import ChatModel
from agentkit._run.events import (
    EventHandler,
    OutputDelta,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallComplete,
    ToolCallOpened,
    emit,
)
from agentkit._run.state import ModelResponse
from agentkit._tools.output import OutputSpec
from agentkit._wire.chunks import ChatCompletionChunk, PlainChunk, as_plain
from agentkit._wire.messages import (
    AnyToolCall,
    AssistantMessage,
    FunctionCall,
    Message,
    ToolCall,
    generated_call_id,
)
from agentkit._wire.responses import Usage

__all__ = ["Assembler", "Piece", "streamed_response"]

_NO_VALUE = object()
_EAGER_PARSE = 2048
"""Up to this many characters, structured output is parsed again on every text delta."""

Piece = TextDelta | RefusalDelta | ReasoningDelta | ToolCallOpened | ToolCallArgumentsDelta
"""The events a chunk adds: pieces of text, of a refusal, of reasoning, or of a tool call."""


@dataclass
class _Call:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    opened: bool = False
    extra_content: Any = None


class Assembler:
    """Accumulates the chunks of one streamed response (choice 0) of turn `turn`."""

    def __init__(self, turn: int) -> None:
        self._turn = turn
        self._text: list[str] = []
        # The content as parts, once a server has sent some (Mistral's thinking):
        # [kind, pieces] with kind "text" or "thinking", or a part kept as it came.
        self._parts: list[list[Any]] | None = None
        self._refusal: list[str] = []
        # Kept under the name the provider used, as the plain response would have it.
        self._reasoning_content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[_Call] = []
        self._by_index: dict[int, int] = {}  # the server's index → position in _calls
        # A call's id → its position, for deltas that name their call by id alone: a
        # scan of every call per new id made many such calls quadratic.
        self._by_id: dict[str, int] = {}
        self._last: int | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: PlainChunk | ChatCompletionChunk) -> list[Piece]:
        """Take one chunk; return the events for what it added, in order."""
        if not isinstance(chunk, dict):
            chunk = as_plain(chunk)
        usage = chunk.get("usage")
        if usage is not None:
            self.usage = usage
        pieces: list[Piece] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice["delta"]
            # An empty string still counts: the message then has "" where a
            # non-streaming response has "", rather than null.
            content = delta.get("content")
            if type(content) is str:
                self._text.append(content)
                if self._parts is not None:
                    self._add_part("text", content)
                if content:
                    pieces.append(TextDelta(self._turn, content))
            elif content is not None:
                pieces.extend(self._content_parts(content))
            refusal = delta.get("refusal")
            if refusal is not None:
                self._refusal.append(refusal)
                if refusal:
                    pieces.append(RefusalDelta(self._turn, refusal))
            reasoning_content, reasoning = delta.get("reasoning_content"), delta.get("reasoning")
            if reasoning_content is not None:
                self._reasoning_content.append(reasoning_content)
            if reasoning is not None:
                self._reasoning.append(reasoning)
            if reasoning_content or reasoning:
                # A server that fills in both names sends the same text twice: one event.
                pieces.append(ReasoningDelta(self._turn, reasoning_content or reasoning or ""))
            for call_delta in delta.get("tool_calls") or ():
                pieces.extend(self._tool_delta(call_delta))
            finish_reason = choice.get("finish_reason")
            if finish_reason is not None:
                self.finish_reason = finish_reason
        return pieces

    def _content_parts(self, parts: list[dict[str, Any]]) -> list[Piece]:
        if self._parts is None:
            text = "".join(self._text)
            self._parts = [["text", [text]]] if text else []
        pieces: list[Piece] = []
        for part in parts:
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                self._text.append(part["text"])
                self._add_part("text", part["text"])
                if part["text"]:
                    pieces.append(TextDelta(self._turn, part["text"]))
            elif kind == "thinking" and isinstance(part.get("thinking"), list):
                text = "".join(
                    p["text"]
                    for p in part["thinking"]
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
                self._add_part("thinking", text)
                if text:
                    pieces.append(ReasoningDelta(self._turn, text))
            else:
                self._parts.append(["other", part])
        return pieces

    def _add_part(self, kind: str, text: str) -> None:
        assert self._parts is not None
        if self._parts and self._parts[-1][0] == kind:
            self._parts[-1][1].append(text)
        elif text or kind != "text":
            # An empty string between parts (Mistral's first and last deltas) is no part.
            self._parts.append([kind, [text]])

    def _content(self) -> str | list[dict[str, Any]] | None:
        if self._parts is None:
            return "".join(self._text) if self._text else None
        # As the plain response has it: one part per run of text or of thinking.
        parts: list[dict[str, Any]] = []
        for kind, value in self._parts:
            if kind == "text":
                parts.append({"type": "text", "text": "".join(value)})
            elif kind == "thinking":
                parts.append(
                    {"type": "thinking", "thinking": [{"type": "text", "text": "".join(value)}]}
                )
            else:
                parts.append(value)
        return parts

    def _tool_delta(self, delta: dict[str, Any]) -> list[Piece]:
        function = delta.get("function") or {}
        delta_id, name = delta.get("id"), function.get("name")
        position = self._position(delta.get("index"), delta_id, name, function)
        call = self._calls[position]
        self._last = position
        if delta_id and not call.id:
            call.id = delta_id
            self._by_id.setdefault(delta_id, position)  # the first call with an id keeps it
        if call.extra_content is None:
            # Gemini's thought signature, which must go back with the call.
            call.extra_content = delta.get("extra_content")
        if name and not call.name:
            call.name = name
        pieces: list[Piece] = []
        if not call.opened and call.id and call.name:
            call.opened = True
            pieces.append(ToolCallOpened(self._turn, position, call.id, call.name))
        arguments = function.get("arguments")
        if arguments:
            call.arguments.append(arguments)
            pieces.append(ToolCallArgumentsDelta(self._turn, position, arguments))
        return pieces

    def _position(
        self, index: int | None, delta_id: str | None, name: str | None, function: dict[str, Any]
    ) -> int:
        """Which call a delta continues, or a new one."""
        if index is not None and index in self._by_index:
            position = self._by_index[index]
            call = self._calls[position]
            if not _starts_new(call, delta_id, name):
                return position
        elif index is None:
            if delta_id:
                known = self._by_id.get(delta_id)
                if known is not None:
                    return known
            if self._last is not None:
                last = self._calls[self._last]
                if not (
                    _starts_new(last, delta_id, name) or _another_whole_call(last, name, function)
                ):
                    return self._last
        self._calls.append(_Call())
        position = len(self._calls) - 1
        if index is not None:
            self._by_index[index] = position
        return position

    def message(self) -> AssistantMessage:
        """The assistant message, as a non-streaming response would have given it."""
        content = self._content()
        # Kept when the provider sent the field at all, as the plain response would be.
        reasoning_content = "".join(self._reasoning_content) if self._reasoning_content else None
        reasoning = "".join(self._reasoning) if self._reasoning else None
        message = AssistantMessage(
            content=content,
            # An empty refusal is a stub some servers put in every delta (Snowflake).
            refusal="".join(self._refusal) or None,
            reasoning_content=reasoning_content,
            reasoning=reasoning,
        )
        if not self._calls:
            return message
        # The same context as the plain path's (loop._request_form) for a call without id.
        text = content if isinstance(content, str) else ""
        context = f"{text}\0{message.reasoning_text or ''}"
        calls: list[AnyToolCall] = []
        for position, call in enumerate(self._calls):
            name, arguments = call.name or "", "".join(call.arguments)
            extra = {} if call.extra_content is None else {"extra_content": call.extra_content}
            calls.append(
                ToolCall(
                    id=call.id or generated_call_id(position, name, arguments, context),
                    function=FunctionCall(name=name, arguments=arguments),
                    **extra,
                )
            )
        message.tool_calls = calls
        return message

    def opened(self, position: int) -> bool:
        """Whether a `ToolCallOpened` event went out for the call at `position`."""
        return self._calls[position].opened

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._text)


def _another_whole_call(call: _Call, name: str | None, function: dict[str, Any]) -> bool:
    """Without index or id, a delta naming the same tool again starts another call when
    the call so far is complete JSON and the delta brings arguments of its own: Gemini
    sends parallel calls of one tool so. (A server that repeats the name in every
    delta of one call sends it with pieces of arguments that are not complete yet.)"""
    if not name or not function.get("arguments") or not call.arguments:
        return False
    try:
        from_json("".join(call.arguments))
    except ValueError:
        return False
    return True


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
    async with client.stream(model=model, messages=messages, **params) as stream:
        # ChatClient's stream (and wrappers that pass it on) also gives its chunks as
        # plain dicts, sparing the models of every delta; any other gives models.
        plain = getattr(stream, "plain_chunks", None)
        chunks: AsyncIterator[PlainChunk | ChatCompletionChunk] = (
            stream if plain is None else plain()
        )
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
        if not assembler.opened(index):
            # A call that never got an id from the server has one only now.
            await emit(events, ToolCallOpened(turn, index, call.id, call.function.name))
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

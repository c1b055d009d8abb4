"""The model step of a streamed run: chunks in, events out, one assistant message at the end."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

from agentkit._events import EventHandler, emit
from agentkit._messages import AssistantMessage, Message, ToolCall
from agentkit._output import OutputSpec
from agentkit._responses import Usage

if TYPE_CHECKING:
    from agentkit._loop import ChatModel

__all__ = ["streamed_response"]

_NO_VALUE = object()


async def streamed_response(
    client: ChatModel,
    *,
    model: str,
    messages: Sequence[Message],
    params: dict[str, Any],
    turn: int,
    events: EventHandler | None,
    output: OutputSpec[Any],
) -> tuple[AssistantMessage, str | None, Usage]:
    """Stream one answer, emitting each piece; return the message, finish reason and usage.

    The message is the one a non-streaming request would have returned. If the
    stream breaks, the error propagates and nothing is returned: no half
    message reaches the history.
    """
    # Loaded with the first streamed request rather than with the loop, so that a
    # program that never streams does not build the stream's pieces and events.
    from agentkit._assemble import Assembler
    from agentkit._stream_events import OutputDelta, TextDelta, ToolCallComplete

    assembler = Assembler(turn)
    partial: Any = _NO_VALUE
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
            if not output.is_text and any(isinstance(p, TextDelta) for p in pieces):
                value = _partial(assembler.text, output)
                if value is not _NO_VALUE and value != partial:
                    partial = value
                    await emit(events, OutputDelta(turn, value))
    message = assembler.message()
    for index, call in enumerate(message.tool_calls or ()):
        assert isinstance(call, ToolCall)
        await emit(
            events,
            ToolCallComplete(turn, index, call.id, call.function.name, call.function.arguments),
        )
    return message, assembler.finish_reason, assembler.usage or Usage()


def _partial(text: str, output: OutputSpec[Any]) -> Any:
    """The JSON value in `text` so far, or _NO_VALUE while there is none."""
    try:
        value = from_json(text, allow_partial=True)
    except ValueError:
        return _NO_VALUE
    return output.unwrap(value)

"""Messages in the shape the GenAI conventions give `gen_ai.input.messages` and
`gen_ai.output.messages`: a role and a list of typed parts, as JSON text.

Only used when content capture is on; nothing here reads a header or a key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic_core import to_jsonable_python

__all__ = ["input_messages", "output_messages", "text"]


def input_messages(messages: Iterable[Any]) -> str:
    """A request's messages, as the JSON of `gen_ai.input.messages`."""
    return _dumps([_message(message) for message in messages])


def output_messages(message: Any, finish_reason: str | None) -> str:
    """An answer, as the JSON of `gen_ai.output.messages`."""
    entry = _message(message)
    entry["finish_reason"] = finish_reason or "stop"
    return _dumps([entry])


def _message(message: Any) -> dict[str, Any]:
    role = getattr(message, "role", "user")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append(
            {
                "type": "tool_call_response",
                "id": getattr(message, "tool_call_id", None),
                "response": text(message.content),
            }
        )
        return {"role": role, "parts": parts}
    content = getattr(message, "content", None)
    if content is not None:
        words = text(content)
        if words:
            parts.append({"type": "text", "content": words})
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.id,
                "name": call.tool_name,
                "arguments": _arguments(call.tool_input),
            }
        )
    return {"role": role, "parts": parts}


def text(content: Any) -> str:
    """Text content as it is; content parts reduced to their text (images are
    named, not inlined: a data URL could be megabytes)."""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content or ():
        text = getattr(part, "text", None)
        pieces.append(text if isinstance(text, str) else f"[{getattr(part, 'type', 'part')}]")
    return "".join(pieces)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON (cut off, or a custom tool's free text): kept as sent


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable_python(value), ensure_ascii=False, separators=(",", ":"))
